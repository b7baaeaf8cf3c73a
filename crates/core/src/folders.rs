//! The drop-folder contract (docs/his-interface.md §4): names, the inbox tracker (pure), and
//! the file operations (atomic write, claim, archive, quarantine).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config::Folders;

/// Extension of an instruction file written by the HIS.
pub const ORDER_EXT: &str = "ord";
/// Extension of a result file written by the bridge.
pub const RESULT_EXT: &str = "res";
/// Marker written after the instruction file by an HIS that cannot rename.
pub const DONE_SUFFIX: &str = ".done";
/// Longest accepted file stem.
pub const MAX_STEM: usize = 80;

const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// What a name in the inbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameKind {
    /// `<stem>.ord`, with a stem safe to reuse for the result file.
    Instruction { stem: String },
    /// `<name>.done`: the HIS finished writing `<name>`.
    Marker { target: String },
    /// An `.ord` file whose stem cannot name a result file (escapes, reserved, too long).
    BadName,
    /// Temp files, dot files and anything else: never touched.
    Ignored,
}

/// Whether `stem` can name a file on Windows and Linux without escaping its folder.
pub fn safe_stem(stem: &str) -> bool {
    !stem.is_empty()
        && stem.len() <= MAX_STEM
        && stem.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@' | b'.'))
        && !stem.starts_with('.')
        && !stem.ends_with('.')
        && !stem.contains("..")
        && !RESERVED.iter().any(|r| stem.split('.').next().is_some_and(|first| first.eq_ignore_ascii_case(r)))
}

pub fn classify(name: &str) -> NameKind {
    let lower = name.to_ascii_lowercase();
    if name.starts_with('.') || lower.ends_with(".tmp") || lower.ends_with(".part") || lower.ends_with('~') {
        return NameKind::Ignored;
    }
    // `x.ord.` and `x.ord ` are `x.ord` to Windows, which strips trailing dots and spaces.
    let trimmed = name.trim_end_matches(['.', ' ']);
    if trimmed.len() != name.len() && trimmed.to_ascii_lowercase().ends_with(".ord") {
        return NameKind::BadName;
    }
    if let Some(target) = name.strip_suffix(DONE_SUFFIX) {
        return NameKind::Marker { target: target.to_string() };
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if ext.eq_ignore_ascii_case(ORDER_EXT) => {
            if safe_stem(stem) {
                NameKind::Instruction { stem: stem.to_string() }
            } else {
                NameKind::BadName
            }
        }
        _ => NameKind::Ignored,
    }
}

/// When a file seen in the inbox may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Still changing, or not yet stable long enough.
    Wait,
    /// Complete as far as the file system tells: read it and verify.
    Ready,
}

#[derive(Debug)]
struct Seen {
    size: u64,
    mtime: Option<SystemTime>,
    first_seen: Instant,
    stable_since: Instant,
    /// The last read failed and the file has not changed since: nothing new to read.
    failed: bool,
}

/// Pure bookkeeping of the files in the inbox: stability and age, no IO.
#[derive(Debug)]
pub struct InboxTracker {
    stable: Duration,
    give_up: Duration,
    seen: HashMap<String, Seen>,
}

impl InboxTracker {
    pub fn new(stable: Duration, give_up: Duration) -> Self {
        Self { stable, give_up, seen: HashMap::new() }
    }

    /// Records a listing of `name`; `marked` says a `.done` marker exists for it.
    pub fn observe(&mut self, name: &str, size: u64, mtime: Option<SystemTime>, marked: bool, now: Instant) -> Verdict {
        let s = self.seen.entry(name.to_string()).or_insert(Seen {
            size,
            mtime,
            first_seen: now,
            stable_since: now,
            failed: false,
        });
        if s.size != size || s.mtime != mtime {
            s.size = size;
            s.mtime = mtime;
            s.stable_since = now;
            s.failed = false;
        }
        if marked || now.duration_since(s.stable_since) >= self.stable {
            Verdict::Ready
        } else {
            Verdict::Wait
        }
    }

    /// A Ready file failed to open or verify: true when it has had its time and must be
    /// refused; false while it may still be being written.
    pub fn should_give_up(&self, name: &str, now: Instant) -> bool {
        self.seen.get(name).is_none_or(|s| now.duration_since(s.first_seen) >= self.give_up)
    }

    /// The last read of `name` failed: it is not read again until it changes (or has had its time).
    pub fn failed(&mut self, name: &str) {
        if let Some(s) = self.seen.get_mut(name) {
            s.failed = true;
        }
    }

    /// Whether `name` failed to read and has not changed since (so reading it again is useless).
    pub fn known_bad(&self, name: &str) -> bool {
        self.seen.get(name).is_some_and(|s| s.failed)
    }

    /// Forgets names no longer listed or already claimed.
    pub fn retain(&mut self, present: &dyn Fn(&str) -> bool) {
        self.seen.retain(|k, _| present(k));
    }

    /// How many files are followed.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn forget(&mut self, name: &str) {
        self.seen.remove(name);
    }

    /// The files to look at again on each pass: seen, not yet taken, and either still settling
    /// or, having failed, had their time (`give_up`). Others wait for the next full listing.
    pub fn due(&self, now: Instant) -> impl Iterator<Item = String> + '_ {
        self.seen
            .iter()
            .filter(move |(_, s)| !s.failed || now.duration_since(s.first_seen) >= self.give_up)
            .map(|(k, _)| k.clone())
    }

    /// The next time a file still settling becomes stable, or a failing one has had its time
    /// (None when there is none).
    pub fn next_check(&self, now: Instant) -> Option<Instant> {
        self.seen
            .values()
            .map(|s| if s.failed { s.first_seen + self.give_up } else { s.stable_since + self.stable })
            .filter(|t| *t > now)
            .min()
    }
}

/// Creates the data folders; refuses any that is a link (the bridge writes results, claims and
/// moves files only inside folders of its own).
pub fn ensure_dirs(f: &Folders) -> std::io::Result<()> {
    for d in [&f.inbox, &f.outbox, &f.work, &f.archive, &f.error] {
        if std::fs::symlink_metadata(d).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::other(format!(
                "{} is a link: the data folders must be real folders (docs/security.md)",
                d.display()
            )));
        }
        std::fs::create_dir_all(d)?;
    }
    Ok(())
}

/// Writes `bytes` to `dir/name` atomically: a temp file in the same folder, flushed to disk,
/// then renamed into place. Readers never see a partial file.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let dest = dir.join(name);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &dest)?;
        sync_dir(dir);
        Ok(dest.clone())
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Replaces `dir/name` whole (temp file and rename), without waiting for the disk: for files
/// rewritten often whose loss in a power cut costs nothing (the status file, rewritten at the
/// next start). A reader sees the old file or the new one, never a part.
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let dest = dir.join(name);
    let res = std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, &dest)).map(|_| dest);
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Flushes a folder's entries (a rename into it) to disk where the platform can.
pub fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Moves `from` into `dir`, keeping its name, or adding `.1`, `.2`... when taken. Never
/// overwrites.
pub fn move_into(from: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let name = from.file_name().and_then(|n| n.to_str()).unwrap_or("file").to_string();
    let mut dest = dir.join(&name);
    let mut n = 1;
    while dest.exists() {
        dest = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    rename_no_link(from, &dest)?;
    sync_dir(dir);
    Ok(dest)
}

/// Renames `from` to `dest`; across file systems or drives (EXDEV, ERROR_NOT_SAME_DEVICE),
/// copies to a temp name beside `dest`, flushes, renames into place, then removes `from`.
pub fn rename_no_link(from: &Path, dest: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, dest) {
        Ok(()) => Ok(()),
        Err(e) if is_cross_device(&e) => {
            let dir = dest.parent().unwrap_or(Path::new("."));
            let tmp = dir.join(format!(
                ".{}.{}.part",
                dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
                std::process::id()
            ));
            let res = (|| {
                std::fs::copy(from, &tmp)?;
                std::fs::File::open(&tmp)?.sync_all()?;
                std::fs::rename(&tmp, dest)?;
                sync_dir(dir);
                std::fs::remove_file(from)
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
        Err(e) => Err(e),
    }
}

fn is_cross_device(e: &std::io::Error) -> bool {
    // EXDEV on Unix (18), ERROR_NOT_SAME_DEVICE on Windows (17).
    matches!(e.raw_os_error(), Some(18) if cfg!(unix)) || matches!(e.raw_os_error(), Some(17) if cfg!(windows))
}

/// Removes the temp files (`.<name>.<pid>.tmp`) a crash left in a folder the bridge writes.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.starts_with('.') && (name.ends_with(".tmp") || name.ends_with(".part")) && name.len() > 5;
        if ours && e.file_type().map(|t| t.is_file()).unwrap_or(false) && std::fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// The dated archive folder for today.
pub fn archive_dir(archive: &Path) -> PathBuf {
    archive.join(chrono::Local::now().format("%Y-%m-%d").to_string())
}

/// Quarantines a file in the error folder with a `.reason.txt` beside it.
pub fn quarantine(from: &Path, error_dir: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let dest = move_into(from, error_dir)?;
    let reason_name = format!("{}.reason.txt", dest.file_name().and_then(|n| n.to_str()).unwrap_or("file"));
    write_atomic(error_dir, &reason_name, reason.as_bytes())?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(classify("A1.ord"), NameKind::Instruction { stem: "A1".into() });
        assert_eq!(classify("A1@R1.ORD"), NameKind::Instruction { stem: "A1@R1".into() });
        assert_eq!(classify("A1.ord.tmp"), NameKind::Ignored);
        assert_eq!(classify(".A1.ord"), NameKind::Ignored);
        assert_eq!(classify("A1.ord.part"), NameKind::Ignored);
        assert_eq!(classify("A1.ord.done"), NameKind::Marker { target: "A1.ord".into() });
        assert_eq!(classify("readme.txt"), NameKind::Ignored);
        assert_eq!(classify("CON.ord"), NameKind::BadName);
        assert_eq!(classify("com1.x.ord"), NameKind::BadName);
        assert_eq!(classify("a b.ord"), NameKind::BadName);
        assert_eq!(classify("..ord"), NameKind::Ignored);
        assert_eq!(classify("a..b.ord"), NameKind::BadName);
        assert_eq!(classify(&format!("{}.ord", "9".repeat(81))), NameKind::BadName);
        assert_eq!(classify("订单.ord"), NameKind::BadName);
        assert_eq!(classify("x.ord."), NameKind::BadName, "Windows strips the dot");
        assert_eq!(classify("x.ord "), NameKind::BadName, "Windows strips the space");
        assert_eq!(classify("x.ord. ."), NameKind::BadName);
    }

    #[test]
    fn tracker_waits_for_stability_unless_marked() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let mut tr = InboxTracker::new(ms(200), Duration::from_secs(5));
        assert_eq!(tr.observe("a", 10, None, false, t), Verdict::Wait);
        assert_eq!(tr.observe("a", 20, None, false, t + ms(150)), Verdict::Wait);
        assert_eq!(tr.observe("a", 20, None, false, t + ms(300)), Verdict::Wait);
        assert_eq!(tr.observe("a", 20, None, false, t + ms(350)), Verdict::Ready);
        assert_eq!(tr.observe("b", 1, None, true, t), Verdict::Ready);
        assert!(!tr.should_give_up("a", t + ms(1000)));
        assert!(tr.should_give_up("a", t + Duration::from_secs(5)));
    }

    #[test]
    fn atomic_write_and_moves_never_overwrite() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "x.res", b"1").unwrap();
        write_atomic(d.path(), "x.res", b"2").unwrap();
        assert_eq!(std::fs::read(d.path().join("x.res")).unwrap(), b"2");
        let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
        let a = d.path().join("a");
        std::fs::create_dir(&a).unwrap();
        std::fs::write(d.path().join("f"), b"1").unwrap();
        move_into(&d.path().join("f"), &a).unwrap();
        std::fs::write(d.path().join("f"), b"2").unwrap();
        let second = move_into(&d.path().join("f"), &a).unwrap();
        assert_eq!(second, a.join("f.1"));
        assert_eq!(std::fs::read(a.join("f")).unwrap(), b"1");
    }
}
