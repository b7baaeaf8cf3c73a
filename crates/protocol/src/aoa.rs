//! Android Open Accessory (AOA): how the bridge switches an Android POS into accessory mode
//! (docs/pos-protocol.md §7.C). Only constants and pure functions; the USB transfers are the
//! transport's (`crates/core/src/transport/aoa.rs`).
//!
//! The host asks `GET_PROTOCOL` (vendor request 51, device to host, two bytes little-endian);
//! a device answering 1 or 2 speaks AOA. The host then writes its identification strings
//! (request 52, one per index) and `START` (request 53). The device drops off the bus and comes
//! back as Google's accessory (`18d1:2d00`, or `18d1:2d01` with ADB beside it; `2d02`-`2d05` add
//! audio), whose first vendor interface carries one bulk pair: the POS app's accessory stream.

/// bmRequestType of `GET_PROTOCOL`: vendor, device to host, to the device.
pub const REQUEST_TYPE_IN: u8 = 0xC0;
/// bmRequestType of `SEND_STRING` and `START`: vendor, host to device, to the device.
pub const REQUEST_TYPE_OUT: u8 = 0x40;
pub const GET_PROTOCOL: u8 = 51;
pub const SEND_STRING: u8 = 52;
pub const START: u8 = 53;

/// Google's vendor ID, which every device in accessory mode takes.
pub const ACCESSORY_VID: u16 = 0x18D1;
/// Product IDs of accessory mode: accessory, accessory + ADB, and the AOA 2 audio variants.
pub const ACCESSORY_PIDS: std::ops::RangeInclusive<u16> = 0x2D00..=0x2D05;

/// Whether these IDs are a device already in accessory mode.
pub fn is_accessory(vid: u16, pid: u16) -> bool {
    vid == ACCESSORY_VID && ACCESSORY_PIDS.contains(&pid)
}

/// The AOA version a device answered `GET_PROTOCOL` with: `None` when it does not speak AOA
/// (answered 0, or fewer than two bytes).
pub fn protocol_version(answer: &[u8]) -> Option<u16> {
    match answer {
        [lo, hi, ..] => match u16::from_le_bytes([*lo, *hi]) {
            0 => None,
            v => Some(v),
        },
        _ => None,
    }
}

/// The identification strings, by their `SEND_STRING` index. The POS app's
/// `accessory_filter.xml` matches `manufacturer`, `model` and `version` exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub manufacturer: String,
    pub model: String,
    pub description: String,
    pub version: String,
    pub uri: String,
    pub serial: String,
}

/// What the bridge writes (docs/pos-protocol.md §7.C): fixed, so one filter fits every bridge.
pub const MANUFACTURER: &str = "HIS Bridge";
pub const MODEL: &str = "POS Link";
pub const DESCRIPTION: &str = "HIS Bridge cashier POS link";
pub const VERSION: &str = "1";
pub const URI: &str = "urn:hisbridge:pos-link:1";

impl Identity {
    /// The bridge's identity; `serial` is the device ID the bridge is configured for, so the app
    /// can tell which POS the cashier PC expects.
    pub fn bridge(device_id: &str) -> Identity {
        Identity {
            manufacturer: MANUFACTURER.into(),
            model: MODEL.into(),
            description: DESCRIPTION.into(),
            version: VERSION.into(),
            uri: URI.into(),
            serial: device_id.into(),
        }
    }

    /// `(index, bytes)` for each `SEND_STRING`: UTF-8 with its terminating NUL, as AOA wants.
    pub fn strings(&self) -> Vec<(u16, Vec<u8>)> {
        [&self.manufacturer, &self.model, &self.description, &self.version, &self.uri, &self.serial]
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                (i as u16, b)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(protocol_version(&[2, 0]), Some(2));
        assert_eq!(protocol_version(&[1, 0]), Some(1));
        assert_eq!(protocol_version(&[0, 0]), None);
        assert_eq!(protocol_version(&[1]), None);
        assert!(is_accessory(0x18d1, 0x2d00) && is_accessory(0x18d1, 0x2d01) && is_accessory(0x18d1, 0x2d05));
        assert!(!is_accessory(0x18d1, 0x4ee7) && !is_accessory(0x2fb8, 0x2d00));
    }

    #[test]
    fn strings_are_nul_terminated_in_index_order() {
        let s = Identity::bridge("POS-0001").strings();
        assert_eq!(s.len(), 6);
        assert_eq!(s[0], (0, b"HIS Bridge\0".to_vec()));
        assert_eq!(s[1], (1, b"POS Link\0".to_vec()));
        assert_eq!(s[3], (3, b"1\0".to_vec()));
        assert_eq!(s[5], (5, b"POS-0001\0".to_vec()));
    }
}
