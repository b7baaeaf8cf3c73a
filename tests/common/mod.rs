//! Test harness: a real bridge (in-process) on real temp folders, a real SQLite file and the
//! POS simulator behind a real pseudo-terminal.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use hisbridge_core::amount::Amount;
use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::his::{Instruction, InstructionKind, ResultMessage};
use hisbridge_core::{hisclient, keyfile};
use hisbridge_sim::{SimConfig, SimHandle};

pub const DEVICE: &str = "POS-0001";
pub const WAIT: Duration = Duration::from_secs(120);

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub cfg: Config,
    pub key: Key,
    pub sim: SimHandle,
    pub rt: Option<tokio::runtime::Runtime>,
    pub bridge: Option<Bridge>,
}

pub fn config_text(dir: &Path, port: &str, extra: &str) -> String {
    config_text_pos(dir, port, "", extra)
}

/// The test config with more lines in its `[pos]` section (e.g. `transport = "usb"`).
pub fn config_text_pos(dir: &Path, port: &str, pos_lines: &str, extra: &str) -> String {
    // `extra` may begin with more `[intake]` lines; a give_up_secs of its own replaces ours.
    let give_up = if extra.contains("give_up_secs") { "" } else { "give_up_secs = 1\n" };
    format!(
        "data_dir = {:?}\nterminals = [\"W01\", \"W02\"]\n[pos]\nport = {:?}\ndevice_id = \"{DEVICE}\"\n{pos_lines}\
         [intake]\nrescan_ms = 100\nstable_ms = 50\n{give_up}{extra}",
        dir.display().to_string(),
        port
    )
}

impl Harness {
    pub fn new() -> Self {
        Self::with(SimConfig::default(), "")
    }

    pub fn with(sim: SimConfig, extra_config: &str) -> Self {
        Self::with_pos(sim, extra_config, |sim| (sim.port_path().to_string(), String::new()))
    }

    /// A harness whose bridge reaches the simulator some other way than its pty by name: `pos`
    /// gets the running simulator and returns the `[pos] port` value and more `[pos]` lines.
    pub fn with_pos(sim: SimConfig, extra_config: &str, pos: impl FnOnce(&SimHandle) -> (String, String)) -> Self {
        // Logs show with the failing test's output (cargo test captures them per test).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("HISBRIDGE_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        let sim = hisbridge_sim::spawn_on_pty(sim).unwrap();
        let key = Key::generate("K1").unwrap();
        let cfg_path = dir.path().join("hisbridge.toml");
        let (port, pos_lines) = pos(&sim);
        std::fs::write(&cfg_path, config_text_pos(dir.path(), &port, &pos_lines, extra_config)).unwrap();
        keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
        let cfg = Config::load(&cfg_path).unwrap();
        let mut h = Harness { dir, cfg, key, sim, rt: None, bridge: None };
        h.start();
        h
    }

    pub fn start(&mut self) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let key = keyfile::load(&self.cfg.key_file).unwrap();
        let bridge = rt.block_on(async { Bridge::start(&self.cfg, key) }).unwrap();
        self.bridge = Some(bridge);
        self.rt = Some(rt);
    }

    /// Stops the bridge abruptly (its tasks are dropped where they stand).
    pub fn stop(&mut self) {
        self.bridge = None;
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }

    pub fn inbox(&self) -> &Path {
        &self.cfg.folders.inbox
    }
    pub fn outbox(&self) -> &Path {
        &self.cfg.folders.outbox
    }

    pub fn order(terminal: &str, order_no: &str, amount: &str, refund_no: Option<&str>) -> Instruction {
        Instruction {
            kind: InstructionKind::Order,
            terminal_id: terminal.into(),
            order_no: order_no.into(),
            refund_no: refund_no.map(Into::into),
            amount: Some(Amount::parse(amount).unwrap()),
            operator: None,
            description: Some("门诊缴费".into()),
            sent_at: None,
        }
    }

    /// A query or cancel of an order from terminal W01.
    pub fn ask(kind: InstructionKind, order_no: &str) -> Instruction {
        Instruction {
            kind,
            terminal_id: "W01".into(),
            order_no: order_no.into(),
            refund_no: None,
            amount: None,
            operator: None,
            description: None,
            sent_at: None,
        }
    }

    /// Sends an instruction the way the contract asks and returns its stem.
    pub fn send(&self, ins: &Instruction) -> String {
        let stem = hisclient::new_stem(ins);
        hisclient::send(self.inbox(), &self.key, ins, &stem).unwrap();
        stem
    }

    pub fn pay(&self, order_no: &str, amount: &str) -> ResultMessage {
        let stem = self.send(&Self::order("W01", order_no, amount, None));
        self.wait(&stem)
    }

    pub fn wait(&self, stem: &str) -> ResultMessage {
        hisclient::wait_final(self.outbox(), &self.key, stem, WAIT).unwrap()
    }

    /// Writes raw bytes as `<stem>.ord` (atomically).
    pub fn drop_raw(&self, stem: &str, bytes: &[u8]) {
        hisbridge_core::folders::write_atomic(self.inbox(), &format!("{stem}.ord"), bytes).unwrap();
    }

    pub fn seal(&self, json: &str) -> String {
        self.key.seal(Direction::ToBridge, json.as_bytes())
    }

    /// Waits for a result file and decrypts it, final or not.
    pub fn wait_any(&self, stem: &str) -> ResultMessage {
        let start = std::time::Instant::now();
        loop {
            if let Some(r) = hisclient::read_result(self.outbox(), &self.key, stem).unwrap() {
                return r;
            }
            assert!(start.elapsed() < WAIT, "no result for {stem}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Files in the error folder (not the temp files of a write in progress).
    pub fn error_files(&self) -> Vec<String> {
        list(&self.cfg.folders.error).into_iter().filter(|n| !n.starts_with('.')).collect()
    }
    pub fn archived(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.cfg.folders.archive) {
            for d in rd.flatten() {
                out.extend(list(&d.path()));
            }
        }
        out.sort();
        out
    }

    pub fn journal(&self) -> hisbridge_core::journal::Journal {
        hisbridge_core::journal::Journal::open(&self.cfg.journal).unwrap()
    }

    /// Waits until `cond` holds (polling), panicking with `what` after the test timeout.
    pub fn eventually(&self, what: &str, cond: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn list(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

pub fn path_of(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
