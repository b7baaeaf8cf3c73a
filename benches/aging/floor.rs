//! The floor: only the steps no bridge can skip, timed the way the bench times the bridge.
//!
//! Leg 1: the inotify wake-up, reading the order file, the claim rename, two durable SQLite
//! commits (`synchronous = FULL`: the order, then "sent"), the frame written to the pty.
//! Leg 2: the frame read from the pty, one durable commit, the result written to a temp file,
//! `fsync`, renamed into place, the folder `fsync`ed.
//! No envelope, no protocol, no engine: a ratio of the bridge to this is what the bridge adds.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::Watcher;

const FRAME: usize = 96;

fn read_exact_port(port: &mut serialport::TTYPort, buf: &mut [u8]) {
    let mut got = 0;
    while got < buf.len() {
        match port.read(&mut buf[got..]) {
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("pty read: {e}"),
        }
    }
}

fn fsync_dir(dir: &Path) {
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

/// Runs `n` orders through the floor; returns leg 1 and leg 2 latencies.
pub fn run(n: usize) -> [Vec<Duration>; 2] {
    use serialport::SerialPort;
    let dir = tempfile::tempdir().unwrap();
    let (inbox, work, outbox) = (dir.path().join("inbox"), dir.path().join("work"), dir.path().join("outbox"));
    for d in [&inbox, &work, &outbox] {
        std::fs::create_dir(d).unwrap();
    }
    let (mut master, mut slave) = serialport::TTYPort::pair().unwrap();
    master.set_timeout(Duration::from_millis(50)).unwrap();
    slave.set_timeout(Duration::from_millis(50)).unwrap();
    let db = dir.path().join("floor.sqlite");

    let (tx, rx) = mpsc::channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev {
            let _ = tx.send(ev);
        }
    })
    .unwrap();
    watcher.watch(&inbox, notify::RecursiveMode::NonRecursive).unwrap();

    let (inbox2, outbox2) = (inbox.clone(), outbox.clone());
    let worker = std::thread::spawn(move || {
        let mut c = rusqlite::Connection::open(&db).unwrap();
        c.pragma_update(None, "journal_mode", "WAL").unwrap();
        c.pragma_update(None, "synchronous", "FULL").unwrap();
        c.execute_batch("CREATE TABLE o (id INTEGER PRIMARY KEY, key TEXT UNIQUE, state TEXT)").unwrap();
        let mut done = 0;
        while done < n {
            let ev = rx.recv().unwrap();
            for p in ev.paths {
                if p.extension().is_none_or(|e| e != "ord") || p.parent() != Some(inbox2.as_path()) {
                    continue;
                }
                let Ok(body) = std::fs::read(&p) else { continue };
                let name = p.file_name().unwrap().to_owned();
                if std::fs::rename(&p, work.join(&name)).is_err() {
                    continue;
                }
                let key = name.to_string_lossy().into_owned();
                let t = c.transaction().unwrap();
                t.prepare_cached("INSERT INTO o (key, state) VALUES (?1, 'ACCEPTED')")
                    .unwrap()
                    .execute([&key])
                    .unwrap();
                t.commit().unwrap();
                let t = c.transaction().unwrap();
                t.prepare_cached("UPDATE o SET state = 'SENT' WHERE key = ?1").unwrap().execute([&key]).unwrap();
                t.commit().unwrap();
                let mut frame = [0u8; FRAME];
                frame[..body.len().min(FRAME)].copy_from_slice(&body[..body.len().min(FRAME)]);
                slave.write_all(&frame).unwrap();
                // Leg 2: the POS's result.
                let mut buf = [0u8; FRAME];
                read_exact_port(&mut slave, &mut buf);
                let t = c.transaction().unwrap();
                t.prepare_cached("UPDATE o SET state = 'SUCCESS' WHERE key = ?1").unwrap().execute([&key]).unwrap();
                t.commit().unwrap();
                let stem = key.trim_end_matches(".ord");
                let tmp = outbox2.join(format!(".{stem}.res.tmp"));
                let mut f = std::fs::File::create(&tmp).unwrap();
                f.write_all(&buf).unwrap();
                f.sync_all().unwrap();
                drop(f);
                std::fs::rename(&tmp, outbox2.join(format!("{stem}.res"))).unwrap();
                fsync_dir(&outbox2);
                done += 1;
            }
        }
    });

    let (mut leg1, mut leg2) = (Vec::new(), Vec::new());
    let body = vec![b'x'; 400];
    for i in 0..n {
        let stem = format!("FLOOR{i:05}");
        let tmp = inbox.join(format!(".{stem}.ord.tmp"));
        std::fs::write(&tmp, &body).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmp, inbox.join(format!("{stem}.ord"))).unwrap();
        let mut buf = [0u8; FRAME];
        read_exact_port(&mut master, &mut buf);
        leg1.push(t0.elapsed());
        let t1 = Instant::now();
        master.write_all(&[b'r'; FRAME]).unwrap();
        let res = outbox.join(format!("{stem}.res"));
        while !res.exists() {
            std::thread::sleep(Duration::from_micros(200));
        }
        leg2.push(t1.elapsed());
    }
    worker.join().unwrap();
    drop(watcher);
    [leg1, leg2]
}
