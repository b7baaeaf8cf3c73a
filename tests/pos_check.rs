//! `hisbridge pos-check`, the conformance kit, against the POS simulator: every clause passes
//! against a conforming POS, and a deliberately broken one fails the right clause, with the
//! bytes of the failure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// `hisbridge sim-pos` on a pseudo-terminal behind a symlink; killed when dropped.
struct SimPos {
    child: Child,
    link: std::path::PathBuf,
    pid: u32,
    _dir: tempfile::TempDir,
}

impl SimPos {
    fn start(args: &[&str]) -> SimPos {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("pos");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
            .arg("sim-pos")
            .arg("--link")
            .arg(&link)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut pid = 0;
        for _ in 0..3 {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            if let Some(rest) = line.strip_prefix("pid ") {
                pid = rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        assert!(pid > 0, "sim-pos printed its pid");
        // Keep reading its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in out.lines() {});
        SimPos { child, link, pid, _dir: dir }
    }
}

impl Drop for SimPos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether every clause passed (exit 0; a failed clause exits 4, docs/pos-protocol.md §9) and
/// the JSON report.
fn pos_check(sim: &SimPos, extra: &[&str]) -> (bool, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["pos-check", "--json", "--port"])
        .arg(&sim.link)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 4)), "exit {code:?}: {}", String::from_utf8_lossy(&out.stderr));
    (code == Some(0), v)
}

fn verdicts(v: &Value) -> Vec<(String, String)> {
    v["clauses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["clause"].as_str().unwrap().to_string(), c["verdict"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn every_clause_passes_against_the_simulator_including_its_restart() {
    let sim = SimPos::start(&[]);
    let restart = format!("kill -USR1 {}", sim.pid);
    let (ok, v) = pos_check(&sim, &["--device-id", "POS-0001", "--restart", &restart]);
    assert!(ok, "{v:#}");
    assert_eq!(v["failed"], 0, "{v:#}");
    assert_eq!(v["skipped"], 0, "{v:#}");
    let clauses = verdicts(&v);
    assert!(clauses.len() >= 20, "{clauses:?}");
    assert!(clauses.iter().all(|(_, verdict)| verdict == "pass"), "{clauses:?}");
}

#[test]
fn the_wrong_device_id_fails_hello() {
    let sim = SimPos::start(&[]);
    let (ok, v) = pos_check(&sim, &["--device-id", "POS-0002"]);
    assert!(!ok);
    let hello = v["clauses"].as_array().unwrap().iter().find(|c| c["clause"] == "§5.1 HELLO").unwrap();
    assert_eq!(hello["verdict"], "fail");
    assert!(hello["detail"].as_str().unwrap().contains("POS-0002"), "{hello:#}");
}

#[test]
fn a_result_with_another_amount_fails_the_sale_clause_with_its_bytes() {
    let sim = SimPos::start(&["--lie", "wrong-amount"]);
    let (ok, v) = pos_check(&sim, &[]);
    assert!(!ok, "a broken POS does not pass");
    let clauses = verdicts(&v);
    let first_fail = clauses.iter().find(|(_, verdict)| verdict == "fail").unwrap();
    assert_eq!(first_fail.0, "§4.2 SALE", "{clauses:?}");
    let sale = v["clauses"].as_array().unwrap().iter().find(|c| c["clause"] == "§4.2 SALE").unwrap();
    assert!(sale["detail"].as_str().unwrap().contains("§4.5.1"), "{sale:#}");
    let bytes: Vec<&str> = sale["bytes"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
    assert!(bytes.iter().any(|b| b.contains("-> 02") && b.contains("SALE|ref=")), "{bytes:?}");
    assert!(bytes.iter().any(|b| b.contains("<- ") && b.contains("RESULT|ref=")), "{bytes:?}");
    // The clauses that build on the failed collection are skipped, not failed.
    let skipped: Vec<&String> = clauses.iter().filter(|(_, v)| v == "skip").map(|(c, _)| c).collect();
    assert!(skipped.iter().any(|c| c.as_str() == "§4.2 REFUND §5.5"), "{clauses:?}");
    // Framing and link clauses still pass: the fault is in the answer, not on the line.
    assert!(clauses.iter().take(9).all(|(_, verdict)| verdict == "pass"), "{clauses:?}");
}

#[test]
fn a_pos_that_never_sends_result_fails_the_sale_clause() {
    let sim = SimPos::start(&["--lie", "swallow-results"]);
    let (ok, v) = pos_check(&sim, &["--pay-secs", "3"]);
    assert!(!ok);
    let sale = v["clauses"].as_array().unwrap().iter().find(|c| c["clause"] == "§4.2 SALE").unwrap();
    assert_eq!(sale["verdict"], "fail", "{sale:#}");
    assert!(sale["detail"].as_str().unwrap().contains("no answer"), "{sale:#}");
}
