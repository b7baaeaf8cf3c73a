//! The diagnostics archive for support: what IT sends when something is wrong. It holds the
//! config (never the key), the POS link state, a journal extract of the last days and the logs;
//! no key material and no payment codes (the bridge never sees those).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::journal::Journal;

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("cannot write the archive {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write the archive: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

/// Extra facts the front end knows (POS status, versions), written as `status.json`.
pub type Status = serde_json::Value;

const MAX_LOG_BYTES: u64 = 20 * 1024 * 1024;

fn csv_line(cells: &[String]) -> String {
    let mut s = cells.iter().map(|c| crate::recon::csv_cell(c)).collect::<Vec<_>>().join(",");
    s.push_str("\r\n");
    s
}

/// A log file's name: `*.log`, or a rotated `*.log.N` / `*.log.YYYY-MM-DD`.
fn is_log_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".log") || lower.contains(".log.")
}

/// Writes `out` (a .zip). The log folder (`[logs] folder`) and `extra_logs`, when given (the
/// tray app's own folder where it cannot write the data folder's), contribute their newest files
/// up to 20 MB in all.
pub fn write_archive(
    cfg: &Config,
    config_path: &Path,
    extra_logs: Option<&Path>,
    status: &Status,
    days: i64,
    out: &Path,
) -> Result<Vec<String>, DiagError> {
    let io = |source| DiagError::Io { path: out.to_path_buf(), source };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut names = Vec::new();
    let mut add = |zip: &mut zip::ZipWriter<std::fs::File>, name: &str, bytes: &[u8]| -> Result<(), DiagError> {
        zip.start_file(name, opts)?;
        zip.write_all(bytes).map_err(io)?;
        names.push(name.to_string());
        Ok(())
    };
    let readme = format!(
        "HIS Bridge diagnostics / 诊断包\ncreated: {}\nversion: {}\nconfig: {}\n\n\
         Contents: config.toml (the key file is NOT included), status.json, journal extract of the last {days} days \
         (orders.csv, events.csv, rejects.csv), logs/.\n包含：配置（不含密钥）、状态、最近 {days} 天的流水摘录、日志。\n",
        crate::journal::now_str(),
        env!("CARGO_PKG_VERSION"),
        config_path.display()
    );
    add(&mut zip, "README.txt", readme.as_bytes())?;
    let config_text = std::fs::read_to_string(config_path).unwrap_or_else(|e| format!("# cannot read: {e}\n"));
    add(&mut zip, "config.toml", config_text.as_bytes())?;
    add(&mut zip, "status.json", serde_json::to_string_pretty(status).unwrap_or_default().as_bytes())?;

    if cfg.journal.exists() {
        let j = Journal::open(&cfg.journal)?;
        let today = chrono::Local::now().date_naive();
        let from = (today - chrono::Days::new(days.max(0) as u64)).format("%Y-%m-%d").to_string();
        let rows = j.orders_between(&from, &today.format("%Y-%m-%d").to_string())?;
        let mut orders = csv_line(
            &[
                "id",
                "key",
                "terminal_id",
                "kind",
                "amount_fen",
                "state",
                "attempt",
                "pos_ref",
                "device_id",
                "pay_order_no",
                "channel",
                "pos_code",
                "pos_message",
                "error_code",
                "created_at",
                "finished_at",
                "result_written_at",
            ]
            .map(String::from),
        );
        let mut events = csv_line(&["order_id", "key", "at", "state", "detail"].map(String::from));
        let mut all: std::collections::BTreeMap<i64, crate::journal::OrderRow> =
            rows.into_iter().map(|o| (o.id, o)).collect();
        for o in j.open_items(&today.format("%Y-%m-%d").to_string())? {
            all.insert(o.id, o);
        }
        for o in all.values() {
            let opt = |v: &Option<String>| v.clone().unwrap_or_default();
            orders.push_str(&csv_line(&[
                o.id.to_string(),
                o.key.clone(),
                o.terminal_id.clone(),
                o.kind.as_str().to_string(),
                o.amount_fen.to_string(),
                o.state.as_str().to_string(),
                o.attempt.to_string(),
                opt(&o.pos_ref),
                opt(&o.device_id),
                opt(&o.pay_order_no),
                opt(&o.channel),
                opt(&o.pos_code),
                opt(&o.pos_message),
                opt(&o.error_code),
                o.created_at.clone(),
                opt(&o.finished_at),
                opt(&o.result_written_at),
            ]));
            if !o.state.is_final() || o.attempt > 1 {
                for (at, state, detail) in j.events(o.id)? {
                    events.push_str(&csv_line(&[
                        o.id.to_string(),
                        o.key.clone(),
                        at,
                        state,
                        detail.unwrap_or_default(),
                    ]));
                }
            }
        }
        add(&mut zip, "journal/orders.csv", orders.as_bytes())?;
        add(&mut zip, "journal/events.csv", events.as_bytes())?;
        let mut rejects = csv_line(&["source", "order_no", "error_code"].map(String::from));
        for (source, order_no, code) in j.rejects()? {
            rejects.push_str(&csv_line(&[source, order_no.unwrap_or_default(), code]));
        }
        add(&mut zip, "journal/rejects.csv", rejects.as_bytes())?;
    }

    let mut dirs: Vec<(PathBuf, String)> = vec![(cfg.logs.folder.clone(), "logs".into())];
    if let Some(extra) = extra_logs {
        let same =
            std::fs::canonicalize(extra).ok().is_some_and(|e| std::fs::canonicalize(&cfg.logs.folder).ok() == Some(e));
        if !same {
            dirs.push((extra.to_path_buf(), "logs/more".into()));
        }
    }
    {
        // Log files only, whatever folder is named: never the key, the journal or this archive.
        let never: Vec<PathBuf> = [cfg.key_file.clone(), cfg.journal.clone(), out.to_path_buf()]
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let key_bytes = std::fs::read(&cfg.key_file).ok().filter(|b| b.len() >= 16);
        let mut logs: Vec<(std::time::SystemTime, PathBuf, u64, &str)> = Vec::new();
        for (dir, prefix) in &dirs {
            logs.extend(std::fs::read_dir(dir).into_iter().flat_map(|rd| {
                rd.flatten().filter_map(|e| {
                    let m = e.metadata().ok()?;
                    if !m.is_file() || !is_log_name(&e.file_name().to_string_lossy()) {
                        return None;
                    }
                    let real = std::fs::canonicalize(e.path()).ok()?;
                    if never.iter().any(|n| real == *n || real.to_string_lossy().starts_with(&*n.to_string_lossy())) {
                        return None;
                    }
                    Some((m.modified().ok()?, e.path(), m.len(), prefix.as_str()))
                })
            }));
        }
        logs.sort_by_key(|l| std::cmp::Reverse(l.0));
        let mut total = 0;
        // The log folder's files are `logs/<name>`; another folder's too, unless the log folder
        // has a file of that name (then `logs/more/<name>`).
        let primary: std::collections::HashSet<String> = logs
            .iter()
            .filter(|l| l.3 == "logs")
            .filter_map(|l| l.1.file_name().and_then(|n| n.to_str()).map(String::from))
            .collect();
        for (_, path, len, prefix) in logs {
            if total + len > MAX_LOG_BYTES {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path) {
                // A copy of the key under a log's name is left out too.
                if key_bytes.as_ref().is_some_and(|k| bytes.windows(k.len()).any(|w| w == k.as_slice())) {
                    continue;
                }
                total += len;
                let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("log");
                let name = match prefix == "logs" || !primary.contains(file) {
                    true => format!("logs/{file}"),
                    false => format!("{prefix}/{file}"),
                };
                add(&mut zip, &name, &bytes)?;
            }
        }
    }
    zip.finish()?;
    Ok(names)
}

/// Returns freed heap memory to the system after a large, passing job (a day's report), so
/// that a long-running bridge stays small. glibc keeps freed memory in its arenas otherwise.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
