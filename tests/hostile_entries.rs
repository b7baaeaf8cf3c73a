//! Inbox entries an attacker or a broken HIS leaves that are not plain instruction files: each
//! gets an answer the HIS can see (a result file and/or a reason file in error/), nothing blocks,
//! nothing outside the data folder is touched, and a valid order after them is still paid.

#![cfg(unix)]

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use common::Harness;
use hisbridge_core::his::Status;

fn reason_of(h: &Harness, name: &str) -> String {
    std::fs::read_to_string(h.cfg.folders.error.join(format!("{name}.reason.txt"))).unwrap_or_default()
}

#[test]
fn links_fifos_folders_and_odd_names_are_answered_and_nothing_hangs() {
    let h = Harness::new();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.txt");
    std::fs::write(&secret, "not the bridge's").unwrap();
    let inbox = h.inbox().to_path_buf();

    // A FIFO under an instruction's name: opening it must not wait for a writer.
    let fifo = inbox.join("F1.ord");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // A symbolic link to a file outside the data folder, and a folder, under instruction names.
    std::os::unix::fs::symlink(&secret, inbox.join("L1.ord")).unwrap();
    std::fs::create_dir(inbox.join("D1.ord")).unwrap();
    // Names Windows would strip, and one that is not UTF-8.
    let valid = h.seal(&hisbridge_core::his::Instruction::to_json(&Harness::order("W01", "N1", "+1.00", None)));
    std::fs::write(inbox.join("T1.ord."), &valid).unwrap();
    std::fs::write(inbox.join("T2.ord "), &valid).unwrap();
    std::fs::write(inbox.join(std::ffi::OsStr::from_bytes(b"\xff\xfe.ord")), &valid).unwrap();
    // A hard link to a file outside (same file system): claimed as a copy, never carried as a link.
    let linked = outside.path().join("H1.ord");
    let hl_text = h.seal(&hisbridge_core::his::Instruction::to_json(&Harness::order("W01", "H1", "+2.00", None)));
    std::fs::write(&linked, &hl_text).unwrap();
    let hard = std::fs::hard_link(&linked, inbox.join("H1.ord")).is_ok();

    // And after all of them, a valid order: it is paid.
    assert_eq!(h.pay("OK1", "+3.00").status, Status::Success);

    for stem in ["F1", "L1", "D1"] {
        let r = h.wait(stem);
        assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_ENVELOPE")), "{stem}");
        let reason = reason_of(&h, &format!("{stem}.ord"));
        assert!(reason.contains("not a regular file"), "{stem}: {reason}");
    }
    assert!(reason_of(&h, "F1.ord").contains("FIFO"));
    assert!(reason_of(&h, "L1.ord").contains("symbolic link"));
    assert!(reason_of(&h, "D1.ord").contains("folder"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "not the bridge's", "the link's target untouched");
    // The odd names are refused under neutral names, with their reasons.
    h.eventually("three bad names refused", || {
        common::list(&h.cfg.folders.error)
            .iter()
            .filter(|n| n.starts_with("badname-") && n.ends_with(".reason.txt"))
            .count()
            == 3
    });
    assert!(common::list(&inbox).is_empty(), "nothing left in the inbox: {:?}", common::list(&inbox));
    if hard {
        assert_eq!(h.wait("H1").status, Status::Success, "a hard-linked instruction is still an instruction");
        let archived = std::fs::read_dir(&h.cfg.folders.archive)
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>());
        for p in archived {
            assert_eq!(std::fs::metadata(&p).unwrap().nlink(), 1, "{} is still a link", p.display());
        }
        assert_eq!(std::fs::metadata(&linked).unwrap().nlink(), 1, "the outside file is ours no more");
    }
    assert_eq!(h.sim.ledger().charged().len(), 2, "OK1 and H1 only");
}

/// A socket line without its newline before the client closes is an instruction too.
#[test]
fn an_unterminated_last_socket_line_is_answered() {
    use std::io::{BufRead, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(hisbridge_sim::SimConfig::default(), &format!("[socket]\nport = {port}\n"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"\n\n").unwrap(); // keep-alives: no answer
    s.write_all(b"HB1.K1.ORD.garbage").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line).unwrap();
    let plain = h.key.open(hisbridge_core::envelope::Direction::ToHis, line.trim().as_bytes()).unwrap();
    let r = hisbridge_core::his::ResultMessage::parse(&plain).unwrap();
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_ENVELOPE")));
}
