//! USB descriptors of a POS, sans-IO: parsing a configuration descriptor (the bytes a device
//! returns for GET_DESCRIPTOR(CONFIGURATION)) and choosing the interface and bulk endpoints that
//! carry the POS link (docs/pos-protocol.md §7).
//!
//! Selection, in order of preference:
//! 1. a vendor-specific interface (class 0xFF) with one bulk IN and one bulk OUT endpoint that is
//!    not Android's ADB or fastboot (subclass 0x42);
//! 2. a CDC data interface (class 0x0A) with bulk IN and OUT (a CDC-ACM POS used raw).
//!
//! Interfaces with the wrong shape are skipped with the reason kept, so `hisbridge devices`
//! can say why a device does not look like a POS.

/// Class codes (USB-IF).
pub const CLASS_CDC_COMM: u8 = 0x02;
pub const CLASS_CDC_DATA: u8 = 0x0A;
pub const CLASS_VENDOR: u8 = 0xFF;
/// Android's ADB / fastboot: vendor class, subclass 0x42.
pub const SUBCLASS_ANDROID_ADB: u8 = 0x42;

const DT_CONFIG: u8 = 0x02;
const DT_INTERFACE: u8 = 0x04;
const DT_ENDPOINT: u8 = 0x05;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsbDescError {
    #[error("configuration descriptor too short ({0} bytes)")]
    TooShort(usize),
    #[error("not a configuration descriptor (type 0x{0:02x})")]
    NotConfig(u8),
    #[error("descriptor at offset {offset} has length {len}, which runs past the end or is below 2")]
    BadLength { offset: usize, len: u8 },
    #[error("endpoint descriptor at offset {0} is shorter than 7 bytes")]
    ShortEndpoint(usize),
    #[error("interface descriptor at offset {0} is shorter than 9 bytes")]
    ShortInterface(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Control,
    Isochronous,
    Bulk,
    Interrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Address with the direction bit (0x80 = IN).
    pub address: u8,
    pub transfer: Transfer,
    pub max_packet: u16,
}

impl Endpoint {
    pub fn is_in(&self) -> bool {
        self.address & 0x80 != 0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub number: u8,
    pub alt_setting: u8,
    pub class: u8,
    pub subclass: u8,
    pub protocol: u8,
    pub endpoints: Vec<Endpoint>,
}

/// Parses a full configuration descriptor (header, interfaces, endpoints and whatever class
/// descriptors lie between them, which are skipped).
pub fn parse_config(bytes: &[u8]) -> Result<Vec<Interface>, UsbDescError> {
    if bytes.len() < 9 {
        return Err(UsbDescError::TooShort(bytes.len()));
    }
    if bytes[1] != DT_CONFIG {
        return Err(UsbDescError::NotConfig(bytes[1]));
    }
    let total = usize::from(u16::from_le_bytes([bytes[2], bytes[3]])).min(bytes.len());
    let mut out: Vec<Interface> = Vec::new();
    let mut i = 0;
    while i + 2 <= total {
        let len = bytes[i];
        if len < 2 || i + usize::from(len) > total {
            return Err(UsbDescError::BadLength { offset: i, len });
        }
        let d = &bytes[i..i + usize::from(len)];
        match d[1] {
            DT_INTERFACE => {
                if d.len() < 9 {
                    return Err(UsbDescError::ShortInterface(i));
                }
                out.push(Interface {
                    number: d[2],
                    alt_setting: d[3],
                    class: d[5],
                    subclass: d[6],
                    protocol: d[7],
                    endpoints: Vec::new(),
                });
            }
            DT_ENDPOINT => {
                if d.len() < 7 {
                    return Err(UsbDescError::ShortEndpoint(i));
                }
                let transfer = match d[3] & 0x03 {
                    0 => Transfer::Control,
                    1 => Transfer::Isochronous,
                    2 => Transfer::Bulk,
                    _ => Transfer::Interrupt,
                };
                // An endpoint before any interface belongs to none: ignored.
                if let Some(itf) = out.last_mut() {
                    itf.endpoints.push(Endpoint {
                        address: d[2],
                        transfer,
                        max_packet: u16::from_le_bytes([d[4], d[5]]) & 0x07FF,
                    });
                }
            }
            _ => {}
        }
        i += usize::from(len);
    }
    Ok(out)
}

/// How the chosen interface speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosInterfaceKind {
    VendorBulk,
    CdcData,
}

/// The interface and endpoints to claim for the POS link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub interface: u8,
    pub alt_setting: u8,
    pub ep_in: u8,
    pub ep_out: u8,
    pub max_packet: u16,
    pub kind: PosInterfaceKind,
}

/// Why an interface was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub interface: u8,
    pub alt_setting: u8,
    pub reason: &'static str,
}

fn bulk_pair(itf: &Interface) -> Option<(Endpoint, Endpoint)> {
    let ins: Vec<_> = itf.endpoints.iter().filter(|e| e.transfer == Transfer::Bulk && e.is_in()).collect();
    let outs: Vec<_> = itf.endpoints.iter().filter(|e| e.transfer == Transfer::Bulk && !e.is_in()).collect();
    match (ins.as_slice(), outs.as_slice()) {
        ([i], [o]) => Some((**i, **o)),
        _ => None,
    }
}

/// Chooses the POS interface, and says why every other interface was passed over.
pub fn select_pos_interface(ifaces: &[Interface]) -> (Option<Selected>, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut vendor = None;
    let mut cdc = None;
    for itf in ifaces {
        let skip = |reason| Skipped { interface: itf.number, alt_setting: itf.alt_setting, reason };
        let pair = bulk_pair(itf);
        match itf.class {
            CLASS_VENDOR if itf.subclass == SUBCLASS_ANDROID_ADB => {
                skipped.push(skip("Android debug bridge (ADB/fastboot), not the POS link"))
            }
            CLASS_VENDOR => match pair {
                Some((i, o)) if vendor.is_none() => vendor = Some((itf, i, o)),
                Some(_) => skipped.push(skip("another vendor bulk interface was found first")),
                None => skipped.push(skip("vendor interface without exactly one bulk IN and one bulk OUT")),
            },
            CLASS_CDC_DATA => match pair {
                Some((i, o)) if cdc.is_none() => cdc = Some((itf, i, o)),
                Some(_) => skipped.push(skip("another CDC data interface was found first")),
                None => skipped.push(skip("CDC data interface without bulk IN and OUT")),
            },
            CLASS_CDC_COMM => skipped.push(skip("CDC control interface (its data interface carries the link)")),
            _ => skipped.push(skip("not a vendor or CDC data interface")),
        }
    }
    let pick = vendor.map(|v| (v, PosInterfaceKind::VendorBulk)).or(cdc.map(|c| (c, PosInterfaceKind::CdcData)));
    let selected = pick.map(|((itf, i, o), kind)| Selected {
        interface: itf.number,
        alt_setting: itf.alt_setting,
        ep_in: i.address,
        ep_out: o.address,
        max_packet: i.max_packet.min(o.max_packet),
        kind,
    });
    if let Some(s) = &selected {
        // A CDC data interface passed over for a vendor one says so.
        if s.kind == PosInterfaceKind::VendorBulk {
            if let Some((itf, _, _)) = cdc {
                skipped.push(Skipped {
                    interface: itf.number,
                    alt_setting: itf.alt_setting,
                    reason: "CDC data interface; the vendor bulk interface is preferred",
                });
            }
        }
    }
    (selected, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/usb/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split_whitespace())
            .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{path}: {h:?} is not hex")))
            .collect()
    }

    #[test]
    fn cdc_acm_device_uses_its_data_interface() {
        let ifs = parse_config(&fixture("cdc-acm.hex")).unwrap();
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[0].endpoints[0].transfer, Transfer::Interrupt);
        let (s, skipped) = select_pos_interface(&ifs);
        let s = s.expect("a CDC data interface");
        assert_eq!((s.interface, s.ep_in, s.ep_out, s.kind), (1, 0x82, 0x02, PosInterfaceKind::CdcData));
        assert_eq!(s.max_packet, 64);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("CDC control"));
    }

    #[test]
    fn vendor_bulk_device() {
        let ifs = parse_config(&fixture("vendor-bulk.hex")).unwrap();
        let (s, _) = select_pos_interface(&ifs);
        let s = s.unwrap();
        assert_eq!((s.interface, s.ep_in, s.ep_out, s.kind), (0, 0x81, 0x01, PosInterfaceKind::VendorBulk));
        assert_eq!(s.max_packet, 512, "high-speed bulk");
    }

    #[test]
    fn android_composite_skips_mtp_and_adb() {
        let ifs = parse_config(&fixture("android-composite.hex")).unwrap();
        assert_eq!(ifs.iter().map(|i| i.class).collect::<Vec<_>>(), [0x06, 0xFF, 0xFF]);
        let (s, skipped) = select_pos_interface(&ifs);
        let s = s.unwrap();
        assert_eq!((s.interface, s.ep_in, s.ep_out), (2, 0x84, 0x03));
        let reasons: Vec<_> = skipped.iter().map(|k| (k.interface, k.reason)).collect();
        assert!(reasons.iter().any(|(n, r)| *n == 1 && r.contains("ADB")), "{reasons:?}");
        assert!(reasons.iter().any(|(n, r)| *n == 0 && r.contains("not a vendor")), "{reasons:?}");
    }

    #[test]
    fn a_device_without_a_pos_interface_says_why() {
        let ifs = parse_config(&fixture("hid-keyboard.hex")).unwrap();
        let (s, skipped) = select_pos_interface(&ifs);
        assert_eq!(s, None);
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn broken_descriptors_are_exact_errors() {
        let good = fixture("vendor-bulk.hex");
        assert_eq!(parse_config(&good[..5]), Err(UsbDescError::TooShort(5)));
        let mut not_config = good.clone();
        not_config[1] = 0x01;
        assert_eq!(parse_config(&not_config), Err(UsbDescError::NotConfig(0x01)));
        let mut zero = good.clone();
        zero[9] = 0;
        assert_eq!(parse_config(&zero), Err(UsbDescError::BadLength { offset: 9, len: 0 }));
        let mut short_ep = good.clone();
        short_ep[18] = 4; // the first endpoint claims 4 bytes
        assert!(
            matches!(parse_config(&short_ep), Err(UsbDescError::ShortEndpoint(18))),
            "{:?}",
            parse_config(&short_ep)
        );
        // Every truncation of a valid descriptor is refused or parsed, never a panic.
        for n in 0..good.len() {
            let mut cut = good[..n].to_vec();
            if cut.len() >= 4 {
                cut[2] = n as u8;
                cut[3] = 0;
            }
            let _ = parse_config(&cut);
        }
    }
}
