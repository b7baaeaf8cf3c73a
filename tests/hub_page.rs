//! The hub's monitoring page in a real browser: WebKit's MiniBrowser driven through
//! WebKitWebDriver under Xvfb, against `hisbridge hub serve` on a real PostgreSQL fed by two real
//! bridges. Off loopback the page needs TLS and a login and says who is logged in; it updates
//! live; a window that stops reporting shows as silent.
//!
//! Skipped where WebKitWebDriver, MiniBrowser or Xvfb is missing, unless
//! `HISBRIDGE_REQUIRE_WEBDRIVER=1` (scripts/test-all.sh installs them and sets it). With
//! `HISBRIDGE_SCREENSHOTS=DIR` the page's screenshots are written there (scripts/screenshots.sh).

mod common;
#[path = "common/pg.rs"]
mod pg;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Harness;
use hisbridge_core::his::Status;
use hisbridge_sim::SimConfig;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

fn minibrowser() -> Option<PathBuf> {
    ["/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser", "/usr/lib/aarch64-linux-gnu/webkit2gtk-4.1/MiniBrowser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A minimal WebDriver client: one HTTP/1.1 request per connection.
struct Driver {
    port: u16,
    session: String,
}

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut len = None;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            }
        }
    }
    let mut buf = Vec::new();
    match len {
        Some(n) => {
            buf.resize(n, 0);
            r.read_exact(&mut buf).unwrap();
        }
        None => {
            r.read_to_end(&mut buf).unwrap();
        }
    }
    serde_json::from_slice(&buf).unwrap_or(Value::Null)
}

impl Driver {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = http(self.port, method, &format!("/session/{}{path}", self.session), body.as_ref());
        v["value"].clone()
    }
    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }
    fn js(&self, script: &str) -> Value {
        self.cmd("POST", "/execute/sync", Some(json!({ "script": script, "args": [] })))
    }
    fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap_or_default().to_string()
    }
    fn until(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script);
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("HISBRIDGE_SCREENSHOTS") else { return };
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.cmd("GET", "/screenshot", None).as_str().unwrap())
            .unwrap();
        std::fs::write(Path::new(&dir).join(name), png).unwrap();
    }
}

fn sim() -> SimConfig {
    SimConfig { scan_delay: Duration::from_millis(20), paying_delay: Duration::from_millis(50), ..SimConfig::default() }
}

fn hub_config(url: &str, password_file: &Path, window: &str) -> String {
    format!(
        "[hub]\nurl = {url:?}\npassword_file = {:?}\nwindow = {window:?}\nheartbeat_secs = 5\ntimeout_secs = 3\n",
        password_file.display().to_string()
    )
}

#[test]
fn the_monitoring_page_in_a_browser() {
    let required = std::env::var("HISBRIDGE_REQUIRE_WEBDRIVER").as_deref() == Ok("1");
    let (Some(browser), true, true) = (minibrowser(), have("WebKitWebDriver"), have("Xvfb")) else {
        assert!(!required, "HISBRIDGE_REQUIRE_WEBDRIVER=1 and WebKitWebDriver, MiniBrowser or Xvfb is missing");
        eprintln!("skipped: WebKitWebDriver, MiniBrowser or Xvfb is missing");
        return;
    };
    let Some(pg) = pg::Pg::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pw1 = pg.migrate_and_login("w01", "bridge", dir.path());
    let pw2 = pg.migrate_and_login("w02", "bridge", dir.path());
    let page_pw = pg.migrate_and_login("page", "reader", dir.path());
    let mut a = Harness::with(sim(), &hub_config(&pg.url("w01"), &pw1, "门诊1号窗"));
    let b = Harness::with(sim(), &hub_config(&pg.url("w02"), &pw2, "急诊收费窗"));
    b.sim.number_from(500_000);
    for i in 0..3 {
        assert_eq!(a.pay(&format!("A-{i}"), "+25.00").status, Status::Success);
    }
    assert_eq!(b.pay("B-0", "+8.80").status, Status::Success);
    b.rt.as_ref().unwrap().block_on(b.bridge.as_ref().unwrap().pause(true)).unwrap();

    // Finance matched the merchant's bill: every window's payments, one of them missing.
    let fin = pg.migrate_and_login("fin", "finance", dir.path());
    let today = chrono::Local::now().format("%Y-%m-%d").to_string();
    let pos_day = today.replace('-', "");
    let bill_b = b.sim.ledger().settlement_csv(&pos_day);
    let bill_a = a.sim.ledger().settlement_csv(&pos_day);
    let bill = format!(
        "{}{}",
        bill_a.lines().take(3).map(|l| format!("{l}\n")).collect::<String>(),
        bill_b.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>()
    );
    let bill_path = dir.path().join("pos-bill.csv");
    std::fs::write(&bill_path, bill).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["hub", "report", "--db", &pg.url("fin"), "--password-file", fin.to_str().unwrap(), "--statement"])
        .arg(&bill_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));

    // The page's user, stored hashed.
    let users = dir.path().join("page-users");
    let it_pw = dir.path().join("it.password");
    std::fs::write(&it_pw, "monitor-pass-1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hisbridge"))
        .args(["hub", "passwd", "--users"])
        .arg(&users)
        .args(["--user", "it-zhang", "--password-file"])
        .arg(&it_pw)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!std::fs::read_to_string(&users).unwrap().contains("monitor-pass-1"));

    let serve = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hisbridge"));
        c.args(["hub", "serve", "--db", &pg.url("page"), "--password-file"]).arg(&page_pw).args(extra);
        c
    };
    // Beyond loopback without TLS and a login: refused, saying what is needed.
    let out = serve(&["--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs TLS and a login"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let certs = tempfile::tempdir().unwrap();
    let (_, crt, key) = pg::make_certs(certs.path());
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut server = serve(&[
        "--listen",
        &listen,
        "--users",
        users.to_str().unwrap(),
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let _server = Kill(server.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());

    // The browser, on a display of its own.
    let display = format!(":{}", 90 + (std::process::id() % 100));
    let _x = Kill(
        Command::new("Xvfb")
            .args([&display, "-screen", "0", "1366x768x24", "-nolisten", "tcp"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let wd_port = free_port();
    let _wd = Kill(
        Command::new("WebKitWebDriver")
            .arg(format!("--port={wd_port}"))
            .env("DISPLAY", &display)
            .env("LANG", "zh_CN.UTF-8")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", wd_port)).is_err() {
        assert!(start.elapsed() < WAIT, "WebKitWebDriver did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let s = http(
        wd_port,
        "POST",
        "/session",
        Some(&json!({"capabilities": {"alwaysMatch": {
            "acceptInsecureCerts": true,
            "webkitgtk:browserOptions": {"binary": browser, "args": ["--automation", "--geometry=1366x768"]}
        }}})),
    );
    let session = s["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {s}")).to_string();
    let d = Driver { port: wd_port, session };
    d.cmd("POST", "/window/rect", Some(json!({"width": 1366, "height": 768, "x": 0, "y": 0})));
    let base = format!("https://127.0.0.1:{port}");
    let start = Instant::now();
    loop {
        d.go(&format!("{base}/"));
        if d.url().contains("/login") {
            break;
        }
        assert!(start.elapsed() < WAIT, "the page did not come up (at {})", d.url());
        std::thread::sleep(Duration::from_millis(300));
    }
    // Off loopback: the login first. A wrong password is refused and said so.
    d.js("document.getElementById('user').value = 'it-zhang'; document.getElementById('password').value = 'wrong-one'; document.querySelector('form[action=\"/login\"]').submit();");
    d.until("refused login", "return location.search.includes('failed') && getComputedStyle(document.getElementById('loginerr')).display !== 'none'");
    d.screenshot("hub-login.png");
    d.js("document.getElementById('user').value = 'it-zhang'; document.getElementById('password').value = 'monitor-pass-1'; document.querySelector('form[action=\"/login\"]').submit();");
    d.until("both windows listed", "return document.querySelectorAll('#windows tbody tr[data-window]').length === 2");
    let who = d.js("return document.getElementById('who').textContent");
    assert_eq!(who, "已登录：it-zhang", "the page says who is logged in");
    d.until("the day's total", "return document.getElementById('tile-collected').textContent.includes('¥83.80')");
    let paused = d.js("return [...document.querySelectorAll('#windows tbody tr')].find(r => r.dataset.window === '急诊收费窗').textContent");
    assert!(paused.as_str().unwrap().contains("已暂停"), "{paused}");
    d.until("POS ready at window 1", "return [...document.querySelectorAll('#windows tbody tr')].find(r => r.dataset.window === '门诊1号窗').textContent.includes('POS 就绪')");
    d.until("the latest reconciliation with its difference", "return document.getElementById('recon').textContent.includes('1 差异') && document.getElementById('recon').textContent.includes('门诊1号窗')");
    d.screenshot("hub-page.png");

    // Live, without reloading: a mark set in the page survives the updates.
    d.js("window.__notReloaded = true; return true");
    assert_eq!(a.pay("A-9", "+1.20").status, Status::Success);
    d.until(
        "a new payment shows live",
        "return document.getElementById('tile-collected').textContent.includes('¥85.00')",
    );
    // Window 1 stops reporting (its bridge stopped): it shows as silent.
    let stopped = Instant::now();
    a.stop();
    d.until("window 1 silent", "return [...document.querySelectorAll('#windows tbody tr')].find(r => r.dataset.window === '门诊1号窗').dataset.silent === '1'");
    eprintln!(
        "window 1 shown silent {:.1} s after its bridge stopped (heartbeat every 5 s)",
        stopped.elapsed().as_secs_f64()
    );
    assert_eq!(d.js("return window.__notReloaded === true"), Value::Bool(true), "updated without a reload");
    assert_eq!(d.js("return document.getElementById('tile-silent').textContent.startsWith('1')"), Value::Bool(true));
    d.screenshot("hub-page-silent.png");
    // English.
    d.js("document.getElementById('lang').click(); return true");
    d.until("English", "return document.querySelector('header h1').textContent === 'Hospital payments monitor'");
    assert!(d.js("return document.body.innerText").as_str().unwrap().contains("Silent"));
    d.screenshot("hub-page-en.png");
    // Logging out ends the session: the page asks for the login again.
    d.js("document.getElementById('logout').submit(); return true");
    d.until("back at the login", "return location.pathname === '/login'");
    d.go(&format!("{base}/"));
    assert!(d.url().contains("/login"));
    d.cmd("DELETE", "", None);
}
