//! Keys never leak: not into logs (at the most verbose level), result files, error files or
//! the journal; a key file readable by others is refused with a clear message.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use hisbridge_core::envelope::{Direction, Key};
use hisbridge_core::his::{Instruction, InstructionKind};
use hisbridge_core::{amount::Amount, hisclient, keyfile};

fn config(dir: &std::path::Path, port: &str) -> std::path::PathBuf {
    let p = dir.join("hisbridge.toml");
    std::fs::write(
        &p,
        format!(
            "data_dir = {:?}\nterminals = [\"W01\"]\n[pos]\nport = {:?}\ndevice_id = \"POS-0001\"\n[intake]\nstable_ms = 50\ngive_up_secs = 1\n",
            dir.display().to_string(),
            port
        ),
    )
    .unwrap();
    p
}

fn all_text_under(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_text_under(&p));
        } else if p.file_name().unwrap() != "hisbridge.key" {
            out.extend(std::fs::read(&p).unwrap_or_default());
        }
    }
    out
}

#[test]
fn no_key_material_in_logs_results_errors_or_journal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = hisbridge_sim::spawn_on_pty(Default::default()).unwrap();
    let key = Key::generate("K1").unwrap();
    keyfile::write_new(&dir.path().join("hisbridge.key"), &key).unwrap();
    let cfg = config(dir.path(), sim.port_path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["run", "--config"])
        .arg(&cfg)
        .env("HISBRIDGE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the logs as they come (a full pipe would stall the bridge).
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut v);
        v
    });
    let inbox = dir.path().join("inbox");
    while !inbox.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ins = Instruction {
        kind: InstructionKind::Order,
        terminal_id: "W01".into(),
        order_no: "SEC1".into(),
        refund_no: None,
        amount: Some(Amount::parse("+1.00").unwrap()),
        operator: None,
        description: None,
        sent_at: None,
    };
    hisclient::send(&inbox, &key, &ins, "SEC1").unwrap();
    // A file sealed with another key, and junk: error paths log too.
    let other = Key::generate("K1").unwrap();
    std::fs::write(inbox.join("SEC2.ord"), other.seal(Direction::ToBridge, ins.to_json().as_bytes())).unwrap();
    std::fs::write(inbox.join("SEC3.ord"), b"junk").unwrap();
    let outbox = dir.path().join("outbox");
    hisclient::wait_final(&outbox, &key, "SEC1", Duration::from_secs(30)).unwrap();
    for s in ["SEC2", "SEC3"] {
        hisclient::wait_final(&outbox, &key, s, Duration::from_secs(30)).unwrap();
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = logs.join().unwrap();
    assert!(String::from_utf8_lossy(&stderr).contains("TRACE"), "trace logs were produced");
    let mut everything = stderr;
    everything.extend(out.stdout);
    everything.extend(all_text_under(dir.path()));
    let text = String::from_utf8_lossy(&everything);
    let b64 = base64::engine::general_purpose::STANDARD;
    for secret in [b64.encode(key.expose_bytes()), hex::encode(key.expose_bytes()), b64.encode(other.expose_bytes())] {
        assert!(!text.contains(&secret), "key material leaked");
    }
    // Nor a recognisable prefix of it (a truncated dump).
    assert!(!text.contains(&b64.encode(key.expose_bytes())[..16]));
}

#[test]
fn key_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = Key::generate("K1").unwrap();
    let kp = dir.path().join("hisbridge.key");
    keyfile::write_new(&kp, &key).unwrap();
    std::fs::set_permissions(&kp, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = config(dir.path(), "/dev/null-port");
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(["run", "--config"]).arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("readable by other users") && err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&base64::engine::general_purpose::STANDARD.encode(key.expose_bytes())));
}
