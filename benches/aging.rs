//! Cost as the journal ages and the inbox fills: the same bridge (`hisbridge run`, a separate
//! process) against journals of 0, 10^4, 10^5 and 10^6 orders built by a generator, and against
//! an inbox holding 10,000 files it never takes; side by side with the floor (the unavoidable
//! steps only, `floor.rs` beside this file). For each case: both legs of both channels (p50/p99,
//! as a ratio to the empty journal), CPU per order, idle CPU, start-up to the first SALE, and
//! the bridge's anonymous memory.
//!
//! Run: `cargo bench --bench aging` or `scripts/bench-aging.sh`. Knobs: BENCH_ORDERS (per
//! channel, default 200), BENCH_IDLE_SECS (default 60), BENCH_CASES (e.g. `0,10000,1000000,c0`,
//! `cN` = N orders and 10,000 clutter files). Figures go to docs/performance.md.

#[path = "aging/floor.rs"]
mod floor;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hisbridge_core::amount::Amount;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::his::{Instruction, InstructionKind};
use hisbridge_core::journal::Journal;
use hisbridge_core::{hisclient, keyfile};
use hisbridge_sim::{Mark, SimConfig, SimHandle};

const CLUTTER: usize = 10_000;
/// The generator's history: this many orders a day, the days ending yesterday.
const PER_DAY: usize = 1_000;

fn pct(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Fills a new journal with `n` final orders over the days before today, as the bridge leaves
/// them: the order, its three events, its answered reply, now and then a refund or a decline,
/// and refused instructions of those days.
pub fn generate(path: &Path, n: usize) {
    let mut j = Journal::open(path).unwrap();
    let today = chrono::Local::now().date_naive();
    let days = n.div_ceil(PER_DAY);
    let c = j.connection();
    let tx = c.transaction().unwrap();
    {
        let mut order = tx
            .prepare(
                "INSERT INTO orders (id, key, order_no, refund_no, terminal_id, kind, amount_fen, description, source, \
                 state, attempt, pos_ref, orig_pos_ref, device_id, pay_order_no, channel, pos_code, pos_message, \
                 error_code, created_at, updated_at, sent_at, finished_at, result_written_at, pos_evidence) \
                 VALUES (?1, ?2, ?3, ?4, 'W01', ?5, ?6, '门诊缴费', ?7, ?8, 1, ?9, ?10, 'POS-0001', ?11, ?12, ?13, ?14, \
                 ?15, ?16, ?17, ?16, ?17, ?17, ?18)",
            )
            .unwrap();
        let mut event = tx.prepare("INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)").unwrap();
        let mut reply = tx
            .prepare(
                "INSERT INTO replies (order_id, reply_to, work_file, final_at, pinned) VALUES (?1, ?2, NULL, ?3, ?4)",
            )
            .unwrap();
        let mut reject = tx
            .prepare(
                "INSERT INTO rejects (at, source, order_no, error_code, detail) VALUES (?1, ?2, NULL, 'E_DECRYPT', ?3)",
            )
            .unwrap();
        for i in 0..n {
            let day = today - chrono::Days::new((days - i / PER_DAY) as u64);
            let k = i % PER_DAY;
            let secs = 8 * 3600 + (k * 32_400 / PER_DAY) as u32;
            let at = |extra: u32| {
                let t = secs + extra;
                format!("{day}T{:02}:{:02}:{:02}.{:03}+08:00", t / 3600, t / 60 % 60, t % 60, i % 1000)
            };
            let (created, finished) = (at(0), at(20));
            let no = format!("MZ{}{k:05}", day.format("%Y%m%d"));
            let refund = k % 10 == 9;
            let declined = k % 20 == 3;
            let (key, order_no, refund_no, kind, fen, state) = if refund {
                let orig = format!("MZ{}{:05}", day.format("%Y%m%d"), k - 1);
                (format!("{orig}@R1"), orig, Some("R1"), "REFUND", -500, "REFUNDED")
            } else if declined {
                (no.clone(), no, None, "SALE", 1250, "FAILED")
            } else {
                (no.clone(), no, None, "SALE", 100 + (i as i64 * 37) % 50_000, "SUCCESS")
            };
            let pos_ref = format!("{key}.1");
            let orig_ref = refund.then(|| format!("{order_no}.1"));
            let (pay_no, channel) = if declined {
                (None, None)
            } else {
                (Some(format!("42000{i:012}")), Some(if i % 3 == 0 { "ALIPAY" } else { "WECHAT" }))
            };
            let (code, msg, err) =
                if declined { ("DECLINED", Some("余额不足"), Some("E_DECLINED")) } else { ("00", None, None) };
            let id = i as i64 + 1;
            order
                .execute(rusqlite::params![
                    id,
                    key,
                    order_no,
                    refund_no,
                    kind,
                    fen,
                    format!("file:{key}"),
                    state,
                    pos_ref,
                    orig_ref,
                    pay_no,
                    channel,
                    code,
                    msg,
                    err,
                    created,
                    finished,
                    if declined { "DECLINED" } else { state },
                ])
                .unwrap();
            event.execute(rusqlite::params![id, created, "ACCEPTED", format!("file:{key}")]).unwrap();
            event.execute(rusqlite::params![id, created, "SENT", format!("attempt 1 ref {pos_ref}")]).unwrap();
            event.execute(rusqlite::params![id, finished, state, Option::<String>::None]).unwrap();
            let pinned = format!(
                "{{\"device_id\":\"POS-0001\",\"order_no\":\"{order_no}\",\"pay_order_no\":{},\"status\":\"{state}\",\"channel\":{}}}",
                pay_no.as_deref().map(|s| format!("\"{s}\"")).unwrap_or("null".into()),
                channel.map(|s| format!("\"{s}\"")).unwrap_or("null".into())
            );
            reply.execute(rusqlite::params![id, key, finished, pinned]).unwrap();
            if k % 100 == 50 {
                reject
                    .execute(rusqlite::params![created, format!("file:junk{i}"), "the envelope does not open"])
                    .unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// CPU time (user + system, all threads) of a process.
fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_micros(ticks * 1_000_000 / hz)
}

/// A field of /proc/<pid>/status in KiB (`RssAnon`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn order(order_no: &str) -> Instruction {
    Instruction {
        kind: InstructionKind::Order,
        terminal_id: "W01".into(),
        order_no: order_no.into(),
        refund_no: None,
        amount: Some(Amount::parse("+1.00").unwrap()),
        operator: None,
        description: Some("门诊缴费".into()),
        sent_at: None,
    }
}

struct Bridge {
    child: Child,
    cfg: Config,
    key: Key,
    socket: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn prepare(sim: &SimHandle, rows: usize, clutter: usize) -> (tempfile::TempDir, Config, Key, u16) {
    let dir = tempfile::tempdir().unwrap();
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let cfg_path = dir.path().join("hisbridge.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "data_dir = {:?}\nterminals = [\"W01\"]\n[pos]\nport = {:?}\ndevice_id = \"POS-0001\"\n[socket]\nport = {socket}\n",
            dir.path().display().to_string(),
            sim.port_path()
        ),
    )
    .unwrap();
    let key = Key::generate("K1").unwrap();
    keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
    let cfg = Config::load(&cfg_path).unwrap();
    if rows > 0 {
        generate(&cfg.journal, rows);
    }
    std::fs::create_dir_all(&cfg.folders.inbox).unwrap();
    for i in 0..clutter {
        // What an HIS that never cleans up leaves: its temp files, logs, exports of its own.
        let name = match i % 4 {
            0 => format!("~his{i:05}.tmp"),
            1 => format!("export{i:05}.log"),
            2 => format!("MZ{i:05}.ord.bak"),
            _ => format!("print{i:05}.txt"),
        };
        std::fs::write(cfg.folders.inbox.join(name), b"not for the bridge").unwrap();
    }
    (dir, cfg, key, socket)
}

fn drop_order(cfg: &Config, key: &Key, order_no: &str) -> (String, Instant) {
    let ins = order(order_no);
    let stem = hisclient::new_stem(&ins);
    let tmp = cfg.folders.inbox.join(format!(".{stem}.ord.tmp"));
    std::fs::write(&tmp, key.seal(Direction::ToBridge, ins.to_json().as_bytes())).unwrap();
    let t0 = Instant::now();
    std::fs::rename(&tmp, cfg.folders.inbox.join(format!("{stem}.ord"))).unwrap();
    (stem, t0)
}

fn wait_result(cfg: &Config, key: &Key, stem: &str) -> Instant {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(r)) = hisclient::read_result(&cfg.folders.outbox, key, stem) {
            if r.status.is_final() {
                return Instant::now();
            }
        }
        assert!(Instant::now() < give_up, "no result for {stem}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn mark(sim: &SimHandle, pos_ref: &str, m: Mark) -> Instant {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        let found = sim.trace.lock().unwrap().iter().find(|(r, mk, _)| r == pos_ref && *mk == m).map(|(_, _, t)| *t);
        if let Some(t) = found {
            return t;
        }
        assert!(Instant::now() < give_up, "no {m:?} for {pos_ref}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[derive(Default, Clone)]
struct Figures {
    label: String,
    folder: [Vec<Duration>; 2],
    socket: [Vec<Duration>; 2],
    cpu_per_order: Duration,
    idle_cpu: f64,
    startup: Duration,
    anon_kib: u64,
    anon_idle_kib: u64,
    /// (orders done, anonymous memory in KiB) every 1,000 orders.
    anon_trend: Vec<(usize, u64)>,
}

fn run_case(bin: &Path, sim: &SimHandle, rows: usize, clutter: usize, n: usize, idle: Duration) -> Figures {
    let label = format!(
        "{} orders{}",
        match rows {
            0 => "0".to_string(),
            r => format!("10^{}", (r as f64).log10().round()),
        },
        if clutter > 0 { format!(", {clutter} clutter files") } else { String::new() }
    );
    eprintln!("case {label}: building");
    let t = Instant::now();
    let (dir, cfg, key, socket) = prepare(sim, rows, clutter);
    eprintln!("case {label}: built in {:.1} s", t.elapsed().as_secs_f64());
    let tag = format!("{}{}", rows.max(1).ilog10(), if clutter > 0 { "C" } else { "" });
    // Start-up: an order waits in the inbox when the bridge starts.
    let first = format!("FIRST{tag}");
    let (stem, _) = drop_order(&cfg, &key, &first);
    let t0 = Instant::now();
    let child = Command::new(bin)
        .args(["run", "--config"])
        .arg(dir.path().join("hisbridge.toml"))
        .env("HISBRIDGE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let b = Bridge { child, cfg, key, socket, _dir: dir };
    let startup = mark(sim, &format!("{first}.1"), Mark::SaleReceived) - t0;
    wait_result(&b.cfg, &b.key, &stem);
    let pid = b.child.id();
    let mut f = Figures { label: label.clone(), startup, ..Default::default() };

    let c0 = cpu(pid);
    for i in 0..n {
        let no = format!("F{tag}X{i:05}");
        let (stem, t0) = drop_order(&b.cfg, &b.key, &no);
        let done = wait_result(&b.cfg, &b.key, &stem);
        let pos_ref = format!("{no}.1");
        f.folder[0].push(mark(sim, &pos_ref, Mark::SaleReceived) - t0);
        f.folder[1].push(done - mark(sim, &pos_ref, Mark::ResultSent));
        if (i + 1).is_multiple_of(1000) {
            f.anon_trend.push((i + 1, status_kib(pid, "RssAnon")));
        }
    }
    let mut client = hisclient::SocketClient::connect(b.socket, b.key.clone()).unwrap();
    for i in 0..n {
        let no = format!("S{tag}X{i:05}");
        let t0 = Instant::now();
        client.send(&order(&no)).unwrap();
        let done = loop {
            let r = client.next(Duration::from_secs(60)).unwrap().expect("a result");
            if r.status.is_final() {
                break Instant::now();
            }
        };
        let pos_ref = format!("{no}.1");
        f.socket[0].push(mark(sim, &pos_ref, Mark::SaleReceived) - t0);
        f.socket[1].push(done - mark(sim, &pos_ref, Mark::ResultSent));
        if (n + i + 1).is_multiple_of(1000) {
            f.anon_trend.push((n + i + 1, status_kib(pid, "RssAnon")));
        }
    }
    drop(client);
    f.cpu_per_order = (cpu(pid) - c0) / (2 * n) as u32;
    f.anon_kib = status_kib(pid, "RssAnon");
    // Idle: nothing open, the POS connected, the clutter still there.
    std::thread::sleep(Duration::from_secs(2));
    let c1 = cpu(pid);
    let t1 = Instant::now();
    std::thread::sleep(idle);
    f.idle_cpu = (cpu(pid) - c1).as_secs_f64() / t1.elapsed().as_secs_f64() * 100.0;
    f.anon_idle_kib = status_kib(pid, "RssAnon");
    eprintln!("case {label}: done");
    f
}

fn main() {
    // `BENCH_GENERATE=path:N`: only write a journal of N orders (to look at with sqlite3).
    if let Some((path, rows)) = std::env::var("BENCH_GENERATE").ok().as_deref().and_then(|s| s.rsplit_once(':')) {
        generate(Path::new(path), rows.parse().expect("BENCH_GENERATE=path:N"));
        return;
    }
    let n: usize = std::env::var("BENCH_ORDERS").ok().and_then(|s| s.parse().ok()).unwrap_or(200);
    let idle = Duration::from_secs(std::env::var("BENCH_IDLE_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60));
    let cases: Vec<(usize, usize)> = std::env::var("BENCH_CASES")
        .unwrap_or_else(|_| "0,10000,100000,1000000,c0,c1000000".into())
        .split(',')
        .map(|c| match c.strip_prefix('c') {
            Some(r) => (r.parse().unwrap(), CLUTTER),
            None => (c.parse().unwrap(), 0),
        })
        .collect();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_hisbridge"));
    let sim = hisbridge_sim::spawn_on_pty(SimConfig { scan_delay: Duration::from_millis(5), ..SimConfig::default() })
        .unwrap();

    eprintln!("floor: {n} orders");
    let fl = floor::run(n);
    let mut all = Vec::new();
    for (rows, clutter) in cases {
        all.push(run_case(&bin, &sim, rows, clutter, n, idle));
    }

    println!("\n{n} orders per channel, sequential; idle over {} s; this machine: {} cores", idle.as_secs(), cores());
    println!(
        "floor (unavoidable steps only): folder leg 1 p50 {:.2} ms p99 {:.2} ms, leg 2 p50 {:.2} ms p99 {:.2} ms",
        ms(pct(&fl[0], 0.5)),
        ms(pct(&fl[0], 0.99)),
        ms(pct(&fl[1], 0.5)),
        ms(pct(&fl[1], 0.99))
    );
    let base = all.first().cloned().unwrap_or_default();
    let ratio = |v: &[Duration], b: &[Duration], p: f64| {
        if b.is_empty() {
            f64::NAN
        } else {
            pct(v, p).as_secs_f64() / pct(b, p).as_secs_f64()
        }
    };
    println!("\n| journal holds | folder leg 1 p50 / p99 | folder leg 2 p50 / p99 | socket leg 1 p50 / p99 | socket leg 2 p50 / p99 | CPU per order | idle CPU | start → first SALE | anon memory after orders / idle |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for f in &all {
        let cell = |v: &[Duration], b: &[Duration]| {
            format!(
                "{:.2} / {:.2} ms ({:.2}× / {:.2}×)",
                ms(pct(v, 0.5)),
                ms(pct(v, 0.99)),
                ratio(v, b, 0.5),
                ratio(v, b, 0.99)
            )
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} ms | {:.2} % | {:.0} ms | {:.1} / {:.1} MiB |",
            f.label,
            cell(&f.folder[0], &base.folder[0]),
            cell(&f.folder[1], &base.folder[1]),
            cell(&f.socket[0], &base.socket[0]),
            cell(&f.socket[1], &base.socket[1]),
            ms(f.cpu_per_order),
            f.idle_cpu,
            ms(f.startup),
            f.anon_kib as f64 / 1024.0,
            f.anon_idle_kib as f64 / 1024.0,
        );
    }
    for f in all.iter().filter(|f| !f.anon_trend.is_empty()) {
        let trend: Vec<String> = f.anon_trend.iter().map(|(n, k)| format!("{n}: {:.1}", *k as f64 / 1024.0)).collect();
        println!("\nanonymous memory (MiB) by orders done, {}: {}", f.label, trend.join(", "));
    }
    println!("\nratio to the floor (folder legs, p50 / p99):");
    for f in &all {
        println!(
            "  {}: leg 1 {:.2}× / {:.2}×, leg 2 {:.2}× / {:.2}×",
            f.label,
            ratio(&f.folder[0], &fl[0], 0.5),
            ratio(&f.folder[0], &fl[0], 0.99),
            ratio(&f.folder[1], &fl[1], 0.5),
            ratio(&f.folder[1], &fl[1], 0.99)
        );
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
