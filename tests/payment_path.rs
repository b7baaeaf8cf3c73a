//! End to end through real files, a real pseudo-terminal and a real SQLite file: each test
//! checks the decrypted result file and the simulator's ledger.

mod common;

use std::time::Duration;

use common::{Harness, DEVICE};
use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::his::Status;

#[test]
fn wechat_collection_is_paid_and_reported() {
    let h = Harness::new();
    let r = h.pay("A0001", "+12.30");
    assert_eq!(r.status, Status::Success);
    assert_eq!(r.channel.as_deref(), Some("WECHAT"));
    assert_eq!(r.device_id, DEVICE);
    assert_eq!(r.order_no.as_deref(), Some("A0001"));
    assert_eq!(r.amount.as_deref(), Some("+12.30"));
    assert!(r.finished_at.is_some());
    let ledger = h.sim.ledger();
    let e = ledger.get("A0001.1").expect("charged on the POS");
    assert_eq!((e.status, e.amount_fen, e.channel), ("PAID", 1230, Some("WECHAT")));
    assert_eq!(r.pay_order_no, e.pay_order_no, "payment-system order number reported");
    assert_eq!(ledger.charged().len(), 1);
    // The claimed instruction file ends in the dated archive; the inbox is empty.
    h.eventually("instruction archived", || h.archived().iter().any(|n| n.starts_with("A0001-")));
    assert!(common::list(h.inbox()).is_empty());
}

#[test]
fn alipay_collection_is_paid_and_reported() {
    let h = Harness::new();
    let r = h.pay("A0002", "+8.60");
    assert_eq!((r.status, r.channel.as_deref()), (Status::Success, Some("ALIPAY")));
    assert_eq!(h.sim.ledger().get("A0002.1").unwrap().channel, Some("ALIPAY"));
}

#[test]
fn refund_of_a_paid_order() {
    let h = Harness::new();
    assert_eq!(h.pay("A0003", "+20.00").status, Status::Success);
    let stem = h.send(&Harness::order("W01", "A0003", "-5.00", Some("R1")));
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Refunded);
    assert_eq!(r.refund_no.as_deref(), Some("R1"));
    assert_eq!(r.amount.as_deref(), Some("-5.00"));
    let ledger = h.sim.ledger();
    let refund = ledger.get("A0003@R1.1").expect("refund on the POS");
    assert_eq!((refund.status, refund.amount_fen, refund.original.as_deref()), ("REFUNDED", 500, Some("A0003.1")));
    // A second refund beyond what is left is refused before it reaches the POS.
    let stem = h.send(&Harness::order("W01", "A0003", "-15.01", Some("R2")));
    let r = h.wait(&stem);
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_REFUND_EXCEEDS")));
    assert!(h.sim.ledger().get("A0003@R2.1").is_none());
}

#[test]
fn declined_payment_is_failed_and_nothing_charged() {
    let h = Harness::new();
    let r = h.pay("A0004", "+1.91");
    assert_eq!(r.status, Status::Failed);
    assert_eq!(r.error_code.as_deref(), Some("E_PAYMENT_DECLINED"));
    assert!(r.error_message.as_deref().unwrap().contains("付款码"));
    assert!(h.sim.ledger().charged().is_empty());
    // Insufficient funds has its own words for the cashier.
    let r = h.pay("A0005", "+1.92");
    assert!(r.error_message.as_deref().unwrap().contains("余额不足"), "{r:?}");
}

#[test]
fn unknown_terminal_never_reaches_the_pos() {
    let h = Harness::new();
    let stem = h.send(&Harness::order("W99", "A0006", "+1.00", None));
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Rejected);
    assert_eq!(r.error_code.as_deref(), Some("E_TERMINAL"));
    assert_eq!(r.order_no.as_deref(), Some("A0006"));
    assert!(h.sim.ledger().entries.is_empty());
    // The result is written first (a crash then re-runs the refusal), the file moved after.
    h.eventually("refused file kept in error/", || h.error_files().contains(&format!("{stem}.ord.reason.txt")));
    let reason = std::fs::read_to_string(h.cfg.folders.error.join(format!("{stem}.ord.reason.txt"))).unwrap();
    assert!(reason.contains("E_TERMINAL") && reason.contains("未登记的收费终端"), "{reason}");
}

#[test]
fn tampered_file_is_refused() {
    let h = Harness::new();
    let mut text = h.seal(&Harness::order("W01", "A0007", "+1.00", None).to_json()).into_bytes();
    let n = text.len();
    text[n - 5] = if text[n - 5] == b'A' { b'B' } else { b'A' };
    h.drop_raw("A0007", &text);
    let r = h.wait("A0007");
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_DECRYPT")));
    assert!(h.sim.ledger().entries.is_empty());
    h.eventually("refused file kept in error/", || h.error_files().contains(&"A0007.ord".to_string()));
}

#[test]
fn wrong_key_is_refused() {
    let h = Harness::new();
    let other = Key::generate("K1").unwrap();
    let text = other.seal(Direction::ToBridge, Harness::order("W01", "A0008", "+1.00", None).to_json().as_bytes());
    h.drop_raw("A0008", text.as_bytes());
    assert_eq!(h.wait("A0008").error_code.as_deref(), Some("E_DECRYPT"));
    // Another key id is named as such at once.
    let other = Key::generate("K9").unwrap();
    let text = other.seal(Direction::ToBridge, Harness::order("W01", "A0009", "+1.00", None).to_json().as_bytes());
    h.drop_raw("A0009", text.as_bytes());
    let r = h.wait("A0009");
    assert_eq!(r.error_code.as_deref(), Some("E_KEY_ID"));
    assert!(r.error_message_en.unwrap().contains("K9"));
    assert!(h.sim.ledger().entries.is_empty());
}

#[test]
fn half_written_file_is_taken_once_complete() {
    let h = Harness::new();
    let text = h.seal(&Harness::order("W01", "A0010", "+3.00", None).to_json());
    let path = h.inbox().join("A0010.ord");
    let (a, b) = text.split_at(text.len() / 2);
    // The writer keeps the file open while it pauses, as a program writing it does.
    use std::io::Write;
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(a.as_bytes()).unwrap();
    f.flush().unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert!(path.exists(), "a half-written file is left alone");
    f.write_all(b.as_bytes()).unwrap();
    drop(f);
    let r = h.wait("A0010");
    assert_eq!(r.status, Status::Success);
    assert_eq!(h.sim.ledger().charged().len(), 1);
}

#[test]
fn a_complete_file_that_fails_to_open_is_refused_at_once_not_after_give_up() {
    // give_up_secs is an hour: only a file known to be complete can be answered now.
    let h = Harness::with(hisbridge_sim::SimConfig::default(), "give_up_secs = 3600\n");
    let other = hisbridge_core::envelope::Key::new("K1", [9; 32]).unwrap();
    let json = Harness::order("W01", "A0012", "+3.00", None).to_json();
    h.drop_raw("A0012", other.seal(hisbridge_core::envelope::Direction::ToBridge, json.as_bytes()).as_bytes());
    let r = h.wait("A0012");
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_DECRYPT")), "{r:?}");
    assert_eq!(r.order_no, None, "nothing could be read of it");
    h.drop_raw("A0013", b"");
    assert_eq!(h.wait("A0013").error_code.as_deref(), Some("E_ENVELOPE"));
    assert!(h.sim.ledger().entries.is_empty());
}

#[test]
fn temp_and_dot_files_are_ignored() {
    let h = Harness::new();
    let text = h.seal(&Harness::order("W01", "A0011", "+3.00", None).to_json());
    for name in ["A0011.ord.tmp", ".A0011.ord", "A0011.ord.part", "notes.txt"] {
        std::fs::write(h.inbox().join(name), &text).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(common::list(h.inbox()), vec![".A0011.ord", "A0011.ord.part", "A0011.ord.tmp", "notes.txt"]);
    assert!(common::list(h.outbox()).is_empty());
    assert!(h.sim.ledger().entries.is_empty());
    // Renamed into place, the same content is taken.
    std::fs::rename(h.inbox().join("A0011.ord.tmp"), h.inbox().join("A0011.ord")).unwrap();
    assert_eq!(h.wait("A0011").status, Status::Success);
}

#[test]
fn done_marker_is_honoured() {
    let h = Harness::new();
    let text = h.seal(&Harness::order("W01", "A0012", "+3.00", None).to_json());
    std::fs::write(h.inbox().join("A0012.ord"), &text).unwrap();
    std::fs::write(h.inbox().join("A0012.ord.done"), b"").unwrap();
    assert_eq!(h.wait("A0012").status, Status::Success);
    h.eventually("marker archived with the file", || h.archived().contains(&"A0012.ord.done".to_string()));
}

#[test]
fn repeated_instruction_returns_the_stored_result_and_charges_once() {
    let h = Harness::new();
    let ins = Harness::order("W01", "A0013", "+4.00", None);
    let first = h.wait(&h.send(&ins));
    let again = h.wait(&h.send(&ins));
    assert_eq!(first.status, Status::Success);
    assert_eq!(again.pay_order_no, first.pay_order_no);
    assert_eq!(h.sim.ledger().charged().len(), 1);
    // Same order number, other amount: a conflict, loudly.
    let r = h.wait(&h.send(&Harness::order("W01", "A0013", "+5.00", None)));
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_CONFLICT")));
    assert_eq!(h.sim.ledger().charged().len(), 1);
    // A declined order may be tried again with the same number: a new attempt.
    assert_eq!(h.pay("A0014", "+1.91").status, Status::Failed);
    let retry = h.wait(&h.send(&Harness::order("W01", "A0014", "+1.91", None)));
    assert_eq!(retry.status, Status::Failed);
    assert!(h.sim.ledger().get("A0014.2").is_some(), "second attempt has its own POS reference");
}

#[test]
fn result_fed_back_as_order_is_refused() {
    let h = Harness::new();
    h.pay("A0015", "+1.00");
    let res_name = common::list(h.outbox()).into_iter().find(|n| n.starts_with("A0015-")).unwrap();
    let bytes = std::fs::read(h.outbox().join(&res_name)).unwrap();
    h.drop_raw("A0015-again", &bytes);
    let r = h.wait("A0015-again");
    assert_eq!(r.error_code.as_deref(), Some("E_DIRECTION"));
    assert_eq!(h.sim.ledger().charged().len(), 1);
}

#[test]
fn every_state_change_is_journaled() {
    let h = Harness::new();
    h.pay("A0016", "+1.93"); // patient enters a password, then paid
    let j = h.journal();
    let row = j.get_by_key("A0016").unwrap().unwrap();
    let states: Vec<String> = j.events(row.id).unwrap().into_iter().map(|e| e.1).collect();
    assert_eq!(states, ["ACCEPTED", "SENT", "PAYING", "SUCCESS"]);
}
