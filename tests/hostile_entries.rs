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

/// A flood of broken files never holds a valid order back: valid envelopes are taken first and
/// each listing refuses only so many (the result comes while most of the flood still waits).
#[test]
fn a_valid_order_is_taken_ahead_of_a_flood_of_broken_files() {
    let h = Harness::new();
    for i in 0..1000 {
        std::fs::write(h.inbox().join(format!("G{i:04}.ord.tmp")), format!("HB1.K1.ORD.{}", "A".repeat(40 + i % 7)))
            .unwrap();
        std::fs::rename(h.inbox().join(format!("G{i:04}.ord.tmp")), h.inbox().join(format!("G{i:04}.ord"))).unwrap();
    }
    let stem = h.send(&Harness::order("W01", "FL1", "+1.00", None));
    assert_eq!(h.wait(&stem).status, Status::Success);
    let left = common::list(h.inbox()).iter().filter(|n| n.starts_with('G')).count();
    assert!(left > 500, "the valid order did not wait for the flood ({left} broken files still in the inbox)");
    // And the flood is answered in the end, every file with its reason.
    h.eventually("flood refused", || common::list(h.inbox()).is_empty());
    h.eventually("reasons written", || {
        common::list(&h.cfg.folders.error).iter().filter(|n| n.ends_with(".reason.txt")).count() == 1000
    });
}

/// Connections are capped and lines that are not envelopes end a connection; the folder
/// channel keeps working throughout and a client gets in again once the crowd has gone.
#[test]
fn too_many_connections_or_bad_lines_never_starve_the_bridge() {
    use std::io::{BufRead, Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(hisbridge_sim::SimConfig::default(), &format!("[socket]\nport = {port}\n"));
    hisbridge_core::socket::raise_fd_limit();
    let crowd: Vec<_> = (0..hisbridge_core::socket::MAX_CONNECTIONS + 40)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // The folder channel still pays.
    assert_eq!(h.pay("CR1", "+1.00").status, Status::Success);
    // A connection over the cap is closed by the bridge at once.
    let mut late = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    late.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(late.read(&mut buf).unwrap_or(0), 0, "closed");
    drop(crowd);
    // Garbage lines: answered, then the connection is closed.
    let g = std::cell::RefCell::new(None);
    h.eventually("a connection again", || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let ok = s.write_all(b"HB1.K1.ORD.x\n").is_ok() && {
            let mut l = String::new();
            std::io::BufReader::new(s.try_clone().unwrap()).read_line(&mut l).map(|n| n > 0).unwrap_or(false)
        };
        if ok {
            *g.borrow_mut() = Some(s);
        }
        ok
    });
    let mut s = g.into_inner().unwrap();
    for _ in 0..100 {
        if s.write_all(b"HB1.K1.ORD.garbage\n").is_err() {
            break;
        }
    }
    let mut answers = 0;
    let mut r = std::io::BufReader::new(s);
    let mut l = String::new();
    while r.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
        answers += 1;
        l.clear();
    }
    assert!(
        (1..=hisbridge_core::socket::MAX_BAD_LINES as usize).contains(&(answers + 1)),
        "{answers} answers before the close"
    );
}

/// An outbox replaced by a link to elsewhere: the bridge refuses to start on it, and a link
/// put there while it runs gets no result written through it.
#[test]
fn a_data_folder_that_is_a_link_is_refused() {
    let mut h = Harness::new();
    assert_eq!(h.pay("SL1", "+1.00").status, Status::Success);
    h.stop();
    let elsewhere = tempfile::tempdir().unwrap();
    let outbox = h.cfg.folders.outbox.clone();
    std::fs::rename(&outbox, h.dir.path().join("outbox.real")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &outbox).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = hisbridge_core::keyfile::load(&h.cfg.key_file).unwrap();
    let err = rt.block_on(async { hisbridge_core::bridge::Bridge::start(&h.cfg, key).err() }).expect("refused");
    assert!(err.to_string().contains("is a link"), "{err}");
    drop(rt);
    // While running: the link appears after the start; nothing is written through it.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(h.dir.path().join("outbox.real"), &outbox).unwrap();
    h.start();
    std::fs::rename(&outbox, h.dir.path().join("outbox.real")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &outbox).unwrap();
    let stem = h.send(&Harness::order("W01", "SL2", "+2.00", None));
    h.eventually("paid", || h.sim.ledger().get("SL2.1").is_some_and(|e| e.status == "PAID"));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(common::list(elsewhere.path()).is_empty(), "nothing written through the link");
    // The real folder is put back: the result is written there (retried).
    std::fs::remove_file(&outbox).unwrap();
    std::fs::rename(h.dir.path().join("outbox.real"), &outbox).unwrap();
    assert_eq!(h.wait(&stem).status, Status::Success);
}

/// A FIFO put in the outbox under a result's name never blocks the intake.
#[test]
fn a_fifo_in_the_outbox_blocks_nothing() {
    let h = Harness::new();
    let fifo = h.outbox().join("Q1.res");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let ins = Harness::order("W01", "Q1", "+1.00", None);
    hisbridge_core::hisclient::send(h.inbox(), &h.key, &ins, "Q1").unwrap();
    // Refused (its name is taken by something that is not a result), never waited on.
    h.eventually("refused with its reason", || h.cfg.folders.error.join("Q1.ord.reason.txt").exists());
    assert_eq!(h.pay("Q2", "+2.00").status, Status::Success, "the bridge goes on");
}

/// A client flooding the socket with garbage (reconnecting as fast as it is closed) does not keep
/// a file order from being paid.
#[test]
fn a_garbage_socket_flood_does_not_starve_the_folder_channel() {
    use std::io::Write;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(hisbridge_sim::SimConfig::default(), &format!("[socket]\nport = {port}\n"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let flood = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { continue };
            let _ = s.set_write_timeout(Some(std::time::Duration::from_millis(100)));
            while !s2.load(std::sync::atomic::Ordering::Relaxed) && s.write_all(b"HB1.K1.ORD.garbage\n").is_ok() {}
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = h.pay("SF1", "+1.00");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flood.join().unwrap();
    assert_eq!(r.status, Status::Success);
}
