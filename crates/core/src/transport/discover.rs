//! Finding the POS: the serial ports with the USB device behind each, and the USB devices with
//! their interfaces and endpoints, marking the ones that look like a POS. Used by
//! `hisbridge devices`, the tray's settings and the serial transport's lookup by USB identity.

use hisbridge_protocol::usb::{select_pos_interface, PosInterfaceKind, Transfer};
use rusb::UsbContext;
use serde::Serialize;

use super::usb::{explain_open_error, interfaces, serial_number};
use super::UsbId;

/// The USB device behind a serial port, as the OS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbInfo {
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

impl UsbInfo {
    /// The identity to write in the config (`usb:VID:PID[:SERIAL]`).
    pub fn id(&self) -> UsbId {
        UsbId { vid: self.vid, pid: self.pid, serial: self.serial.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SerialPortEntry {
    /// `COM5`, `/dev/ttyACM0`.
    pub name: String,
    /// `usb`, `pci`, `bluetooth` or `other`.
    pub kind: &'static str,
    pub usb: Option<UsbInfo>,
}

/// The serial ports of this PC.
pub fn serial_ports() -> Vec<SerialPortEntry> {
    // serialport panics where sysfs has no tty class (containers, emulated systems).
    if cfg!(target_os = "linux") && !std::path::Path::new("/sys/class/tty").is_dir() {
        return Vec::new();
    }
    let mut out: Vec<SerialPortEntry> = serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .map(|p| {
            let (kind, usb) = match p.port_type {
                serialport::SerialPortType::UsbPort(u) => (
                    "usb",
                    Some(UsbInfo {
                        vid: u.vid,
                        pid: u.pid,
                        serial: u.serial_number.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
                        manufacturer: u.manufacturer,
                        product: u.product,
                    }),
                ),
                serialport::SerialPortType::PciPort => ("pci", None),
                serialport::SerialPortType::BluetoothPort => ("bluetooth", None),
                serialport::SerialPortType::Unknown => ("other", None),
            };
            SerialPortEntry { name: p.port_name, kind, usb }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The serial port of the USB device `id`: exactly one must match.
pub fn serial_port_of(id: &UsbId) -> Result<String, String> {
    pick_port(id, &serial_ports())
}

fn pick_port(id: &UsbId, ports: &[SerialPortEntry]) -> Result<String, String> {
    let hits: Vec<&SerialPortEntry> = ports
        .iter()
        .filter(|p| p.usb.as_ref().is_some_and(|u| id.matches(u.vid, u.pid, u.serial.as_deref())))
        .collect();
    match hits.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(format!("{id}: no serial port of this USB device is present (is the POS plugged in?)")),
        many => {
            let serials: Vec<String> = many
                .iter()
                .map(|p| {
                    format!(
                        "{} = {}",
                        p.name,
                        p.usb.as_ref().and_then(|u| u.serial.clone()).unwrap_or("(no serial number)".into())
                    )
                })
                .collect();
            Err(format!(
                "{id}: {} serial ports belong to such devices; name one by serial number (usb:VID:PID:SERIAL): {}",
                many.len(),
                serials.join(", ")
            ))
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointEntry {
    pub address: u8,
    pub direction: &'static str,
    pub transfer: &'static str,
    pub max_packet: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceEntry {
    pub number: u8,
    pub alt_setting: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub endpoints: Vec<EndpointEntry>,
    /// Chosen for the POS link.
    pub pos: bool,
    /// Why it was passed over.
    pub skipped: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbDeviceEntry {
    pub bus: u8,
    pub address: u8,
    pub vid: u16,
    pub pid: u16,
    pub serial: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    /// Why strings could not be read (no permission, no WinUSB driver, ...).
    pub open_error: Option<String>,
    pub interfaces: Vec<InterfaceEntry>,
    /// `vendor-bulk` or `cdc-data` when an interface carries a POS link; `android` for a device
    /// that answers the accessory request, `android-accessory` for one already switched.
    pub looks_like_pos: Option<&'static str>,
    /// The Android Open Accessory version the device answered `GET_PROTOCOL` with.
    pub aoa: Option<u16>,
    /// What to write in `[pos] port` for this device.
    pub config: String,
    /// What to write in `[pos] transport` for it, when it looks like a POS.
    pub transport: Option<&'static str>,
}

/// Whether a device is worth asking `GET_PROTOCOL`: an Android device in its normal mode shows
/// MTP/PTP (class 06, or vendor-specific MTP) or ADB, and is no hub, keyboard or disk.
pub(super) fn may_be_android(ifaces: &[hisbridge_protocol::usb::Interface]) -> bool {
    ifaces.iter().any(|i| i.class == 0x06 || i.class == 0xFF)
}

/// The USB devices on this PC (root hubs left out).
pub fn usb_devices() -> Result<Vec<UsbDeviceEntry>, String> {
    let ctx = super::usb::context()?;
    let list = ctx.devices().map_err(|e| format!("cannot list USB devices: {e}"))?;
    let mut out = Vec::new();
    for dev in list.iter() {
        let Ok(d) = dev.device_descriptor() else { continue };
        if d.class_code() == 0x09 {
            continue; // hubs
        }
        let (mut serial, mut manufacturer, mut product, mut open_error, mut aoa) = (None, None, None, None, None);
        let ifaces = interfaces(&dev).unwrap_or_default();
        let accessory = hisbridge_protocol::aoa::is_accessory(d.vendor_id(), d.product_id());
        match dev.open() {
            Ok(h) => {
                serial = serial_number(&h, &dev);
                manufacturer = h.read_manufacturer_string_ascii(&d).ok();
                product = h.read_product_string_ascii(&d).ok();
                if !accessory && may_be_android(&ifaces) {
                    aoa = super::aoa::protocol(&h).ok().flatten();
                }
            }
            Err(e) => open_error = Some(explain_open_error(e)),
        }
        let (selected, skipped) = select_pos_interface(&ifaces);
        let interfaces = ifaces
            .iter()
            .map(|i| InterfaceEntry {
                number: i.number,
                alt_setting: i.alt_setting,
                class: i.class,
                subclass: i.subclass,
                protocol: i.protocol,
                endpoints: i
                    .endpoints
                    .iter()
                    .map(|e| EndpointEntry {
                        address: e.address,
                        direction: if e.is_in() { "in" } else { "out" },
                        transfer: match e.transfer {
                            Transfer::Control => "control",
                            Transfer::Isochronous => "isochronous",
                            Transfer::Bulk => "bulk",
                            Transfer::Interrupt => "interrupt",
                        },
                        max_packet: e.max_packet,
                    })
                    .collect(),
                pos: selected.is_some_and(|s| s.interface == i.number && s.alt_setting == i.alt_setting),
                skipped: skipped
                    .iter()
                    .find(|s| s.interface == i.number && s.alt_setting == i.alt_setting)
                    .map(|s| s.reason),
            })
            .collect();
        let id = UsbId { vid: d.vendor_id(), pid: d.product_id(), serial: serial.clone() };
        out.push(UsbDeviceEntry {
            bus: dev.bus_number(),
            address: dev.address(),
            vid: d.vendor_id(),
            pid: d.product_id(),
            serial,
            manufacturer,
            product,
            open_error,
            interfaces,
            looks_like_pos: if aoa.is_some() {
                Some("android")
            } else if accessory && selected.is_some() {
                Some("android-accessory")
            } else {
                selected.map(|s| match s.kind {
                    PosInterfaceKind::VendorBulk => "vendor-bulk",
                    PosInterfaceKind::CdcData => "cdc-data",
                })
            },
            transport: if aoa.is_some() || (accessory && selected.is_some()) {
                Some("aoa")
            } else {
                selected.map(|s| match s.kind {
                    PosInterfaceKind::VendorBulk => "usb",
                    PosInterfaceKind::CdcData => "serial",
                })
            },
            aoa,
            config: id.to_string(),
        });
    }
    out.sort_by_key(|d| (d.bus, d.address));
    Ok(out)
}

/// Everything found, for `hisbridge devices --json` and the tray's settings.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub serial_ports: Vec<SerialPortEntry>,
    pub usb_devices: Vec<UsbDeviceEntry>,
    /// Why the USB list is empty, when libusb could not run.
    pub usb_error: Option<String>,
}

pub fn find_all() -> Found {
    let (usb_devices, usb_error) = match usb_devices() {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    Found { serial_ports: serial_ports(), usb_devices, usb_error }
}

/// The listing as text for IT.
pub fn render(found: &Found) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "Serial ports:");
    if found.serial_ports.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for p in &found.serial_ports {
        match &p.usb {
            Some(u) => {
                let _ = writeln!(
                    s,
                    "  {:<14} USB {:04x}:{:04x}  serial {}  {} {}\n  {:<14} config: port = \"{}\" (stays right when the port is renumbered)",
                    p.name,
                    u.vid,
                    u.pid,
                    u.serial.as_deref().unwrap_or("-"),
                    u.manufacturer.as_deref().unwrap_or(""),
                    u.product.as_deref().unwrap_or(""),
                    "",
                    u.id()
                );
            }
            None => {
                let _ = writeln!(s, "  {:<14} {}", p.name, p.kind);
            }
        }
    }
    let _ = writeln!(s, "USB devices:");
    if let Some(e) = &found.usb_error {
        let _ = writeln!(s, "  (cannot list: {e})");
    } else if found.usb_devices.is_empty() {
        let _ = writeln!(s, "  (none)");
    }
    for d in &found.usb_devices {
        let _ = writeln!(
            s,
            "  bus {:03} address {:03}  {:04x}:{:04x}  serial {}  {} {}{}",
            d.bus,
            d.address,
            d.vid,
            d.pid,
            d.serial.as_deref().unwrap_or("-"),
            d.manufacturer.as_deref().unwrap_or(""),
            d.product.as_deref().unwrap_or(""),
            match (d.aoa, d.looks_like_pos) {
                (Some(v), _) => format!("  <- Android, accessory mode (AOA {v})"),
                (None, Some("android-accessory")) => "  <- an Android device in accessory mode".to_string(),
                (None, Some(kind)) => format!("  <- looks like a POS ({kind})"),
                (None, None) => String::new(),
            }
        );
        if let Some(e) = &d.open_error {
            let _ = writeln!(s, "      cannot open: {e}");
        }
        for i in &d.interfaces {
            let eps: Vec<String> = i
                .endpoints
                .iter()
                .map(|e| format!("{:02x} {} {} {}", e.address, e.direction, e.transfer, e.max_packet))
                .collect();
            let note = if i.pos { "POS link".to_string() } else { i.skipped.unwrap_or("").to_string() };
            let _ = writeln!(
                s,
                "      interface {} alt {} class {:02x}/{:02x}/{:02x}  [{}]  {}",
                i.number,
                i.alt_setting,
                i.class,
                i.subclass,
                i.protocol,
                eps.join(", "),
                note
            );
        }
        if let Some(t) = d.transport {
            let _ = writeln!(s, "      config: port = \"{}\" with transport = \"{t}\"", d.config);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, vid: u16, pid: u16, serial: Option<&str>) -> SerialPortEntry {
        SerialPortEntry {
            name: name.into(),
            kind: "usb",
            usb: Some(UsbInfo { vid, pid, serial: serial.map(Into::into), manufacturer: None, product: None }),
        }
    }

    #[test]
    fn a_port_is_found_by_usb_identity() {
        let ports = vec![
            SerialPortEntry { name: "COM1".into(), kind: "pci", usb: None },
            port("COM7", 0x2fb8, 1, Some("A1")),
            port("COM9", 0x1a86, 0x7523, None),
        ];
        assert_eq!(pick_port(&UsbId::parse("usb:2fb8:0001").unwrap(), &ports).unwrap(), "COM7");
        assert_eq!(pick_port(&UsbId::parse("usb:2fb8:0001:A1").unwrap(), &ports).unwrap(), "COM7");
        assert_eq!(pick_port(&UsbId::parse("usb:1a86:7523").unwrap(), &ports).unwrap(), "COM9");
        let e = pick_port(&UsbId::parse("usb:2fb8:0001:B2").unwrap(), &ports).unwrap_err();
        assert!(e.contains("no serial port"), "{e}");
    }

    #[test]
    fn two_of_a_kind_need_the_serial_number() {
        let ports = vec![port("COM7", 0x2fb8, 1, Some("A1")), port("COM8", 0x2fb8, 1, Some("B2"))];
        let e = pick_port(&UsbId::parse("usb:2fb8:0001").unwrap(), &ports).unwrap_err();
        assert!(e.contains("COM7 = A1") && e.contains("COM8 = B2"), "{e}");
        assert_eq!(pick_port(&UsbId::parse("usb:2fb8:0001:B2").unwrap(), &ports).unwrap(), "COM8");
    }
}
