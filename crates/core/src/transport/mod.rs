//! Transports: what carries the POS link's bytes between this PC and the POS.
//!
//! The link protocol (frames, ACKs, sessions) does not care how bytes travel; the driver in
//! [`crate::pos`] opens a [`Link`] and reads and writes plain bytes. Two transports exist:
//! - **serial**: a COM port (USB CDC-ACM or a USB-serial adapter), found by name or by the USB
//!   identity of the device behind it, so Windows renumbering COM ports does not matter;
//! - **usb**: raw USB bulk transfers through libusb ([`usb`]), for POS models that present a
//!   vendor-specific interface instead of a COM port (docs/pos-protocol.md §7);
//! - **aoa**: an Android POS switched into Android Open Accessory mode ([`aoa`]), then the same
//!   bulk transfers on the accessory's interface (§7.C).
//!
//! A link's reader returns [`std::io::ErrorKind::TimedOut`] when nothing arrived within its poll
//! interval, and any other error when the link is gone (port closed, device unplugged).

pub mod aoa;
pub mod discover;
pub mod usb;

use std::fmt;
use std::io::{Read, Write};
use std::time::Duration;

/// How often a link's reader returns to check whether it should stop.
pub const READ_POLL: Duration = Duration::from_millis(100);

/// A USB device named by vendor and product ID, and the serial number when several of one
/// model are plugged into the same PC. Written `usb:VID:PID[:SERIAL]` with hexadecimal IDs,
/// e.g. `usb:2fb8:0001` or `usb:2fb8:0001:N5-0001`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsbId {
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
}

impl UsbId {
    /// Parses `usb:VID:PID[:SERIAL]`.
    pub fn parse(text: &str) -> Result<UsbId, String> {
        let rest = text
            .strip_prefix("usb:")
            .ok_or_else(|| format!("{text:?} does not start with \"usb:\" (usb:VID:PID[:SERIAL])"))?;
        let mut parts = rest.splitn(3, ':');
        let hex = |p: Option<&str>, what: &str| -> Result<u16, String> {
            let p = p.unwrap_or("").trim();
            if p.is_empty() || p.len() > 4 {
                return Err(format!("{text:?}: the {what} ID must be 1-4 hexadecimal digits (usb:VID:PID[:SERIAL])"));
            }
            u16::from_str_radix(p, 16).map_err(|_| format!("{text:?}: the {what} ID {p:?} is not hexadecimal"))
        };
        let vid = hex(parts.next(), "vendor")?;
        let pid = hex(parts.next(), "product")?;
        let serial = match parts.next().map(str::trim) {
            None | Some("") => None,
            Some(s) => Some(s.to_string()),
        };
        Ok(UsbId { vid, pid, serial })
    }

    /// Whether a device with these IDs and serial number (if it has one) is this one.
    pub fn matches(&self, vid: u16, pid: u16, serial: Option<&str>) -> bool {
        self.vid == vid
            && self.pid == pid
            && match &self.serial {
                None => true,
                Some(want) => serial == Some(want.as_str()),
            }
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "usb:{:04x}:{:04x}", self.vid, self.pid)?;
        if let Some(s) = &self.serial {
            write!(f, ":{s}")?;
        }
        Ok(())
    }
}

/// Where the POS is, as the config names it (`[pos] port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosTarget {
    /// A serial port by its name (`COM5`, `/dev/ttyACM0`).
    Port(String),
    /// A USB device by its identity: its COM port (serial transport) or the device itself (usb,
    /// aoa).
    Usb(UsbId),
    /// `auto`: the one Android device that answers the accessory request (aoa only).
    Auto,
}

impl PosTarget {
    pub fn parse(text: &str) -> Result<PosTarget, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("is empty".into());
        }
        if t.starts_with("usb:") {
            UsbId::parse(t).map(PosTarget::Usb)
        } else if t.eq_ignore_ascii_case("auto") {
            Ok(PosTarget::Auto)
        } else {
            Ok(PosTarget::Port(t.to_string()))
        }
    }
}

impl fmt::Display for PosTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PosTarget::Port(p) => f.write_str(p),
            PosTarget::Usb(id) => id.fmt(f),
            PosTarget::Auto => f.write_str("auto"),
        }
    }
}

/// `[pos] transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// A COM port, by name or by the USB identity of the device behind it.
    #[default]
    Serial,
    /// Raw USB bulk transfers (libusb); the target must be a USB identity.
    Usb,
    /// An Android POS in accessory mode (AOA); the target is its USB identity or `auto`.
    Aoa,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Serial => "serial",
            TransportKind::Usb => "usb",
            TransportKind::Aoa => "aoa",
        }
    }
}

/// An open link to the POS: a reader for one thread, a writer for another.
pub struct Link {
    /// What was opened, for logs and the status line (`COM5`, `/dev/ttyACM0 (usb:2fb8:0001)`,
    /// `USB 2fb8:0001 N5-0001 bus 1 address 4, interface 0`).
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
}

/// Whether this transport can reach a POS named this way; the error is for `pos.transport`.
pub fn check(target: &PosTarget, kind: TransportKind) -> Result<(), String> {
    match (kind, target) {
        (TransportKind::Serial, PosTarget::Port(_) | PosTarget::Usb(_)) => Ok(()),
        (TransportKind::Usb, PosTarget::Usb(_)) => Ok(()),
        (TransportKind::Aoa, PosTarget::Usb(_) | PosTarget::Auto) => Ok(()),
        (TransportKind::Usb, _) => {
            Err(format!("\"usb\" needs the POS named by USB identity in pos.port (usb:VID:PID[:SERIAL]), not \"{target}\""))
        }
        (TransportKind::Aoa, PosTarget::Port(p)) => Err(format!(
            "\"aoa\" needs the Android POS named by USB identity in pos.port (usb:VID:PID[:SERIAL]) or \"auto\", not {p:?}"
        )),
        (TransportKind::Serial, PosTarget::Auto) => {
            Err("pos.port = \"auto\" finds an Android POS: it needs transport = \"aoa\"".into())
        }
    }
}

/// Opens the POS link. `device_id` is the POS the bridge is configured for (an Android POS is
/// told it in its accessory serial string). The error is a sentence for the log and the
/// cashier's status line.
pub fn open(target: &PosTarget, kind: TransportKind, baud: u32, device_id: &str) -> Result<Link, String> {
    check(target, kind)?;
    match (kind, target) {
        (TransportKind::Aoa, PosTarget::Usb(id)) => {
            aoa::open(&aoa::Android::Id(id.clone()), &hisbridge_protocol::aoa::Identity::bridge(device_id))
        }
        (TransportKind::Aoa, _) => {
            aoa::open(&aoa::Android::Auto, &hisbridge_protocol::aoa::Identity::bridge(device_id))
        }
        (TransportKind::Serial, PosTarget::Port(name)) => open_serial(name, name.clone(), baud),
        (TransportKind::Serial, PosTarget::Usb(id)) => {
            let name = discover::serial_port_of(id)?;
            let shown = format!("{name} ({id})");
            open_serial(&name, shown, baud)
        }
        (TransportKind::Usb, PosTarget::Usb(id)) => usb::open(id),
        (_, target) => Err(check(target, kind).err().unwrap_or_else(|| format!("cannot open {target}"))),
    }
}

fn open_serial(port: &str, name: String, baud: u32) -> Result<Link, String> {
    let p = serialport::new(port, baud).timeout(READ_POLL).open().map_err(|e| format!("{port}: {e}"))?;
    let reader = p.try_clone().map_err(|e| format!("{port}: cannot clone the port handle: {e}"))?;
    Ok(Link { name, reader: Box::new(reader), writer: Box::new(p) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usb_ids() {
        let id = UsbId::parse("usb:2fb8:0001").unwrap();
        assert_eq!(id, UsbId { vid: 0x2fb8, pid: 1, serial: None });
        assert_eq!(id.to_string(), "usb:2fb8:0001");
        let id = UsbId::parse("usb:2FB8:1:N5:01").unwrap();
        assert_eq!(id.serial.as_deref(), Some("N5:01"));
        assert_eq!(id.to_string(), "usb:2fb8:0001:N5:01");
        assert!(id.matches(0x2fb8, 1, Some("N5:01")));
        assert!(!id.matches(0x2fb8, 1, Some("N5:02")));
        assert!(!id.matches(0x2fb8, 1, None));
        assert!(UsbId::parse("usb:2fb8:0001").unwrap().matches(0x2fb8, 1, None));
        for bad in ["usb:", "usb:2fb8", "usb:xyz:1", "usb:12345:1", "2fb8:0001", "usb::1"] {
            assert!(UsbId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(PosTarget::parse(" COM5 ").unwrap(), PosTarget::Port("COM5".into()));
        assert!(matches!(PosTarget::parse("usb:2fb8:0001").unwrap(), PosTarget::Usb(_)));
        assert!(PosTarget::parse("  ").is_err());
    }

    #[test]
    fn usb_transport_needs_a_usb_identity() {
        let e = open(&PosTarget::Port("COM5".into()), TransportKind::Usb, 115_200, "P1").err().unwrap();
        assert!(e.contains("usb:VID:PID"), "{e}");
        let e = open(&PosTarget::Port("COM5".into()), TransportKind::Aoa, 115_200, "P1").err().unwrap();
        assert!(e.contains("\"auto\""), "{e}");
        let e = open(&PosTarget::Auto, TransportKind::Serial, 115_200, "P1").err().unwrap();
        assert!(e.contains("transport = \"aoa\""), "{e}");
        assert_eq!(PosTarget::parse("AUTO").unwrap(), PosTarget::Auto);
    }
}
