//! A valid order's latency under a flood of invalid input (docs/performance.md, "Under a flood"):
//! with 0, 1,000 and 20,000 broken files in the inbox, and with a second connection sending
//! garbage lines as fast as it can. Latency: order file renamed into the inbox -> its final
//! result file in place (the POS simulator answers in 5 ms). Measures, never asserts.
//! Run: `cargo bench --bench flood` (`FLOOD_ORDERS` per case, default 20).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::Harness;
use hisbridge_core::hisclient;
use hisbridge_sim::SimConfig;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn order_latency(h: &Harness, tag: &str, i: usize) -> Duration {
    let ins = Harness::order("W01", &format!("{tag}{i:04}"), "+1.00", None);
    let stem = hisclient::new_stem(&ins);
    let tmp = h.inbox().join(format!(".{stem}.ord.tmp"));
    std::fs::write(&tmp, h.seal(&ins.to_json())).unwrap();
    let t0 = Instant::now();
    std::fs::rename(&tmp, h.inbox().join(format!("{stem}.ord"))).unwrap();
    loop {
        if let Ok(Some(r)) = hisclient::read_result(h.outbox(), &h.key, &stem) {
            if r.status.is_final() {
                return t0.elapsed();
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn garbage(h: &Harness, n: usize, tag: &str) {
    for i in 0..n {
        let name = format!("{tag}{i:05}.ord");
        std::fs::write(h.inbox().join(format!(".{name}.tmp")), format!("HB1.K1.ORD.{}", "QUJD".repeat(20))).unwrap();
        std::fs::rename(h.inbox().join(format!(".{name}.tmp")), h.inbox().join(name)).unwrap();
    }
}

fn main() {
    let n: usize = std::env::var("FLOOD_ORDERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    std::env::set_var("HISBRIDGE_LOG", "error");
    let sim = SimConfig { scan_delay: Duration::from_millis(5), ..SimConfig::default() };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(sim, &format!("[socket]\nport = {port}\n"));
    h.pay("WARMUP", "+0.01");
    println!("valid-order latency, file renamed into the inbox -> final result file ({n} orders per case)");
    for (case, files) in [("no flood", 0), ("1,000 broken files", 1000), ("20,000 broken files", 20_000)] {
        garbage(&h, files, &format!("G{files}-"));
        let mut v: Vec<Duration> = (0..n).map(|i| order_latency(&h, &format!("F{files}-"), i)).collect();
        let left = common::list(h.inbox()).len();
        println!(
            "  {case:>22}: p50 {:>9.1?}  p99 {:>9.1?}  ({left} broken files still waiting)",
            pct(&mut v, 0.5),
            pct(&mut v, 0.99)
        );
        let t = Instant::now();
        while !common::list(h.inbox()).is_empty() && t.elapsed() < Duration::from_secs(900) {
            std::thread::sleep(Duration::from_millis(200));
        }
        println!("  {:>22}  the flood drained in {:.1?}", "", t.elapsed());
    }
    // A second connection sending garbage lines without pause (reconnecting when closed).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let flood = std::thread::spawn(move || {
        let mut lines = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { continue };
            let _ = s.set_write_timeout(Some(std::time::Duration::from_millis(100)));
            while s.write_all(b"HB1.K1.ORD.garbage\n").is_ok() && !s2.load(std::sync::atomic::Ordering::Relaxed) {
                lines += 1;
            }
        }
        lines
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut v: Vec<Duration> = (0..n).map(|i| order_latency(&h, "S", i)).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = flood.join().unwrap();
    println!(
        "  {:>22}: p50 {:>9.1?}  p99 {:>9.1?}  ({lines} garbage lines sent)",
        "garbage socket flood",
        pct(&mut v, 0.5),
        pct(&mut v, 0.99)
    );
}
