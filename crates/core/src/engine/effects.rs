//! The file effects the engine asks for, and the one executor that carries them out on the
//! data folders (the driver's and the simulation's alike). Every step goes through
//! [`FileExec::step`], where the simulation injects its file-system faults.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Folders;

/// A file operation the engine wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOp {
    /// `outbox/<stem>.res` with this sealed text: temp file, flush, rename, directory flush.
    /// A result file; a `final_` one is on disk (its folder entry too) when this is done, a
    /// progress one only complete (a power cut may leave the one before it, which is true too).
    WriteResult { stem: String, text: String, final_: bool },
    /// The claimed instruction file into `archive/<day>/` (an already moved file counts as done).
    Archive { path: PathBuf, day: String },
    /// A refused file into `error/`, with `<name>.reason.txt` beside it.
    Quarantine { path: PathBuf, reason: String },
}

impl FileOp {
    pub fn describe(&self) -> String {
        match self {
            FileOp::WriteResult { stem, .. } => format!("write result {stem}.res"),
            FileOp::Archive { path, .. } => format!("archive {}", name_of(path)),
            FileOp::Quarantine { path, .. } => format!("move {} to the error folder", name_of(path)),
        }
    }
}

/// The bridge writes into its own folders only: one replaced by a link (to anywhere) is refused.
fn not_a_link(dir: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(std::io::Error::other(format!(
            "{} is a link, not the bridge's own folder: nothing is written through it",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Whether anything is at `p` (a link counts as itself, not as its target).
fn present(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// One primitive step of a file operation, where a fault may strike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsStep {
    CreateDir,
    CreateTemp,
    Write,
    Fsync,
    Rename,
}

/// A fault injected at a step: the error that step fails with (the simulation's full disks,
/// read-only folders, failing renames and flushes).
pub type FsFault = Box<dyn FnMut(FsStep, &Path) -> Option<std::io::Error> + Send>;

pub struct FileExec {
    folders: Folders,
    fault: Option<FsFault>,
    /// To read a result file before replacing it (see [`FileExec::apply`]).
    key: Option<std::sync::Arc<crate::envelope::Key>>,
}

impl FileExec {
    pub fn new(folders: Folders) -> Self {
        Self { folders, fault: None, key: None }
    }

    /// Test hook: every step asks `fault` first.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn with_faults(folders: Folders, fault: FsFault) -> Self {
        Self { folders, fault: Some(fault), key: None }
    }

    /// With the key, a result file holding a final result is never replaced by a different one.
    pub fn with_key(mut self, key: std::sync::Arc<crate::envelope::Key>) -> Self {
        self.key = Some(key);
        self
    }

    /// Whether `outbox/<name>` holds a final result other than `text` says: the last line of
    /// defence of "a final result never changes" (whatever raced: an HIS reusing a name while
    /// its result was being written, a refusal of a duplicate).
    fn keeps_final(&self, path: &Path, text: &str) -> bool {
        use crate::envelope::Direction;
        use crate::his::ResultMessage;
        let Some(key) = &self.key else { return false };
        let Ok(f) = crate::intake::open_regular(path) else { return false };
        let mut old = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(f, 1 << 16), &mut old).is_err() {
            return false;
        }
        let parse = |b: &[u8]| key.open(Direction::ToHis, b).ok().and_then(|p| ResultMessage::parse(&p).ok());
        let Some(old) = parse(&old) else { return false };
        if !old.status.is_final() {
            return false;
        }
        let Some(new) = parse(text.as_bytes()) else { return false };
        let same = |m: &ResultMessage| {
            (
                m.status,
                m.order_no.clone(),
                m.refund_no.clone(),
                m.pay_order_no.clone(),
                m.amount.clone(),
                m.channel.clone(),
                m.error_code.clone(),
            )
        };
        same(&old) != same(&new)
    }

    fn step(&mut self, s: FsStep, p: &Path) -> std::io::Result<()> {
        match self.fault.as_mut().and_then(|f| f(s, p)) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub fn apply(&mut self, op: &FileOp) -> std::io::Result<()> {
        match op {
            FileOp::WriteResult { stem, text, final_ } => {
                let name = format!("{stem}.{}", crate::folders::RESULT_EXT);
                let dir = self.folders.outbox.clone();
                if self.keeps_final(&dir.join(&name), text) {
                    tracing::warn!(file = %name, "holds another final result, which stays; this answer is not written there");
                    return Ok(());
                }
                self.write_atomic(&dir, &name, text.as_bytes(), *final_)
            }
            FileOp::Archive { path, day } => {
                if !present(path) {
                    return Ok(()); // moved before a restart
                }
                let dir = self.folders.archive.join(day);
                self.move_into(path, &dir).map(|_| ())
            }
            FileOp::Quarantine { path, reason } => {
                if !present(path) {
                    return Ok(()); // moved before a restart, its reason beside it
                }
                // The reason first, under the name the file is about to take: a crash in
                // between leaves the file in work/ (refused again at start-up), never a refused
                // file without its reason.
                let dir = self.folders.error.clone();
                self.step(FsStep::CreateDir, &dir)?;
                std::fs::create_dir_all(&dir)?;
                not_a_link(&dir)?;
                let dest = free_name(&dir, &name_of(path));
                let reason_name = format!("{}.reason.txt", name_of(&dest));
                self.write_atomic(&dir, &reason_name, reason.as_bytes(), true)?;
                self.step(FsStep::Rename, &dest)?;
                crate::folders::rename_no_link(path, &dest)?;
                crate::folders::sync_dir(&dir);
                Ok(())
            }
        }
    }

    fn write_atomic(&mut self, dir: &Path, name: &str, bytes: &[u8], durable_name: bool) -> std::io::Result<()> {
        not_a_link(dir)?;
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let dest = dir.join(name);
        let res = (|| {
            self.step(FsStep::CreateTemp, &tmp)?;
            let mut f = std::fs::File::create(&tmp)?;
            self.step(FsStep::Write, &tmp)?;
            f.write_all(bytes)?;
            self.step(FsStep::Fsync, &tmp)?;
            f.sync_all()?;
            drop(f);
            self.step(FsStep::Rename, &dest)?;
            std::fs::rename(&tmp, &dest)?;
            if durable_name {
                crate::folders::sync_dir(dir);
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        res
    }

    fn move_into(&mut self, from: &Path, dir: &Path) -> std::io::Result<PathBuf> {
        self.step(FsStep::CreateDir, dir)?;
        std::fs::create_dir_all(dir)?;
        not_a_link(dir)?;
        let dest = free_name(dir, &name_of(from));
        self.step(FsStep::Rename, &dest)?;
        crate::folders::rename_no_link(from, &dest)?;
        // No flush of the folder: a move lost in a power cut leaves the file in work/, where the
        // next start finds its order answered and archives it again.
        Ok(dest)
    }
}

/// `dir/name`, or `dir/name.N` with the first N not taken.
fn free_name(dir: &Path, name: &str) -> PathBuf {
    let mut dest = dir.join(name);
    let mut n = 1;
    while present(&dest) {
        dest = dir.join(format!("{name}.{n}"));
        n += 1;
    }
    dest
}
