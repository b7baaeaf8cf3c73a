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

#[test]
fn pause_refuses_new_orders_and_the_connection_test_reads_the_pos() {
    let h = Harness::new();
    let b = h.bridge.as_ref().unwrap();
    let rt = h.rt.as_ref().unwrap();
    h.eventually("POS connected", || b.pos.status().link == hisbridge_core::pos::Link::Ready);
    let info = rt.block_on(b.pos_info()).expect("the POS answers INFO");
    assert_eq!(info.device_id, common::DEVICE);
    assert_eq!(info.time.len(), 14);

    rt.block_on(b.pause(true)).unwrap();
    let r = h.wait(&h.send(&Harness::order("W01", "P1", "+1.00", None)));
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_PAUSED")));
    assert!(h.sim.ledger().get("P1.1").is_none());
    rt.block_on(b.pause(false)).unwrap();
    assert_eq!(h.pay("P2", "+1.00").status, Status::Success);
}

#[test]
fn settings_are_checked_saved_and_applied() {
    use hisbridge_core::settings::{self, SettingsForm};
    use hisbridge_core::transport::TransportKind;
    let h = Harness::new();
    let path = h.dir.path().join("hisbridge.toml");
    let form = SettingsForm::from_config(&h.cfg);
    assert_eq!(form.key_id.as_deref(), Some("K1"));

    // Each mistake is named by its field, and nothing is written.
    let before = std::fs::read_to_string(&path).unwrap();
    for (f, field) in [
        (SettingsForm { baud: 1234, ..form.clone() }, "baud"),
        (SettingsForm { device_id: "POS 1".into(), ..form.clone() }, "device_id"),
        (SettingsForm { terminals: vec![], ..form.clone() }, "terminals"),
        (SettingsForm { terminals: vec!["W01".into(), "W01".into()], ..form.clone() }, "terminals"),
        (SettingsForm { scan_secs: 0, ..form.clone() }, "scan_secs"),
        (SettingsForm { outbox: form.inbox.clone(), ..form.clone() }, "outbox"),
        (SettingsForm { socket_port: Some(0), ..form.clone() }, "socket_port"),
        (SettingsForm { pos_port: "usb:2fb8".into(), ..form.clone() }, "pos_port"),
        (SettingsForm { transport: TransportKind::Usb, ..form.clone() }, "transport"),
        (SettingsForm { pos_unavailable_secs: 5, ..form.clone() }, "pos_unavailable_secs"),
    ] {
        let e = settings::save(&path, &f).unwrap_err();
        assert_eq!(e.field().map(|f| f.field.as_str()), Some(field), "{e}");
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // A valid change: a new terminal applies at once, without a restart.
    assert_eq!(form.pos_unavailable_secs, 120);
    let mut f = form.clone();
    f.terminals.push("W09".into());
    f.pos_unavailable_secs = 300;
    f.notify.success = true;
    let cfg = settings::save(&path, &f).unwrap();
    assert!(!settings::needs_restart(&h.cfg, &cfg));
    assert!(cfg.notify.success);
    let reloaded = hisbridge_core::config::Config::load(&path).unwrap();
    assert!(reloaded.terminals.contains("W09"));
    assert_eq!(reloaded.timeouts.pos_unavailable, std::time::Duration::from_secs(300));
    assert_eq!(reloaded.pos.port, h.cfg.pos.port, "untouched settings stay");
    h.rt.as_ref().unwrap().block_on(h.bridge.as_ref().unwrap().reconfigure(&cfg)).unwrap();
    let r = h.wait(&h.send(&Harness::order("W09", "S9", "+1.00", None)));
    assert_eq!(r.status, Status::Success, "{r:?}");
    let moved = SettingsForm { pos_port: "/dev/ttyACM9".into(), ..f.clone() };
    let (_, c2) = settings::apply(&path, &moved).unwrap();
    assert!(settings::needs_restart(&cfg, &c2), "a new port needs the bridge to start again");
    // The POS by USB identity, raw USB: written as the config loader reads it.
    let usb = SettingsForm { pos_port: "usb:2fb8:0001:N5-0001".into(), transport: TransportKind::Usb, ..f.clone() };
    let (text, c3) = settings::apply(&path, &usb).unwrap();
    assert!(text.contains("transport = \"usb\""), "{text}");
    assert_eq!(c3.pos.transport, TransportKind::Usb);
    assert_eq!(SettingsForm::from_config(&c3).pos_port, "usb:2fb8:0001:N5-0001");
    assert!(settings::needs_restart(&cfg, &c3));

    // Key import: checked, stored owner-only, never echoed.
    let e = settings::import_key(&cfg, "key_id = \"K2\"\nkey = \"AAAA\"\n").unwrap_err();
    assert!(e.to_string().contains("32"), "{e}");
    let k2 = hisbridge_core::envelope::Key::generate("K2").unwrap();
    let id = settings::import_key(&cfg, &hisbridge_core::keyfile::to_text(&k2)).unwrap();
    assert_eq!(id, "K2");
    assert_eq!(hisbridge_core::keyfile::load(&cfg.key_file).unwrap().expose_bytes(), k2.expose_bytes());
}

#[test]
fn an_idle_bridge_does_not_keep_listing_its_inbox() {
    // Listing the inbox opens it; if that woke another listing the bridge would spin at full
    // CPU while idle. With file-system events the safety-net listing runs every 30 s
    // (intake::SAFETY_NET): none in 3 s.
    let h = Harness::new();
    assert_eq!(h.pay("IDLE1", "+1.00").status, Status::Success);
    let before = hisbridge_core::intake::listings(h.inbox());
    std::thread::sleep(std::time::Duration::from_secs(3));
    let n = hisbridge_core::intake::listings(h.inbox()) - before;
    assert!(n <= 1, "{n} listings of an idle inbox in 3 s");
}

#[test]
fn orders_are_taken_by_their_event_without_listing_what_else_lies_in_the_inbox() {
    // An HIS that never cleans up: its temp files, logs and exports stay in the inbox. Each
    // order is found by the name its event reports; the inbox is not listed for it.
    let h = Harness::new();
    for i in 0..2000 {
        std::fs::write(h.inbox().join(format!("~his{i:05}.tmp.log")), b"not for the bridge").unwrap();
    }
    assert_eq!(h.pay("CLUTTER0", "+1.00").status, Status::Success);
    let before = hisbridge_core::intake::listings(h.inbox());
    for i in 1..=5 {
        assert_eq!(h.pay(&format!("CLUTTER{i}"), "+1.00").status, Status::Success);
    }
    let n = hisbridge_core::intake::listings(h.inbox()) - before;
    assert_eq!(n, 0, "the inbox was listed {n} times for 5 orders");
    assert_eq!(common::list(h.inbox()).len(), 2000, "nothing of the HIS's own was touched");
}
