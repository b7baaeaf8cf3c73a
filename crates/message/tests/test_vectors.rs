//! The published test vectors (docs/test-vectors.json) are what this code produces and accepts.
//! Regenerate with `UPDATE_VECTORS=1 cargo test -p hisbridge-message --test test_vectors`.

use hisbridge_message::envelope::{Direction, Key};
use serde_json::{json, Value};

const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/test-vectors.json");

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn cases() -> Vec<(&'static str, Direction, &'static str, &'static str)> {
    vec![
        (
            "collection order",
            Direction::ToBridge,
            "000102030405060708090a0b",
            r#"{"v":1,"type":"order","terminal_id":"W01","order_no":"202611260001","amount":"+12.50","description":"门诊缴费","sent_at":"2026-11-26T10:00:00.000+08:00"}"#,
        ),
        (
            "refund order",
            Direction::ToBridge,
            "0c0d0e0f1011121314151617",
            r#"{"v":1,"type":"order","terminal_id":"W01","order_no":"202611260001","refund_no":"R1","amount":"-3.00","sent_at":"2026-11-26T11:30:00.000+08:00"}"#,
        ),
        (
            "query",
            Direction::ToBridge,
            "18191a1b1c1d1e1f20212223",
            r#"{"v":1,"type":"query","terminal_id":"W01","order_no":"202611260001","sent_at":"2026-11-26T11:31:00.000+08:00"}"#,
        ),
        (
            "success result",
            Direction::ToHis,
            "2425262728292a2b2c2d2e2f",
            r#"{"v":1,"type":"result","device_id":"POS-0001","terminal_id":"W01","order_no":"202611260001","refund_no":null,"pay_order_no":"4200002026112600000001","status":"SUCCESS","channel":"WECHAT","amount":"+12.50","finished_at":"2026-11-26T10:00:05.000+08:00","error_code":null,"error_message":null,"error_message_en":null}"#,
        ),
    ]
}

#[test]
fn published_vectors_match() {
    let key_hex = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    let key = Key::new("K2026", hex32(key_hex)).unwrap();
    let mut vectors = Vec::new();
    for (name, dir, nonce, plaintext) in cases() {
        let nonce: [u8; 12] = hex::decode(nonce).unwrap().try_into().unwrap();
        let envelope = key.seal_with_nonce(dir, plaintext.as_bytes(), nonce);
        assert_eq!(key.open(dir, envelope.as_bytes()).unwrap(), plaintext.as_bytes());
        vectors.push(json!({
            "name": name,
            "key_id": "K2026",
            "key_hex": key_hex,
            "direction": dir.tag(),
            "aad": format!("HB1.K2026.{}", dir.tag()),
            "nonce_hex": hex::encode(nonce),
            "plaintext": plaintext,
            "envelope": envelope,
        }));
    }
    let doc = json!({ "comment": "HIS Bridge HB1 envelope test vectors: AES-256-GCM, see docs/his-interface.md", "vectors": vectors });
    let text = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_VECTORS").is_some() {
        std::fs::write(PATH, &text).unwrap();
    }
    let published: Value =
        serde_json::from_str(&std::fs::read_to_string(PATH).expect("docs/test-vectors.json")).unwrap();
    assert_eq!(published, doc, "docs/test-vectors.json differs from what the code produces");
}
