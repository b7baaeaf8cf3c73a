//! The hospital hub: every window's journal in one PostgreSQL database (docs/hub.md).
//!
//! - [`schema`]: the hub's tables, roles and row-level security, as versioned migrations.
//! - [`replica`]: the bridge side. A background task reads the journal (a connection of its own,
//!   read only) and sends its orders and events in order, in batches, idempotently; a local
//!   cursor moves only after the hub committed. Payments never wait on it.
//! - [`report`]: the day across every window, and the merchant's bill matched against them all.
//!
//! The journal stays the source of truth: the hub holds copies, keyed by the journal's identity
//! and its event numbers, so sending anything twice changes nothing.

pub mod monitor;
pub mod replica;
pub mod report;
pub mod schema;
mod tls;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use tokio_postgres::Client;

/// How the connection to the hub is protected (`[hub] tls`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Plain TCP: a hub on this PC, or a LAN where the DBA decided so.
    Disable,
    /// Encrypted, the server's certificate not checked.
    Require,
    /// Encrypted, the certificate checked against `ca_file` (else the system's roots) and the
    /// host name in the URL.
    #[default]
    VerifyFull,
}

impl TlsMode {
    /// The mode when none is given: none to a hub on this PC (loopback or a local socket),
    /// `verify-full` to any other.
    pub fn default_for(url: &str) -> Self {
        let Ok(cfg) = url.parse::<tokio_postgres::Config>() else { return TlsMode::VerifyFull };
        let local = cfg.get_hosts().iter().all(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => {
                name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
            }
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => true,
        });
        if local {
            TlsMode::Disable
        } else {
            TlsMode::VerifyFull
        }
    }
}

/// `[hub]`, resolved (docs/configuration.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSettings {
    /// `postgresql://USER@HOST:PORT/DB`, never with a password in it.
    pub url: String,
    /// The login's password, alone in a file only the bridge's account can read.
    pub password_file: Option<PathBuf>,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    /// This window's name on the hub's page (default: the computer's name).
    pub window: String,
    pub heartbeat: Duration,
    /// Events per batch (one hub transaction).
    pub batch: usize,
    /// The longest any one exchange with the hub may take before the connection is dropped
    /// and opened again.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("hub database: {}", pg_text(.0))]
    Db(tokio_postgres::Error),
    #[error("the hub did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot read the hub's password file {path}: {source}")]
    Password { path: PathBuf, source: std::io::Error },
    #[error("hub TLS: {0}")]
    Tls(String),
    #[error("journal: {0}")]
    Journal(String),
    #[error("the hub's schema is version {found}; this program knows {known}: run `hisbridge hub migrate` with the newer HIS Bridge")]
    SchemaTooNew { found: i32, known: i32 },
    #[error("the hub has no HIS Bridge schema yet (or this login cannot see it): run `hisbridge hub migrate --db URL` as the database's owner")]
    NoSchema,
    #[error("{0}")]
    Diverged(String),
    #[error("{0}")]
    Other(String),
}

impl From<tokio_postgres::Error> for HubError {
    fn from(e: tokio_postgres::Error) -> Self {
        HubError::Db(e)
    }
}

/// PostgreSQL's own message and its SQLSTATE, once (the driver's Display says only "db error").
fn pg_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} ({})", db.message(), db.code().code());
        if let Some(d) = db.detail() {
            s.push_str(": ");
            s.push_str(d);
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

impl HubError {
    /// The hub refused this login's rights (a role or policy is missing): retrying will not help
    /// until the DBA acts, but nothing is lost by trying again later.
    pub fn is_permission(&self) -> bool {
        matches!(self, HubError::Db(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE))
    }
}

pub type Result<T> = std::result::Result<T, HubError>;

/// Checks a hub URL from the config: a PostgreSQL URL with a user and no password (the
/// password goes in `password_file`, which only the bridge's account reads).
pub fn check_url(url: &str) -> std::result::Result<String, String> {
    let url = url.trim();
    let cfg: tokio_postgres::Config =
        url.parse().map_err(|e| format!("{url:?} is not a PostgreSQL connection URL ({e})"))?;
    if cfg.get_password().is_some() {
        return Err("holds a password: put it alone in the file named by `hub.password_file`".into());
    }
    if cfg.get_user().is_none() {
        return Err(format!("{url:?} names no user (postgresql://USER@HOST:PORT/DATABASE)"));
    }
    if cfg.get_hosts().is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    Ok(url.to_string())
}

/// A URL as it may be logged or shown: any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (auth, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match auth.rsplit_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Where and how to reach the hub; the password is read from its file at each connection, so a
/// changed password takes effect at the next reconnect.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl Target {
    pub fn of(h: &HubSettings) -> Self {
        Target {
            url: h.url.clone(),
            password_file: h.password_file.clone(),
            tls: h.tls,
            ca_file: h.ca_file.clone(),
            timeout: h.timeout,
        }
    }

    /// For the `hisbridge hub` commands: a URL that may carry its password (IT typing at a
    /// prompt), TLS from `sslmode` in the URL when given.
    pub fn from_url(url: &str, password_file: Option<PathBuf>, tls: TlsMode, ca_file: Option<PathBuf>) -> Self {
        Target { url: url.to_string(), password_file, tls, ca_file, timeout: Duration::from_secs(60) }
    }

    /// Opens a connection; the connection's task runs on the current runtime and ends when the
    /// client is dropped.
    pub async fn connect(&self) -> Result<Client> {
        let mut cfg: tokio_postgres::Config =
            self.url.parse().map_err(|e| HubError::Other(format!("hub URL {}: {e}", redact(&self.url))))?;
        if let Some(p) = &self.password_file {
            cfg.password(read_password(p)?);
        }
        cfg.connect_timeout(self.timeout);
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        if cfg.get_application_name().is_none() {
            cfg.application_name("hisbridge");
        }
        let fut = async {
            match self.tls {
                TlsMode::Disable => {
                    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %pg_text(&e), "hub connection ended");
                        }
                    });
                    Ok(client)
                }
                mode => {
                    cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let tls = tls::Connector::new(mode, self.ca_file.as_deref())?;
                    let (client, conn) = cfg.connect(tls).await?;
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %pg_text(&e), "hub connection ended");
                        }
                    });
                    Ok(client)
                }
            }
        };
        within(self.timeout, fut).await
    }
}

/// `f`, or [`HubError::Timeout`] after `limit`: no exchange with the hub may hang.
pub async fn within<T>(limit: Duration, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(limit, f).await.unwrap_or(Err(HubError::Timeout(limit)))
}

/// The hub login's password alone in its file ([`crate::password::read_file`]).
pub fn read_password(path: &Path) -> Result<String> {
    crate::password::read_file(path).map_err(|source| HubError::Password { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_passwords_are_refused_and_redacted() {
        assert!(check_url("postgresql://w03@db.lan:5432/hisbridge").is_ok());
        assert!(check_url("postgresql://w03:secret@db.lan/hisbridge").unwrap_err().contains("password_file"));
        assert!(check_url("postgresql://db.lan/hisbridge").unwrap_err().contains("no user"));
        assert!(check_url("mysql:/x").is_err());
        assert_eq!(
            redact("postgresql://w03:s3cr@t@db.lan:5432/h?sslmode=require"),
            "postgresql://w03:***@db.lan:5432/h?sslmode=require"
        );
        assert_eq!(redact("postgresql://w03@db.lan/h"), "postgresql://w03@db.lan/h");
    }

    #[test]
    fn the_password_file_is_trimmed_and_must_hold_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pw");
        std::fs::write(&p, "  p@ss word\r\n").unwrap();
        assert_eq!(read_password(&p).unwrap(), "p@ss word");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_password(&p).unwrap_err().to_string().contains("empty"));
    }
}
