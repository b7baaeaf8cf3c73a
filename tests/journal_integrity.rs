//! A journal that lost its history is noticed at start-up: no new order is taken until IT has
//! looked (`hisbridge journal check` / `accept`), through the real bridge and the real binary.

mod common;

use std::process::Command;

use common::Harness;
use hisbridge_core::his::Status;

fn hisbridge(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(args).output().unwrap()
}

#[test]
fn an_emptied_journal_takes_no_money_until_it_accepts_it() {
    let mut h = Harness::new();
    assert_eq!(h.pay("J1", "+1.00").status, Status::Success);
    h.stop();
    let cfg = h.dir.path().join("hisbridge.toml");
    let cfg = cfg.to_str().unwrap();
    let ok = hisbridge(&["journal", "check", "--config", cfg]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));

    // The journal is emptied (a restore gone wrong, a bad copy) while the bridge is stopped.
    std::fs::write(&h.cfg.journal, b"").unwrap();
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{ext}", h.cfg.journal.display()));
    }
    let check = hisbridge(&["journal", "check", "--config", cfg]);
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(3), "{out}");
    assert!(out.contains("history: LOST"), "{out}");

    h.start();
    // The paid order again: the journal no longer knows it, and nothing new is taken.
    let r = h.pay("J1", "+1.00");
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_JOURNAL")), "{r:?}");
    assert_eq!(h.sim.ledger().sales_for("J1").len(), 1, "never charged twice");
    h.eventually("attention published", || {
        std::fs::read_to_string(h.dir.path().join("status.json")).unwrap_or_default().contains("history_lost")
    });
    h.stop();

    let accept = hisbridge(&["journal", "accept", "--config", cfg]);
    assert!(accept.status.success(), "{}", String::from_utf8_lossy(&accept.stderr));
    h.start();
    assert_eq!(h.pay("J2", "+2.00").status, Status::Success);
}
