//! Settings as the tray app edits them: a flat form read from the config file, checked by the
//! same rules as the config loader, and written back without touching anything else in the file.
//!
//! Which settings apply at once: terminals, timeouts and notifications (the running engine takes
//! them); folders, the POS port, baud rate, device ID and socket need the bridge to start again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};

/// The fields of the settings window. Paths are shown as the config resolves them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsForm {
    pub inbox: String,
    pub outbox: String,
    pub error: String,
    /// Empty: the socket channel is off.
    pub socket_port: Option<u16>,
    /// A port name, or `usb:VID:PID[:SERIAL]` (the POS by USB identity).
    pub pos_port: String,
    /// Serial (COM port) or raw USB.
    #[serde(default)]
    pub transport: crate::transport::TransportKind,
    pub baud: u32,
    pub device_id: String,
    pub terminals: Vec<String>,
    pub scan_secs: u64,
    pub password_secs: u64,
    pub cancel_secs: u64,
    pub query_interval_secs: u64,
    /// How long an order waits for an unreachable POS before E_POS_UNAVAILABLE (0: not given,
    /// the current value is kept).
    #[serde(default)]
    pub pos_unavailable_secs: u64,
    pub notify: crate::config::Notify,
    /// The id of the key in use (the key itself is never shown back).
    #[serde(default)]
    pub key_id: Option<String>,
}

/// One field's problem, named as the form names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{}: {}", .0.field, .0.message)]
    Field(FieldError),
    #[error("cannot read or write the config file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the config file {0} is not valid TOML; fix it by hand first")]
    Toml(PathBuf),
}

impl SettingsError {
    pub fn field(&self) -> Option<&FieldError> {
        match self {
            SettingsError::Field(f) => Some(f),
            _ => None,
        }
    }
}

fn field_err(field: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Field(FieldError { field: field.to_string(), message: message.into() })
}

/// Which form field a config key belongs to.
fn form_field(config_field: &str) -> &str {
    match config_field {
        "pos.port" => "pos_port",
        "pos.transport" => "transport",
        "pos.baud" => "baud",
        "pos.device_id" => "device_id",
        "socket.port" | "socket.address" => "socket_port",
        "timeouts.scan_secs" => "scan_secs",
        "timeouts.password_secs" => "password_secs",
        "timeouts.cancel_secs" => "cancel_secs",
        "timeouts.query_interval_secs" => "query_interval_secs",
        "timeouts.pos_unavailable_secs" => "pos_unavailable_secs",
        other => other,
    }
}

impl SettingsForm {
    pub fn from_config(cfg: &Config) -> Self {
        let key_id = crate::keyfile::load(&cfg.key_file).ok().map(|k| k.id().to_string());
        SettingsForm {
            inbox: cfg.folders.inbox.display().to_string(),
            outbox: cfg.folders.outbox.display().to_string(),
            error: cfg.folders.error.display().to_string(),
            socket_port: cfg.socket.as_ref().map(|s| s.port),
            pos_port: cfg.pos.port.clone(),
            transport: cfg.pos.transport,
            baud: cfg.pos.baud,
            device_id: cfg.pos.device_id.clone(),
            terminals: cfg.terminals.iter().cloned().collect(),
            scan_secs: cfg.timeouts.scan.as_secs(),
            password_secs: cfg.timeouts.password.as_secs(),
            cancel_secs: cfg.timeouts.cancel.as_secs(),
            query_interval_secs: cfg.timeouts.query_interval.as_secs(),
            pos_unavailable_secs: cfg.timeouts.pos_unavailable.as_secs(),
            notify: cfg.notify.clone(),
            key_id,
        }
    }
}

fn read_table(path: &Path) -> Result<toml::Table, SettingsError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SettingsError::Io { path: path.to_path_buf(), source })?;
    text.parse::<toml::Table>().map_err(|_| SettingsError::Toml(path.to_path_buf()))
}

fn section<'a>(t: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let v = t.entry(name.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("just made a table")
}

/// The config file's text with the form applied, and the config it resolves to. Nothing is
/// written; every rule of the config loader applies, plus the form's own.
pub fn apply(config_path: &Path, form: &SettingsForm) -> Result<(String, Config), SettingsError> {
    let mut t = read_table(config_path)?;
    let terminals: Vec<String> =
        form.terminals.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let mut seen = std::collections::BTreeSet::new();
    for term in &terminals {
        if !seen.insert(term) {
            return Err(field_err("terminals", format!("{term} is listed twice")));
        }
    }
    for (name, v) in [("inbox", &form.inbox), ("outbox", &form.outbox), ("error", &form.error)] {
        if v.trim().is_empty() {
            return Err(field_err(name, "is empty"));
        }
    }
    let same = |a: &str, b: &str| Path::new(a.trim()) == Path::new(b.trim());
    if same(&form.inbox, &form.outbox) || same(&form.inbox, &form.error) || same(&form.outbox, &form.error) {
        return Err(field_err("outbox", "inbox, outbox and error must be three different folders"));
    }
    t.insert("terminals".into(), toml::Value::Array(terminals.into_iter().map(toml::Value::String).collect()));
    let f = section(&mut t, "folders");
    f.insert("inbox".into(), form.inbox.trim().into());
    f.insert("outbox".into(), form.outbox.trim().into());
    f.insert("error".into(), form.error.trim().into());
    let p = section(&mut t, "pos");
    p.insert("port".into(), form.pos_port.trim().into());
    p.insert("transport".into(), form.transport.as_str().into());
    p.insert("baud".into(), i64::from(form.baud).into());
    p.insert("device_id".into(), form.device_id.trim().into());
    let s = section(&mut t, "socket");
    match form.socket_port {
        Some(port) => {
            s.insert("port".into(), i64::from(port).into());
        }
        None => {
            s.remove("port");
        }
    }
    let to = section(&mut t, "timeouts");
    for (k, v) in [
        ("scan_secs", form.scan_secs),
        ("password_secs", form.password_secs),
        ("cancel_secs", form.cancel_secs),
        ("query_interval_secs", form.query_interval_secs),
    ] {
        to.insert(k.into(), (v.min(i64::MAX as u64) as i64).into());
    }
    // A form that does not carry it (an older front end) keeps what the config says.
    if form.pos_unavailable_secs > 0 {
        to.insert("pos_unavailable_secs".into(), (form.pos_unavailable_secs.min(i64::MAX as u64) as i64).into());
    }
    let n = section(&mut t, "notifications");
    for (k, v) in [
        ("success", form.notify.success),
        ("failure", form.notify.failure),
        ("unknown", form.notify.unknown),
        ("link", form.notify.link),
        ("rejected", form.notify.rejected),
    ] {
        n.insert(k.into(), v.into());
    }
    let text = toml::to_string(&t).map_err(|_| SettingsError::Toml(config_path.to_path_buf()))?;
    let base = config_path.parent().unwrap_or(Path::new("."));
    let cfg = Config::from_toml(&text, base).map_err(|e| match e {
        ConfigError::Field { field, reason } => field_err(form_field(field), reason),
        other => field_err("config", other.to_string()),
    })?;
    Ok((text, cfg))
}

/// Checks the form and, when it is valid, writes the config file (atomically, comments in the
/// sections it touches are not kept). Returns the new config.
pub fn save(config_path: &Path, form: &SettingsForm) -> Result<Config, SettingsError> {
    let (text, cfg) = apply(config_path, form)?;
    for dir in [&cfg.folders.inbox, &cfg.folders.outbox, &cfg.folders.error] {
        std::fs::create_dir_all(dir).map_err(|e| {
            let name = if dir == &cfg.folders.inbox {
                "inbox"
            } else if dir == &cfg.folders.outbox {
                "outbox"
            } else {
                "error"
            };
            field_err(name, format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    write_config(config_path, &text)?;
    Ok(cfg)
}

/// What changed between two configs needs the bridge to start again (folders, POS link, socket).
pub fn needs_restart(old: &Config, new: &Config) -> bool {
    old.folders != new.folders || old.pos != new.pos || old.socket != new.socket || old.journal != new.journal
}

/// Sets (or with None removes) the IT password's hash in `[tray] it_password_hash`, checking the
/// config still loads; the rest of the file is kept as it is, apart from comments.
pub fn set_it_password(config_path: &Path, hash: Option<&str>) -> Result<Config, SettingsError> {
    let mut t = read_table(config_path)?;
    let tray = section(&mut t, "tray");
    match hash {
        Some(h) => {
            tray.insert("it_password_hash".into(), h.into());
        }
        None => {
            tray.remove("it_password_hash");
        }
    }
    if tray.is_empty() {
        t.remove("tray");
    }
    let text = toml::to_string(&t).map_err(|_| SettingsError::Toml(config_path.to_path_buf()))?;
    let cfg = Config::from_toml(&text, config_path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| field_err("config", e.to_string()))?;
    write_config(config_path, &text)?;
    Ok(cfg)
}

/// Replaces the config file's text at once (a crash leaves the old file or the new one).
fn write_config(config_path: &Path, text: &str) -> Result<(), SettingsError> {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let name = config_path.file_name().and_then(|n| n.to_str()).unwrap_or("hisbridge.toml");
    crate::folders::write_atomic(dir, name, text.as_bytes())
        .map(drop)
        .map_err(|source| SettingsError::Io { path: config_path.to_path_buf(), source })
}

/// Imports a key file's text as the bridge's key: checked, then written readable by the owner
/// only, replacing the old key. Returns the new key's id; the key itself is never echoed.
pub fn import_key(cfg: &Config, text: &str) -> Result<String, SettingsError> {
    let key = crate::keyfile::parse(text).map_err(|reason| field_err("key", reason))?;
    let dir = cfg.key_file.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".import-{}.key", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    crate::keyfile::write_new(&tmp, &key).map_err(|e| field_err("key", e.to_string()))?;
    std::fs::rename(&tmp, &cfg.key_file).map_err(|source| SettingsError::Io { path: cfg.key_file.clone(), source })?;
    Ok(key.id().to_string())
}
