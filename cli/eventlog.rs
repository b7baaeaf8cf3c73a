//! The Windows Application event log, source `HISBridge`: the service's start, stop, failure
//! and every attention state, where IT's monitoring looks first, also when the config cannot be
//! read and so no log file can be opened. The MSI (and `hisbridge service install`) registers the
//! source with .NET's `EventLogMessages.dll` as its message file, which shows each entry's text
//! as written. Elsewhere than Windows these are no-ops.

#[cfg_attr(not(windows), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// The service runs and drives the POS.
    Started = 1,
    /// The service stopped as asked.
    Stopped = 2,
    /// The service could not start (the config, the key, the journal) or stopped on an error.
    Failed = 3,
    /// The engine needs a person (journal, history lost, files, POS contradiction).
    Attention = 4,
    /// That attention is over.
    Resolved = 5,
}

#[cfg_attr(not(windows), allow(dead_code))]
pub const SOURCE: &str = "HISBridge";

/// The registry key that registers the source, and its message file.
#[cfg_attr(not(windows), allow(dead_code))]
pub const SOURCE_KEY: &str = "SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\HISBridge";
#[cfg_attr(not(windows), allow(dead_code))]
pub const MESSAGE_FILE: &str = "%SystemRoot%\\Microsoft.NET\\Framework64\\v4.0.30319\\EventLogMessages.dll";

/// Writes one entry; whether it was written goes to the log file (an event log that refuses is
/// no reason to stop a service).
#[cfg(windows)]
pub fn write(event: Event, text: &str) {
    use windows_sys::Win32::System::EventLog::{
        DeregisterEventSource, RegisterEventSourceW, ReportEventW, EVENTLOG_ERROR_TYPE, EVENTLOG_INFORMATION_TYPE,
        EVENTLOG_WARNING_TYPE,
    };
    let kind = match event {
        Event::Failed => EVENTLOG_ERROR_TYPE,
        Event::Attention => EVENTLOG_WARNING_TYPE,
        _ => EVENTLOG_INFORMATION_TYPE,
    };
    let source: Vec<u16> = SOURCE.encode_utf16().chain([0]).collect();
    let message: Vec<u16> = text.encode_utf16().chain([0]).collect();
    let strings = [message.as_ptr()];
    // SAFETY: both strings are NUL-terminated UTF-16 that outlive the calls; the handle is
    // checked and released here.
    let ok = unsafe {
        let h = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
        if h.is_null() {
            false
        } else {
            let r =
                ReportEventW(h, kind, 0, event as u32, std::ptr::null_mut(), 1, 0, strings.as_ptr(), std::ptr::null());
            DeregisterEventSource(h);
            r != 0
        }
    };
    if ok {
        tracing::info!(event = event as u32, "Application event log: {text}");
    } else {
        tracing::warn!(
            event = event as u32,
            "not written to the Application event log: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(windows))]
#[allow(dead_code)]
pub fn write(_event: Event, _text: &str) {}

/// Registers the source (what the MSI does), for `hisbridge service install` by hand.
#[cfg(windows)]
pub fn register() -> std::io::Result<()> {
    let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
    let (key, _) = hklm.create_subkey(SOURCE_KEY)?;
    key.set_raw_value(
        "EventMessageFile",
        &winreg::RegValue {
            bytes: MESSAGE_FILE.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect::<Vec<u8>>().into(),
            vtype: winreg::enums::REG_EXPAND_SZ,
        },
    )?;
    key.set_value("TypesSupported", &7u32)
}
