//! The cashier's actions from the dashboard (the tray app's command layer calls exactly these):
//! against the real core, a real journal and the simulator on a pty, no window.

mod common;

use common::Harness;
use hisbridge_core::engine::OrderAction;
use hisbridge_core::his::Status;
use hisbridge_core::journal::State;
use hisbridge_sim::{Outcome, SimConfig};

fn act(h: &Harness, key: &str, a: OrderAction) -> Result<State, String> {
    let b = h.bridge.as_ref().unwrap();
    h.rt.as_ref().unwrap().block_on(b.order_action(key, a))
}

#[test]
fn cashier_cancels_a_running_and_a_queued_order() {
    let sim = SimConfig { script: [Outcome::NoScan].into(), ..SimConfig::default() };
    let h = Harness::with(sim, "");
    let first = h.send(&Harness::order("W01", "K1", "+5.00", None));
    h.eventually("K1 on the POS", || h.sim.ledger().get("K1.1").is_some());
    let second = h.send(&Harness::order("W01", "K2", "+6.00", None));
    h.eventually("K2 queued", || h.journal().get_by_key("K2").unwrap().is_some());

    assert_eq!(act(&h, "K2", OrderAction::Cancel), Ok(State::Cancelled));
    let r = h.wait(&second);
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Cancelled, Some("E_CANCELLED")));
    assert!(h.sim.ledger().get("K2.1").is_none(), "a queued order never reaches the POS");

    assert_eq!(act(&h, "K1", OrderAction::Cancel), Ok(State::Cancelling));
    let r = h.wait(&first);
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(h.sim.ledger().get("K1.1").unwrap().status, "CANCELLED");
    let events: Vec<_> = h
        .journal()
        .events(h.journal().get_by_key("K2").unwrap().unwrap().id)
        .unwrap()
        .into_iter()
        .map(|e| e.2)
        .collect();
    assert!(events.iter().any(|d| d.as_deref() == Some("cancelled by the cashier before sending")), "{events:?}");
}

#[test]
fn paid_orders_cannot_be_cancelled_and_lost_results_are_rewritten() {
    let h = Harness::new();
    let stem = h.send(&Harness::order("W01", "K3", "+7.00", None));
    assert_eq!(h.wait(&stem).status, Status::Success);
    let e = act(&h, "K3", OrderAction::Cancel).unwrap_err();
    assert!(e.contains("already final"), "{e}");
    assert_eq!(h.sim.ledger().get("K3.1").unwrap().status, "PAID", "nothing reversed");

    // The HIS lost the result file: the cashier writes it again.
    let file = h.outbox().join(format!("{stem}.res"));
    std::fs::remove_file(&file).unwrap();
    assert_eq!(act(&h, "K3", OrderAction::Rewrite), Ok(State::Success));
    assert_eq!(h.wait(&stem).status, Status::Success);
    assert_eq!(act(&h, "K3", OrderAction::Query), Ok(State::Success));
    assert!(act(&h, "NOPE", OrderAction::Query).unwrap_err().contains("no order"));
}
