//! The raw USB bulk transport (libusb through rusb).
//!
//! Opening: find the device by vendor/product ID (and serial number when given), choose the POS
//! interface and its bulk pair from the configuration descriptor
//! ([`hisbridge_protocol::usb::select_pos_interface`]), detach a kernel driver bound to it where
//! the platform has such a thing (Linux; libusb attaches it again on release), claim it, select
//! its alternate setting. Reading and writing use short timeouts so the reader thread can stop;
//! the interface is released when both halves of the [`Link`] are dropped.
//!
//! On Windows the POS's interface must be bound to WinUSB (docs/install.md); without it libusb
//! cannot open the device, and the error says so.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hisbridge_protocol::usb::{self as desc, select_pos_interface, Selected};
use rusb::{Context, Device, DeviceHandle, UsbContext};
use tracing::{debug, info, warn};

use super::{Link, UsbId, READ_POLL};

/// Time allowed for one bulk OUT transfer before the link counts as broken.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a string descriptor.
const STRING_TIMEOUT: Duration = Duration::from_millis(500);

/// The interfaces of a device's active (or first) configuration in the protocol crate's form.
pub fn interfaces<T: UsbContext>(dev: &Device<T>) -> Result<Vec<desc::Interface>, rusb::Error> {
    let cfg = dev.active_config_descriptor().or_else(|_| dev.config_descriptor(0))?;
    let mut out = Vec::new();
    for itf in cfg.interfaces() {
        for alt in itf.descriptors() {
            out.push(desc::Interface {
                number: alt.interface_number(),
                alt_setting: alt.setting_number(),
                class: alt.class_code(),
                subclass: alt.sub_class_code(),
                protocol: alt.protocol_code(),
                endpoints: alt
                    .endpoint_descriptors()
                    .map(|e| desc::Endpoint {
                        address: e.address(),
                        transfer: match e.transfer_type() {
                            rusb::TransferType::Control => desc::Transfer::Control,
                            rusb::TransferType::Isochronous => desc::Transfer::Isochronous,
                            rusb::TransferType::Bulk => desc::Transfer::Bulk,
                            rusb::TransferType::Interrupt => desc::Transfer::Interrupt,
                        },
                        max_packet: e.max_packet_size(),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

/// Reads the device's serial number string; `None` when it has none or cannot be opened.
pub fn serial_number<T: UsbContext>(handle: &DeviceHandle<T>, dev: &Device<T>) -> Option<String> {
    let d = dev.device_descriptor().ok()?;
    d.serial_number_string_index()?;
    let langs = handle.read_languages(STRING_TIMEOUT).ok()?;
    let lang = *langs.first()?;
    handle.read_serial_number_string(lang, &d, STRING_TIMEOUT).ok().map(|s| s.trim().to_string())
}

/// Starts libusb; the error says what is missing. On Windows libusb goes through UsbDk where it
/// is installed (it reaches any device without replacing its driver: an Android POS keeps MTP),
/// and through WinUSB otherwise (docs/install.md §6).
pub fn context() -> Result<Context, String> {
    #[cfg(windows)]
    if let Ok(ctx) = Context::with_options(&[rusb::UsbOption::use_usbdk()]) {
        return Ok(ctx);
    }
    Context::new().map_err(|e| {
        if cfg!(target_os = "linux") && !std::path::Path::new("/dev/bus/usb").exists() {
            "no USB devices are present (/dev/bus/usb does not exist)".to_string()
        } else {
            format!("libusb cannot start: {e}")
        }
    })
}

/// A sentence for a libusb error while opening, with what IT can do about it.
pub fn explain_open_error(e: rusb::Error) -> String {
    match e {
        rusb::Error::Access => "access denied (on Linux: a udev rule giving the bridge's user the device; \
                                 see docs/install.md)"
            .into(),
        rusb::Error::NotSupported | rusb::Error::NotFound if cfg!(windows) => {
            "no WinUSB driver on the device (the POS vendor's INF or a WCID descriptor; see docs/install.md)".into()
        }
        rusb::Error::Busy => "the device is in use by another program".into(),
        rusb::Error::NoDevice => "the device was unplugged".into(),
        other => other.to_string(),
    }
}

pub(super) struct Candidate {
    pub(super) device: Device<Context>,
    pub(super) handle: DeviceHandle<Context>,
    pub(super) serial: Option<String>,
}

/// Opens the POS by its USB identity and claims its interface.
pub fn open(id: &UsbId) -> Result<Link, String> {
    // A fresh context each time: it enumerates the bus now, so a device plugged back in is found
    // whether or not the platform delivers hotplug events.
    let ctx = context().map_err(|e| format!("{id}: {e}"))?;
    let list = ctx.devices().map_err(|e| format!("{id}: cannot list USB devices: {e}"))?;
    let mut found = Vec::new();
    let mut open_errors = Vec::new();
    for dev in list.iter() {
        let Ok(d) = dev.device_descriptor() else { continue };
        if d.vendor_id() != id.vid || d.product_id() != id.pid {
            continue;
        }
        match dev.open() {
            Ok(handle) => {
                let serial = serial_number(&handle, &dev);
                if id.matches(d.vendor_id(), d.product_id(), serial.as_deref()) {
                    found.push(Candidate { device: dev.clone(), handle, serial });
                }
            }
            Err(e) => open_errors.push(format!(
                "bus {} address {}: {}",
                dev.bus_number(),
                dev.address(),
                explain_open_error(e)
            )),
        }
    }
    let c = match found.len() {
        1 => found.pop().expect("one"),
        0 if !open_errors.is_empty() => {
            return Err(format!("{id}: the device is present but cannot be opened: {}", open_errors.join("; ")))
        }
        0 => return Err(format!("{id}: no such USB device is plugged in")),
        _ => {
            let serials: Vec<String> =
                found.iter().map(|c| c.serial.clone().unwrap_or_else(|| "(none)".into())).collect();
            return Err(format!(
                "{id}: {} such devices are plugged in; name one by its serial number (usb:VID:PID:SERIAL): {}",
                found.len(),
                serials.join(", ")
            ));
        }
    };
    let ifaces = interfaces(&c.device).map_err(|e| format!("{id}: cannot read the configuration descriptor: {e}"))?;
    let (selected, skipped) = select_pos_interface(&ifaces);
    let Some(sel) = selected else {
        let why: Vec<String> = skipped.iter().map(|s| format!("interface {}: {}", s.interface, s.reason)).collect();
        return Err(format!("{id}: no interface carries a POS link ({})", why.join("; ")));
    };
    claim(c, sel, id, "USB")
}

/// Claims the chosen interface; `what` starts the link's name (`USB`, `Android accessory`).
pub(super) fn claim(c: Candidate, sel: Selected, id: &UsbId, what: &str) -> Result<Link, String> {
    let h = c.handle;
    if rusb::supports_detach_kernel_driver() {
        if let Ok(true) = h.kernel_driver_active(sel.interface) {
            info!(interface = sel.interface, "detaching the kernel driver from the POS interface");
        }
        // libusb detaches on claim and attaches the driver again on release.
        if let Err(e) = h.set_auto_detach_kernel_driver(true) {
            debug!(error = %e, "automatic kernel driver detach not available");
        }
    }
    h.claim_interface(sel.interface)
        .map_err(|e| format!("{id}: cannot claim interface {}: {}", sel.interface, explain_open_error(e)))?;
    if sel.alt_setting != 0 {
        if let Err(e) = h.set_alternate_setting(sel.interface, sel.alt_setting) {
            let _ = h.release_interface(sel.interface);
            return Err(format!("{id}: cannot select alternate setting {}: {e}", sel.alt_setting));
        }
    }
    let name = format!(
        "{what} {:04x}:{:04x}{} (bus {} address {}, interface {}, endpoints {:02x}/{:02x})",
        id.vid,
        id.pid,
        c.serial.as_deref().map(|s| format!(" {s}")).unwrap_or_default(),
        c.device.bus_number(),
        c.device.address(),
        sel.interface,
        sel.ep_in,
        sel.ep_out
    );
    info!(device = %name, kind = ?sel.kind, max_packet = sel.max_packet, "POS USB interface claimed");
    let conn = Arc::new(Conn { handle: h, sel, gone: AtomicBool::new(false) });
    Ok(Link {
        name,
        reader: Box::new(Reader {
            conn: conn.clone(),
            buf: vec![0; usize::from(sel.max_packet.max(64)) * 8],
            pending: Vec::new(),
        }),
        writer: Box::new(Writer { conn }),
    })
}

/// The claimed interface; released when the last half of the link is dropped.
struct Conn {
    handle: DeviceHandle<Context>,
    sel: Selected,
    gone: AtomicBool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        match self.handle.release_interface(self.sel.interface) {
            Ok(()) => info!(interface = self.sel.interface, "POS USB interface released"),
            Err(rusb::Error::NoDevice) => {}
            Err(e) => warn!(error = %e, "releasing the POS USB interface failed"),
        }
    }
}

fn io_error(conn: &Conn, e: rusb::Error) -> io::Error {
    match e {
        rusb::Error::Timeout => io::Error::new(io::ErrorKind::TimedOut, "USB transfer timed out"),
        rusb::Error::Interrupted => io::Error::new(io::ErrorKind::Interrupted, "USB transfer interrupted"),
        rusb::Error::NoDevice => {
            conn.gone.store(true, Ordering::Relaxed);
            io::Error::new(io::ErrorKind::NotConnected, "the POS was unplugged (USB device gone)")
        }
        rusb::Error::Pipe => io::Error::other("the POS endpoint stalled"),
        other => io::Error::other(format!("USB: {other}")),
    }
}

struct Reader {
    conn: Arc<Conn>,
    buf: Vec<u8>,
    /// Bytes read but not yet handed out (the caller's buffer was smaller than a transfer).
    pending: Vec<u8>,
}

impl io::Read for Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pending.is_empty() {
            let n = self
                .conn
                .handle
                .read_bulk(self.conn.sel.ep_in, &mut self.buf, READ_POLL)
                .map_err(|e| io_error(&self.conn, e))?;
            self.pending.extend_from_slice(&self.buf[..n]);
        }
        let n = out.len().min(self.pending.len());
        out[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

struct Writer {
    conn: Arc<Conn>,
}

impl io::Write for Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        self.conn.handle.write_bulk(self.conn.sel.ep_out, data, WRITE_TIMEOUT).map_err(|e| io_error(&self.conn, e))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Wakes the driver when a matching device arrives, where libusb has hotplug events (Linux,
/// macOS). Elsewhere (Windows) the driver's reopen polling finds the device.
pub struct HotplugWatch {
    stop: Arc<AtomicBool>,
}

impl Drop for HotplugWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Wake(Arc<tokio::sync::Notify>);

impl rusb::Hotplug<Context> for Wake {
    fn device_arrived(&mut self, device: Device<Context>) {
        debug!(bus = device.bus_number(), address = device.address(), "USB device arrived");
        self.0.notify_one();
    }

    fn device_left(&mut self, device: Device<Context>) {
        debug!(bus = device.bus_number(), address = device.address(), "USB device left");
    }
}

/// Starts a hotplug watch for devices with these IDs (any device for `None`: an Android POS
/// comes back under other IDs in accessory mode); `None` where libusb has no hotplug.
pub fn watch(id: Option<&UsbId>, wake: Arc<tokio::sync::Notify>) -> Option<HotplugWatch> {
    if !rusb::has_hotplug() {
        return None;
    }
    let ctx = Context::new().ok()?;
    let mut builder = rusb::HotplugBuilder::new();
    if let Some(id) = id {
        builder.vendor_id(id.vid).product_id(id.pid);
    }
    builder.enumerate(false);
    let reg = builder.register(ctx.clone(), Box::new(Wake(wake))).ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let stop_t = stop.clone();
    std::thread::Builder::new()
        .name("usb-hotplug".into())
        .spawn(move || {
            let _reg = reg;
            while !stop_t.load(Ordering::Relaxed) {
                if ctx.handle_events(Some(Duration::from_millis(500))).is_err() {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        })
        .ok()?;
    Some(HotplugWatch { stop })
}
