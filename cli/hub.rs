//! `hisbridge hub`: the hospital hub in PostgreSQL (docs/hub.md): its schema, its logins, the
//! hospital-wide report and the monitoring page.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hisbridge_core::hub::{self, report, schema, Target, TlsMode};
use hisbridge_core::statement::{self, Source};

use crate::exit::{Exit, Failure};

/// How to reach the hub's database.
#[derive(clap::Args, Clone)]
pub struct Db {
    /// postgresql://USER@HOST:PORT/DATABASE (a password in it is taken, but is better in --password-file).
    #[arg(long, env = "HISBRIDGE_HUB_DB", value_name = "URL")]
    db: String,
    /// A file holding the login's password alone.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// TLS to the database [default: disable to this PC, verify-full to any other]
    #[arg(long, value_enum)]
    tls: Option<TlsArg>,
    /// The CA certificate (PEM) the database's certificate is checked against [default: the system's].
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TlsArg {
    Disable,
    Require,
    VerifyFull,
}

impl Db {
    pub fn target(&self) -> Target {
        let tls = match self.tls {
            Some(TlsArg::Disable) => TlsMode::Disable,
            Some(TlsArg::Require) => TlsMode::Require,
            Some(TlsArg::VerifyFull) => TlsMode::VerifyFull,
            None => TlsMode::default_for(&self.db),
        };
        Target::from_url(&self.db, self.password_file.clone(), tls, self.ca_file.clone())
    }

    async fn connect(&self) -> Result<hub::Client> {
        self.target().connect().await.with_context(|| format!("connect to the hub {}", hub::redact(&self.db)))
    }
}

#[derive(clap::Subcommand)]
pub enum HubCmd {
    /// Create or bring up to date the hub's schema, roles and policies (as the database's owner).
    Migrate {
        #[command(flatten)]
        db: Db,
    },
    /// Create a login for a window's bridge, a reader (the monitoring page) or finance (reports
    /// that record their reconciliations), or set the password of an existing one. The password
    /// is taken from --password-out when that file exists, else made and written there.
    AddLogin {
        #[command(flatten)]
        db: Db,
        /// The login's name (lower-case letters, digits, _), e.g. w03 for window 3.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// The file with the login's password (for the bridge's `[hub] password_file`).
        #[arg(long, value_name = "FILE")]
        password_out: PathBuf,
    },
    /// The day across every window: totals by window, channel, terminal and hour, open items
    /// with their window. With --statement, the merchant's bill matched against every window's
    /// journal (exit 3 when there are differences).
    Report {
        #[command(flatten)]
        db: Db,
        /// The day, YYYY-MM-DD (default: today).
        #[arg(long)]
        date: Option<String>,
        /// Print JSON instead of the summary.
        #[arg(long)]
        json: bool,
        /// The merchant's bill: WeChat Pay, Alipay, or the POS export.
        #[arg(long)]
        statement: Option<PathBuf>,
        /// The bill's layout [default: told by its header line]
        #[arg(long, value_enum, requires = "statement")]
        source: Option<SourceArg>,
        /// Do not record the match on the hub (for the monitoring page's latest reconciliation).
        #[arg(long)]
        no_record: bool,
    },
    /// Every window as the hub last heard it: POS state, heartbeat age, paused, open items.
    Windows {
        #[command(flatten)]
        db: Db,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Serve the read-only monitoring page for IT and finance (see docs/hub.md).
    Serve(crate::hubserve::ServeArgs),
    /// Add a user of the monitoring page, or set a user's password (stored hashed).
    Passwd {
        /// The page's users file.
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// The user's name.
        #[arg(long)]
        user: String,
        /// Read the password from this file instead of asking.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Bridge,
    Reader,
    Finance,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SourceArg {
    #[value(alias = "weixin", alias = "wx")]
    Wechat,
    #[value(alias = "zfb")]
    Alipay,
    Pos,
}

pub fn main(cmd: HubCmd) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cmd))
}

async fn run(cmd: HubCmd) -> Result<()> {
    match cmd {
        HubCmd::Migrate { db } => {
            let mut client = db.connect().await?;
            let applied = schema::migrate(&mut client).await.context("migrate the hub")?;
            let v = schema::version(&client).await?;
            if applied.is_empty() {
                println!("hub schema is up to date (version {v})");
            } else {
                println!("hub schema migrated to version {v} (applied {applied:?})");
            }
            Ok(())
        }
        HubCmd::AddLogin { db, name, role, password_out } => {
            let client = db.connect().await?;
            let password = match std::fs::read_to_string(&password_out) {
                Ok(_) => hub::read_password(&password_out)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let p = new_password();
                    write_secret(&password_out, &p)?;
                    p
                }
                Err(e) => return Err(e).with_context(|| format!("read {}", password_out.display())),
            };
            let role = match role {
                RoleArg::Bridge => schema::Role::Bridge,
                RoleArg::Reader => schema::Role::Reader,
                RoleArg::Finance => schema::Role::Finance,
            };
            let created = schema::add_login(&client, &name, role, &password).await?;
            println!(
                "{} login {name} in {}; its password is in {}",
                if created { "created" } else { "updated" },
                role.group(),
                password_out.display()
            );
            Ok(())
        }
        HubCmd::Report { db, date, json, statement, source, no_record } => {
            // The bill is read and its layout told before the hub is asked anything.
            let bill = match &statement {
                Some(path) => {
                    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
                    let source = match source {
                        Some(SourceArg::Wechat) => Source::Wechat,
                        Some(SourceArg::Alipay) => Source::Alipay,
                        Some(SourceArg::Pos) => Source::Pos,
                        None => statement::detect(&bytes).with_context(|| format!("statement {}", path.display()))?,
                    };
                    Some((path, bytes, source))
                }
                None => None,
            };
            let date = date.unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%d").to_string());
            hisbridge_core::recon::pos_day(&date)?;
            let client = db.connect().await?;
            schema::check(&client).await?;
            let started = std::time::Instant::now();
            let day = report::day(&client, &date).await?;
            tracing::debug!(ms = started.elapsed().as_millis() as u64, orders = day.totals.sales, "hub report built");
            if json {
                println!("{}", serde_json::to_string_pretty(&day)?);
            } else {
                print!("{}", day.summary());
            }
            if let Some((path, bytes, source)) = bill {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let (m, note) = report::statement(&client, &date, source, &bytes, &name, !no_record)
                    .await
                    .with_context(|| format!("statement {}", path.display()))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&m)?);
                } else {
                    print!("{}", m.summary());
                }
                if let Some(n) = note {
                    eprintln!("{n}");
                }
                let n = m.differences.len();
                if n > 0 {
                    return Err(Failure::new(
                        Exit::Attention,
                        format!("{n} difference(s) between the bill and the windows' journals (listed above)"),
                    )
                    .into());
                }
            }
            Ok(())
        }
        HubCmd::Windows { db, json } => {
            let client = db.connect().await?;
            schema::check(&client).await?;
            let w = hisbridge_core::hub::monitor::windows(&client).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&w)?);
            } else {
                print!("{}", hisbridge_core::hub::monitor::render_windows(&w));
            }
            Ok(())
        }
        HubCmd::Serve(a) => crate::hubserve::serve(a).await,
        HubCmd::Passwd { users, user, password_file } => {
            let password = match password_file {
                Some(p) => hub::read_password(&p)?,
                None => crate::hubserve::ask_password(&user)?,
            };
            crate::hubserve::set_user(&users, &user, &password)?;
            println!("password of {user} set in {}", users.display());
            Ok(())
        }
    }
}

/// 24 characters from an alphabet without look-alikes: typed rarely, pasted often.
fn new_password() -> String {
    use rand::Rng;
    const A: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut r = rand::thread_rng();
    (0..24).map(|_| A[r.gen_range(0..A.len())] as char).collect()
}

/// A secret file, readable by its owner only where mode bits say so (on Windows the folder's
/// ACL decides, docs/security.md).
pub fn write_secret(path: &std::path::Path, text: &str) -> Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("create {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        std::fs::write(path, format!("{text}\r\n")).with_context(|| format!("create {}", path.display()))?;
    }
    Ok(())
}
