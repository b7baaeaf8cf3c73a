//! HIS Bridge tray app: starts the headless core in-process and shows its state in the tray.
//! A thin shell: every decision about orders and money is in `hisbridge-core`; the command
//! layer (`commands.rs`) is plain functions over the core, tested without a window.
#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

mod commands;
mod notices;

use std::path::PathBuf;
use std::sync::Mutex;

use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::engine::Notice;
use hisbridge_core::journal::State;
use hisbridge_core::keyfile;
use hisbridge_core::password;
use hisbridge_core::pos::{Link, PosStatus};
use hisbridge_core::settings::{self, SettingsForm};
use serde::Serialize;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};
use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};

const DASHBOARD: &str = "dashboard";

/// What the dashboard shows about the POS; pushed as the `pos-status` event.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct StatusView {
    state: &'static str,
    tooltip_zh: String,
    tooltip_en: String,
    port: String,
    device_id: Option<String>,
    last_heard: Option<String>,
    config_error: Option<String>,
    paused: bool,
    /// Another instance (the Windows service) drives the POS; this app shows its status only.
    service: Option<String>,
}

struct AppState {
    status: Mutex<StatusView>,
    config_path: PathBuf,
    cfg: Mutex<Option<Config>>,
    /// The core, running for the app's lifetime.
    bridge: Option<Bridge>,
    /// Orders at the POS or unknown (key → state): the icon, and Quit's confirmation.
    open: Mutex<std::collections::BTreeMap<String, State>>,
    /// The cashier's language for notifications (`zh` or `en`), set by the dashboard.
    lang: Mutex<String>,
    paused: Mutex<bool>,
    /// The most recent order's event: the dashboard's last-payment strip when it opens.
    last: Mutex<Option<OrderEvent>>,
    /// The tray icon has been set once (after that, only when the state changes).
    icon_set: std::sync::atomic::AtomicBool,
    /// When the dashboard was last sent the status.
    told_at: Mutex<Option<std::time::Instant>>,
    /// The IT password's guard in front of the settings and the key; its hash is read from the
    /// config file at each use (`refresh_lock`).
    settings_lock: Mutex<password::SettingsLock>,
}

impl AppState {
    fn zh(&self) -> bool {
        self.lang.lock().expect("lang").as_str() != "en"
    }
}

/// What the dashboard hears when an order changes; it then asks for the day again.
#[derive(Debug, Clone, Serialize)]
struct OrderEvent {
    key: String,
    /// The order as the cashier reads it (`MZ001 退款 R1`), and what to say about it.
    shown_zh: String,
    shown_en: String,
    words_zh: commands::OrderWords,
    words_en: commands::OrderWords,
    state: &'static str,
    amount: String,
    channel: Option<String>,
    error_code: Option<String>,
    /// The reason of a failure in words, for the cashier.
    reason_zh: Option<String>,
    reason_en: Option<String>,
}

fn config_path() -> PathBuf {
    if let Some(p) = std::env::args().skip_while(|a| a != "--config").nth(1) {
        return p.into();
    }
    if let Some(p) = std::env::var_os("HISBRIDGE_CONFIG") {
        return p.into();
    }
    // The installed one (registry, ProgramData), as the command line finds it.
    let candidates = hisbridge_core::config::installed_candidates();
    candidates.iter().find(|c| c.is_file()).or(candidates.last()).cloned().unwrap_or_else(|| "hisbridge.toml".into())
}

/// The tray app's log file when it is in the data folder's log folder (with the service's and
/// the MSI's); `None` when it logs in the user's own log folder instead, where the data folder's
/// is not writable for the cashier (beside a service, which keeps its folder to itself).
static TRAY_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

fn tray_log_target(cfg_path: &std::path::Path) -> tauri_plugin_log::Target {
    use tauri_plugin_log::{Target, TargetKind};
    let logs = Config::load(cfg_path).map(|c| c.logs).unwrap_or_else(|_| {
        hisbridge_core::config::Logs::of_data_dir(cfg_path.parent().unwrap_or(std::path::Path::new(".")))
    });
    match hisbridge_core::logs::LogFile::open(&logs, "hisbridge-tray") {
        Ok(f) => {
            let _ = TRAY_LOG.set(f.path().to_path_buf());
            let out: Box<dyn std::io::Write + Send> = Box::new(f);
            Target::new(TargetKind::Dispatch(tauri_plugin_log::fern::Dispatch::new().chain(out)))
        }
        Err(_) => Target::new(TargetKind::LogDir { file_name: Some("hisbridge".into()) }),
    }
}

/// Where the tray app's own log is.
fn tray_log(app: &AppHandle) -> Result<PathBuf, String> {
    match TRAY_LOG.get() {
        Some(p) => Ok(p.clone()),
        None => Ok(app.path().app_log_dir().map_err(|e| e.to_string())?.join("hisbridge.log")),
    }
}

fn view(s: &PosStatus) -> StatusView {
    let (state, zh, en) = match &s.link {
        Link::Ready => ("ready", "就绪：POS 已连接".to_string(), "Ready: POS connected".to_string()),
        Link::Handshaking => ("attention", "正在连接 POS…".to_string(), "Connecting to the POS…".to_string()),
        Link::PortClosed { reason } => {
            ("attention", commands::link_reason_zh(&s.port, reason), format!("POS not connected: {reason}"))
        }
        Link::WrongDevice { reported } => (
            "attention",
            format!("POS 设备号不符（{reported}），已停止收款"),
            format!("Wrong POS device ({reported}): payments stopped"),
        ),
    };
    StatusView {
        state,
        tooltip_zh: zh,
        tooltip_en: en,
        port: s.port.clone(),
        device_id: s.device_id.clone(),
        last_heard: s.last_heard.clone(),
        config_error: None,
        paused: false,
        service: None,
    }
}

/// The view of a POS driven by another instance, from the status file it publishes.
fn shared_view(journal: &std::path::Path) -> StatusView {
    use hisbridge_core::instance;
    shared_view_of(journal, instance::read_status(&instance::status_path(journal)))
}

/// [`shared_view`] of a status already read.
fn shared_view_of(journal: &std::path::Path, s: Option<hisbridge_core::instance::SharedStatus>) -> StatusView {
    use hisbridge_core::instance;
    let alive = instance::is_held(journal);
    match s {
        Some(s) if alive => {
            let mut v = view(&s.pos_status());
            v.tooltip_zh = format!("服务运行中 · {}", v.tooltip_zh);
            v.tooltip_en = format!("Service running · {}", v.tooltip_en);
            v.service = Some(s.describe());
            v
        }
        _ => StatusView {
            state: "attention",
            tooltip_zh: "HIS Bridge 服务已停止；重启托盘程序即由本机接管 POS".into(),
            tooltip_en: "The HIS Bridge service stopped; restart the tray app to drive the POS from here".into(),
            port: String::new(),
            device_id: None,
            last_heard: None,
            config_error: None,
            paused: false,
            service: Some(String::new()),
        },
    }
}

/// What the dashboard is told about an order.
fn order_event(
    key: String,
    st: State,
    amount: String,
    channel: Option<String>,
    error_code: Option<String>,
    pos_message: Option<String>,
) -> OrderEvent {
    let code = error_code.as_deref().and_then(hisbridge_core::his::ErrorCode::parse);
    let words = |zh| {
        commands::order_words(&key, st, &amount, channel.as_deref(), error_code.as_deref(), pos_message.as_deref(), zh)
    };
    OrderEvent {
        shown_zh: commands::shown_key(&key, true),
        shown_en: commands::shown_key(&key, false),
        words_zh: words(true),
        words_en: words(false),
        reason_zh: code.map(|c| match &pos_message {
            Some(m) => format!("{}（{m}）", c.zh()),
            None => c.zh().to_string(),
        }),
        reason_en: code.map(|c| match &pos_message {
            Some(m) => format!("{} ({m})", hisbridge_core::engine::en_text(c)),
            None => hisbridge_core::engine::en_text(c).to_string(),
        }),
        key,
        state: st.as_str(),
        amount,
        channel,
        error_code,
    }
}

/// Status-only mode: follows the status file of the instance that drives the POS (the
/// service): its link, and its orders and attention as notifications and the last-payment strip.
async fn follow_shared(app: AppHandle, journal: PathBuf) {
    use hisbridge_core::instance;
    let mut seen: Option<(u32, u64)> = None;
    let mut attention: std::collections::BTreeSet<String> = Default::default();
    let mut first = true;
    let mut was_alive = true;
    let mut link_was_ready: Option<bool> = None;
    loop {
        // One read of the status file per round: the view and the notices come from it.
        let read = instance::read_status(&instance::status_path(&journal));
        apply(&app, shared_view_of(&journal, read.clone()));
        let alive = instance::is_held(&journal);
        // The service's POS link, told as the app's own would be (lost and back).
        if let Some(link) = read.as_ref().filter(|_| alive).map(|s| view(&s.pos_status())) {
            let ready = link.state == "ready";
            let state = app.state::<AppState>();
            let wanted = state.cfg.lock().expect("cfg").as_ref().is_some_and(|c| c.notify.link);
            if let (Some(was), true) = (link_was_ready, wanted) {
                if let Some(t) = commands::link_toast(was, ready, &link.tooltip_zh, &link.tooltip_en, state.zh()) {
                    toast(&app, t);
                }
            }
            link_was_ready = Some(ready);
        }
        if alive != was_alive {
            let zh = app.state::<AppState>().zh();
            let t = match (alive, zh) {
                (false, true) => ("HIS Bridge 服务已停止", "POS 收款暂停：请联系信息科或重启服务"),
                (false, false) => ("HIS Bridge service stopped", "Payments stopped: call IT or restart the service"),
                (true, true) => ("HIS Bridge 服务已恢复", "可以收款"),
                (true, false) => ("HIS Bridge service running again", "Ready to take payments"),
            };
            // "Stopped" stays until seen, "running again" takes its place.
            let t = commands::Toast::new(t.0, t.1).in_slot("service");
            toast(&app, if alive { t } else { t.critical() });
            was_alive = alive;
        }
        if let Some(s) = read {
            let state = app.state::<AppState>();
            let notify = state.cfg.lock().expect("cfg").as_ref().map(|c| c.notify.clone());
            if let Some(o) = s.last_order.filter(|o| seen != Some((s.pid, o.seq))) {
                seen = Some((s.pid, o.seq));
                if let Some(st) = State::parse(&o.state) {
                    let n = Notice::Order {
                        key: o.key.clone(),
                        state: st,
                        amount: o.amount.clone(),
                        channel: o.channel.clone(),
                        error_code: o.error_code.clone(),
                        pos_message: o.pos_message.clone(),
                    };
                    // What happened before this app started is shown, not notified.
                    if let (false, Some(notify)) = (first, &notify) {
                        if let Some(t) = commands::toast_for(&n, notify, state.zh()) {
                            toast(&app, t);
                        }
                    }
                    let ev = order_event(o.key, st, o.amount, o.channel, o.error_code, o.pos_message);
                    let _ = app.emit("order", &ev);
                    *state.last.lock().expect("last") = Some(ev);
                }
            }
            let now: std::collections::BTreeSet<String> = s.attention.iter().map(|(k, _)| k.clone()).collect();
            for (what, detail) in &s.attention {
                if attention.contains(what) || first {
                    continue;
                }
                if let Some(a) = hisbridge_core::engine::Attention::parse(what) {
                    let n = Notice::Attention { what: a, detail: detail.clone() };
                    if let Some(t) = notify.as_ref().and_then(|nf| commands::toast_for(&n, nf, state.zh())) {
                        toast(&app, t);
                    }
                }
            }
            attention = now;
            first = false;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
}

/// Folds the orders at the POS and the pause into the link's view.
fn with_orders(mut v: StatusView, open: &std::collections::BTreeMap<String, State>, paused: bool) -> StatusView {
    v.paused = paused;
    if v.state != "ready" {
        return v;
    }
    if open.values().any(|s| *s == State::Unknown) {
        v.state = "attention";
        v.tooltip_zh = "有订单结果未知，正在向 POS 查询".into();
        v.tooltip_en = "An order's outcome is unknown; querying the POS".into();
    } else if open.values().any(|s| matches!(s, State::Sent | State::Paying | State::Cancelling)) {
        v.state = "busy";
        v.tooltip_zh = "收款中：等待患者付款".into();
        v.tooltip_en = "Busy: waiting for the patient to pay".into();
    } else if paused {
        v.state = "paused";
        v.tooltip_zh = "已暂停收款".into();
        v.tooltip_en = "Taking payments paused".into();
    }
    v
}

fn tray_image(state: &str) -> Image<'static> {
    let bytes: &'static [u8] = match state {
        "ready" => include_bytes!("../icons/ready.png"),
        "busy" => include_bytes!("../icons/busy.png"),
        "paused" => include_bytes!("../icons/paused.png"),
        _ => include_bytes!("../icons/attention.png"),
    };
    Image::from_bytes(bytes).expect("embedded icon")
}

fn apply(app: &AppHandle, v: StatusView) {
    let state = app.state::<AppState>();
    let before = state.status.lock().expect("status").clone();
    // The icon and tooltip change only when what they say changes (not on every heartbeat).
    let was_set = state.icon_set.swap(true, std::sync::atomic::Ordering::Relaxed);
    if !was_set || before.state != v.state || before.tooltip_zh != v.tooltip_zh || before.tooltip_en != v.tooltip_en {
        if let Some(tray) = app.tray_by_id("main") {
            if !was_set || before.state != v.state {
                let _ = tray.set_icon(Some(tray_image(v.state)));
            }
            let tip = if state.zh() { &v.tooltip_zh } else { &v.tooltip_en };
            let _ = tray.set_tooltip(Some(format!("HIS Bridge — {tip}")));
        }
        label_status(app, &v);
    }
    // The dashboard is told when something it shows changes; a POS merely heard again (every
    // heartbeat) at most every 10 s, so an open dashboard does not redraw every 2 s.
    let heard_only = StatusView { last_heard: v.last_heard.clone(), ..before.clone() } == v;
    let mut told = state.told_at.lock().expect("told");
    let due = told.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10));
    if !heard_only || due {
        let _ = app.emit("pos-status", &v);
        *told = Some(std::time::Instant::now());
    }
    drop(told);
    *state.status.lock().expect("status") = v;
}

/// The status line at the top of the tray menu.
fn label_status(app: &AppHandle, v: &StatusView) {
    if let Some(items) = app.try_state::<MenuItems>() {
        let zh = app.state::<AppState>().zh();
        if let Some((_, item)) = items.0.iter().find(|(id, _)| *id == "status") {
            let _ = item.set_text(if zh { &v.tooltip_zh } else { &v.tooltip_en });
        }
        // Beside the service, pausing and testing are the service's: not offered here.
        for (_, item) in items.0.iter().filter(|(id, _)| matches!(*id, "pause" | "test")) {
            let _ = item.set_enabled(v.service.is_none());
        }
    }
}

fn toast(app: &AppHandle, t: commands::Toast) {
    let zh = app.state::<AppState>().zh();
    notices::show(app, t, zh, |app, section| {
        // A click on the notice: the dashboard opens (on the main thread, where windows are made).
        let (app2, section) = (app.clone(), section.to_string());
        let _ = app.run_on_main_thread(move || open_dashboard(&app2, &section));
    });
}

/// Opens the dashboard (at `section`); its webview exists only while it is open.
fn open_dashboard(app: &AppHandle, section: &str) {
    if let Some(w) = app.get_webview_window(DASHBOARD) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        let _ = app.emit("show-section", section);
        return;
    }
    let url = if section.is_empty() { "index.html".to_string() } else { format!("index.html#{section}") };
    // On Windows the window needs the WebView2 Runtime; where it is missing the bridge keeps
    // running from the tray and only the window cannot open (docs/install.md).
    let built = match tauri::webview_version() {
        Ok(_) => {
            // Fits a 1366x768 screen with its taskbar (and 125/150% scaling, where the monitor's
            // logical size is smaller): at most the work area less a margin for the title bar.
            // The size and place the cashier left it at, when they still fit this screen.
            let (mut w, mut h) = (1200.0, 700.0);
            let mut at = None;
            let saved = load_geometry(app);
            if let Ok(Some(m)) = app.primary_monitor() {
                let size = m.size().to_logical::<f64>(m.scale_factor());
                if let Some(g) = saved.filter(|g| {
                    g.x >= -8.0 && g.y >= -8.0 && g.x + g.w <= size.width + 8.0 && g.y + g.h <= size.height + 8.0
                }) {
                    (w, h, at) = (g.w, g.h, Some((g.x, g.y)));
                }
                w = f64::min(w, size.width - 40.0);
                h = f64::min(h, size.height - 110.0);
            }
            let mut b = WebviewWindowBuilder::new(app, DASHBOARD, WebviewUrl::App(url.into()))
                .title("HIS Bridge")
                .inner_size(w.max(640.0), h.max(420.0))
                .min_inner_size(640.0, 420.0);
            if let Some((x, y)) = at {
                b = b.position(x, y);
            }
            b.build()
                .map(|win| {
                    let app = app.clone();
                    let handle = win.clone();
                    win.on_window_event(move |ev| {
                        if matches!(ev, tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_)) {
                            save_geometry(&app, &handle);
                        }
                    });
                })
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("no system webview (on Windows: the WebView2 Runtime is not installed): {e}")),
    };
    if let Err(e) = built {
        log::error!("the dashboard cannot open: {e}");
        toast(
            app,
            commands::Toast::new(
                "HIS Bridge",
                "无法打开面板：未安装 WebView2 运行库，请联系信息科；收款不受影响。\nThe dashboard cannot open: the WebView2 Runtime is missing (ask IT); payments carry on.",
            ),
        );
    }
}

/// Where the dashboard was (logical pixels), kept per user.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
struct Geometry {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn geometry_file(app: &AppHandle) -> Option<PathBuf> {
    app.path().app_config_dir().ok().map(|d| d.join("dashboard-window.json"))
}

fn load_geometry(app: &AppHandle) -> Option<Geometry> {
    serde_json::from_slice(&std::fs::read(geometry_file(app)?).ok()?).ok()
}

fn save_geometry(app: &AppHandle, w: &tauri::WebviewWindow) {
    let (Ok(scale), Ok(pos), Ok(size)) = (w.scale_factor(), w.outer_position(), w.inner_size()) else { return };
    if w.is_minimized().unwrap_or(false) || w.is_maximized().unwrap_or(false) {
        return;
    }
    let (p, s) = (pos.to_logical::<f64>(scale), size.to_logical::<f64>(scale));
    let g = Geometry { x: p.x, y: p.y, w: s.width, h: s.height };
    if let Some(file) = geometry_file(app) {
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
            if let Ok(bytes) = serde_json::to_vec(&g) {
                let _ = hisbridge_core::folders::replace_file(dir, "dashboard-window.json", &bytes);
            }
        }
    }
}

fn open_folder(path: &std::path::Path) {
    let _ = std::fs::create_dir_all(path);
    let program = if cfg!(windows) { "explorer" } else { "xdg-open" };
    if let Err(e) = std::process::Command::new(program).arg(path).spawn() {
        log::warn!("cannot open {}: {e}", path.display());
    }
}

// ---- Commands ------------------------------------------------------------------------------

fn config_of(state: &AppState) -> Result<Config, String> {
    state
        .cfg
        .lock()
        .expect("cfg")
        .clone()
        .ok_or_else(|| "配置错误，桥程序未启动 / configuration problem: the bridge is not running".into())
}

fn bridge_of(state: &AppState) -> Result<&Bridge, String> {
    state.bridge.as_ref().ok_or_else(|| {
        if state.status.lock().expect("status").service.is_some() {
            "POS 由 HIS Bridge 服务驱动，本程序只显示状态 / the HIS Bridge service drives the POS; this app shows its status only"
                .into()
        } else {
            "桥程序未启动 / the bridge is not running".into()
        }
    })
}

#[tauri::command]
fn status(state: tauri::State<'_, AppState>) -> StatusView {
    state.status.lock().expect("status").clone()
}

/// Asks the cashier, in a native dialog naming the order and its amount, whether to cancel it.
#[tauri::command]
async fn confirm_cancel(
    app: AppHandle,
    state: tauri::State<'_, AppState>,
    order: String,
    amount: String,
) -> Result<bool, String> {
    let zh = state.zh();
    let (title, msg, yes, no) = if zh {
        (
            "撤销订单",
            format!("撤销订单 {order}（{amount}）？\n患者尚未付款时撤销，不会扣款；已付款的订单不能在这里撤销。"),
            "撤销订单",
            "不撤销",
        )
    } else {
        (
            "Cancel order",
            format!("Cancel order {order} ({amount})?\nCancelled before the patient pays, nothing is charged; a paid order cannot be cancelled here."),
            "Cancel order",
            "Keep it",
        )
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    app.dialog()
        .message(msg)
        .title(title)
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(yes.into(), no.into()))
        .show(move |ok| {
            let _ = tx.send(ok);
        });
    Ok(rx.await.unwrap_or(false))
}

/// Who may change the settings, as the settings page shows it.
#[derive(Serialize)]
struct SettingsAccess {
    /// This user may write the config file: it is IT's (on Windows its ACL gives cashiers read
    /// access only, docs/security.md); the form is read-only otherwise.
    writable: bool,
    /// An IT password guards the settings (`hisbridge it-password`).
    protected: bool,
    /// The IT password was given and the unlock still holds.
    unlocked: bool,
}

/// The IT password's hash as the config file says it now: a password set or removed by
/// `hisbridge it-password` while the app runs applies at once. A config that does not load
/// keeps the last hash known.
fn refresh_lock(state: &AppState) -> std::sync::MutexGuard<'_, password::SettingsLock> {
    let hash = match Config::load(&state.config_path) {
        Ok(c) => c.tray.it_password_hash,
        Err(_) => state.cfg.lock().expect("cfg").as_ref().and_then(|c| c.tray.it_password_hash.clone()),
    };
    let mut lock = state.settings_lock.lock().expect("settings lock");
    lock.set_hash(hash);
    lock
}

/// A refusal in the cashier's language.
fn refusal_text(state: &AppState, r: &password::Refusal) -> String {
    let (zh, en) = r.text();
    if state.zh() {
        zh
    } else {
        en
    }
}

/// Before any change to the settings or the key: refused while an IT password guards them and
/// has not been given; otherwise the unlock lasts again from now.
fn allow_change(state: &AppState) -> Result<(), String> {
    let r = refresh_lock(state).allow(std::time::Instant::now());
    r.map_err(|r| {
        log::warn!("a settings change was refused: the IT password was not given");
        refusal_text(state, &r)
    })
}

#[tauri::command]
fn settings_access(state: tauri::State<'_, AppState>) -> SettingsAccess {
    let writable = std::fs::OpenOptions::new().append(true).open(&state.config_path).is_ok();
    let lock = refresh_lock(&state);
    SettingsAccess { writable, protected: lock.protected(), unlocked: lock.is_open(std::time::Instant::now()) }
}

/// The IT password given on the settings page: unlocks the settings for a while (a wrong one
/// counts towards a pause, `password::SettingsLock`). The password is never logged.
#[tauri::command]
async fn unlock_settings(state: tauri::State<'_, AppState>, password: String) -> Result<(), String> {
    let r = refresh_lock(&state).unlock(std::time::Instant::now(), &password);
    match r {
        Ok(()) => {
            log::info!("settings unlocked with the IT password");
            Ok(())
        }
        Err(r) => {
            if r == password::Refusal::Damaged {
                log::error!("the IT password's hash in the config is damaged: the settings stay locked until `hisbridge it-password` sets it again");
            } else {
                log::warn!("a wrong IT password was given for the settings");
            }
            Err(refusal_text(&state, &r))
        }
    }
}

/// Locks the settings at once (the page was left, or 锁定 pressed).
#[tauri::command]
fn lock_settings(state: tauri::State<'_, AppState>) {
    state.settings_lock.lock().expect("settings lock").lock();
}

#[tauri::command]
fn last_order(state: tauri::State<'_, AppState>) -> Option<OrderEvent> {
    state.last.lock().expect("last").clone()
}

#[tauri::command]
async fn day_report(
    state: tauri::State<'_, AppState>,
    date: Option<String>,
) -> Result<hisbridge_core::recon::DayReport, String> {
    let cfg = config_of(&state)?;
    tauri::async_runtime::spawn_blocking(move || commands::day_report(&cfg, date.as_deref()))
        .await
        .map_err(|e| e.to_string())?
}

#[tauri::command]
async fn order_action(state: tauri::State<'_, AppState>, key: String, action: String) -> Result<String, String> {
    commands::order_action(bridge_of(&state)?, &key, &action).await
}

#[tauri::command]
async fn check_pos_totals(
    state: tauri::State<'_, AppState>,
    date: Option<String>,
) -> Result<hisbridge_core::recon::DayReport, String> {
    let cfg = config_of(&state)?;
    commands::check_pos_totals(bridge_of(&state)?, &cfg, date.as_deref()).await
}

#[tauri::command]
async fn write_reconciliation(state: tauri::State<'_, AppState>, date: Option<String>) -> Result<Vec<String>, String> {
    let cfg = config_of(&state)?;
    tauri::async_runtime::spawn_blocking(move || commands::write_reconciliation(&cfg, date.as_deref()))
        .await
        .map_err(|e| e.to_string())?
}

#[tauri::command]
fn get_settings(state: tauri::State<'_, AppState>) -> Result<SettingsForm, String> {
    Ok(SettingsForm::from_config(&config_of(&state)?))
}

/// Saves the settings when every field is valid; the error names the field otherwise.
/// Answers whether the bridge must start again for them to apply.
#[tauri::command]
async fn save_settings(
    state: tauri::State<'_, AppState>,
    form: SettingsForm,
) -> Result<&'static str, serde_json::Value> {
    let to_json = |e: settings::SettingsError| match e.field() {
        Some(f) => serde_json::json!({
            "field": f.field, "message": f.message, "message_zh": commands::field_message_zh(&f.field, &f.message),
        }),
        None => {
            let m = e.to_string();
            serde_json::json!({ "field": null, "message_zh": commands::settings_error_zh(&m), "message": m })
        }
    };
    allow_change(&state).map_err(|m| serde_json::json!({ "field": null, "message": m, "message_zh": m }))?;
    let old = config_of(&state).map_err(|e| serde_json::json!({ "field": null, "message": e }))?;
    let new = settings::save(&state.config_path, &form).map_err(to_json)?;
    let service = state.status.lock().expect("status").service.is_some();
    if let Some(b) = state.bridge.as_ref() {
        b.reconfigure(&new).await.map_err(|e| serde_json::json!({ "field": null, "message": e }))?;
    }
    // Beside the service nothing here applies them: the service reads them when it restarts.
    let outcome = if service {
        "restart_service"
    } else if settings::needs_restart(&old, &new) {
        "restart_app"
    } else {
        "applied"
    };
    log::info!("settings saved ({outcome})");
    *state.cfg.lock().expect("cfg") = Some(new);
    Ok(outcome)
}

#[tauri::command]
fn import_key(state: tauri::State<'_, AppState>, text: String) -> Result<String, String> {
    allow_change(&state)?;
    let cfg = config_of(&state)?;
    let id = settings::import_key(&cfg, &text).map_err(|e| e.to_string())?;
    log::info!("key {id} imported; it applies when the bridge starts again");
    Ok(id)
}

/// One choice for the POS in the settings: what to write in `[pos] port`, with which transport.
#[derive(Serialize)]
struct PortChoice {
    value: String,
    transport: hisbridge_core::transport::TransportKind,
    /// What the OS says about it (USB identity, product).
    detail: String,
    /// A USB identity: stays right when Windows gives the POS another COM number.
    by_identity: bool,
    looks_like_pos: bool,
}

/// The serial ports and USB devices of this PC, as `hisbridge devices` lists them.
#[tauri::command]
fn list_ports() -> Vec<PortChoice> {
    use hisbridge_core::transport::{discover, TransportKind};
    let found = discover::find_all();
    let mut out = Vec::new();
    for p in &found.serial_ports {
        let detail = p
            .usb
            .as_ref()
            .map(|u| {
                format!(
                    "USB {:04X}:{:04X} {} {}",
                    u.vid,
                    u.pid,
                    u.manufacturer.as_deref().unwrap_or(""),
                    u.product.as_deref().unwrap_or("")
                )
            })
            .unwrap_or_default();
        out.push(PortChoice {
            value: p.name.clone(),
            transport: TransportKind::Serial,
            detail: detail.clone(),
            by_identity: false,
            looks_like_pos: false,
        });
        if let Some(u) = &p.usb {
            out.push(PortChoice {
                value: u.id().to_string(),
                transport: TransportKind::Serial,
                detail: format!("{} ({detail})", p.name),
                by_identity: true,
                looks_like_pos: false,
            });
        }
    }
    for d in found.usb_devices.iter().filter(|d| d.looks_like_pos.is_some()) {
        // An Android POS is reached through accessory mode; anything else with a bulk pair raw.
        let transport = if d.transport == Some("aoa") { TransportKind::Aoa } else { TransportKind::Usb };
        out.push(PortChoice {
            value: d.config.clone(),
            transport,
            detail: format!(
                "USB {:04X}:{:04X} {} {}{}",
                d.vid,
                d.pid,
                d.manufacturer.as_deref().unwrap_or(""),
                d.product.as_deref().unwrap_or(""),
                d.open_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
            ),
            by_identity: true,
            looks_like_pos: true,
        });
    }
    out
}

#[tauri::command]
async fn test_pos(state: tauri::State<'_, AppState>) -> Result<hisbridge_core::engine::PosInfo, String> {
    let zh = state.zh();
    bridge_of(&state)?.pos_info().await.map_err(|e| if zh { commands::pos_error_zh(&e) } else { e })
}

#[tauri::command]
async fn set_paused(app: AppHandle, state: tauri::State<'_, AppState>, paused: bool) -> Result<(), String> {
    set_pause(&app, &state, paused).await?;
    let v = with_orders(state.status.lock().expect("status").clone(), &state.open.lock().expect("open"), paused);
    apply(&app, v);
    Ok(())
}

async fn set_pause(app: &AppHandle, state: &AppState, paused: bool) -> Result<(), String> {
    bridge_of(state)?.pause(paused).await?;
    *state.paused.lock().expect("paused") = paused;
    label_menu(app);
    Ok(())
}

#[tauri::command]
fn read_log(app: AppHandle, state: tauri::State<'_, AppState>, lines: Option<usize>) -> Result<String, String> {
    // Beside the service, its log is the one that tells what happened to the payments.
    let service = state.status.lock().expect("status").service.is_some();
    let file = match (service, config_of(&state)) {
        (true, Ok(cfg)) => cfg.logs.folder.join("hisbridge-service.log"),
        _ => tray_log(&app)?,
    };
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let n = lines.unwrap_or(300);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(n)..].join("\n"))
}

#[tauri::command]
fn set_language(app: AppHandle, state: tauri::State<'_, AppState>, lang: String) {
    *state.lang.lock().expect("lang") = if lang == "en" { "en".into() } else { "zh".into() };
    label_menu(&app);
}

#[tauri::command]
fn restart_app(app: AppHandle, state: tauri::State<'_, AppState>) -> Result<(), String> {
    if !state.open.lock().expect("open").is_empty() {
        return Err("有订单正在处理，请稍后再重启 / an order is in progress; restart when it is finished".into());
    }
    app.restart()
}

#[tauri::command]
fn export_diagnostics(app: AppHandle, state: tauri::State<'_, AppState>) -> Result<String, String> {
    diagnostics(&app, &state)
}

fn diagnostics(app: &AppHandle, state: &AppState) -> Result<String, String> {
    let cfg = config_of(state)?;
    let dir = cfg.data_dir.join("diagnostics");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join(format!("hisbridge-diag-{}.zip", chrono::Local::now().format("%Y%m%d-%H%M%S")));
    let st = state.status.lock().expect("status").clone();
    let status = serde_json::json!({
        "version": app.package_info().version.to_string(),
        "os": std::env::consts::OS,
        "pos": st,
        "open_orders": state.open.lock().expect("open").len(),
        "ports": list_ports().into_iter().map(|p| format!("{} [{}] {}", p.value, p.transport.as_str(), p.detail)).collect::<Vec<_>>(),
    });
    // The data folder's log folder always; the user's own one too, when the tray app logs there.
    let log_dir = match TRAY_LOG.get() {
        Some(_) => None,
        None => app.path().app_log_dir().ok(),
    };
    hisbridge_core::diag::write_archive(&cfg, &state.config_path, log_dir.as_deref(), &status, 7, &out)
        .map_err(|e| e.to_string())?;
    Ok(out.display().to_string())
}

// ---- The tray ------------------------------------------------------------------------------

fn on_menu(app: &AppHandle, id: &str) {
    let state = app.state::<AppState>();
    let cfg = state.cfg.lock().expect("cfg").clone();
    match id {
        "open" => open_dashboard(app, ""),
        "settings" => open_dashboard(app, "settings"),
        "logs" => open_dashboard(app, "logs"),
        "pause" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let state = app.state::<AppState>();
                let now = *state.paused.lock().expect("paused");
                if let Err(e) = set_pause(&app, &state, !now).await {
                    toast(&app, commands::Toast::new("HIS Bridge", e));
                }
                let v =
                    with_orders(state.status.lock().expect("status").clone(), &state.open.lock().expect("open"), !now);
                apply(&app, v);
            });
        }
        "test" => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move {
                let state = app.state::<AppState>();
                let zh = state.zh();
                let msg = match bridge_of(&state) {
                    Err(e) => e,
                    Ok(b) => match b.pos_info().await {
                        Ok(i) if zh => {
                            format!("POS 正常：设备 {}，版本 {}，POS 时钟 {}", i.device_id, i.version, i.time)
                        }
                        Ok(i) => format!("POS OK: device {}, version {}, POS clock {}", i.device_id, i.version, i.time),
                        Err(e) if zh => commands::pos_error_zh(&e),
                        Err(e) => format!("POS does not answer: {e}"),
                    },
                };
                app.dialog().message(msg).title("HIS Bridge").show(|_| {});
            });
        }
        "inbox" | "outbox" | "error" => {
            if let Some(c) = cfg {
                open_folder(match id {
                    "inbox" => &c.folders.inbox,
                    "outbox" => &c.folders.outbox,
                    _ => &c.folders.error,
                });
            }
        }
        "diag" => {
            let msg = match diagnostics(app, &state) {
                Ok(p) => {
                    if let Some(dir) = std::path::Path::new(&p).parent() {
                        open_folder(dir);
                    }
                    format!("诊断包已生成 / Diagnostics written:\n{p}")
                }
                Err(e) => format!("诊断包生成失败 / Diagnostics failed: {e}"),
            };
            app.dialog().message(msg).title("HIS Bridge").show(|_| {});
        }
        "about" => {
            let device = cfg.map(|c| c.pos.device_id).unwrap_or_else(|| "-".into());
            let msg = format!(
                "HIS Bridge {}\nPOS 设备号 / device ID: {device}\n配置 / config: {}",
                app.package_info().version,
                state.config_path.display()
            );
            app.dialog().message(msg).title("关于 / About").show(|_| {});
        }
        "quit" => {
            let open = state.open.lock().expect("open").len();
            if open == 0 {
                app.exit(0);
                return;
            }
            let app2 = app.clone();
            app.dialog()
                .message(format!(
                    "有 {open} 笔订单正在处理。现在退出不会丢单：下次启动时会向 POS 查询结果。仍要退出吗？\n\n\
                     {open} order(s) in progress. Quitting loses nothing: they are queried on the next start. Quit anyway?"
                ))
                .title("HIS Bridge")
                .kind(MessageDialogKind::Warning)
                .buttons(MessageDialogButtons::OkCancel)
                .show(move |ok| {
                    if ok {
                        app2.exit(0);
                    }
                });
        }
        _ => {}
    }
}

/// The tray menu's cashier items (id, Chinese, English), in order; `None` is a separator. IT's
/// items are in a submenu of their own ([`IT_MENU`]), after the test item.
const MENU: &[Option<(&str, &str, &str)>] = &[
    Some(("open", "打开面板", "Open dashboard")),
    Some(("pause", "暂停收款", "Pause payments")),
    Some(("test", "测试 POS 连接", "Test POS connection")),
    None,
    Some(("about", "关于", "About")),
    Some(("quit", "退出", "Quit")),
];

/// IT's items, in a submenu of their own apart from the cashier's.
const IT_MENU: &[(&str, &str, &str)] = &[
    ("inbox", "打开收件夹", "Open inbox folder"),
    ("outbox", "打开结果夹", "Open outbox folder"),
    ("error", "打开错误夹", "Open error folder"),
    ("logs", "查看日志", "View logs"),
    ("diag", "导出诊断包", "Export diagnostics"),
    ("settings", "设置", "Settings"),
];

/// The menu's items, kept to be relabelled (language, pause).
struct MenuItems(Vec<(&'static str, MenuItem<tauri::Wry>)>);

/// Labels the tray menu in the cashier's language; the pause item says what clicking it does.
fn label_menu(app: &AppHandle) {
    let state = app.state::<AppState>();
    let zh = state.zh();
    let paused = *state.paused.lock().expect("paused");
    let Some(items) = app.try_state::<MenuItems>() else { return };
    for (id, item) in &items.0 {
        let text = match (*id, paused, zh) {
            ("pause", true, true) => "恢复收款（当前已暂停）",
            ("pause", true, false) => "Resume payments (paused now)",
            ("status", _, _) => continue,
            _ => MENU
                .iter()
                .flatten()
                .chain(IT_MENU)
                .find(|(i, _, _)| i == id)
                .map(|(_, z, e)| if zh { *z } else { *e })
                .unwrap_or(id),
        };
        let _ = item.set_text(text);
    }
    if let Some(sub) = app.try_state::<ItMenu>() {
        let _ = sub.0.set_text(if zh { "信息科" } else { "IT" });
    }
    let v = state.status.lock().expect("status").clone();
    label_status(app, &v);
}

/// The IT submenu, kept to be relabelled.
struct ItMenu(tauri::menu::Submenu<tauri::Wry>);

fn build_tray(app: &tauri::App, initial: &StatusView) -> tauri::Result<TrayIcon> {
    let mut kept = Vec::new();
    let mut entries: Vec<Box<dyn tauri::menu::IsMenuItem<tauri::Wry>>> = Vec::new();
    // A status line first (not clickable): the same words as the tooltip.
    let status = MenuItem::with_id(app, "status", &initial.tooltip_zh, false, None::<&str>)?;
    kept.push(("status", status.clone()));
    entries.push(Box::new(status));
    entries.push(Box::new(PredefinedMenuItem::separator(app)?));
    let mut it_items = Vec::new();
    for (id, zh, _) in IT_MENU {
        let item = MenuItem::with_id(app, *id, *zh, true, None::<&str>)?;
        kept.push((*id, item.clone()));
        it_items.push(item);
    }
    let it_refs: Vec<&dyn tauri::menu::IsMenuItem<tauri::Wry>> =
        it_items.iter().map(|i| i as &dyn tauri::menu::IsMenuItem<tauri::Wry>).collect();
    let it = tauri::menu::Submenu::with_id_and_items(app, "it", "信息科", true, &it_refs)?;
    for entry in MENU {
        match entry {
            Some((id, zh, _)) => {
                let item = MenuItem::with_id(app, *id, *zh, true, None::<&str>)?;
                kept.push((*id, item.clone()));
                entries.push(Box::new(item));
                if *id == "test" {
                    entries.push(Box::new(PredefinedMenuItem::separator(app)?));
                    entries.push(Box::new(it.clone()));
                }
            }
            None => entries.push(Box::new(PredefinedMenuItem::separator(app)?)),
        }
    }
    let refs: Vec<&dyn tauri::menu::IsMenuItem<tauri::Wry>> = entries.iter().map(|b| b.as_ref()).collect();
    let menu = Menu::with_items(app, &refs)?;
    app.manage(MenuItems(kept));
    app.manage(ItMenu(it));
    TrayIconBuilder::with_id("main")
        .icon(tray_image(initial.state))
        .tooltip(format!("HIS Bridge — {}", initial.tooltip_zh))
        .menu(&menu)
        // A left click opens the dashboard; the menu is on the right button.
        .show_menu_on_left_click(false)
        .on_tray_icon_event(|tray, ev| {
            if let tauri::tray::TrayIconEvent::Click {
                button: tauri::tray::MouseButton::Left,
                button_state: tauri::tray::MouseButtonState::Up,
                ..
            } = ev
            {
                open_dashboard(tray.app_handle(), "");
            }
        })
        .on_menu_event(|app, ev| on_menu(app, ev.id.as_ref()))
        .build(app)
}

/// Follows the POS link and the engine's notices: the tray icon, the dashboard's events and
/// the cashier's notifications.
async fn follow(app: AppHandle, mut link: tokio::sync::watch::Receiver<PosStatus>) {
    let Some(mut notices) = app.state::<AppState>().bridge.as_ref().map(|b| b.notices.subscribe()) else {
        return;
    };
    let mut current = view(&link.borrow().clone());
    let mut was_ready = current.state == "ready";
    loop {
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() { break; }
                current = view(&link.borrow_and_update().clone());
                let is_ready = current.state == "ready";
                let state = app.state::<AppState>();
                let notify = state.cfg.lock().expect("cfg").as_ref().map(|c| c.notify.clone());
                if notify.is_some_and(|n| n.link) {
                    if let Some(t) = commands::link_toast(was_ready, is_ready, &current.tooltip_zh, &current.tooltip_en, state.zh()) {
                        toast(&app, t);
                    }
                }
                was_ready = is_ready;
            }
            n = notices.recv() => match n {
                Ok(n) => {
                    let state = app.state::<AppState>();
                    if let Some(notify) = state.cfg.lock().expect("cfg").as_ref().map(|c| c.notify.clone()) {
                        if let Some(t) = commands::toast_for(&n, &notify, state.zh()) {
                            toast(&app, t);
                        }
                    }
                    match n {
                        Notice::Order { key, state: st, amount, channel, error_code, pos_message } => {
                            {
                                let mut open = state.open.lock().expect("open");
                                if st.is_final() || st == State::Accepted { open.remove(&key); } else { open.insert(key.clone(), st); }
                            }
                            let ev = order_event(key, st, amount, channel, error_code, pos_message);
                            let _ = app.emit("order", &ev);
                            *state.last.lock().expect("last") = Some(ev);
                        }
                        Notice::Rejected { source, code, detail } => {
                            let _ = app.emit("rejected", serde_json::json!({
                                "source": source, "code": code.as_str(), "zh": code.zh(), "detail": detail,
                            }));
                        }
                        Notice::Attention { what, detail } => {
                            let (zh_t, en_t, zh_b) = commands::attention_words(what);
                            let _ = app.emit("attention", serde_json::json!({
                                "what": what.as_str(), "zh": zh_t, "en": en_t, "todo_zh": zh_b, "detail": detail,
                            }));
                        }
                        Notice::Resolved(what) => {
                            let _ = app.emit("attention-resolved", serde_json::json!({ "what": what.as_str() }));
                        }
                        Notice::Paused(_) => {}
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
        }
        let state = app.state::<AppState>();
        let paused = *state.paused.lock().expect("paused");
        let v = with_orders(current.clone(), &state.open.lock().expect("open"), paused);
        apply(&app, v);
    }
}

fn main() {
    let log = tauri_plugin_log::Builder::new()
        .targets([tauri_plugin_log::Target::new(tauri_plugin_log::TargetKind::Stdout), tray_log_target(&config_path())])
        .level(log::LevelFilter::Info)
        // The D-Bus library's handshake and the webview's internals are not the cashier's log.
        .level_for("zbus", log::LevelFilter::Warn)
        .level_for("tracing", log::LevelFilter::Warn)
        .max_file_size(5_000_000)
        .rotation_strategy(tauri_plugin_log::RotationStrategy::KeepSome(10))
        .timezone_strategy(tauri_plugin_log::TimezoneStrategy::UseLocal)
        // The same line as the service's and the command line's: local time with its offset.
        .format(|out, message, record| {
            out.finish(format_args!(
                "{} {:>5} {}: {}",
                chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
                record.level(),
                record.target(),
                message
            ))
        })
        .build();
    tauri::Builder::default()
        // A second launch brings up the first one's dashboard.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| open_dashboard(app, "")))
        .plugin(log)
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler(tauri::generate_handler![
            status,
            last_order,
            confirm_cancel,
            settings_access,
            unlock_settings,
            lock_settings,
            day_report,
            order_action,
            check_pos_totals,
            write_reconciliation,
            get_settings,
            save_settings,
            import_key,
            list_ports,
            test_pos,
            set_paused,
            read_log,
            set_language,
            restart_app,
            export_diagnostics
        ])
        .setup(|app| {
            let cfg_path = config_path();
            let loaded = Config::load(&cfg_path).map_err(|e| e.to_string());
            let started = loaded.clone().and_then(|cfg| {
                let key = keyfile::load(&cfg.key_file).map_err(|e| e.to_string())?;
                match tauri::async_runtime::block_on(async { Bridge::start_as(&cfg, key, "tray") }) {
                    Ok(b) => Ok(Some(b)),
                    // The service (or another instance) drives the POS: show its status only.
                    Err(hisbridge_core::bridge::StartError::Locked(_)) => Ok(None),
                    Err(e) => Err(e.to_string()),
                }
            });
            let shared = matches!(started, Ok(None));
            let (bridge, initial) = match started {
                Ok(Some(b)) => {
                    let v = view(&b.pos.status());
                    (Some(b), v)
                }
                Ok(None) => {
                    let journal = loaded.as_ref().expect("config loaded").journal.clone();
                    log::info!("another instance drives the POS; status only");
                    (None, shared_view(&journal))
                }
                Err(e) => {
                    log::error!("bridge not started ({}): {e}", cfg_path.display());
                    let v = StatusView {
                        state: "attention",
                        tooltip_zh: format!("配置错误：{e}"),
                        tooltip_en: format!("Configuration problem: {e}"),
                        port: String::new(),
                        device_id: None,
                        last_heard: None,
                        config_error: Some(e),
                        paused: false,
                        service: None,
                    };
                    (None, v)
                }
            };
            let watch = bridge.as_ref().map(|b| b.pos.watch());
            app.manage(AppState {
                status: Mutex::new(initial.clone()),
                config_path: cfg_path,
                cfg: Mutex::new(loaded.clone().ok()),
                bridge,
                open: Mutex::new(Default::default()),
                lang: Mutex::new("zh".into()),
                paused: Mutex::new(false),
                last: Mutex::new(None),
                icon_set: std::sync::atomic::AtomicBool::new(false),
                told_at: Mutex::new(None),
                settings_lock: Mutex::default(),
            });
            build_tray(app, &initial)?;
            if let Some(rx) = watch {
                tauri::async_runtime::spawn(follow(app.handle().clone(), rx));
            } else if shared {
                let journal = loaded.as_ref().expect("config loaded").journal.clone();
                tauri::async_runtime::spawn(follow_shared(app.handle().clone(), journal));
            }
            if std::env::args().any(|a| a == "--open") || initial.config_error.is_some() {
                open_dashboard(app.handle(), if initial.config_error.is_some() { "settings" } else { "" });
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .expect("error while building the tray app")
        .run(|_app, event| {
            // Closing the dashboard destroys its webview and keeps the app in the tray; only
            // Quit exits.
            if let tauri::RunEvent::ExitRequested { api, code: None, .. } = event {
                api.prevent_exit();
            }
        });
}
