//! Configuration: a strict raw TOML layer (every field optional, unknown fields refused)
//! resolved into [`Config`] with the documented defaults (docs/configuration.md).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

fn field(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field { field, reason: reason.into() }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub terminals: Option<Vec<String>>,
    pub journal: Option<PathBuf>,
    #[serde(default)]
    pub folders: RawFolders,
    #[serde(default)]
    pub pos: RawPos,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub intake: RawIntake,
    #[serde(default)]
    pub socket: RawSocket,
    #[serde(default)]
    pub reconciliation: RawReconciliation,
    #[serde(default)]
    pub notifications: RawNotify,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub logs: RawLogs,
    pub hub: Option<RawHub>,
    #[serde(default)]
    pub tray: RawTray,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTray {
    pub it_password_hash: Option<String>,
}

/// The tray app's own settings (`[tray]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tray {
    /// The Argon2id hash of the IT password that guards the settings page (`hisbridge
    /// it-password`); None: the config file's ACL alone decides who may change them. Kept as
    /// written: a damaged one keeps the settings locked, it does not stop the bridge.
    pub it_password_hash: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub tls: Option<crate::hub::TlsMode>,
    pub ca_file: Option<PathBuf>,
    pub window: Option<String>,
    pub heartbeat_secs: Option<u64>,
    pub batch: Option<u64>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    pub folder: Option<PathBuf>,
    pub max_kb: Option<u64>,
    pub keep: Option<u64>,
}

/// Where the log files go and how long they last (`[logs]`, [`crate::logs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logs {
    pub folder: PathBuf,
    /// A log file is rolled over at this size (and at local midnight).
    pub max_bytes: u64,
    /// How many rolled-over files of each log are kept.
    pub keep: usize,
}

impl Logs {
    /// The logs of a data folder with the defaults: what is used before a config is read.
    pub fn of_data_dir(data_dir: &Path) -> Self {
        Logs { folder: data_dir.join("logs"), max_bytes: DEFAULT_LOG_KB * 1024, keep: DEFAULT_LOG_KEEP as usize }
    }
}

pub const DEFAULT_LOG_KB: u64 = 10 * 1024;
pub const DEFAULT_LOG_KEEP: u64 = 14;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub supervisor_terminals: Option<Vec<String>>,
}

/// Who may act on whose orders (`[policy]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Terminals that may cancel or refund an order another terminal took (a supervisor's desk).
    /// Every other terminal may cancel or refund only its own orders.
    pub supervisors: BTreeSet<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub success: Option<bool>,
    pub failure: Option<bool>,
    pub unknown: Option<bool>,
    pub link: Option<bool>,
    pub rejected: Option<bool>,
}

/// Which events the tray app shows as notifications (`[notifications]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Notify {
    /// A payment or refund succeeded (off by default: the POS already shows it).
    pub success: bool,
    /// A payment failed, with the reason in words.
    pub failure: bool,
    /// An outcome is unknown and needs attention.
    pub unknown: bool,
    /// The POS disconnected or came back.
    pub link: bool,
    /// The HIS sent an instruction that was refused.
    pub rejected: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconciliation {
    pub enabled: Option<bool>,
    pub folder: Option<PathBuf>,
    pub csv_folder: Option<PathBuf>,
    pub at: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSocket {
    pub port: Option<u16>,
    pub address: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFolders {
    pub inbox: Option<PathBuf>,
    pub outbox: Option<PathBuf>,
    pub work: Option<PathBuf>,
    pub archive: Option<PathBuf>,
    pub error: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPos {
    pub port: Option<String>,
    pub transport: Option<crate::transport::TransportKind>,
    pub baud: Option<u32>,
    pub device_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub scan_secs: Option<u64>,
    pub password_secs: Option<u64>,
    pub cancel_secs: Option<u64>,
    pub query_interval_secs: Option<u64>,
    pub pos_unavailable_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIntake {
    pub replay_window_secs: Option<u64>,
    pub rescan_ms: Option<u64>,
    pub stable_ms: Option<u64>,
    pub give_up_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    pub inbox: PathBuf,
    pub outbox: PathBuf,
    pub work: PathBuf,
    pub archive: PathBuf,
    pub error: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosSettings {
    /// As written: a port name or `usb:VID:PID[:SERIAL]` ([`crate::transport::PosTarget`]).
    pub port: String,
    pub target: crate::transport::PosTarget,
    pub transport: crate::transport::TransportKind,
    pub baud: u32,
    pub device_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// From SALE to the patient's code being scanned.
    pub scan: Duration,
    /// From "patient entering password" to the wallet's answer.
    pub password: Duration,
    /// From CANCEL to the POS confirming it.
    pub cancel: Duration,
    /// Between queries of an order whose outcome is unknown.
    pub query_interval: Duration,
    /// How long a queued order waits for a POS that cannot be reached before it fails
    /// (`E_POS_UNAVAILABLE`; nothing was sent).
    pub pos_unavailable: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    /// Instructions whose `sent_at` differs from the bridge's clock by more than this are
    /// refused (`E_STALE`); message ids are remembered at least this long (`E_REPLAY`).
    pub replay_window: Duration,
    /// The inbox is listed this often even without file-system events.
    pub rescan: Duration,
    /// A file's size and mtime must stay unchanged this long.
    pub stable: Duration,
    /// A file that still cannot be read this long after it appeared goes to the error folder.
    pub give_up: Duration,
}

/// The localhost socket channel; off unless a port is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub address: std::net::IpAddr,
    pub port: u16,
}

/// The daily reconciliation file (docs/his-interface.md §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub enabled: bool,
    /// Where the encrypted `RECON-YYYYMMDD.res` files go.
    pub folder: PathBuf,
    /// Where the finance CSV goes as well, when set.
    pub csv_folder: Option<PathBuf>,
    /// Local time of day after which the day's file is written.
    pub at: chrono::NaiveTime,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub notify: Notify,
    pub socket: Option<Socket>,
    pub reconciliation: Reconciliation,
    pub data_dir: PathBuf,
    pub key_file: PathBuf,
    pub terminals: BTreeSet<String>,
    pub policy: Policy,
    pub journal: PathBuf,
    pub folders: Folders,
    pub pos: PosSettings,
    pub timeouts: Timeouts,
    pub intake: Intake,
    pub logs: Logs,
    /// Replication to the hospital's hub; None when `[hub]` is absent.
    pub hub: Option<crate::hub::HubSettings>,
    pub tray: Tray,
}

pub const DEFAULT_BAUD: u32 = 115_200;

/// Where an installed bridge's config is, in the order it is looked for (docs/install.md §8):
/// on Windows the registry's `HKLM\Software\HISBridge\ConfigFile` (written by the MSI), then
/// `%ProgramData%\HISBridge\hisbridge.toml`; on Linux `/etc/hisbridge/hisbridge.toml`.
pub fn installed_candidates() -> Vec<PathBuf> {
    #[cfg(windows)]
    {
        let mut out = Vec::new();
        let hklm = winreg::RegKey::predef(winreg::enums::HKEY_LOCAL_MACHINE);
        if let Ok(v) = hklm.open_subkey("Software\\HISBridge").and_then(|k| k.get_value::<String, _>("ConfigFile")) {
            if !v.trim().is_empty() {
                out.push(PathBuf::from(v.trim()));
            }
        }
        let program_data =
            std::env::var_os("ProgramData").map(PathBuf::from).unwrap_or_else(|| "C:\\ProgramData".into());
        out.push(program_data.join("HISBridge").join("hisbridge.toml"));
        out
    }
    #[cfg(not(windows))]
    vec![PathBuf::from("/etc/hisbridge/hisbridge.toml")]
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let raw: RawConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::resolve(raw, base)
    }

    /// Applies defaults and checks every field. Relative paths are taken from `base`.
    pub fn resolve(raw: RawConfig, base: &Path) -> Result<Self, ConfigError> {
        let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let data_dir = abs(raw.data_dir.ok_or_else(|| field("data_dir", "is required"))?);
        let under = |p: Option<PathBuf>, name: &str| p.map(abs).unwrap_or_else(|| data_dir.join(name));
        let terminals: BTreeSet<String> =
            raw.terminals.ok_or_else(|| field("terminals", "is required"))?.into_iter().collect();
        if terminals.is_empty() {
            return Err(field("terminals", "lists no software terminal ID"));
        }
        for t in &terminals {
            crate::his::check_number("terminal_id", t).map_err(|e| field("terminals", format!("{t:?}: {e}")))?;
        }
        let supervisors: BTreeSet<String> = raw.policy.supervisor_terminals.unwrap_or_default().into_iter().collect();
        if let Some(t) = supervisors.iter().find(|t| !terminals.contains(*t)) {
            return Err(field("policy.supervisor_terminals", format!("{t:?} is not in `terminals`")));
        }
        let port = raw
            .pos
            .port
            .ok_or_else(|| field("pos.port", "is required (e.g. \"COM5\", \"/dev/ttyACM0\" or \"usb:2fb8:0001\")"))?;
        let target = crate::transport::PosTarget::parse(&port).map_err(|e| field("pos.port", e))?;
        let transport = raw.pos.transport.unwrap_or_default();
        crate::transport::check(&target, transport).map_err(|e| field("pos.transport", e))?;
        let port = port.trim().to_string();
        let baud = raw.pos.baud.unwrap_or(DEFAULT_BAUD);
        if ![9600, 19200, 38400, 57600, 115_200].contains(&baud) {
            return Err(field("pos.baud", format!("{baud} is not one of 9600, 19200, 38400, 57600, 115200")));
        }
        let device_id = raw.pos.device_id.ok_or_else(|| field("pos.device_id", "is required"))?;
        crate::his::check_number("device_id", &device_id).map_err(|e| field("pos.device_id", e.to_string()))?;
        let range = |v: Option<u64>, d: u64, name: &'static str, lo: u64, hi: u64| -> Result<u64, ConfigError> {
            let v = v.unwrap_or(d);
            if !(lo..=hi).contains(&v) {
                return Err(field(name, format!("{v} is outside {lo}..={hi}")));
            }
            Ok(v)
        };
        let secs = |v, d, name, lo, hi| range(v, d, name, lo, hi).map(Duration::from_secs);
        let ms = |v, d, name, lo, hi| range(v, d, name, lo, hi).map(Duration::from_millis);
        let socket = match raw.socket.port {
            None => None,
            Some(0) => return Err(field("socket.port", "must be 1..=65535")),
            Some(port) => {
                let text = raw.socket.address.unwrap_or_else(|| "127.0.0.1".into());
                let address: std::net::IpAddr =
                    text.parse().map_err(|_| field("socket.address", format!("{text:?} is not an IP address")))?;
                if !address.is_loopback() {
                    return Err(field(
                        "socket.address",
                        format!(
                            "{address} is not a loopback address; the socket channel listens on 127.0.0.1 or ::1 only"
                        ),
                    ));
                }
                Some(Socket { address, port })
            }
        };
        let at_text = raw.reconciliation.at.unwrap_or_else(|| "23:50".into());
        let at = chrono::NaiveTime::parse_from_str(&at_text, "%H:%M").map_err(|_| {
            field("reconciliation.at", format!("{at_text:?} is not a time of day HH:MM (e.g. \"23:50\")"))
        })?;
        let reconciliation = Reconciliation {
            enabled: raw.reconciliation.enabled.unwrap_or(true),
            folder: under(raw.reconciliation.folder, "reconciliation"),
            csv_folder: raw.reconciliation.csv_folder.map(abs),
            at,
        };
        let n = &raw.notifications;
        let notify = Notify {
            success: n.success.unwrap_or(false),
            failure: n.failure.unwrap_or(true),
            unknown: n.unknown.unwrap_or(true),
            link: n.link.unwrap_or(true),
            rejected: n.rejected.unwrap_or(true),
        };
        let logs = Logs {
            folder: under(raw.logs.folder, "logs"),
            max_bytes: range(raw.logs.max_kb, DEFAULT_LOG_KB, "logs.max_kb", 64, 1024 * 1024)? * 1024,
            keep: range(raw.logs.keep, DEFAULT_LOG_KEEP, "logs.keep", 1, 365)? as usize,
        };
        let hub = match raw.hub {
            None => None,
            Some(h) => Some({
                let url =
                    crate::hub::check_url(h.url.as_deref().ok_or_else(|| field("hub.url", "is required in [hub]"))?)
                        .map_err(|e| field("hub.url", e))?;
                crate::hub::HubSettings {
                    tls: h.tls.unwrap_or_else(|| crate::hub::TlsMode::default_for(&url)),
                    url,
                    password_file: h.password_file.map(abs),
                    ca_file: h.ca_file.map(abs),
                    window: match h.window.map(|w| w.trim().to_string()) {
                        Some(w) if w.is_empty() || w.chars().count() > 64 => {
                            return Err(field("hub.window", "must be 1 to 64 characters"))
                        }
                        Some(w) => w,
                        None => crate::setup::computer_name(),
                    },
                    heartbeat: secs(h.heartbeat_secs, 30, "hub.heartbeat_secs", 5, 3600)?,
                    batch: range(h.batch, 500, "hub.batch", 1, 10_000)? as usize,
                    timeout: secs(h.timeout_secs, 30, "hub.timeout_secs", 1, 600)?,
                }
            }),
        };
        // Not checked here: a damaged hash must not stop the bridge (payments) from starting; the
        // tray's lock fails closed on it instead (`password::SettingsLock`).
        let it_password_hash = raw.tray.it_password_hash.map(|h| h.trim().to_string()).filter(|h| !h.is_empty());
        Ok(Config {
            hub,
            tray: Tray { it_password_hash },
            logs,
            notify,
            reconciliation,
            socket,
            key_file: under(raw.key_file, "hisbridge.key"),
            journal: under(raw.journal, "journal.sqlite"),
            folders: Folders {
                inbox: under(raw.folders.inbox, "inbox"),
                outbox: under(raw.folders.outbox, "outbox"),
                work: under(raw.folders.work, "work"),
                archive: under(raw.folders.archive, "archive"),
                error: under(raw.folders.error, "error"),
            },
            data_dir,
            terminals,
            policy: Policy { supervisors },
            pos: PosSettings { port, target, transport, baud, device_id },
            timeouts: Timeouts {
                scan: secs(raw.timeouts.scan_secs, 90, "timeouts.scan_secs", 1, 600)?,
                password: secs(raw.timeouts.password_secs, 60, "timeouts.password_secs", 1, 600)?,
                cancel: secs(raw.timeouts.cancel_secs, 30, "timeouts.cancel_secs", 1, 600)?,
                query_interval: secs(raw.timeouts.query_interval_secs, 5, "timeouts.query_interval_secs", 1, 600)?,
                pos_unavailable: secs(
                    raw.timeouts.pos_unavailable_secs,
                    120,
                    "timeouts.pos_unavailable_secs",
                    10,
                    3600,
                )?,
            },
            intake: Intake {
                replay_window: secs(raw.intake.replay_window_secs, 600, "intake.replay_window_secs", 10, 86_400)?,
                rescan: ms(raw.intake.rescan_ms, 1000, "intake.rescan_ms", 50, 60_000)?,
                stable: ms(raw.intake.stable_ms, 200, "intake.stable_ms", 0, 10_000)?,
                give_up: secs(raw.intake.give_up_secs, 30, "intake.give_up_secs", 1, 3600)?,
            },
        })
    }

    pub fn from_toml(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: PathBuf::from("<text>"), message: e.to_string() })?;
        Self::resolve(raw, base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "data_dir = \"/d\"\nterminals = [\"W01\"]\n[pos]\nport = \"COM5\"\ndevice_id = \"POS-1\"\n";

    #[test]
    fn defaults_fill_in() {
        let c = Config::from_toml(MIN, Path::new("/")).unwrap();
        assert_eq!(c.folders.inbox, PathBuf::from("/d/inbox"));
        assert_eq!(c.pos.baud, 115_200);
        assert_eq!(c.timeouts.scan, Duration::from_secs(90));
        assert_eq!(c.key_file, PathBuf::from("/d/hisbridge.key"));
        assert_eq!(c.reconciliation.folder, PathBuf::from("/d/reconciliation"));
        assert_eq!(c.reconciliation.at, chrono::NaiveTime::from_hms_opt(23, 50, 0).unwrap());
    }

    #[test]
    fn the_pos_by_usb_identity() {
        use crate::transport::{PosTarget, TransportKind, UsbId};
        let c = Config::from_toml(&MIN.replace("COM5", "usb:2fb8:0001:N5"), Path::new("/")).unwrap();
        assert_eq!(c.pos.target, PosTarget::Usb(UsbId { vid: 0x2fb8, pid: 1, serial: Some("N5".into()) }));
        assert_eq!(c.pos.transport, TransportKind::Serial);
        let c = Config::from_toml(
            &format!("{}transport = \"usb\"\n", MIN.replace("COM5", "usb:2fb8:0001")),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(c.pos.transport, TransportKind::Usb);
    }

    #[test]
    fn errors_name_the_field() {
        let e = |t: &str| Config::from_toml(t, Path::new("/")).unwrap_err().to_string();
        assert!(e("terminals=[\"W\"]\n").contains("`data_dir`"));
        assert!(e(&MIN.replace("port = \"COM5\"\n", "")).contains("`pos.port`"));
        assert!(e(&format!("{MIN}baud = 1234\n")).contains("`pos.baud`"));
        assert!(e(&format!("{MIN}transport = \"usb\"\n")).contains("`pos.transport`"));
        assert!(e(&format!("{MIN}transport = \"bluetooth\"\n")).contains("transport"));
        assert!(e(&MIN.replace("COM5", "usb:zz:1")).contains("`pos.port`"));
        assert!(e(&format!("{MIN}[timeouts]\nscan_secs = 0\n")).contains("`timeouts.scan_secs`"));
        assert!(e(&MIN.replace("W01", "W 01")).contains("`terminals`"));
        assert!(e(&format!("{MIN}colour = 1\n")).contains("colour"));
        assert!(e(&MIN.replace("terminals = [\"W01\"]", "terminals = []")).contains("`terminals`"));
        assert!(e(&format!("{MIN}[socket]\nport = 9817\naddress = \"0.0.0.0\"\n")).contains("`socket.address`"));
        assert!(e(&format!("{MIN}[socket]\nport = 9817\naddress = \"192.168.1.10\"\n")).contains("not a loopback"));
        assert!(e(&format!("{MIN}[reconciliation]\nat = \"25:00\"\n")).contains("`reconciliation.at`"));
    }
}
