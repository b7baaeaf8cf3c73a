//! The `hisbridge` command line as HIS programmers use it for joint testing.

mod common;

use std::process::Command;

use common::Harness;
use hisbridge_core::envelope::{Direction, Key};

fn hisbridge(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(args).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn his_check_explains_what_is_wrong() {
    let h = Harness::new();
    let cfg = h.dir.path().join("hisbridge.toml");
    let d = tempfile::tempdir().unwrap();
    let stamp = chrono::Local::now().to_rfc3339();
    let write = |name: &str, text: String| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "G1.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"W01","order_no":"G1","amount":"+1.00","sent_at":"{stamp}"}}"#
        )),
    );
    let amount = write(
        "G2.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"W01","order_no":"G2","amount":"12.5","sent_at":"{stamp}"}}"#
        )),
    );
    let terminal = write(
        "G3.ord",
        h.seal(&format!(
            r#"{{"v":1,"type":"order","terminal_id":"X9","order_no":"G3","amount":"+1.00","sent_at":"{stamp}"}}"#
        )),
    );
    let other = Key::generate("K7").unwrap();
    let keyid = write("G4.ord", other.seal(Direction::ToBridge, b"{}"));
    let (ok, out) = hisbridge(&["his", "check", "--config", cfg.to_str().unwrap(), &good]);
    assert!(ok, "{out}");
    assert!(out.contains("OK") && out.contains("collect order G1 amount +1.00"), "{out}");
    let (ok, out) = hisbridge(&["his", "check", "--config", cfg.to_str().unwrap(), &amount, &terminal, &keyid]);
    assert!(!ok);
    assert!(out.contains("E_AMOUNT") && out.contains("explicit sign"), "{out}");
    assert!(out.contains("E_TERMINAL") && out.contains("\"X9\""), "{out}");
    assert!(out.contains("E_KEY_ID") && out.contains("\"K7\""), "{out}");
    assert!(out.contains("3 of 3"), "{out}");
}

#[test]
fn his_send_over_either_channel() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let h = Harness::with(Default::default(), &format!("[socket]\nport = {port}\n"));
    let cfg = h.dir.path().join("hisbridge.toml");
    let cfg = cfg.to_str().unwrap();
    let (ok, out) =
        hisbridge(&["his", "send", "--config", cfg, "--terminal", "W01", "--order", "C1", "--amount", "+2.00"]);
    assert!(ok && out.contains("\"status\": \"SUCCESS\""), "{out}");
    let (ok, out) = hisbridge(&[
        "his",
        "send",
        "--config",
        cfg,
        "--terminal",
        "W01",
        "--order",
        "C2",
        "--amount",
        "+3.00",
        "--channel",
        "socket",
    ]);
    assert!(ok && out.contains("\"status\": \"SUCCESS\""), "{out}");
    let (ok, out) =
        hisbridge(&["his", "query", "--config", cfg, "--terminal", "W01", "--order", "C2", "--channel", "socket"]);
    assert!(ok && out.contains("\"order_no\": \"C2\""), "{out}");
    let (ok, out) = hisbridge(&[
        "his",
        "send",
        "--config",
        cfg,
        "--terminal",
        "W01",
        "--order",
        "C1",
        "--amount",
        "-2.00",
        "--refund-no",
        "R1",
    ]);
    assert!(ok && out.contains("\"status\": \"REFUNDED\""), "{out}");
    let (ok, out) =
        hisbridge(&["his", "send", "--config", cfg, "--terminal", "W01", "--order", "C3", "--amount", "+1e3"]);
    assert!(!ok && out.contains("--amount"), "{out}");
    assert_eq!(h.sim.ledger().charged().len(), 2);
}

#[test]
fn report_prints_the_day_writes_its_files_and_matches_a_statement() {
    let h = Harness::new();
    assert_eq!(h.pay("C1", "+12.30").channel.as_deref(), Some("WECHAT"));
    assert_eq!(h.pay("C2", "+8.60").channel.as_deref(), Some("ALIPAY"));
    let cfg = h.dir.path().join("hisbridge.toml");
    let cfg = cfg.to_str().unwrap();
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let (ok, out) = hisbridge(&["report", "-c", cfg, "--date", &today, "--write"]);
    assert!(ok, "{out}");
    let wechat = out.lines().find(|l| l.starts_with("WECHAT")).unwrap_or_else(|| panic!("{out}"));
    assert!(wechat.contains("12.30"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ALL") && l.contains("20.90")), "{out}");
    let file = h.cfg.reconciliation.folder.join(format!("RECON-{}.res", today.replace('-', "")));
    assert!(file.exists(), "{out}");
    let (ok, out) = hisbridge(&["his", "open", "-c", cfg, file.to_str().unwrap()]);
    assert!(ok && out.contains("\"kind\": \"reconciliation\""), "{out}");

    // A POS settlement export with a payment the journal never saw: exit status 3, named.
    let pos_day = today.replace('-', "");
    let mut csv = h.sim.ledger().settlement_csv(&pos_day);
    csv.push_str(&format!("{pos_day}120000,HAND-9,SALE,PAID,WECHAT,4200HAND9,,500\n"));
    let stmt = h.dir.path().join("settlement.csv");
    std::fs::write(&stmt, csv).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["report", "-c", cfg, "--date", &today, "--statement", stmt.to_str().unwrap(), "--source", "pos"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("missing_in_journal") && text.contains("HAND-9"), "{text}");
    assert!(text.contains("2 matched"), "{text}");
    // Without --source the layout is told by the header line; a file of no known layout is
    // refused before anything is printed.
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["report", "-c", cfg, "--date", &today, "--statement", stmt.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&stmt, "a,b,c\n1,2,3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["report", "-c", cfg, "--date", &today, "--statement", stmt.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing printed before the refusal");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WeChat Pay bill"));

    let (ok, out) = hisbridge(&["report", "-c", cfg, "--date", "2026-02-30"]);
    assert!(!ok && out.contains("YYYY-MM-DD"), "{out}");
}

#[test]
fn diagnostics_archive_has_what_support_needs_and_no_key() {
    let h = Harness::new();
    assert_eq!(h.pay("DG1", "+3.00").status, hisbridge_core::his::Status::Success);
    let cfg = h.dir.path().join("hisbridge.toml");
    let logs = h.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("hisbridge.log"), "2026-11-26 INFO POS connected\n").unwrap();
    let out = h.dir.path().join("diag.zip");
    // The data folder's log folder is taken without --logs.
    let (ok, text) = hisbridge(&["diag", "-c", cfg.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.txt",
            "config.toml",
            "journal/events.csv",
            "journal/orders.csv",
            "journal/rejects.csv",
            "logs/hisbridge.log",
            "status.json"
        ]
    );
    let key_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(h.key.expose_bytes())
    };
    let mut everything = String::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        std::io::Read::read_to_string(&mut f, &mut everything).unwrap();
    }
    assert!(everything.contains("DG1.1"), "the journal extract holds the order");
    assert!(!everything.contains(&key_b64), "no key material");
    assert!(!everything.contains(&hex::encode(h.key.expose_bytes())));
}

/// `--logs` pointed at the data folder itself (the key, the journal, the archive being written,
/// a copy of the key under a log's name): only log files go in, never key material.
#[test]
fn diagnostics_never_take_the_key_whatever_folder_is_named() {
    let h = Harness::new();
    assert_eq!(h.pay("DG2", "+3.00").status, hisbridge_core::his::Status::Success);
    let cfg = h.dir.path().join("hisbridge.toml");
    std::fs::copy(h.dir.path().join("hisbridge.key"), h.dir.path().join("stolen.log")).unwrap();
    std::fs::write(h.dir.path().join("bridge.log"), "2026-11-26 INFO POS connected\n").unwrap();
    let out = h.dir.path().join("diag.zip");
    let (ok, text) = hisbridge(&[
        "diag",
        "-c",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--logs",
        h.dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    let logs: Vec<&String> = names.iter().filter(|n| n.starts_with("logs/")).collect();
    assert_eq!(logs, ["logs/bridge.log"], "{names:?}");
    let key_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(h.key.expose_bytes())
    };
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut bytes).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(&key_b64), "key material in {}", f.name().unwrap());
    }
}

#[test]
fn setup_prepares_a_data_folder_as_the_msi_calls_it() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("HISBridge");
    let key = d.path().join("agreed.key");
    let (ok, out) = hisbridge(&["keygen", "--id", "AGREED", "--out", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    // As the MSI passes it: "[DATADIR]." and empty strings for unset properties.
    let dir_arg = format!("{}/.", data.display());
    let (ok, out) = hisbridge(&[
        "setup",
        "--data-dir",
        &dir_arg,
        "--port",
        "usb:2fb8:0001",
        "--transport",
        "",
        "--baud",
        "",
        "--device-id",
        "POS-0001",
        "--terminals",
        "W01,W02",
        "--socket-port",
        "",
        "--key-file",
        key.to_str().unwrap(),
        "--his-account",
        "",
        "--service",
        "",
    ]);
    assert!(ok, "{out}");
    let cfg = hisbridge_core::config::Config::load(&data.join("hisbridge.toml")).unwrap();
    assert_eq!(cfg.pos.port, "usb:2fb8:0001");
    assert_eq!(cfg.data_dir, data);
    assert_eq!(hisbridge_core::keyfile::load(&cfg.key_file).unwrap().id(), "AGREED");
    let log = std::fs::read_to_string(data.join("logs/setup.log")).unwrap();
    assert!(log.contains("key AGREED imported"), "{log}");
    // A bad value fails with the field named, and is logged.
    let (ok, out) = hisbridge(&["setup", "--data-dir", data.to_str().unwrap(), "--device-id", "POS 1"]);
    assert!(!ok && out.contains("pos.device_id"), "{out}");
    assert!(std::fs::read_to_string(data.join("logs/setup.log")).unwrap().contains("FAILED"));
    // The service is Windows-only and says so.
    let (ok, out) = hisbridge(&["setup", "--data-dir", data.to_str().unwrap(), "--service", "1"]);
    assert!(!ok && out.contains("systemd"), "{out}");
}

#[test]
fn driver_inf_binds_winusb_to_the_accessory_and_the_pos_named() {
    let (ok, text) = hisbridge(&["driver", "inf"]);
    assert!(ok, "{text}");
    assert!(text.contains(r"USB\VID_18D1&PID_2D00") && text.contains(r"USB\VID_18D1&PID_2D01&MI_00"), "{text}");
    assert!(text.contains("Include = winusb.inf") && text.contains("Needs   = WINUSB.NT"), "{text}");
    assert!(!text.contains(r"= USB_Install, USB\VID_2FB8"), "no POS line unless asked: {text}");
    let (ok, text) = hisbridge(&["driver", "inf", "--pos", "usb:2fb8:0001"]);
    assert!(ok, "{text}");
    // Both device sections (64-bit and 32-bit Windows) name the POS's MTP interface.
    assert_eq!(text.matches(r"%NormalMode%   = USB_Install, USB\VID_2FB8&PID_0001&MI_00").count(), 2, "{text}");
    let (ok, text) = hisbridge(&["driver", "inf", "--pos", "COM5"]);
    assert!(!ok && text.contains("usb:"), "{text}");
}

#[test]
fn logs_piped_have_no_colour_escapes_and_local_times_with_their_offset() {
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .arg("demo")
        .env("HISBRIDGE_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("POS connected"), "{err}");
    assert!(!err.contains('\u{1b}'), "colour escapes in a redirected log: {err:?}");
    let first = err.lines().next().unwrap();
    // 2026-12-02T15:07:21.535+08:00
    let stamp = first.split_whitespace().next().unwrap();
    assert!(stamp.len() == 29 && (stamp.as_bytes()[23] == b'+' || stamp.as_bytes()[23] == b'-'), "{first}");
}

#[test]
fn setup_with_a_relative_folder_writes_absolute_paths() {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .current_dir(d.path())
        .args(["setup", "--data-dir", "./data", "--port", "COM5", "--device-id", "POS-0001", "--terminals", "W01"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = std::fs::read_to_string(d.path().join("data/hisbridge.toml")).unwrap();
    let abs = d.path().join("data").canonicalize().unwrap();
    let line = cfg.lines().find(|l| l.starts_with("data_dir")).unwrap();
    let written = line.split('"').nth(1).unwrap();
    assert!(std::path::Path::new(written).is_absolute(), "{line}");
    assert_eq!(std::path::Path::new(written).canonicalize().unwrap(), abs);
    // The config found from elsewhere still finds its key.
    let (ok, out) = hisbridge(&[
        "his",
        "check",
        "--config",
        d.path().join("data/hisbridge.toml").to_str().unwrap(),
        "/nonexistent.ord",
    ]);
    assert!(!out.contains("data/./data"), "{ok} {out}");
}

/// `hisbridge run` on a data folder of its own (`<harness>/<name>`; the harness's simulator would
/// clash), with the POS absent and `extra` config lines.
fn spawn_run(h: &Harness, name: &str, extra: &str, log: &str, stderr: std::process::Stdio) -> std::process::Child {
    let cfg = h.dir.path().join(format!("{name}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nkey_file = {:?}\nterminals = [\"W01\"]\n[pos]\nport = \"/nonexistent/pos\"\ndevice_id = \"POS-0001\"\n{extra}",
            h.dir.path().join(name).display().to_string(),
            h.dir.path().join("hisbridge.key").display().to_string()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("HISBRIDGE_LOG", log)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn run_stops_gracefully_on_sigterm() {
    let h = Harness::new();
    let mut child = spawn_run(&h, "run", "", "info", std::process::Stdio::piped());
    let lock = h.dir.path().join("run/journal.sqlite.lock");
    let start = std::time::Instant::now();
    while !hisbridge_core::instance::is_held(&h.dir.path().join("run/journal.sqlite")) {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "never started ({})", lock.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // SAFETY: kill with a child's pid has no memory effects.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(err.contains("stopping (SIGTERM)"), "{err}");
    // The same lines in the data folder's log folder, without colour escapes.
    let log = std::fs::read_to_string(h.dir.path().join("run/logs/hisbridge-run.log")).unwrap();
    assert!(log.contains("HIS Bridge running") && log.contains("stopping (SIGTERM)"), "{log}");
    assert!(!log.contains('\x1b'), "{log}");
}

/// Every option of every command says what it is for (`--help`), and the internal `service run`
/// is not listed.
#[test]
fn every_option_has_help_text() {
    fn help(path: &[String]) -> String {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(&args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    let mut todo = vec![Vec::<String>::new()];
    let mut bare = Vec::new();
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        seen += 1;
        let text = help(&path);
        let mut section = "";
        for line in text.lines() {
            if line.ends_with(':') && !line.starts_with(' ') {
                section = line;
                continue;
            }
            let t = line.trim_start();
            if section == "Commands:" && line.starts_with("  ") {
                let name = t.split_whitespace().next().unwrap_or("");
                if !name.is_empty() && name != "help" {
                    assert!(!(path == ["service"] && name == "run"), "`service run` is internal: {text}");
                    todo.push(path.iter().cloned().chain([name.to_string()]).collect());
                }
            }
            if section == "Options:" && t.starts_with('-') {
                // "-c, --config <CONFIG>  The config file" - a description after two spaces.
                let described = t.split_once("  ").is_some_and(|(_, d)| !d.trim().is_empty());
                if !described {
                    bare.push(format!("hisbridge {} {t}", path.join(" ")));
                }
            }
        }
    }
    assert!(seen > 15, "only {seen} commands found");
    assert!(bare.is_empty(), "options without help:\n{}", bare.join("\n"));
}

fn hisbridge_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hisbridge"));
    c.args(args).env_remove("HISBRIDGE_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A data folder prepared as the MSI does, with no bridge running on it.
fn idle_data_folder() -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let key = d.path().join("agreed.key");
    let (ok, out) = hisbridge(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(ok, "{out}");
    let data = d.path().join("data");
    let (ok, out) = hisbridge(&[
        "setup",
        "--data-dir",
        data.to_str().unwrap(),
        "--port",
        "COM5",
        "--device-id",
        "POS-0001",
        "--terminals",
        "W01",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    let cfg = data.join("hisbridge.toml").to_str().unwrap().to_string();
    (d, cfg)
}

fn inbox_files(cfg: &str) -> Vec<String> {
    let inbox = std::path::Path::new(cfg).parent().unwrap().join("inbox");
    let mut v: Vec<String> = std::fs::read_dir(inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ord"))
        .collect();
    v.sort();
    v
}

/// `his send` with no bridge to take the file: exit 5, the message says the `.ord` waits in the
/// inbox and is carried out when a bridge starts, and how to withdraw it; `his withdraw` and
/// `--withdraw-on-timeout` take it back.
#[test]
fn a_timed_out_send_says_the_file_waits_and_can_be_withdrawn() {
    let (_d, cfg) = idle_data_folder();
    let send = |extra: &[&str]| {
        let mut args = vec!["his", "send", "--config", &cfg, "--terminal", "W01", "--order", "T1", "--amount", "+1.00"];
        args.extend_from_slice(&["--wait", "1"]);
        args.extend_from_slice(extra);
        hisbridge_env(&args, &[])
    };
    let (code, out, err) = send(&[]);
    assert_eq!(code, Some(5), "{out}{err}");
    let files = inbox_files(&cfg);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(err.contains("is still in") && err.contains("carried out when a bridge starts"), "{err}");
    assert!(err.contains(&format!("hisbridge his withdraw {}", files[0])), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message: {err}");

    let (code, out, err) = hisbridge_env(&["his", "withdraw", "--config", &cfg, &files[0]], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("withdrawn") && inbox_files(&cfg).is_empty(), "{out}");
    let (code, out, _) = hisbridge_env(&["his", "withdraw", "--config", &cfg, &files[0]], &[]);
    assert_eq!(code, Some(1), "a file that is not there any more: {out}");
    assert!(out.contains("not in the inbox"), "{out}");

    let (code, out, err) = send(&["--withdraw-on-timeout", "--json"]);
    assert_eq!(code, Some(5), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!((v["error"]["exit"].as_i64(), v["error"]["kind"].as_str()), (Some(5), Some("timeout")), "{v}");
    assert_eq!(v["error"]["withdrawn"], true, "{v}");
    assert!(inbox_files(&cfg).is_empty(), "withdrawn: nothing left for a bridge to charge");
}

/// The exit statuses docs/install.md §9 lists, each where it belongs.
#[test]
fn exit_statuses_tell_the_outcomes_apart() {
    // 6: a declined payment is a final result, but not what was asked.
    let sim = hisbridge_sim::SimConfig { script: [hisbridge_sim::Outcome::Declined].into(), ..Default::default() };
    let h = Harness::with(sim, "");
    let cfg = h.dir.path().join("hisbridge.toml");
    let cfg = cfg.to_str().unwrap();
    let (code, out, err) = hisbridge_env(
        &["his", "send", "--config", cfg, "--terminal", "W01", "--order", "X1", "--amount", "+1.00"],
        &[],
    );
    assert_eq!(code, Some(6), "{out}{err}");
    assert!(out.contains("\"status\": \"FAILED\""), "the result is printed: {out}");
    let (code, out, err) = hisbridge_env(
        &["his", "send", "--config", cfg, "--terminal", "W01", "--order", "X2", "--amount", "+1.00"],
        &[],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = hisbridge_env(&["his", "query", "--config", cfg, "--terminal", "W01", "--order", "X2"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");

    // 4: a file the bridge would refuse; --json lists its problems with their codes.
    let bad = h.dir.path().join("B1.ord");
    let stamp = chrono::Local::now().to_rfc3339();
    let text =
        format!(r#"{{"v":1,"type":"order","terminal_id":"X9","order_no":"B1","amount":"+1.00","sent_at":"{stamp}"}}"#);
    std::fs::write(&bad, h.seal(&text)).unwrap();
    let (code, out, err) = hisbridge_env(&["his", "check", "--config", cfg, "--json", bad.to_str().unwrap()], &[]);
    assert_eq!(code, Some(4), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["refused"], 1, "{v}");
    assert_eq!(v["files"][0]["problems"][0]["code"], "E_TERMINAL", "{v}");

    // 2: wrong arguments, as clap says them; 1: cannot run.
    let (code, _, err) = hisbridge_env(&["report", "--config", cfg, "--statement", "x", "--source", "bank"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("wechat, alipay, pos"), "the values are named: {err}");
    let (code, _, err) = hisbridge_env(&["report", "--config", "/nonexistent/hisbridge.toml"], &[]);
    assert_eq!(code, Some(1), "{err}");
}

/// `--config` can be left out: `HISBRIDGE_CONFIG` names it (the installed one is the default
/// otherwise); without either the message says what to do.
#[test]
fn the_config_comes_from_the_environment_when_not_given() {
    let (_d, cfg) = idle_data_folder();
    let (code, out, err) = hisbridge_env(&["report"], &[("HISBRIDGE_CONFIG", &cfg)]);
    // No journal yet: the report says so, which proves the config was read.
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("no journal at") && err.contains(std::path::Path::new(&cfg).parent().unwrap().to_str().unwrap()),
        "{err}"
    );
    if !std::path::Path::new("/etc/hisbridge/hisbridge.toml").exists() {
        let (code, _, err) = hisbridge_env(&["report"], &[]);
        assert_eq!(code, Some(1));
        assert!(err.contains("pass --config FILE or set HISBRIDGE_CONFIG"), "{err}");
    }
}

/// One message per failure, its cause said once: not `FAILED:` on stdout and `Error:` on
/// stderr, not the database error three times.
#[test]
fn a_failure_is_said_once_with_its_cause_once() {
    let (d, cfg) = idle_data_folder();
    let journal = std::path::Path::new(&cfg).parent().unwrap().join("journal.sqlite");
    std::fs::write(&journal, vec![b'x'; 4096]).unwrap();
    let (code, out, err) = hisbridge_env(&["journal", "check", "--config", &cfg], &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert_eq!(err.matches("journal database error").count(), 1, "{err}");
    assert_eq!(err.matches("not a database").count(), 1, "{err}");

    let (code, out, err) = hisbridge_env(
        &["setup", "--data-dir", d.path().join("s").to_str().unwrap(), "--key-file", "/nonexistent.key"],
        &[],
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(!out.contains("FAILED"), "{out}");
    assert_eq!(err.matches("/nonexistent.key").count(), 1, "{err}");
    let log = std::fs::read_to_string(d.path().join("s/logs/setup.log")).unwrap();
    assert!(log.contains("FAILED"), "the setup log keeps the failure: {log}");
}

/// A roll-out table: each PC takes its own row, the command line wins over it, and a PC with no
/// row is refused rather than given another's POS.
#[test]
fn setup_takes_this_pcs_row_of_a_roll_out_table() {
    let d = tempfile::tempdir().unwrap();
    let table = d.path().join("pcs.csv");
    std::fs::write(
        &table,
        "computer,DEVICEID,terminals,POSPORT\nCASHIER-01,POS-0001,W01;W02,COM5\nCASHIER-02,POS-0002,W03,COM6\n",
    )
    .unwrap();
    let table = table.to_str().unwrap();
    let setup = |dir: &str, extra: &[&str]| {
        let data = d.path().join(dir);
        let mut args = vec!["setup", "--data-dir", data.to_str().unwrap(), "--no-acl", "--pc-table", table];
        args.extend_from_slice(extra);
        let (code, out, err) = hisbridge_env(&args, &[]);
        (code, out, err, std::fs::read_to_string(data.join("hisbridge.toml")).unwrap_or_default())
    };
    let (code, out, err, cfg) = setup("a", &["--computer", "cashier-02"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(cfg.contains("device_id = \"POS-0002\"") && cfg.contains("port = \"COM6\""), "{cfg}");
    assert!(cfg.contains("terminals = [\"W03\"]"), "{cfg}");
    let (code, out, err, cfg) = setup("b", &["--computer", "CASHIER-01", "--port", "COM9"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(cfg.contains("port = \"COM9\"") && cfg.contains("terminals = [\"W01\", \"W02\"]"), "{cfg}");
    let (code, out, err, cfg) = setup("c", &["--computer", "CASHIER-07"]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("CASHIER-07") && err.contains("no row"), "{err}");
    assert!(!cfg.contains("POS-000"), "nothing of another PC's: {cfg}");
}

/// The uninstall's step (`setup --remove-service`) leaves no status.json claiming a bridge runs.
#[test]
fn the_uninstall_step_removes_the_status_file() {
    let (_d, cfg) = idle_data_folder();
    let data = std::path::Path::new(&cfg).parent().unwrap();
    std::fs::write(data.join("status.json"), r#"{"mode": "service", "link": "ready"}"#).unwrap();
    let (code, out, err) = hisbridge_env(&["setup", "--data-dir", data.to_str().unwrap(), "--remove-service"], &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!data.join("status.json").exists(), "{out}");
    assert!(data.join("hisbridge.toml").exists() && data.join("hisbridge.key").exists(), "the data stays");
}

/// `hisbridge run` rolls its log over while it runs: at `[logs] max_kb`, the newest `keep` kept.
#[test]
fn run_rolls_its_log_over_while_running() {
    let h = Harness::new();
    let data = h.dir.path().join("roll");
    let mut child = spawn_run(&h, "roll", "[logs]\nmax_kb = 64\nkeep = 2\n", "debug", std::process::Stdio::null());
    let start = std::time::Instant::now();
    while !data.join("inbox").is_dir() {
        assert!(start.elapsed() < std::time::Duration::from_secs(60), "never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Broken instructions, each refused and logged, until the log has rolled over twice.
    let logs = data.join("logs");
    let mut n = 0;
    while !logs.join("hisbridge-run.log.2").exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "no roll-over: {:?}",
            std::fs::read_dir(&logs).map(|d| d.count())
        );
        for _ in 0..20 {
            n += 1;
            std::fs::write(data.join("inbox").join(format!("BAD{n:05}.ord")), "HB1.K1.ORD.not-base64!").unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for _ in 0..40 {
        n += 1;
        std::fs::write(data.join("inbox").join(format!("BAD{n:05}.ord")), "HB1.K1.ORD.not-base64!").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_secs(2));
    let _ = child.kill();
    let _ = child.wait();
    let mut names: Vec<String> =
        std::fs::read_dir(&logs).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert!(!names.iter().any(|n| n == "hisbridge-run.log.3"), "keep = 2: {names:?}");
    for n in names.iter().filter(|n| n.starts_with("hisbridge-run.log")) {
        let len = std::fs::metadata(logs.join(n)).unwrap().len();
        assert!(len <= 64 * 1024 + 4096, "{n}: {len} bytes");
    }
}

/// `hisbridge it-password`: only the Argon2id hash reaches the config, the rest of the config is
/// kept, `--clear` removes it, a short password is refused, and a damaged hash neither stops the
/// bridge nor opens the settings (they stay locked until IT sets the password again).
#[test]
fn the_it_password_is_kept_as_a_hash_only() {
    let (d, cfg) = idle_data_folder();
    let before = hisbridge_core::config::Config::load(std::path::Path::new(&cfg)).unwrap();
    let pw = d.path().join("pw.txt");
    std::fs::write(&pw, "short\n").unwrap();
    let set = |extra: &[&str]| {
        let mut args = vec!["it-password", "--config", &cfg];
        args.extend_from_slice(extra);
        hisbridge_env(&args, &[])
    };
    let (code, out, err) = set(&["--password-file", pw.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("at least 8 characters"), "{err}");
    let missing = d.path().join("none.txt");
    let (code, out, err) = set(&["--password-file", missing.to_str().unwrap()]);
    assert_ne!(code, Some(0), "{out}{err}");
    assert!(err.contains("cannot read the password file") && !err.contains("hub"), "{err}");
    std::fs::write(&pw, "Xinxike-2026\r\n").unwrap();
    let (code, out, err) = set(&["--password-file", pw.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[tray]") && text.contains("$argon2id$") && !text.contains("Xinxike"), "{text}");
    let after = hisbridge_core::config::Config::load(std::path::Path::new(&cfg)).unwrap();
    let hash = after.tray.it_password_hash.clone().expect("a hash");
    assert!(hisbridge_core::password::verify(&hash, "Xinxike-2026"));
    assert!(!hisbridge_core::password::verify(&hash, "Xinxike-2027"));
    assert_eq!((after.pos, after.terminals, after.folders), (before.pos, before.terminals, before.folders));
    assert!(!out.contains("Xinxike") && !err.contains("Xinxike"));

    let (code, out, err) = set(&["--clear"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!std::fs::read_to_string(&cfg).unwrap().contains("argon2"));
    let cleared = hisbridge_core::config::Config::load(std::path::Path::new(&cfg)).unwrap();
    assert_eq!(cleared.tray.it_password_hash, None);

    // A damaged hash does not stop the bridge (the config loads) and opens nothing.
    std::fs::write(&cfg, text.replace("$argon2id$", "$argon2id")).unwrap();
    let damaged = hisbridge_core::config::Config::load(std::path::Path::new(&cfg)).unwrap();
    let mut lock = hisbridge_core::password::SettingsLock::new(damaged.tray.it_password_hash);
    let now = std::time::Instant::now();
    assert_eq!(lock.unlock(now, "Xinxike-2026"), Err(hisbridge_core::password::Refusal::Damaged));
    assert!(!lock.is_open(now));
    // IT sets it again over the damaged one.
    let (code, out, err) = set(&["--password-file", pw.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let fixed = hisbridge_core::config::Config::load(std::path::Path::new(&cfg)).unwrap();
    assert!(hisbridge_core::password::verify(&fixed.tray.it_password_hash.unwrap(), "Xinxike-2026"));
}

/// Every `hisbridge ...` command line in the published documents names a command that exists,
/// and every `--option` on it is one that command takes: a document is a contract.
#[test]
fn the_documents_name_only_commands_and_options_that_exist() {
    use std::collections::BTreeMap;
    let mut helps: BTreeMap<Vec<String>, Option<String>> = BTreeMap::new();
    let mut help = |path: &[String]| -> Option<String> {
        helps
            .entry(path.to_vec())
            .or_insert_with(|| {
                let out = Command::new(env!("CARGO_BIN_EXE_hisbridge")).args(path).arg("--help").output().unwrap();
                out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            })
            .clone()
    };
    let lists = |text: &str, name: &str| {
        let mut in_commands = false;
        text.lines().any(|l| {
            if !l.starts_with(' ') {
                in_commands = l == "Commands:";
            }
            in_commands && l.split_whitespace().next() == Some(name)
        })
    };
    let is_name = |w: &str| {
        w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && w.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut bad = Vec::new();
    let mut seen = 0;
    for doc in [
        "README.md",
        "docs/install.md",
        "docs/configuration.md",
        "docs/hub.md",
        "docs/his-interface.md",
        "docs/security.md",
    ] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let mut rest = line;
            while let Some(i) = rest.find("hisbridge") {
                let after = &rest[i + "hisbridge".len()..];
                rest = after;
                let after = after.strip_prefix(".exe").unwrap_or(after).trim_start_matches('"');
                if !after.starts_with(' ') {
                    continue;
                }
                let end = after.find(['`', '|', ';', ')', '，', '。']).unwrap_or(after.len());
                let words: Vec<&str> = after[..end].split_whitespace().collect();
                let mut path: Vec<String> = Vec::new();
                let mut text = help(&path).unwrap();
                for w in &words {
                    if !is_name(w) || !lists(&text, w) {
                        break;
                    }
                    path.push(w.to_string());
                    text = help(&path).unwrap_or_default();
                }
                if path.is_empty() {
                    let first = words.first().copied().unwrap_or("");
                    if is_name(first) {
                        bad.push(format!("{doc}:{}: `hisbridge {first}` is no command", n + 1));
                    }
                    continue;
                }
                seen += 1;
                for w in &words {
                    let flag: String = w.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
                    if flag.starts_with("--") && flag.len() > 2 && flag != "--help" && !text.contains(&flag) {
                        bad.push(format!("{doc}:{}: `hisbridge {}` has no {flag}", n + 1, path.join(" ")));
                    }
                }
            }
        }
    }
    assert!(seen > 40, "only {seen} command lines found in the documents");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
