//! Reconciliation at volume: a journal holding one day of N transactions (default 100,000, a
//! tenth of them refunds) plus the days around it; the day's report built, serialized,
//! encrypted and exported as CSV; a WeChat Pay bill of the day parsed and matched.
//! Run: `cargo bench --bench recon` (`BENCH_TXNS=...`). Figures go to docs/performance.md.

use std::time::Instant;

use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::journal::Journal;
use hisbridge_core::recon::DayReport;
use hisbridge_core::statement::{self, Source};

const DAY: &str = "2026-11-20";

fn main() {
    let n: usize = std::env::var("BENCH_TXNS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let mut j = Journal::open(&path).unwrap();
    let t = Instant::now();
    let mut bill = String::from(
        "交易时间,微信订单号,商户订单号,交易状态,应结订单金额,微信退款单号,商户退款单号,退款金额,退款状态,订单金额\n",
    );
    {
        let c = j.connection();
        let tx = c.transaction().unwrap();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO orders (key, order_no, refund_no, terminal_id, kind, amount_fen, source, state, attempt, \
                     pos_ref, device_id, pay_order_no, channel, created_at, updated_at, sent_at, finished_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'bench', ?7, 1, ?8, 'POS-0001', ?9, ?10, ?11, ?11, ?11, ?11)",
                )
                .unwrap();
            // The day itself, and a third as many on each neighbouring day (the matcher reads those too).
            for (date, count) in [("2026-11-19", n / 3), (DAY, n), ("2026-11-21", n / 3)] {
                for i in 0..count {
                    let no = format!("{}{i:07}", &date[8..]);
                    let refund = i % 10 == 9;
                    let channel = if i % 2 == 0 { "WECHAT" } else { "ALIPAY" };
                    let at = format!("{date}T{:02}:{:02}:{:02}.000+08:00", 7 + (i / 3600) % 12, (i / 60) % 60, i % 60);
                    let fen = 100 + (i as i64 * 37) % 50_000;
                    let (key, kind, amount, state, refund_no, pos_ref, pay_no) = if refund {
                        let orig = format!("{}{:07}", &date[8..], i - 1);
                        (
                            format!("{orig}@R1"),
                            "REFUND",
                            -fen / 4,
                            "REFUNDED",
                            Some("R1".to_string()),
                            format!("{orig}@R1.1"),
                            format!("5030{no}"),
                        )
                    } else {
                        (no.clone(), "SALE", fen, "SUCCESS", None, format!("{no}.1"), format!("4200{no}"))
                    };
                    let order_no = key.split('@').next().unwrap().to_string();
                    ins.execute((
                        &key,
                        &order_no,
                        refund_no.as_deref(),
                        "W01",
                        kind,
                        amount,
                        state,
                        &pos_ref,
                        &pay_no,
                        channel,
                        &at,
                    ))
                    .unwrap();
                    if date == DAY && channel == "WECHAT" && !refund {
                        bill.push_str(&format!(
                            "`{},`{pay_no},`{pos_ref},`SUCCESS,`{}.{:02},`,`,`0.00,`,`{}.{:02}\n",
                            &at[..19],
                            fen / 100,
                            fen % 100,
                            fen / 100,
                            fen % 100
                        ));
                    }
                }
            }
        }
        tx.commit().unwrap();
    }
    eprintln!("journal filled: {} rows in {:.1} s", n + 2 * (n / 3), t.elapsed().as_secs_f64());

    let t = Instant::now();
    let r = DayReport::build(&j, DAY, "POS-0001").unwrap();
    let build = t.elapsed();
    let t = Instant::now();
    let json = r.to_json();
    let to_json = t.elapsed();
    let t = Instant::now();
    let key = Key::generate("K1").unwrap();
    let sealed = key.seal(Direction::ToHis, json.as_bytes());
    let seal = t.elapsed();
    let t = Instant::now();
    let csv = r.to_csv();
    let to_csv = t.elapsed();
    let t = Instant::now();
    let m = statement::match_file(&j, DAY, Source::Wechat, bill.as_bytes()).unwrap();
    let matching = t.elapsed();
    println!("reconciliation of {} transactions ({} in the report):", n, r.transactions.len());
    println!("  build report from journal   {:>8.0} ms", build.as_secs_f64() * 1e3);
    println!("  serialize JSON ({:>5.1} MB)   {:>8.0} ms", json.len() as f64 / 1e6, to_json.as_secs_f64() * 1e3);
    println!("  encrypt file   ({:>5.1} MB)   {:>8.0} ms", sealed.len() as f64 / 1e6, seal.as_secs_f64() * 1e3);
    println!("  finance CSV    ({:>5.1} MB)   {:>8.0} ms", csv.len() as f64 / 1e6, to_csv.as_secs_f64() * 1e3);
    println!(
        "  parse + match WeChat bill   {:>8.0} ms ({} lines, {} matched, {} differences)",
        matching.as_secs_f64() * 1e3,
        m.statement_lines,
        m.matched,
        m.differences.len()
    );
    println!(
        "  total                       {:>8.0} ms",
        (build + to_json + seal + to_csv + matching).as_secs_f64() * 1e3
    );
}
