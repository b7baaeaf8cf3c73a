//! The order journal: one SQLite row per order, every state change recorded with its time.
//!
//! WAL with `synchronous = FULL`: a state change is on disk when its call returns, and the
//! engine sends nothing to the POS before that (ARCHITECTURE.md, invariant 1).
//!
//! Every transition is guarded by the state it leaves (`WHERE state = ?`) and checked against
//! [`crate::lifecycle::TRANSITIONS`]; the schema is versioned (`PRAGMA user_version`), and a
//! seal file beside the journal lets the next start tell a journal that lost its history.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::lifecycle::sql_list;

/// SQLite's own words once: rusqlite's text repeats them ("file is not a database: Error code
/// 26: file is not a database"), and the error is not chained as a source for the same reason.
fn sqlite_text(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqliteFailure(f, None) => f.to_string(),
        other => other.to_string(),
    }
}

impl From<rusqlite::Error> for JournalError {
    fn from(e: rusqlite::Error) -> Self {
        JournalError::Sqlite(e)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal database error: {}", sqlite_text(.0))]
    Sqlite(rusqlite::Error),
    #[error("journal holds an unknown state {0:?}")]
    BadState(String),
    /// A transition the lifecycle table does not allow, or whose order is no longer in the state
    /// it was read in.
    #[error("order {id}: transition {from} --{cause:?}--> {to} refused ({why})")]
    Transition { id: i64, from: &'static str, cause: Cause, to: &'static str, why: &'static str },
    #[error("journal schema version {found} is newer than this program knows ({known}); install the newer HIS Bridge")]
    TooNew { found: i64, known: i64 },
}

impl JournalError {
    /// The journal cannot be written (disk full, read-only, I/O error): not a logic error.
    pub fn is_storage(&self) -> bool {
        matches!(self, JournalError::Sqlite(_))
    }
}

pub type Result<T> = std::result::Result<T, JournalError>;

pub use crate::lifecycle::{CancelledBy, Cause, Kind, State};

/// One order as journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    pub id: i64,
    pub key: String,
    pub order_no: String,
    pub refund_no: Option<String>,
    pub terminal_id: String,
    pub kind: Kind,
    /// Signed fen: positive collects, negative refunds.
    pub amount_fen: i64,
    pub description: Option<String>,
    pub operator: Option<String>,
    pub state: State,
    pub attempt: i64,
    pub pos_ref: Option<String>,
    /// For a refund: the POS reference of the collection it refunds.
    pub orig_pos_ref: Option<String>,
    pub device_id: Option<String>,
    pub pay_order_no: Option<String>,
    pub channel: Option<String>,
    pub pos_code: Option<String>,
    pub pos_message: Option<String>,
    pub error_code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
    pub finished_at: Option<String>,
    pub result_written_at: Option<String>,
    /// Who asked for the current attempt's cancel.
    pub cancelled_by: Option<CancelledBy>,
    /// The strongest thing the POS said about the current attempt (`EVENT`, `IN_PROGRESS`,
    /// `PAID`, `REFUNDED`...): a later "never heard of it" contradicts it.
    pub pos_evidence: Option<String>,
}

/// What the engine journals for a new order.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub key: &'a str,
    pub order_no: &'a str,
    pub refund_no: Option<&'a str>,
    pub terminal_id: &'a str,
    pub amount_fen: i64,
    pub description: Option<&'a str>,
    pub operator: Option<&'a str>,
    pub orig_pos_ref: Option<&'a str>,
    pub source: &'a str,
    /// The result file it answers, registered in the same transaction.
    pub reply: Option<ReplyTo<'a>>,
}

/// A result file an order answers: its stem, and the claimed instruction file to archive.
#[derive(Debug, Clone, Copy)]
pub struct ReplyTo<'a> {
    pub stem: &'a str,
    pub work_file: Option<&'a str>,
}

/// Fields a transition may set (None leaves the column as it is).
#[derive(Debug, Clone, Default)]
pub struct Update<'a> {
    pub pay_order_no: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub pos_code: Option<&'a str>,
    pub pos_message: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub detail: Option<&'a str>,
    pub cancelled_by: Option<CancelledBy>,
    pub evidence: Option<&'a str>,
    /// A result file to register in the same transaction.
    pub reply: Option<ReplyTo<'a>>,
}

/// One answer an order owes: a result file stem, the claimed instruction file to archive, and
/// when its final result was written (after which that file is never written again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRow {
    pub stem: String,
    pub work_file: Option<String>,
    pub final_at: Option<String>,
    /// The final result this reply owes (plaintext JSON), fixed when its order became final:
    /// a later attempt of the same order never changes what this file is told.
    pub pinned: Option<String>,
}

/// The local time as the journal writes it.
pub fn now_str() -> String {
    stamp(chrono::Local::now().fixed_offset())
}

pub fn stamp(t: chrono::DateTime<chrono::FixedOffset>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string()
}

const SCHEMA_V0: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    order_no TEXT NOT NULL,
    refund_no TEXT,
    terminal_id TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('SALE','REFUND')),
    amount_fen INTEGER NOT NULL,
    description TEXT,
    operator TEXT,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    pos_ref TEXT,
    orig_pos_ref TEXT,
    device_id TEXT,
    pay_order_no TEXT,
    channel TEXT,
    pos_code TEXT,
    pos_message TEXT,
    error_code TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    sent_at TEXT,
    finished_at TEXT,
    result_written_at TEXT
);
CREATE INDEX IF NOT EXISTS orders_state ON orders(state);
CREATE INDEX IF NOT EXISTS orders_order_no ON orders(order_no);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    at TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_order ON events(order_id);
CREATE TABLE IF NOT EXISTS replies (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    reply_to TEXT NOT NULL,
    work_file TEXT,
    PRIMARY KEY (order_id, reply_to)
);
CREATE TABLE IF NOT EXISTS seen_messages (
    nonce TEXT PRIMARY KEY,
    at_unix INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pos_totals (
    date TEXT NOT NULL,
    channel TEXT NOT NULL,
    sales INTEGER NOT NULL,
    sales_fen INTEGER NOT NULL,
    refunds INTEGER NOT NULL,
    refunds_fen INTEGER NOT NULL,
    fetched_at TEXT NOT NULL,
    PRIMARY KEY (date, channel)
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    source TEXT NOT NULL,
    order_no TEXT,
    error_code TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// Schema migrations, in order: migration `i` takes the schema from version `i` to `i + 1`.
/// Version 0 is the schema above (the first release's). Never edit a published migration.
const MIGRATIONS: &[&str] = &[
    // 1: who cancelled, what the POS said, per-reply final results, message expiry, the
    //    journal's identity, and the indexes the per-order path needs.
    "ALTER TABLE orders ADD COLUMN cancelled_by TEXT;
     ALTER TABLE orders ADD COLUMN pos_evidence TEXT;
     ALTER TABLE replies ADD COLUMN final_at TEXT;
     ALTER TABLE replies ADD COLUMN pinned TEXT;
     ALTER TABLE seen_messages ADD COLUMN expires_unix INTEGER;
     UPDATE seen_messages SET expires_unix = at_unix + 1200;
     CREATE INDEX IF NOT EXISTS seen_messages_expiry ON seen_messages(expires_unix);
     CREATE INDEX IF NOT EXISTS orders_pos_ref ON orders(pos_ref);
     CREATE INDEX IF NOT EXISTS replies_stem ON replies(reply_to);
     CREATE INDEX IF NOT EXISTS rejects_at ON rejects(at);
     CREATE INDEX IF NOT EXISTS orders_unwritten ON orders(id) WHERE result_written_at IS NULL;
     UPDATE replies SET final_at = (SELECT result_written_at FROM orders WHERE orders.id = replies.order_id);
     CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
     INSERT OR IGNORE INTO meta (name, value) VALUES ('journal_id', lower(hex(randomblob(16))));",
    // 2: the day an order counts on, indexed (reports and the dashboard read one day of a
    //    journal that holds years).
    "CREATE INDEX IF NOT EXISTS orders_day ON orders(substr(COALESCE(finished_at, created_at), 1, 10));",
];

/// Log pages after which SQLite checkpoints inside a commit (about 16 MB): a backstop for a
/// journal written without an idle moment.
const WAL_BACKSTOP_PAGES: i64 = 4000;

/// The day an order counts on, exactly as the `orders_day` index says it (SQLite uses an
/// expression index only for the identical expression).
const DAY: &str = "substr(COALESCE(finished_at, created_at), 1, 10)";

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const COLUMNS: &str = "id, key, order_no, refund_no, terminal_id, kind, amount_fen, description, operator, state, \
     attempt, pos_ref, orig_pos_ref, device_id, pay_order_no, channel, pos_code, pos_message, error_code, \
     created_at, updated_at, sent_at, finished_at, result_written_at, cancelled_by, pos_evidence";

fn row_to_order(r: &Row<'_>) -> rusqlite::Result<(OrderRow, String)> {
    let state: String = r.get(9)?;
    let kind: String = r.get(5)?;
    let cancelled_by: Option<String> = r.get(24)?;
    Ok((
        OrderRow {
            id: r.get(0)?,
            key: r.get(1)?,
            order_no: r.get(2)?,
            refund_no: r.get(3)?,
            terminal_id: r.get(4)?,
            kind: if kind == "REFUND" { Kind::Refund } else { Kind::Sale },
            amount_fen: r.get(6)?,
            description: r.get(7)?,
            operator: r.get(8)?,
            state: State::Accepted,
            attempt: r.get(10)?,
            pos_ref: r.get(11)?,
            orig_pos_ref: r.get(12)?,
            device_id: r.get(13)?,
            pay_order_no: r.get(14)?,
            channel: r.get(15)?,
            pos_code: r.get(16)?,
            pos_message: r.get(17)?,
            error_code: r.get(18)?,
            created_at: r.get(19)?,
            updated_at: r.get(20)?,
            sent_at: r.get(21)?,
            finished_at: r.get(22)?,
            result_written_at: r.get(23)?,
            cancelled_by: cancelled_by.as_deref().and_then(CancelledBy::parse),
            pos_evidence: r.get(25)?,
        },
        state,
    ))
}

fn finish(pair: (OrderRow, String)) -> Result<OrderRow> {
    let (mut row, state) = pair;
    row.state = State::parse(&state).ok_or(JournalError::BadState(state))?;
    Ok(row)
}

/// What the start-up check found about the journal's history (see [`Journal::check_seal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// The journal holds at least what the seal recorded.
    Intact,
    /// No seal yet (a new journal, or one from before seals): one is written now.
    Sealed,
    /// The journal holds less than it did (deleted WAL after a crash, truncated, rolled back,
    /// replaced): money must not move until IT has looked (`hisbridge journal accept`).
    Lost(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Seal {
    journal_id: String,
    /// The highest `events.id` known committed.
    events: i64,
    orders: i64,
}

type FaultHook = Box<dyn FnMut(&'static str) -> bool + Send>;

pub struct Journal {
    conn: Connection,
    path: PathBuf,
    /// The wall clock of the step being handled (the engine passes its `now` in); None reads
    /// the system clock.
    now: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// The highest event id written by this connection or found at open.
    high_water: i64,
    sealed_at: i64,
    fault: Option<FaultHook>,
    /// A lazy commit (see [`Journal::lazily`]) is not yet known to be on disk.
    unsynced: bool,
    /// Something was committed since the last [`Journal::checkpoint`].
    logged: bool,
    /// The background checkpointer, when one runs ([`Journal::checkpoint_in_background`]).
    checkpointer: Option<std::sync::mpsc::SyncSender<()>>,
}

impl Journal {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        // The journal is the bridge's: owner only where the platform says so by mode bits
        // (on Windows the data folder's ACL decides, docs/security.md).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(path) {
                if m.permissions().mode() & 0o077 != 0 {
                    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints run when the engine is idle ([`Journal::checkpoint`]); SQLite's own, in the
        // middle of a commit, only when the log has grown this far without an idle moment.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
        let mut j = Self {
            conn,
            path: path.to_path_buf(),
            now: None,
            high_water: 0,
            sealed_at: -1,
            fault: None,
            unsynced: false,
            logged: false,
            checkpointer: None,
        };
        j.migrate()?;
        j.high_water = j.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))?;
        Ok(j)
    }

    /// Brings the schema to [`SCHEMA_VERSION`], one migration per transaction.
    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(JournalError::TooNew { found: version, known: SCHEMA_VERSION });
        }
        if version == 0 {
            self.conn.execute_batch(SCHEMA_V0)?;
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Sets the wall clock for what follows (the engine passes the `now` of each step).
    pub fn set_now(&mut self, now: chrono::DateTime<chrono::FixedOffset>) {
        self.now = Some(now);
    }

    fn stamp(&self) -> String {
        match self.now {
            Some(t) => stamp(t),
            None => now_str(),
        }
    }

    /// Test hook: `hook(op)` returning true makes that write fail as a full disk would.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn set_fault_hook(&mut self, hook: Option<FaultHook>) {
        self.fault = hook;
    }

    fn guard(&mut self, op: &'static str) -> Result<()> {
        if let Some(f) = self.fault.as_mut() {
            if f(op) {
                return Err(JournalError::Sqlite(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                    Some(format!("database or disk is full (injected at {op})")),
                )));
            }
        }
        Ok(())
    }

    fn seal_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".seal");
        PathBuf::from(p)
    }

    fn journal_id(&self) -> Result<String> {
        Ok(self.conn.query_row("SELECT value FROM meta WHERE name = 'journal_id'", [], |r| r.get(0))?)
    }

    fn order_count(&self) -> Result<i64> {
        Ok(self.conn.query_row("SELECT COALESCE(MAX(id), 0) FROM orders", [], |r| r.get(0))?)
    }

    /// Compares the journal with the seal the last run left: the same identity and at least
    /// as many events and orders. Writes a seal where there is none.
    pub fn check_seal(&mut self) -> Result<Integrity> {
        let id = self.journal_id()?;
        let orders = self.order_count()?;
        let text = match std::fs::read_to_string(self.seal_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.reseal(true);
                return Ok(Integrity::Sealed);
            }
            Err(e) => return Ok(Integrity::Lost(format!("the journal's seal cannot be read: {e}"))),
        };
        let Ok(seal) = serde_json::from_str::<Seal>(&text) else {
            // A seal cut short by a power loss says nothing either way: write a new one.
            tracing::warn!(seal = %self.seal_path().display(), "journal seal unreadable; writing a new one");
            self.reseal(true);
            return Ok(Integrity::Sealed);
        };
        if seal.journal_id != id {
            return Ok(Integrity::Lost(format!(
                "the journal file was replaced: it is journal {id}, the last run used journal {}",
                seal.journal_id
            )));
        }
        if self.high_water < seal.events || orders < seal.orders {
            return Ok(Integrity::Lost(format!(
                "the journal lost history: it holds {} events and {orders} orders, the last run had written {} events and {} orders (a deleted -wal file after a crash, a truncated or restored file)",
                self.high_water, seal.events, seal.orders
            )));
        }
        self.reseal(true);
        Ok(Integrity::Intact)
    }

    /// IT confirmed a journal that lost history: the seal is set to what the journal holds now.
    pub fn accept_history(&mut self) -> Result<()> {
        self.sealed_at = -1;
        self.reseal(true);
        Ok(())
    }

    /// Records how far the journal has got, when it moved since the last seal. Cheap (no fsync):
    /// a seal can only lag behind the journal, never run ahead of it.
    pub fn reseal(&mut self, force: bool) {
        if !force && self.sealed_at == self.high_water {
            return;
        }
        let (Ok(journal_id), Ok(orders)) = (self.journal_id(), self.order_count()) else {
            return;
        };
        let seal = Seal { journal_id, events: self.high_water, orders };
        let path = self.seal_path();
        let tmp = path.with_extension("seal.tmp");
        let text = serde_json::to_string(&seal).unwrap_or_default();
        match std::fs::write(&tmp, text).and_then(|_| std::fs::rename(&tmp, &path)) {
            Ok(()) => self.sealed_at = self.high_water,
            Err(e) => tracing::warn!(error = %e, "cannot write the journal seal"),
        }
    }

    /// Runs `f`'s commits without waiting for the disk (`synchronous = NORMAL`).
    ///
    /// For the bookkeeping whose loss in a power cut costs nothing but a repetition: message
    /// ids (a message whose handling changed nothing else may be taken again), what the POS
    /// said short of a result, a reply's pinned text and "written" marks (a final result is
    /// then written again, the same bytes). A WAL is written in order, so the next durable
    /// commit (every state change) makes these durable too; until one comes, the engine calls
    /// [`Journal::sync`] shortly after. Nothing that must be on disk before a byte goes to the
    /// POS or before an answer goes to the HIS is ever lazy.
    fn lazily<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let res = f(self);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        if res.is_ok() {
            self.unsynced = true;
            self.logged = true;
        }
        res
    }

    /// Copies the log into the database file, away from the payment path: on the background
    /// checkpointer when one runs, else here. The engine calls it when a step has left the
    /// journal idle, so that a commit seldom has to checkpoint. Passive: it never waits for a
    /// reader, and the log is on disk before the database file is written.
    pub fn checkpoint(&mut self) -> Result<()> {
        if !self.logged {
            return Ok(());
        }
        self.guard("checkpoint")?;
        self.logged = false;
        match &self.checkpointer {
            Some(tx) => {
                let _ = tx.try_send(()); // one pending request covers everything logged so far
            }
            None => self.conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?,
        }
        Ok(())
    }

    /// Runs checkpoints on a thread and connection of their own (a WAL checkpoint and new
    /// commits proceed side by side). Ends with this journal.
    pub fn checkpoint_in_background(&mut self) -> Result<()> {
        let conn = Connection::open(&self.path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new().name("journal-checkpoint".into()).spawn(move || {
            while rx.recv().is_ok() {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "journal checkpoint failed; SQLite checkpoints on a later commit");
                }
            }
        });
        if spawned.is_ok() {
            self.checkpointer = Some(tx);
        }
        Ok(())
    }

    /// Whether anything was committed since the last checkpoint.
    pub fn needs_checkpoint(&self) -> bool {
        self.logged
    }

    /// Whether lazy commits wait for [`Journal::sync`].
    pub fn needs_sync(&self) -> bool {
        self.unsynced
    }

    /// Makes every lazy commit durable: one durable commit of its own (which, in a WAL, puts
    /// everything before it on disk).
    pub fn sync(&mut self) -> Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        self.guard("sync")?;
        let now = self.stamp();
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES ('synced_at', ?1)")?
            .execute([now])?;
        self.unsynced = false;
        Ok(())
    }

    fn query_one(&self, where_sql: &str, p: impl rusqlite::Params) -> Result<Option<OrderRow>> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE {where_sql}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        stmt.query_row(p, row_to_order).optional()?.map(finish).transpose()
    }

    fn query_many(&self, where_sql: &str, p: impl rusqlite::Params) -> Result<Vec<OrderRow>> {
        let sql = format!("SELECT {COLUMNS} FROM orders WHERE {where_sql}");
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(p, row_to_order)?;
        rows.map(|r| finish(r?)).collect()
    }

    pub fn get(&self, id: i64) -> Result<Option<OrderRow>> {
        self.query_one("id = ?1", [id])
    }

    pub fn get_by_key(&self, key: &str) -> Result<Option<OrderRow>> {
        self.query_one("key = ?1", [key])
    }

    fn event(tx: &rusqlite::Transaction<'_>, id: i64, at: &str, state: State, detail: Option<&str>) -> Result<i64> {
        tx.prepare_cached("INSERT INTO events (order_id, at, state, detail) VALUES (?1, ?2, ?3, ?4)")?
            .execute(params![id, at, state.as_str(), detail])?;
        Ok(tx.last_insert_rowid())
    }

    /// Journals a validated order in state ACCEPTED; durable when this returns.
    pub fn insert(&mut self, o: &NewOrder<'_>) -> Result<OrderRow> {
        self.guard("insert")?;
        let now = self.stamp();
        let kind = if o.amount_fen < 0 { Kind::Refund } else { Kind::Sale };
        let tx = self.conn.transaction()?;
        tx.prepare_cached(
            "INSERT INTO orders (key, order_no, refund_no, terminal_id, kind, amount_fen, description, operator, source, \
             state, orig_pos_ref, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,'ACCEPTED',?10,?11,?11)",
        )?
        .execute(params![
                o.key,
                o.order_no,
                o.refund_no,
                o.terminal_id,
                kind.as_str(),
                o.amount_fen,
                o.description,
                o.operator,
                o.source,
                o.orig_pos_ref,
                now
            ])?;
        let id = tx.last_insert_rowid();
        let ev = Self::event(&tx, id, &now, State::Accepted, Some(o.source))?;
        if let Some(r) = o.reply {
            Self::reply_in(&tx, id, r)?;
        }
        tx.commit()?;
        self.high_water = ev;
        self.unsynced = false;
        self.logged = true;
        Ok(self.get(id)?.expect("just inserted"))
    }

    fn check(row: &OrderRow, cause: Cause, to: State) -> Result<()> {
        if crate::lifecycle::allowed(row.state, cause, to) {
            Ok(())
        } else {
            Err(JournalError::Transition {
                id: row.id,
                from: row.state.as_str(),
                cause,
                to: to.as_str(),
                why: "not in the lifecycle table",
            })
        }
    }

    /// Starts a new POS attempt: the next attempt number, its POS reference, state SENT.
    /// Durable before the caller writes any byte to the POS.
    pub fn start_attempt(&mut self, row: &OrderRow, device_id: &str) -> Result<OrderRow> {
        Self::check(row, Cause::Send, State::Sent)?;
        self.guard("start_attempt")?;
        let now = self.stamp();
        let tx = self.conn.transaction()?;
        let n = tx
            .prepare_cached(
                "UPDATE orders SET attempt = attempt + 1, pos_ref = key || '.' || (attempt + 1), state = 'SENT', \
             device_id = ?2, sent_at = ?3, updated_at = ?3, pay_order_no = NULL, channel = NULL, pos_code = NULL, \
             pos_message = NULL, error_code = NULL, finished_at = NULL, result_written_at = NULL, cancelled_by = NULL, \
             pos_evidence = NULL WHERE id = ?1 AND state = 'ACCEPTED'",
            )?
            .execute(params![row.id, device_id, now])?;
        if n != 1 {
            return Err(Self::stale(row, Cause::Send, State::Sent));
        }
        let detail = format!("attempt {} ref {}.{}", row.attempt + 1, row.key, row.attempt + 1);
        let ev = Self::event(&tx, row.id, &now, State::Sent, Some(&detail))?;
        tx.commit()?;
        self.high_water = ev;
        self.unsynced = false;
        self.logged = true;
        Ok(self.get(row.id)?.expect("exists"))
    }

    fn stale(row: &OrderRow, cause: Cause, to: State) -> JournalError {
        JournalError::Transition {
            id: row.id,
            from: row.state.as_str(),
            cause,
            to: to.as_str(),
            why: "the order is no longer in that state",
        }
    }

    /// Records a state change and the fields that came with it, if the lifecycle table allows
    /// it and the order is still in the state `row` was read in.
    pub fn transition(&mut self, row: &OrderRow, cause: Cause, to: State, u: &Update<'_>) -> Result<OrderRow> {
        Self::check(row, cause, to)?;
        self.guard("transition")?;
        let now = self.stamp();
        let finished = to.is_final().then_some(now.as_str());
        let retry = cause == Cause::Retry;
        let tx = self.conn.transaction()?;
        let n = tx.prepare_cached(
            "UPDATE orders SET state = ?2, updated_at = ?3, \
             finished_at = CASE WHEN ?12 THEN NULL ELSE COALESCE(?4, finished_at) END, \
             result_written_at = CASE WHEN ?12 THEN NULL ELSE result_written_at END, \
             pay_order_no = COALESCE(?5, pay_order_no), channel = COALESCE(?6, channel), pos_code = COALESCE(?7, pos_code), \
             pos_message = COALESCE(?8, pos_message), error_code = COALESCE(?9, error_code), \
             cancelled_by = COALESCE(?10, cancelled_by), pos_evidence = COALESCE(?11, pos_evidence) \
             WHERE id = ?1 AND state = ?13",
        )?
        .execute(params![
                row.id,
                to.as_str(),
                now,
                finished,
                u.pay_order_no,
                u.channel,
                u.pos_code,
                u.pos_message,
                u.error_code,
                u.cancelled_by.map(CancelledBy::as_str),
                u.evidence,
                retry,
                row.state.as_str()
            ])?;
        if n != 1 {
            return Err(Self::stale(row, cause, to));
        }
        let ev = Self::event(&tx, row.id, &now, to, u.detail)?;
        if let Some(r) = u.reply {
            Self::reply_in(&tx, row.id, r)?;
        }
        tx.commit()?;
        self.high_water = ev;
        self.unsynced = false;
        self.logged = true;
        Ok(self.get(row.id)?.expect("exists"))
    }

    /// Records what the POS said about an order's current attempt without changing its state.
    pub fn note_evidence(&mut self, row: &OrderRow, evidence: &str) -> Result<()> {
        if row.pos_evidence.as_deref() == Some(evidence) {
            return Ok(());
        }
        self.guard("note_evidence")?;
        self.lazily(|j| {
            j.conn
                .prepare_cached("UPDATE orders SET pos_evidence = ?2 WHERE id = ?1")?
                .execute(params![row.id, evidence])?;
            Ok(())
        })
    }

    /// Puts an order back in the queue when its command provably never left the bridge.
    pub fn requeue(&mut self, row: &OrderRow, detail: &str) -> Result<OrderRow> {
        Self::check(row, Cause::Requeue, State::Accepted)?;
        self.guard("requeue")?;
        let now = self.stamp();
        let tx = self.conn.transaction()?;
        let n = tx.prepare_cached(
            "UPDATE orders SET state = 'ACCEPTED', attempt = attempt - 1, pos_ref = NULL, updated_at = ?2 WHERE id = ?1 AND state = 'SENT'",
        )?
        .execute(params![row.id, now])?;
        if n != 1 {
            return Err(Self::stale(row, Cause::Requeue, State::Accepted));
        }
        let ev = Self::event(&tx, row.id, &now, State::Accepted, Some(detail))?;
        tx.commit()?;
        self.high_water = ev;
        self.unsynced = false;
        self.logged = true;
        Ok(self.get(row.id)?.expect("exists"))
    }

    pub fn mark_result_written(&mut self, id: i64) -> Result<()> {
        self.guard("mark_result_written")?;
        let now = self.stamp();
        self.lazily(|j| {
            j.conn
                .prepare_cached("UPDATE orders SET result_written_at = ?2 WHERE id = ?1")?
                .execute(params![id, now])?;
            Ok(())
        })
    }

    /// The oldest order waiting for the POS.
    /// Every order queued for the POS, oldest first.
    pub fn accepted_orders(&self) -> Result<Vec<OrderRow>> {
        self.query_many("state = 'ACCEPTED' ORDER BY id", [])
    }

    pub fn next_accepted(&self) -> Result<Option<OrderRow>> {
        self.query_one("state = 'ACCEPTED' ORDER BY id LIMIT 1", [])
    }

    /// Orders whose outcome at the POS is not known to the bridge.
    pub fn open_orders(&self) -> Result<Vec<OrderRow>> {
        let sql = format!("state IN ({}) ORDER BY id", sql_list(State::is_open));
        self.query_many(&sql, [])
    }

    /// Final orders whose result has not been written everywhere yet (a crash or a failed write
    /// in between).
    pub fn unwritten_results(&self) -> Result<Vec<OrderRow>> {
        // Through the partial index of unwritten rows (a handful), never the state index (whose
        // final states hold the whole history).
        let sql = format!(
            "SELECT {COLUMNS} FROM orders INDEXED BY orders_unwritten WHERE result_written_at IS NULL \
             AND state IN ({}) ORDER BY id",
            sql_list(State::is_final)
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map([], row_to_order)?;
        rows.map(|r| finish(r?)).collect()
    }

    /// Refund amounts (fen, positive) already done or possibly under way for an order number.
    pub fn refunds_committed(&self, order_no: &str, except_id: Option<i64>) -> Result<i64> {
        let sql = format!(
            "SELECT COALESCE(SUM(-amount_fen), 0) FROM orders WHERE order_no = ?1 AND kind = 'REFUND' \
             AND state IN ({}) AND id IS NOT ?2",
            sql_list(|s| !s.allows_retry())
        );
        Ok(self.conn.prepare_cached(&sql)?.query_row(params![order_no, except_id], |r| r.get(0))?)
    }

    /// Records where the order's results go (`reply_to`, a result file stem) and the claimed
    /// instruction file to archive once the order is final. A stem whose final result was
    /// written starts again when a new instruction names it (its old result file is gone).
    pub fn add_reply(&mut self, id: i64, reply_to: &str, work_file: Option<&str>) -> Result<()> {
        self.guard("add_reply")?;
        Self::reply_in(&self.conn, id, ReplyTo { stem: reply_to, work_file })
    }

    fn reply_in(conn: &Connection, id: i64, r: ReplyTo<'_>) -> Result<()> {
        conn.prepare_cached(
            "INSERT INTO replies (order_id, reply_to, work_file) VALUES (?1, ?2, ?3) \
             ON CONFLICT (order_id, reply_to) DO UPDATE SET work_file = COALESCE(excluded.work_file, work_file), \
             final_at = NULL, pinned = NULL",
        )?
        .execute(params![id, r.stem, r.work_file])?;
        // A new answer is owed: the order's results are not all written any more.
        conn.prepare_cached("UPDATE orders SET result_written_at = NULL WHERE id = ?1")?.execute([id])?;
        Ok(())
    }

    /// Every answer an order owes, in the order they came.
    pub fn replies(&self, id: i64) -> Result<Vec<ReplyRow>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT reply_to, work_file, final_at, pinned FROM replies WHERE order_id = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map([id], |r| {
            Ok(ReplyRow { stem: r.get(0)?, work_file: r.get(1)?, final_at: r.get(2)?, pinned: r.get(3)? })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Fixes the final result a reply owes (see [`ReplyRow::pinned`]).
    pub fn pin_reply(&mut self, id: i64, reply_to: &str, json: &str) -> Result<()> {
        self.guard("pin_reply")?;
        // Lazy: a pin lost in a power cut is made again from the same final row.
        self.lazily(|j| {
            j.conn
                .prepare_cached(
                    "UPDATE replies SET pinned = ?3 WHERE order_id = ?1 AND reply_to = ?2 AND pinned IS NULL",
                )?
                .execute(params![id, reply_to, json])?;
            Ok(())
        })
    }

    /// The reply's final result is written: that file is never written again.
    pub fn mark_reply_final(&mut self, id: i64, reply_to: &str) -> Result<()> {
        self.guard("mark_reply_final")?;
        let now = self.stamp();
        self.lazily(|j| {
            j.conn
                .prepare_cached("UPDATE replies SET final_at = ?3 WHERE order_id = ?1 AND reply_to = ?2")?
                .execute(params![id, reply_to, now])?;
            Ok(())
        })
    }

    /// Whether a result file stem still answers an order whose final result it has not got.
    pub fn stem_in_use(&self, stem: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM replies WHERE reply_to = ?1 AND final_at IS NULL LIMIT 1")?
            .query_row([stem], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Forgets the archived instruction file of a reply.
    pub fn clear_work_file(&mut self, id: i64, reply_to: &str) -> Result<()> {
        self.guard("clear_work_file")?;
        self.lazily(|j| {
            j.conn
                .prepare_cached("UPDATE replies SET work_file = NULL WHERE order_id = ?1 AND reply_to = ?2")?
                .execute(params![id, reply_to])?;
            Ok(())
        })
    }

    /// The order a POS reference belongs to (indexed).
    pub fn by_pos_ref(&self, pos_ref: &str) -> Result<Option<OrderRow>> {
        self.query_one("pos_ref = ?1", [pos_ref])
    }

    /// Records a message id (its nonce), kept until `expires_unix`; false when it was seen
    /// before (a replay).
    pub fn record_message(&mut self, nonce_hex: &str, source: &str, now_unix: i64, expires_unix: i64) -> Result<bool> {
        self.guard("record_message")?;
        let n = self.lazily(|j| {
            Ok(j.conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO seen_messages (nonce, at_unix, source, expires_unix) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![nonce_hex, now_unix, source, expires_unix])?)
        })?;
        Ok(n == 1)
    }

    /// Where a known message id came from (`file:<stem>`, `socket:<n>`).
    pub fn message_source(&self, nonce_hex: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT source FROM seen_messages WHERE nonce = ?1")?
            .query_row([nonce_hex], |r| r.get(0))
            .optional()?)
    }

    /// Forgets message ids that expired before `now_unix` (a message that old is refused by its
    /// `sent_at` anyway).
    pub fn prune_messages(&mut self, now_unix: i64) -> Result<usize> {
        self.guard("prune_messages")?;
        Ok(self.conn.prepare_cached("DELETE FROM seen_messages WHERE expires_unix < ?1")?.execute([now_unix])?)
    }

    /// Records an instruction refused before it became an order.
    pub fn record_reject(&mut self, source: &str, order_no: Option<&str>, code: &str, detail: &str) -> Result<()> {
        self.guard("record_reject")?;
        let now = self.stamp();
        self.conn
            .prepare_cached(
                "INSERT INTO rejects (at, source, order_no, error_code, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![now, source, order_no, code, detail])?;
        Ok(())
    }

    /// Forgets refusals recorded before `before` (a journal timestamp).
    pub fn prune_rejects(&mut self, before: &str) -> Result<usize> {
        self.guard("prune_rejects")?;
        Ok(self.conn.prepare_cached("DELETE FROM rejects WHERE at < ?1")?.execute([before])?)
    }

    pub fn rejects(&self) -> Result<Vec<(String, Option<String>, String)>> {
        let mut stmt = self.conn.prepare("SELECT source, order_no, error_code FROM rejects ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The state history of one order: (time, state, detail).
    pub fn events(&self, id: i64) -> Result<Vec<(String, String, Option<String>)>> {
        let mut stmt = self.conn.prepare("SELECT at, state, detail FROM events WHERE order_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Keeps the POS's totals for a day (`YYYYMMDD`), replacing an earlier answer.
    pub fn save_pos_totals(&mut self, t: &hisbridge_protocol::PosTotals) -> Result<()> {
        self.guard("save_pos_totals")?;
        let now = self.stamp();
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM pos_totals WHERE date = ?1", [&t.date])?;
        for l in &t.lines {
            tx.execute(
                "INSERT INTO pos_totals (date, channel, sales, sales_fen, refunds, refunds_fen, fetched_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    t.date,
                    l.channel.as_str(),
                    l.sales as i64,
                    l.sales_fen as i64,
                    l.refunds as i64,
                    l.refunds_fen as i64,
                    now
                ],
            )?;
        }
        if t.lines.is_empty() {
            // An answer with nothing in it is still an answer: remember when it came.
            tx.execute(
                "INSERT INTO pos_totals (date, channel, sales, sales_fen, refunds, refunds_fen, fetched_at) \
                 VALUES (?1, '', 0, 0, 0, 0, ?2)",
                params![t.date, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The POS's last totals for a day, and when they were fetched.
    pub fn pos_totals(&self, date: &str) -> Result<Option<(hisbridge_protocol::PosTotals, String)>> {
        let mut stmt = self.conn.prepare(
            "SELECT channel, sales, sales_fen, refunds, refunds_fen, fetched_at FROM pos_totals WHERE date = ?1",
        )?;
        let rows = stmt.query_map([date], |r| {
            Ok((
                r.get::<_, String>(0)?,
                [r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get(4)?].map(|v| v.max(0) as u64),
                r.get::<_, String>(5)?,
            ))
        })?;
        let mut lines = Vec::new();
        let mut at = None;
        for row in rows {
            let (channel, [sales, sales_fen, refunds, refunds_fen], fetched) = row?;
            at = Some(fetched);
            if let Some(channel) = hisbridge_protocol::Channel::parse(&channel) {
                lines.push(hisbridge_protocol::ChannelTotals { channel, sales, sales_fen, refunds, refunds_fen });
            }
        }
        Ok(at.map(|at| (hisbridge_protocol::PosTotals { date: date.to_string(), lines }, at)))
    }

    /// Orders of one local day (`YYYY-MM-DD`): a final order counts on the day its outcome was
    /// known, an open one on the day it arrived.
    pub fn orders_of_day(&self, day: &str) -> Result<Vec<OrderRow>> {
        self.query_many(&format!("{DAY} = ?1 ORDER BY id"), [day])
    }

    /// Orders whose outcome is not final and that arrived on or before `day` (`YYYY-MM-DD`).
    pub fn open_items(&self, day: &str) -> Result<Vec<OrderRow>> {
        self.query_many(
            "state IN ('ACCEPTED','SENT','PAYING','CANCELLING','UNKNOWN') AND substr(created_at, 1, 10) <= ?1 ORDER BY id",
            [day],
        )
    }

    /// Orders whose day (as in [`Journal::orders_of_day`]) lies in `from..=to`.
    pub fn orders_between(&self, from: &str, to: &str) -> Result<Vec<OrderRow>> {
        self.query_many(&format!("{DAY} BETWEEN ?1 AND ?2 ORDER BY id"), [from, to])
    }

    /// Refunds done so far (any day), by collection order number, for the collections that
    /// count on `day` (`YYYY-MM-DD`): what a day's report shows beside each collection.
    pub fn refunded_for_day(&self, day: &str) -> Result<HashMap<String, i64>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT order_no, SUM(-amount_fen) FROM orders WHERE kind = 'REFUND' AND state = 'REFUNDED' \
             AND order_no IN (SELECT order_no FROM orders WHERE {DAY} = ?1 AND kind = 'SALE') GROUP BY order_no"
        ))?;
        let rows = stmt.query_map([day], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Instructions refused on a day (`YYYY-MM-DD`).
    pub fn rejects_of_day(&self, day: &str) -> Result<i64> {
        // A range of the index: `at` starts with the day, and `T` sorts after nothing shorter.
        let next = format!("{day}~");
        Ok(self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM rejects WHERE at >= ?1 AND at < ?2")?
            .query_row([day, next.as_str()], |r| r.get(0))?)
    }

    /// The local day (`YYYY-MM-DD`) of the first order ever journaled (rows are numbered in
    /// the order they arrive: the first row, not a scan for the smallest time).
    pub fn first_day(&self) -> Result<Option<String>> {
        Ok(self
            .conn
            .prepare_cached("SELECT substr(created_at, 1, 10) FROM orders WHERE id = (SELECT MIN(id) FROM orders)")?
            .query_row([], |r| r.get(0))
            .optional()?)
    }

    /// Direct access for tools that fill a journal in bulk (benchmarks, generated test days).
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn all_orders(&self) -> Result<Vec<OrderRow>> {
        self.query_many("1 ORDER BY id", [])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new<'a>(key: &'a str, amount: i64) -> NewOrder<'a> {
        NewOrder {
            key,
            order_no: key.split('@').next().unwrap(),
            refund_no: key.split_once('@').map(|(_, r)| r),
            terminal_id: "W01",
            amount_fen: amount,
            description: None,
            operator: None,
            orig_pos_ref: None,
            source: "test",
            reply: None,
        }
    }

    #[test]
    fn lifecycle_is_recorded_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let id = {
            let mut j = Journal::open(&path).unwrap();
            let o = j.insert(&new("A1", 1250)).unwrap();
            assert_eq!(o.state, State::Accepted);
            assert!(j.insert(&new("A1", 1250)).is_err(), "one row per order key");
            let o = j.start_attempt(&o, "POS-1").unwrap();
            assert_eq!(o.pos_ref.as_deref(), Some("A1.1"));
            assert_eq!(j.open_orders().unwrap().len(), 1);
            o.id
        };
        let mut j = Journal::open(&path).unwrap();
        let sent = j.get(id).unwrap().unwrap();
        let o = j
            .transition(
                &sent,
                Cause::PosFinal,
                State::Success,
                &Update { pay_order_no: Some("420001"), channel: Some("WECHAT"), ..Default::default() },
            )
            .unwrap();
        assert_eq!(o.state, State::Success);
        assert!(o.finished_at.is_some());
        let states: Vec<_> = j.events(id).unwrap().into_iter().map(|e| e.1).collect();
        assert_eq!(states, ["ACCEPTED", "SENT", "SUCCESS"]);
        assert_eq!(j.unwritten_results().unwrap().len(), 1);
        j.mark_result_written(id).unwrap();
        assert!(j.unwritten_results().unwrap().is_empty());
        let mode: String = j.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refund_sums() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.insert(&new("A1", 1000)).unwrap();
        let r1 = j.insert(&new("A1@R1", -300)).unwrap();
        let r2 = j.insert(&new("A1@R2", -200)).unwrap();
        let r2 = j.start_attempt(&r2, "P").unwrap();
        j.transition(&r2, Cause::PosFinal, State::Failed, &Update::default()).unwrap();
        assert_eq!(j.refunds_committed("A1", None).unwrap(), 300);
        assert_eq!(j.refunds_committed("A1", Some(r1.id)).unwrap(), 0);
    }

    #[test]
    fn transitions_outside_the_table_or_from_a_stale_state_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        let o = j.insert(&new("A1", 100)).unwrap();
        let e = j.transition(&o, Cause::PosFinal, State::Success, &Update::default()).unwrap_err();
        assert!(matches!(e, JournalError::Transition { why: "not in the lifecycle table", .. }), "{e}");
        let sent = j.start_attempt(&o, "P").unwrap();
        // `o` still says ACCEPTED: a second start from that stale read is refused.
        let e = j.start_attempt(&o, "P").unwrap_err();
        assert!(matches!(e, JournalError::Transition { why: "the order is no longer in that state", .. }), "{e}");
        let done = j.transition(&sent, Cause::PosFinal, State::Success, &Update::default()).unwrap();
        assert!(j.transition(&sent, Cause::Lost, State::Unknown, &Update::default()).is_err(), "SUCCESS never changes");
        assert_eq!(j.get(done.id).unwrap().unwrap().state, State::Success);
    }

    #[test]
    fn a_first_release_journal_is_migrated_and_keeps_its_orders() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(SCHEMA_V0).unwrap();
            c.execute(
                "INSERT INTO orders (key, order_no, terminal_id, kind, amount_fen, source, state, attempt, pos_ref, \
                 created_at, updated_at, result_written_at) VALUES ('A1','A1','W01','SALE',100,'t','SUCCESS',1,'A1.1','x','x','y')",
                [],
            )
            .unwrap();
            c.execute("INSERT INTO replies (order_id, reply_to, work_file) VALUES (1, 'A1', NULL)", []).unwrap();
        }
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(j.by_pos_ref("A1.1").unwrap().unwrap().state, State::Success);
        assert_eq!(j.replies(1).unwrap()[0].final_at.as_deref(), Some("y"), "written results stay written");
        drop(j);
        assert!(Journal::open(&path).is_ok(), "opening again changes nothing");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        assert!(matches!(Journal::open(&path), Err(JournalError::TooNew { found: 99, .. })));
    }

    fn journal_with_orders(path: &Path, n: usize) {
        let mut j = Journal::open(path).unwrap();
        assert_eq!(j.check_seal().unwrap(), Integrity::Sealed);
        for i in 0..n {
            let k = format!("A{i}");
            let o = j.insert(&new(&k, 100)).unwrap();
            j.start_attempt(&o, "P").unwrap();
        }
        j.reseal(false);
    }

    #[test]
    fn the_seal_tells_a_journal_that_lost_its_history() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        journal_with_orders(&path, 3);
        assert_eq!(Journal::open(&path).unwrap().check_seal().unwrap(), Integrity::Intact);

        // Emptied to 0 bytes (a restore gone wrong): history lost.
        std::fs::write(&path, b"").unwrap();
        for ext in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let mut j = Journal::open(&path).unwrap();
        assert!(matches!(j.check_seal().unwrap(), Integrity::Lost(why) if why.contains("replaced")));
        // IT confirms: taken as it is from now on.
        j.accept_history().unwrap();
        drop(j);
        assert_eq!(Journal::open(&path).unwrap().check_seal().unwrap(), Integrity::Intact);
    }

    #[test]
    fn the_seal_tells_a_deleted_wal_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        journal_with_orders(&path, 2);
        // A crash: the connection's WAL stays (no checkpoint); a copy of the files as they were.
        let crash = dir.path().join("crash");
        std::fs::create_dir(&crash).unwrap();
        {
            let mut j = Journal::open(&path).unwrap();
            j.connection().pragma_update(None, "wal_autocheckpoint", 0).unwrap();
            j.check_seal().unwrap();
            let o = j.insert(&new("B1", 100)).unwrap();
            j.start_attempt(&o, "P").unwrap();
            j.reseal(false);
            for f in ["j.sqlite", "j.sqlite-wal", "j.sqlite.seal"] {
                std::fs::copy(dir.path().join(f), crash.join(f)).unwrap();
            }
        }
        // The WAL is deleted before the next start.
        let path = crash.join("j.sqlite");
        std::fs::remove_file(crash.join("j.sqlite-wal")).unwrap();
        let mut j = Journal::open(&path).unwrap();
        assert!(matches!(j.check_seal().unwrap(), Integrity::Lost(why) if why.contains("lost history")), "deleted WAL");
    }

    #[test]
    fn bookkeeping_is_lazy_and_made_durable_by_the_next_state_change_or_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let mut j = Journal::open(&path).unwrap();
        let o = j.insert(&new("A1", 100)).unwrap();
        assert!(!j.needs_sync());
        assert!(j.record_message("01", "file:A1", 1, 2).unwrap());
        assert!(j.needs_sync(), "a message id waits for the disk");
        let o = j.start_attempt(&o, "P").unwrap();
        assert!(!j.needs_sync(), "a durable commit takes the lazy ones with it");
        j.note_evidence(&o, "ACK").unwrap();
        assert!(j.needs_sync());
        j.sync().unwrap();
        assert!(!j.needs_sync());
        j.sync().unwrap();
        let sync: String = j.conn.query_row("PRAGMA synchronous", [], |r| r.get::<_, i64>(0)).unwrap().to_string();
        assert_eq!(sync, "2", "FULL again after a lazy commit");
        // Lazy or not, what was committed is there for the next connection.
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(j.get(o.id).unwrap().unwrap().pos_evidence.as_deref(), Some("ACK"));
        assert_eq!(j.message_source("01").unwrap().as_deref(), Some("file:A1"));
    }

    static TRACED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn traced(sql: &str) {
        TRACED.lock().unwrap().push(sql.to_string());
    }

    /// Every statement of the per-order path, the periodic jobs, start-up and a day's report
    /// reads the rows it needs through an index: none scans a table (or a whole index) whose
    /// size grows with the journal's age.
    #[test]
    fn no_statement_on_a_hot_path_scans_history() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        // Some history, and a reject and a message id, so every table has rows.
        for i in 0..30 {
            let k = format!("H{i}");
            let o = j.insert(&new(&k, 100)).unwrap();
            let o = j.start_attempt(&o, "P").unwrap();
            j.transition(&o, Cause::PosFinal, State::Success, &Update::default()).unwrap();
            j.mark_result_written(o.id).unwrap();
        }
        j.record_reject("file:x", None, "E_DECRYPT", "junk").unwrap();
        j.connection()
            .trace_v2(
                rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
                Some(|e: rusqlite::trace::TraceEvent<'_>| {
                    // With its parameters' values, as the plan below is asked for.
                    if let rusqlite::trace::TraceEvent::Stmt(stmt, sql) = e {
                        traced(&stmt.expanded_sql().unwrap_or_else(|| sql.to_string()))
                    }
                }),
            )
            .unwrap();
        TRACED.lock().unwrap().clear();

        // Start-up and the periodic jobs.
        j.check_seal().unwrap();
        j.unwritten_results().unwrap();
        j.open_orders().unwrap();
        j.prune_messages(0).unwrap();
        j.prune_rejects("2000-01-01").unwrap();
        j.reseal(true);
        j.first_day().unwrap();
        // One order, a refund of an earlier one, and their results.
        assert!(j.record_message("00ff", "file:A1", 1, 2).unwrap());
        j.message_source("00ff").unwrap();
        j.get_by_key("A1").unwrap();
        let o = j
            .insert(&NewOrder { reply: Some(ReplyTo { stem: "A1", work_file: Some("w") }), ..new("A1", 100) })
            .unwrap();
        j.next_accepted().unwrap();
        j.accepted_orders().unwrap();
        let o = j.start_attempt(&o, "P").unwrap();
        j.by_pos_ref("A1.1").unwrap();
        j.note_evidence(&o, "ACK").unwrap();
        let o = j.transition(&o, Cause::UserPaying, State::Paying, &Update::default()).unwrap();
        let o = j.transition(&o, Cause::PosFinal, State::Success, &Update::default()).unwrap();
        j.replies(o.id).unwrap();
        j.pin_reply(o.id, "A1", "{}").unwrap();
        j.mark_reply_final(o.id, "A1").unwrap();
        j.clear_work_file(o.id, "A1").unwrap();
        j.stem_in_use("A1").unwrap();
        j.mark_result_written(o.id).unwrap();
        j.refunds_committed("H1", None).unwrap();
        let r = j.insert(&new("H1@R1", -50)).unwrap();
        j.add_reply(r.id, "H1R1", None).unwrap();
        j.sync().unwrap();
        // A day's report and the dashboard.
        let day = &o.created_at[..10];
        j.orders_of_day(day).unwrap();
        j.refunded_for_day(day).unwrap();
        j.open_items(day).unwrap();
        j.rejects_of_day(day).unwrap();
        j.pos_totals("20261201").unwrap();
        j.events(o.id).unwrap();
        j.orders_between(day, day).unwrap();

        let statements = std::mem::take(&mut *TRACED.lock().unwrap());
        j.connection()
            .trace_v2(rusqlite::trace::TraceEventCodes::empty(), None::<fn(rusqlite::trace::TraceEvent<'_>)>)
            .unwrap();
        assert!(statements.len() > 30, "{statements:?}");
        let mut scans = Vec::new();
        for sql in &statements {
            let s = sql.trim_start().to_ascii_uppercase();
            if !(s.starts_with("SELECT")
                || s.starts_with("UPDATE")
                || s.starts_with("DELETE")
                || s.starts_with("INSERT"))
            {
                continue;
            }
            let mut stmt = j.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
            for step in plan {
                // `SCAN t` reads every row; `SCAN t USING ... INDEX` every index entry. The
                // partial index of unwritten results holds only those (a handful).
                let partial = step.ends_with("USING INDEX orders_unwritten");
                if step.starts_with("SCAN ") && !step.starts_with("SCAN CONSTANT") && !partial {
                    scans.push(format!("{step}  <-  {sql}"));
                }
            }
        }
        assert!(scans.is_empty(), "statements that scan:\n{}", scans.join("\n"));
    }
}
