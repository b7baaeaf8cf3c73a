//! Log files. One folder for everything that runs on this PC (`[logs] folder`, by default
//! `<data_dir>\logs`): the service's `hisbridge-service.log`, `hisbridge run`'s `hisbridge-run.log`,
//! the tray app's `hisbridge-tray.log`, the MSI's `setup.log`. Each file is rolled over at local
//! midnight and when it reaches `[logs] max_kb` (`name.log.1` is the newest old one), and the
//! newest `[logs] keep` old files are kept: a PC that runs for years holds at most
//! `(keep + 1) × max_kb` per log.

use std::io::Write;
use std::path::{Path, PathBuf};

use rolling_file::{BasicRollingFileAppender, RollingConditionBasic};

use crate::config::Logs;

/// A log file that rolls over by day and by size, before a write that would find it full or
/// from an earlier day; give it whole lines, one write each (tracing's formatter does). Every
/// write goes to the file at once (no buffer): a crash loses no line, and the tray app reads the
/// service's log as it grows.
pub struct LogFile {
    inner: BasicRollingFileAppender,
    path: PathBuf,
}

impl LogFile {
    /// Opens (appends to) `<folder>/<name>.log`, creating the folder.
    pub fn open(settings: &Logs, name: &str) -> std::io::Result<Self> {
        Self::open_in(&settings.folder, name, settings.max_bytes, settings.keep)
    }

    pub fn open_in(folder: &Path, name: &str, max_bytes: u64, keep: usize) -> std::io::Result<Self> {
        std::fs::create_dir_all(folder)?;
        let path = folder.join(format!("{name}.log"));
        let condition = RollingConditionBasic::new().daily().max_size(max_bytes);
        let inner = BasicRollingFileAppender::new_with_buffer_capacity(&path, condition, keep, 0)?;
        Ok(LogFile { inner, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The log files in `folder`, newest first (current files and their rolled-over ones).
pub fn files(folder: &Path) -> Vec<PathBuf> {
    let mut out: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(folder)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.contains(".log")))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.0));
    out.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_rolls_over_at_its_size_and_keeps_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let mut log = LogFile::open_in(&d.path().join("logs"), "hisbridge-run", 1000, 3).unwrap();
        // One write per line, as tracing's formatter writes (a line never straddles two files).
        for i in 0..100 {
            log.write_all(format!("line {i:04} {}\n", "x".repeat(90)).as_bytes()).unwrap();
        }
        let mut names: Vec<String> = files(&d.path().join("logs"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["hisbridge-run.log", "hisbridge-run.log.1", "hisbridge-run.log.2", "hisbridge-run.log.3"]);
        for n in &names {
            let len = std::fs::metadata(d.path().join("logs").join(n)).unwrap().len();
            assert!(len <= 1000 + 100, "{n}: {len} bytes");
        }
        // Written through at once: the last line is in the file without a flush.
        let current = std::fs::read_to_string(log.path()).unwrap();
        assert!(current.contains("line 0099"), "{current}");
        let oldest = std::fs::read_to_string(d.path().join("logs/hisbridge-run.log.3")).unwrap();
        assert!(!oldest.contains("line 0000"), "older ones are gone: {oldest}");
    }
}
