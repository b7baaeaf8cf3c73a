//! Entry points for the fuzz targets in `fuzz/` (one-line shims call these).

use crate::amount::Amount;
use crate::envelope::{self, Direction, Key};
use crate::his::Instruction;

/// Opens arbitrary bytes as an envelope both ways; a valid-looking header reaches AES-GCM.
pub fn envelope(data: &[u8]) {
    let key = Key::new("K1", [7u8; 32]).expect("valid id");
    let _ = envelope::peek(data);
    let _ = key.open(Direction::ToBridge, data);
    let _ = key.open(Direction::ToHis, data);
    let mut framed = b"HB1.K1.ORD.".to_vec();
    framed.extend_from_slice(data);
    let _ = key.open(Direction::ToBridge, &framed);
}

/// Parses arbitrary bytes as an instruction and as an amount.
pub fn instruction(data: &[u8]) {
    if let Ok(i) = Instruction::parse(data) {
        // What parses must survive a round trip.
        let again = Instruction::parse(i.to_json().as_bytes()).expect("round trip");
        assert_eq!(again.key(), i.key());
        assert_eq!(again.amount, i.amount);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(a) = Amount::parse(s) {
            assert_eq!(Amount::parse(&a.to_string()), Ok(a));
        }
    }
}
