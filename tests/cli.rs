//! The `hisbridge` command line as HIS programmers use it for joint testing.

mod common;

use std::process::Command;

use common::Harness;
use hisbridge_core::envelope::{Direction, Key};

fn hisbridge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn his_check_explains_what_is_wrong() {
    let h = Harness::new();
    let cfg = h.dir.path().join("hisbridge.toml");
    let d = tempfile::tempdir().unwrap();
    let stamp = chrono::Local::now().to_rfc3339();
    let write = |name: &str, text: String| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "G1.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"W01","order_no":"G1","amount":"+1.00","sent_at":"{stamp}"}}"#
        )),
    );
    let amount = write(
        "G2.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"W01","order_no":"G2","amount":"12.5","sent_at":"{stamp}"}}"#
        )),
    );
    let terminal = write(
        "G3.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"X9","order_no":"G3","amount":"+1.00","sent_at":"{stamp}"}}"#
        )),
    );
    let other = Key::generate("K7").unwrap();
    let keyid = write("G4.ord", other.seal(Direction::ToBridge, b"{}"));
    let (ok, out) = hisbridge(&["his", "check", "--config", cfg.to_str().unwrap(), &good]);
    assert!(ok, "{out}");
    assert!(out.contains("OK") && out.contains("collect order G1 amount +1.00"), "{out}");
    let (ok, out) = hisbridge(&["his", "check", "--config", cfg.to_str().unwrap(), &amount, &terminal, &keyid]);
    assert!(!ok);
    assert!(out.contains("E_AMOUNT") && out.contains("explicit sign"), "{out}");
    assert!(out.contains("E_TERMINAL") && out.contains("\"X9\""), "{out}");
    assert!(out.contains("E_KEY_ID") && out.contains("\"K7\""), "{out}");
    assert!(out.contains("3 of 3"), "{out}");
}

#[test]
fn his_send_over_either_channel() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(Default::default(), &format!("[socket]\nport = {port}\n"));
    let cfg = h.dir.path().join("hisbridge.toml");
    let cfg = cfg.to_str().unwrap();
    let (ok, out) =
        hisbridge(&["his", "send", "--config", cfg, "--terminal", "W01", "--order", "C1", "--amount", "+2.00"]);
    assert!(ok && out.contains("\"status\": \"SUCCESS\""), "{out}");
    let (ok, out) = hisbridge(&[
        "his",
        "send",
        "--config",
        cfg,
        "--terminal",
        "W01",
        "--order",
        "C2",
        "--amount",
        "+3.00",
        "--channel",
        "socket",
    ]);
    assert!(ok && out.contains("\"status\": \"SUCCESS\""), "{out}");
    let (ok, out) =
        hisbridge(&["his", "query", "--config", cfg, "--terminal", "W01", "--order", "C2", "--channel", "socket"]);
    assert!(ok && out.contains("\"order_no\": \"C2\""), "{out}");
    let (ok, out) = hisbridge(&[
        "his",
        "send",
        "--config",
        cfg,
        "--terminal",
        "W01",
        "--order",
        "C1",
        "--amount",
        "-2.00",
        "--refund-no",
        "R1",
    ]);
    assert!(ok && out.contains("\"status\": \"REFUNDED\""), "{out}");
    let (ok, out) =
        hisbridge(&["his", "send", "--config", cfg, "--terminal", "W01", "--order", "C3", "--amount", "+1e3"]);
    assert!(!ok && out.contains("--amount"), "{out}");
    assert_eq!(h.sim.ledger().charged().len(), 2);
}
