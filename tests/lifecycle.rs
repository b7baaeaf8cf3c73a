//! The order lifecycle seen from the HIS: cancel and query, deadlines, the queue, refunds.

mod common;

use std::time::Duration;

use common::Harness;
use hisbridge_core::his::{InstructionKind, Status};
use hisbridge_sim::{Mark, Outcome, SimConfig};

fn state_of(h: &Harness, key: &str) -> Option<String> {
    h.journal().get_by_key(key).unwrap().map(|r| r.state.as_str().to_string())
}

#[test]
fn his_cancels_a_collection_running_on_the_pos() {
    let h = Harness::with(SimConfig { script: [Outcome::NoScan].into(), ..SimConfig::default() }, "");
    let stem = h.send(&Harness::order("W01", "L0001", "+5.00", None));
    h.eventually("waiting for the scan", || h.sim.ledger().get("L0001.1").is_some());
    let cancel = h.send(&Harness::ask(InstructionKind::Cancel, "L0001"));
    let r = h.wait(&stem);
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Cancelled, Some("E_CANCELLED")));
    assert_eq!(h.wait(&cancel).status, Status::Cancelled, "the cancel's own answer");
    assert_eq!(h.sim.ledger().get("L0001.1").unwrap().status, "CANCELLED");
}

#[test]
fn his_cancels_a_queued_order_that_never_reaches_the_pos() {
    let h = Harness::with(SimConfig { script: [Outcome::NoScan].into(), ..SimConfig::default() }, "");
    let first = h.send(&Harness::order("W01", "L0002", "+5.00", None));
    let second = h.send(&Harness::order("W01", "L0003", "+6.00", None));
    h.eventually("second order queued", || state_of(&h, "L0003").as_deref() == Some("ACCEPTED"));
    h.send(&Harness::ask(InstructionKind::Cancel, "L0003"));
    assert_eq!(h.wait(&second).status, Status::Cancelled);
    assert!(h.sim.ledger().get("L0003.1").is_none(), "never sent");
    h.send(&Harness::ask(InstructionKind::Cancel, "L0002"));
    assert_eq!(h.wait(&first).status, Status::Cancelled);
}

#[test]
fn query_returns_the_current_then_the_final_result() {
    let sim = SimConfig {
        script: [Outcome::PayingThenPaid(hisbridge_protocol::Channel::Alipay)].into(),
        paying_delay: Duration::from_millis(3000),
        ..SimConfig::default()
    };
    let h = Harness::with(sim, "");
    let stem = h.send(&Harness::order("W01", "L0004", "+5.00", None));
    h.eventually("patient paying", || state_of(&h, "L0004").as_deref() == Some("PAYING"));
    let q = h.send(&Harness::ask(InstructionKind::Query, "L0004"));
    assert_eq!(h.wait_any(&q).status, Status::Processing);
    let r = h.wait(&q);
    assert_eq!((r.status, r.channel.as_deref()), (Status::Success, Some("ALIPAY")));
    assert_eq!(h.wait(&stem).pay_order_no, r.pay_order_no);
    // Cancelling a finished order changes nothing.
    let c = h.send(&Harness::ask(InstructionKind::Cancel, "L0004"));
    assert_eq!(h.wait(&c).status, Status::Success);
    assert_eq!(h.sim.ledger().get("L0004.1").unwrap().status, "PAID");
}

#[test]
fn patient_who_never_finishes_the_password_is_cancelled() {
    let h = Harness::with(
        SimConfig { script: [Outcome::PayingForever].into(), ..SimConfig::default() },
        "[timeouts]\npassword_secs = 1\n",
    );
    let r = h.pay("L0005", "+5.00");
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Cancelled, Some("E_TIMEOUT")));
}

#[test]
fn cancel_after_the_wallet_took_the_money_is_reported_as_reversed() {
    // The POS takes the money but never says so; the deadline passes; the cancel reverses it.
    let h = Harness::with(
        SimConfig { script: [Outcome::Silent].into(), ..SimConfig::default() },
        "[timeouts]\nscan_secs = 1\n",
    );
    let r = h.pay("L0006", "+5.00");
    assert_eq!(r.status, Status::Reversed, "{r:?}");
    assert_eq!(h.sim.ledger().get("L0006.1").unwrap().status, "REVERSED");
    assert!(h.sim.ledger().charged().is_empty());
}

#[test]
fn orders_queue_one_transaction_at_a_time_in_arrival_order() {
    let h = Harness::with(SimConfig { scan_delay: Duration::from_millis(100), ..SimConfig::default() }, "");
    let stems: Vec<String> = (0..4).map(|i| h.send(&Harness::order("W01", &format!("Q{i}"), "+1.00", None))).collect();
    for s in &stems {
        assert_eq!(h.wait(s).status, Status::Success);
    }
    let trace = h.sim.trace.lock().unwrap().clone();
    let seq: Vec<(String, Mark)> = trace.into_iter().map(|(r, m, _)| (r, m)).collect();
    let expected: Vec<(String, Mark)> =
        (0..4).flat_map(|i| [(format!("Q{i}.1"), Mark::SaleReceived), (format!("Q{i}.1"), Mark::ResultSent)]).collect();
    assert_eq!(seq, expected, "each SALE ends before the next starts, in arrival order");
}

#[test]
fn partial_refunds_up_to_what_was_paid_with_refund_numbers_reused_on_retry() {
    let h = Harness::new();
    assert_eq!(h.pay("L0007", "+10.00").status, Status::Success);
    let r1 = Harness::order("W01", "L0007", "-4.00", Some("R1"));
    assert_eq!(h.wait(&h.send(&r1)).status, Status::Refunded);
    // The same refund again: the stored result, no second refund.
    assert_eq!(h.wait(&h.send(&r1)).status, Status::Refunded);
    assert_eq!(h.wait(&h.send(&Harness::order("W01", "L0007", "-6.00", Some("R2")))).status, Status::Refunded);
    let r3 = h.wait(&h.send(&Harness::order("W01", "L0007", "-0.01", Some("R3"))));
    assert_eq!(r3.error_code.as_deref(), Some("E_REFUND_EXCEEDS"));
    let refunds = h.sim.ledger().refunds().len();
    assert_eq!(refunds, 2);
    // Each refund's final state was confirmed by a query after the POS reported it.
    let trace = h.sim.trace.lock().unwrap().clone();
    for r in ["L0007@R1.1", "L0007@R2.1"] {
        let sent = trace.iter().position(|(x, m, _)| x == r && *m == Mark::ResultSent).unwrap();
        assert!(trace[sent..].iter().any(|(x, m, _)| x == r && *m == Mark::QueryReceived), "{r} confirmed by query");
    }
    // A refund number reused with another amount is a conflict.
    let c = h.wait(&h.send(&Harness::order("W01", "L0007", "-1.00", Some("R1"))));
    assert_eq!(c.error_code.as_deref(), Some("E_CONFLICT"));
}
