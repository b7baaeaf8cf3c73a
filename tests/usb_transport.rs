//! The POS on USB, through the real libusb code (rusb, usbdevfs ioctls), without hardware:
//! umockdev emulates the device in user space (tests/usb/pos-gadget.py) and carries its bulk
//! pair to the POS simulator's pseudo-terminal, so the payment logic on the far end is the same
//! as in the serial tests.
//!
//! Each test runs itself again in a child process with libumockdev-preload loaded (the preload
//! must be there when the process starts). Where umockdev is not installed the tests say so
//! and pass, unless HISBRIDGE_REQUIRE_UMOCKDEV is set (CI sets it: scripts/test-all.sh installs
//! umockdev, its GObject bindings and python3-gi).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{Harness, DEVICE};
use hisbridge_core::his::Status;
use hisbridge_core::pos::Link;
use hisbridge_sim::{Mark, Outcome, SimConfig, SimHandle};

const PRELOAD: &str = "libumockdev-preload.so.0";
const IN_CHILD: &str = "HISBRIDGE_IN_UMOCKDEV";

fn umockdev_installed() -> Result<(), String> {
    let gadget = gadget_script();
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('UMockdev', '1.0'); from gi.repository import UMockdev"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        return Err("python3-gi with gir1.2-umockdev-1.0 is missing".into());
    }
    let preload_found = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/lib/aarch64-linux-gnu"]
        .iter()
        .any(|d| Path::new(d).join(PRELOAD).exists());
    if !preload_found {
        return Err(format!("{PRELOAD} (package umockdev) is missing"));
    }
    if !gadget.exists() {
        return Err(format!("{} is missing", gadget.display()));
    }
    Ok(())
}

fn gadget_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/usb/pos-gadget.py")
}

/// True in the child that runs under the preload; in the parent, runs the child and returns
/// false.
fn under_umockdev(test: &str) -> bool {
    if std::env::var_os(IN_CHILD).is_some() {
        return true;
    }
    if let Err(why) = umockdev_installed() {
        if std::env::var_os("HISBRIDGE_REQUIRE_UMOCKDEV").is_some() {
            panic!("umockdev is required here: {why} (apt-get install umockdev gir1.2-umockdev-1.0 python3-gi)");
        }
        eprintln!("skipped {test}: {why}");
        return false;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("LD_PRELOAD", PRELOAD)
        .env(IN_CHILD, "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed under umockdev ({status})");
    false
}

/// The emulated POS device; commands go to the gadget, answers come back line by line.
struct Gadget {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Gadget {
    /// Starts the gadget for the simulator's pty and points this process's preload at its testbed.
    fn start(sim: &SimHandle, mode: &str) -> Gadget {
        Gadget::start_with(sim, mode, &[])
    }

    fn start_with(sim: &SimHandle, mode: &str, args: &[&str]) -> Gadget {
        let mut child = Command::new("/usr/bin/python3")
            .arg(gadget_script())
            .args(["--pty", sim.port_path(), "--mode", mode, "--driver", "pos_vendor"])
            .args(args)
            // The gadget is the device, not a program under test: no preload for it.
            .env_remove("LD_PRELOAD")
            .env_remove("UMOCKDEV_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/usb/pos-gadget.py");
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(Duration::from_secs(30)).expect("gadget started");
        let dir = first.strip_prefix("UMOCKDEV_DIR=").unwrap_or_else(|| panic!("gadget said {first:?}"));
        // The preload reads UMOCKDEV_DIR on every call: from now on this process sees the testbed.
        std::env::set_var("UMOCKDEV_DIR", dir);
        Gadget { child: Some(child), stdin: Some(stdin), lines }
    }

    /// Sends a command and returns the lines answered before `ok <command>`.
    fn cmd(&mut self, cmd: &str) -> Vec<String> {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{cmd}").unwrap();
        stdin.flush().unwrap();
        let mut out = Vec::new();
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(30)).expect("gadget answers");
            if line == format!("ok {cmd}") {
                return out;
            }
            out.push(line);
        }
    }

    fn status(&mut self) -> String {
        self.cmd("status").join(" ")
    }
}

impl Drop for Gadget {
    fn drop(&mut self) {
        // The device stays until this process ends: the bridge's threads may still close their
        // descriptors (which talks to the gadget under the preload) after the test returns. The
        // gadget quits when its stdin closes at this process's exit.
        std::mem::forget(self.stdin.take());
        std::mem::forget(self.child.take());
    }
}

/// A bridge configured with `port` (and `[pos]` lines) whose POS is the emulated device.
/// The gadget comes first so that it outlives the harness.
fn harness(sim: SimConfig, mode: &str, port: &str, pos_lines: &str, extra: &str) -> (Gadget, Harness) {
    harness_with(sim, mode, &[], port, pos_lines, extra)
}

fn harness_with(
    sim: SimConfig,
    mode: &str,
    args: &[&str],
    port: &str,
    pos_lines: &str,
    extra: &str,
) -> (Gadget, Harness) {
    let mut gadget = None;
    let h = Harness::with_pos(sim, extra, |sim| {
        gadget = Some(Gadget::start_with(sim, mode, args));
        (port.to_string(), pos_lines.to_string())
    });
    (gadget.unwrap(), h)
}

fn ready(h: &Harness) -> bool {
    h.bridge.as_ref().unwrap().pos.status().link == Link::Ready
}

fn port_shown(h: &Harness) -> String {
    h.bridge.as_ref().unwrap().pos.status().port
}

#[test]
fn payment_over_raw_usb() {
    if !under_umockdev("payment_over_raw_usb") {
        return;
    }
    let (mut g, mut h) = harness(SimConfig::default(), "bulk", "usb:2fb8:0001", "transport = \"usb\"\n", "");
    h.eventually("POS ready over USB", || ready(&h));
    assert!(port_shown(&h).starts_with("USB 2fb8:0001 N5-0001"), "{}", port_shown(&h));
    // The kernel driver was detached and the vendor interface claimed.
    assert_eq!(g.status(), "claimed 0 driver - tty -");

    // The same payments as over serial: the result file, the ledger, both numbers.
    let r = h.pay("U0001", "+12.30");
    assert_eq!(r.status, Status::Success);
    assert_eq!((r.channel.as_deref(), r.device_id.as_str()), (Some("WECHAT"), DEVICE));
    let ledger = h.sim.ledger();
    let e = ledger.get("U0001.1").expect("charged on the POS");
    assert_eq!((e.status, e.amount_fen), ("PAID", 1230));
    assert_eq!(r.pay_order_no, e.pay_order_no);
    assert_eq!(h.pay("U0002", "+8.60").channel.as_deref(), Some("ALIPAY"));
    let stem = h.send(&Harness::order("W01", "U0001", "-5.00", Some("R1")));
    assert_eq!(h.wait(&stem).status, Status::Refunded);
    let r = h.pay("U0003", "+1.91");
    assert_eq!(r.status, Status::Failed, "declined by the wallet");
    assert_eq!(h.sim.ledger().charged().len(), 2);

    // Shut down: the interface is released and the kernel driver attached again.
    h.stop();
    let mut released = String::new();
    for _ in 0..100 {
        released = g.status();
        if released == "claimed - driver pos_vendor tty -" {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(released, "claimed - driver pos_vendor tty -");
}

#[test]
fn pos_unplugged_mid_transaction_is_found_again_and_queried_never_resent() {
    if !under_umockdev("pos_unplugged_mid_transaction_is_found_again_and_queried_never_resent") {
        return;
    }
    // The patient takes a few seconds to show the code; the cable comes out meanwhile, and the
    // POS never sends this payment's RESULT (only a QUERY can tell the outcome).
    let sim =
        SimConfig { scan_delay: Duration::from_secs(3), script: [Outcome::Silent].into(), ..SimConfig::default() };
    let (mut g, h) = harness(sim, "bulk", "usb:2fb8:0001:N5-0001", "transport = \"usb\"\n", "");
    h.eventually("POS ready over USB", || ready(&h));
    let stem = h.send(&Harness::order("W01", "U0100", "+6.00", None));
    h.eventually("SALE at the POS", || h.sim.ledger().get("U0100.1").is_some());
    g.cmd("unplug");
    h.eventually("link lost", || matches!(h.bridge.as_ref().unwrap().pos.status().link, Link::PortClosed { .. }));
    h.eventually("paid at the POS while unplugged", || h.sim.ledger().get("U0100.1").unwrap().status == "PAID");
    g.cmd("plug");
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success, "{r:?}");
    let ledger = h.sim.ledger();
    assert_eq!(ledger.sales_for("U0100").len(), 1, "exactly one SALE: never re-sent");
    assert_eq!(r.pay_order_no, ledger.get("U0100.1").unwrap().pay_order_no);
    let queried = h.sim.trace.lock().unwrap().iter().any(|(r, m, _)| r == "U0100.1" && *m == Mark::QueryReceived);
    assert!(queried, "the outcome was asked for");
    let j = h.journal();
    let states: Vec<String> =
        j.events(j.get_by_key("U0100").unwrap().unwrap().id).unwrap().into_iter().map(|e| e.1).collect();
    assert!(states.contains(&"UNKNOWN".to_string()), "went through the unknown-outcome state: {states:?}");
    // Found again on its new bus address; the link carries on.
    assert!(port_shown(&h).contains("address 3"), "{}", port_shown(&h));
    assert_eq!(h.pay("U0101", "+2.00").status, Status::Success);
}

#[test]
fn serial_port_named_by_usb_identity_survives_renumbering() {
    if !under_umockdev("serial_port_named_by_usb_identity_survives_renumbering") {
        return;
    }
    // A CDC-ACM POS: the config names it by USB identity, not by ttyACM0 / COM7.
    let (mut g, h) = harness(SimConfig::default(), "acm", "usb:2fb8:0001:N5-0001", "", "");
    h.eventually("POS ready on its serial port", || ready(&h));
    assert_eq!(port_shown(&h), "/dev/ttyACM0 (usb:2fb8:0001:N5-0001)");
    assert_eq!(h.pay("C0001", "+3.00").status, Status::Success);
    // Plugged out and in again, it comes back as ttyACM1 and is found there.
    g.cmd("unplug");
    h.eventually("link lost", || !ready(&h));
    g.cmd("plug");
    h.eventually("POS ready on the renumbered port", || ready(&h) && port_shown(&h).starts_with("/dev/ttyACM1"));
    assert_eq!(h.pay("C0002", "+3.00").status, Status::Success);
    assert_eq!(h.sim.ledger().charged().len(), 2);
}

#[test]
fn devices_lists_the_pos_and_what_to_configure() {
    if !under_umockdev("devices_lists_the_pos_and_what_to_configure") {
        return;
    }
    let sim = hisbridge_sim::spawn_on_pty(SimConfig::default()).unwrap();
    let mut g = Gadget::start(&sim, "acm");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["devices"]);
    assert!(text.contains("/dev/ttyACM0   USB 2fb8:0001  serial N5-0001"), "{text}");
    assert!(text.contains("port = \"usb:2fb8:0001:N5-0001\""), "{text}");
    assert!(text.contains("looks like a POS (cdc-data)"), "{text}");
    assert!(text.contains("CDC control interface"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run(&["devices", "--json"])).unwrap();
    let dev = &json["usb_devices"][0];
    assert_eq!((dev["vid"].as_u64(), dev["pid"].as_u64()), (Some(0x2fb8), Some(1)));
    assert_eq!(dev["serial"], "N5-0001");
    assert_eq!(dev["product"], "Smart POS (emulated)");
    assert_eq!(dev["looks_like_pos"], "cdc-data");
    assert_eq!(dev["interfaces"][1]["endpoints"][0]["transfer"], "bulk");
    assert_eq!(json["serial_ports"][0]["usb"]["serial"], "N5-0001");
    // Unplugged: nothing listed, and no panic on an empty bus.
    g.cmd("unplug");
    let text = run(&["devices"]);
    assert!(!text.contains("2fb8"), "{text}");
}

// -- Android Open Accessory ---------------------------------------------------------------------

const AOA: &str = "transport = \"aoa\"\n";

fn link_reason(h: &Harness) -> String {
    match h.bridge.as_ref().unwrap().pos.status().link {
        Link::PortClosed { reason } => reason,
        other => format!("{other:?}"),
    }
}

#[test]
fn payment_over_android_accessory() {
    if !under_umockdev("payment_over_android_accessory") {
        return;
    }
    let (mut g, mut h) = harness(SimConfig::default(), "aoa", "usb:2fb8:0001", AOA, "");
    h.eventually("POS ready as an Android accessory", || ready(&h));
    assert!(port_shown(&h).starts_with("Android accessory 18d1:2d01 N5-0001"), "{}", port_shown(&h));
    // Switched once, with the identification strings of pos-protocol.md §7.C, in index order.
    let status = g.cmd("status");
    assert!(status.contains(&"mode accessory app open switches 1".to_string()), "{status:?}");
    let strings: Vec<&String> = status.iter().filter(|l| l.starts_with("string ")).collect();
    assert_eq!(
        strings,
        [
            "string 0 HIS Bridge",
            "string 1 POS Link",
            "string 2 HIS Bridge cashier POS link",
            "string 3 1",
            "string 4 urn:hisbridge:pos-link:1",
            &format!("string 5 {DEVICE}"),
        ]
    );
    // The accessory interface was claimed, not ADB beside it.
    assert!(status[0].starts_with("claimed 0 "), "{status:?}");

    let r = h.pay("A0001", "+12.30");
    assert_eq!(r.status, Status::Success);
    assert_eq!((r.channel.as_deref(), r.device_id.as_str()), (Some("WECHAT"), DEVICE));
    assert_eq!(r.pay_order_no, h.sim.ledger().get("A0001.1").unwrap().pay_order_no);
    let stem = h.send(&Harness::order("W01", "A0001", "-5.00", Some("R1")));
    assert_eq!(h.wait(&stem).status, Status::Refunded);
    assert_eq!(h.pay("A0002", "+1.91").status, Status::Failed, "declined by the wallet");
    assert_eq!(h.sim.ledger().charged().len(), 1);
    h.stop();
}

#[test]
fn android_pos_found_by_asking_get_protocol() {
    if !under_umockdev("android_pos_found_by_asking_get_protocol") {
        return;
    }
    let (_g, h) = harness(SimConfig::default(), "aoa", "auto", AOA, "");
    h.eventually("POS ready as an Android accessory", || ready(&h));
    assert_eq!(h.pay("A0100", "+3.00").status, Status::Success);
}

/// The app closes (or the POS restarts) while the patient is paying: the accessory disappears,
/// the POS comes back in its normal mode, the bridge switches it again and settles the payment
/// by QUERY, never by a second SALE.
fn accessory_lost_mid_payment(how: &str) {
    let sim =
        SimConfig { scan_delay: Duration::from_secs(3), script: [Outcome::Silent].into(), ..SimConfig::default() };
    let (mut g, h) = harness(sim, "aoa", "usb:2fb8:0001:N5-0001", AOA, "");
    h.eventually("POS ready as an Android accessory", || ready(&h));
    let stem = h.send(&Harness::order("W01", "A0200", "+6.00", None));
    h.eventually("SALE at the POS", || h.sim.ledger().get("A0200.1").is_some());
    g.cmd(how);
    let r = h.wait(&stem);
    assert_eq!(r.status, Status::Success, "{r:?}");
    let ledger = h.sim.ledger();
    assert_eq!(ledger.sales_for("A0200").len(), 1, "exactly one SALE: never re-sent");
    assert_eq!(r.pay_order_no, ledger.get("A0200.1").unwrap().pay_order_no);
    let queried = h.sim.trace.lock().unwrap().iter().any(|(r, m, _)| r == "A0200.1" && *m == Mark::QueryReceived);
    assert!(queried, "the outcome was asked for");
    let j = h.journal();
    let states: Vec<String> =
        j.events(j.get_by_key("A0200").unwrap().unwrap().id).unwrap().into_iter().map(|e| e.1).collect();
    assert!(states.contains(&"UNKNOWN".to_string()), "went through the unknown-outcome state: {states:?}");
    let status = g.cmd("status");
    assert!(status.contains(&"mode accessory app open switches 2".to_string()), "switched again: {status:?}");
    assert_eq!(h.pay("A0201", "+2.00").status, Status::Success);
}

#[test]
fn accessory_closed_by_the_app_mid_payment_is_settled_by_query() {
    if !under_umockdev("accessory_closed_by_the_app_mid_payment_is_settled_by_query") {
        return;
    }
    accessory_lost_mid_payment("app-close");
}

#[test]
fn android_pos_rebooting_mid_payment_is_switched_again_and_queried() {
    if !under_umockdev("android_pos_rebooting_mid_payment_is_switched_again_and_queried") {
        return;
    }
    accessory_lost_mid_payment("reboot");
}

#[test]
fn accessory_filter_that_does_not_match_gets_no_link() {
    if !under_umockdev("accessory_filter_that_does_not_match_gets_no_link") {
        return;
    }
    // An app whose accessory_filter.xml says another model never opens the accessory: the
    // bridge switches the device and waits for HELLO's answer, sending no money command.
    let (mut g, h) = harness_with(SimConfig::default(), "aoa", &["--filter-model", "Other"], "usb:2fb8:0001", AOA, "");
    h.eventually("link open on the accessory", || h.bridge.as_ref().unwrap().pos.status().link == Link::Handshaking);
    std::thread::sleep(Duration::from_secs(3));
    assert!(g.cmd("status").contains(&"mode accessory app - switches 1".to_string()));
    assert_eq!(h.bridge.as_ref().unwrap().pos.status().link, Link::Handshaking);
    assert!(h.sim.ledger().charged().is_empty());
}

#[test]
fn device_without_accessory_mode_is_refused_with_a_reason() {
    if !under_umockdev("device_without_accessory_mode_is_refused_with_a_reason") {
        return;
    }
    let (mut g, h) = harness_with(SimConfig::default(), "aoa", &["--aoa-version", "0"], "usb:2fb8:0001", AOA, "");
    h.eventually("refused", || link_reason(&h).contains("answers GET_PROTOCOL with 0"));
    assert!(link_reason(&h).contains("transport = \"serial\""), "{}", link_reason(&h));
    assert!(g.cmd("status").contains(&"mode normal app - switches 0".to_string()));
}

#[test]
fn devices_shows_android_devices_that_speak_aoa() {
    if !under_umockdev("devices_shows_android_devices_that_speak_aoa") {
        return;
    }
    let sim = hisbridge_sim::spawn_on_pty(SimConfig::default()).unwrap();
    let _g = Gadget::start(&sim, "aoa");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run(&["devices"]);
    assert!(text.contains("Android, accessory mode (AOA 2)"), "{text}");
    assert!(text.contains("config: port = \"usb:2fb8:0001:N5-0001\" with transport = \"aoa\""), "{text}");
    let json: serde_json::Value = serde_json::from_str(&run(&["devices", "--json"])).unwrap();
    assert_eq!(json["usb_devices"][0]["aoa"], 2);
    assert_eq!(json["usb_devices"][0]["transport"], "aoa");
}

#[test]
fn pos_check_passes_over_the_android_accessory() {
    if !under_umockdev("pos_check_passes_over_the_android_accessory") {
        return;
    }
    let sim = hisbridge_sim::spawn_on_pty(SimConfig::default()).unwrap();
    let mut g = Gadget::start(&sim, "aoa");
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["pos-check", "--json", "--transport", "aoa", "--port", "usb:2fb8:0001", "--device-id", "POS-0001"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(out.status.success(), "{v:#}");
    assert_eq!(v["failed"], 0, "{v:#}");
    assert!(g.cmd("status").contains(&"mode accessory app open switches 1".to_string()));
}
