//! What an installer does on a PC besides copying programs: the data folder and its subfolders,
//! the config file from install properties, the shared key, and (on Windows) folder permissions.
//! `hisbridge setup` runs this from the MSI (installer/hisbridge.wxs) and by hand.
//!
//! Upgrades and repeated runs keep what is there: an existing config keeps every key the run
//! does not set, an existing key stays unless a new key file is given. Nothing is ever deleted.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError};

/// Install properties; `None` (or an empty string from an unset MSI property) leaves the value
/// as it is.
#[derive(Debug, Clone, Default)]
pub struct SetupArgs {
    pub data_dir: PathBuf,
    pub port: Option<String>,
    pub transport: Option<String>,
    pub baud: Option<u32>,
    pub device_id: Option<String>,
    /// Comma- or space-separated software terminal IDs.
    pub terminals: Option<String>,
    pub socket_port: Option<u16>,
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot create {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("the existing config {0} is not valid TOML; fix or remove it first")]
    Toml(PathBuf),
    #[error("install property for `{field}`: {reason}")]
    Property { field: String, reason: String },
    #[error("key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

/// What setup did, line by line, for the installer's log.
#[derive(Debug, Default)]
pub struct SetupReport {
    pub lines: Vec<String>,
    /// The config is complete (the bridge can start); otherwise what is missing.
    pub config_problem: Option<String>,
    pub config: PathBuf,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub const CONFIG_NAME: &str = "hisbridge.toml";
pub const KEY_NAME: &str = "hisbridge.key";
/// Folders under the data folder (the config's defaults), plus the logs folder.
pub const SUBFOLDERS: [&str; 7] = ["inbox", "outbox", "work", "archive", "error", "reconciliation", "logs"];

/// One PC's values from a roll-out table (docs/install.md §2 "Many PCs"): a CSV file with a
/// `computer` column and any of `device_id`, `terminals`, `port`, `transport`, `baud`,
/// `socket_port` (or the MSI's property names: `DEVICEID`, `POSPORT`...), one row per PC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PcValues {
    pub port: Option<String>,
    pub transport: Option<String>,
    pub baud: Option<String>,
    pub device_id: Option<String>,
    pub terminals: Option<String>,
    pub socket_port: Option<String>,
}

/// The row of `table` (UTF-8, with or without BOM, or GBK as Excel saves it; comma- or
/// semicolon-separated) for `computer` (case does not matter). A column the table does not know,
/// two rows for one PC, or no row for this PC is an error: a PC never installs with another's
/// POS.
pub fn per_pc(table: &[u8], computer: &str) -> Result<PcValues, SetupError> {
    let bad = |reason: String| SetupError::Property { field: "pc table".into(), reason };
    let text = crate::statement::decode(table).map_err(|e| bad(e.to_string()))?;
    let first = text.lines().next().unwrap_or_default();
    let delimiter = if first.contains(';') && !first.contains(',') { b';' } else { b',' };
    let mut rd = csv::ReaderBuilder::new().delimiter(delimiter).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers = rd.headers().map_err(|e| bad(e.to_string()))?.clone();
    let mut columns = Vec::new();
    for h in &headers {
        let key = h.to_ascii_lowercase().replace(['_', ' ', '-'], "");
        let col = match key.as_str() {
            "computer" | "computername" | "pc" => "computer",
            "deviceid" => "device_id",
            "terminals" => "terminals",
            "port" | "posport" => "port",
            "transport" | "postransport" => "transport",
            "baud" => "baud",
            "socketport" => "socket_port",
            _ => {
                return Err(bad(format!(
                    "column {h:?} is not one of computer, device_id, terminals, port, transport, baud, socket_port"
                )))
            }
        };
        columns.push(col);
    }
    let Some(at) = columns.iter().position(|c| *c == "computer") else {
        return Err(bad("no `computer` column".into()));
    };
    let mut found: Option<(usize, PcValues)> = None;
    for (i, row) in rd.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| bad(format!("line {line}: {e}")))?;
        if !row.get(at).unwrap_or_default().eq_ignore_ascii_case(computer.trim()) {
            continue;
        }
        if let Some((first, _)) = &found {
            return Err(bad(format!("{computer} is on lines {first} and {line}")));
        }
        let mut v = PcValues::default();
        for (col, cell) in columns.iter().zip(row.iter()) {
            let cell = Some(cell.to_string()).filter(|c| !c.is_empty());
            match *col {
                "device_id" => v.device_id = cell,
                // W01;W02 or W01 W02 in one cell (a comma would need quotes).
                "terminals" => v.terminals = cell.map(|c| c.replace(';', ",")),
                "port" => v.port = cell,
                "transport" => v.transport = cell,
                "baud" => v.baud = cell,
                "socket_port" => v.socket_port = cell,
                _ => {}
            }
        }
        found = Some((line, v));
    }
    found.map(|(_, v)| v).ok_or_else(|| bad(format!("this PC ({computer}) has no row")))
}

/// This PC's name as Windows gives it (`COMPUTERNAME`), else the host name.
pub fn computer_name() -> String {
    std::env::var("COMPUTERNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn run(a: &SetupArgs) -> Result<SetupReport, SetupError> {
    let mut report = SetupReport::default();
    let dir = &a.data_dir;
    for sub in std::iter::once("").chain(SUBFOLDERS) {
        let p = if sub.is_empty() { dir.clone() } else { dir.join(sub) };
        std::fs::create_dir_all(&p).map_err(|source| SetupError::Io { path: p.clone(), source })?;
    }
    report.lines.push(format!("data folder {} with {}", dir.display(), SUBFOLDERS.join(", ")));

    let cfg_path = dir.join(CONFIG_NAME);
    report.config = cfg_path.clone();
    let existed = cfg_path.exists();
    let mut t: toml::Table = if existed {
        let text =
            std::fs::read_to_string(&cfg_path).map_err(|source| SetupError::Io { path: cfg_path.clone(), source })?;
        text.parse().map_err(|_| SetupError::Toml(cfg_path.clone()))?
    } else {
        let mut t = toml::Table::new();
        t.insert("data_dir".into(), dir.display().to_string().into());
        t.insert("terminals".into(), toml::Value::Array(Vec::new()));
        t
    };
    // Each value given is checked by itself first, so a bad one is refused even while other
    // required values are still missing.
    let bad = |field: &str, reason: String| SetupError::Property { field: field.into(), reason };
    if let Some(p) = given(&a.port) {
        crate::transport::PosTarget::parse(p).map_err(|e| bad("pos.port", e))?;
    }
    if let Some(tr) = given(&a.transport) {
        if !matches!(tr, "serial" | "usb") {
            return Err(bad("pos.transport", format!("{tr:?} is not \"serial\" or \"usb\"")));
        }
    }
    if let Some(d) = given(&a.device_id) {
        crate::his::check_number("device_id", d).map_err(|e| bad("pos.device_id", e.to_string()))?;
    }
    let mut changed = Vec::new();
    if let Some(terms) = given(&a.terminals) {
        let list: Vec<toml::Value> =
            terms.split([',', ' ', ';']).map(str::trim).filter(|s| !s.is_empty()).map(|s| s.into()).collect();
        t.insert("terminals".into(), toml::Value::Array(list));
        changed.push("terminals");
    }
    {
        let pos = section(&mut t, "pos");
        if !existed {
            pos.entry("port").or_insert_with(|| "".into());
            pos.entry("device_id").or_insert_with(|| "".into());
        }
        if let Some(p) = given(&a.port) {
            pos.insert("port".into(), p.into());
            changed.push("pos.port");
        }
        if let Some(tr) = given(&a.transport) {
            pos.insert("transport".into(), tr.into());
            changed.push("pos.transport");
        }
        if let Some(b) = a.baud {
            pos.insert("baud".into(), i64::from(b).into());
            changed.push("pos.baud");
        }
        if let Some(d) = given(&a.device_id) {
            pos.insert("device_id".into(), d.into());
            changed.push("pos.device_id");
        }
    }
    if let Some(port) = a.socket_port {
        section(&mut t, "socket").insert("port".into(), i64::from(port).into());
        changed.push("socket.port");
    }
    let text = toml::to_string(&t).map_err(|_| SetupError::Toml(cfg_path.clone()))?;
    // A value given now must be valid; values left empty on a first install are IT's to fill in
    // (the tray app opens its settings on a config it cannot use).
    let problem = match Config::from_toml(&text, dir) {
        Ok(_) => None,
        Err(ConfigError::Field { field, reason }) => {
            let given_now = changed.iter().any(|c| *c == field || (field == "terminals" && *c == "terminals"));
            if given_now {
                return Err(SetupError::Property { field: field.to_string(), reason });
            }
            Some(format!("`{field}` {reason}"))
        }
        Err(e) if !changed.is_empty() => return Err(bad("config", e.to_string())),
        Err(e) => Some(e.to_string()),
    };
    if !existed || !changed.is_empty() {
        crate::folders::write_atomic(dir, CONFIG_NAME, text.as_bytes())
            .map_err(|source| SetupError::Io { path: cfg_path.clone(), source })?;
    }
    report.lines.push(match (existed, changed.is_empty()) {
        (false, true) => format!("config {} written with the defaults", cfg_path.display()),
        (false, false) => format!("config {} written ({})", cfg_path.display(), changed.join(", ")),
        (true, true) => format!("config {} kept as it is", cfg_path.display()),
        (true, false) => format!("config {} kept; set {}", cfg_path.display(), changed.join(", ")),
    });
    report.config_problem = problem;

    let key_path = dir.join(KEY_NAME);
    match &a.key_file {
        Some(src) if !src.as_os_str().is_empty() => {
            let text = std::fs::read_to_string(src)
                .map_err(|e| SetupError::Key { path: src.clone(), reason: e.to_string() })?;
            let key = crate::keyfile::parse(&text).map_err(|reason| SetupError::Key { path: src.clone(), reason })?;
            let tmp = dir.join(format!(".setup-{}.key", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            crate::keyfile::write_new(&tmp, &key)
                .map_err(|e| SetupError::Key { path: tmp.clone(), reason: e.to_string() })?;
            std::fs::rename(&tmp, &key_path).map_err(|source| SetupError::Io { path: key_path.clone(), source })?;
            report.lines.push(format!("key {} imported to {}", key.id(), key_path.display()));
        }
        _ if key_path.exists() => report.lines.push(format!("key {} kept", key_path.display())),
        _ => report.lines.push(format!(
            "no key yet: import the key agreed with the HIS vendor (tray settings, or setup --key-file) to {}",
            key_path.display()
        )),
    }
    Ok(report)
}

fn section<'a>(t: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    let v = t.entry(name.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !v.is_table() {
        *v = toml::Value::Table(toml::Table::new());
    }
    v.as_table_mut().expect("just made a table")
}

/// The folder permissions on Windows, as `icacls` argument lists (docs/security.md, "ACL model").
///
/// - The data folder and everything in it: SYSTEM and Administrators only (inheritance from
///   ProgramData removed), so no other account can change the journal, work/, archive/ or error/.
/// - The HIS account (`his_account`, or the local Users group when none is named: the HIS then
///   runs as whoever is logged on): Modify on `inbox` (write instructions) and `outbox` (read
///   and remove results), read on `reconciliation` and on the key (it seals with it).
/// - Everyone local: read on `status.json` and `logs` (the tray app's status-only mode).
/// - Without the service (`service` false) the tray app runs the bridge as the logged-on cashier,
///   who then needs Modify on the whole data folder: that mode trusts every local user.
pub fn acl_commands(data_dir: &Path, his_account: Option<&str>, service: bool) -> Vec<Vec<String>> {
    const SYSTEM: &str = "*S-1-5-18";
    const ADMINS: &str = "*S-1-5-32-544";
    const USERS: &str = "*S-1-5-32-545";
    let d = |p: &Path| p.display().to_string();
    let his = his_account.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(USERS).to_string();
    let grant = |path: &Path, who: &str, rights: &str| {
        vec![d(path), "/grant".into(), format!("{who}:{rights}"), "/C".into(), "/Q".into()]
    };
    let mut cmds = vec![vec![
        d(data_dir),
        "/inheritance:r".into(),
        "/grant:r".into(),
        format!("{SYSTEM}:(OI)(CI)F"),
        format!("{ADMINS}:(OI)(CI)F"),
        format!("{USERS}:RX"),
        "/T".into(),
        "/C".into(),
        "/Q".into(),
    ]];
    if !service {
        cmds.push(grant(data_dir, USERS, "(OI)(CI)M"));
    }
    cmds.push(grant(&data_dir.join("inbox"), &his, "(OI)(CI)M"));
    cmds.push(grant(&data_dir.join("outbox"), &his, "(OI)(CI)M"));
    cmds.push(grant(&data_dir.join("reconciliation"), &his, "(OI)(CI)RX"));
    cmds.push(grant(&data_dir.join(KEY_NAME), &his, "R"));
    cmds.push(grant(&data_dir.join("logs"), USERS, "(OI)(CI)RX"));
    cmds.push(grant(&data_dir.join("status.json"), USERS, "R"));
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pc_finds_its_own_row_of_the_roll_out_table() {
        let table = "computer,DEVICEID,terminals,POSPORT\nCASHIER-01,POS-0001,W01;W02,COM5\ncashier-02,POS-0002,W03,usb:2fb8:0001\n";
        let v = per_pc(table.as_bytes(), "cashier-01").unwrap();
        assert_eq!(v.device_id.as_deref(), Some("POS-0001"));
        assert_eq!(v.terminals.as_deref(), Some("W01,W02"));
        assert_eq!(v.port.as_deref(), Some("COM5"));
        assert_eq!(v.transport, None);
        let v = per_pc(table.as_bytes(), "CASHIER-02").unwrap();
        assert_eq!(v.port.as_deref(), Some("usb:2fb8:0001"));
        // Excel's GBK with semicolons, a BOM-less header: the same values.
        let (gbk, _, _) = encoding_rs::GBK.encode("computer;device_id;terminals\n门诊-03;POS-0003;W05\n");
        assert_eq!(per_pc(&gbk, "门诊-03").unwrap().device_id.as_deref(), Some("POS-0003"));
        let err = |t: &str, pc: &str| per_pc(t.as_bytes(), pc).unwrap_err().to_string();
        assert!(err(table, "CASHIER-09").contains("CASHIER-09"), "no row: an error, not another PC's values");
        assert!(err("computer,device\nA,B\n", "A").contains("\"device\""));
        assert!(err("computer,device_id\nA,P1\na,P2\n", "A").contains("lines 2 and 3"));
        assert!(err("device_id\nP1\n", "A").contains("computer"));
    }

    #[test]
    fn first_install_then_upgrade_keeps_what_is_there() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("HISBridge");
        // First install without properties: folders, an incomplete config, no key.
        let r = run(&SetupArgs { data_dir: dir.clone(), ..Default::default() }).unwrap();
        for s in SUBFOLDERS {
            assert!(dir.join(s).is_dir(), "{s}");
        }
        assert!(r.config_problem.as_deref().unwrap().contains("terminals"), "{:?}", r.config_problem);
        assert!(r.lines.iter().any(|l| l.starts_with("no key yet")));

        // Properties given: the config is complete, the key imported.
        let key = crate::envelope::Key::generate("K7").unwrap();
        let key_src = tmp.path().join("agreed.key");
        std::fs::write(&key_src, crate::keyfile::to_text(&key)).unwrap();
        let r = run(&SetupArgs {
            data_dir: dir.clone(),
            port: Some("COM5".into()),
            device_id: Some("POS-0001".into()),
            terminals: Some("W01, W02".into()),
            socket_port: Some(9817),
            key_file: Some(key_src),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.config_problem, None);
        let cfg = Config::load(&dir.join(CONFIG_NAME)).unwrap();
        assert_eq!(cfg.pos.port, "COM5");
        assert_eq!(cfg.terminals.len(), 2);
        assert_eq!(cfg.socket.unwrap().port, 9817);
        assert_eq!(cfg.folders.inbox, dir.join("inbox"));
        assert_eq!(crate::keyfile::load(&dir.join(KEY_NAME)).unwrap().id(), "K7");

        // An upgrade (no properties, empty MSI properties): everything kept, byte for byte.
        let before = std::fs::read(dir.join(CONFIG_NAME)).unwrap();
        let r = run(&SetupArgs {
            data_dir: dir.clone(),
            port: Some("".into()),
            terminals: Some(" ".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(std::fs::read(dir.join(CONFIG_NAME)).unwrap(), before);
        assert!(r.lines.iter().any(|l| l.contains("kept as it is")));
        assert!(r.lines.iter().any(|l| l.starts_with("key") && l.ends_with("kept")));

        // A bad property fails and changes nothing.
        let e =
            run(&SetupArgs { data_dir: dir.clone(), port: Some("usb:zz".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("pos.port"), "{e}");
        assert_eq!(std::fs::read(dir.join(CONFIG_NAME)).unwrap(), before);
        let e =
            run(&SetupArgs { data_dir: dir.clone(), transport: Some("usb".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("pos.transport"), "{e}");
        let e = run(&SetupArgs { data_dir: dir.clone(), transport: Some("wifi".into()), ..Default::default() })
            .unwrap_err();
        assert!(e.to_string().contains("pos.transport"), "{e}");
        let fresh = tmp.path().join("other");
        let e = run(&SetupArgs { data_dir: fresh, device_id: Some("POS 1".into()), ..Default::default() }).unwrap_err();
        assert!(e.to_string().contains("pos.device_id"), "{e}");
    }

    #[test]
    fn acls_keep_the_journal_to_the_bridge_and_give_the_his_only_its_folders() {
        let root = Path::new("C:/ProgramData/HISBridge");
        let c = acl_commands(root, Some("HOSP\\his-svc"), true);
        assert!(c[0].contains(&"/inheritance:r".to_string()), "{c:?}");
        let users_modify = |c: &[Vec<String>]| c.iter().any(|a| a.iter().any(|x| x == "*S-1-5-32-545:(OI)(CI)M"));
        assert!(!users_modify(&c), "with the service, local users cannot change the journal");
        let his: Vec<&Vec<String>> = c.iter().filter(|a| a.iter().any(|x| x.starts_with("HOSP\\his-svc:"))).collect();
        let paths: Vec<&str> = his.iter().map(|a| a[0].as_str()).collect();
        assert!(paths
            .iter()
            .all(|p| ["inbox", "outbox", "reconciliation", "hisbridge.key"].iter().any(|s| p.ends_with(s))));
        assert!(!paths.iter().any(|p| p.ends_with("HISBridge")), "never the data folder itself");
        // Without the service the cashier runs the bridge and needs it all.
        assert!(users_modify(&acl_commands(root, None, false)));
        // No HIS account named: the logged-on users are the HIS.
        let c = acl_commands(root, None, true);
        assert!(c.iter().any(|a| a[0].ends_with("inbox") && a[2] == "*S-1-5-32-545:(OI)(CI)M"));
    }
}
