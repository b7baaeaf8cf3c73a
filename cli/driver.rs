//! `hisbridge driver`: the WinUSB driver package for an Android POS (docs/install.md §6).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hisbridge_core::transport::UsbId;

/// The INF the MSI installs beside the programs.
pub const INF: &str = include_str!("../installer/drivers/hisbridge-android-accessory.inf");

#[derive(clap::Subcommand)]
pub enum DriverCmd {
    /// Write the WinUSB INF for the accessory IDs (18D1:2D00, 18D1:2D01), with the POS's
    /// normal-mode IDs added when given, to sign and install for this hospital's POS model.
    Inf {
        /// The POS in its normal mode (`usb:VID:PID`, as `hisbridge devices` prints it).
        #[arg(long)]
        pos: Option<String>,
        /// The interface of the POS to bind (its MTP interface; the accessory switch needs one).
        #[arg(long, default_value_t = 0)]
        interface: u8,
        /// Where to write the .inf (default: print it).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a signed driver package into the Windows driver store and bind it (pnputil).
    Install {
        /// The signed driver package's .inf file.
        #[arg(long)]
        inf: PathBuf,
    },
}

/// The INF with the POS's normal-mode lines added to both device sections.
pub fn inf_for(pos: Option<&UsbId>, interface: u8) -> String {
    let Some(id) = pos else { return INF.to_string() };
    let line = format!("%NormalMode%   = USB_Install, USB\\VID_{:04X}&PID_{:04X}&MI_{interface:02X}", id.vid, id.pid);
    let mut out = String::new();
    for l in INF.lines() {
        out.push_str(l);
        out.push_str("\r\n");
        if l.starts_with("%AccessoryAdb%") {
            out.push_str(&line);
            out.push_str("\r\n");
        }
    }
    out
}

pub fn run(cmd: DriverCmd) -> Result<()> {
    match cmd {
        DriverCmd::Inf { pos, interface, out } => {
            let id = pos.as_deref().map(UsbId::parse).transpose().map_err(anyhow::Error::msg)?;
            let text = inf_for(id.as_ref(), interface);
            match out {
                Some(p) => {
                    std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
                    println!("wrote {} (sign it before installing: docs/install.md §6)", p.display());
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        DriverCmd::Install { inf } => install(&inf),
    }
}

#[cfg(windows)]
fn install(inf: &std::path::Path) -> Result<()> {
    let windir = std::env::var_os("SystemRoot").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(r"C:\Windows"));
    let pnputil = windir.join("System32").join("pnputil.exe");
    let out = std::process::Command::new(&pnputil)
        .arg("/add-driver")
        .arg(inf)
        .arg("/install")
        .output()
        .with_context(|| format!("cannot run {}", pnputil.display()))?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{}", text.trim());
    if !out.status.success() {
        bail!(
            "the driver package was not installed ({}): Windows installs signed packages only; \
             sign {} for this hospital or use the POS maker's package (docs/install.md §6)",
            out.status,
            inf.display()
        );
    }
    Ok(())
}

#[cfg(not(windows))]
fn install(inf: &std::path::Path) -> Result<()> {
    bail!(
        "{}: driver packages are for Windows; on Linux give the bridge's user the device with a udev rule \
         (docs/install.md §6)",
        inf.display()
    )
}
