//! Crash test: the real `hisbridge run` process is SIGKILLed at every step of a collection and
//! of a refund, and at random moments, then restarted. Checked against the simulator's ledger
//! and the result files: every order has exactly one final result, nothing is charged twice,
//! every charge is reported.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hisbridge_core::envelope::Key;
use hisbridge_core::failpoint::POINTS;
use hisbridge_core::his::{Instruction, InstructionKind, ResultMessage, Status};
use hisbridge_core::{amount::Amount, hisclient, keyfile};
use hisbridge_sim::{SimConfig, SimHandle};

const WAIT: Duration = Duration::from_secs(120);

struct Env {
    dir: tempfile::TempDir,
    cfg_path: PathBuf,
    key: Key,
    sim: SimHandle,
    bridge: Option<(Child, mpsc::Receiver<String>)>,
}

#[derive(Default, Debug)]
struct Counts {
    runs: usize,
    kill_points: usize,
    orders: usize,
    double_charges: usize,
    lost_results: usize,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sim = hisbridge_sim::spawn_on_pty(SimConfig {
            scan_delay: Duration::from_millis(80),
            paying_delay: Duration::from_millis(300),
            ..SimConfig::default()
        })
        .unwrap();
        let key = Key::generate("K1").unwrap();
        keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
        let cfg_path = dir.path().join("hisbridge.toml");
        std::fs::write(
            &cfg_path,
            format!(
                "data_dir = {:?}\nterminals = [\"W01\"]\n[pos]\nport = {:?}\ndevice_id = \"POS-0001\"\n\
                 [intake]\nrescan_ms = 100\nstable_ms = 50\n[timeouts]\nquery_interval_secs = 1\nscan_secs = 5\n",
                dir.path().display().to_string(),
                sim.port_path()
            ),
        )
        .unwrap();
        Env { dir, cfg_path, key, sim, bridge: None }
    }

    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }
    fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    fn start(&mut self, failpoint: Option<&str>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hisbridge"));
        cmd.args(["run", "--config"]).arg(&self.cfg_path).env("HISBRIDGE_LOG", "info");
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        match failpoint {
            Some(f) => cmd.env("HISBRIDGE_FAILPOINT", f),
            None => cmd.env_remove("HISBRIDGE_FAILPOINT"),
        };
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(name) = line.strip_prefix("FAILPOINT ") {
                    let _ = tx.send(name.to_string());
                }
            }
        });
        self.bridge = Some((child, rx));
        let inbox = self.inbox();
        wait_for(|| inbox.is_dir(), "inbox created");
    }

    /// SIGKILL, no warning.
    fn kill(&mut self) {
        if let Some((mut c, _)) = self.bridge.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn wait_failpoint(&self, name: &str) -> bool {
        let (_, rx) = self.bridge.as_ref().unwrap();
        rx.recv_timeout(Duration::from_secs(20)).is_ok_and(|n| n == name)
    }

    fn send(&self, order_no: &str, amount: &str, refund_no: Option<&str>) -> String {
        let ins = Instruction {
            kind: InstructionKind::Order,
            terminal_id: "W01".into(),
            order_no: order_no.into(),
            refund_no: refund_no.map(Into::into),
            amount: Some(Amount::parse(amount).unwrap()),
            operator: None,
            description: None,
            sent_at: None,
        };
        let stem = hisclient::new_stem(&ins);
        hisclient::send(&self.inbox(), &self.key, &ins, &stem).unwrap();
        stem
    }

    fn final_result(&self, stem: &str) -> ResultMessage {
        hisclient::wait_final(&self.outbox(), &self.key, stem, WAIT).unwrap()
    }

    /// Checks one collection against the ledger; returns (double charges, lost results).
    fn check_sale(&self, key: &str, r: &ResultMessage) -> (usize, usize) {
        let ledger = self.sim.ledger();
        let paid: Vec<_> = ledger.sales_for(key).into_iter().filter(|e| e.status == "PAID").collect();
        let double = usize::from(paid.len() > 1);
        let lost = match r.status {
            Status::Success => usize::from(paid.len() != 1 || r.pay_order_no != paid[0].pay_order_no),
            Status::Failed | Status::Cancelled | Status::Reversed => usize::from(!paid.is_empty()),
            _ => 1,
        };
        (double, lost)
    }

    fn check_refund(&self, key: &str, r: &ResultMessage) -> (usize, usize) {
        let ledger = self.sim.ledger();
        let done: Vec<_> = ledger
            .refunds()
            .into_iter()
            .filter(|e| e.reference.rsplit_once('.').is_some_and(|(k, _)| k == key))
            .cloned()
            .collect();
        let double = usize::from(done.len() > 1);
        let lost = match r.status {
            Status::Refunded => usize::from(done.len() != 1),
            Status::Failed => usize::from(!done.is_empty()),
            _ => 1,
        };
        (double, lost)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn crash_at_every_step_and_at_random_moments() {
    let mut env = Env::new();
    let mut c = Counts::default();

    // Every step of a collection (the .93 rule: the patient enters a password, then pays).
    for (i, point) in POINTS.iter().enumerate() {
        let no = format!("KC{i:02}");
        env.start(Some(point));
        let stem = env.send(&no, "+10.93", None);
        assert!(env.wait_failpoint(point), "collection never reached {point}");
        env.kill();
        env.start(None);
        let r = env.final_result(&stem);
        env.kill();
        let (d, l) = env.check_sale(&no, &r);
        assert_eq!((d, l), (0, 0), "collection killed at {point}: {r:?}");
        c.runs += 1;
        c.kill_points += 1;
        c.orders += 1;
        c.double_charges += d;
        c.lost_results += l;
    }

    // Every step of a refund (no password step).
    for (i, point) in POINTS.iter().filter(|p| **p != "paying").enumerate() {
        let no = format!("KR{i:02}");
        env.start(None);
        let stem = env.send(&no, "+20.00", None);
        assert_eq!(env.final_result(&stem).status, Status::Success);
        env.kill();
        env.start(Some(point));
        let stem = env.send(&no, "-5.00", Some("R1"));
        assert!(env.wait_failpoint(point), "refund never reached {point}");
        env.kill();
        env.start(None);
        let r = env.final_result(&stem);
        env.kill();
        let (d, l) = env.check_refund(&format!("{no}@R1"), &r);
        assert_eq!((d, l), (0, 0), "refund killed at {point}: {r:?}");
        c.runs += 1;
        c.kill_points += 1;
        c.orders += 2;
        c.double_charges += d;
        c.lost_results += l;
    }

    // Random moments, random outcomes.
    let runs: usize = std::env::var("CRASH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(12);
    for i in 0..runs {
        let no = format!("KX{i:03}");
        let amount = ["+1.00", "+1.93", "+1.91", "+1.60", "+1.95"][i % 5];
        env.start(None);
        let stem = env.send(&no, amount, None);
        std::thread::sleep(Duration::from_millis(rand_ms(700)));
        env.kill();
        env.start(None);
        let r = env.final_result(&stem);
        env.kill();
        let (d, l) = env.check_sale(&no, &r);
        assert_eq!((d, l), (0, 0), "random kill {i} ({amount}): {r:?}");
        c.runs += 1;
        c.orders += 1;
    }
    println!(
        "crash test: runs {}, kill points {}, orders {}, double charges = {}, lost results = {}",
        c.runs, c.kill_points, c.orders, c.double_charges, c.lost_results
    );
}

fn rand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    nanos % max
}
