//! The real bridge against pos-sdk/java, the POS side an Android POS app embeds: the SDK's demo
//! app (with its simulated acquirer) on one end of a pseudo-terminal pair, the bridge on the
//! other. Payments, refunds, cancels and queries; the app killed between charging and answering;
//! `hisbridge pos-check` with a restart of the app.
//!
//! Needs a JDK (javac, java) and python3; where they are missing the tests say so and pass,
//! unless HISBRIDGE_REQUIRE_JAVA is set (CI sets it: scripts/test-all.sh installs the JDK).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use common::Harness;
use hisbridge_core::his::{InstructionKind, Status};
use hisbridge_core::pos::Link;
use hisbridge_sim::SimConfig;

fn top() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The SDK and its demo, built once per test binary; None where there is no JDK.
fn sdk() -> Option<&'static PathBuf> {
    static BUILT: OnceLock<Option<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let have = Command::new("javac").arg("-version").output().map(|o| o.status.success()).unwrap_or(false);
            if !have {
                if std::env::var_os("HISBRIDGE_REQUIRE_JAVA").is_some() {
                    panic!("a JDK is required here (apt-get install default-jdk-headless)");
                }
                eprintln!("skipped: no JDK (javac)");
                return None;
            }
            let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pos-sdk");
            let st = Command::new(top().join("pos-sdk/java/build.sh")).arg(&out).status().unwrap();
            assert!(st.success(), "pos-sdk/java/build.sh failed");
            Some(out)
        })
        .as_ref()
}

/// Two pseudo-terminals joined like a null-modem cable (scripts/pty-pair.py).
struct Cable {
    child: Child,
    bridge_end: PathBuf,
    pos_end: PathBuf,
}

impl Cable {
    fn new(dir: &Path) -> Cable {
        let (bridge_end, pos_end) = (dir.join("bridge-end"), dir.join("pos-end"));
        let mut child = Command::new("python3")
            .arg(top().join("scripts/pty-pair.py"))
            .args([&bridge_end, &pos_end])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Cable { child, bridge_end, pos_end }
    }
}

impl Drop for Cable {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK's demo POS app; its store and its acquirer's wallet are files that outlive it.
struct App {
    child: Option<Child>,
    args: Vec<PathBuf>,
    log: PathBuf,
}

impl App {
    fn start(cable: &Cable, dir: &Path) -> App {
        let args = vec![cable.pos_end.clone(), dir.join("pos-store.txt"), dir.join("wallet.txt")];
        let mut a = App { child: None, args, log: dir.join("app.log") };
        a.launch();
        a
    }

    fn launch(&mut self) {
        let sdk = sdk().unwrap();
        let cp = format!("{}:{}", sdk.join("classes").display(), sdk.join("demo").display());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new("java")
            .args(["-cp", &cp, "cn.hisbridge.pos.demo.DemoPosApp", "--port"])
            .arg(&self.args[0])
            .arg("--store")
            .arg(&self.args[1])
            .arg("--wallet")
            .arg(&self.args[2])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits for the app to end by itself (the crash rule halts it).
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.child.as_mut().unwrap().wait().unwrap()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the acquirer's wallet recorded for a reference (the last line wins).
    fn wallet(&self, reference: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.args[2]).unwrap_or_default();
        text.lines().filter(|l| l.contains(&format!("ref={reference}|"))).map(str::to_string).collect()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One at a time: each test runs a JVM and a bridge on real ptys.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn bridge_with_sdk(dir: &Path) -> (Cable, App, Harness) {
    let cable = Cable::new(dir);
    let app = App::start(&cable, dir);
    let port = cable.bridge_end.to_string_lossy().into_owned();
    let h = Harness::with_pos(SimConfig::default(), "", |_| (port, String::new()));
    h.eventually("the SDK answered HELLO", || h.bridge.as_ref().unwrap().pos.status().link == Link::Ready);
    (cable, app, h)
}

#[test]
fn the_bridge_pays_refunds_cancels_and_queries_through_the_sdk() {
    let _one = serial();
    if sdk().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_cable, app, h) = bridge_with_sdk(dir.path());
    let st = h.bridge.as_ref().unwrap().pos.status();
    assert_eq!((st.device_id.as_deref(), st.model.as_deref()), (Some("POS-0001"), Some("HISBRIDGE-SDK-DEMO")));

    let r = h.pay("J0001", "+12.30");
    assert_eq!((r.status, r.channel.as_deref()), (Status::Success, Some("WECHAT")));
    let book = app.wallet("J0001.1");
    assert!(book.last().unwrap().contains("status=PAID"), "{book:?}");
    assert!(book.last().unwrap().contains(&format!("pay_no={}", r.pay_order_no.as_deref().unwrap())));
    assert_eq!(h.pay("J0002", "+8.60").channel.as_deref(), Some("ALIPAY"));
    let declined = h.pay("J0003", "+1.92");
    assert_eq!((declined.status, declined.error_code.is_some()), (Status::Failed, true), "{declined:?}");

    // A partial refund, confirmed by QUERY before the bridge reports it.
    let stem = h.send(&Harness::order("W01", "J0001", "-5.00", Some("R1")));
    let rf = h.wait(&stem);
    assert_eq!(rf.status, Status::Refunded, "{rf:?}");
    assert!(app.wallet("J0001@R1.1").last().unwrap().contains("status=REFUNDED"));

    // The HIS cancels while the patient has not shown a code.
    let held = h.send(&Harness::order("W01", "J0004", "+3.94", None));
    h.eventually("waiting for the code", || {
        std::fs::read_to_string(dir.path().join("app.log")).unwrap_or_default().contains("J0004.1 SALE 394 IN_PROGRESS")
    });
    let cancel = h.send(&Harness::ask(InstructionKind::Cancel, "J0004"));
    assert_eq!(h.wait(&held).status, Status::Cancelled);
    assert_eq!(h.wait(&cancel).status, Status::Cancelled);
    assert!(!app.wallet("J0004.1").iter().any(|l| l.contains("status=PAID")), "nothing charged");

    // The HIS asks about a finished order: the same answer.
    let q = h.send(&Harness::ask(InstructionKind::Query, "J0001"));
    let q = h.wait(&q);
    assert_eq!((q.status, q.pay_order_no.clone()), (Status::Success, r.pay_order_no.clone()));
    // The POS was asked for the day's totals? Not needed; but the journal agrees with the wallet.
    let j = h.journal();
    assert_eq!(j.get_by_key("J0001").unwrap().unwrap().state.as_str(), "SUCCESS");
}

#[test]
fn the_app_killed_between_charging_and_answering_is_settled_by_query_never_charged_twice() {
    let _one = serial();
    if sdk().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_cable, mut app, h) = bridge_with_sdk(dir.path());
    // Rule 98: the demo acquirer takes the money, then the app dies before it records or
    // answers anything (Runtime.halt).
    let stem = h.send(&Harness::order("W01", "J0100", "+4.98", None));
    let status = app.wait_exit();
    assert_eq!(status.code(), Some(137), "the app halted");
    assert!(app.wallet("J0100.1").last().unwrap().contains("status=PAID"), "the wallet charged it");
    let r = h.wait_any(&stem);
    assert_ne!(r.status, Status::Success, "not known yet: {r:?}");
    // Silence: the heartbeat gives the link up, and the order's outcome is unknown.
    h.eventually("link lost", || h.bridge.as_ref().unwrap().pos.status().link != Link::Ready);
    // The app starts again: it finds J0100.1 running in its store, asks the wallet, records PAID.
    app.launch();
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success, "{r:?}");
    let paid: Vec<String> = app.wallet("J0100.1").into_iter().filter(|l| l.contains("status=PAID")).collect();
    assert_eq!(paid.len(), 1, "charged exactly once: {paid:?}");
    assert!(paid[0].contains(&format!("pay_no={}", r.pay_order_no.as_deref().unwrap())));
    let j = h.journal();
    let row = j.get_by_key("J0100").unwrap().unwrap();
    let states: Vec<String> = j.events(row.id).unwrap().into_iter().map(|e| e.1).collect();
    assert!(states.contains(&"UNKNOWN".to_string()), "went through the unknown state: {states:?}");
    assert_eq!(h.pay("J0101", "+1.00").status, Status::Success, "the window goes on");
}

#[test]
fn pos_check_passes_against_the_sdk_including_an_app_restart() {
    let _one = serial();
    if sdk().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cable = Cable::new(dir.path());
    let app = App::start(&cable, dir.path());
    // The restart command kills the app (as Android may) and starts it again on the same store.
    let sdk = sdk().unwrap();
    let cp = format!("{}:{}", sdk.join("classes").display(), sdk.join("demo").display());
    let pid_file = dir.path().join("app.pid");
    std::fs::write(&pid_file, app.child.as_ref().unwrap().id().to_string()).unwrap();
    let restart = format!(
        "kill -9 $(cat {pid}); java -cp {cp} cn.hisbridge.pos.demo.DemoPosApp --port {port} --store {store} \
         --wallet {wallet} >> {log} 2>&1 & echo $! > {pid}",
        pid = pid_file.display(),
        port = app.args[0].display(),
        store = app.args[1].display(),
        wallet = app.args[2].display(),
        log = app.log.display(),
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["pos-check", "--json", "--device-id", "POS-0001", "--port"])
        .arg(&cable.bridge_end)
        .args(["--restart", &restart])
        .output()
        .unwrap();
    let _ = Command::new("sh").arg("-c").arg(format!("kill -9 $(cat {})", pid_file.display())).status();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(out.status.success(), "{v:#}");
    assert_eq!((v["failed"].as_u64(), v["skipped"].as_u64()), (Some(0), Some(0)), "{v:#}");
    drop(app);
}
