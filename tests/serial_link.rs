//! The serial transport through real pseudo-terminals: reconnect after the port disappears,
//! the device ID check, and a link that goes silent in the middle of a payment.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Harness;
use hisbridge_core::config::Config;
use hisbridge_core::his::Status;
use hisbridge_core::pos::Link;
use hisbridge_sim::{Outcome, SimConfig};

#[test]
fn port_that_disappears_and_comes_back_is_reopened() {
    let mut h = Harness::new();
    // Point the bridge at a symlink so the "COM port" can vanish and return.
    let link = h.dir.path().join("COM-test");
    std::os::unix::fs::symlink(h.sim.port_path(), &link).unwrap();
    h.stop();
    let text = common::config_text(h.dir.path(), link.to_str().unwrap(), "");
    std::fs::write(h.dir.path().join("hisbridge.toml"), text).unwrap();
    h.cfg = Config::load(&h.dir.path().join("hisbridge.toml")).unwrap();
    h.start();
    assert_eq!(h.pay("B0001", "+1.00").status, Status::Success);

    // Unplug: the simulator goes away with its pty, the link disappears.
    let first_ledger = h.sim.ledger();
    std::fs::remove_file(&link).unwrap();
    h.sim = hisbridge_sim::spawn_on_pty(SimConfig::default()).unwrap();
    let pos = h.bridge.as_ref().unwrap().pos.clone();
    h.eventually("bridge notices the port is gone", || matches!(pos.status().link, Link::PortClosed { .. }));
    // Plug back in (a new pty behind the same name).
    std::os::unix::fs::symlink(h.sim.port_path(), &link).unwrap();
    h.eventually("bridge reconnects", || pos.status().link == Link::Ready);
    assert_eq!(h.pay("B0002", "+2.00").status, Status::Success);
    assert!(first_ledger.get("B0001.1").is_some());
    assert!(h.sim.ledger().get("B0002.1").is_some());
}

#[test]
fn wrong_device_gets_no_money_command() {
    let h = Harness::with(SimConfig { device_id: "POS-9999".into(), ..SimConfig::default() }, "");
    let pos = h.bridge.as_ref().unwrap().pos.clone();
    h.eventually("handshake", || matches!(pos.status().link, Link::WrongDevice { .. }));
    let stem = h.send(&Harness::order("W01", "B0003", "+1.00", None));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(h.sim.ledger().entries.is_empty(), "no SALE to a POS with another device ID");
    assert!(!h.outbox().join(format!("{stem}.res")).exists() || h.wait_any(&stem).status == Status::Processing);
    let row = h.journal().get_by_key("B0003").unwrap().unwrap();
    assert_eq!(row.state.as_str(), "ACCEPTED", "order waits in the queue, nothing sent");
}

#[test]
fn silent_pos_mid_payment_leaves_unknown_then_query_resolves() {
    let sim = SimConfig {
        script: [Outcome::PayingThenPaid(hisbridge_protocol::Channel::Wechat)].into(),
        paying_delay: Duration::from_millis(3000),
        ..SimConfig::default()
    };
    let h = Harness::with(sim, "");
    let stem = h.send(&Harness::order("W01", "B0004", "+6.00", None));
    h.eventually("patient paying", || {
        h.journal().get_by_key("B0004").unwrap().is_some_and(|r| r.state.as_str() == "PAYING")
    });
    // The cable is pulled on the POS side: the POS completes the payment, the bridge hears nothing.
    h.sim.faults.mute.store(true, Ordering::SeqCst);
    h.eventually("bridge reports UNKNOWN", || {
        hisbridge_core::hisclient::read_result(h.outbox(), &h.key, &stem)
            .unwrap()
            .is_some_and(|r| r.status == Status::Unknown)
    });
    assert_eq!(h.sim.ledger().get("B0004.1").unwrap().status, "PAID");
    // Cable back: the bridge queries, never re-sends, and reports the real outcome.
    h.sim.faults.mute.store(false, Ordering::SeqCst);
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success);
    assert_eq!(h.sim.ledger().sales_for("B0004").len(), 1, "no second SALE");
    assert_eq!(r.pay_order_no, h.sim.ledger().get("B0004.1").unwrap().pay_order_no);
}

#[test]
fn patient_who_never_scans_is_cancelled_after_the_deadline() {
    let h = Harness::with(
        SimConfig { script: [Outcome::NoScan].into(), ..SimConfig::default() },
        "[timeouts]\nscan_secs = 1\n",
    );
    let r = h.pay("B0005", "+7.00");
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(r.error_code.as_deref(), Some("E_TIMEOUT"));
    assert_eq!(h.sim.ledger().get("B0005.1").unwrap().status, "CANCELLED");
}

#[test]
fn a_second_bridge_on_the_same_journal_does_not_start_and_sees_the_first() {
    // The service and the tray app share one config: only one drives the POS.
    let h = Harness::new();
    h.eventually("POS ready", || h.bridge.as_ref().unwrap().pos.status().link == Link::Ready);
    let status = hisbridge_core::instance::status_path(&h.cfg.journal);
    h.eventually("status published", || {
        hisbridge_core::instance::read_status(&status).is_some_and(|s| s.link == "ready")
    });
    let key = hisbridge_core::keyfile::load(&h.cfg.key_file).unwrap();
    let second =
        h.rt.as_ref().unwrap().block_on(async { hisbridge_core::bridge::Bridge::start_as(&h.cfg, key, "tray") });
    match second {
        Err(hisbridge_core::bridge::StartError::Locked(hisbridge_core::instance::LockError::Held(Some(s)))) => {
            assert_eq!((s.mode.as_str(), s.pid), ("run", std::process::id()));
            assert_eq!(s.device_id.as_deref(), Some(common::DEVICE));
            assert_eq!(s.pos_status().link, Link::Ready);
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a second bridge started on the same journal"),
    }
    // The first carries on.
    assert_eq!(h.pay("L0001", "+1.00").status, Status::Success);
}
