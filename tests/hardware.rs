//! Tests against a real POS plugged into this PC. Off by default; run them with
//!
//!     HISBRIDGE_HW_PORT=usb:2fb8:0001 HISBRIDGE_HW_TRANSPORT=usb HISBRIDGE_HW_DEVICE_ID=N5-0001 \
//!         cargo test --features hardware-tests --test hardware -- --test-threads=1 --nocapture
//!
//! `HISBRIDGE_HW_PORT` is what `[pos] port` would say (`COM5`, `/dev/ttyACM0`, `usb:VID:PID`),
//! `HISBRIDGE_HW_TRANSPORT` is `serial` (default) or `usb`, `HISBRIDGE_HW_DEVICE_ID` the POS's
//! device ID. No money moves unless `HISBRIDGE_HW_PAY=1`: then a one-fen collection waits for
//! a person to scan a payment code, and is refunded. `HISBRIDGE_HW_REPLUG=1` asks the person to
//! unplug and replug the POS during a payment (TESTING.md).
#![cfg(feature = "hardware-tests")]

mod common;

use std::time::Duration;

use common::{config_text_pos, Harness};
use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::Key;
use hisbridge_core::his::Status;
use hisbridge_core::pos::Link;
use hisbridge_core::transport::{discover, PosTarget};
use hisbridge_core::{hisclient, keyfile};

struct Real {
    _dir: tempfile::TempDir,
    cfg: Config,
    key: Key,
    rt: tokio::runtime::Runtime,
    bridge: Bridge,
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("set {name} (see the top of tests/hardware.rs)"))
}

fn real() -> Real {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let dir = tempfile::tempdir().unwrap();
    let transport = std::env::var("HISBRIDGE_HW_TRANSPORT").unwrap_or_else(|_| "serial".into());
    let text = config_text_pos(dir.path(), &env("HISBRIDGE_HW_PORT"), &format!("transport = {transport:?}\n"), "")
        .replace(common::DEVICE, &env("HISBRIDGE_HW_DEVICE_ID"));
    let path = dir.path().join("hisbridge.toml");
    std::fs::write(&path, text).unwrap();
    let key = Key::generate("K1").unwrap();
    keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
    let cfg = Config::load(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bridge = rt.block_on(async { Bridge::start(&cfg, keyfile::load(&cfg.key_file).unwrap()) }).unwrap();
    let r = Real { _dir: dir, cfg, key, rt, bridge };
    wait_for("the POS to answer", || r.bridge.pos.status().link == Link::Ready);
    r
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Real {
    fn order(&self, no: &str, amount: &str, refund: Option<&str>) -> hisbridge_core::his::ResultMessage {
        let ins = Harness::order("W01", no, amount, refund);
        let stem = hisclient::new_stem(&ins);
        hisclient::send(&self.cfg.folders.inbox, &self.key, &ins, &stem).unwrap();
        hisclient::wait_final(&self.cfg.folders.outbox, &self.key, &stem, Duration::from_secs(300)).unwrap()
    }
}

#[test]
fn the_real_pos_is_listed_by_discovery() {
    let found = discover::find_all();
    eprintln!("{}", discover::render(&found));
    if let PosTarget::Usb(id) = PosTarget::parse(&env("HISBRIDGE_HW_PORT")).unwrap() {
        let listed = found.usb_devices.iter().any(|d| id.matches(d.vid, d.pid, d.serial.as_deref()))
            || found
                .serial_ports
                .iter()
                .any(|p| p.usb.as_ref().is_some_and(|u| id.matches(u.vid, u.pid, u.serial.as_deref())));
        assert!(listed, "{id} not found");
    }
}

#[test]
fn the_real_pos_answers_hello_and_info() {
    let r = real();
    let info = r.rt.block_on(r.bridge.pos_info()).unwrap();
    assert_eq!(info.device_id, env("HISBRIDGE_HW_DEVICE_ID"));
    eprintln!("POS {} {} clock {}", info.model, info.version, info.time);
}

#[test]
fn one_fen_collected_and_refunded_on_the_real_pos() {
    if std::env::var("HISBRIDGE_HW_PAY").as_deref() != Ok("1") {
        eprintln!("skipped: set HISBRIDGE_HW_PAY=1 to move one fen (a person scans a payment code)");
        return;
    }
    let r = real();
    let no = format!("HW{}", chrono::Local::now().format("%m%d%H%M%S"));
    eprintln!(">>> scan a payment code on the POS for 0.01 (order {no})");
    let paid = r.order(&no, "+0.01", None);
    assert_eq!(paid.status, Status::Success, "{paid:?}");
    assert!(paid.pay_order_no.is_some());
    let refunded = r.order(&no, "-0.01", Some("R1"));
    assert_eq!(refunded.status, Status::Refunded, "{refunded:?}");
}

#[test]
fn real_pos_unplugged_during_a_payment_is_resolved_by_query() {
    if std::env::var("HISBRIDGE_HW_REPLUG").as_deref() != Ok("1") {
        eprintln!("skipped: set HISBRIDGE_HW_REPLUG=1 (a person pays, unplugs and replugs the POS)");
        return;
    }
    let r = real();
    let no = format!("HWU{}", chrono::Local::now().format("%m%d%H%M%S"));
    eprintln!(">>> order {no} for 0.01: unplug the POS cable, pay on the POS, plug it back in");
    let paid = r.order(&no, "+0.01", None);
    assert!(matches!(paid.status, Status::Success | Status::Cancelled | Status::Failed), "{paid:?}");
    let j = hisbridge_core::journal::Journal::open(&r.cfg.journal).unwrap();
    let row = j.get_by_key(&no).unwrap().unwrap();
    eprintln!("states: {:?}", j.events(row.id).unwrap().into_iter().map(|e| e.1).collect::<Vec<_>>());
    if paid.status == Status::Success {
        assert_eq!(r.order(&no, "-0.01", Some("R1")).status, Status::Refunded);
    }
}
