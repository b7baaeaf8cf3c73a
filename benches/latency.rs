//! Added latency of both HIS channels, both legs, on this machine:
//!   drop folder  leg 1: order file renamed into the inbox -> SALE frame complete at the POS simulator
//!                leg 2: final RESULT frame handed to the line by the POS -> final result file in place
//!   socket       leg 1: order line written to the socket -> SALE frame complete at the POS
//!                leg 2: final RESULT frame handed to the line -> final result line read by the client
//! Run: `cargo bench --bench latency` (N orders, sequential). Figures go to docs/performance.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::Harness;
use hisbridge_core::hisclient;
use hisbridge_sim::{Mark, SimConfig};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    let n: usize = std::env::var("BENCH_ORDERS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    std::env::set_var("HISBRIDGE_LOG", "warn");
    let sim = SimConfig { scan_delay: Duration::from_millis(5), ..SimConfig::default() };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(sim, &format!("[socket]\nport = {port}\n"));
    // Warm up: the POS handshake and the first file.
    h.pay("WARMUP", "+0.01");
    let (mut leg1, mut leg2) = (Vec::new(), Vec::new());
    for i in 0..n {
        let order_no = format!("BENCH{i:05}");
        let ins = Harness::order("W01", &order_no, "+1.00", None);
        let stem = hisclient::new_stem(&ins);
        let text = h.seal(&ins.to_json());
        let tmp = h.inbox().join(format!(".{stem}.ord.tmp"));
        std::fs::write(&tmp, text).unwrap();
        let t0 = Instant::now();
        std::fs::rename(&tmp, h.inbox().join(format!("{stem}.ord"))).unwrap();
        // Wait for the final result file, polling finely.
        let t_done = loop {
            if let Ok(Some(r)) = hisclient::read_result(h.outbox(), &h.key, &stem) {
                if r.status.is_final() {
                    break Instant::now();
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let trace = h.sim.trace.lock().unwrap().clone();
        let pos_ref = format!("{order_no}.1");
        let at = |m: Mark| trace.iter().find(|(r, mk, _)| *r == pos_ref && *mk == m).map(|(_, _, t)| *t).unwrap();
        leg1.push(at(Mark::SaleReceived) - t0);
        leg2.push(t_done - at(Mark::ResultSent));
    }
    println!("drop folder, {n} orders");
    println!(
        "  leg 1 (file renamed into inbox -> SALE at POS): p50 {:?}  p99 {:?}",
        pct(&mut leg1, 0.5),
        pct(&mut leg1, 0.99)
    );
    println!(
        "  leg 2 (RESULT from POS -> result file in place): p50 {:?}  p99 {:?}",
        pct(&mut leg2, 0.5),
        pct(&mut leg2, 0.99)
    );

    let mut client = hisclient::SocketClient::connect(port, h.key.clone()).unwrap();
    let (mut leg1, mut leg2) = (Vec::new(), Vec::new());
    for i in 0..n {
        let order_no = format!("SOCK{i:05}");
        let ins = Harness::order("W01", &order_no, "+1.00", None);
        let t0 = Instant::now();
        client.send(&ins).unwrap();
        let t_done = loop {
            let r = client.next(Duration::from_secs(30)).unwrap().expect("a result");
            if r.status.is_final() {
                break Instant::now();
            }
        };
        let trace = h.sim.trace.lock().unwrap().clone();
        let pos_ref = format!("{order_no}.1");
        let at = |m: Mark| trace.iter().find(|(r, mk, _)| *r == pos_ref && *mk == m).map(|(_, _, t)| *t).unwrap();
        leg1.push(at(Mark::SaleReceived) - t0);
        leg2.push(t_done - at(Mark::ResultSent));
    }
    println!("socket, {n} orders");
    println!("  leg 1 (order line sent -> SALE at POS): p50 {:?}  p99 {:?}", pct(&mut leg1, 0.5), pct(&mut leg1, 0.99));
    println!(
        "  leg 2 (RESULT from POS -> result line at client): p50 {:?}  p99 {:?}",
        pct(&mut leg2, 0.5),
        pct(&mut leg2, 0.99)
    );
}
