//! The drop-folder adapter: lists the inbox at start-up, on notify events (hints only) and on a
//! timer; waits for complete files; verifies the envelope; claims each file by renaming it into
//! the work folder; hands it to the engine. Also re-submits whatever a crash left in work/.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use notify::Watcher;

/// How many times each inbox has been listed whole in this process (for the cost tests).
static LISTINGS: std::sync::Mutex<Vec<(PathBuf, u64)>> = std::sync::Mutex::new(Vec::new());

/// How many times `inbox` has been listed whole in this process.
pub fn listings(inbox: &Path) -> u64 {
    LISTINGS.lock().map(|l| l.iter().find(|(p, _)| p == inbox).map_or(0, |(_, n)| *n)).unwrap_or(0)
}

fn count_listing(inbox: &Path) {
    if let Ok(mut l) = LISTINGS.lock() {
        match l.iter_mut().find(|(p, _)| p == inbox) {
            Some((_, n)) => *n += 1,
            None => l.push((inbox.to_path_buf(), 1)),
        }
    }
}
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{Folders, Intake as IntakeCfg};
use crate::envelope::{self, Direction, EnvelopeError, Key};
use crate::folders::{classify, InboxTracker, NameKind, Verdict};

/// Where an instruction came from and where its answer goes.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A claimed file: `stem` names the result file, `work_path` is the claimed file.
    File { stem: String, work_path: PathBuf },
    /// A localhost connection: result envelopes go back on `tx`, one line each.
    Socket { conn: u64, tx: tokio::sync::mpsc::UnboundedSender<String> },
}

impl Origin {
    /// How the journal and the logs name the origin.
    pub fn source(&self) -> String {
        match self {
            Origin::File { stem, .. } => format!("file:{stem}"),
            Origin::Socket { conn, .. } => format!("socket:{conn}"),
        }
    }
}

/// Why a file was refused before its envelope could be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Envelope(EnvelopeError),
    /// The file name cannot be used to answer (escapes the folder, reserved, too long).
    BadName(String),
    Unreadable(String),
    /// A link, a FIFO, a folder or a device under an instruction's name: never read.
    NotRegular(String),
}

/// A verified envelope: the plaintext and the nonce that identifies the message.
#[derive(Debug)]
pub struct Opened {
    pub plain: Vec<u8>,
    pub nonce: [u8; envelope::NONCE_LEN],
}

/// One instruction handed to the engine: its origin and its plaintext, or why there is none.
#[derive(Debug)]
pub struct Submission {
    pub origin: Origin,
    pub body: Result<Opened, Refusal>,
    /// Claimed before a restart and handed over again: not a replay.
    pub resubmitted: bool,
    /// The outbox holds a final result under this file's stem, from an earlier instruction.
    pub stem_final: bool,
}

/// The inbox's file logic, synchronous: listing, claiming, reading. The async [`Inbox`] task
/// and the simulation both use it.
pub struct Scanner {
    pub folders: Folders,
    pub cfg: IntakeCfg,
    pub key: Arc<Key>,
}

pub struct Inbox {
    pub scanner: Scanner,
    pub tx: mpsc::Sender<Submission>,
}

fn name_of(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string()
}

impl Inbox {
    /// Runs until the engine stops listening.
    pub async fn run(self) {
        for sub in self.scanner.work_files() {
            if self.tx.send(sub).await.is_err() {
                return;
            }
        }
        let folders = self.scanner.folders.clone();
        let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<Wake>();
        let mut _watcher = watch(&folders.inbox, wake_tx.clone());
        let mut tracker = InboxTracker::new(self.scanner.cfg.stable, self.scanner.cfg.give_up);
        let mut inbox_missing = false;
        // The whole inbox is listed at start, on the timer (a safety net for lost events), after
        // a watcher error or overflow, and while refusals remain; an event lists only its names.
        let mut full = true;
        let mut names = std::collections::BTreeSet::new();
        let mut next_full = tokio::time::Instant::now();
        // Events are trusted until a safety-net listing finds a file they did not report (a
        // network folder without notifications); the listing then runs every `rescan`.
        let mut trusted = _watcher.is_some();
        loop {
            let mut more = false;
            let now = Instant::now();
            let safety_net = !full && tokio::time::Instant::now() >= next_full;
            let res = if full || safety_net {
                let period = if trusted { self.scanner.cfg.rescan.max(SAFETY_NET) } else { self.scanner.cfg.rescan };
                next_full = tokio::time::Instant::now() + period;
                names.clear();
                let before = tracker.len();
                let res = self.scanner.scan(&mut tracker, now);
                if let Ok((subs, _)) = &res {
                    if safety_net && trusted && (!subs.is_empty() || tracker.len() > before) {
                        warn!(inbox = %folders.inbox.display(), "file-system events missed a file in the inbox; listing it every intake.rescan_ms from now on");
                        trusted = false;
                        next_full = tokio::time::Instant::now() + self.scanner.cfg.rescan;
                    }
                }
                res
            } else {
                // Files still settling are looked at again with the names of this wake-up.
                names.extend(tracker.due(now));
                Ok(self.scanner.scan_names(&std::mem::take(&mut names), &mut tracker, now))
            };
            full = false;
            match res {
                Ok((subs, m)) => {
                    more = m;
                    if inbox_missing {
                        info!(inbox = %folders.inbox.display(), "inbox folder is back");
                        inbox_missing = false;
                        _watcher = watch(&folders.inbox, wake_tx.clone());
                    }
                    for sub in subs {
                        if self.tx.send(sub).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    if !inbox_missing {
                        warn!(inbox = %folders.inbox.display(), error = %e, "inbox folder cannot be listed");
                        inbox_missing = true;
                    }
                    let _ = std::fs::create_dir_all(&folders.inbox);
                }
            }
            if more {
                full = true;
                tokio::task::yield_now().await;
                continue;
            }
            let mut next = next_full;
            if let Some(t) = tracker.next_check(Instant::now()) {
                next = next.min(tokio::time::Instant::from_std(t));
            }
            tokio::select! {
                w = wake_rx.recv() => {
                    // One pass answers a whole burst of events.
                    let mut w = w;
                    while let Some(wake) = w {
                        match wake {
                            Wake::Names(n) => names.extend(n),
                            Wake::All => full = true,
                        }
                        w = wake_rx.try_recv().ok();
                    }
                }
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }
}

/// How often the whole inbox is listed while file-system events are trusted (a safety net;
/// `intake.rescan_ms` when it is longer, or once events have missed a file).
pub const SAFETY_NET: std::time::Duration = std::time::Duration::from_secs(30);

/// What a file-system event asks of the inbox task.
enum Wake {
    /// These entries changed.
    Names(Vec<String>),
    /// Something was missed (an error, an overflow): list it all.
    All,
}

fn watch(inbox: &Path, wake: mpsc::UnboundedSender<Wake>) -> Option<notify::RecommendedWatcher> {
    let dir = inbox.to_path_buf();
    let res = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let w = match ev {
            // Listing the inbox opens it: an access event must not wake another listing, or
            // the two feed each other and an idle bridge spins.
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => return,
            Ok(e) if e.need_rescan() || e.paths.is_empty() => Wake::All,
            Ok(e) => {
                let names: Vec<String> = e
                    .paths
                    .iter()
                    .filter(|p| p.parent() == Some(dir.as_path()))
                    .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                    .collect();
                // An event about the folder itself (moved, deleted) or a name that is not
                // UTF-8: the listing sorts it out.
                if names.len() < e.paths.iter().filter(|p| p.as_path() != dir.as_path()).count()
                    || e.paths.iter().any(|p| p.as_path() == dir.as_path())
                {
                    Wake::All
                } else {
                    Wake::Names(names)
                }
            }
            Err(e) => {
                debug!(error = %e, "inbox watcher error; listing it all");
                Wake::All
            }
        };
        let _ = wake.send(w);
    })
    .and_then(|mut w| w.watch(inbox, notify::RecursiveMode::NonRecursive).map(|_| w));
    match res {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "no file-system events for the inbox; listing it on the timer only");
            None
        }
    }
}

impl Scanner {
    /// Whether `outbox/<stem>.res` holds a final result (one the bridge must never replace).
    pub fn stem_final(&self, stem: &str) -> bool {
        let path = self.folders.outbox.join(format!("{stem}.{}", crate::folders::RESULT_EXT));
        // Never follow a link or wait on a FIFO the HIS's account may have put there.
        let bytes = match open_regular(&path) {
            Ok(f) => {
                use std::io::Read;
                let mut b = Vec::new();
                if f.take(envelope::MAX_ENVELOPE as u64 + 1).read_to_end(&mut b).is_err() {
                    return true;
                }
                b
            }
            Err(Refusal::Unreadable(_)) => return false, // not there (or gone)
            Err(_) => return true,                       // something else sits under the name: keep off
        };
        match self.key.open(Direction::ToHis, &bytes) {
            Ok(plain) => crate::his::ResultMessage::parse(&plain).map(|m| m.status.is_final()).unwrap_or(true),
            // Not ours to read (another key, damaged): never overwritten either.
            Err(_) => true,
        }
    }

    /// The files a crash left claimed in work/, to hand to the engine again at start-up.
    pub fn work_files(&self) -> Vec<Submission> {
        let Ok(rd) = std::fs::read_dir(&self.folders.work) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut out = Vec::new();
        for path in paths {
            let name = name_of(&path);
            let NameKind::Instruction { stem } = classify(&name) else {
                continue;
            };
            info!(file = %name, "resubmitting a claimed file left from the last run");
            let body = read_and_open(&path, &self.key);
            let stem_final = self.stem_final(&stem);
            out.push(Submission {
                origin: Origin::File { stem, work_path: path },
                body,
                resubmitted: true,
                stem_final,
            });
        }
        out
    }

    /// One listing of the inbox: claims every file that is complete (or has had its time) and
    /// returns it for the engine.
    /// Also says whether refusals were left for the next listing (`MAX_REFUSALS` reached).
    pub fn scan(&self, tracker: &mut InboxTracker, now: Instant) -> std::io::Result<(Vec<Submission>, bool)> {
        count_listing(&self.folders.inbox);
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&self.folders.inbox)?.flatten() {
            let os = e.file_name();
            // Whatever the HIS leaves that is not the bridge's (temp files, logs, exports) costs
            // one comparison here, nothing more.
            if !may_matter(&os) {
                continue;
            }
            if let Ok(t) = e.file_type() {
                entries.push((os, t));
            }
        }
        Ok(self.take(entries, tracker, now, true))
    }

    /// Looks at the named inbox entries only (the names file-system events reported): the
    /// cost of an order does not grow with what else lies in the inbox. A marker brings its
    /// instruction along, an instruction its marker.
    pub fn scan_names(
        &self,
        names: &std::collections::BTreeSet<String>,
        tracker: &mut InboxTracker,
        now: Instant,
    ) -> (Vec<Submission>, bool) {
        let mut wanted = names.clone();
        for n in names {
            match classify(n) {
                NameKind::Marker { target } => {
                    wanted.insert(target);
                }
                NameKind::Instruction { .. } => {
                    wanted.insert(format!("{n}{}", crate::folders::DONE_SUFFIX));
                }
                _ => {}
            }
        }
        let entries = wanted
            .into_iter()
            .filter(|n| may_matter(std::ffi::OsStr::new(n)))
            .filter_map(|n| {
                let t = std::fs::symlink_metadata(self.folders.inbox.join(&n)).ok()?.file_type();
                Some((std::ffi::OsString::from(n), t))
            })
            .collect();
        self.take(entries, tracker, now, false)
    }

    /// Claims what `entries` (names and types of inbox entries) hold; `complete` when they are
    /// the whole listing (names not among them are gone).
    fn take(
        &self,
        entries: Vec<(std::ffi::OsString, std::fs::FileType)>,
        tracker: &mut InboxTracker,
        now: Instant,
        complete: bool,
    ) -> (Vec<Submission>, bool) {
        let mut out = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for (os, t) in entries {
            let path = self.folders.inbox.join(&os);
            let Some(name) = os.to_str().map(str::to_string) else {
                // Not UTF-8: never a valid stem. Refused under a neutral name if it means an
                // instruction, left alone (logged) otherwise.
                let lossy = os.to_string_lossy().into_owned();
                if lossy.to_ascii_lowercase().contains(".ord") {
                    out.extend(self.refuse_bad_name(&path, &lossy));
                } else {
                    debug!(file = %lossy, "inbox entry with a name that is not UTF-8 ignored");
                }
                continue;
            };
            if t.is_file() {
                names.push(name);
                continue;
            }
            // A link, a FIFO, a folder... under an instruction's name gets a visible refusal;
            // anything else is not the bridge's.
            match classify(&name) {
                NameKind::Instruction { stem } => {
                    let why = kind_of(&t);
                    warn!(file = %name, kind = why, "inbox entry is not a regular file: refused");
                    if let Some(work_path) = claim_to(&path, self.folders.work.join(&name)) {
                        out.push(Submission {
                            stem_final: self.stem_final(&stem),
                            origin: Origin::File { stem, work_path },
                            body: Err(Refusal::NotRegular(why.into())),
                            resubmitted: false,
                        });
                    }
                }
                NameKind::BadName => out.extend(self.refuse_bad_name(&path, &name)),
                _ => debug!(file = %name, kind = kind_of(&t), "inbox entry that is not a file ignored"),
            }
        }
        names.sort();
        let markers: Vec<String> = names
            .iter()
            .filter_map(|n| match classify(n) {
                NameKind::Marker { target } => Some(target),
                _ => None,
            })
            .collect();
        if complete {
            let listed: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
            tracker.retain(&|n| listed.contains(n));
        }
        // Valid instructions first: a flood of broken files never holds a real order back, and
        // each listing refuses at most `MAX_REFUSALS` (the next listing follows at once).
        let mut valid = Vec::new();
        let mut refused = Vec::new();
        for name in &names {
            let kind = classify(name);
            let path = self.folders.inbox.join(name);
            let stem = match kind {
                NameKind::Instruction { stem } => stem,
                NameKind::BadName => {
                    if out.len() + refused.len() < MAX_REFUSALS {
                        // Claim under a neutral name so nothing is ever built from the bad one.
                        out.extend(self.refuse_bad_name(&path, name));
                    }
                    continue;
                }
                _ => continue,
            };
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let marked = markers.contains(name);
            let verdict = tracker.observe(name, meta.len(), meta.modified().ok(), marked, now);
            let give_up = tracker.should_give_up(name, now);
            // Unchanged since its last failed read: nothing new to read until it has had its
            // time, and then only while this listing may still refuse.
            if tracker.known_bad(name) && (!give_up || out.len() + refused.len() >= MAX_REFUSALS) {
                continue;
            }
            // A verified tag proves the file is complete, so a valid file is taken at once. One
            // that does not verify waits until it is stable; then, if nobody holds it open any
            // more, it is complete and refused at once (another key, an empty file, a wrong
            // header: an integrator's first mistakes get their answer now). Where that cannot be
            // told (another user's writer), it waits until `give_up`: a file cut short and one
            // sealed with another key look alike.
            let body = read_and_open(&path, &self.key);
            if let Err(r) = &body {
                if !matches!(r, Refusal::NotRegular(_)) {
                    let closed = || held_open(&path) == Some(false);
                    let wait = verdict == Verdict::Wait || (!marked && retryable(&body) && !give_up && !closed());
                    if wait {
                        // Once stable and still failing, not read again until it changes (or
                        // has had its time); before that, read again as it settles.
                        if verdict == Verdict::Ready {
                            tracker.failed(name);
                        }
                        continue; // perhaps still being written; try again on the next listing
                    }
                }
                if out.len() + refused.len() >= MAX_REFUSALS {
                    continue; // the next listing takes it
                }
            }
            let stem_final = self.stem_final(&stem);
            let Some(work_path) = claim(&path, &self.folders.work) else {
                continue;
            };
            tracker.forget(name);
            crate::failpoint::hit("claimed");
            if marked {
                // The marker has done its job; keep it in the day's archive.
                let marker = self.folders.inbox.join(format!("{name}.done"));
                let _ = crate::folders::move_into(&marker, &crate::folders::archive_dir(&self.folders.archive));
            }
            debug!(file = %name, "claimed");
            let ok = body.is_ok();
            let sub = Submission { origin: Origin::File { stem, work_path }, body, resubmitted: false, stem_final };
            if ok {
                valid.push(sub);
            } else {
                refused.push(sub);
            }
        }
        let more = out.len() + refused.len() >= MAX_REFUSALS;
        valid.extend(out);
        valid.extend(refused);
        (valid, more)
    }

    fn refuse_bad_name(&self, path: &Path, name: &str) -> Option<Submission> {
        let base = format!("badname-{}", chrono::Local::now().format("%Y%m%d%H%M%S%3f"));
        let dest = free_name(&self.folders.work, &base, "ord");
        let stem = name_of(&dest).trim_end_matches(".ord").to_string();
        let work_path = claim_to(path, dest)?;
        let shown: String = name.chars().take(120).collect();
        Some(Submission {
            origin: Origin::File { stem, work_path },
            body: Err(Refusal::BadName(shown)),
            resubmitted: false,
            stem_final: false,
        })
    }
}

/// Whether an inbox entry's name can concern the bridge: it holds `.ord` in any case (an
/// instruction, its marker, a name to refuse). Everything else is passed over unread.
fn may_matter(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().windows(4).any(|w| w.eq_ignore_ascii_case(b".ord"))
}

/// How many refused files one listing hands over at most.
pub const MAX_REFUSALS: usize = 32;

/// A failure that a file still being written could explain.
fn retryable(body: &Result<Opened, Refusal>) -> bool {
    matches!(
        body,
        Err(Refusal::Unreadable(_))
            | Err(Refusal::Envelope(
                EnvelopeError::Empty
                    | EnvelopeError::Malformed
                    | EnvelopeError::Base64
                    | EnvelopeError::Truncated
                    | EnvelopeError::Tag
            ))
    )
}

/// Whether some process still has the file open (a writer not finished): `None` when that cannot
/// be told. Asked only for a stable file that fails to open as an envelope.
#[cfg(target_os = "linux")]
pub fn held_open(path: &Path) -> Option<bool> {
    let target = std::fs::canonicalize(path).ok()?;
    let mut unknown = false;
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = proc_entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            // Another user's process (or one that just ended): its files cannot be seen.
            unknown |= proc_entry.path().exists();
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l == target) {
                return Some(true);
            }
        }
    }
    if unknown {
        None
    } else {
        Some(false)
    }
}

/// Windows: a file another handle holds (the HIS writing it, locally or through a share)
/// cannot be opened without sharing.
#[cfg(windows)]
pub fn held_open(path: &Path) -> Option<bool> {
    use std::os::windows::fs::OpenOptionsExt;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    match std::fs::OpenOptions::new().read(true).share_mode(0).open(path) {
        Ok(_) => Some(false),
        Err(e) if e.raw_os_error() == Some(ERROR_SHARING_VIOLATION) => Some(true),
        Err(_) => None,
    }
}

#[cfg(not(any(target_os = "linux", windows)))]
pub fn held_open(_path: &Path) -> Option<bool> {
    None
}

/// What an entry that is not a regular file is, in words.
fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

/// Opens a file to read it without following a link and without blocking (a FIFO put under the
/// name between the listing and the open), and checks on the opened handle that it is a regular
/// file.
pub fn open_regular(path: &Path) -> Result<std::fs::File, Refusal> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        // FILE_FLAG_OPEN_REPARSE_POINT: a link is opened as itself, not followed.
        o.custom_flags(0x0020_0000);
    }
    let f = match o.open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a link: ELOOP.
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(Refusal::NotRegular("a symbolic link".into())),
        Err(e) => return Err(Refusal::Unreadable(e.to_string())),
    };
    let m = f.metadata().map_err(|e| Refusal::Unreadable(e.to_string()))?;
    if !m.is_file() {
        return Err(Refusal::NotRegular(kind_of(&m.file_type()).into()));
    }
    Ok(f)
}

fn read_and_open(path: &Path, key: &Key) -> Result<Opened, Refusal> {
    use std::io::Read;
    let f = open_regular(path)?;
    let mut bytes = Vec::new();
    f.take(envelope::MAX_ENVELOPE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::Unreadable(e.to_string()))?;
    let (plain, nonce) = key.open_with_nonce(Direction::ToBridge, &bytes).map_err(Refusal::Envelope)?;
    Ok(Opened { plain, nonce })
}

/// Claims a file by renaming it into the work folder. None when it vanished meanwhile.
/// Claims a file by renaming it into the work folder, never over another claimed file.
/// None when it vanished meanwhile.
fn claim(path: &Path, work: &Path) -> Option<PathBuf> {
    let name = name_of(path);
    let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, "ord"));
    claim_to(path, free_name(work, stem, ext))
}

fn links(path: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(path).map(|m| if m.is_file() { m.nlink() } else { 1 }).unwrap_or(1)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        1
    }
}

/// `dir/stem.ext`, or `dir/stem.N.ext` with the first N not taken.
fn free_name(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    let mut dest = dir.join(format!("{stem}.{ext}"));
    let mut n = 1;
    while dest.exists() {
        dest = dir.join(format!("{stem}.{n}.{ext}"));
        n += 1;
    }
    dest
}

fn claim_to(path: &Path, dest: PathBuf) -> Option<PathBuf> {
    if links(path) > 1 {
        // Another name of this file may be outside the data folder: take a copy of our own,
        // so nothing under the bridge's folders is ever a link to elsewhere.
        let res = std::fs::copy(path, &dest).and_then(|_| std::fs::remove_file(path));
        return match res {
            Ok(()) => Some(dest),
            Err(e) => {
                let _ = std::fs::remove_file(&dest);
                warn!(file = %path.display(), error = %e, "cannot claim a hard-linked file");
                None
            }
        };
    }
    match std::fs::rename(path, &dest) {
        Ok(()) => Some(dest),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot claim file");
            None
        }
    }
}
