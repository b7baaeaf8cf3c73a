//! The hospital hub against a real PostgreSQL (a throwaway cluster, tests/common/pg.rs):
//! replication from real bridges (simulated POS on a pty, real journals), every fault the
//! issue names, and after each the hub holding every order and event exactly once, checked row
//! by row against the journals. Then the hospital-wide report and bill, and the logins' rights.

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Harness;
use hisbridge_core::his::Status;
use hisbridge_sim::{Outcome, SimConfig};
use pg::Pg;

const WAIT: Duration = Duration::from_secs(90);

fn hub_config(url: &str, password_file: &Path, window: &str, extra: &str) -> String {
    format!(
        "[timeouts]\nquery_interval_secs = 1\n[hub]\nurl = {url:?}\npassword_file = {:?}\nwindow = {window:?}\nheartbeat_secs = 5\ntimeout_secs = 3\n{extra}",
        password_file.display().to_string()
    )
}

/// Journal rows as the hub must hold them: events (id, order, state, detail, instant in ms) and
/// orders (id, version, key, order no, refund no, state, amount, pay no, channel, device).
type Events = Vec<(i64, i64, String, String, i64)>;
type Orders = Vec<(i64, i64, String, String, String, String, i64, String, String, String)>;

fn ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}")).timestamp_millis()
}

fn journal_rows(journal: &Path) -> (String, Events, Orders) {
    let c = rusqlite::Connection::open_with_flags(journal, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let id: String = c.query_row("SELECT value FROM meta WHERE name = 'journal_id'", [], |r| r.get(0)).unwrap();
    let mut st = c.prepare("SELECT id, order_id, state, COALESCE(detail, ''), at FROM events ORDER BY id").unwrap();
    let events = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, ms(&r.get::<_, String>(4)?))))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut st = c
        .prepare(
            "SELECT id, (SELECT max(id) FROM events e WHERE e.order_id = orders.id), key, order_no, COALESCE(refund_no, ''), \
             state, amount_fen, COALESCE(pay_order_no, ''), COALESCE(channel, ''), COALESCE(device_id, '') FROM orders ORDER BY id",
        )
        .unwrap();
    let orders = st
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (id, events, orders)
}

fn hub_rows(pg: &Pg, journal_id: &str) -> (Events, Orders) {
    let ev = pg.psql(
        "hub",
        &format!(
            "SELECT event_id, order_id, state, COALESCE(detail, ''), (extract(epoch FROM at) * 1000)::bigint \
             FROM hisbridge.events WHERE journal_id = '{journal_id}' ORDER BY event_id"
        ),
    );
    let events = ev
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].into(), f[3].into(), f[4].parse().unwrap())
        })
        .collect();
    let or = pg.psql(
        "hub",
        &format!(
            "SELECT order_id, version, key, order_no, COALESCE(refund_no, ''), state, amount_fen, COALESCE(pay_order_no, ''), \
             COALESCE(channel, ''), COALESCE(device_id, '') FROM hisbridge.orders WHERE journal_id = '{journal_id}' ORDER BY order_id"
        ),
    );
    let orders = or
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].into(),
                f[3].into(),
                f[4].into(),
                f[5].into(),
                f[6].parse().unwrap(),
                f[7].into(),
                f[8].into(),
                f[9].into(),
            )
        })
        .collect();
    (events, orders)
}

/// Waits until the hub holds the journal's every event, then checks every row: each event and
/// order once, with the journal's content.
fn assert_exactly_once(pg: &Pg, journal: &Path) {
    let start = Instant::now();
    loop {
        let (id, events, orders) = journal_rows(journal);
        let (he, ho) = hub_rows(pg, &id);
        if he == events && ho == orders {
            // The primary key makes a second copy impossible; say so against the table itself.
            let dup = pg.psql(
                "hub",
                &format!("SELECT count(*) - count(DISTINCT event_id) FROM hisbridge.events WHERE journal_id = '{id}'"),
            );
            assert_eq!(dup, "0");
            return;
        }
        if start.elapsed() > WAIT {
            assert_eq!(he.len(), events.len(), "events on the hub vs the journal");
            assert_eq!(he, events, "events");
            assert_eq!(ho, orders, "orders");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn hub_status(h: &Harness) -> serde_json::Value {
    let p = hisbridge_core::instance::status_path(&h.cfg.journal);
    std::fs::read(&p).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()).unwrap_or_default()["hub"]
        .clone()
}

fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sim() -> SimConfig {
    SimConfig { scan_delay: Duration::from_millis(20), paying_delay: Duration::from_millis(50), ..SimConfig::default() }
}

/// Payments go through with the hub up, a decline and a refund among them; the hub ends with
/// every row once, the window's heartbeat says its POS is ready, and the status says caught up.
#[test]
fn every_order_and_event_reaches_the_hub_once() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let mut s = sim();
    s.script = [Outcome::InsufficientFunds].into_iter().collect();
    let h = Harness::with(s, &hub_config(&pg.url("w01"), &pw, "门诊1号窗", ""));
    let declined = h.pay("H-D1", "+3.92");
    assert_eq!(declined.status, Status::Failed);
    assert_eq!(h.pay("H-1", "+12.50").status, Status::Success);
    let refund = h.send(&Harness::order("W01", "H-1", "-2.50", Some("R-1")));
    assert_eq!(h.wait(&refund).status, Status::Refunded);
    assert_exactly_once(&pg, &h.cfg.journal);
    eventually("status: caught up", || hub_status(&h)["state"] == "connected" && hub_status(&h)["behind_events"] == 0);
    eventually("heartbeat", || {
        pg.psql(
            "hub",
            "SELECT window_name || '|' || pos_link || '|' || paused || '|' || device_id FROM hisbridge.windows",
        ) == "门诊1号窗|ready|false|POS-0001"
    });
    let cursor = hisbridge_core::hub::replica::read_cursor(&hisbridge_core::hub::replica::cursor_path(&h.cfg.journal));
    assert_eq!(
        cursor.map(|c| c.event),
        Some(journal_rows(&h.cfg.journal).1.len() as i64),
        "the cursor beside the journal"
    );
}

/// The hub is down when the bridge starts: payments are not slowed or refused, the status says
/// the hub is unreachable and how far behind; when it comes up, the bridge catches up.
#[test]
fn a_hub_that_is_down_loses_nothing_and_slows_no_payment() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    pg.kill();
    let h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw, "W1", ""));
    for i in 0..5 {
        assert_eq!(h.pay(&format!("H-{i}"), "+1.00").status, Status::Success);
    }
    eventually("status: unreachable, behind", || {
        let s = hub_status(&h);
        s["state"] == "unreachable" && s["behind_events"].as_i64().unwrap_or(0) > 0 && s["error"].is_string()
    });
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["status", "--config"])
        .arg(h.dir.path().join("hisbridge.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("hub: unreachable,") && text.contains("event(s) behind"), "{text}");
    let err = hub_status(&h)["error"].as_str().unwrap().to_string();
    assert!(!err.contains(&std::fs::read_to_string(&pw).unwrap().trim().to_string()), "no secret in the status");
    pg.up();
    assert_exactly_once(&pg, &h.cfg.journal);
    eventually("status: caught up", || hub_status(&h)["behind_events"] == 0 && hub_status(&h)["state"] == "connected");
}

/// The hub is killed (as a crash: no checkpoint, every backend gone) in the middle of the
/// bridge's batches, again and again (each batch made slow on the server so that a kill lands
/// inside one). After each crash the hub holds a prefix of the journal, never a part of a
/// batch; in the end every row is there once.
#[test]
fn a_hub_killed_mid_batch_loses_nothing() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    pg.psql(
        "hub",
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.08); RETURN NULL; END $$; \
         CREATE TRIGGER slow AFTER INSERT ON hisbridge.events FOR EACH STATEMENT EXECUTE FUNCTION slow()",
    );
    pg.kill();
    let h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw, "W1", "batch = 2\n"));
    for i in 0..12 {
        assert_eq!(h.pay(&format!("H-{i}"), "+1.00").status, Status::Success);
    }
    let (id, events, _) = journal_rows(&h.cfg.journal);
    let count = || -> usize {
        pg.psql("hub", &format!("SELECT count(*) FROM hisbridge.events WHERE journal_id = '{id}'")).parse().unwrap()
    };
    let (mut last, mut partial) = (0, 0);
    pg.up();
    for _ in 0..5 {
        eventually("the bridge sends again", || count() > last);
        pg.kill();
        pg.up();
        let n = count();
        let ids = pg.psql("hub", &format!("SELECT string_agg(event_id::text, ',' ORDER BY event_id) FROM hisbridge.events WHERE journal_id = '{id}'"));
        let prefix = (1..=n).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert_eq!(ids, prefix, "after a crash the hub holds whole batches, in order");
        if n < events.len() {
            partial += 1;
        }
        last = n;
        if n == events.len() {
            break;
        }
    }
    assert!(partial >= 1, "at least one crash landed before the end");
    assert_exactly_once(&pg, &h.cfg.journal);
}

/// A proxy between bridge and hub that stops forwarding (the connection stays open, nothing
/// moves): the bridge's time limit drops it, it connects again, and catches up.
#[test]
fn a_stalled_connection_is_dropped_and_opened_again() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let proxy = Proxy::start(pg.port);
    let url = format!("postgresql://w01@127.0.0.1:{}/hub", proxy.port);
    let h = Harness::with(sim(), &hub_config(&url, &pw, "W1", ""));
    assert_eq!(h.pay("H-0", "+1.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
    proxy.stall.store(true, Ordering::SeqCst);
    for i in 1..4 {
        assert_eq!(h.pay(&format!("H-{i}"), "+1.00").status, Status::Success);
    }
    eventually("status: the stall is seen", || {
        hub_status(&h)["error"].as_str().is_some_and(|e| e.contains("did not answer"))
    });
    // New connections flow again; the stalled one stays stalled until the bridge drops it.
    proxy.stall.store(false, Ordering::SeqCst);
    assert_exactly_once(&pg, &h.cfg.journal);
}

/// A TCP proxy whose existing connections stop forwarding while `stall` is set (new ones made
/// after it is cleared forward normally).
struct Proxy {
    port: u16,
    stall: Arc<AtomicBool>,
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stall = Arc::new(AtomicBool::new(false));
        let s = stall.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let Ok(up) = TcpStream::connect(("127.0.0.1", to)) else { continue };
                // A connection made while stalled is a stalled one too.
                let born_stalled = s.load(Ordering::SeqCst);
                for (mut a, mut b) in [(c.try_clone().unwrap(), up.try_clone().unwrap()), (up, c)] {
                    let s = s.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        let mut stalled = born_stalled;
                        loop {
                            let n = match a.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            stalled |= s.load(Ordering::SeqCst);
                            if stalled {
                                // Swallow, forever: the far end never hears of it.
                                continue;
                            }
                            if b.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = b.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, stall }
    }
}

/// The real `hisbridge run`, SIGKILLed after the hub committed a batch and before the cursor
/// moved: the next start sends from the hub's end, nothing twice, nothing missing.
#[test]
fn killed_between_the_hubs_commit_and_the_cursor() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let sim = hisbridge_sim::spawn_on_pty(sim()).unwrap();
    let key = hisbridge_core::envelope::Key::generate("K1").unwrap();
    hisbridge_core::keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
    let cfg_path = dir.path().join("hisbridge.toml");
    std::fs::write(
        &cfg_path,
        common::config_text(dir.path(), sim.port_path(), &hub_config(&pg.url("w01"), &pw, "W1", "batch = 2\n")),
    )
    .unwrap();
    let journal = dir.path().join("journal.sqlite");
    let cursor = hisbridge_core::hub::replica::cursor_path(&journal);
    let run = |failpoint: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hisbridge"));
        c.args(["run", "--config"]).arg(&cfg_path).stdout(Stdio::null()).stderr(Stdio::piped());
        match failpoint {
            Some(f) => c.env("HISBRIDGE_FAILPOINT", f),
            None => c.env_remove("HISBRIDGE_FAILPOINT"),
        };
        c.spawn().unwrap()
    };
    let mut child = run(Some("hub_committed"));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if l.starts_with("FAILPOINT hub_committed") {
                let _ = tx.send(());
            }
        }
    });
    let ins = Harness::order("W01", "H-K1", "+8.00", None);
    let stem = hisbridge_core::hisclient::new_stem(&ins);
    eventually("inbox", || dir.path().join("inbox").is_dir());
    hisbridge_core::hisclient::send(&dir.path().join("inbox"), &key, &ins, &stem).unwrap();
    rx.recv_timeout(WAIT).expect("the failpoint after the hub's commit");
    child.kill().unwrap();
    child.wait().unwrap();
    let (id, _, _) = journal_rows(&journal);
    let on_hub: i64 =
        pg.psql("hub", &format!("SELECT count(*) FROM hisbridge.events WHERE journal_id = '{id}'")).parse().unwrap();
    assert!(on_hub > 0, "the hub committed the first batch");
    assert!(
        hisbridge_core::hub::replica::read_cursor(&cursor).is_none_or(|c| c.event < on_hub),
        "the cursor did not move"
    );
    let mut child = run(None);
    let r = hisbridge_core::hisclient::wait_final(&dir.path().join("outbox"), &key, &stem, WAIT).unwrap();
    assert_eq!(r.status, Status::Success);
    assert_exactly_once(&pg, &journal);
    eventually("the cursor moved", || {
        hisbridge_core::hub::replica::read_cursor(&cursor)
            .is_some_and(|c| c.event == journal_rows(&journal).1.len() as i64)
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The journal replayed: the cursor deleted (everything sent again, the same rows), and a hub
/// restored from an older backup (the bridge sends what the hub lacks). Every row once, each time.
#[test]
fn a_journal_replayed_twice_changes_nothing() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let mut h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw, "W1", ""));
    for i in 0..4 {
        assert_eq!(h.pay(&format!("H-{i}"), "+2.00").status, Status::Success);
    }
    assert_exactly_once(&pg, &h.cfg.journal);
    let received = pg.psql(
        "hub",
        "SELECT (SELECT string_agg(received_at::text, ',' ORDER BY event_id) FROM hisbridge.events) || \
         (SELECT string_agg(received_at::text, ',' ORDER BY order_id) FROM hisbridge.orders)",
    );
    h.stop();
    // Replay 1: the cursor lost; the whole journal goes again, through the real replication.
    std::fs::remove_file(hisbridge_core::hub::replica::cursor_path(&h.cfg.journal)).unwrap();
    let (id, events, _) = journal_rows(&h.cfg.journal);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let target = hisbridge_core::hub::Target::from_url(
            &pg.url("w01"),
            Some(pw.clone()),
            hisbridge_core::hub::TlsMode::Disable,
            None,
        );
        let mut client = target.connect().await.unwrap();
        let mut r = hisbridge_core::hub::replica::JournalReader::open(&h.cfg.journal).unwrap();
        // Replay 2: the whole journal, then every batch again in reverse order, twice.
        let all = r.batch(0, 10_000).unwrap();
        let mut parts: Vec<_> = (0..events.len() as i64).step_by(3).map(|from| r.batch(from, 3).unwrap()).collect();
        parts.reverse();
        for _ in 0..2 {
            for b in std::iter::once(&all).chain(parts.iter()) {
                hisbridge_core::hub::replica::send_batch(&mut client, &id, b).await.unwrap();
            }
        }
        // A snapshot read before a later change and sent after it (a batch delayed by a crash)
        // does not take an order back.
        let mut stale = all.clone();
        stale.orders[0].version -= 1;
        stale.orders[0].state = "SENT".into();
        hisbridge_core::hub::replica::send_batch(&mut client, &id, &stale).await.unwrap();
    });
    assert_exactly_once(&pg, &h.cfg.journal);
    let again = pg.psql(
        "hub",
        "SELECT (SELECT string_agg(received_at::text, ',' ORDER BY event_id) FROM hisbridge.events) || \
         (SELECT string_agg(received_at::text, ',' ORDER BY order_id) FROM hisbridge.orders)",
    );
    assert_eq!(received, again, "no row was written again");
    // A hub restored from an older backup: the last orders' rows are gone there.
    pg.psql("hub", "DELETE FROM hisbridge.events WHERE event_id > 6; DELETE FROM hisbridge.orders WHERE version > 6");
    h.start();
    assert_eq!(h.pay("H-after", "+1.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
}

/// An event number the hub holds with other content (a journal restored under the same
/// identity): replication stops and says so; nothing on the hub is overwritten.
#[test]
fn a_journal_that_differs_from_the_hub_stops_and_changes_nothing() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let mut h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw, "W1", ""));
    assert_eq!(h.pay("H-1", "+2.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
    h.stop();
    pg.psql(
        "hub",
        "UPDATE hisbridge.events SET state = 'FAILED' WHERE event_id = (SELECT max(event_id) FROM hisbridge.events)",
    );
    pg.psql("hub", "DELETE FROM hisbridge.events WHERE event_id = 1");
    std::fs::remove_file(hisbridge_core::hub::replica::cursor_path(&h.cfg.journal)).unwrap();
    let snapshot = pg.psql("hub", "SELECT string_agg(event_id || state, ',' ORDER BY event_id) FROM hisbridge.events");
    h.start();
    // Event 1 is missing on the hub: the bridge resends from there and meets the changed one.
    eventually("replication stopped, saying why", || {
        let s = hub_status(&h);
        s["state"] == "stopped" && s["error"].as_str().is_some_and(|e| e.contains("other content"))
    });
    let after = pg.psql("hub", "SELECT string_agg(event_id || state, ',' ORDER BY event_id) FROM hisbridge.events");
    assert_eq!(snapshot, after, "the batch was rolled back whole");
    assert_eq!(h.pay("H-2", "+1.00").status, Status::Success, "payments go on");
}

/// Each bridge login sees and writes its own rows only; a reader reads all and writes nothing;
/// a journal registered by one login cannot be written by another.
#[test]
fn logins_have_their_rights_and_no_more() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw1 = pg.migrate_and_login("w01", "bridge", dir.path());
    let pw2 = pg.migrate_and_login("w02", "bridge", dir.path());
    let pwr = pg.migrate_and_login("finance_ro", "reader", dir.path());
    let h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw1, "W1", ""));
    assert_eq!(h.pay("H-1", "+2.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
    let (id, _, _) = journal_rows(&h.cfg.journal);
    assert_eq!(
        pg.psql("hub", "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = 'w01'"),
        "t",
        "the server was given the SCRAM verifier"
    );
    let as_login = |user: &str, pw: &Path, sql: &str| {
        Command::new(pg_bin("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                user,
                "-d",
                "hub",
                "-c",
                sql,
            ])
            .env("PGPASSWORD", std::fs::read_to_string(pw).unwrap().trim())
            .output()
            .unwrap()
    };
    let out = as_login("w02", &pw2, "SELECT count(*) FROM hisbridge.orders");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0", "w02 sees none of w01's orders");
    let out = as_login("w02", &pw2, &format!("UPDATE hisbridge.orders SET state = 'FAILED' WHERE journal_id = '{id}'"));
    assert!(out.status.success());
    assert_eq!(pg.psql("hub", "SELECT state FROM hisbridge.orders"), "SUCCESS", "w02 changed nothing of w01's");
    let out = as_login(
        "w02",
        &pw2,
        &format!("INSERT INTO hisbridge.events (journal_id, event_id, order_id, at, state, bridge) VALUES ('{id}', 99, 1, now(), 'SUCCESS', 'w01')"),
    );
    assert!(!out.status.success(), "w02 cannot write rows in w01's name");
    let out = as_login("finance_ro", &pwr, "SELECT count(*) FROM hisbridge.orders");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "a reader reads every window");
    let out = as_login("finance_ro", &pwr, "DELETE FROM hisbridge.orders");
    assert!(!out.status.success(), "a reader writes nothing");
    assert!(String::from_utf8_lossy(&out.stderr).contains("permission denied"));
    // A second bridge pointed at w01's journal under its own login is refused by the hub.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(async {
        let t = hisbridge_core::hub::Target::from_url(
            &pg.url("w02"),
            Some(pw2.clone()),
            hisbridge_core::hub::TlsMode::Disable,
            None,
        );
        let c = t.connect().await.unwrap();
        hisbridge_core::hub::replica::register(&c, &id).await.unwrap_err().to_string()
    });
    assert!(e.contains("another login"), "{e}");
}

fn pg_bin(name: &str) -> PathBuf {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir("/usr/lib/postgresql").unwrap().flatten().map(|e| e.path().join("bin").join(name)).collect();
    v.sort();
    v.pop().unwrap()
}

/// Two windows, each with its own POS and journal, one merchant: the hub's day covers both,
/// the merchant's bill (every window's payments in one file) matches with no difference, each
/// planted difference names its window, and the single PC's report says the hub is where the
/// whole bill is matched.
#[test]
fn the_hospital_day_and_the_merchants_bill_across_windows() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw1 = pg.migrate_and_login("w01", "bridge", dir.path());
    let pw2 = pg.migrate_and_login("w02", "bridge", dir.path());
    let finance = pg.migrate_and_login("fin", "finance", dir.path());
    let a = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw1, "门诊1号窗", ""));
    let b = Harness::with(sim(), &hub_config(&pg.url("w02"), &pw2, "门诊2号窗", ""));
    b.sim.number_from(500_000);
    for i in 0..3 {
        assert_eq!(a.pay(&format!("A-{i}"), "+10.00").status, Status::Success);
        assert_eq!(b.pay(&format!("B-{i}"), "+1.00").status, Status::Success);
    }
    let r = a.send(&Harness::order("W01", "A-0", "-4.00", Some("AR-1")));
    assert_eq!(a.wait(&r).status, Status::Refunded);
    assert_exactly_once(&pg, &a.cfg.journal);
    assert_exactly_once(&pg, &b.cfg.journal);
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    // The bill: both POS's settlement exports in one file, as the merchant's back office has it.
    let pos_day = today.replace('-', "");
    let bill_a = a.sim.ledger().settlement_csv(&pos_day);
    let bill_b = b.sim.ledger().settlement_csv(&pos_day);
    let bill = format!("{bill_a}{}", bill_b.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>());
    let bill_path = dir.path().join("bill.csv");
    std::fs::write(&bill_path, &bill).unwrap();
    let fin_cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hisbridge"))
            .arg("hub")
            .args(args)
            .args(["--db", &pg.url("fin"), "--password-file", finance.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = fin_cmd(&["report", "--date", &today, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let day: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(day["windows"], 2);
    assert_eq!(day["totals"]["sales"], 6);
    assert_eq!(day["totals"]["sales_amount"], "33.00");
    assert_eq!(day["totals"]["refunds_amount"], "4.00");
    let by_window: BTreeMap<String, String> = day["by_window"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["window"].as_str().unwrap().to_string(), w["totals"]["net_amount"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(by_window, BTreeMap::from([("门诊1号窗".into(), "26.00".into()), ("门诊2号窗".into(), "3.00".into())]));
    let out = fin_cmd(&["report", "--date", &today, "--statement", bill_path.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("7 matched, 0 differences, 2 windows"), "{text}");
    assert_eq!(
        pg.psql(
            "hub",
            "SELECT matched || '|' || jsonb_array_length(differences) || '|' || run_by FROM hisbridge.reconciliations"
        ),
        "7|0|fin"
    );
    // A payment the bill has and no window knows, and one of window 2's missing from the bill.
    let b_first = bill_b.lines().nth(1).unwrap().to_string();
    let planted = bill.replace(&format!("{b_first}\n"), "") + "20261201120000,XX-1.1,SALE,PAID,WECHAT,4200999,,500\n";
    std::fs::write(&bill_path, planted).unwrap();
    let out =
        fin_cmd(&["report", "--date", &today, "--statement", bill_path.to_str().unwrap(), "--json", "--no-record"]);
    assert_eq!(out.status.code(), Some(3), "differences: exit 3");
    let text = String::from_utf8_lossy(&out.stdout);
    // Two documents: the day, then the match.
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    let m = &docs[1];
    let diffs: Vec<(String, String)> = m["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap().to_string(), d["window"].as_str().unwrap_or("-").to_string()))
        .collect();
    assert!(diffs.contains(&("missing_in_statement".into(), "门诊2号窗".into())), "{diffs:?}");
    assert!(diffs.contains(&("missing_in_journal".into(), "-".into())), "{diffs:?}");
    assert_eq!(pg.psql("hub", "SELECT count(*) FROM hisbridge.reconciliations"), "1", "--no-record");
    // The single PC's report on window 1 with the whole bill: window 2's payments are not in its
    // journal, and it says where the whole bill is matched.
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["report", "--config"])
        .arg(a.dir.path().join("hisbridge.toml"))
        .args(["--date", &today, "--statement"])
        .arg(&bill_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("hisbridge hub report"), "{text}");
    // The windows as the hub heard them.
    let out = fin_cmd(&["windows"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("门诊1号窗") && text.contains("门诊2号窗") && text.contains("ready"), "{text}");
}

/// Makes a CA and a server certificate for 127.0.0.1 with openssl, turns TLS on in the cluster
/// and allows only TLS connections. Returns the CA's file.
fn tls_only(pg: &Pg) -> PathBuf {
    let d = pg.dir.path();
    let (ca, _, _) = pg::make_certs(d);
    let data = pg.data();
    std::fs::copy(d.join("server.crt"), data.join("server.crt")).unwrap();
    std::fs::copy(d.join("server.key"), data.join("server.key")).unwrap();
    let _ = Command::new("chown").args(["postgres:", "server.crt", "server.key"]).current_dir(&data).status();
    let _ = Command::new("chmod").args(["600", "server.key"]).current_dir(&data).status();
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(data.join("postgresql.conf"), conf).unwrap();
    // TLS only from the network; the test's own psql comes over TLS too (libpq prefers it).
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
    )
    .unwrap();
    pg.kill();
    pg.up();
    ca
}

/// TLS to the hub: a hub that takes TLS only refuses a bridge without it (and the status says
/// why); `verify-full` with the hospital's CA and `require` replicate; the wrong CA is refused.
#[test]
fn tls_to_the_hub() {
    let Some(pg) = Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw = pg.migrate_and_login("w01", "bridge", dir.path());
    let ca = tls_only(&pg);
    let other = tempfile::tempdir().unwrap();
    let wrong_ca = {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "k",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=Other",
                "-days",
                "2",
            ])
            .current_dir(other.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        other.path().join("ca.crt")
    };
    let status_error = |tls: &str, ca_file: Option<&Path>| {
        let extra = format!(
            "tls = {tls:?}\n{}",
            ca_file.map(|p| format!("ca_file = {:?}\n", p.display().to_string())).unwrap_or_default()
        );
        let h = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw, "W1", &extra));
        eventually("the hub's state", || matches!(hub_status(&h)["state"].as_str(), Some("connected" | "unreachable")));
        let s = hub_status(&h);
        (h, s["state"].as_str().unwrap().to_string(), s["error"].as_str().unwrap_or("").to_string())
    };
    let (_h, state, error) = status_error("disable", None);
    assert_eq!(state, "unreachable");
    assert!(error.contains("no encryption") || error.contains("pg_hba"), "{error}");
    drop(_h);
    let (_h, state, error) = status_error("verify-full", Some(&wrong_ca));
    assert_eq!(state, "unreachable");
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    drop(_h);
    let (h, state, error) = status_error("verify-full", Some(&ca));
    assert_eq!(state, "connected", "{error}");
    assert_eq!(h.pay("H-T1", "+1.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
    drop(h);
    let (h, state, error) = status_error("require", None);
    assert_eq!(state, "connected", "{error}");
    assert_eq!(h.pay("H-T2", "+1.00").status, Status::Success);
    assert_exactly_once(&pg, &h.cfg.journal);
    let tls = pg.psql(
        "hub",
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.usename = 'w01' AND s.ssl",
    );
    assert_eq!(tls, "1", "the bridge's connection is encrypted");
}
