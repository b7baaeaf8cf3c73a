//! `hisbridge hub serve`: the read-only monitoring page for IT and finance.
//!
//! One connection to the hub reads the overview every 2 s (however many people watch); the page
//! gets it as JSON and then live through server-sent events. On loopback the page may be open;
//! on any other address it needs TLS and a login (users file, Argon2id hashes), and says who is
//! logged in.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hisbridge_core::hub::monitor::{self, Overview};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};

#[derive(clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    db: crate::hub::Db,
    /// Address to listen on, e.g. 127.0.0.1:8470, or 0.0.0.0:8470 for the LAN (then --tls-cert,
    /// --tls-key and --users are required).
    #[arg(long, default_value = "127.0.0.1:8470")]
    listen: SocketAddr,
    /// The page's certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Users of the page (made with `hisbridge hub passwd`); with it a login is required even on loopback.
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,
    /// How often the page's figures are read from the hub, in seconds.
    #[arg(long, default_value_t = 2)]
    refresh_secs: u64,
}

const PAGE: &str = include_str!("hubpage.html");
const SESSION_COOKIE: &str = "hisbridge_session";
const SESSION_HOURS: u64 = 12;

struct Session {
    user: String,
    expires: Instant,
}

struct State {
    overview: watch::Receiver<Option<Result<Overview, String>>>,
    users: Option<HashMap<String, String>>,
    sessions: Mutex<HashMap<String, Session>>,
    secure: bool,
}

pub async fn serve(a: ServeArgs) -> Result<()> {
    let off_loopback = !a.listen.ip().is_loopback();
    if off_loopback && (a.tls_cert.is_none() || a.users.is_none()) {
        bail!(
            "listening on {} (beyond this PC) needs TLS and a login: give --tls-cert, --tls-key and --users \
             (docs/hub.md, \"The monitoring page\")",
            a.listen
        );
    }
    let users = a.users.as_deref().map(read_users).transpose()?;
    if users.as_ref().is_some_and(|u| u.is_empty()) {
        bail!("the users file names no user: add one with `hisbridge hub passwd`");
    }
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(tls_acceptor(c, k)?),
        _ => None,
    };
    let (tx, rx) = watch::channel(None);
    tokio::spawn(refresh(a.db.clone(), Duration::from_secs(a.refresh_secs.max(1)), tx));
    let state = Arc::new(State { overview: rx, users, sessions: Mutex::new(HashMap::new()), secure: tls.is_some() });
    let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| format!("listen on {}", a.listen))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("monitoring page on {scheme}://{}/", listener.local_addr()?);
    tracing::info!(listen = %a.listen, tls = tls.is_some(), login = state.users.is_some(), "hub page serving");
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req).await) }
            });
            let http = hyper::server::conn::http1::Builder::new();
            let res = match tls {
                Some(acc) => match tokio::time::timeout(Duration::from_secs(10), acc.accept(stream)).await {
                    Ok(Ok(s)) => http.serve_connection(hyper_util::rt::TokioIo::new(s), svc).await,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                None => http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await,
            };
            if let Err(e) = res {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// Reads the overview every `every`; a lost connection is opened again, and the page says the
/// hub cannot be read meanwhile.
async fn refresh(db: crate::hub::Db, every: Duration, tx: watch::Sender<Option<Result<Overview, String>>>) {
    let mut client = None;
    loop {
        if client.is_none() {
            match db.target().connect().await {
                Ok(c) => client = Some(c),
                Err(e) => {
                    tx.send_replace(Some(Err(e.to_string())));
                }
            }
        }
        if let Some(c) = &client {
            match hisbridge_core::hub::within(Duration::from_secs(30), monitor::overview(c)).await {
                Ok(o) => {
                    tx.send_if_modified(|cur| {
                        // Only the clock moved: not news for the page.
                        let same = matches!(cur, Some(Ok(p)) if Overview { generated_at: String::new(), ..p.clone() }
                            == Overview { generated_at: String::new(), ..o.clone() });
                        if !same {
                            *cur = Some(Ok(o));
                        }
                        !same
                    });
                }
                Err(e) => {
                    tx.send_replace(Some(Err(e.to_string())));
                    client = None;
                }
            }
        }
        tokio::time::sleep(every).await;
    }
}

type BoxBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

fn full(status: StatusCode, ctype: &str, body: impl Into<Bytes>) -> Response<BoxBody> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("cache-control", "no-store")
        .header("x-content-type-options", "nosniff")
        .header("x-frame-options", "DENY")
        .header("referrer-policy", "no-referrer")
        .body(Full::new(body.into()).boxed_unsync())
        .expect("response")
}

fn redirect(to: &str, cookie: Option<String>) -> Response<BoxBody> {
    let mut b = Response::builder().status(StatusCode::SEE_OTHER).header("location", to);
    if let Some(c) = cookie {
        b = b.header("set-cookie", c);
    }
    b.body(Full::new(Bytes::new()).boxed_unsync()).expect("response")
}

fn session_of(req: &Request<Incoming>) -> Option<String> {
    let cookies = req.headers().get_all("cookie");
    cookies.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_string())
    })
}

impl State {
    /// Who is logged in: Some("") when no login is needed (loopback without a users file).
    fn user(&self, req: &Request<Incoming>) -> Option<String> {
        if self.users.is_none() {
            return Some(String::new());
        }
        let token = session_of(req)?;
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, v| v.expires > Instant::now());
        s.get(&token).map(|v| v.user.clone())
    }
}

async fn route(state: &State, req: Request<Incoming>) -> Response<BoxBody> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/login") => full(StatusCode::OK, "text/html; charset=utf-8", PAGE),
        (Method::POST, "/login") => login(state, req).await,
        (Method::POST, "/logout") => {
            if let Some(t) = session_of(&req) {
                state.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&t);
            }
            redirect("/login", Some(format!("{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict")))
        }
        (Method::GET, "/") => match state.user(&req) {
            Some(_) => full(StatusCode::OK, "text/html; charset=utf-8", PAGE),
            None => redirect("/login", None),
        },
        (Method::GET, "/api/overview") => match state.user(&req) {
            Some(user) => full(StatusCode::OK, "application/json", payload(state, &user)),
            None => full(StatusCode::UNAUTHORIZED, "application/json", r#"{"error":"login required"}"#),
        },
        (Method::GET, "/api/events") => match state.user(&req) {
            Some(user) => events(state, user),
            None => full(StatusCode::UNAUTHORIZED, "application/json", r#"{"error":"login required"}"#),
        },
        (Method::GET, "/healthz") => full(StatusCode::OK, "text/plain", "ok"),
        _ => full(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found"),
    }
}

fn payload(state: &State, user: &str) -> String {
    let o = state.overview.borrow().clone();
    let login = state.users.is_some();
    match o {
        None => serde_json::json!({"user": user, "login": login, "loading": true}).to_string(),
        Some(Ok(o)) => serde_json::json!({"user": user, "login": login, "overview": o}).to_string(),
        Some(Err(e)) => serde_json::json!({"user": user, "login": login, "error": e}).to_string(),
    }
}

async fn login(state: &State, req: Request<Incoming>) -> Response<BoxBody> {
    let Some(users) = &state.users else { return redirect("/", None) };
    let body = match tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::Limited::new(req.into_body(), 4096).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return full(StatusCode::BAD_REQUEST, "text/plain", "bad request"),
    };
    let form: HashMap<String, String> = form_urlencoded(&body);
    let user = form.get("user").map(String::as_str).unwrap_or("");
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let ok = users.get(user).is_some_and(|hash| verify(hash, password));
    if !ok {
        tracing::warn!(user = %user, "hub page: login refused");
        // Slows guessing; the answer does not say whether the user exists.
        tokio::time::sleep(Duration::from_millis(700)).await;
        return redirect("/login?failed=1", None);
    }
    tracing::info!(user = %user, "hub page: logged in");
    let token = hex_token();
    state.sessions.lock().unwrap_or_else(|p| p.into_inner()).insert(
        token.clone(),
        Session { user: user.to_string(), expires: Instant::now() + Duration::from_secs(SESSION_HOURS * 3600) },
    );
    let secure = if state.secure { "; Secure" } else { "" };
    redirect(
        "/",
        Some(format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            SESSION_HOURS * 3600
        )),
    )
}

/// A server-sent event stream: the overview now, then at each change; a comment every 15 s
/// keeps proxies from closing it.
fn events(state: &State, user: String) -> Response<BoxBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let mut watch = state.overview.clone();
    let login = state.users.is_some();
    tokio::spawn(async move {
        let frame = |o: &Option<Result<Overview, String>>| {
            let v = match o {
                None => serde_json::json!({"user": user, "login": login, "loading": true}),
                Some(Ok(o)) => serde_json::json!({"user": user, "login": login, "overview": o}),
                Some(Err(e)) => serde_json::json!({"user": user, "login": login, "error": e}),
            };
            Bytes::from(format!("data: {v}\n\n"))
        };
        let first = frame(&watch.borrow_and_update());
        if tx.send(first).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                c = watch.changed() => {
                    if c.is_err() { return }
                    let f = frame(&watch.borrow_and_update());
                    if tx.send(f).await.is_err() { return }
                }
                _ = tokio::time::sleep(Duration::from_secs(15)) => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { return }
                }
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-store")
        .body(BodyExt::boxed_unsync(Sse(rx)))
        .expect("response")
}

struct Sse(mpsc::Receiver<Bytes>);

impl Body for Sse {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

fn form_urlencoded(body: &[u8]) -> HashMap<String, String> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn hex_token() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn tls_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .with_context(|| format!("read the certificate {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("read the private key {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not go together")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The users file: `name:$argon2id$...` per line; `#` starts a comment.
fn read_users(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read the users file {}", path.display()))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, hash)) = line.split_once(':') else {
            bail!("{} line {}: expected name:hash (made by `hisbridge hub passwd`)", path.display(), i + 1);
        };
        hisbridge_core::password::check_hash(hash)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), i + 1))?;
        out.insert(name.to_string(), hash.to_string());
    }
    Ok(out)
}

fn verify(hash: &str, password: &str) -> bool {
    hisbridge_core::password::verify(hash, password)
}

/// Adds or replaces a user's line in the users file (created owner-only).
pub fn set_user(path: &Path, user: &str, password: &str) -> Result<()> {
    if user.is_empty() || user.contains([':', '\n', '\r']) || user.trim() != user {
        bail!("user name {user:?}: no colon, no spaces around it");
    }
    let hash = hisbridge_core::password::hash(password)?;
    let old = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", path.display())),
    };
    let mut lines: Vec<String> =
        old.lines().filter(|l| l.split_once(':').is_none_or(|(n, _)| n != user)).map(str::to_string).collect();
    lines.push(format!("{user}:{hash}"));
    let text = lines.join("\n") + "\n";
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).context("users file name")?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    crate::hub::write_secret(&tmp, text.trim_end_matches('\n'))?;
    std::fs::rename(&tmp, path).with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

pub fn ask_password(user: &str) -> Result<String> {
    let a = rpassword::prompt_password(format!("password for {user}: "))?;
    let b = rpassword::prompt_password("again: ")?;
    if a != b {
        bail!("the two passwords differ");
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = form_urlencoded(b"user=it%40lan&password=a+b%26c%3D&x");
        assert_eq!(f["user"], "it@lan");
        assert_eq!(f["password"], "a b&c=");
        assert_eq!(form_urlencoded(b"p=%")["p"], "%");
        assert_eq!(form_urlencoded(b"p=%4")["p"], "%4");
    }

    #[test]
    fn users_are_stored_hashed_and_verified() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("users");
        set_user(&p, "finance", "correct horse").unwrap();
        set_user(&p, "it", "battery staple").unwrap();
        set_user(&p, "finance", "new password").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("password") && !text.contains("staple"), "{text}");
        let u = read_users(&p).unwrap();
        assert_eq!(u.len(), 2);
        assert!(verify(&u["finance"], "new password"));
        assert!(!verify(&u["finance"], "correct horse"));
        assert!(verify(&u["it"], "battery staple"));
        assert!(set_user(&p, "x", "short").is_err());
    }
}
