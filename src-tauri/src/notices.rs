//! The cashier's desktop notifications.
//!
//! What the platform's plain notification API of Tauri cannot do, and a cashier needs:
//! - a critical notice (outcome unknown, refund failed, POS lost, the service stopped, the
//!   journal or folders needing IT) stays on screen until it is seen;
//! - a notice in a slot replaces the one before it there: "POS connected" takes the place of
//!   "POS disconnected", so a glance never reads a loss that is over;
//! - a click on an order's notice opens the dashboard at that order.
//!
//! Linux: the Desktop Notifications Specification over D-Bus (notify-rust): urgency critical
//! with no expiry, `replaces_id`, the `default` action. Windows: a toast with the reminder
//! scenario (stays until dismissed), a tag per slot (a toast with the same tag replaces it) and
//! an activation handler.
use std::sync::Mutex;

use tauri::AppHandle;

pub use crate::commands::Toast;

/// The dashboard section a click on the notice opens.
pub fn section_of(t: &Toast) -> String {
    match &t.order {
        Some(key) => format!("order:{key}"),
        None => String::new(),
    }
}

/// Shows `t`; `open` runs (on a thread of the notification's own) when the cashier clicks it.
pub fn show(app: &AppHandle, t: Toast, zh: bool, open: impl Fn(&AppHandle, &str) + Send + 'static) {
    let app = app.clone();
    // Showing talks to the notification server and waits for what the cashier does with the
    // notice: never on the caller's thread.
    let spawned = std::thread::Builder::new().name("notice".into()).spawn(move || {
        if let Err(e) = imp::show(&app, &t, zh, &open) {
            log::warn!("notification not shown: {e}");
        }
    });
    if let Err(e) = spawned {
        log::warn!("notification not shown: {e}");
    }
}

/// The notification ids the slots hold now (Linux: the server's ids).
static SLOTS: Mutex<Vec<(&'static str, u32)>> = Mutex::new(Vec::new());

#[allow(dead_code)] // one of the two platforms uses each
fn slot_id(slot: &str) -> Option<u32> {
    SLOTS.lock().expect("slots").iter().find(|(s, _)| *s == slot).map(|(_, id)| *id)
}

#[allow(dead_code)]
fn set_slot(slot: &'static str, id: u32) {
    let mut slots = SLOTS.lock().expect("slots");
    slots.retain(|(s, _)| *s != slot);
    slots.push((slot, id));
}

#[cfg(not(windows))]
mod imp {
    use super::*;
    use notify_rust::{Notification, Timeout, Urgency};

    pub fn show(
        app: &AppHandle,
        t: &Toast,
        zh: bool,
        open: &(impl Fn(&AppHandle, &str) + Send + 'static),
    ) -> Result<(), notify_rust::error::Error> {
        let mut n = Notification::new();
        n.appname("HIS Bridge").summary(&t.title).body(&t.body);
        // A click on the notice itself is the `default` action (its label is shown by servers
        // that show actions as buttons).
        n.action("default", if zh { "打开" } else { "Open" });
        if t.critical {
            n.urgency(Urgency::Critical).timeout(Timeout::Never);
        } else {
            n.urgency(Urgency::Normal);
        }
        if let Some(id) = t.slot.and_then(slot_id) {
            n.id(id);
        }
        let handle = n.show()?;
        if let Some(slot) = t.slot {
            set_slot(slot, handle.id());
        }
        let section = section_of(t);
        // Waits until the notice is clicked or closed (expired, dismissed, replaced and
        // closed): the connection stays open so long, as servers close a notice whose sender
        // went away.
        handle.wait_for_action(|action| {
            if action == "default" {
                open(app, &section);
            }
        });
        Ok(())
    }
}

#[cfg(windows)]
mod imp {
    use super::*;
    use windows::core::{h, HSTRING};
    use windows::Data::Xml::Dom::XmlDocument;
    use windows::Foundation::TypedEventHandler;
    use windows::UI::Notifications::{ToastDismissedEventArgs, ToastNotification, ToastNotificationManager};

    /// The app's AppUserModelID, set on its Start menu shortcut by the MSI; a build run from
    /// its build folder has no shortcut and borrows PowerShell's, as Windows requires one.
    fn app_id(app: &AppHandle) -> HSTRING {
        let installed = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.to_string_lossy().to_lowercase()))
            .is_some_and(|d| !d.ends_with("\\debug") && !d.ends_with("\\release"));
        if installed {
            HSTRING::from(app.config().identifier.as_str())
        } else {
            h!("{1AC14E77-02E7-4E5D-B744-2EB1AE5198B7}\\WindowsPowerShell\\v1.0\\powershell.exe").clone()
        }
    }

    pub fn show(
        app: &AppHandle,
        t: &Toast,
        zh: bool,
        open: &(impl Fn(&AppHandle, &str) + Send + 'static),
    ) -> windows::core::Result<()> {
        let doc = XmlDocument::new()?;
        let toast = doc.CreateElement(h!("toast"))?;
        let visual = doc.CreateElement(h!("visual"))?;
        let binding = doc.CreateElement(h!("binding"))?;
        binding.SetAttribute(h!("template"), h!("ToastGeneric"))?;
        for text in [&t.title, &t.body] {
            let e = doc.CreateElement(h!("text"))?;
            e.SetInnerText(&HSTRING::from(text.as_str()))?;
            binding.AppendChild(&e)?;
        }
        visual.AppendChild(&binding)?;
        toast.AppendChild(&visual)?;
        if t.critical {
            // A reminder stays until dismissed; Windows shows it as one only with a button.
            toast.SetAttribute(h!("scenario"), h!("reminder"))?;
        }
        let actions = doc.CreateElement(h!("actions"))?;
        let button = doc.CreateElement(h!("action"))?;
        button.SetAttribute(h!("content"), &HSTRING::from(if zh { "打开" } else { "Open" }))?;
        button.SetAttribute(h!("arguments"), h!("default"))?;
        actions.AppendChild(&button)?;
        if t.critical {
            let dismiss = doc.CreateElement(h!("action"))?;
            dismiss.SetAttribute(h!("content"), h!(""))?;
            dismiss.SetAttribute(h!("arguments"), h!("dismiss"))?;
            dismiss.SetAttribute(h!("activationType"), h!("system"))?;
            actions.AppendChild(&dismiss)?;
        }
        toast.AppendChild(&actions)?;
        doc.AppendChild(&toast)?;

        let shown = ToastNotification::CreateToastNotification(&doc)?;
        if let Some(slot) = t.slot {
            // A toast with the tag and group of one on screen takes its place.
            shown.SetTag(&HSTRING::from(slot))?;
            shown.SetGroup(h!("hisbridge"))?;
        }
        let (app2, section) = (app.clone(), section_of(t));
        let (tx, rx) = std::sync::mpsc::channel::<bool>();
        let clicked = tx.clone();
        shown.Activated(&TypedEventHandler::new(move |_, _| {
            let _ = clicked.send(true);
            Ok(())
        }))?;
        shown.Dismissed(&TypedEventHandler::<ToastNotification, ToastDismissedEventArgs>::new(move |_, _| {
            let _ = tx.send(false);
            Ok(())
        }))?;
        ToastNotificationManager::CreateToastNotifierWithId(&app_id(app))?.Show(&shown)?;
        // The handlers live as long as the toast; this thread waits for the first of them.
        if let Ok(true) = rx.recv() {
            open(&app2, &section);
        }
        Ok(())
    }
}
