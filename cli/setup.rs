//! `hisbridge setup`: glue over `hisbridge_core::setup`, plus what only this program can do on
//! Windows (folder permissions with icacls, the service). The MSI passes its properties here;
//! unset properties arrive as empty strings and count as not given.

use std::io::Write;
use std::path::PathBuf;

#[cfg(not(windows))]
use anyhow::bail;
#[cfg(windows)]
use anyhow::Context;
use anyhow::Result;
use hisbridge_core::setup::{self, SetupArgs};

#[derive(clap::Args)]
pub struct SetupCli {
    /// The data folder (config, journal, key, logs, drop folders).
    #[arg(long)]
    data_dir: PathBuf,
    /// `[pos] port`: COM5, or usb:VID:PID[:SERIAL].
    #[arg(long)]
    port: Option<String>,
    /// `[pos] transport`: serial or usb.
    #[arg(long)]
    transport: Option<String>,
    /// The POS serial line's speed (9600 to 115200; empty: 115200).
    #[arg(long)]
    baud: Option<String>,
    /// The POS's device ID (what it reports in HELLO).
    #[arg(long)]
    device_id: Option<String>,
    /// Software terminal IDs, comma-separated.
    #[arg(long)]
    terminals: Option<String>,
    /// The localhost socket channel's port.
    #[arg(long)]
    socket_port: Option<String>,
    /// The key file agreed with the HIS vendor, imported into the data folder.
    #[arg(long)]
    key_file: Option<String>,
    /// Windows: the account the HIS writes the inbox with, when it is not a local user.
    #[arg(long)]
    his_account: Option<String>,
    /// Windows: `1` installs (and, with a complete config and a key, starts) the service.
    #[arg(long)]
    service: Option<String>,
    /// Windows: stop and remove the service (the MSI's uninstall does this).
    #[arg(long)]
    remove_service: bool,
    /// Leave folder permissions alone.
    #[arg(long)]
    no_acl: bool,
    /// A folder to copy the HIS client library into (the HIS program's own folder), so the HIS
    /// finds `hisbridge_client.dll` beside its executable.
    #[arg(long)]
    his_dll_dir: Option<String>,
    /// Which build goes there: `x86` (32-bit HIS programs, the default) or `x64`.
    #[arg(long)]
    his_dll_arch: Option<String>,
    /// A roll-out table (CSV, one row per PC: computer, device_id, terminals, port...): this PC's
    /// row fills the values not given here.
    #[arg(long, value_name = "CSV")]
    pc_table: Option<String>,
    /// The computer name to look up in `--pc-table` (default: this PC's).
    #[arg(long)]
    computer: Option<String>,
}

/// Copies `sdk\<arch>\hisbridge_client.dll` from beside this program into `dir`.
fn copy_his_dll(dir: &str, arch: Option<&str>, lines: &mut Vec<String>) -> Result<()> {
    let arch = match arch.unwrap_or("x86") {
        "x86" | "32" => "x86",
        "x64" | "64" => "x64",
        other => anyhow::bail!("HISDLLARCH {other:?}: x86 (32-bit HIS) or x64"),
    };
    let exe = std::env::current_exe()?;
    let from = exe.parent().unwrap_or(std::path::Path::new(".")).join("sdk").join(arch).join("hisbridge_client.dll");
    let to_dir = PathBuf::from(dir.trim_end_matches(['\\', '/']));
    std::fs::create_dir_all(&to_dir).map_err(|e| anyhow::anyhow!("{}: {e}", to_dir.display()))?;
    let to = to_dir.join("hisbridge_client.dll");
    std::fs::copy(&from, &to).map_err(|e| anyhow::anyhow!("copy {} to {}: {e}", from.display(), to.display()))?;
    lines.push(format!("{arch} hisbridge_client.dll copied to {}", to.display()));
    Ok(())
}

fn some(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty())
}

fn number<T: std::str::FromStr>(v: Option<String>, what: &str) -> Result<Option<T>> {
    match some(v) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| anyhow::anyhow!("{what}: {s:?} is not a number")),
    }
}

pub fn run(a: SetupCli) -> Result<()> {
    // The MSI passes "[DATADIR]." so that a trailing backslash cannot escape the closing quote.
    let text = a.data_dir.to_string_lossy().to_string();
    let text = text.strip_suffix("\\.").or_else(|| text.strip_suffix("/.")).unwrap_or(&text);
    let data_dir = PathBuf::from(text.trim_end_matches(['\\', '/']));
    // A relative folder would be read against itself later (`data/./data/hisbridge.key`): the
    // config always holds the absolute path.
    let data_dir = if data_dir.is_absolute() { data_dir } else { std::env::current_dir()?.join(data_dir) };
    let log_path = data_dir.join("logs").join("setup.log");
    let mut lines = Vec::new();
    let result = (|| -> Result<()> {
        if a.remove_service {
            remove_service(&mut lines)?;
            // Nothing runs the bridge any more: a status.json left behind would tell monitoring
            // it still does.
            let status = data_dir.join("status.json");
            if std::fs::remove_file(&status).is_ok() {
                lines.push(format!("{} removed (the bridge is uninstalled)", status.display()));
            }
            return Ok(());
        }
        // This PC's row of the roll-out table fills what the command line leaves out.
        let pc = match some(a.pc_table) {
            Some(table) => {
                let bytes = std::fs::read(&table).map_err(|e| anyhow::anyhow!("pc table {table}: {e}"))?;
                let computer = some(a.computer).unwrap_or_else(setup::computer_name);
                let v = setup::per_pc(&bytes, &computer).map_err(|e| anyhow::anyhow!("{table}: {e}"))?;
                lines.push(format!("values for {computer} from {table}"));
                v
            }
            None => setup::PcValues::default(),
        };
        let args = SetupArgs {
            data_dir: data_dir.clone(),
            port: some(a.port).or(pc.port),
            transport: some(a.transport).or(pc.transport),
            baud: number(some(a.baud).or(pc.baud), "baud")?,
            device_id: some(a.device_id).or(pc.device_id),
            terminals: some(a.terminals).or(pc.terminals),
            socket_port: number(some(a.socket_port).or(pc.socket_port), "socket port")?,
            key_file: some(a.key_file).map(PathBuf::from),
        };
        let report = setup::run(&args)?;
        lines.extend(report.lines.iter().cloned());
        if let Some(p) = &report.config_problem {
            lines.push(format!("the config is not complete yet ({p}); the tray app opens its settings"));
        }
        // The MSI passes "[HISDLLDIR]." for the same reason as the data folder: "." alone is empty.
        let his_dll_dir = some(a.his_dll_dir).map(|d| d.strip_suffix('.').unwrap_or(&d).to_string());
        if let Some(dir) = his_dll_dir.filter(|d| !d.trim_end_matches(['\\', '/']).is_empty()) {
            copy_his_dll(&dir, some(a.his_dll_arch).as_deref(), &mut lines)?;
        }
        let service = some(a.service).as_deref() == Some("1");
        if !a.no_acl {
            acls(&data_dir, some(a.his_account).as_deref(), service, &mut lines);
        }
        let ready = report.config_problem.is_none() && data_dir.join(setup::KEY_NAME).exists();
        service_after_setup(&report.config, ready, service, &mut lines)?;
        Ok(())
    })();
    for l in &lines {
        println!("{l}");
    }
    // The failure goes to the log here and to stderr once, by main.
    if let Err(e) = &result {
        lines.push(format!("FAILED: {}", crate::exit::message(e)));
    }
    if let Some(dir) = log_path.parent() {
        if std::fs::create_dir_all(dir).is_ok() {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&log_path) {
                let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S");
                for l in &lines {
                    let _ = writeln!(f, "{now} {l}");
                }
            }
        }
    }
    result
}

#[cfg(windows)]
fn acls(data_dir: &std::path::Path, his_account: Option<&str>, service: bool, lines: &mut Vec<String>) {
    for args in setup::acl_commands(data_dir, his_account, service) {
        let shown = args.join(" ");
        match std::process::Command::new("icacls").args(&args).output() {
            Ok(o) if o.status.success() => lines.push(format!("permissions: icacls {shown}")),
            Ok(o) => lines.push(format!(
                "WARNING permissions not set: icacls {shown}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => lines.push(format!("WARNING permissions not set: icacls {shown}: {e}")),
        }
    }
}

#[cfg(not(windows))]
fn acls(_data_dir: &std::path::Path, his_account: Option<&str>, _service: bool, lines: &mut Vec<String>) {
    if his_account.is_some() {
        lines.push("his-account is for Windows; on Linux give the HIS user the inbox by group".into());
    }
}

/// Installs the service when asked; starts an installed one again (after an upgrade, which
/// stopped it) once the config is complete and a key is there.
#[cfg(windows)]
fn service_after_setup(config: &std::path::Path, ready: bool, install: bool, lines: &mut Vec<String>) -> Result<()> {
    use crate::service::{ServiceCmd, NAME};
    let installed = std::process::Command::new(std::env::current_exe()?)
        .args(["service", "status"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !installed {
        if install {
            lines.extend(crate::service::install(config, ready).context("install the service")?);
            lines.push(format!(
                "service {NAME} installed{}",
                if ready { " and started" } else { "; it starts once the config is complete and a key is imported" }
            ));
        }
        return Ok(());
    }
    if ready {
        match crate::service::main(ServiceCmd::Start) {
            Ok(()) => lines.push(format!("service {NAME} started")),
            Err(e) => lines.push(format!("service {NAME} not started: {}", crate::exit::message(&e))),
        }
    } else {
        lines.push(format!("service {NAME} installed; not started until the config is complete"));
    }
    Ok(())
}

#[cfg(not(windows))]
fn service_after_setup(_config: &std::path::Path, _ready: bool, install: bool, _lines: &mut Vec<String>) -> Result<()> {
    if install {
        bail!("the service is for Windows; on Linux run `hisbridge run --config FILE` under systemd (docs/install.md)");
    }
    Ok(())
}

#[cfg(windows)]
fn remove_service(lines: &mut Vec<String>) -> Result<()> {
    crate::service::main(crate::service::ServiceCmd::Uninstall)?;
    lines.push(format!("service {} removed (if it was installed)", crate::service::NAME));
    Ok(())
}

#[cfg(not(windows))]
fn remove_service(lines: &mut Vec<String>) -> Result<()> {
    lines.push("no service on this platform".into());
    Ok(())
}
