//! The engine: every decision about money, sans-IO.
//!
//! Inputs come in through `handle_*` with the time (`Now`: monotonic and wall): instructions
//! from the HIS, events and link changes from the POS driver, cashier controls, the outcome of
//! effects, and timeouts. What to do comes out of [`Engine::poll_effect`] (POS commands, result
//! files, archive and error moves, socket lines, notices, answers to controls) and
//! [`Engine::poll_timeout`] (the next deadline, from one [`timer::TimerTable`]). The model is
//! quinn-proto's `Connection`. The journal (SQLite) is the one thing the engine touches itself,
//! so that "durable before the first byte" stays visible in one place: a POS command is only
//! ever queued after the commit that makes its attempt durable.
//!
//! The IO shell ([`driver`]) owns the channels, the POS handle and the folders; the
//! deterministic simulation (tests/simulation.rs) drives the same engine with a simulated POS,
//! simulated faults and a simulated clock.

pub mod driver;
pub mod effects;
pub mod timer;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset};
use hisbridge_protocol::{PosTotals, Request, SessionEvent, Stage, TxnResult, TxnStatus};
use tracing::{debug, error, info, info_span, warn};

use crate::amount::Amount;
use crate::config::{Folders, Timeouts};
use crate::envelope::{Direction, Key};
use crate::his::{salvage, Echo, ErrorCode, Instruction, InstructionKind, ResultMessage, Status};
use crate::intake::{Opened, Refusal};
use crate::journal::{Integrity, Journal, JournalError, NewOrder, OrderRow, ReplyTo, Update};
use crate::lifecycle::{CancelledBy, Cause, Kind, State};
use crate::pos::PosEvent;
use timer::{Timer, TimerTable};

pub use driver::{Control, Driver, Health};
pub use effects::{FileExec, FileOp, FsFault, FsStep};

/// How long a QUERY may stay unanswered.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often housekeeping runs (message ids pruned, the journal's seal refreshed).
pub const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// How soon lazy journal commits are made durable when no durable commit follows them, and
/// the journal's log checkpointed.
pub const SYNC_AFTER: Duration = Duration::from_millis(500);
/// How often a journal that failed is tried again.
pub const JOURNAL_PROBE: Duration = Duration::from_secs(5);
/// Refusals journaled in a burst, and per second after it.
const REJECT_BURST: f64 = 50.0;
const REJECTS_PER_SEC: f64 = 10.0;
/// How long refusals are kept in the journal (housekeeping prunes older ones).
pub const REJECTS_KEPT: Duration = Duration::from_secs(90 * 24 * 3600);
/// Longest wait between two tries of a file effect.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The time of a step: the monotonic clock for deadlines, the wall clock for the journal, the
/// replay window and the archive's day.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub mono: Instant,
    pub wall: DateTime<FixedOffset>,
}

impl Now {
    pub fn system() -> Self {
        Self { mono: Instant::now(), wall: chrono::Local::now().fixed_offset() }
    }
}

/// What the engine tells front ends (tray, command line) about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    Order {
        key: String,
        state: State,
        amount: String,
        channel: Option<String>,
        error_code: Option<String>,
        /// The wallet's own words for a failure (e.g. 余额不足), when the POS gave them.
        pos_message: Option<String>,
    },
    Rejected {
        source: String,
        code: ErrorCode,
        detail: String,
    },
    /// Taking new orders was paused (true) or resumed (false).
    Paused(bool),
    /// Something needs a person: the journal cannot be written or lost its history, a result file
    /// cannot be written, the POS contradicted itself. `what` names the kind; `detail` says it.
    Attention {
        what: Attention,
        detail: String,
    },
    /// That kind of attention is over.
    Resolved(Attention),
}

/// Kinds of trouble that need a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attention {
    /// The journal cannot be written: no new orders.
    Journal,
    /// The journal holds less than it did: no new orders until IT confirms.
    HistoryLost,
    /// A result file, an archive or error move keeps failing (retried).
    Files,
    /// The POS said something that contradicts itself or the request: the order stays UNKNOWN.
    PosContradiction,
}

impl Attention {
    pub const ALL: [Attention; 4] =
        [Attention::Journal, Attention::HistoryLost, Attention::Files, Attention::PosContradiction];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Attention::Journal => "journal",
            Attention::HistoryLost => "history_lost",
            Attention::Files => "files",
            Attention::PosContradiction => "pos_contradiction",
        }
    }
}

/// The POS's answer to INFO.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PosInfo {
    pub device_id: String,
    pub version: String,
    pub model: String,
    /// The POS clock, `YYYYMMDDhhmmss`.
    pub time: String,
}

/// What a cashier can do to an order from the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// Ask the POS now (an open order); a final order is answered from the journal.
    Query,
    /// Cancel an order that is queued or running on the POS (never one already paid).
    Cancel,
    /// Write the order's result file(s) again, for an HIS that lost one.
    Rewrite,
}

/// Requests from front ends to the engine; `token` comes back with the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ask the POS for its totals of `date` (`YYYYMMDD`); journaled when they arrive. Sent only
    /// while no transaction is active, and nothing new starts until the POS has answered.
    PosTotals { date: String, token: u64 },
    /// New terminal list and timeouts from the settings window.
    Reconfigure { terminals: BTreeSet<String>, timeouts: Timeouts },
    /// Stop (true) or resume (false) taking new orders.
    Pause(bool),
    /// Ask the POS for its INFO: the cashier's connection test.
    PosInfo { token: u64 },
    /// A cashier's action on one order (by its key).
    Order { key: String, action: OrderAction, token: u64 },
    /// IT confirmed a journal that lost history: take orders again.
    AcceptHistory,
}

/// The answer to a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Totals(Result<PosTotals, String>),
    Info(Result<PosInfo, String>),
    Order(Result<State, String>),
}

/// Where an instruction came from and where its answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A claimed file: `stem` names the result file, `work_path` is the claimed file.
    File { stem: String, work_path: PathBuf },
    /// A localhost connection, by its number.
    Socket { conn: u64 },
}

impl Source {
    pub fn name(&self) -> String {
        match self {
            Source::File { stem, .. } => format!("file:{stem}"),
            Source::Socket { conn } => format!("socket:{conn}"),
        }
    }

    /// What a message id is recorded with: the claimed file itself (two files under one stem
    /// are two sources), or the connection.
    fn id(&self) -> String {
        match self {
            Source::File { work_path, .. } => {
                format!("file:{}", work_path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
            }
            Source::Socket { conn } => format!("socket:{conn}"),
        }
    }
}

/// One instruction for the engine.
#[derive(Debug)]
pub struct Incoming {
    pub source: Source,
    pub body: Result<Opened, Refusal>,
    /// Claimed before a restart and handed over again: already checked for age and replay.
    pub resubmitted: bool,
    /// The outbox already holds a final result under this stem, from an earlier instruction:
    /// that file is never replaced.
    pub stem_final: bool,
}

/// What the engine wants done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Hand this to the POS session. If the session refuses it, call
    /// [`Engine::handle_pos_refused`].
    Pos(Request),
    /// A file operation; report its outcome with [`Engine::handle_file_done`].
    File {
        id: u64,
        op: FileOp,
    },
    /// One line (a sealed result) to a socket connection.
    Socket {
        conn: u64,
        line: String,
    },
    Notice(Notice),
    Answer {
        token: u64,
        answer: Answer,
    },
}

pub struct EngineSettings {
    pub terminals: BTreeSet<String>,
    /// Terminals that may cancel or refund other terminals' orders (`[policy]`).
    pub supervisors: BTreeSet<String>,
    pub device_id: String,
    pub timeouts: Timeouts,
    pub folders: Folders,
    pub replay_window: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// SALE/REFUND sent; waiting for the scan or the result.
    Sent,
    /// Patient confirming or entering a password.
    Paying,
    /// CANCEL sent; waiting for the POS to confirm.
    Cancelling,
    /// QUERY sent for an order whose outcome was open.
    Querying,
}

#[derive(Debug)]
struct Active {
    id: i64,
    pos_ref: String,
    phase: Phase,
}

/// Why a file effect is done, and what follows when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    /// An order's result to one of its reply stems; `final_` marks the reply done on success.
    Result { order: i64, stem: String, final_: bool },
    /// A refusal's result file.
    Refusal,
    /// The claimed instruction file of a final order, to the day's archive.
    Archive { order: i64, stem: String },
    /// A refused file to the error folder.
    Quarantine,
}

#[derive(Debug)]
struct PendingFile {
    op: FileOp,
    purpose: Purpose,
    attempts: u32,
    /// Waiting to be tried again at this time (None: handed out, outcome not known yet).
    due: Option<Instant>,
}

/// The POS link as the driver reports it.
/// A socket connection waiting for an order's results, for one instruction it sent.
#[derive(Debug, Clone)]
struct Sub {
    conn: u64,
    /// The instruction's `type`.
    request: &'static str,
    /// Its message id (the envelope's nonce, hex).
    in_reply_to: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkState {
    pub ready: bool,
    pub device_id: Option<String>,
}

pub struct Engine {
    s: EngineSettings,
    key: Arc<Key>,
    journal: Journal,
    link: LinkState,
    /// Since when the POS cannot be reached (None while the link is ready).
    link_down_since: Option<Instant>,
    /// When each queued order was first seen waiting (this run).
    waiting_since: HashMap<i64, Instant>,
    active: Option<Active>,
    /// When each open order may be queried next (the resolver).
    next_query: HashMap<i64, Instant>,
    /// Open orders whose last answer contradicted the POS's earlier word: UNKNOWN, queried now
    /// and then, but not holding up the window (the POS says it is not running them).
    parked: BTreeSet<i64>,
    /// Open orders the POS said it has no record of, and when: believed only when a second
    /// query at least `query_interval` later says the same (a lookup may lag).
    not_found: HashMap<i64, Instant>,
    timers: TimerTable,
    /// Open connections waiting for an order's results.
    subscribers: HashMap<i64, Vec<Sub>>,
    /// The instruction being decided (its `type` and message id), for the socket lines answering it.
    request: Option<(&'static str, String)>,
    totals_waiting: Vec<(String, u64)>,
    totals_sent: Option<String>,
    info_waiting: Vec<u64>,
    info_sent: bool,
    paused: bool,
    files: BTreeMap<u64, PendingFile>,
    next_file: u64,
    out: VecDeque<Effect>,
    journal_down: Option<String>,
    history_lost: Option<String>,
    attention: BTreeMap<Attention, String>,
    /// Refusals journaled lately (a token bucket): a flood is answered but not all journaled.
    reject_tokens: f64,
    reject_refill: Instant,
    rejects_unjournaled: u64,
    now: Instant,
    wall: DateTime<FixedOffset>,
}

fn result_name(stem: &str) -> String {
    format!("{stem}.{}", crate::folders::RESULT_EXT)
}

impl Engine {
    /// An engine over `journal`. Call [`Engine::start`] before anything else.
    pub fn new(s: EngineSettings, key: Arc<Key>, journal: Journal, now: Now) -> Self {
        Self {
            s,
            key,
            journal,
            link: LinkState::default(),
            link_down_since: Some(now.mono),
            waiting_since: HashMap::new(),
            active: None,
            next_query: HashMap::new(),
            parked: BTreeSet::new(),
            not_found: HashMap::new(),
            timers: TimerTable::default(),
            subscribers: HashMap::new(),
            request: None,
            totals_waiting: Vec::new(),
            totals_sent: None,
            info_waiting: Vec::new(),
            info_sent: false,
            paused: false,
            files: BTreeMap::new(),
            next_file: 1,
            out: VecDeque::new(),
            journal_down: None,
            history_lost: None,
            attention: BTreeMap::new(),
            reject_tokens: REJECT_BURST,
            reject_refill: now.mono,
            rejects_unjournaled: 0,
            now: now.mono,
            wall: now.wall,
        }
    }

    /// Start-up: checks the journal's history, rewrites results a crash left unwritten.
    pub fn start(&mut self, now: Now) {
        self.begin(now);
        match self.journal.check_seal() {
            Ok(Integrity::Lost(why)) => {
                error!(reason = %why, "the journal lost history: no new orders until IT confirms (hisbridge journal accept)");
                self.history_lost = Some(why.clone());
                self.raise(Attention::HistoryLost, why);
            }
            Ok(Integrity::Intact | Integrity::Sealed) => {}
            Err(e) => self.journal_failed(&e),
        }
        self.housekeeping();
        let res = self.journal.unwritten_results();
        match res {
            Ok(rows) => {
                for row in rows {
                    self.deliver(&row);
                }
            }
            Err(e) => self.journal_failed(&e),
        }
        self.end();
    }

    /// The next thing to do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.out.pop_front()
    }

    /// The next deadline: call [`Engine::handle_timeout`] then.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// What needs a person now.
    pub fn attention(&self) -> &BTreeMap<Attention, String> {
        &self.attention
    }

    /// The journal (for the simulation's checks and the shell's start-up).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    fn begin(&mut self, now: Now) {
        self.now = now.mono;
        self.wall = now.wall;
        self.journal.set_now(now.wall);
    }

    /// After every input: start what can start, fail what cannot, refresh the seal.
    fn end(&mut self) {
        if let Err(e) = self.advance() {
            self.journal_failed(&e);
        }
        if let Err(e) = self.unavailable() {
            self.journal_failed(&e);
        }
        if !self.journal.needs_sync() && !self.journal.needs_checkpoint() {
            self.timers.stop(Timer::Sync);
        } else if self.timers.get(Timer::Sync).is_none() {
            self.timers.set(Timer::Sync, self.now + SYNC_AFTER);
        }
        self.journal.reseal(false);
    }

    /// Queued orders and a POS that cannot be reached: each fails once it has waited
    /// `pos_unavailable` with the POS down (counted from its acceptance or from the loss of the
    /// link, whichever is later). Nothing was sent, so the failure is definite and the HIS may
    /// send the patient to another window.
    fn unavailable(&mut self) -> Result<(), JournalError> {
        let Some(down) = self.link_down_since else {
            self.timers.stop(Timer::Unavailable);
            self.waiting_since.clear();
            return Ok(());
        };
        if self.journal_down.is_some() {
            return Ok(());
        }
        let queued = self.journal.accepted_orders()?;
        self.waiting_since.retain(|id, _| queued.iter().any(|r| r.id == *id));
        let bound = self.s.timeouts.pos_unavailable;
        let mut next: Option<Instant> = None;
        for row in queued {
            let since = (*self.waiting_since.entry(row.id).or_insert(self.now)).max(down);
            let due = since + bound;
            if due > self.now {
                next = Some(next.map_or(due, |n| n.min(due)));
                continue;
            }
            let detail = format!(
                "the POS could not be reached for {} s (not connected, or it reports another device ID);                  the order was not sent",
                bound.as_secs()
            );
            let row = self.journal.transition(
                &row,
                Cause::PosUnavailable,
                State::Failed,
                &Update {
                    error_code: Some(ErrorCode::PosUnavailable.as_str()),
                    detail: Some(&detail),
                    ..Default::default()
                },
            )?;
            warn!(key = row.key, "order failed: the POS cannot be reached; nothing was sent");
            self.finished(&row);
        }
        match next {
            Some(t) => self.timers.set(Timer::Unavailable, t),
            None => self.timers.stop(Timer::Unavailable),
        }
        Ok(())
    }

    fn emit(&mut self, e: Effect) {
        self.out.push_back(e);
    }

    fn notice(&mut self, n: Notice) {
        self.emit(Effect::Notice(n));
    }

    fn raise(&mut self, what: Attention, detail: String) {
        if self.attention.get(&what) != Some(&detail) {
            self.attention.insert(what, detail.clone());
            self.notice(Notice::Attention { what, detail });
        }
    }

    fn clear(&mut self, what: Attention) {
        if self.attention.remove(&what).is_some() {
            self.notice(Notice::Resolved(what));
        }
    }

    /// A journal write failed. Storage errors stop new orders and POS commands until a probe
    /// succeeds; nothing open is forgotten (its outcome is queried again then).
    fn journal_failed(&mut self, e: &JournalError) {
        if !e.is_storage() {
            // A transition the table refuses: a logic error, logged loudly, never applied.
            error!(error = %e, "journal refused a transition");
            return;
        }
        if self.journal_down.is_none() {
            error!(error = %e, "the journal cannot be written: no new orders until it can");
        }
        let why = format!("the journal cannot be written: {e}");
        self.journal_down = Some(why.clone());
        self.raise(Attention::Journal, why);
        // What was in flight is settled by query once the journal is back.
        self.active = None;
        self.timers.stop(Timer::Deadline);
        self.timers.stop(Timer::Poll);
        self.timers.set(Timer::JournalProbe, self.now + JOURNAL_PROBE);
    }

    /// Runs `f`, turning a journal error into the journal-down state.
    fn guarded(&mut self, f: impl FnOnce(&mut Self) -> Result<(), JournalError>) {
        if let Err(e) = f(self) {
            self.journal_failed(&e);
        }
    }

    // ---- Inputs ---------------------------------------------------------------------------

    /// An instruction from the HIS (a claimed file or a socket line).
    pub fn handle_incoming(&mut self, inc: Incoming, now: Now) {
        self.begin(now);
        let span = info_span!("instruction", from = %inc.source.name());
        let _g = span.enter();
        self.guarded(|e| e.on_incoming(inc));
        self.end();
    }

    /// The POS link changed (open, handshaken with our device, lost).
    pub fn handle_link(&mut self, link: LinkState, now: Now) {
        self.begin(now);
        match (link.ready, self.link_down_since) {
            (true, _) => self.link_down_since = None,
            (false, None) => self.link_down_since = Some(self.now),
            (false, Some(_)) => {}
        }
        self.link = link;
        self.end();
    }

    /// An event from the POS driver.
    pub fn handle_pos(&mut self, ev: PosEvent, now: Now) {
        self.begin(now);
        self.guarded(|e| e.on_pos(ev));
        self.end();
    }

    /// The session refused a command before writing a byte (the link went down meanwhile).
    pub fn handle_pos_refused(&mut self, req: Request, why: String, now: Now) {
        self.begin(now);
        self.guarded(|e| e.on_refused(req, &why));
        self.end();
    }

    /// A front end's request.
    pub fn handle_command(&mut self, c: Command, now: Now) {
        self.begin(now);
        self.guarded(|e| e.on_command(c));
        self.end();
    }

    /// A file effect's outcome.
    pub fn handle_file_done(&mut self, id: u64, res: Result<(), String>, now: Now) {
        self.begin(now);
        self.guarded(|e| e.on_file_done(id, res));
        self.end();
    }

    /// A socket connection closed: its subscriptions end.
    pub fn handle_disconnected(&mut self, conn: u64, now: Now) {
        self.begin(now);
        for subs in self.subscribers.values_mut() {
            subs.retain(|s| s.conn != conn);
        }
        self.subscribers.retain(|_, s| !s.is_empty());
        self.end();
    }

    /// Deadlines due at `now`.
    pub fn handle_timeout(&mut self, now: Now) {
        self.begin(now);
        let t = now.mono;
        if self.timers.expired(Timer::Housekeeping, t) {
            self.housekeeping();
        }
        if self.timers.expired(Timer::Sync, t) {
            // Idle since the last step: the lazy commits go to disk, the log into the database.
            self.timers.stop(Timer::Sync);
            if let Err(e) = self.journal.sync().and_then(|_| self.journal.checkpoint()) {
                self.journal_failed(&e);
            }
        }
        if self.timers.expired(Timer::JournalProbe, t) {
            self.probe_journal();
        }
        if self.timers.expired(Timer::Retry, t) {
            self.retry_files();
        }
        if self.timers.expired(Timer::Info, t) {
            self.answer_info(Err("the POS did not answer INFO".into()));
        }
        if self.timers.expired(Timer::Totals, t) {
            if let Some(date) = self.totals_sent.clone() {
                warn!(date, "the POS did not answer TOTALS");
                self.answer_totals(&date, Err("the POS did not answer the TOTALS request".into()));
            }
            self.timers.stop(Timer::Totals);
        }
        if self.timers.expired(Timer::Resolver, t) {
            self.timers.stop(Timer::Resolver);
        }
        if self.timers.expired(Timer::Poll, t) {
            if let Some(a) = &self.active {
                let reference = a.pos_ref.clone();
                // The answer arrives as a RESULT; a lost QUERY is simply asked again.
                self.emit(Effect::Pos(Request::Query { reference }));
            }
            self.timers.set(Timer::Poll, t + self.s.timeouts.query_interval);
        }
        if self.timers.expired(Timer::Deadline, t) {
            self.timers.stop(Timer::Deadline);
            self.guarded(|e| e.on_deadline());
        }
        if self.timers.expired(Timer::Unavailable, t) {
            self.timers.stop(Timer::Unavailable);
        }
        self.end();
    }

    // ---- Housekeeping and the journal -------------------------------------------------------

    fn housekeeping(&mut self) {
        self.timers.set(Timer::Housekeeping, self.now + HOUSEKEEPING);
        if self.journal_down.is_some() {
            return;
        }
        if let Err(e) = self.journal.prune_messages(self.wall.timestamp()) {
            self.journal_failed(&e);
        }
        let horizon = self.wall - chrono::Duration::from_std(REJECTS_KEPT).unwrap_or_default();
        if let Err(e) = self.journal.prune_rejects(&crate::journal::stamp(horizon)) {
            self.journal_failed(&e);
        }
        self.journal.reseal(false);
    }

    fn probe_journal(&mut self) {
        self.timers.stop(Timer::JournalProbe);
        if self.journal_down.is_none() {
            return;
        }
        match self.journal.prune_messages(self.wall.timestamp()) {
            Ok(_) => {
                info!("the journal can be written again");
                self.journal_down = None;
                self.clear(Attention::Journal);
                // Whatever was in flight is asked again; results owed are written.
                self.next_query.clear();
                match self.journal.unwritten_results() {
                    Ok(rows) => rows.iter().for_each(|r| self.deliver(r)),
                    Err(e) => self.journal_failed(&e),
                }
            }
            Err(e) => {
                debug!(error = %e, "journal still cannot be written");
                self.timers.set(Timer::JournalProbe, self.now + JOURNAL_PROBE);
            }
        }
    }

    // ---- Commands -------------------------------------------------------------------------

    fn on_command(&mut self, c: Command) -> Result<(), JournalError> {
        match c {
            Command::Reconfigure { terminals, timeouts } => {
                info!(terminals = terminals.len(), "settings applied");
                self.s.terminals = terminals;
                self.s.timeouts = timeouts;
            }
            Command::Pause(p) => {
                info!(paused = p, "taking new orders: {}", if p { "paused" } else { "resumed" });
                self.paused = p;
                self.notice(Notice::Paused(p));
            }
            Command::AcceptHistory => {
                if self.history_lost.take().is_some() {
                    warn!("IT confirmed the journal as it is; taking orders again");
                    self.journal.accept_history()?;
                    self.clear(Attention::HistoryLost);
                }
            }
            Command::PosInfo { token } => {
                if !self.link.ready {
                    self.emit(Effect::Answer { token, answer: Answer::Info(Err("POS not connected".into())) });
                } else {
                    self.info_waiting.push(token);
                }
            }
            Command::PosTotals { date, token } => {
                if !self.link.ready {
                    self.emit(Effect::Answer { token, answer: Answer::Totals(Err("POS not connected".into())) });
                } else {
                    self.totals_waiting.push((date, token));
                }
            }
            Command::Order { key, action, token } => {
                let span = info_span!("order", key = %key);
                let _g = span.enter();
                let res = match self.journal.get_by_key(&key)? {
                    None => Err(format!("no order {key}")),
                    Some(row) => self.cashier_action(row, action)?,
                };
                self.emit(Effect::Answer { token, answer: Answer::Order(res) });
            }
        }
        Ok(())
    }

    fn cashier_action(&mut self, row: OrderRow, action: OrderAction) -> Result<Result<State, String>, JournalError> {
        info!(?action, state = row.state.as_str(), "cashier action");
        Ok(match action {
            OrderAction::Query => {
                if row.state.is_open() {
                    // The resolver queries it at its next turn.
                    self.next_query.remove(&row.id);
                }
                Ok(row.state)
            }
            OrderAction::Rewrite => {
                let replies = self.journal.replies(row.id)?;
                if replies.is_empty() {
                    Err("this order came over the socket channel: it has no result file".to_string())
                } else {
                    // The same result again, into every file the order answers (an HIS that lost one).
                    let msg = self.result_message(&row);
                    for r in replies {
                        let json = r.pinned.clone().unwrap_or_else(|| msg.to_json());
                        let text = self.key.seal(Direction::ToHis, json.as_bytes());
                        let final_ = row.state.is_final();
                        self.file(
                            FileOp::WriteResult { stem: r.stem.clone(), text, final_ },
                            Purpose::Result { order: row.id, stem: r.stem, final_ },
                        );
                    }
                    Ok(row.state)
                }
            }
            OrderAction::Cancel => match row.state {
                s if row.kind == Kind::Refund && s.is_open() => {
                    Err("a refund under way cannot be cancelled; it is confirmed by query".to_string())
                }
                State::Accepted | State::Sent | State::Paying | State::Unknown => {
                    Ok(self.cancel(row, CancelledBy::Cashier)?)
                }
                State::Cancelling => Ok(State::Cancelling),
                s => Err(format!("the order is already final ({}); nothing to cancel", s.as_str())),
            },
        })
    }

    // ---- Intake ---------------------------------------------------------------------------

    fn on_incoming(&mut self, inc: Incoming) -> Result<(), JournalError> {
        let src = inc.source;
        if inc.stem_final && !inc.resubmitted {
            // The outbox answers an earlier instruction under this name: that result stays.
            if let Source::File { stem, work_path } = &src {
                let detail = format!(
                    "the name {stem:?} is still in use: {} holds the final result of an earlier instruction; \
                     read and remove it before using the name again, or use a new file name",
                    result_name(stem)
                );
                warn!(code = ErrorCode::FileName.as_str(), detail, "instruction refused, result file kept");
                self.quarantine(work_path.clone(), ErrorCode::FileName, &detail);
                self.notice(Notice::Rejected { source: src.name(), code: ErrorCode::FileName, detail });
            }
            return Ok(());
        }
        let opened = match inc.body {
            Err(r) => {
                let (code, detail) = match r {
                    Refusal::Envelope(e) => (envelope_code(&e), e.to_string()),
                    Refusal::BadName(name) => (
                        ErrorCode::FileName,
                        format!("file name {name:?} is not allowed (use A-Z a-z 0-9 _ - @, at most 80 characters, no reserved names)"),
                    ),
                    Refusal::Unreadable(e) => (ErrorCode::Envelope, format!("file cannot be read: {e}")),
                    Refusal::NotRegular(what) => (
                        ErrorCode::Envelope,
                        format!("not a regular file but {what}: write the instruction as a plain file"),
                    ),
                };
                return self.reject(&src, &Echo::default(), code, &detail);
            }
            Ok(p) => p,
        };
        let ins = match Instruction::parse(&opened.plain) {
            Ok(i) => i,
            Err(e) => {
                // Whatever is well formed is echoed, so the HIS can tell what was refused (§3.3).
                let echo = salvage(&opened.plain);
                self.request = Some(("", hex::encode(opened.nonce)));
                let r = self.reject(&src, &echo, e.code(), &e.to_string());
                self.request = None;
                return r;
            }
        };
        let nonce = hex::encode(opened.nonce);
        let kind = match ins.kind {
            InstructionKind::Order => "order",
            InstructionKind::Query => "query",
            InstructionKind::Cancel => "cancel",
        };
        self.request = Some((kind, nonce.clone()));
        let decided = self.decide(&ins, &src, &nonce, inc.resubmitted, inc.stem_final);
        let result = match decided {
            Err(e) if e.is_storage() => {
                // Nothing of this instruction was recorded (registration is atomic with its
                // state change): refuse it, so it is neither lost nor charged later.
                self.journal_failed(&e);
                let detail = self.journal_refusal().unwrap_or_default();
                self.reject(&src, &Echo::of(&ins), ErrorCode::Journal, &detail)
            }
            other => other,
        };
        self.request = None;
        result
    }

    fn decide(
        &mut self,
        ins: &Instruction,
        src: &Source,
        nonce: &str,
        resubmitted: bool,
        stem_final: bool,
    ) -> Result<(), JournalError> {
        let (ins, src) = (ins.clone(), src.clone());
        if resubmitted {
            // Claimed before a restart: it passed (or was about to pass) the checks then, however
            // long the bridge was down. Its order, if journaled, answers it.
            if let (Source::File { stem, work_path }, Some(row)) = (&src, self.journal.get_by_key(&ins.key())?) {
                if let Some(reply) = self.journal.replies(row.id)?.into_iter().find(|r| r.stem == *stem) {
                    if reply.final_at.is_some() {
                        info!(key = row.key, "claimed file of a finished order: archived");
                        self.archive(row.id, stem.clone(), work_path.clone());
                    } else {
                        info!(
                            key = row.key,
                            state = row.state.as_str(),
                            "claimed file of a journaled order: its result"
                        );
                        self.deliver(&row);
                    }
                    return Ok(());
                }
            }
            if let (Source::File { work_path, stem }, true) = (&src, stem_final) {
                // Its name holds a final result that is not its order's: it was refused before
                // the restart (the move to error/ did not happen). Refused again, result kept.
                let detail = format!("refused before the bridge restarted; {} holds the answer", result_name(stem));
                warn!(detail, "claimed file refused again");
                self.quarantine(work_path.clone(), ErrorCode::FileName, &detail);
                return Ok(());
            }
        }
        {
            // Replay defence: the message must be recent, and its id (the nonce) new. A file
            // claimed before a restart that its order never got is checked for age like any
            // other (the HIS may have given up on it), but its id may be the bridge's own record.
            if let Some(sent) = ins.sent_at {
                let skew = (self.wall - sent).num_seconds();
                if skew.unsigned_abs() > self.s.replay_window.as_secs() {
                    let detail = format!(
                        "sent_at {} differs from the bridge's clock {} by {skew} s (window {} s): an old message, or a clock to set",
                        sent.to_rfc3339(),
                        self.wall.to_rfc3339(),
                        self.s.replay_window.as_secs()
                    );
                    return self.reject(&src, &Echo::of(&ins), ErrorCode::Stale, &detail);
                }
            }
            let expires = self.expiry(&ins);
            if self.journal_down.is_none() {
                let fresh = self.journal.record_message(nonce, &src.id(), self.wall.timestamp(), expires)?;
                // A file handed over again after a restart may carry the id its own first pass
                // recorded; an id recorded for another file is a replay all the same.
                let own = resubmitted && self.journal.message_source(nonce)?.as_deref() == Some(src.id().as_str());
                if !fresh && !own {
                    let detail = "this exact message was received before (a replay); send a new message to repeat an instruction";
                    return self.reject(&src, &Echo::of(&ins), ErrorCode::Replay, detail);
                }
            }
        }
        if !self.s.terminals.contains(&ins.terminal_id) {
            let detail =
                format!("terminal {:?} is not in the configured list of software terminal IDs", ins.terminal_id);
            return self.reject(&src, &Echo::of(&ins), ErrorCode::Terminal, &detail);
        }
        match ins.kind {
            InstructionKind::Order => self.on_order(&ins, &src),
            InstructionKind::Query => self.on_query(&ins, &src),
            InstructionKind::Cancel => self.on_cancel(&ins, &src),
        }
    }

    /// The result file an instruction from `src` answers, if it came as a file.
    fn reply_of(src: &Source) -> Option<(String, String)> {
        match src {
            Source::File { stem, work_path } => Some((stem.clone(), work_path.to_string_lossy().into_owned())),
            Source::Socket { .. } => None,
        }
    }

    /// The reply to register for `src` on order `id`: none for a socket, and none for a second
    /// file under a name that already answers this order (its answer is that result file; the
    /// file itself goes to the archive now, so that nothing is left behind in work/).
    fn reply_for(&mut self, id: i64, src: &Source) -> Result<Option<(String, String)>, JournalError> {
        let Some((stem, work)) = Self::reply_of(src) else {
            return Ok(None);
        };
        let taken = self.journal.replies(id)?.into_iter().find(|r| r.stem == stem).and_then(|r| r.work_file);
        match taken {
            Some(w) if w != work => {
                let day = self.wall.format("%Y-%m-%d").to_string();
                self.file(FileOp::Archive { path: PathBuf::from(work), day }, Purpose::Refusal);
                Ok(None)
            }
            _ => Ok(Some((stem, work))),
        }
    }

    /// Until when a message id must be remembered: as long as its `sent_at` could still pass
    /// the window check, and never less than a window from now (a clock set back).
    fn expiry(&self, ins: &Instruction) -> i64 {
        let w = self.s.replay_window.as_secs() as i64;
        let now = self.wall.timestamp();
        let by_sent = ins.sent_at.map(|t| t.timestamp() + w + 1).unwrap_or(now + w + 1);
        by_sent.max(now + w + 1) + w
    }

    /// The refusal a journal problem gives a new order, if any.
    fn journal_refusal(&self) -> Option<String> {
        if let Some(why) = &self.journal_down {
            return Some(format!("{why}; nothing was charged; send the order to another window"));
        }
        self.history_lost
            .as_ref()
            .map(|why| format!("{why}; payments are stopped until IT confirms the journal; nothing was charged"))
    }

    fn on_order(&mut self, ins: &Instruction, src: &Source) -> Result<(), JournalError> {
        let amount = ins.amount.expect("orders carry an amount");
        let key = ins.key();
        if let Some(row) = self.journal.get_by_key(&key)? {
            if row.terminal_id != ins.terminal_id || row.amount_fen != amount.fen() {
                let detail = format!(
                    "order {key} already exists with amount {} from terminal {}; this instruction says {} from {}",
                    fmt_amount(row.amount_fen),
                    row.terminal_id,
                    amount,
                    ins.terminal_id
                );
                return self.reject(src, &Echo::of(ins), ErrorCode::Conflict, &detail);
            }
            let retry = row.state.allows_retry();
            if retry {
                if let Some(detail) = self.journal_refusal().or_else(|| self.paused_refusal()) {
                    let code = if self.paused { ErrorCode::Paused } else { ErrorCode::Journal };
                    return self.reject(src, &Echo::of(ins), code, &detail);
                }
            }
            let row = if retry {
                info!(key, "instruction repeated after a definite failure: new attempt");
                let reply = self.reply_for(row.id, src)?;
                let row = self.journal.transition(
                    &row,
                    Cause::Retry,
                    State::Accepted,
                    &Update {
                        detail: Some("repeated by HIS"),
                        reply: reply.as_ref().map(|(s, w)| ReplyTo { stem: s, work_file: Some(w) }),
                        ..Default::default()
                    },
                )?;
                self.register(row.id, src, false)?;
                row
            } else {
                info!(key, state = row.state.as_str(), "instruction repeated: stored result returned");
                self.register(row.id, src, true)?;
                row
            };
            self.deliver(&row);
            return Ok(());
        }
        if let Some(detail) = self.journal_refusal() {
            return self.reject(src, &Echo::of(ins), ErrorCode::Journal, &detail);
        }
        if let Some(detail) = self.paused_refusal() {
            return self.reject(src, &Echo::of(ins), ErrorCode::Paused, &detail);
        }
        let mut orig_pos_ref = None;
        if amount.is_refund() {
            let orig =
                self.journal.get_by_key(&ins.order_no)?.filter(|o| o.state == State::Success && o.kind == Kind::Sale);
            let Some(orig) = orig else {
                let detail = format!("no paid collection with order number {} to refund", ins.order_no);
                return self.reject(src, &Echo::of(ins), ErrorCode::RefundOriginal, &detail);
            };
            if let Some(detail) = self.not_allowed(&orig, ins) {
                return self.reject(src, &Echo::of(ins), ErrorCode::NotAllowed, &detail);
            }
            let committed = self.journal.refunds_committed(&ins.order_no, None)?;
            if committed + amount.fen().abs() > orig.amount_fen {
                let detail = format!(
                    "refund {} exceeds what is left: paid {}, already refunded or refunding {}",
                    amount,
                    fmt_amount(orig.amount_fen),
                    crate::amount::yuan(committed as u64)
                );
                return self.reject(src, &Echo::of(ins), ErrorCode::RefundExceeds, &detail);
            }
            orig_pos_ref = orig.pos_ref;
        }
        let reply = Self::reply_of(src);
        let row = self.journal.insert(&NewOrder {
            reply: reply.as_ref().map(|(s, w)| ReplyTo { stem: s, work_file: Some(w) }),
            key: &key,
            order_no: &ins.order_no,
            refund_no: ins.refund_no.as_deref(),
            terminal_id: &ins.terminal_id,
            amount_fen: amount.fen(),
            description: ins.description.as_deref(),
            operator: ins.operator.as_deref(),
            orig_pos_ref: orig_pos_ref.as_deref(),
            source: &src.name(),
        })?;
        self.register(row.id, src, false)?;
        crate::failpoint::hit("accepted");
        info!(key, amount = %amount, "order accepted");
        self.deliver(&row);
        Ok(())
    }

    /// Refunds and cancels come from the terminal that took the order, or a supervisor's.
    fn not_allowed(&self, row: &OrderRow, ins: &Instruction) -> Option<String> {
        (row.terminal_id != ins.terminal_id && !self.s.supervisors.contains(&ins.terminal_id)).then(|| {
            format!(
                "order {} was taken at terminal {}; terminal {} may not cancel or refund it (only {} or a terminal in [policy] supervisor_terminals)",
                row.order_no, row.terminal_id, ins.terminal_id, row.terminal_id
            )
        })
    }

    fn paused_refusal(&self) -> Option<String> {
        self.paused.then(|| {
            "the cashier paused taking payments at this window; send the order again later or to another window"
                .to_string()
        })
    }

    fn on_query(&mut self, ins: &Instruction, src: &Source) -> Result<(), JournalError> {
        let Some(row) = self.journal.get_by_key(&ins.key())? else {
            let detail = format!("no order {}", ins.key());
            return self.reject(src, &Echo::of(ins), ErrorCode::NotFound, &detail);
        };
        self.register(row.id, src, true)?;
        self.next_query.remove(&row.id);
        self.deliver(&row);
        Ok(())
    }

    fn on_cancel(&mut self, ins: &Instruction, src: &Source) -> Result<(), JournalError> {
        let Some(row) = self.journal.get_by_key(&ins.key())? else {
            let detail = format!("no order {}", ins.key());
            return self.reject(src, &Echo::of(ins), ErrorCode::NotFound, &detail);
        };
        if let Some(detail) = self.not_allowed(&row, ins) {
            return self.reject(src, &Echo::of(ins), ErrorCode::NotAllowed, &detail);
        }
        let cancellable = row.state == State::Accepted || (row.kind == Kind::Sale && row.state.is_open());
        if cancellable && row.state != State::Cancelling {
            let (id, reply) = (row.id, self.reply_for(row.id, src)?);
            self.cancel_from(row, CancelledBy::His, reply)?;
            self.register(id, src, false)?;
        } else {
            self.register(row.id, src, true)?;
            self.deliver(&row);
        }
        Ok(())
    }

    /// Cancels an order: at once while it is queued; on the POS while it runs there; by the
    /// resolver (query, then cancel) when its outcome is open.
    fn cancel(&mut self, row: OrderRow, by: CancelledBy) -> Result<State, JournalError> {
        self.cancel_from(row, by, None)
    }

    /// Cancels, registering the cancel instruction's result file (`reply`) with the change.
    fn cancel_from(
        &mut self,
        row: OrderRow,
        by: CancelledBy,
        reply: Option<(String, String)>,
    ) -> Result<State, JournalError> {
        let reply = reply.as_ref().map(|(s, w)| ReplyTo { stem: s, work_file: Some(w) });
        let who = match by {
            CancelledBy::His => "HIS",
            CancelledBy::Cashier => "the cashier",
            CancelledBy::Timeout => "the deadline",
            CancelledBy::Pos => "the POS",
        };
        if row.state == State::Accepted {
            // Never sent: cancelling needs no POS.
            let row = self.journal.transition(
                &row,
                Cause::CancelQueued,
                State::Cancelled,
                &Update {
                    error_code: Some(ErrorCode::Cancelled.as_str()),
                    cancelled_by: Some(by),
                    detail: Some(&format!("cancelled by {who} before sending")),
                    reply,
                    ..Default::default()
                },
            )?;
            self.deliver(&row);
            return Ok(row.state);
        }
        let is_running = self.active.as_ref().is_some_and(|a| a.id == row.id && a.phase != Phase::Querying);
        let row = self.journal.transition(
            &row,
            Cause::CancelAsked,
            State::Cancelling,
            &Update {
                error_code: Some(cancel_code(by).as_str()),
                cancelled_by: Some(by),
                detail: Some(&match by {
                    CancelledBy::Timeout => "timeout: cancelling on POS".to_string(),
                    _ => format!("cancel requested by {who}"),
                }),
                reply,
                ..Default::default()
            },
        )?;
        if is_running {
            self.send_cancel(&row);
        } else {
            // The resolver will find it open, query it and cancel it if still running.
            self.next_query.remove(&row.id);
        }
        self.deliver(&row);
        Ok(row.state)
    }

    fn send_cancel(&mut self, row: &OrderRow) {
        let reference = row.pos_ref.clone().unwrap_or_default();
        info!(key = row.key, reference, by = row.cancelled_by.map(CancelledBy::as_str), "CANCEL sent");
        self.emit(Effect::Pos(Request::Cancel { reference: reference.clone() }));
        self.set_active(row.id, reference, Phase::Cancelling);
    }

    /// Answers a refused instruction: its result (REJECTED) where the HIS looks, the file to the
    /// error folder with a reason file. A result file that answers something else is left alone.
    fn reject(&mut self, src: &Source, echo: &Echo, code: ErrorCode, detail: &str) -> Result<(), JournalError> {
        let order_no = echo.order_no.as_deref();
        warn!(code = code.as_str(), detail, "instruction refused");
        if self.journal_down.is_none() && self.reject_budget() {
            if let Err(e) = self.journal.record_reject(&src.name(), order_no, code.as_str(), detail) {
                self.journal_failed(&e);
            }
        }
        let msg = ResultMessage {
            v: 1,
            kind: "result".into(),
            device_id: self.s.device_id.clone(),
            terminal_id: echo.terminal_id.clone(),
            order_no: echo.order_no.clone(),
            refund_no: echo.refund_no.clone(),
            pay_order_no: None,
            status: Status::Rejected,
            channel: None,
            amount: echo.amount.clone(),
            finished_at: Some(crate::journal::stamp(self.wall)),
            error_code: Some(code.as_str().into()),
            error_message: Some(code.zh().into()),
            error_message_en: Some(detail.to_string()),
            request: None,
            in_reply_to: None,
        };
        match src {
            Source::File { stem, work_path } => {
                // A stem that still answers a running order keeps that answer. (A read: it works
                // on a full disk too; when even that fails, the result file is left alone.)
                let live = self.journal.stem_in_use(stem).unwrap_or(true);
                if live {
                    warn!(stem, "this file name answers an order still running: its result file is left alone");
                } else {
                    let text = self.seal(&msg);
                    self.file(FileOp::WriteResult { stem: stem.clone(), text, final_: true }, Purpose::Refusal);
                }
                self.quarantine(work_path.clone(), code, detail);
            }
            Source::Socket { conn } => {
                let mut msg = msg;
                if let Some((request, id)) = self.request.clone() {
                    msg.request = Some(request.to_string()).filter(|r| !r.is_empty());
                    msg.in_reply_to = Some(id);
                }
                let line = self.seal(&msg);
                self.emit(Effect::Socket { conn: *conn, line });
            }
        }
        self.notice(Notice::Rejected { source: src.name(), code, detail: detail.to_string() });
        Ok(())
    }

    /// Whether this refusal may be journaled: a flood is answered in full, but only so much of
    /// it goes into the journal (the rest is counted and logged).
    fn reject_budget(&mut self) -> bool {
        let secs = self.now.saturating_duration_since(self.reject_refill).as_secs_f64();
        self.reject_refill = self.now;
        self.reject_tokens = (self.reject_tokens + secs * REJECTS_PER_SEC).min(REJECT_BURST);
        if self.reject_tokens >= 1.0 {
            self.reject_tokens -= 1.0;
            if self.rejects_unjournaled > 0 {
                warn!(count = self.rejects_unjournaled, "refusals answered but not journaled during a flood");
                self.rejects_unjournaled = 0;
            }
            true
        } else {
            self.rejects_unjournaled += 1;
            false
        }
    }

    fn quarantine(&mut self, path: PathBuf, code: ErrorCode, detail: &str) {
        let reason = format!(
            "HIS Bridge refused this file / HIS Bridge 拒收此文件\ntime: {}\nerror_code: {}\n原因: {}\nreason: {}\n",
            crate::journal::stamp(self.wall),
            code.as_str(),
            code.zh(),
            detail
        );
        self.file(FileOp::Quarantine { path, reason }, Purpose::Quarantine);
    }

    fn archive(&mut self, order: i64, stem: String, path: PathBuf) {
        let day = self.wall.format("%Y-%m-%d").to_string();
        self.file(FileOp::Archive { path, day }, Purpose::Archive { order, stem });
    }

    // ---- File effects ---------------------------------------------------------------------

    fn file(&mut self, op: FileOp, purpose: Purpose) {
        // A newer result for a stem replaces one still waiting to be written.
        if let FileOp::WriteResult { stem, .. } = &op {
            self.files.retain(|_, p| !matches!(&p.op, FileOp::WriteResult { stem: s, .. } if s == stem));
        }
        let id = self.next_file;
        self.next_file += 1;
        self.files.insert(id, PendingFile { op: op.clone(), purpose, attempts: 0, due: None });
        self.emit(Effect::File { id, op });
    }

    fn on_file_done(&mut self, id: u64, res: Result<(), String>) -> Result<(), JournalError> {
        let Some(p) = self.files.get_mut(&id) else {
            return Ok(()); // superseded by a newer result for the same stem
        };
        match res {
            Err(why) => {
                p.attempts += 1;
                let backoff = Duration::from_millis(500u64 << p.attempts.min(7)).min(MAX_BACKOFF);
                p.due = Some(self.now + backoff);
                error!(op = %p.op.describe(), error = %why, attempt = p.attempts, retry_in_ms = backoff.as_millis() as u64, "file operation failed; will retry");
                let detail = format!("{}: {why}", p.op.describe());
                self.raise(Attention::Files, detail);
                self.schedule_retry();
                Ok(())
            }
            Ok(()) => {
                let p = self.files.remove(&id).expect("present");
                if !self.files.values().any(|f| f.attempts > 0) {
                    self.clear(Attention::Files);
                }
                self.schedule_retry();
                match p.purpose {
                    Purpose::Result { order, stem, final_: true } => {
                        crate::failpoint::hit("written");
                        self.journal.mark_reply_final(order, &stem)?;
                        if let Some(row) = self.journal.get(order)? {
                            self.settle_files(&row)?;
                        }
                    }
                    Purpose::Archive { order, stem } => {
                        self.journal.clear_work_file(order, &stem)?;
                        if let Some(row) = self.journal.get(order)? {
                            self.settle_files(&row)?;
                        }
                    }
                    Purpose::Result { .. } | Purpose::Refusal | Purpose::Quarantine => {}
                }
                Ok(())
            }
        }
    }

    /// For a final order: archives the claimed files of replies whose result is out, and marks
    /// the order's results written once every reply is done.
    fn settle_files(&mut self, row: &OrderRow) -> Result<(), JournalError> {
        if !row.state.is_final() {
            return Ok(());
        }
        let mut all = true;
        for r in self.journal.replies(row.id)? {
            if r.final_at.is_none() {
                all = false;
                continue;
            }
            if let Some(w) = r.work_file {
                all = false;
                let busy = self.files.values().any(
                    |f| matches!(&f.purpose, Purpose::Archive { order, stem } if *order == row.id && *stem == r.stem),
                );
                if !busy {
                    self.archive(row.id, r.stem, PathBuf::from(w));
                }
            }
        }
        if all && self.journal.get(row.id)?.is_some_and(|r| r.result_written_at.is_none()) {
            self.journal.mark_result_written(row.id)?;
        }
        Ok(())
    }

    fn schedule_retry(&mut self) {
        match self.files.values().filter_map(|f| f.due).min() {
            Some(t) => self.timers.set(Timer::Retry, t),
            None => self.timers.stop(Timer::Retry),
        }
    }

    fn retry_files(&mut self) {
        let now = self.now;
        let due: Vec<u64> =
            self.files.iter().filter(|(_, f)| f.due.is_some_and(|t| t <= now)).map(|(i, _)| *i).collect();
        for id in due {
            if let Some(f) = self.files.get_mut(&id) {
                f.due = None;
                let op = f.op.clone();
                self.emit(Effect::File { id, op });
            }
        }
        self.schedule_retry();
    }

    // ---- The POS --------------------------------------------------------------------------

    fn set_active(&mut self, id: i64, pos_ref: String, phase: Phase) {
        let t = &self.s.timeouts;
        let deadline = match phase {
            Phase::Sent => t.scan,
            Phase::Paying => t.password,
            Phase::Cancelling => t.cancel,
            Phase::Querying => QUERY_TIMEOUT,
        };
        self.timers.set(Timer::Deadline, self.now + deadline);
        if phase == Phase::Querying {
            self.timers.stop(Timer::Poll);
        } else {
            self.timers.set(Timer::Poll, self.now + t.query_interval);
        }
        self.active = Some(Active { id, pos_ref, phase });
    }

    fn clear_active(&mut self) {
        self.active = None;
        self.timers.stop(Timer::Deadline);
        self.timers.stop(Timer::Poll);
    }

    fn advance(&mut self) -> Result<(), JournalError> {
        if self.active.is_some() || !self.link.ready || self.journal_down.is_some() {
            return Ok(());
        }
        if self.totals_sent.is_some() || self.info_sent {
            // The POS answers TOTALS at once; an ERROR in between must not be taken for a sale's.
            return Ok(());
        }
        if let Some((date, _)) = self.totals_waiting.first().cloned() {
            info!(date, "asking the POS for its day totals");
            self.emit(Effect::Pos(Request::Totals { date: date.clone() }));
            self.totals_sent = Some(date);
            self.timers.set(Timer::Totals, self.now + QUERY_TIMEOUT);
            return Ok(());
        }
        if !self.info_waiting.is_empty() {
            self.emit(Effect::Pos(Request::Info));
            self.info_sent = true;
            self.timers.set(Timer::Info, self.now + QUERY_TIMEOUT);
            return Ok(());
        }
        let open = self.journal.open_orders()?;
        self.parked.retain(|id| open.iter().any(|r| r.id == *id));
        self.not_found.retain(|id, _| open.iter().any(|r| r.id == *id));
        if !open.is_empty() {
            let now = self.now;
            self.next_query.retain(|id, _| open.iter().any(|r| r.id == *id));
            let due = open.iter().find(|r| self.next_query.get(&r.id).is_none_or(|t| *t <= now));
            match due {
                Some(row) => {
                    let pos_ref = row.pos_ref.clone().unwrap_or_default();
                    self.next_query.insert(row.id, now + self.s.timeouts.query_interval);
                    info!(key = row.key, pos_ref, state = row.state.as_str(), "querying the POS for an open order");
                    self.emit(Effect::Pos(Request::Query { reference: pos_ref.clone() }));
                    self.set_active(row.id, pos_ref, Phase::Querying);
                }
                None => {
                    if let Some(t) = self.next_query.values().min() {
                        self.timers.set(Timer::Resolver, *t);
                    }
                }
            }
            // Nothing new starts while an outcome is open: the POS may still be working on it.
            if due.is_some() || open.iter().any(|r| !self.parked.contains(&r.id)) {
                return Ok(());
            }
        }
        if self.history_lost.is_some() {
            return Ok(());
        }
        let Some(row) = self.journal.next_accepted()? else {
            return Ok(());
        };
        let device = self.link.device_id.clone().unwrap_or_default();
        // Invariant: the SENT row (with its POS reference) is durable before the first byte.
        let row = self.journal.start_attempt(&row, &device)?;
        crate::failpoint::hit("sent");
        let pos_ref = row.pos_ref.clone().expect("start_attempt sets pos_ref");
        let amount = row.amount_fen.unsigned_abs();
        let req = match row.kind {
            Kind::Sale => {
                Request::Sale { reference: pos_ref.clone(), amount_fen: amount, description: row.description.clone() }
            }
            Kind::Refund => Request::Refund {
                reference: pos_ref.clone(),
                original: row.orig_pos_ref.clone().unwrap_or_default(),
                amount_fen: amount,
            },
        };
        let span = info_span!("order", key = %row.key, pos_ref = %pos_ref);
        span.in_scope(|| info!(kind = ?row.kind, amount = %fmt_amount(row.amount_fen), "sent to POS"));
        self.emit(Effect::Pos(req));
        self.set_active(row.id, pos_ref, Phase::Sent);
        self.deliver(&row);
        Ok(())
    }

    fn on_refused(&mut self, req: Request, why: &str) -> Result<(), JournalError> {
        match &req {
            Request::Sale { reference, .. } | Request::Refund { reference, .. } => {
                if self.active.as_ref().is_some_and(|a| a.pos_ref == *reference) {
                    self.clear_active();
                }
                if let Some(row) = self.journal.by_pos_ref(reference)?.filter(|r| r.state == State::Sent) {
                    // The session refused before writing a byte: safe to queue again.
                    warn!(key = row.key, error = why, "POS not ready; order stays queued");
                    let row = self.journal.requeue(&row, &format!("not sent: {why}"))?;
                    self.deliver(&row);
                }
            }
            Request::Cancel { reference } | Request::Query { reference } => {
                if self.active.as_ref().is_some_and(|a| a.pos_ref == *reference) {
                    warn!(reference, error = why, "POS not ready; the resolver asks again");
                    self.clear_active();
                    // A running transaction whose CANCEL could not go is now of open outcome.
                    if let Some(row) = self.journal.by_pos_ref(reference)? {
                        if matches!(row.state, State::Sent | State::Paying) {
                            self.lost(&row, "command could not be sent")?;
                        }
                    }
                }
            }
            Request::Totals { date } => {
                let date = date.clone();
                self.answer_totals(&date, Err(format!("POS not ready: {why}")));
            }
            Request::Info => self.answer_info(Err(format!("POS not ready: {why}"))),
            Request::Hello { .. } | Request::Ping => {}
        }
        Ok(())
    }

    fn on_deadline(&mut self) -> Result<(), JournalError> {
        let Some((id, phase)) = self.active.as_ref().map(|a| (a.id, a.phase)) else {
            return Ok(());
        };
        let row = self.journal.get(id)?;
        match (phase, row) {
            // Still running at the POS: cancelled there (the active transaction stays, now
            // waiting for the cancel's outcome).
            (Phase::Sent | Phase::Paying, Some(row)) if row.kind == Kind::Sale && !row.state.is_final() => {
                warn!(key = row.key, "patient did not finish in time");
                self.cancel(row, CancelledBy::Timeout)?;
            }
            (Phase::Sent | Phase::Paying | Phase::Cancelling, Some(row)) if !row.state.is_final() => {
                warn!(key = row.key, "no answer from POS in time: outcome unknown, will query");
                self.lost(&row, "no answer in time")?;
            }
            (Phase::Querying, Some(row)) => {
                warn!(key = row.key, "query unanswered; will ask again");
                self.clear_active();
            }
            _ => self.clear_active(),
        }
        Ok(())
    }

    /// The outcome of the order's transaction is not known now: UNKNOWN (a cancel in flight
    /// stays CANCELLING), queried by the resolver.
    fn lost(&mut self, row: &OrderRow, why: &str) -> Result<(), JournalError> {
        if self.active.as_ref().is_some_and(|a| a.id == row.id) {
            self.clear_active();
        }
        self.next_query.insert(row.id, self.now + self.s.timeouts.query_interval.min(Duration::from_secs(1)));
        if !matches!(row.state, State::Sent | State::Paying) {
            return Ok(());
        }
        let row = self.journal.transition(
            row,
            Cause::Lost,
            State::Unknown,
            &Update { detail: Some(why), ..Default::default() },
        )?;
        self.deliver(&row);
        Ok(())
    }

    fn link_gone(&mut self, why: &str) -> Result<(), JournalError> {
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        self.clear_active();
        if a.phase == Phase::Querying {
            return Ok(());
        }
        if let Some(row) = self.journal.get(a.id)? {
            warn!(key = row.key, why, "link lost during a transaction: outcome unknown until queried");
            self.lost(&row, why)?;
        }
        Ok(())
    }

    fn on_pos(&mut self, ev: PosEvent) -> Result<(), JournalError> {
        if self.journal_down.is_some() {
            // Nothing can be recorded: what the POS says now is asked again once the journal works.
            debug!(event = ?ev, "journal down: POS event left for the resolver");
            if matches!(ev, PosEvent::PortLost { .. } | PosEvent::Session(SessionEvent::LinkLost)) {
                self.clear_active();
            }
            return Ok(());
        }
        match ev {
            PosEvent::PortLost { reason } => self.link_gone(&format!("port lost: {reason}")),
            PosEvent::Session(SessionEvent::LinkLost) => self.link_gone("POS stopped answering"),
            PosEvent::Session(SessionEvent::SendFailed(req)) => {
                if let (Some(a), Some(r)) = (&self.active, req.reference()) {
                    if a.pos_ref == r {
                        return self.link_gone("command not acknowledged by POS");
                    }
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::Progress { reference, stage }) => {
                let Some(row) = self.journal.by_pos_ref(&reference)? else {
                    warn!(reference, "POS event for an unknown reference");
                    return Ok(());
                };
                if matches!(row.pos_evidence.as_deref(), None | Some("ACK")) {
                    self.journal.note_evidence(&row, "EVENT")?;
                }
                let is_active = self.active.as_ref().is_some_and(|a| a.pos_ref == reference && a.phase == Phase::Sent);
                if stage == Stage::UserPaying && is_active && row.state == State::Sent {
                    let row = self.journal.transition(
                        &row,
                        Cause::UserPaying,
                        State::Paying,
                        &Update { detail: Some("patient confirming payment"), ..Default::default() },
                    )?;
                    crate::failpoint::hit("paying");
                    self.set_active(row.id, reference, Phase::Paying);
                    self.notify_row(&row);
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::Result(r)) => self.on_result(r),
            PosEvent::Session(SessionEvent::Busy { reference, current }) => {
                if self.active.as_ref().is_none_or(|a| a.pos_ref != reference) {
                    return Ok(());
                }
                let msg = format!("POS busy with {current}");
                self.refused_by_pos(ErrorCode::PosBusy, None, &msg)
            }
            PosEvent::Session(SessionEvent::Totals(t)) => {
                self.journal.save_pos_totals(&t)?;
                info!(date = t.date, "POS day totals received");
                let date = t.date.clone();
                self.answer_totals(&date, Ok(t));
                Ok(())
            }
            PosEvent::Session(SessionEvent::Info { device_id, version, model, time }) => {
                if self.info_sent {
                    self.answer_info(Ok(PosInfo { device_id, version, model, time }));
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::PosError { code, message }) => {
                warn!(code, message, "POS reported an error");
                if self.info_sent {
                    self.answer_info(Err(format!("the POS refused INFO: {code} {message}")));
                    return Ok(());
                }
                if let Some(date) = self.totals_sent.clone() {
                    self.answer_totals(&date, Err(format!("the POS refused TOTALS: {code} {message}")));
                    return Ok(());
                }
                self.refused_by_pos(ErrorCode::Declined, Some(&code), &message)
            }
            PosEvent::Session(SessionEvent::Delivered { reference }) => {
                if let Some(row) = self.journal.by_pos_ref(&reference)?.filter(|r| r.pos_evidence.is_none()) {
                    self.journal.note_evidence(&row, "ACK")?;
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::Garbled(what)) => {
                warn!(what, "unreadable frame from the POS dropped");
                Ok(())
            }
            PosEvent::Session(SessionEvent::Connected { .. } | SessionEvent::DeviceMismatch { .. }) => Ok(()),
        }
    }

    /// The POS refused the SALE/REFUND just sent (`BUSY`, `ERROR`): nothing started there, so
    /// the order failed definitely.
    fn refused_by_pos(&mut self, code: ErrorCode, pos_code: Option<&str>, msg: &str) -> Result<(), JournalError> {
        let Some(id) = self.active.as_ref().filter(|a| a.phase == Phase::Sent).map(|a| a.id) else {
            return Ok(());
        };
        self.clear_active();
        let Some(row) = self.journal.get(id)?.filter(|r| r.state == State::Sent) else {
            return Ok(());
        };
        let row = self.journal.transition(
            &row,
            Cause::PosRefused,
            State::Failed,
            &Update {
                error_code: Some(code.as_str()),
                pos_code,
                pos_message: Some(msg),
                detail: Some(msg),
                ..Default::default()
            },
        )?;
        self.finished(&row);
        Ok(())
    }

    fn answer_info(&mut self, res: Result<PosInfo, String>) {
        self.info_sent = false;
        self.timers.stop(Timer::Info);
        for token in std::mem::take(&mut self.info_waiting) {
            self.emit(Effect::Answer { token, answer: Answer::Info(res.clone()) });
        }
    }

    fn answer_totals(&mut self, date: &str, res: Result<PosTotals, String>) {
        if self.totals_sent.as_deref() == Some(date) {
            self.totals_sent = None;
            self.timers.stop(Timer::Totals);
        }
        let (now, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.totals_waiting).into_iter().partition(|(d, _)| d == date);
        self.totals_waiting = later;
        for (_, token) in now {
            self.emit(Effect::Answer { token, answer: Answer::Totals(res.clone()) });
        }
    }

    /// The POS contradicted itself or the request: the order's outcome is open (UNKNOWN, or
    /// CANCELLING kept) and a person is told; the resolver keeps asking.
    fn contradiction(&mut self, row: &OrderRow, what: &str) -> Result<(), JournalError> {
        error!(key = row.key, what, "the POS contradicts itself or the request: outcome open, attention");
        self.raise(Attention::PosContradiction, format!("order {}: {what}", row.key));
        if self.active.as_ref().is_some_and(|a| a.id == row.id) {
            self.clear_active();
        }
        // Asked again now and then; the window goes on meanwhile.
        self.parked.insert(row.id);
        self.next_query.insert(row.id, self.now + self.s.timeouts.query_interval * 10);
        if matches!(row.state, State::Sent | State::Paying | State::Cancelling) {
            let row = self.journal.transition(
                row,
                Cause::Contradiction,
                State::Unknown,
                &Update { detail: Some(what), ..Default::default() },
            )?;
            self.deliver(&row);
        }
        Ok(())
    }

    fn on_result(&mut self, r: TxnResult) -> Result<(), JournalError> {
        let Some(row) = self.journal.by_pos_ref(&r.reference)? else {
            warn!(reference = r.reference, status = r.status.as_str(), "POS result for an unknown reference dropped");
            return Ok(());
        };
        let span = info_span!("order", key = %row.key, pos_ref = %r.reference);
        let _g = span.enter();
        let active_phase = self.active.as_ref().filter(|a| a.pos_ref == r.reference).map(|a| a.phase);
        let answers_query = active_phase == Some(Phase::Querying);
        if row.state.is_final() {
            if active_phase.is_some() {
                self.clear_active();
            }
            debug!(status = r.status.as_str(), "result for a finished order: nothing changes");
            return Ok(());
        }
        if let Err(what) = check_result(&row, &r) {
            // Wrong as it is, the answer shows the POS has the transaction.
            if matches!(row.pos_evidence.as_deref(), None | Some("ACK")) && r.status != TxnStatus::NotFound {
                self.journal.note_evidence(&row, "EVENT")?;
            }
            return self.contradiction(&row, &what);
        }
        if !consistent(row.pos_evidence.as_deref(), r.status) {
            let what = format!(
                "the POS now says {} for {} after it said {}",
                r.status.as_str(),
                r.reference,
                row.pos_evidence.as_deref().unwrap_or("-")
            );
            return self.contradiction(&row, &what);
        }
        if r.status != TxnStatus::NotFound {
            self.not_found.remove(&row.id);
            // What the POS said last (not "not found") is what a later answer must agree with.
            self.journal.note_evidence(&row, r.status.as_str())?;
        } else {
            let interval = self.s.timeouts.query_interval;
            let confirmed =
                self.not_found.get(&row.id).is_some_and(|t| self.now.saturating_duration_since(*t) >= interval);
            if !confirmed {
                // Believed only when the POS says it again later: until then the outcome is open.
                info!(state = row.state.as_str(), "POS has no record of it; asking once more before believing it");
                self.not_found.entry(row.id).or_insert(self.now);
                if self.active.as_ref().is_some_and(|a| a.id == row.id) {
                    self.clear_active();
                }
                self.lost(&row, "the POS has no record of it yet")?;
                self.next_query.insert(row.id, self.now + interval);
                return Ok(());
            }
            self.not_found.remove(&row.id);
        }
        if row.kind == Kind::Refund && r.status == TxnStatus::Refunded && !answers_query {
            // A refund being accepted is not the refund being done: confirm it by a query.
            info!("POS reports the refund done; confirming by query");
            self.emit(Effect::Pos(Request::Query { reference: r.reference.clone() }));
            self.set_active(row.id, r.reference.clone(), Phase::Querying);
            return Ok(());
        }
        if row.state == State::Cancelling && r.status == TxnStatus::Paid && !answers_query {
            // The sale's own RESULT crossed our CANCEL: what counts is the cancel's outcome
            // (REVERSED when the money went back), or a query after it.
            info!("PAID arrived while cancelling; waiting for the cancel's outcome");
            return Ok(());
        }
        let channel = r.channel.map(|c| c.as_str());
        let (state, code) = match r.status {
            TxnStatus::Paid => (State::Success, None),
            TxnStatus::Refunded => (State::Refunded, None),
            TxnStatus::Failed if row.kind == Kind::Refund => (State::Failed, Some(ErrorCode::RefundFailed)),
            TxnStatus::Failed => (State::Failed, Some(ErrorCode::Declined)),
            TxnStatus::Cancelled => {
                let by = row.cancelled_by.unwrap_or(CancelledBy::Pos);
                (State::Cancelled, Some(cancel_code(by)))
            }
            TxnStatus::Reversed => (State::Reversed, None),
            TxnStatus::NotFound => (State::Failed, Some(ErrorCode::PosNotReceived)),
            TxnStatus::InProgress if active_phase.is_some() && !answers_query => {
                // The answer to a poll while waiting: still running, nothing changes.
                return Ok(());
            }
            TxnStatus::InProgress => {
                // A query found it still running: follow it as the active transaction.
                info!(state = row.state.as_str(), "POS reports the transaction still running");
                if row.state == State::Cancelling {
                    if row.kind == Kind::Sale {
                        // A cancel asked for while the outcome was open: send it now.
                        self.send_cancel(&row);
                    } else {
                        self.set_active(row.id, r.reference.clone(), Phase::Cancelling);
                    }
                    return Ok(());
                }
                let row = if row.state != State::Paying {
                    let row = self.journal.transition(
                        &row,
                        Cause::UserPaying,
                        State::Paying,
                        &Update { detail: Some("query: still in progress"), ..Default::default() },
                    )?;
                    self.deliver(&row);
                    row
                } else {
                    row
                };
                self.set_active(row.id, r.reference.clone(), Phase::Paying);
                return Ok(());
            }
        };
        if state == State::Cancelled && row.kind == Kind::Refund {
            return self.contradiction(&row, "the POS reports a refund cancelled; refunds cannot be cancelled");
        }
        if active_phase.is_some() || self.active.as_ref().is_some_and(|a| a.id == row.id) {
            self.clear_active();
        }
        self.next_query.remove(&row.id);
        let detail = format!("POS result {}", r.status.as_str());
        let cancelled_by = (state == State::Cancelled && row.cancelled_by.is_none()).then_some(CancelledBy::Pos);
        let row = self.journal.transition(
            &row,
            Cause::PosFinal,
            state,
            &Update {
                pay_order_no: r.pay_order_no.as_deref(),
                channel,
                pos_code: r.code.as_deref(),
                pos_message: r.message.as_deref(),
                error_code: code.map(ErrorCode::as_str),
                detail: Some(&detail),
                cancelled_by,
                evidence: None,
                reply: None,
            },
        )?;
        crate::failpoint::hit("finished");
        info!(state = state.as_str(), channel, "order finished");
        self.finished(&row);
        Ok(())
    }

    fn finished(&mut self, row: &OrderRow) {
        self.deliver(row);
        // A contradiction's attention is over when no order is left UNKNOWN after it.
        if self.attention.contains_key(&Attention::PosContradiction)
            && self.journal.open_orders().is_ok_and(|open| !open.iter().any(|o| o.state == State::Unknown))
        {
            self.clear(Attention::PosContradiction);
        }
    }

    // ---- Results --------------------------------------------------------------------------

    fn seal(&self, msg: &ResultMessage) -> String {
        self.key.seal(Direction::ToHis, msg.to_json().as_bytes())
    }

    pub fn result_message(&self, row: &OrderRow) -> ResultMessage {
        result_message(row, &self.s.device_id)
    }

    /// Remembers where the order's results go: a result file (journaled, survives a restart) or
    /// an open connection (in memory; after a restart the client asks again).
    /// `journal_it`: a file's reply still has to be journaled (it was not registered with a
    /// state change).
    fn register(&mut self, id: i64, src: &Source, journal_it: bool) -> Result<(), JournalError> {
        match src {
            Source::File { stem, .. } if journal_it => match self.reply_for(id, src)? {
                Some((_, work)) => self.journal.add_reply(id, stem, Some(&work)),
                None => Ok(()),
            },
            Source::File { .. } => Ok(()),
            Source::Socket { conn } => {
                let (request, id_hex) = self.request.clone().unwrap_or(("order", String::new()));
                let subs = self.subscribers.entry(id).or_default();
                // One subscription per instruction: each line says which one it answers.
                if !subs.iter().any(|s| s.conn == *conn && s.in_reply_to == id_hex) {
                    subs.push(Sub { conn: *conn, request, in_reply_to: id_hex });
                }
                Ok(())
            }
        }
    }

    /// Sends the order's current result to every answer it still owes: connections waiting for
    /// it, and result files whose final result has not been written. A result file that holds a
    /// final result is never written again.
    fn deliver(&mut self, row: &OrderRow) {
        self.notify_row(row);
        let mut msg = self.result_message(row);
        if row.state == State::Accepted && !self.link.ready {
            // Queued for a POS that cannot be reached: the HIS sees why it waits, and until when.
            let secs = self.s.timeouts.pos_unavailable.as_secs();
            msg.error_message = Some(format!("POS未连接，订单等待中；{secs}秒内未连接则判为失败（未扣款）"));
            msg.error_message_en = Some(format!(
                "waiting for the POS, which is not connected; the order fails with E_POS_UNAVAILABLE after {secs} s \
                 unless it connects (nothing is charged meanwhile)"
            ));
        }
        if let Some(subs) = self.subscribers.get(&row.id).cloned() {
            for sub in subs {
                let mut m = msg.clone();
                m.request = Some(sub.request.to_string());
                m.in_reply_to = Some(sub.in_reply_to).filter(|s| !s.is_empty());
                let line = self.seal(&m);
                self.emit(Effect::Socket { conn: sub.conn, line });
            }
            if row.state.is_final() {
                self.subscribers.remove(&row.id);
            }
        }
        let replies = match self.journal.replies(row.id) {
            Ok(r) => r,
            Err(e) => return self.journal_failed(&e),
        };
        for r in replies.iter().filter(|r| r.final_at.is_none()) {
            // A reply owes the final result its order had when it became final; a later attempt
            // (the HIS sent the order again) never changes what this file is told.
            let json = match (&r.pinned, row.state.is_final()) {
                (Some(p), _) => p.clone(),
                (None, true) => {
                    let json = msg.to_json();
                    if let Err(e) = self.journal.pin_reply(row.id, &r.stem, &json) {
                        self.journal_failed(&e);
                    }
                    json
                }
                (None, false) => msg.to_json(),
            };
            let final_ = r.pinned.is_some() || row.state.is_final();
            let text = self.key.seal(Direction::ToHis, json.as_bytes());
            self.file(
                FileOp::WriteResult { stem: r.stem.clone(), text, final_ },
                Purpose::Result { order: row.id, stem: r.stem.clone(), final_ },
            );
        }
        if let Err(e) = self.settle_files(row) {
            self.journal_failed(&e);
        }
    }

    fn notify_row(&mut self, row: &OrderRow) {
        self.notice(Notice::Order {
            key: row.key.clone(),
            state: row.state,
            amount: fmt_amount(row.amount_fen),
            channel: row.channel.clone(),
            error_code: row.error_code.clone(),
            pos_message: row.pos_message.clone().filter(|_| row.state.is_final()),
        });
    }
}

/// The result the HIS is given for an order as journaled.
pub fn result_message(row: &OrderRow, device_id: &str) -> ResultMessage {
    let status = row.state.his_status();
    // Error fields belong to final results (and UNKNOWN); a cancel in progress is PROCESSING.
    let code = row
        .error_code
        .as_deref()
        .and_then(ErrorCode::parse)
        .filter(|_| status.is_final() && !matches!(status, Status::Success | Status::Refunded | Status::Reversed));
    let (zh, en) = match (status, code) {
        (Status::Unknown, _) => (
            Some("支付结果未知，系统正在向POS查询，请勿重复收费".to_string()),
            Some("outcome not known yet; the bridge is querying the POS; do not charge again".to_string()),
        ),
        (_, Some(c)) => (
            Some(match &row.pos_message {
                Some(m) => format!("{}：{m}", c.zh()),
                None => c.zh().to_string(),
            }),
            // English only: the wallet's words are Chinese; its code is not.
            Some(match &row.pos_code {
                Some(pc) if matches!(c, ErrorCode::Declined | ErrorCode::RefundFailed | ErrorCode::PosCancelled) => {
                    format!("{} (POS code {pc})", en_text(c))
                }
                _ => en_text(c).to_string(),
            }),
        ),
        _ => (None, None),
    };
    ResultMessage {
        v: 1,
        kind: "result".into(),
        device_id: row.device_id.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| device_id.to_string()),
        terminal_id: Some(row.terminal_id.clone()),
        order_no: Some(row.order_no.clone()),
        refund_no: row.refund_no.clone(),
        pay_order_no: row.pay_order_no.clone(),
        status,
        channel: row.channel.clone(),
        amount: Some(fmt_amount(row.amount_fen)),
        finished_at: row.finished_at.clone(),
        error_code: code
            .map(|c| c.as_str().to_string())
            .or_else(|| (status == Status::Unknown).then(|| "E_UNKNOWN".into())),
        error_message: zh,
        error_message_en: en,
        request: None,
        in_reply_to: None,
    }
}

fn cancel_code(by: CancelledBy) -> ErrorCode {
    match by {
        CancelledBy::Timeout => ErrorCode::Timeout,
        CancelledBy::His | CancelledBy::Cashier => ErrorCode::Cancelled,
        CancelledBy::Pos => ErrorCode::PosCancelled,
    }
}

/// Checks a RESULT against the order it answers (docs/pos-protocol.md §4.5): the operation,
/// the amount, and the fields each status requires. An answer that fails is never taken as
/// an outcome.
pub fn check_result(row: &OrderRow, r: &TxnResult) -> Result<(), String> {
    let op = match row.kind {
        Kind::Sale => hisbridge_protocol::TxnKind::Sale,
        Kind::Refund => hisbridge_protocol::TxnKind::Refund,
    };
    if let Some(k) = r.kind {
        if k != op {
            return Err(format!("RESULT op={} for a {}", k.as_str(), row.kind.as_str()));
        }
    }
    let want = row.amount_fen.unsigned_abs();
    let amount_ok = |what: &str| match r.amount_fen {
        Some(a) if a == want => Ok(()),
        Some(a) => Err(format!("RESULT {what} amount={a} fen, the order is {want} fen")),
        None => Err(format!("RESULT {what} without amount")),
    };
    let has = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    match r.status {
        TxnStatus::Paid => {
            if row.kind != Kind::Sale {
                return Err("RESULT PAID for a refund".into());
            }
            amount_ok("PAID")?;
            if !has(&r.pay_order_no) {
                return Err("RESULT PAID without pay_no".into());
            }
            if r.channel.is_none() {
                return Err("RESULT PAID without channel".into());
            }
        }
        TxnStatus::Refunded => {
            if row.kind != Kind::Refund {
                return Err("RESULT REFUNDED for a collection".into());
            }
            amount_ok("REFUNDED")?;
            if !has(&r.pay_order_no) {
                return Err("RESULT REFUNDED without pay_no (the refund id)".into());
            }
        }
        TxnStatus::Reversed if row.kind != Kind::Sale => return Err("RESULT REVERSED for a refund".into()),
        _ => {}
    }
    Ok(())
}

/// Whether `status` can follow what the POS said before about the same reference (`ACK`: it
/// acknowledged the frame; `EVENT`: it showed progress; else the last status). The POS never
/// goes back: after a final status only the same status (or, for a paid sale, its reversal)
/// may come; once it has shown the transaction (an EVENT, a status), "not found" is a
/// contradiction, never a definite failure.
pub fn consistent(before: Option<&str>, status: TxnStatus) -> bool {
    let Some(before) = before else {
        return true;
    };
    match (before, status) {
        // An ACK says the frame arrived, not that a transaction was made (a POS busy with
        // another answers BUSY and keeps no record): its NOT_FOUND is taken, once confirmed.
        ("ACK", _) => true,
        (_, TxnStatus::NotFound) => false,
        ("EVENT" | "IN_PROGRESS", _) => true,
        (_, TxnStatus::InProgress) => false,
        ("PAID", TxnStatus::Reversed) => true,
        (b, s) => b == s.as_str(),
    }
}

pub(crate) fn fmt_amount(fen: i64) -> String {
    Amount::from_fen(fen).map(|a| a.to_string()).unwrap_or_else(|| "+0.00".into())
}

fn envelope_code(e: &crate::envelope::EnvelopeError) -> ErrorCode {
    use crate::envelope::EnvelopeError as E;
    match e {
        E::KeyId { .. } => ErrorCode::KeyId,
        E::Tag => ErrorCode::Decrypt,
        E::Direction { .. } => ErrorCode::Direction,
        _ => ErrorCode::Envelope,
    }
}

/// English text of an error code (docs/his-interface.md §3.5).
pub fn en_text(c: ErrorCode) -> &'static str {
    match c {
        ErrorCode::Envelope => "not a valid HB1 envelope",
        ErrorCode::KeyId => "key id does not match",
        ErrorCode::Decrypt => "decryption failed: wrong key or altered message",
        ErrorCode::Direction => "wrong direction: a result cannot be sent as an instruction",
        ErrorCode::Format => "message content is not valid",
        ErrorCode::Field => "a field is missing or invalid",
        ErrorCode::Amount => "amount format is invalid",
        ErrorCode::Terminal => "unknown software terminal",
        ErrorCode::FileName => "file name is not allowed",
        ErrorCode::Conflict => "order number reused with another amount or terminal",
        ErrorCode::NotFound => "no such order",
        ErrorCode::RefundOriginal => "no paid original order for this refund",
        ErrorCode::RefundExceeds => "refund exceeds the refundable amount",
        ErrorCode::Declined => "payment failed",
        ErrorCode::RefundFailed => "the refund failed; nothing was refunded",
        ErrorCode::PosNotReceived => {
            "the POS never received the transaction; nothing was charged; you may send it again"
        }
        ErrorCode::PosBusy => "the POS is busy with another transaction",
        ErrorCode::PosUnavailable => {
            "the POS could not be reached (not connected, or another device ID); the order was not sent; nothing was charged"
        }
        ErrorCode::Timeout => "the patient did not pay in time; the transaction was cancelled",
        ErrorCode::Cancelled => "cancelled at the HIS's or the cashier's request",
        ErrorCode::PosCancelled => {
            "cancelled at the POS (on the POS, or the POS restarted before the patient paid); nothing was charged"
        }
        ErrorCode::NotCancellable => "the order is finished and cannot be cancelled",
        ErrorCode::Stale => "message too old, or the HIS and bridge clocks differ",
        ErrorCode::Replay => "message received before (replay)",
        ErrorCode::Paused => "the cashier paused taking payments at this window; send it again later or elsewhere",
        ErrorCode::Journal => {
            "the bridge cannot record orders; payments at this window are stopped; nothing was charged"
        }
        ErrorCode::NotAllowed => "this terminal may not cancel or refund an order taken at another terminal",
    }
}

#[cfg(test)]
mod tests;
