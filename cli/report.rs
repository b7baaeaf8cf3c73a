//! `hisbridge report`: the day's reconciliation in the terminal, as files, and against a statement.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hisbridge_core::config::Config;
use hisbridge_core::journal::Journal;
use hisbridge_core::keyfile;
use hisbridge_core::recon::{self, DayReport};
use hisbridge_core::statement::{self, Source};

use crate::exit::{Exit, Failure};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    config: crate::ConfigArg,
    /// The day, YYYY-MM-DD (default: today).
    #[arg(long)]
    date: Option<String>,
    /// Also write the day's encrypted file (and CSV, when `csv_folder` is set) as the scheduler does.
    #[arg(long)]
    write: bool,
    /// Write the finance CSV to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Print the report as JSON (the plaintext of the HIS file) instead of the summary.
    #[arg(long)]
    json: bool,
    /// Match a statement file against the day: a WeChat Pay bill, an Alipay bill, or the POS's
    /// settlement export.
    #[arg(long)]
    statement: Option<PathBuf>,
    /// The statement's layout: a WeChat Pay bill, an Alipay business detail file, the POS's
    /// export [default: told by its header line]
    #[arg(long, value_enum, requires = "statement")]
    source: Option<SourceArg>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SourceArg {
    #[value(alias = "weixin", alias = "wx")]
    Wechat,
    #[value(alias = "zfb")]
    Alipay,
    Pos,
}

impl From<SourceArg> for Source {
    fn from(s: SourceArg) -> Self {
        match s {
            SourceArg::Wechat => Source::Wechat,
            SourceArg::Alipay => Source::Alipay,
            SourceArg::Pos => Source::Pos,
        }
    }
}

pub fn run(a: ReportArgs) -> Result<()> {
    let cfg = Config::load(&a.config.path()?)?;
    // The statement is read before anything is printed: a wrong file is said at once.
    let statement = match &a.statement {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            let source = match a.source {
                Some(s) => s.into(),
                None => statement::detect(&bytes).with_context(|| format!("statement {}", path.display()))?,
            };
            Some((path, bytes, source))
        }
        None => None,
    };
    let date = a.date.unwrap_or_else(|| chrono::Local::now().format("%Y-%m-%d").to_string());
    recon::pos_day(&date)?;
    if !cfg.journal.exists() {
        anyhow::bail!("no journal at {}: the bridge has not run with this config yet", cfg.journal.display());
    }
    let journal = Journal::open(&cfg.journal).with_context(|| format!("open {}", cfg.journal.display()))?;
    let started = std::time::Instant::now();
    let report = DayReport::build(&journal, &date, &cfg.pos.device_id)?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "report built");
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.summary());
    }
    if let Some(path) = &a.csv {
        std::fs::write(path, report.to_csv()).with_context(|| format!("write {}", path.display()))?;
        eprintln!("CSV written: {}", path.display());
    }
    if a.write {
        let key = keyfile::load(&cfg.key_file)?;
        let paths =
            recon::write_files(&report, &key, &cfg.reconciliation.folder, cfg.reconciliation.csv_folder.as_deref())?;
        for p in paths {
            eprintln!("written: {}", p.display());
        }
    }
    if let Some((path, bytes, source)) = statement {
        let m = statement::match_file(&journal, &date, source, &bytes)
            .with_context(|| format!("statement {}", path.display()))?;
        if a.json {
            println!("{}", serde_json::to_string_pretty(&m)?);
        } else {
            print!("{}", m.summary());
        }
        // At a hospital with several windows the merchant's bill holds every window's payments:
        // entries no order of this journal knows are most likely other windows'.
        let strangers = m
            .differences
            .iter()
            .filter(|d| d.kind == statement::DiffKind::MissingInJournal && d.order_id.is_none())
            .count();
        if strangers > 0 {
            let hint = format!(
                "{strangers} entr{} of the bill match no order of this window (device {}). Where other windows take                  payments for the same merchant, the bill holds theirs too: match the whole bill against every                  window on the hub with `hisbridge hub report --statement {}` (docs/hub.md){}.",
                if strangers == 1 { "y" } else { "ies" },
                cfg.pos.device_id,
                path.display(),
                if cfg.hub.is_some() { "" } else { "; this bridge sends no data to a hub yet ([hub] in its config)" }
            );
            if a.json {
                eprintln!("{hint}");
            } else {
                println!("{hint}");
            }
        }
        let n = m.differences.len();
        if n > 0 {
            // A distinct exit status lets a finance script tell "differences found" from "failed".
            return Err(Failure::new(
                Exit::Attention,
                format!("{n} difference(s) between the statement and the journal (listed above)"),
            )
            .into());
        }
    }
    Ok(())
}
