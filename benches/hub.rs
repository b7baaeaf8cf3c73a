//! The hospital hub at volume (docs/performance.md, "The hub"): W windows (default 50), each a
//! real journal with N orders of the day (default 3,000: 150,000 in all), replicated by W
//! replication tasks at once into one PostgreSQL (a throwaway cluster with fsync on).
//!
//! 1. Catch-up: every journal full, the hub empty (a hub that was down all day): time until the
//!    hub holds everything, events per second.
//! 2. Live: every window keeps taking orders (one every `BENCH_LIVE_MS`, default 400 ms, each
//!    journaled in three commits as the engine does); replication lag per event = the hub's
//!    commit time minus the journal's, p50 / p99 / max.
//! 3. The hospital-wide day report, and the merchant's bill (every window's payments) matched.
//!
//! Measures, never asserts. Run: `cargo bench --bench hub` (needs PostgreSQL installed).

#[path = "../tests/common/pg.rs"]
mod pg;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hisbridge_core::hub::replica::{self, HubStatus, Inputs};
use hisbridge_core::hub::{report, HubSettings, Target, TlsMode};
use hisbridge_core::journal::Journal;
use hisbridge_core::pos::{Link, PosStatus};
use hisbridge_core::statement::Source;

fn env(name: &str, d: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(d)
}

/// A journal holding `n` orders of `day`: collections (a tenth of them refunded later), each
/// with its ACCEPTED, SENT and final events. Returns the POS bill lines of its money movements.
fn fill(path: &Path, window: usize, n: usize, day: &str, offset: &str) -> Vec<String> {
    let mut j = Journal::open(path).unwrap();
    let c = j.connection();
    c.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = c.transaction().unwrap();
    let mut bill = Vec::new();
    {
        let mut order = tx
            .prepare(
                "INSERT INTO orders (key, order_no, refund_no, terminal_id, kind, amount_fen, source, state, attempt, \
                 pos_ref, orig_pos_ref, device_id, pay_order_no, channel, created_at, updated_at, sent_at, finished_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'bench', ?7, 1, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13, ?14)",
            )
            .unwrap();
        let mut event = tx.prepare("INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)").unwrap();
        for i in 0..n {
            let secs = 8 * 3600 + (i * 9 * 3600 / n.max(1)) as u32;
            let at = |s: u32| format!("{day}T{:02}:{:02}:{:02}.000{offset}", s / 3600, (s / 60) % 60, s % 60);
            let refund = i % 10 == 9;
            let key = format!("W{window:02}-{i:05}");
            let (kind, amount, refund_no, orig, state) = if refund {
                ("REFUND", -500i64, Some(format!("R{i}")), Some(format!("W{window:02}-{:05}.1", i - 1)), "REFUNDED")
            } else {
                ("SALE", 1000 + (i % 50) as i64 * 37, None, None, "SUCCESS")
            };
            let channel = if i % 3 == 0 { "ALIPAY" } else { "WECHAT" };
            let pay_no = format!("42{window:03}{i:08}");
            let pos_ref = format!("{key}.1");
            order
                .execute(rusqlite::params![
                    key,
                    if refund { format!("W{window:02}-{:05}", i - 1) } else { key.clone() },
                    refund_no,
                    format!("T{window:02}"),
                    kind,
                    amount,
                    state,
                    pos_ref,
                    orig,
                    format!("POS-{window:04}"),
                    pay_no,
                    channel,
                    at(secs),
                    at(secs + 20)
                ])
                .unwrap();
            let id = tx.last_insert_rowid();
            event.execute(rusqlite::params![id, at(secs), "ACCEPTED", "bench"]).unwrap();
            event.execute(rusqlite::params![id, at(secs), "SENT", "attempt 1"]).unwrap();
            event.execute(rusqlite::params![id, at(secs + 20), state, "POS result"]).unwrap();
            let t = format!(
                "{}{:02}{:02}{:02}",
                day.replace('-', ""),
                (secs + 20) / 3600,
                ((secs + 20) / 60) % 60,
                (secs + 20) % 60
            );
            if refund {
                bill.push(format!(
                    "{t},{pos_ref},REFUND,REFUNDED,{channel},50{window:03}{i:08},W{window:02}-{:05}.1,500",
                    i - 1
                ));
            } else {
                bill.push(format!("{t},{pos_ref},SALE,PAID,{channel},{pay_no},,{amount}"));
            }
        }
    }
    tx.commit().unwrap();
    bill
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let windows = env("BENCH_WINDOWS", 50);
    let orders = env("BENCH_ORDERS", 3000);
    let live_ms = env("BENCH_LIVE_MS", 400) as u64;
    let live_secs = env("BENCH_LIVE_SECS", 30) as u64;
    let Some(pg) = pg::Pg::start_with(true) else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = pg.hub_cmd(&["migrate"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut roles = String::new();
    for w in 0..windows {
        roles.push_str(&format!("CREATE ROLE w{w:02} LOGIN PASSWORD 'bench-pass' IN ROLE hisbridge_bridge; "));
    }
    pg.psql("hub", &roles);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "bench-pass").unwrap();

    let day = chrono::Local::now().format("%Y-%m-%d").to_string();
    let offset = chrono::Local::now().format("%:z").to_string();
    let t = Instant::now();
    let mut bill = String::from("time,reference,op,status,channel,pay_no,original,amount_fen\n");
    let journals: Vec<PathBuf> = (0..windows)
        .map(|w| {
            let p = dir.path().join(format!("w{w:02}.sqlite"));
            for l in fill(&p, w, orders, &day, &offset) {
                bill.push_str(&l);
                bill.push('\n');
            }
            p
        })
        .collect();
    let total_events = (windows * orders * 3) as i64;
    println!("hub benchmark: {windows} windows x {orders} orders = {} orders, {total_events} events", windows * orders);
    println!("  journals written in {:.1} s", t.elapsed().as_secs_f64());

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut keep = Vec::new();
        let start = Instant::now();
        for (w, j) in journals.iter().enumerate() {
            let settings = HubSettings {
                url: pg.url(&format!("w{w:02}")),
                password_file: Some(pw.clone()),
                tls: TlsMode::Disable,
                ca_file: None,
                window: format!("窗口{w:02}"),
                heartbeat: Duration::from_secs(30),
                batch: 500,
                timeout: Duration::from_secs(60),
            };
            let (pos_tx, pos) = tokio::sync::watch::channel(PosStatus {
                port: "COM5".into(),
                link: Link::Ready,
                device_id: Some(format!("POS-{w:04}")),
                version: None,
                model: None,
                last_heard: None,
            });
            let (health_tx, health) = tokio::sync::watch::channel(Default::default());
            let (notice_tx, notices) = tokio::sync::broadcast::channel(16);
            let (status_tx, _status) = tokio::sync::watch::channel(HubStatus::default());
            tokio::spawn(replica::run(settings, j.clone(), format!("POS-{w:04}"), Inputs { pos, health, notices }, status_tx));
            keep.push((pos_tx, health_tx, notice_tx));
        }
        let admin = Target::from_url(&pg.url(pg::ADMIN), Some(pg.admin_password_file()), TlsMode::Disable, None);
        let client = admin.connect().await.unwrap();
        let mut last = 0;
        loop {
            let n: i64 = client.query_one("SELECT count(*) FROM hisbridge.events", &[]).await.unwrap().get(0);
            if n >= total_events {
                break;
            }
            if n != last {
                last = n;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "  catch-up (hub empty, every journal full): {secs:.1} s, {:.0} events/s, {:.0} orders/s",
            total_events as f64 / secs,
            (windows * orders) as f64 / secs
        );

        // The hospital-wide day and the merchant's bill on it.
        let reader = Target::from_url(&pg.url(pg::ADMIN), Some(pg.admin_password_file()), TlsMode::Disable, None);
        let c = reader.connect().await.unwrap();
        let t = Instant::now();
        let d = report::day(&c, &day).await.unwrap();
        println!(
            "  hub report --date (all windows, {} orders that day): {:.2} s",
            d.totals.sales + d.totals.refunds + d.totals.open,
            t.elapsed().as_secs_f64()
        );
        let t = Instant::now();
        let (m, _) = report::statement(&c, &day, Source::Pos, bill.as_bytes(), "bench.csv", false).await.unwrap();
        println!(
            "  hub report --statement (a bill of {} lines against every window): {:.2} s, {} matched, {} differences",
            m.statement_lines,
            t.elapsed().as_secs_f64(),
            m.matched,
            m.differences.len()
        );
        // Live: every window keeps taking orders; each event's lag from its journal commit to
        // the hub's.
        let live_from: i64 = client.query_one("SELECT count(*) FROM hisbridge.events", &[]).await.unwrap().get(0);
        let stop = Instant::now() + Duration::from_secs(live_secs);
        let mut writers = Vec::new();
        for (w, j) in journals.iter().enumerate() {
            let j = j.clone();
            writers.push(std::thread::spawn(move || {
                let c = rusqlite::Connection::open(&j).unwrap();
                c.busy_timeout(Duration::from_secs(5)).unwrap();
                c.pragma_update(None, "synchronous", "NORMAL").unwrap();
                let mut i = 0;
                // Windows start at different moments, as cashiers do.
                std::thread::sleep(Duration::from_millis((w as u64 * 37) % live_ms));
                while Instant::now() < stop {
                    let now = || hisbridge_core::journal::now_str();
                    let key = format!("L{w:02}-{i:05}");
                    c.execute(
                        "INSERT INTO orders (key, order_no, terminal_id, kind, amount_fen, source, state, created_at, updated_at) \
                         VALUES (?1, ?1, 'T', 'SALE', 100, 'bench', 'ACCEPTED', ?2, ?2)",
                        rusqlite::params![key, now()],
                    )
                    .unwrap();
                    let id = c.last_insert_rowid();
                    c.execute("INSERT INTO events (order_id, at, state) VALUES (?1, ?2, 'ACCEPTED')", rusqlite::params![id, now()]).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                    c.execute("UPDATE orders SET state = 'SENT', updated_at = ?2 WHERE id = ?1", rusqlite::params![id, now()]).unwrap();
                    c.execute("INSERT INTO events (order_id, at, state) VALUES (?1, ?2, 'SENT')", rusqlite::params![id, now()]).unwrap();
                    std::thread::sleep(Duration::from_millis(60));
                    let n = now();
                    c.execute(
                        "UPDATE orders SET state = 'SUCCESS', channel = 'WECHAT', finished_at = ?2, updated_at = ?2 WHERE id = ?1",
                        rusqlite::params![id, n],
                    )
                    .unwrap();
                    c.execute("INSERT INTO events (order_id, at, state) VALUES (?1, ?2, 'SUCCESS')", rusqlite::params![id, n]).unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(live_ms.saturating_sub(80)));
                }
                i
            }));
        }
        let live_orders: i64 = writers.into_iter().map(|t| t.join().unwrap() as i64).sum();
        let want = live_from + live_orders * 3;
        loop {
            let n: i64 = client.query_one("SELECT count(*) FROM hisbridge.events", &[]).await.unwrap().get(0);
            if n >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let rows = client
            .query(
                "SELECT extract(epoch FROM received_at - at)::float8 FROM hisbridge.events WHERE order_id IN \
                 (SELECT order_id FROM hisbridge.orders WHERE key LIKE 'L%' AND orders.journal_id = events.journal_id)",
                &[],
            )
            .await
            .unwrap();
        let mut lag: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(0) * 1000.0).collect();
        println!(
            "  live ({windows} windows, an order every {live_ms} ms each, {live_secs} s: {live_orders} orders, {:.0} events/s): lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            live_orders as f64 * 3.0 / live_secs as f64,
            pct(&mut lag, 0.5),
            pct(&mut lag, 0.99),
            pct(&mut lag, 1.0)
        );

        let size = pg.psql("hub", "SELECT pg_size_pretty(pg_database_size('hub'))");
        let per = pg.psql(
            "hub",
            "SELECT pg_size_pretty(pg_total_relation_size('hisbridge.orders')) || ' orders, ' || \
             pg_size_pretty(pg_total_relation_size('hisbridge.events')) || ' events'",
        );
        println!("  hub database: {size} ({per})");
        drop(keep);
    });
}
