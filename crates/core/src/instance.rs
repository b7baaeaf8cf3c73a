//! One bridge per journal: the Windows service, the tray app and `hisbridge run` may all be
//! installed on one PC, but only one of them drives the POS at a time.
//!
//! The running bridge holds an exclusive OS lock on `<journal>.lock` for its lifetime (released by
//! the OS when the process ends, however it ends) and publishes its state in `status.json` beside
//! the journal: who it is, since when, and the POS link. A second instance finds the lock taken
//! and does not start its engine; the tray app then shows the status file instead (status-only
//! mode).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pos::{Link, PosStatus};

/// How often a POS heard again (and nothing else new) is published; whether the holder is alive
/// is told by its lock ([`is_held`]), not by the file's age.
pub const LAST_HEARD_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another HIS Bridge ({}) already drives this POS and journal", .0.as_ref().map(|s| s.describe()).unwrap_or_else(|| "unknown process".into()))]
    Held(Option<Box<SharedStatus>>),
    #[error("cannot create the lock file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Held while the bridge runs.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

pub fn lock_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    journal.with_file_name(name)
}

pub fn status_path(journal: &Path) -> PathBuf {
    canonical_journal(journal).with_file_name("status.json")
}

/// The journal's own name: links followed, `.` and `..` resolved, so that every spelling of one
/// file (a symlink, a relative path, another case on Windows) leads to the same lock. A journal not
/// created yet is named by its folder's canonical path.
pub fn canonical_journal(journal: &Path) -> PathBuf {
    if let Ok(p) = std::fs::canonicalize(journal) {
        return p;
    }
    match (journal.parent(), journal.file_name()) {
        (Some(dir), Some(name)) => {
            let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
            std::fs::canonicalize(dir).map(|d| d.join(name)).unwrap_or_else(|_| journal.to_path_buf())
        }
        _ => journal.to_path_buf(),
    }
}

/// Takes the lock for `journal`, or says who holds it.
pub fn acquire(journal: &Path) -> Result<InstanceLock, LockError> {
    let journal = &canonical_journal(journal);
    let path = lock_path(journal);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| LockError::Io { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(InstanceLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(LockError::Held(read_status(&status_path(journal)).map(Box::new)))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(LockError::Io { path, source }),
    }
}

/// Whether a bridge holds the lock of `journal` now.
pub fn is_held(journal: &Path) -> bool {
    matches!(acquire(journal), Err(LockError::Held(_)))
}

/// What the running bridge publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedStatus {
    /// `service`, `tray`, `run`.
    pub mode: String,
    pub pid: u32,
    pub since: String,
    pub updated_at: String,
    pub port: String,
    /// `ready`, `handshaking`, `closed`, `wrong_device`.
    pub link: String,
    /// Why the link is closed, or the device ID the POS reported instead of ours.
    pub reason: Option<String>,
    pub device_id: Option<String>,
    pub model: Option<String>,
    pub last_heard: Option<String>,
    /// What needs a person (`journal`, `history_lost`, `files`, `pos_contradiction`) and why.
    #[serde(default)]
    pub attention: Vec<(String, String)>,
    /// The most recent order's notice, for a front end beside the service (its last-payment
    /// strip and notifications).
    #[serde(default)]
    pub last_order: Option<SharedOrder>,
    /// Replication to the hospital's hub, when `[hub]` is configured.
    #[serde(default)]
    pub hub: Option<crate::hub::replica::HubStatus>,
}

/// An order notice as published; `seq` counts the notices of this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedOrder {
    pub seq: u64,
    pub key: String,
    pub state: String,
    pub amount: String,
    pub channel: Option<String>,
    pub error_code: Option<String>,
    pub pos_message: Option<String>,
}

impl SharedStatus {
    /// Equal in everything but the times (when written, when the POS was last heard).
    fn same_but_heard(&self, o: &SharedStatus) -> bool {
        let strip = |s: &SharedStatus| SharedStatus { updated_at: String::new(), last_heard: None, ..s.clone() };
        strip(self) == strip(o)
    }

    pub fn describe(&self) -> String {
        format!("{} mode, process {}, since {}", self.mode, self.pid, self.since)
    }

    pub fn from_pos(mode: &str, since: &str, s: &PosStatus) -> Self {
        let (link, reason) = match &s.link {
            Link::Ready => ("ready", None),
            Link::Handshaking => ("handshaking", None),
            Link::PortClosed { reason } => ("closed", Some(reason.clone())),
            Link::WrongDevice { reported } => ("wrong_device", Some(reported.clone())),
        };
        SharedStatus {
            mode: mode.to_string(),
            pid: std::process::id(),
            since: since.to_string(),
            updated_at: crate::journal::now_str(),
            port: s.port.clone(),
            link: link.to_string(),
            reason,
            device_id: s.device_id.clone(),
            model: s.model.clone(),
            last_heard: s.last_heard.clone(),
            attention: Vec::new(),
            last_order: None,
            hub: None,
        }
    }

    /// The link as the driver's type, for front ends that show both alike.
    pub fn pos_status(&self) -> PosStatus {
        let reason = self.reason.clone().unwrap_or_default();
        PosStatus {
            port: self.port.clone(),
            link: match self.link.as_str() {
                "ready" => Link::Ready,
                "handshaking" => Link::Handshaking,
                "wrong_device" => Link::WrongDevice { reported: reason },
                _ => Link::PortClosed { reason },
            },
            device_id: self.device_id.clone(),
            version: None,
            model: self.model.clone(),
            last_heard: self.last_heard.clone(),
        }
    }
}

pub fn read_status(path: &Path) -> Option<SharedStatus> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_status(path: &Path, s: &SharedStatus) {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("status.json");
    if let Ok(bytes) = serde_json::to_vec_pretty(s) {
        if let Err(e) = crate::folders::replace_file(dir, name, &bytes) {
            tracing::debug!(error = %e, "status file not written");
        }
    }
}

/// Publishes the POS status for other front ends: at once when the link, the device or what
/// needs a person changes; a POS that is merely heard again (every byte it sends) is published
/// at most every [`LAST_HEARD_EVERY`]. Nothing is written while nothing changes.
pub async fn publish(
    path: PathBuf,
    mode: String,
    mut pos: tokio::sync::watch::Receiver<PosStatus>,
    mut health: tokio::sync::watch::Receiver<crate::engine::Health>,
    mut notices: tokio::sync::broadcast::Receiver<crate::engine::Notice>,
    mut hub: Option<tokio::sync::watch::Receiver<crate::hub::replica::HubStatus>>,
) {
    let since = crate::journal::now_str();
    let mut written: Option<(SharedStatus, tokio::time::Instant)> = None;
    let mut last_order: Option<SharedOrder> = None;
    loop {
        let mut s = SharedStatus::from_pos(&mode, &since, &pos.borrow_and_update().clone());
        s.attention = health.borrow_and_update().iter().map(|(k, v)| (k.as_str().to_string(), v.clone())).collect();
        s.last_order = last_order.clone();
        s.hub = hub.as_mut().map(|h| h.borrow_and_update().clone());
        let now = tokio::time::Instant::now();
        let due = match &written {
            None => true,
            Some((w, _)) if !w.same_but_heard(&s) => true,
            Some((w, at)) => w.last_heard != s.last_heard && now >= *at + LAST_HEARD_EVERY,
        };
        let mut wake = None;
        if due {
            write_status(&path, &s);
            written = Some((s, now));
        } else if let Some((w, at)) = &written {
            if w.last_heard != s.last_heard {
                wake = Some(*at + LAST_HEARD_EVERY);
            }
        }
        tokio::select! {
            changed = pos.changed() => if changed.is_err() { return },
            changed = health.changed() => if changed.is_err() { return },
            changed = async { hub.as_mut().expect("set").changed().await }, if hub.is_some() => if changed.is_err() { hub = None },
            n = notices.recv() => match n {
                Ok(crate::engine::Notice::Order { key, state, amount, channel, error_code, pos_message }) => {
                    let seq = last_order.as_ref().map_or(1, |o| o.seq + 1);
                    last_order = Some(SharedOrder { seq, key, state: state.as_str().to_string(), amount, channel, error_code, pos_message });
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return,
            },
            _ = async { tokio::time::sleep_until(wake.expect("set")).await }, if wake.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another spelling of the same journal (a symlinked folder, `..`) is the same journal.
    #[cfg(unix)]
    #[test]
    fn every_spelling_of_one_journal_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let journal = data.join("journal.sqlite");
        std::fs::write(&journal, b"").unwrap();
        std::os::unix::fs::symlink(&data, dir.path().join("link")).unwrap();
        std::os::unix::fs::symlink(&journal, dir.path().join("j2.sqlite")).unwrap();
        let _first = acquire(&journal).unwrap();
        for other in [
            dir.path().join("link/journal.sqlite"),
            dir.path().join("j2.sqlite"),
            dir.path().join("link/../data/journal.sqlite"),
        ] {
            assert!(matches!(acquire(&other), Err(LockError::Held(_))), "{}", other.display());
        }
    }

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal.sqlite");
        let first = acquire(&journal).unwrap();
        let s = SharedStatus::from_pos(
            "service",
            "2026-11-26 08:00:00",
            &PosStatus {
                port: "COM5".into(),
                link: Link::Ready,
                device_id: Some("POS-1".into()),
                version: None,
                model: None,
                last_heard: None,
            },
        );
        write_status(&status_path(&journal), &s);
        match acquire(&journal) {
            Err(LockError::Held(Some(h))) => assert_eq!(*h, s),
            other => panic!("{other:?}"),
        }
        let e = acquire(&journal).unwrap_err().to_string();
        assert!(e.contains("service mode, process"), "{e}");
        assert!(is_held(&journal));
        assert_eq!(s.pos_status().link, Link::Ready);
        drop(first);
        assert!(!is_held(&journal));
        let _again = acquire(&journal).unwrap();
    }
}
