//! Faults on the serial line, injected by the POS simulator: the link layer recovers or
//! reports, and a link retry never becomes a second payment.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Harness;
use hisbridge_core::his::Status;
use hisbridge_sim::{Outcome, SimConfig};

fn one_charge(h: &Harness, key: &str) {
    let sales = h.sim.ledger().sales_for(key).len();
    assert_eq!(sales, 1, "exactly one SALE for {key}");
}

#[test]
fn lost_ack_means_identical_resend_and_one_charge() {
    let h = Harness::new();
    h.eventually("POS ready", || h.bridge.as_ref().unwrap().pos.status().link == hisbridge_core::pos::Link::Ready);
    h.sim.faults.drop_acks.store(2, Ordering::SeqCst);
    let r = h.pay("F0001", "+3.00");
    assert_eq!(r.status, Status::Success);
    one_charge(&h, "F0001");
}

#[test]
fn corrupted_frames_from_the_pos_are_naked_and_resent() {
    let h = Harness::new();
    h.eventually("POS ready", || h.bridge.as_ref().unwrap().pos.status().link == hisbridge_core::pos::Link::Ready);
    h.sim.faults.corrupt_frames.store(3, Ordering::SeqCst);
    assert_eq!(h.pay("F0002", "+3.00").status, Status::Success);
    one_charge(&h, "F0002");
}

#[test]
fn duplicated_frames_are_acted_on_once() {
    let h = Harness::new();
    h.sim.faults.duplicate_frames.store(10, Ordering::SeqCst);
    let r = h.pay("F0003", "+3.00");
    assert_eq!(r.status, Status::Success);
    one_charge(&h, "F0003");
    let row = h.journal().get_by_key("F0003").unwrap().unwrap();
    let finals = h.journal().events(row.id).unwrap().into_iter().filter(|e| e.1 == "SUCCESS").count();
    assert_eq!(finals, 1, "the duplicated RESULT was not applied twice");
}

#[test]
fn frame_cut_in_half_is_reassembled_or_resent() {
    let h = Harness::new();
    // A short gap: the halves join into one frame.
    h.sim.faults.split_gap_ms.store(50, Ordering::SeqCst);
    h.sim.faults.split_frames.store(4, Ordering::SeqCst);
    assert_eq!(h.pay("F0004", "+3.00").status, Status::Success);
    // A gap past the inter-byte timeout: the first half is dropped, the sender re-sends.
    h.sim.faults.split_gap_ms.store(700, Ordering::SeqCst);
    h.sim.faults.split_frames.store(1, Ordering::SeqCst);
    assert_eq!(h.pay("F0005", "+3.00").status, Status::Success);
    one_charge(&h, "F0004");
    one_charge(&h, "F0005");
}

#[test]
fn sale_lost_on_the_way_in_is_resent_by_the_link_not_the_engine() {
    let h = Harness::new();
    h.eventually("POS ready", || h.bridge.as_ref().unwrap().pos.status().link == hisbridge_core::pos::Link::Ready);
    h.sim.faults.drop_input.store(1, Ordering::SeqCst);
    assert_eq!(h.pay("F0006", "+3.00").status, Status::Success);
    one_charge(&h, "F0006");
    assert!(h.sim.ledger().get("F0006.2").is_none(), "no second attempt");
}

#[test]
fn pos_restarting_mid_transaction_ends_in_a_confirmed_state() {
    let sim = SimConfig { script: [Outcome::NoScan].into(), ..SimConfig::default() };
    let h = Harness::with(sim, "[timeouts]\nscan_secs = 2\n");
    let stem = h.send(&Harness::order("W01", "F0007", "+3.00", None));
    h.eventually("SALE at the POS", || h.sim.ledger().get("F0007.1").is_some());
    h.sim.faults.restart.store(true, Ordering::SeqCst);
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Cancelled, "{r:?}");
    assert_eq!(h.sim.ledger().get("F0007.1").unwrap().status, "CANCELLED");
    one_charge(&h, "F0007");
    // The link carries on.
    assert_eq!(h.pay("F0008", "+3.00").status, Status::Success);
}

#[test]
fn noisy_line_soak_every_order_exactly_once() {
    let h = Harness::with(SimConfig { scan_delay: Duration::from_millis(20), ..SimConfig::default() }, "");
    h.sim.faults.noise_permille.store(80, Ordering::SeqCst);
    let stems: Vec<(String, String)> = (0..20)
        .map(|i| {
            let no = format!("S{i:04}");
            (h.send(&Harness::order("W01", &no, "+1.00", None)), no)
        })
        .collect();
    for (stem, no) in &stems {
        let r = h.wait(stem);
        let ledger = h.sim.ledger();
        let paid: Vec<_> = ledger.sales_for(no).into_iter().filter(|e| e.status == "PAID").collect();
        match r.status {
            Status::Success => {
                assert_eq!(paid.len(), 1, "{no}: one charge");
                assert_eq!(r.pay_order_no, paid[0].pay_order_no, "{no}: the charge is reported");
            }
            Status::Failed | Status::Cancelled => assert!(paid.is_empty(), "{no}: {r:?} but charged"),
            other => panic!("{no}: unexpected final status {other:?}"),
        }
    }
    h.sim.faults.noise_permille.store(0, Ordering::SeqCst);
}

#[test]
fn a_result_the_pos_never_sends_is_found_by_polling() {
    // The wallet takes the money; the POS never sends RESULT. The bridge asks while it waits.
    let h = Harness::with(
        SimConfig { script: [Outcome::Silent].into(), ..SimConfig::default() },
        "[timeouts]\nquery_interval_secs = 1\n",
    );
    let r = h.pay("F0009", "+3.00");
    assert_eq!(r.status, Status::Success);
    assert_eq!(r.pay_order_no, h.sim.ledger().get("F0009.1").unwrap().pay_order_no);
    one_charge(&h, "F0009");
}
