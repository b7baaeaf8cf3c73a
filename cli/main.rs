//! `hisbridge`: the command-line front end of the HIS Bridge core. Glue only.

mod check;
mod demo;
mod driver;
mod eventlog;
mod exit;
mod hub;
mod hubserve;
mod poscheck;
mod report;
mod service;
mod setup;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use hisbridge_core::amount::Amount;
use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::Key;
use hisbridge_core::his::{Instruction, InstructionKind};
use hisbridge_core::{hisclient, keyfile};

#[derive(Parser)]
#[command(
    name = "hisbridge",
    version,
    about = "HIS Bridge: HIS payment orders to a WeChat Pay / Alipay smart POS",
    after_help = "Exit status: 0 done; 1 failed (could not do its work); 2 wrong arguments; \
                  3 done, and IT must look (statement differences, journal history lost); \
                  4 a check found what would be refused; 5 his send/query/cancel: no final result in time; \
                  6 his send/query/cancel: a final result that is not what was asked (docs/install.md §8)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the bridge headless with a config file (service mode).
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the whole path on embedded defaults: temp folders, a new key, the POS simulator on a
    /// pseudo-terminal, sample orders in, their decrypted results printed.
    Demo,
    /// Run the POS simulator (for joint testing by HIS and POS vendors).
    SimPos(SimArgs),
    /// The journal's health: `check` tells whether it lost history; `accept` takes it as it is
    /// after IT has checked it (the bridge must be stopped).
    Journal {
        #[command(subcommand)]
        cmd: JournalCmd,
    },
    /// HIS test client: encrypt and drop instructions, wait for and decrypt results.
    His {
        #[command(subcommand)]
        cmd: HisCmd,
    },
    /// The day's reconciliation: totals by channel and terminal, open items, the POS's totals;
    /// writes the HIS file and the finance CSV, matches a WeChat Pay / Alipay / POS statement.
    /// Exits with status 3 when the statement shows differences.
    Report(report::ReportArgs),
    /// What the running bridge (service, tray app or `run`) says now: POS link, what needs a
    /// person, the last order, the hub's replication (how far behind). Exit 1 when no bridge runs.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the status as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a diagnostics archive for support: config (never the key), journal extract, logs.
    Diag {
        #[command(flatten)]
        config: ConfigArg,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// Another folder of log files to include (the data folder's `logs` is always taken).
        #[arg(long)]
        logs: Option<PathBuf>,
        /// Days of journal to include.
        #[arg(long, default_value_t = 7)]
        days: i64,
    },
    /// List serial ports (with the USB device behind each) and USB devices (with interfaces and
    /// endpoints), marking those that look like a POS and saying what to write in `[pos] port`.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prepare this PC (what the MSI runs after copying the programs): the data folder and its
    /// subfolders, the config from the given values (others kept), the key, folder permissions
    /// and, on Windows, the optional service. Empty values count as not given.
    Setup(setup::SetupCli),
    /// The bridge as a Windows service (install, uninstall, start, stop, status).
    Service {
        #[command(subcommand)]
        cmd: service::ServiceCmd,
    },
    /// The WinUSB driver package for an Android POS: write its INF (with the POS's own IDs),
    /// install a signed one.
    Driver {
        #[command(subcommand)]
        cmd: driver::DriverCmd,
    },
    /// The conformance kit for POS vendors: drive a POS through every clause of
    /// docs/pos-protocol.md and print pass or fail per clause (with the bytes of a failure).
    /// Exits 1 when a clause fails.
    PosCheck(poscheck::PosCheckArgs),
    /// The hospital hub in PostgreSQL: schema, logins, the hospital-wide report and bill match,
    /// the windows' state, the monitoring page (docs/hub.md).
    Hub {
        #[command(subcommand)]
        cmd: hub::HubCmd,
    },
    /// Set the IT password that guards the tray app's settings page (asked twice, or read from
    /// a file); only its Argon2id hash is written, to `[tray] it_password_hash` in the config.
    /// Run it as an administrator: the config file is IT's.
    ItPassword {
        #[command(flatten)]
        config: ConfigArg,
        /// Read the password from this file (the password alone in it) instead of asking.
        #[arg(long, value_name = "FILE", conflicts_with = "clear")]
        password_file: Option<PathBuf>,
        /// Remove the IT password: the config file's permissions alone guard the settings again.
        #[arg(long)]
        clear: bool,
    },
    /// Generate a new shared AES-256 key file.
    Keygen {
        /// Key id written into every envelope (1-32 of A-Z a-z 0-9 _ -).
        #[arg(long, default_value = "K1")]
        id: String,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `--config`, for every command that reads the bridge's config.
#[derive(clap::Args, Clone, Default)]
pub struct ConfigArg {
    /// The bridge's config file [default: the installed one: the registry's ConfigFile, then
    /// %ProgramData%\HISBridge\hisbridge.toml; on Linux /etc/hisbridge/hisbridge.toml]
    #[arg(long, short, env = exit::CONFIG_ENV, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    /// The config file to use (see `exit::config`).
    pub fn path(&self) -> Result<PathBuf> {
        exit::config(self.config.clone())
    }
}

#[derive(clap::Args)]
struct SimArgs {
    /// Serial port to serve on; without it a pseudo-terminal is created and its path printed.
    #[arg(long)]
    port: Option<String>,
    /// With a pseudo-terminal: also make this symlink to it (a stable name for the config).
    #[arg(long)]
    link: Option<PathBuf>,
    /// The device ID the simulated POS reports in HELLO.
    #[arg(long, default_value = "POS-0001")]
    device_id: String,
    /// Comma-separated outcomes for the next sales (paid-wechat, paid-alipay, paying-wechat,
    /// paying-alipay, declined, insufficient, no-scan, paying-forever, silent).
    #[arg(long)]
    script: Option<String>,
    /// Keep the ledger as JSON in this file.
    #[arg(long)]
    ledger: Option<PathBuf>,
    /// How long the simulated patient takes to show a payment code (ms).
    #[arg(long, default_value_t = 150)]
    scan_ms: u64,
    /// How long a payment that needs the patient's confirmation takes (ms).
    #[arg(long, default_value_t = 600)]
    paying_ms: u64,
    /// A deliberately broken POS (for `hisbridge pos-check` and HIS tests), comma-separated:
    /// wrong-amount (every final RESULT one fen off), missing-fields (no pay_no or channel),
    /// swallow-results (no RESULT, only QUERY tells), query-lag-ms=N (QUERY blind for N ms).
    #[arg(long)]
    lie: Option<String>,
}

#[derive(Subcommand)]
enum JournalCmd {
    /// Whether the journal holds everything the last run wrote (its schema version, orders, open items).
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Take the journal as it is now: the bridge takes orders again at its next start.
    Accept {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(clap::Args)]
struct HisCommon {
    #[command(flatten)]
    config: ConfigArg,
    /// The software terminal ID the instruction comes from.
    #[arg(long)]
    terminal: String,
    /// The HIS order number.
    #[arg(long)]
    order: String,
    /// For a refund: its refund number (one order may have several refunds).
    #[arg(long)]
    refund_no: Option<String>,
    /// Seconds to wait for the final result.
    #[arg(long, default_value_t = 180)]
    wait: u64,
    /// Print only JSON on stdout: the result, or `{"error": {...}}` with the exit status.
    #[arg(long)]
    json: bool,
    /// With the folder channel: when no bridge has taken the instruction within `--wait`, take
    /// it back out of the inbox (else it stays there and is carried out when a bridge starts).
    #[arg(long)]
    withdraw_on_timeout: bool,
    /// How to reach the bridge: the drop folders, or the localhost socket (`[socket] port`).
    #[arg(long, value_enum, default_value_t = Channel::Folder)]
    channel: Channel,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Channel {
    Folder,
    Socket,
}

#[derive(Subcommand)]
enum HisCmd {
    /// Collect (+12.50) or refund (-3.00, with --refund-no).
    Send {
        #[command(flatten)]
        c: HisCommon,
        /// What the patient pays now: + collects, - refunds (e.g. +12.50, -3.00).
        #[arg(long, allow_hyphen_values = true)]
        amount: String,
        /// A description shown on the POS (e.g. 门诊缴费).
        #[arg(long)]
        description: Option<String>,
    },
    /// Ask for the current result of an order.
    Query {
        #[command(flatten)]
        c: HisCommon,
    },
    /// Cancel an order that is not finished.
    Cancel {
        #[command(flatten)]
        c: HisCommon,
    },
    /// Decrypt a file the bridge wrote for the HIS (a result or a reconciliation file) and print it.
    Open {
        #[command(flatten)]
        config: ConfigArg,
        /// The file to open (`.res`, `RECON-*.res`).
        file: PathBuf,
    },
    /// Check instruction files written by an HIS and explain exactly what is wrong with each.
    /// Exits 4 when a file would be refused.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON: each file with its problems (error code and text).
        #[arg(long)]
        json: bool,
        /// `.ord` files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Take instruction files back out of the inbox before a bridge has taken them (nothing is
    /// charged for a withdrawn file). A file the bridge has taken already is not touched.
    Withdraw {
        #[command(flatten)]
        config: ConfigArg,
        /// `.ord` file names (or paths) in the inbox.
        #[arg(required = true)]
        files: Vec<String>,
    },
}

/// Log times in local time with the offset (the tray app's log too): one time zone everywhere.
struct LocalTime;

impl tracing_subscriber::fmt::time::FormatTime for LocalTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", chrono::Local::now().format("%Y-%m-%dT%H:%M:%S%.3f%:z"))
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (cmd.exe shows the escapes as
/// garbage when the output is redirected).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HISBRIDGE_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(LocalTime)
        .with_ansi(colour())
        .with_writer(std::io::stderr)
        .init();
}

/// Logs to the log folder's `<name>.log` (rolled over by day and size, `hisbridge_core::logs`),
/// and to stderr as well with `also_stderr` (`hisbridge run` under a terminal or systemd). When
/// the file cannot be opened, stderr alone, saying why.
pub fn init_file_logging(logs: &hisbridge_core::config::Logs, name: &str, also_stderr: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = || tracing_subscriber::EnvFilter::try_from_env("HISBRIDGE_LOG").unwrap_or_else(|_| "info".into());
    use tracing_subscriber::Layer;
    fn stderr<S>() -> impl tracing_subscriber::Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        tracing_subscriber::fmt::layer()
            .with_timer(LocalTime)
            .with_ansi(colour())
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::try_from_env("HISBRIDGE_LOG").unwrap_or_else(|_| "info".into()))
    }
    match hisbridge_core::logs::LogFile::open(logs, name) {
        Ok(f) => {
            let file = tracing_subscriber::fmt::layer()
                .with_timer(LocalTime)
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(f))
                .with_filter(filter());
            let _ = tracing_subscriber::registry().with(file).with(also_stderr.then(stderr)).try_init();
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr()).try_init();
            tracing::warn!("cannot write the log file in {}: {e}", logs.folder.display());
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The service and `run` log to their files, set up once their config is read.
    if !matches!(cli.cmd, Cmd::Service { cmd: service::ServiceCmd::Run { .. } } | Cmd::Run { .. }) {
        init_logging();
    }
    match dispatch(cli.cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => std::process::ExitCode::from(exit::report(&e) as u8),
    }
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Setup(a) => setup::run(a),
        Cmd::Service { cmd } => service::main(cmd),
        Cmd::Run { config } => run(config.path()?),
        Cmd::Demo => demo::run(),
        Cmd::SimPos(a) => sim_pos(a),
        Cmd::Journal { cmd } => journal(cmd),
        Cmd::His { cmd } => his(cmd),
        Cmd::Report(a) => report::run(a),
        Cmd::Status { config, json } => status(&config.path()?, json),
        Cmd::Diag { config, out, logs, days } => {
            let config = config.path()?;
            let cfg = Config::load(&config)?;
            let status = serde_json::json!({
                "version": env!("CARGO_PKG_VERSION"),
                "os": std::env::consts::OS,
                "pos_port": cfg.pos.port,
                "device_id": cfg.pos.device_id,
                "key_id": keyfile::load(&cfg.key_file).map(|k| k.id().to_string()).map_err(|e| e.to_string()),
            });
            let names = hisbridge_core::diag::write_archive(&cfg, &config, logs.as_deref(), &status, days, &out)?;
            println!("wrote {} ({} entries)", out.display(), names.len());
            Ok(())
        }
        Cmd::Driver { cmd } => driver::run(cmd),
        Cmd::Hub { cmd } => hub::main(cmd),
        Cmd::PosCheck(a) => poscheck::run(a),
        Cmd::Devices { json } => {
            let found = hisbridge_core::transport::discover::find_all();
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", hisbridge_core::transport::discover::render(&found));
            }
            Ok(())
        }
        Cmd::ItPassword { config, password_file, clear } => {
            let path = config.path()?;
            Config::load(&path)?;
            let hash = if clear {
                None
            } else {
                let password = match password_file {
                    Some(p) => hisbridge_core::password::read_file(&p)
                        .with_context(|| format!("cannot read the password file {}", p.display()))?,
                    None => hubserve::ask_password("the settings (IT)")?,
                };
                Some(hisbridge_core::password::hash(&password)?)
            };
            hisbridge_core::settings::set_it_password(&path, hash.as_deref())?;
            if clear {
                println!(
                    "IT password removed from {}: the settings are guarded by the file's permissions alone",
                    path.display()
                );
            } else {
                println!(
                    "IT password set in {} (its hash only); the tray app asks for it before any change",
                    path.display()
                );
            }
            Ok(())
        }
        Cmd::Keygen { id, out } => {
            let key = Key::generate(&id).context("key id")?;
            keyfile::write_new(&out, &key)?;
            println!("wrote key {id} to {}", out.display());
            Ok(())
        }
    }
}

/// The running bridge's published status, as text or JSON.
pub fn status(config: &std::path::Path, json: bool) -> Result<()> {
    use hisbridge_core::instance;
    let cfg = Config::load(config)?;
    let running = instance::is_held(&cfg.journal);
    let st = instance::read_status(&instance::status_path(&cfg.journal)).filter(|_| running);
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "running": running, "status": st }))?);
    }
    let Some(s) = st else {
        let f = exit::Failure::new(exit::Exit::Failed, format!("no bridge is running with {}", config.display()));
        return Err(if json { f.silent() } else { f }.into());
    };
    if json {
        return Ok(());
    }
    println!("bridge: {} mode, process {}, since {}", s.mode, s.pid, s.since);
    println!(
        "POS: {} on {}{}{}",
        s.link,
        s.port,
        s.device_id.as_deref().map(|d| format!(", device {d}")).unwrap_or_default(),
        s.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    );
    if s.attention.is_empty() {
        println!("attention: none");
    }
    for (what, detail) in &s.attention {
        println!("attention: {what}: {detail}");
    }
    if let Some(o) = &s.last_order {
        println!("last order: {} {} {}", o.key, o.amount, o.state);
    }
    match (&s.hub, &cfg.hub) {
        (Some(h), _) => println!(
            "hub: {}, {} event(s) behind{}{}",
            h.state,
            h.behind_events,
            h.last_ok.as_deref().map(|t| format!(", last sent {t}")).unwrap_or_default(),
            h.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        ),
        (None, Some(_)) => println!("hub: configured; the running bridge started before it was (restart it)"),
        (None, None) => println!("hub: not configured"),
    }
    Ok(())
}

fn journal(cmd: JournalCmd) -> Result<()> {
    use hisbridge_core::journal::{Integrity, Journal};
    let (JournalCmd::Check { config } | JournalCmd::Accept { config }) = &cmd;
    let cfg = Config::load(&config.path()?)?;
    // Never beside a running bridge: it holds the journal and its seal.
    let _lock = hisbridge_core::instance::acquire(&cfg.journal)
        .context("stop the bridge (the service or the tray app) first")?;
    let mut j = Journal::open(&cfg.journal)?;
    match cmd {
        JournalCmd::Check { .. } => {
            let open = j.open_orders()?.len();
            let integrity = j.check_seal()?;
            println!("journal {} (schema {})", cfg.journal.display(), j.schema_version()?);
            println!("open orders: {open}");
            match integrity {
                Integrity::Intact | Integrity::Sealed => {
                    println!("history: complete");
                    Ok(())
                }
                Integrity::Lost(why) => {
                    println!("history: LOST: {why}");
                    Err(exit::Failure::new(
                        exit::Exit::Attention,
                        "the journal lost history: the bridge takes no new orders until `hisbridge journal accept` after IT has checked it",
                    )
                    .into())
                }
            }
        }
        JournalCmd::Accept { .. } => {
            j.accept_history()?;
            println!("journal accepted as it is; the bridge takes orders at its next start");
            Ok(())
        }
    }
}

fn run(config: PathBuf) -> Result<()> {
    let cfg = Config::load(&config)?;
    init_file_logging(&cfg.logs, "hisbridge-run", true);
    let key = keyfile::load(&cfg.key_file)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // Listening for SIGTERM before the bridge starts: one sent as soon as the journal is
        // held (what a supervisor sees as "started") is a graceful stop, not a kill.
        let term = terminated()?;
        let bridge = Bridge::start_as(&cfg, key, "run")?;
        tracing::info!(inbox = %cfg.folders.inbox.display(), outbox = %cfg.folders.outbox.display(), port = cfg.pos.port, "HIS Bridge running");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("stopping"),
            _ = term => tracing::info!("stopping (SIGTERM)"),
            _ = bridge.engine => bail!("engine stopped"),
        }
        Ok(())
    })
}

/// SIGTERM (systemd, `kill`): a stop like Ctrl-C, listened for from the call on. Never on
/// Windows, whose service has its own.
#[cfg(unix)]
fn terminated() -> Result<impl std::future::Future<Output = ()>> {
    let mut s = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        s.recv().await;
    })
}

#[cfg(not(unix))]
fn terminated() -> Result<impl std::future::Future<Output = ()>> {
    Ok(std::future::pending::<()>())
}

fn sim_pos(a: SimArgs) -> Result<()> {
    let mut cfg = hisbridge_sim::SimConfig {
        device_id: a.device_id,
        scan_delay: Duration::from_millis(a.scan_ms),
        paying_delay: Duration::from_millis(a.paying_ms),
        ledger_file: a.ledger,
        ..Default::default()
    };
    for lie in a.lie.as_deref().unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match lie.split_once('=') {
            None if lie == "wrong-amount" => cfg.lies.wrong_amounts = u32::MAX,
            None if lie == "missing-fields" => cfg.lies.missing_fields = u32::MAX,
            None if lie == "swallow-results" => cfg.lies.swallowed_results = u32::MAX,
            Some(("query-lag-ms", ms)) => {
                cfg.lies.query_lag = Duration::from_millis(ms.parse().with_context(|| format!("--lie {lie}"))?)
            }
            _ => bail!("unknown --lie {lie:?} (wrong-amount, missing-fields, swallow-results, query-lag-ms=N)"),
        }
    }
    if let Some(s) = a.script {
        for item in s.split(',').filter(|s| !s.is_empty()) {
            cfg.script.push_back(
                hisbridge_sim::Outcome::parse(item.trim()).with_context(|| format!("unknown outcome {item:?}"))?,
            );
        }
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    match a.port {
        Some(port) => {
            let mut p = serialport::new(&port, 115_200)
                .timeout(Duration::from_millis(5))
                .open()
                .with_context(|| format!("open {port}"))?;
            println!("POS simulator serving on {port}");
            let pos = hisbridge_sim::Pos::new(cfg, Default::default());
            hisbridge_sim::serve(&mut p, pos, Default::default(), &stop);
            Ok(())
        }
        None => sim_on_pty(cfg, a.link),
    }
}

#[cfg(unix)]
fn sim_on_pty(cfg: hisbridge_sim::SimConfig, link: Option<PathBuf>) -> Result<()> {
    let sim = hisbridge_sim::spawn_on_pty(cfg)?;
    println!("POS simulator on {}", sim.port_path());
    if let Some(l) = link {
        let _ = std::fs::remove_file(&l);
        std::os::unix::fs::symlink(sim.port_path(), &l)?;
        println!("linked {} -> {}", l.display(), sim.port_path());
    }
    println!("pid {} (SIGUSR1 restarts the POS app: link state and memory lost, ledger kept)", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut usr1 = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => return r,
                _ = usr1.recv() => {
                    sim.faults.restart.store(true, std::sync::atomic::Ordering::SeqCst);
                    println!("restarting the POS app");
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(not(unix))]
fn sim_on_pty(_: hisbridge_sim::SimConfig, _: Option<PathBuf>) -> Result<()> {
    bail!("pseudo-terminals exist on Linux only; pass --port COMx (a virtual null-modem pair)")
}

fn his(cmd: HisCmd) -> Result<()> {
    let (c, kind, amount, description) = match cmd {
        HisCmd::Check { config, json, files } => return check::run(&config.path()?, &files, json),
        HisCmd::Withdraw { config, files } => return withdraw(&config.path()?, &files),
        HisCmd::Open { config, file } => {
            let cfg = Config::load(&config.path()?)?;
            let key = keyfile::load(&cfg.key_file)?;
            let bytes = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            let plain = key
                .open(hisbridge_core::envelope::Direction::ToHis, &bytes)
                .or_else(|e| match e {
                    hisbridge_core::envelope::EnvelopeError::TooLarge => key.open_report(&bytes),
                    e => Err(e),
                })
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let v: serde_json::Value = serde_json::from_slice(&plain).context("the plaintext is not JSON")?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        HisCmd::Send { c, amount, description } => {
            let a = match Amount::parse(&amount) {
                Ok(a) => a,
                Err(e) => {
                    let f = exit::Failure::new(exit::Exit::Failed, format!("--amount {amount:?}: {e}"));
                    return Err(f.json_if(c.json, serde_json::json!({})).into());
                }
            };
            (c, InstructionKind::Order, Some(a), description)
        }
        HisCmd::Query { c } => (c, InstructionKind::Query, None, None),
        HisCmd::Cancel { c } => (c, InstructionKind::Cancel, None, None),
    };
    let json = c.json;
    // With --json every failure is a JSON object on stdout, whatever its cause.
    let as_json = |e: anyhow::Error| -> anyhow::Error {
        match e.downcast::<exit::Failure>() {
            Ok(f) if f.json.is_some() || !json => f.into(),
            Ok(f) => f.json_if(true, serde_json::json!({})).into(),
            Err(e) => {
                exit::Failure::new(exit::Exit::Failed, exit::message(&e)).json_if(json, serde_json::json!({})).into()
            }
        }
    };
    send_and_wait(c, kind, amount, description).map_err(as_json)
}

fn send_and_wait(
    c: HisCommon,
    kind: InstructionKind,
    amount: Option<Amount>,
    description: Option<String>,
) -> Result<()> {
    use hisbridge_core::his::Status;
    use hisbridge_core::hisclient::ClientError;
    let cfg = Config::load(&c.config.path()?)?;
    let key = keyfile::load(&cfg.key_file)?;
    let ins = Instruction {
        kind,
        terminal_id: c.terminal,
        order_no: c.order,
        refund_no: c.refund_no,
        amount,
        operator: None,
        description,
        sent_at: None,
    };
    // Validate as the bridge would, so a typo is explained here and not in a result file.
    Instruction::parse(ins.to_json().as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let wait = Duration::from_secs(c.wait);
    let r = match c.channel {
        Channel::Folder => {
            let stem = hisclient::new_stem(&ins);
            hisclient::send(&cfg.folders.inbox, &key, &ins, &stem)?;
            if !c.json {
                eprintln!("wrote {stem}.ord; waiting for {stem}.res");
            }
            match hisclient::wait_final(&cfg.folders.outbox, &key, &stem, wait) {
                Ok(r) => r,
                Err(ClientError::Timeout { last, .. }) => {
                    return Err(folder_timeout(&cfg, &stem, &last, c.wait, c.withdraw_on_timeout, c.json).into())
                }
                Err(e) => return Err(e.into()),
            }
        }
        Channel::Socket => {
            let Some(sock) = &cfg.socket else { bail!("the config has no [socket] port: the socket channel is off") };
            let mut client = hisclient::SocketClient::connect(sock.port, key)
                .with_context(|| format!("connect to 127.0.0.1:{}", sock.port))?;
            if !c.json {
                eprintln!("sent on 127.0.0.1:{}; waiting for the final result", sock.port);
            }
            match client.call(&ins, wait) {
                Ok(r) => r,
                Err(ClientError::Timeout { last, .. }) => {
                    let f = exit::Failure::new(
                        exit::Exit::Timeout,
                        format!(
                            "no final result within {} s (last seen: {last}); the bridge has the instruction and carries it \
                             out: do not send it again, ask with `hisbridge his query` for the same order",
                            c.wait
                        ),
                    );
                    return Err(f.json_if(c.json, serde_json::json!({ "last": last })).into());
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if r.device_id != cfg.pos.device_id {
        bail!("result names device {} but the configured POS is {}", r.device_id, cfg.pos.device_id);
    }
    println!("{}", serde_json::to_string_pretty(&r)?);
    let done = match kind {
        InstructionKind::Order => matches!(r.status, Status::Success | Status::Refunded),
        InstructionKind::Cancel => matches!(r.status, Status::Cancelled | Status::Reversed),
        InstructionKind::Query => r.status != Status::Rejected,
    };
    if !done {
        // The result is on stdout already: the exit status alone says it is not what was asked.
        let why = r.error_message.clone().or(r.error_code.clone()).unwrap_or_default();
        let status = serde_json::to_value(r.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let order = r.order_no.as_deref().unwrap_or("?");
        let f =
            exit::Failure::new(exit::Exit::NotDone, format!("order {order}: {status} {why}").trim_end().to_string());
        return Err(if c.json { f.silent() } else { f }.into());
    }
    Ok(())
}

/// No final result within `--wait` over the folder channel: what became of the `.ord`, and what
/// to do about it. A file no bridge has taken is carried out when one starts, so the message
/// says so and the file can be withdrawn (here with `--withdraw-on-timeout`, on a terminal by
/// answering the question, later with `hisbridge his withdraw`).
fn folder_timeout(cfg: &Config, stem: &str, last: &str, secs: u64, withdraw: bool, json: bool) -> exit::Failure {
    use std::io::IsTerminal;
    let name = format!("{stem}.{}", hisbridge_core::folders::ORDER_EXT);
    let path = cfg.folders.inbox.join(&name);
    let extra = |in_inbox: bool, withdrawn: bool| serde_json::json!({ "file": name, "in_inbox": in_inbox, "withdrawn": withdrawn, "last": last });
    if !path.exists() {
        let f = exit::Failure::new(
            exit::Exit::Timeout,
            format!(
                "no final result within {secs} s (last seen: {last}); the bridge has taken {name} and its final result \
                 will be written to {}: do not send it again",
                cfg.folders.outbox.join(format!("{stem}.{}", hisbridge_core::folders::RESULT_EXT)).display()
            ),
        );
        return f.json_if(json, extra(false, false));
    }
    let ask = !withdraw && !json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let withdraw = withdraw || {
        ask && {
            eprint!(
                "no bridge has taken {name} within {secs} s (is the bridge running?). It stays in the inbox and is \
                 carried out when a bridge starts. Withdraw it now? [y/N] "
            );
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            matches!(answer.trim(), "y" | "Y" | "yes" | "是")
        }
    };
    if withdraw {
        return match withdraw_one(&path) {
            Ok(true) => exit::Failure::new(
                exit::Exit::Timeout,
                format!("no bridge took {name} within {secs} s; withdrawn from the inbox: nothing was charged"),
            )
            .json_if(json, extra(false, true)),
            Ok(false) => exit::Failure::new(
                exit::Exit::Timeout,
                format!(
                    "no final result within {secs} s; the bridge took {name} just now, so it was not withdrawn: \
                     its final result follows, do not send it again"
                ),
            )
            .json_if(json, extra(false, false)),
            Err(e) => exit::Failure::new(
                exit::Exit::Timeout,
                format!(
                    "no bridge took {name} within {secs} s, and it could not be withdrawn: {e}; it stays in the inbox"
                ),
            )
            .json_if(json, extra(true, false)),
        };
    }
    exit::Failure::new(
        exit::Exit::Timeout,
        format!(
            "no bridge took {name} within {secs} s (is the bridge running?): it is still in {} and is carried out \
             when a bridge starts; to cancel it: hisbridge his withdraw {name}",
            cfg.folders.inbox.display()
        ),
    )
    .json_if(json, extra(true, false))
}

/// Removes an `.ord` from the inbox unless a bridge has taken it: `Ok(false)` when it is gone
/// already. The bridge takes a file by renaming it out of the inbox, so exactly one of the two
/// succeeds.
fn withdraw_one(path: &std::path::Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn withdraw(config: &std::path::Path, files: &[String]) -> Result<()> {
    let cfg = Config::load(config)?;
    let mut kept = 0;
    for f in files {
        let name = std::path::Path::new(f).file_name().and_then(|n| n.to_str()).unwrap_or(f);
        if !name.ends_with(&format!(".{}", hisbridge_core::folders::ORDER_EXT)) {
            bail!("{name}: only instruction files (.ord) are withdrawn");
        }
        match withdraw_one(&cfg.folders.inbox.join(name)) {
            Ok(true) => println!("withdrawn: {name} (nothing was charged)"),
            Ok(false) => {
                kept += 1;
                println!("not in the inbox: {name} (a bridge has taken it, or it never was there; its result says what became of it)");
            }
            Err(e) => bail!("{name}: {e}"),
        }
    }
    if kept > 0 {
        return Err(
            exit::Failure::new(exit::Exit::Failed, format!("{kept} of {} file(s) not withdrawn", files.len())).into()
        );
    }
    Ok(())
}
