//! A full disk and a read-only result folder: the payment is journaled, nothing is charged
//! twice, and the result file is written as soon as the folder can take it. These need root
//! (mount); elsewhere they say so and pass without checking.

mod common;

use std::path::Path;
use std::process::Command;

use common::Harness;
use hisbridge_core::his::Status;

fn mount(args: &[&str]) -> bool {
    Command::new("mount").args(args).status().is_ok_and(|s| s.success())
}

fn umount(p: &Path) {
    let _ = Command::new("umount").arg(p).status();
}

fn harness() -> Harness {
    Harness::with(Default::default(), "[timeouts]\nquery_interval_secs = 1\n")
}

#[test]
fn read_only_result_folder_then_writable_again() {
    let h = harness();
    let out = h.outbox().to_str().unwrap().to_string();
    if !(mount(&["--bind", &out, &out]) && mount(&["-o", "remount,bind,ro", &out])) {
        eprintln!("skipped: needs root and mount");
        umount(h.outbox());
        return;
    }
    let stem = h.send(&Harness::order("W01", "RO0001", "+2.00", None));
    h.eventually("paid and journaled", || {
        h.journal().get_by_key("RO0001").unwrap().is_some_and(|r| r.state.as_str() == "SUCCESS")
    });
    assert!(!h.outbox().join(format!("{stem}.res")).exists());
    umount(h.outbox());
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success);
    assert_eq!(h.sim.ledger().charged().len(), 1);
    h.eventually("result recorded as written", || {
        h.journal().get_by_key("RO0001").unwrap().is_some_and(|r| r.result_written_at.is_some())
    });
}

#[test]
fn full_disk_then_space_again() {
    let h = harness();
    let out = h.outbox().to_str().unwrap().to_string();
    if !mount(&["-t", "tmpfs", "-o", "size=16k", "tmpfs", &out]) {
        eprintln!("skipped: needs root and mount");
        return;
    }
    // Fill it.
    let filler = h.outbox().join("filler.bin");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]);
    let stem = h.send(&Harness::order("W01", "FD0001", "+2.00", None));
    h.eventually("paid and journaled", || {
        h.journal().get_by_key("FD0001").unwrap().is_some_and(|r| r.state.as_str() == "SUCCESS")
    });
    assert!(!h.outbox().join(format!("{stem}.res")).exists());
    std::fs::remove_file(&filler).unwrap();
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success);
    assert_eq!(h.sim.ledger().charged().len(), 1);
    let leftovers: Vec<_> = common::list(h.outbox()).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "no temp files left behind: {leftovers:?}");
    umount(h.outbox());
}
