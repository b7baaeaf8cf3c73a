//! The Android Open Accessory transport (docs/pos-protocol.md §7.C): for an Android POS whose
//! app cannot present a COM port or a vendor interface of its own.
//!
//! Opening: if the POS is already in accessory mode (`18d1:2d00`-`2d05`, its serial number the
//! one it had before the switch), claim the accessory's bulk pair at once. Otherwise find the
//! POS in its normal mode (by `usb:VID:PID[:SERIAL]`, or for `port = "auto"` the one device that
//! answers `GET_PROTOCOL`), ask `GET_PROTOCOL`, write the identification strings the POS app's
//! accessory filter matches, send `START`, and wait for the accessory to appear. From there the
//! link is the raw USB transport's ([`super::usb`]): the same reader, writer and errors, so an
//! accessory that disappears (app closed, POS rebooted, cable pulled) ends the link and the
//! driver's reopen loop switches the POS again when it comes back in its normal mode.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hisbridge_protocol::aoa::{self, Identity};
use hisbridge_protocol::usb::select_pos_interface;
use rusb::{Context, Device, DeviceHandle, UsbContext};
use tracing::{debug, info};

use super::usb::{claim, context, explain_open_error, interfaces, serial_number, Candidate};
use super::{Link, UsbId};

/// How long the POS may take to come back as an accessory after `START`.
pub const ACCESSORY_WAIT: Duration = Duration::from_secs(10);
const CONTROL_TIMEOUT: Duration = Duration::from_secs(1);
const POLL: Duration = Duration::from_millis(200);

/// Which Android device: by its normal-mode identity, or the only one that speaks AOA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Android {
    Id(UsbId),
    Auto,
}

impl std::fmt::Display for Android {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Android::Id(id) => id.fmt(f),
            Android::Auto => f.write_str("the Android POS"),
        }
    }
}

/// The serial number of the device this process last switched, so the accessory it becomes
/// is told apart from another Android device already in accessory mode.
static SWITCHED: Mutex<Option<String>> = Mutex::new(None);

/// Asks `GET_PROTOCOL`: `Ok(Some(version))` for an AOA device, `Ok(None)` for one that answers 0.
pub fn protocol<T: UsbContext>(h: &DeviceHandle<T>) -> Result<Option<u16>, rusb::Error> {
    let mut buf = [0u8; 2];
    let n = h.read_control(aoa::REQUEST_TYPE_IN, aoa::GET_PROTOCOL, 0, 0, &mut buf, CONTROL_TIMEOUT)?;
    Ok(aoa::protocol_version(&buf[..n]))
}

/// Switches the device into accessory mode: the strings, then `START`.
fn start<T: UsbContext>(h: &DeviceHandle<T>, identity: &Identity) -> Result<(), rusb::Error> {
    for (index, bytes) in identity.strings() {
        h.write_control(aoa::REQUEST_TYPE_OUT, aoa::SEND_STRING, 0, index, &bytes, CONTROL_TIMEOUT)?;
    }
    h.write_control(aoa::REQUEST_TYPE_OUT, aoa::START, 0, 0, &[], CONTROL_TIMEOUT)?;
    Ok(())
}

fn is_hub(dev: &Device<Context>) -> bool {
    dev.device_descriptor().map(|d| d.class_code() == 0x09).unwrap_or(true)
}

/// Accessory-mode devices on the bus, opened, with their serial numbers.
fn accessories(ctx: &Context) -> Result<Vec<Candidate>, String> {
    let list = ctx.devices().map_err(|e| format!("cannot list USB devices: {e}"))?;
    let mut out = Vec::new();
    for dev in list.iter() {
        let Ok(d) = dev.device_descriptor() else { continue };
        if !aoa::is_accessory(d.vendor_id(), d.product_id()) {
            continue;
        }
        match dev.open() {
            Ok(handle) => {
                let serial = serial_number(&handle, &dev);
                out.push(Candidate { device: dev.clone(), handle, serial });
            }
            Err(e) => debug!(error = %explain_open_error(e), "an Android accessory cannot be opened"),
        }
    }
    Ok(out)
}

/// The accessory that is our POS, if one is present.
fn our_accessory(target: &Android, mut found: Vec<Candidate>) -> Option<Candidate> {
    let switched = SWITCHED.lock().ok().and_then(|s| s.clone());
    let want = match target {
        Android::Id(id) if aoa::is_accessory(id.vid, id.pid) => {
            // Named by its accessory identity: any accessory with that serial.
            return found.into_iter().find(|c| id.serial.is_none() || c.serial == id.serial);
        }
        Android::Id(id) => id.serial.clone().or(switched),
        Android::Auto => switched,
    };
    match want {
        Some(serial) => found.into_iter().find(|c| c.serial.as_deref() == Some(serial.as_str())),
        // Nothing to tell accessories apart (the bridge restarted while the POS was already in
        // accessory mode and the config has no serial): only a single accessory is ours.
        None if found.len() == 1 => found.pop(),
        None => None,
    }
}

/// A device in its normal mode with the AOA version it answered (`None`: not AOA).
type Normal = (Candidate, Option<u16>);

/// Android devices in their normal mode that match the target, opened; and why others could
/// not be opened.
fn normal_mode(ctx: &Context, target: &Android) -> Result<(Vec<Normal>, Vec<String>), String> {
    let list = ctx.devices().map_err(|e| format!("cannot list USB devices: {e}"))?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for dev in list.iter() {
        let Ok(d) = dev.device_descriptor() else { continue };
        if is_hub(&dev) || aoa::is_accessory(d.vendor_id(), d.product_id()) {
            continue;
        }
        match target {
            Android::Id(id) if d.vendor_id() != id.vid || d.product_id() != id.pid => continue,
            // Only devices that look like an Android one are asked (never a keyboard or a disk).
            Android::Auto if !interfaces(&dev).is_ok_and(|i| super::discover::may_be_android(&i)) => continue,
            _ => {}
        }
        let handle = match dev.open() {
            Ok(h) => h,
            Err(e) => {
                if matches!(target, Android::Id(_)) {
                    errors.push(format!(
                        "bus {} address {}: {}",
                        dev.bus_number(),
                        dev.address(),
                        explain_open_error(e)
                    ));
                }
                continue;
            }
        };
        let serial = serial_number(&handle, &dev);
        if let Android::Id(id) = target {
            if !id.matches(d.vendor_id(), d.product_id(), serial.as_deref()) {
                continue;
            }
            let version = protocol(&handle).ok().flatten();
            found.push((Candidate { device: dev.clone(), handle, serial }, version));
        } else if let Ok(Some(v)) = protocol(&handle) {
            found.push((Candidate { device: dev.clone(), handle, serial }, Some(v)));
        }
    }
    Ok((found, errors))
}

/// Opens the Android POS as an accessory, switching it first when it is in its normal mode.
pub fn open(target: &Android, identity: &Identity) -> Result<Link, String> {
    let ctx = context().map_err(|e| format!("{target}: {e}"))?;
    if let Some(c) = our_accessory(target, accessories(&ctx).map_err(|e| format!("{target}: {e}"))?) {
        return claim_accessory(c);
    }
    let (mut found, errors) = normal_mode(&ctx, target).map_err(|e| format!("{target}: {e}"))?;
    let (c, version) = match found.len() {
        1 => found.pop().expect("one"),
        0 if !errors.is_empty() => {
            return Err(format!("{target}: the device is present but cannot be opened: {}", errors.join("; ")))
        }
        0 if *target == Android::Auto => {
            return Err("no Android device that supports accessory mode (AOA) is plugged in".into());
        }
        0 => return Err(format!("{target}: no such USB device is plugged in")),
        n => {
            let ids: Vec<String> = found
                .iter()
                .map(|(c, _)| {
                    let d = c.device.device_descriptor().ok();
                    UsbId {
                        vid: d.as_ref().map_or(0, |d| d.vendor_id()),
                        pid: d.as_ref().map_or(0, |d| d.product_id()),
                        serial: c.serial.clone(),
                    }
                    .to_string()
                })
                .collect();
            return Err(format!("{target}: {n} such devices are plugged in; name one in pos.port: {}", ids.join(", ")));
        }
    };
    let Some(version) = version else {
        // Ask again for the sentence: the first answer may have been an error, not a 0.
        return Err(match protocol(&c.handle) {
            Ok(_) => format!(
                "{target}: answers GET_PROTOCOL with 0: this device does not support Android accessory mode (AOA); \
                 use the POS maker's USB serial mode (transport = \"serial\") instead"
            ),
            Err(e) => format!(
                "{target}: does not answer the Android accessory request GET_PROTOCOL ({e}); \
                 is it an Android POS? (transport = \"aoa\" is for Android devices only)"
            ),
        });
    };
    info!(device = %target, aoa_version = version, "switching the Android POS to accessory mode");
    start(&c.handle, identity).map_err(|e| format!("{target}: switching to accessory mode failed: {e}"))?;
    if let Ok(mut s) = SWITCHED.lock() {
        *s = c.serial.clone();
    }
    drop(c);
    // The device leaves the bus and comes back as the accessory, usually within a second or two.
    let until = Instant::now() + ACCESSORY_WAIT;
    loop {
        std::thread::sleep(POLL);
        let ctx = context().map_err(|e| format!("{target}: {e}"))?;
        if let Some(a) = our_accessory(target, accessories(&ctx).unwrap_or_default()) {
            return claim_accessory(a);
        }
        if Instant::now() >= until {
            return Err(format!(
                "{target}: switched to accessory mode, but no accessory (18d1:2d00/2d01) appeared within {} s",
                ACCESSORY_WAIT.as_secs()
            ));
        }
    }
}

fn claim_accessory(c: Candidate) -> Result<Link, String> {
    let d = c.device.device_descriptor().map_err(|e| format!("Android accessory: {e}"))?;
    let id = UsbId { vid: d.vendor_id(), pid: d.product_id(), serial: c.serial.clone() };
    let ifaces = interfaces(&c.device).map_err(|e| format!("{id}: cannot read the configuration descriptor: {e}"))?;
    // The accessory interface is the vendor interface with one bulk pair; ADB beside it
    // (18d1:2d01) is passed over by the same rule as on any Android POS.
    let (selected, skipped) = select_pos_interface(&ifaces);
    let Some(sel) = selected else {
        let why: Vec<String> = skipped.iter().map(|s| format!("interface {}: {}", s.interface, s.reason)).collect();
        return Err(format!("{id}: the Android accessory has no accessory interface ({})", why.join("; ")));
    };
    claim(c, sel, &id, "Android accessory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named() {
        assert_eq!(Android::Auto.to_string(), "the Android POS");
        assert_eq!(Android::Id(UsbId::parse("usb:2fb8:0001").unwrap()).to_string(), "usb:2fb8:0001");
    }
}
