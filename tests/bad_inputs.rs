//! A corpus of hostile and broken instructions, each through the real inbox, each asserting the
//! exact error code the HIS gets back, and that nothing reached the POS.

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::Harness;
use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::his::Status;

enum Input {
    /// Raw bytes as `<stem>.ord`.
    Raw(Vec<u8>),
    /// This JSON, correctly sealed.
    Json(String),
}

/// Adds a current `sent_at` to a JSON object that has none (every real message carries one).
fn stamped(json: &str) -> String {
    if json.starts_with('{') && !json.contains("sent_at") {
        json.replacen('{', &format!(r#"{{"sent_at":"{}","#, chrono::Local::now().to_rfc3339()), 1)
    } else {
        json.to_string()
    }
}

fn order(fields: &str) -> String {
    format!(r#"{{"v":1,"type":"order","terminal_id":"W01",{fields}}}"#)
}

fn cases(h: &Harness) -> Vec<(&'static str, Input, &'static str)> {
    use Input::*;
    let good = h.seal(&stamped(&order(r#""order_no":"X1","amount":"+1.00""#)));
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64.decode(good.rsplit('.').next().unwrap()).unwrap();
    let with_body = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = body.clone();
        f(&mut b);
        format!("HB1.K1.ORD.{}", b64.encode(b)).into_bytes()
    };
    let other_key = Key::generate("K1").unwrap();
    let result_env = h.key.seal(Direction::ToHis, br#"{"v":1,"type":"result"}"#);
    let utf16: Vec<u8> = good.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    vec![
        // The envelope
        ("empty", Raw(vec![]), "E_ENVELOPE"),
        ("whitespace", Raw(b"  \r\n".to_vec()), "E_ENVELOPE"),
        ("binary junk", Raw((0..200u8).collect()), "E_ENVELOPE"),
        ("truncated body", Raw(b"HB1.K1.ORD.AAAA".to_vec()), "E_ENVELOPE"),
        ("cut in half", Raw(good.as_bytes()[..good.len() / 2].to_vec()), "E_DECRYPT"),
        ("oversized", Raw(vec![b'A'; 100_000]), "E_ENVELOPE"),
        ("version HB2", Raw(good.replacen("HB1", "HB2", 1).into_bytes()), "E_ENVELOPE"),
        ("other key id", Raw(good.replacen(".K1.", ".K7.", 1).into_bytes()), "E_KEY_ID"),
        (
            "wrong key",
            Raw(other_key
                .seal(Direction::ToBridge, order(r#""order_no":"X2","amount":"+1.00""#).as_bytes())
                .into_bytes()),
            "E_DECRYPT",
        ),
        (
            "tampered tag",
            Raw(with_body(&|b| {
                let n = b.len();
                b[n - 1] ^= 1
            })),
            "E_DECRYPT",
        ),
        ("tampered nonce", Raw(with_body(&|b| b[0] ^= 1)), "E_DECRYPT"),
        ("tampered ciphertext", Raw(with_body(&|b| b[14] ^= 0x80)), "E_DECRYPT"),
        ("header says RES", Raw(good.replacen(".ORD.", ".RES.", 1).into_bytes()), "E_DIRECTION"),
        ("a result fed back", Raw(result_env.into_bytes()), "E_DIRECTION"),
        ("bad base64", Raw(b"HB1.K1.ORD.%%%%".to_vec()), "E_ENVELOPE"),
        ("no body", Raw(b"HB1.K1.ORD".to_vec()), "E_ENVELOPE"),
        ("utf-16 text", Raw(utf16), "E_ENVELOPE"),
        ("gbk bytes", Raw(vec![0xB6, 0xA9, 0xB5, 0xA5]), "E_ENVELOPE"),
        // The message
        ("not json", Json("order please".into()), "E_FORMAT"),
        ("json array", Json("[1,2]".into()), "E_FORMAT"),
        ("version 2", Json(r#"{"v":2,"type":"order"}"#.into()), "E_FORMAT"),
        ("type pay", Json(r#"{"v":1,"type":"pay"}"#.into()), "E_FORMAT"),
        ("unknown field", Json(order(r#""order_no":"X3","amount":"+1.00","colour":"red""#)), "E_FORMAT"),
        ("amount is a number", Json(order(r#""order_no":"X4","amount":12.5"#)), "E_FORMAT"),
        (
            "missing v",
            Json(r#"{"type":"order","terminal_id":"W01","order_no":"X5","amount":"+1.00"}"#.into()),
            "E_FIELD",
        ),
        ("missing terminal", Json(r#"{"v":1,"type":"order","order_no":"X6","amount":"+1.00"}"#.into()), "E_FIELD"),
        ("missing order_no", Json(order(r#""amount":"+1.00""#)), "E_FIELD"),
        ("order_no escapes", Json(order(r#""order_no":"../../etc","amount":"+1.00""#)), "E_FIELD"),
        ("order_no drive", Json(order(r#""order_no":"C:\\x","amount":"+1.00""#)), "E_FIELD"),
        ("order_no too long", Json(order(&format!(r#""order_no":"{}","amount":"+1.00""#, "9".repeat(33)))), "E_FIELD"),
        ("order_no chinese", Json(order(r#""order_no":"门诊1","amount":"+1.00""#)), "E_FIELD"),
        ("order_no empty", Json(order(r#""order_no":"","amount":"+1.00""#)), "E_FIELD"),
        ("amount missing", Json(order(r#""order_no":"X7""#)), "E_FIELD"),
        ("amount 1e3", Json(order(r#""order_no":"X8","amount":"+1e3""#)), "E_AMOUNT"),
        ("amount 3 decimals", Json(order(r#""order_no":"X9","amount":"+12.345""#)), "E_AMOUNT"),
        ("amount no sign", Json(order(r#""order_no":"X10","amount":"12.34""#)), "E_AMOUNT"),
        ("amount zero", Json(order(r#""order_no":"X11","amount":"+0.00""#)), "E_AMOUNT"),
        ("amount double sign", Json(order(r#""order_no":"X12","amount":"--1""#)), "E_AMOUNT"),
        ("amount empty", Json(order(r#""order_no":"X13","amount":"""#)), "E_AMOUNT"),
        ("amount full-width", Json(order(r#""order_no":"X14","amount":"+１２""#)), "E_AMOUNT"),
        ("amount overflow", Json(order(r#""order_no":"X15","amount":"+99999999999999999999""#)), "E_AMOUNT"),
        ("refund without number", Json(order(r#""order_no":"X16","amount":"-1.00""#)), "E_FIELD"),
        ("refund_no on collection", Json(order(r#""order_no":"X17","refund_no":"R1","amount":"+1.00""#)), "E_FIELD"),
        (
            "description too long",
            Json(order(&format!(r#""order_no":"X18","amount":"+1.00","description":"{}""#, "长".repeat(65)))),
            "E_FIELD",
        ),
        (
            "description control chars",
            Json(order(r#""order_no":"X19","amount":"+1.00","description":"a\u0007b""#)),
            "E_FIELD",
        ),
        (
            "amount in a query",
            Json(r#"{"v":1,"type":"query","terminal_id":"W01","order_no":"X20","amount":"+1.00"}"#.into()),
            "E_FIELD",
        ),
        (
            "sent_at missing",
            Json(
                r#"{"sent_at":null,"v":1,"type":"order","terminal_id":"W01","order_no":"X25","amount":"+1.00"}"#.into(),
            ),
            "E_FIELD",
        ),
        ("sent_at not a time", Json(order(r#""order_no":"X26","amount":"+1.00","sent_at":"yesterday""#)), "E_FIELD"),
        (
            "sent_at an hour old",
            Json(order(&format!(
                r#""order_no":"X27","amount":"+1.00","sent_at":"{}""#,
                (chrono::Local::now() - chrono::Duration::hours(1)).to_rfc3339()
            ))),
            "E_STALE",
        ),
        (
            "sent_at in the future",
            Json(order(&format!(
                r#""order_no":"X28","amount":"+1.00","sent_at":"{}""#,
                (chrono::Local::now() + chrono::Duration::hours(1)).to_rfc3339()
            ))),
            "E_STALE",
        ),
        // Business rules
        (
            "unknown terminal",
            Json(r#"{"v":1,"type":"order","terminal_id":"W77","order_no":"X21","amount":"+1.00"}"#.into()),
            "E_TERMINAL",
        ),
        (
            "refund of nothing",
            Json(order(r#""order_no":"X22","refund_no":"R1","amount":"-1.00""#)),
            "E_REFUND_ORIGINAL",
        ),
        (
            "query of nothing",
            Json(r#"{"v":1,"type":"query","terminal_id":"W01","order_no":"X23"}"#.into()),
            "E_NOT_FOUND",
        ),
        (
            "cancel of nothing",
            Json(r#"{"v":1,"type":"cancel","terminal_id":"W01","order_no":"X24"}"#.into()),
            "E_NOT_FOUND",
        ),
    ]
}

#[test]
fn every_bad_input_gets_its_exact_error_and_nothing_is_charged() {
    let h = Harness::new();
    let cases = cases(&h);
    assert!(cases.len() >= 40);
    let mut stems = Vec::new();
    for (i, (name, input, _)) in cases.iter().enumerate() {
        let stem = format!("BAD{i:03}");
        match input {
            Input::Raw(b) => h.drop_raw(&stem, b),
            Input::Json(j) => h.drop_raw(&stem, h.seal(&stamped(j)).as_bytes()),
        }
        stems.push((stem, *name));
    }
    let mut wrong = Vec::new();
    for ((stem, name), (_, _, code)) in stems.iter().zip(&cases) {
        let r = h.wait(stem);
        if r.status != Status::Rejected || r.error_code.as_deref() != Some(code) {
            wrong.push(format!(
                "{name}: expected {code}, got {:?} {:?} ({:?})",
                r.status, r.error_code, r.error_message_en
            ));
        }
        assert!(r.error_message.is_some() && r.error_message_en.is_some(), "{name}: readable messages");
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
    // Every refused file is kept, with its reason, and recorded in the journal.
    h.eventually("all refused files moved", || h.error_files().len() == 2 * stems.len());
    let errs = h.error_files();
    for (stem, name) in &stems {
        assert!(errs.contains(&format!("{stem}.ord")), "{name}: file kept in error/");
        assert!(errs.contains(&format!("{stem}.ord.reason.txt")), "{name}: reason file");
    }
    // Journaling refusals is rate-limited (a burst of 50, then 10 a second: docs/security.md);
    // refused at once, this many arrive in one burst. Each was answered and kept all the same.
    let journaled = h.journal().rejects().unwrap().len();
    assert!((50.min(cases.len())..=cases.len()).contains(&journaled), "{journaled} of {} journaled", cases.len());
    assert!(h.sim.ledger().entries.is_empty(), "nothing reached the POS");
    // And the bridge still serves the next order.
    assert_eq!(h.pay("GOOD0001", "+1.00").status, Status::Success);
}

#[test]
fn bad_file_names_are_refused_without_using_the_name() {
    let h = Harness::new();
    let text = h.seal(&order(r#""order_no":"N1","amount":"+1.00""#));
    let long = format!("{}.ord", "7".repeat(100));
    let names = ["CON.ord", "nul.ord", "COM1.ord", "a b.ord", "订单.ord", "a..b.ord", long.as_str(), "x%2e%2e.ord"];
    for n in names {
        std::fs::write(h.inbox().join(n), &text).unwrap();
    }
    h.eventually("all bad names refused", || h.journal().rejects().unwrap().len() == names.len());
    assert!(common::list(h.inbox()).is_empty());
    let rejects = h.journal().rejects().unwrap();
    assert!(rejects.iter().all(|(_, _, code)| code == "E_FILE_NAME"), "{rejects:?}");
    // Quarantined under neutral names, with the original name in the reason.
    h.eventually("all quarantined", || h.error_files().len() == 2 * names.len());
    let errs = h.error_files();
    assert!(errs.iter().all(|n| n.starts_with("badname-")), "{errs:?}");
    let reasons: String = errs
        .iter()
        .filter(|n| n.ends_with(".reason.txt"))
        .map(|n| std::fs::read_to_string(h.cfg.folders.error.join(n)).unwrap())
        .collect();
    assert!(reasons.contains("CON.ord") && reasons.contains("a b.ord"), "{reasons}");
    assert!(h.sim.ledger().entries.is_empty());
}

#[test]
fn a_replayed_message_is_refused() {
    let h = Harness::new();
    let text = h.seal(&stamped(&order(r#""order_no":"P1","amount":"+1.00""#)));
    h.drop_raw("P1-first", text.as_bytes());
    assert_eq!(h.wait("P1-first").status, Status::Success);
    h.drop_raw("P1-again", text.as_bytes());
    let r = h.wait("P1-again");
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_REPLAY")));
    assert_eq!(h.sim.ledger().charged().len(), 1);
}

#[test]
fn inbox_that_disappears_and_comes_back() {
    let h = Harness::new();
    assert_eq!(h.pay("D0001", "+1.00").status, Status::Success);
    std::fs::remove_dir_all(h.inbox()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::create_dir_all(h.inbox()).unwrap();
    let stem = h.send(&Harness::order("W01", "D0002", "+2.00", None));
    assert_eq!(h.wait(&stem).status, Status::Success);
}
