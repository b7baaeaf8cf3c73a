//! The localhost socket channel through a real loopback TCP connection, a real bridge and the
//! POS simulator on a pty.

mod common;

use std::time::Duration;

use common::Harness;
use hisbridge_core::envelope::Key;
use hisbridge_core::his::{Instruction, InstructionKind, Status};
use hisbridge_core::hisclient::SocketClient;
use hisbridge_sim::SimConfig;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn socket_harness(sim: SimConfig) -> (Harness, u16) {
    let port = free_port();
    (Harness::with(sim, &format!("[socket]\nport = {port}\n")), port)
}

fn client(h: &Harness, port: u16) -> SocketClient {
    SocketClient::connect(port, h.key.clone()).unwrap()
}

fn ask(kind: InstructionKind, order_no: &str) -> Instruction {
    Instruction { kind, amount: None, ..Harness::order("W01", order_no, "+1.00", None) }
}

const T: Duration = Duration::from_secs(120);

#[test]
fn pay_refund_query_and_cancel_over_the_socket() {
    let (h, port) = socket_harness(SimConfig::default());
    let mut c = client(&h, port);
    let r = c.call(&Harness::order("W01", "K0001", "+8.00", None), T).unwrap();
    assert_eq!((r.status, r.channel.as_deref()), (Status::Success, Some("WECHAT")));
    assert_eq!(r.pay_order_no, h.sim.ledger().get("K0001.1").unwrap().pay_order_no);
    let r = c.call(&Harness::order("W01", "K0001", "-3.00", Some("R1")), T).unwrap();
    assert_eq!(r.status, Status::Refunded);
    let q = c.call(&ask(InstructionKind::Query, "K0001"), T).unwrap();
    assert_eq!(q.status, Status::Success);
    // A collection the patient never scans (.94), cancelled from a second connection.
    c.send(&Harness::order("W01", "K0002", "+2.94", None)).unwrap();
    h.eventually("waiting for the scan", || h.sim.ledger().get("K0002.1").is_some());
    let mut other = client(&h, port);
    let r = other.call(&ask(InstructionKind::Cancel, "K0002"), T).unwrap();
    assert_eq!(r.status, Status::Cancelled);
    // The first connection gets the final result of its order too.
    let mut last = None;
    while let Some(r) = c.next(Duration::from_secs(5)).unwrap() {
        if r.order_no.as_deref() == Some("K0002") && r.status.is_final() {
            last = Some(r);
            break;
        }
    }
    assert_eq!(last.unwrap().status, Status::Cancelled);
    // Same rules as the folder: the same instruction again is not charged again.
    let again = c.call(&Harness::order("W01", "K0001", "+8.00", None), T).unwrap();
    assert_eq!(again.pay_order_no, r_pay(&h, "K0001.1"));
    assert_eq!(h.sim.ledger().sales_for("K0001").len(), 1);
}

fn r_pay(h: &Harness, r: &str) -> Option<String> {
    h.sim.ledger().get(r).unwrap().pay_order_no.clone()
}

#[test]
fn progress_then_final_on_one_connection() {
    let (h, port) = socket_harness(SimConfig { paying_delay: Duration::from_millis(500), ..SimConfig::default() });
    let mut c = client(&h, port);
    c.send(&Harness::order("W01", "K0003", "+1.93", None)).unwrap();
    let mut seen = Vec::new();
    while let Some(r) = c.next(T).unwrap() {
        seen.push(r.status);
        if r.status.is_final() {
            break;
        }
    }
    assert_eq!(seen.first(), Some(&Status::Processing));
    assert_eq!(seen.last(), Some(&Status::Success));
}

#[test]
fn several_clients_at_once() {
    let (h, port) = socket_harness(SimConfig { scan_delay: Duration::from_millis(20), ..SimConfig::default() });
    let key = h.key.clone();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let key = key.clone();
            std::thread::spawn(move || {
                let mut c = SocketClient::connect(port, key).unwrap();
                (0..3)
                    .map(|i| c.call(&Harness::order("W02", &format!("M{t}{i}"), "+1.00", None), T).unwrap().status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().iter().all(|s| *s == Status::Success));
    }
    assert_eq!(h.sim.ledger().charged().len(), 12);
}

#[test]
fn bad_frames_get_an_error_and_the_connection_keeps_working() {
    let (h, port) = socket_harness(SimConfig::default());
    let mut c = client(&h, port);
    c.send_line(b"hello bridge").unwrap();
    let r = c.next(T).unwrap().unwrap();
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Rejected, Some("E_ENVELOPE")));
    c.send_line(&vec![b'A'; 70_000]).unwrap();
    let r = c.next(T).unwrap().unwrap();
    assert_eq!(r.error_code.as_deref(), Some("E_ENVELOPE"));
    assert!(r.error_message_en.unwrap().contains("larger"));
    let wrong = Key::generate("K1").unwrap();
    let mut w = SocketClient::connect(port, wrong).unwrap();
    w.send(&Harness::order("W01", "K0004", "+1.00", None)).unwrap();
    drop(w);
    // A client that sends junk and hangs up harms nobody.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(&[0, 1, 2, 0xff, b'\n', 7]).unwrap();
    }
    let r = c.call(&Harness::order("W01", "K0005", "+1.00", None), T).unwrap();
    assert_eq!(r.status, Status::Success);
    assert!(h.sim.ledger().get("K0004.1").is_none());
}

#[test]
fn listener_refuses_non_loopback_addresses() {
    for a in ["0.0.0.0", "192.168.1.10", "10.0.0.1", "::"] {
        let err = hisbridge_core::socket::bind(a.parse().unwrap(), 0).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{a}: {err}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.enter();
    assert!(hisbridge_core::socket::bind("127.0.0.1".parse().unwrap(), 0).is_ok());
    assert!(hisbridge_core::socket::bind("::1".parse().unwrap(), 0).is_ok() || !ipv6_available());
    // The bridge itself refuses to start with such an address, naming the field.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hisbridge.toml");
    std::fs::write(
        &cfg,
        common::config_text(dir.path(), "/dev/null", "[socket]\nport = 9817\naddress = \"0.0.0.0\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("socket.address") && err.contains("loopback"), "{err}");
}

fn ipv6_available() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// The C ABI checks the caller's buffer before anything leaves: a NULL, empty or small buffer is
/// refused and nothing reaches the bridge; a request that is not JSON gets `-4` with a code.
#[test]
fn the_c_abi_refuses_a_small_buffer_before_sending() {
    use hisbridge_client::ffi::{self, HB_ERR_BUFFER, HB_ERR_REQUEST, HB_OK};
    use std::ffi::CString;
    let (h, port) = socket_harness(SimConfig::default());
    let key = CString::new(h.dir.path().join("hisbridge.key").to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings and buffers of the sizes given.
    unsafe {
        assert_eq!(ffi::hisbridge_init(key.as_ptr(), port as i32), HB_OK);
        let req = CString::new(r#"{"type":"order","terminal_id":"W01","order_no":"FFI1","amount":"+1.00"}"#).unwrap();
        let mut small = [0 as std::ffi::c_char; 16];
        assert_eq!(ffi::hisbridge_trans(req.as_ptr(), std::ptr::null_mut(), 4096, 5000), HB_ERR_BUFFER);
        assert_eq!(ffi::hisbridge_trans(req.as_ptr(), small.as_mut_ptr(), 0, 5000), HB_ERR_BUFFER);
        assert_eq!(ffi::hisbridge_trans(req.as_ptr(), small.as_mut_ptr(), 16, 5000), HB_ERR_BUFFER);
        std::thread::sleep(Duration::from_millis(300));
        assert!(h.journal().get_by_key("FFI1").unwrap().is_none(), "nothing was sent");
        assert!(h.sim.ledger().get("FFI1.1").is_none(), "nothing was charged");
        let mut rsp = vec![0 as std::ffi::c_char; 4096];
        let bad = CString::new("not json").unwrap();
        assert_eq!(ffi::hisbridge_trans(bad.as_ptr(), rsp.as_mut_ptr(), 4096, 5000), HB_ERR_REQUEST);
        let text = std::ffi::CStr::from_ptr(rsp.as_ptr()).to_string_lossy().into_owned();
        assert!(text.contains(r#""error_code":"E_FORMAT""#), "{text}");
        assert_eq!(ffi::hisbridge_trans(req.as_ptr(), rsp.as_mut_ptr(), 4096, 60000), HB_OK);
        let text = std::ffi::CStr::from_ptr(rsp.as_ptr()).to_string_lossy().into_owned();
        assert!(text.contains("SUCCESS"), "{text}");
    }
}

/// §7: on one connection, each line says which instruction it answers (its `type` and message
/// id), so the cancel's own answer is told from the order's result.
#[test]
fn each_socket_line_names_the_instruction_it_answers() {
    use hisbridge_core::envelope::Direction;
    use hisbridge_core::his::ResultMessage;
    use std::io::{BufRead, BufReader, Write};
    let (h, port) = socket_harness(SimConfig::default());
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut send = |ins: &Instruction, nonce: [u8; 12]| {
        let ins = Instruction { sent_at: Some(chrono::Local::now().fixed_offset()), ..ins.clone() };
        let env = h.key.seal_with_nonce(Direction::ToBridge, ins.to_json().as_bytes(), nonce);
        writeln!(w, "{env}").unwrap();
        hex::encode(nonce)
    };
    let mut next = || -> ResultMessage {
        let line = lines.next().unwrap().unwrap();
        ResultMessage::parse(&h.key.open(Direction::ToHis, line.as_bytes()).unwrap()).unwrap()
    };
    let order_id = send(&Harness::order("W01", "K0100", "+2.94", None), [1; 12]);
    let first = next();
    assert_eq!((first.request.as_deref(), first.in_reply_to.as_deref()), (Some("order"), Some(order_id.as_str())));
    assert_eq!(first.status, Status::Processing);
    let cancel_id = send(&ask(InstructionKind::Cancel, "K0100"), [2; 12]);
    let mut by_request = std::collections::BTreeMap::new();
    while by_request.len() < 2 {
        let r = next();
        if r.status.is_final() {
            by_request.insert(r.request.clone().unwrap(), r);
        }
    }
    assert_eq!(by_request["order"].in_reply_to.as_deref(), Some(order_id.as_str()));
    assert_eq!(by_request["cancel"].in_reply_to.as_deref(), Some(cancel_id.as_str()));
    assert!(by_request.values().all(|r| r.status == Status::Cancelled));
    // A refusal says what it refuses too.
    let bad =
        send(&Instruction { terminal_id: "W99".into(), ..Harness::order("W01", "K0101", "+1.00", None) }, [3; 12]);
    let r = next();
    assert_eq!(
        (r.status, r.in_reply_to.as_deref(), r.request.as_deref()),
        (Status::Rejected, Some(bad.as_str()), Some("order"))
    );
    assert_eq!(r.terminal_id.as_deref(), Some("W99"));
}
