//! The engine: one task that owns the journal and decides about money.
//!
//! One closed event set drives it (submissions from the HIS, events from the POS driver, its
//! own deadlines). At most one transaction is active at the POS; orders queue in the journal in
//! arrival order; orders whose outcome is open are queried before anything new starts.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisbridge_protocol::{PosTotals, Request, SessionEvent, Stage, TxnResult, TxnStatus};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{error, info, info_span, warn, Instrument};

use crate::amount::Amount;
use crate::config::{Folders, Timeouts};
use crate::envelope::{Direction, Key};
use crate::folders::{self, RESULT_EXT};
use crate::his::{salvage_order_no, ErrorCode, Instruction, InstructionKind, ResultMessage, Status};
use crate::intake::{Origin, Refusal, Submission};
use crate::journal::{Journal, JournalError, Kind, NewOrder, OrderRow, State, Update};
use crate::pos::{Link, PosEvent, PosHandle};

/// How long a QUERY may stay unanswered.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

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
}

/// Requests from front ends (tray, scheduler, command line) to the engine.
#[derive(Debug)]
pub enum Control {
    /// Ask the POS for its totals of `date` (`YYYYMMDD`); journaled when they arrive. Sent only
    /// while no transaction is active, and nothing new starts until the POS has answered.
    PosTotals { date: String, reply: oneshot::Sender<Result<PosTotals, String>> },
    /// New terminal list and timeouts from the settings window; they apply from the next order
    /// (and the next deadline) on.
    Reconfigure { terminals: BTreeSet<String>, timeouts: Timeouts },
    /// Stop (true) or resume (false) taking new orders. While paused, new orders are refused with
    /// `E_PAUSED`; queries, cancels and open orders carry on.
    Pause(bool),
    /// Ask the POS for its INFO (device, version, clock): the cashier's connection test.
    PosInfo { reply: oneshot::Sender<Result<PosInfo, String>> },
    /// A cashier's action on one order (by its key, `order_no` or `order_no@refund_no`).
    Order { key: String, action: OrderAction, reply: oneshot::Sender<Result<State, String>> },
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

pub struct EngineSettings {
    pub terminals: BTreeSet<String>,
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
    deadline: Instant,
    /// Who asked for the cancel: the bridge's timeout (true) or the HIS (false).
    cancel_by_timeout: bool,
    /// When the POS was last asked about this transaction: while waiting, a QUERY goes out every
    /// `query_interval`, so a lost RESULT costs seconds, not the whole deadline.
    polled_at: Instant,
}

impl Active {
    fn next_poll(&self, interval: Duration) -> Option<Instant> {
        (self.phase != Phase::Querying).then(|| self.polled_at + interval)
    }
}

pub struct Engine {
    s: EngineSettings,
    key: Arc<Key>,
    journal: Journal,
    pos: PosHandle,
    active: Option<Active>,
    last_query: HashMap<i64, Instant>,
    next_housekeeping: Instant,
    notices: broadcast::Sender<Notice>,
    /// Open connections waiting for an order's results.
    subscribers: HashMap<i64, Vec<(u64, mpsc::UnboundedSender<String>)>>,
    /// TOTALS requests waiting for an idle POS, and the one sent (its date and deadline).
    totals_waiting: Vec<(String, oneshot::Sender<Result<PosTotals, String>>)>,
    totals_sent: Option<(String, Instant)>,
    info_waiting: Vec<oneshot::Sender<Result<PosInfo, String>>>,
    info_sent: Option<Instant>,
    /// The cashier paused taking new orders.
    paused: bool,
}

fn result_name(stem: &str) -> String {
    format!("{stem}.{RESULT_EXT}")
}

impl Engine {
    pub fn new(
        s: EngineSettings,
        key: Arc<Key>,
        journal: Journal,
        pos: PosHandle,
        notices: broadcast::Sender<Notice>,
    ) -> Self {
        Self {
            s,
            key,
            journal,
            pos,
            active: None,
            last_query: HashMap::new(),
            next_housekeeping: Instant::now(),
            notices,
            subscribers: HashMap::new(),
            totals_waiting: Vec::new(),
            totals_sent: None,
            info_waiting: Vec::new(),
            info_sent: None,
            paused: false,
        }
    }

    pub async fn run(
        mut self,
        mut subs: mpsc::Receiver<Submission>,
        mut pos_events: mpsc::UnboundedReceiver<PosEvent>,
        mut control: mpsc::Receiver<Control>,
    ) {
        self.housekeeping();
        loop {
            if let Err(e) = self.advance().await {
                error!(error = %e, "journal error while starting the next transaction");
            }
            let deadline = self.next_deadline();
            let res = tokio::select! {
                s = subs.recv() => match s {
                    Some(s) => self.on_submission(s).await,
                    None => break,
                },
                e = pos_events.recv() => match e {
                    Some(e) => self.on_pos(e).await,
                    None => break,
                },
                Some(c) = control.recv() => self.on_control(c).await,
                _ = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => self.on_timeout().await,
            };
            if let Err(e) = res {
                error!(error = %e, "journal error");
            }
        }
        info!("engine stopped");
    }

    async fn on_control(&mut self, c: Control) -> Result<(), JournalError> {
        match c {
            Control::Reconfigure { terminals, timeouts } => {
                info!(terminals = terminals.len(), "settings applied");
                self.s.terminals = terminals;
                self.s.timeouts = timeouts;
            }
            Control::Pause(p) => {
                info!(paused = p, "taking new orders: {}", if p { "paused" } else { "resumed" });
                self.paused = p;
                self.notice(Notice::Paused(p));
            }
            Control::PosInfo { reply } => {
                if !self.pos_ready() {
                    let _ = reply.send(Err("POS not connected".into()));
                } else {
                    self.info_waiting.push(reply);
                }
            }
            Control::Order { key, action, reply } => {
                let span = info_span!("order", key = %key);
                let res = match self.journal.get_by_key(&key)? {
                    None => Err(format!("no order {key}")),
                    Some(row) => self.cashier_action(row, action).instrument(span).await?,
                };
                let _ = reply.send(res);
            }
            Control::PosTotals { date, reply } => {
                if !self.pos_ready() {
                    let _ = reply.send(Err("POS not connected".into()));
                } else {
                    self.totals_waiting.push((date, reply));
                }
            }
        }
        Ok(())
    }

    async fn cashier_action(
        &mut self,
        row: OrderRow,
        action: OrderAction,
    ) -> Result<Result<State, String>, JournalError> {
        info!(?action, state = row.state.as_str(), "cashier action");
        Ok(match action {
            OrderAction::Query => {
                if row.state.is_open() {
                    // The resolver queries it at its next turn.
                    self.last_query.remove(&row.id);
                }
                Ok(row.state)
            }
            OrderAction::Rewrite => {
                if self.journal.replies(row.id)?.is_empty() {
                    Err("this order came over the socket channel: it has no result file".to_string())
                } else {
                    self.deliver(&row);
                    Ok(row.state)
                }
            }
            OrderAction::Cancel => match row.state {
                State::Accepted => {
                    let row = self.journal.transition(
                        row.id,
                        State::Cancelled,
                        &Update {
                            error_code: Some(ErrorCode::Cancelled.as_str()),
                            detail: Some("cancelled by the cashier before sending"),
                            ..Default::default()
                        },
                    )?;
                    self.deliver(&row);
                    Ok(row.state)
                }
                State::Sent | State::Paying | State::Unknown if row.kind == Kind::Sale => {
                    let is_active = self.active.as_ref().is_some_and(|a| a.id == row.id && a.phase != Phase::Querying);
                    if is_active {
                        self.send_cancel(&row, false).await?;
                    } else {
                        let row = self.journal.transition(
                            row.id,
                            State::Cancelling,
                            &Update {
                                error_code: Some(ErrorCode::Cancelled.as_str()),
                                detail: Some("cancel requested by the cashier"),
                                ..Default::default()
                            },
                        )?;
                        self.last_query.remove(&row.id);
                        self.deliver(&row);
                    }
                    Ok(State::Cancelling)
                }
                State::Cancelling => Ok(State::Cancelling),
                s if row.kind == Kind::Refund && s.is_open() => {
                    Err("a refund under way cannot be cancelled; it is confirmed by query".to_string())
                }
                s => Err(format!("the order is already final ({}); nothing to cancel", s.as_str())),
            },
        })
    }

    /// Sends the first waiting TOTALS request; only called while no transaction is active.
    async fn send_totals(&mut self) {
        if self.totals_sent.is_some() || self.totals_waiting.is_empty() {
            return;
        }
        self.totals_waiting.retain(|(_, r)| !r.is_closed());
        let Some(date) = self.totals_waiting.first().map(|(d, _)| d.clone()) else {
            return;
        };
        match self.pos.request(Request::Totals { date: date.clone() }).await {
            Ok(()) => {
                info!(date, "asked the POS for its day totals");
                self.totals_sent = Some((date, Instant::now() + QUERY_TIMEOUT));
            }
            Err(e) => self.answer_totals(&date, Err(format!("POS not ready: {e}"))),
        }
    }

    async fn send_info(&mut self) {
        self.info_waiting.retain(|r| !r.is_closed());
        if self.info_sent.is_some() || self.info_waiting.is_empty() || self.totals_sent.is_some() {
            return;
        }
        match self.pos.request(Request::Info).await {
            Ok(()) => self.info_sent = Some(Instant::now() + QUERY_TIMEOUT),
            Err(e) => self.answer_info(Err(format!("POS not ready: {e}"))),
        }
    }

    fn answer_info(&mut self, res: Result<PosInfo, String>) {
        self.info_sent = None;
        for reply in self.info_waiting.drain(..) {
            let _ = reply.send(res.clone());
        }
    }

    fn answer_totals(&mut self, date: &str, res: Result<PosTotals, String>) {
        if self.totals_sent.as_ref().is_some_and(|(d, _)| d == date) {
            self.totals_sent = None;
        }
        let (now, later): (Vec<_>, Vec<_>) = self.totals_waiting.drain(..).partition(|(d, _)| d == date);
        self.totals_waiting = later;
        for (_, reply) in now {
            let _ = reply.send(res.clone());
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut d = self.next_housekeeping;
        if let Some((_, t)) = &self.totals_sent {
            d = d.min(*t);
        }
        if let Some(t) = self.info_sent {
            d = d.min(t);
        }
        if let Some(a) = &self.active {
            d = d.min(a.deadline);
            if let Some(p) = a.next_poll(self.s.timeouts.query_interval) {
                d = d.min(p);
            }
        }
        d
    }

    fn notice(&self, n: Notice) {
        let _ = self.notices.send(n);
    }

    /// Retries result files that could not be written (full disk, read-only folder).
    fn housekeeping(&mut self) {
        self.next_housekeeping = Instant::now() + self.s.timeouts.query_interval;
        let horizon = chrono::Local::now().timestamp() - 2 * self.s.replay_window.as_secs() as i64;
        if let Err(e) = self.journal.prune_messages(horizon) {
            error!(error = %e, "journal error");
        }
        match self.journal.unwritten_results() {
            Ok(rows) => {
                for row in rows {
                    self.deliver(&row);
                }
            }
            Err(e) => error!(error = %e, "journal error"),
        }
    }

    // ---- Intake -------------------------------------------------------------------------

    async fn on_submission(&mut self, s: Submission) -> Result<(), JournalError> {
        let to = s.origin;
        let span = info_span!("instruction", from = %to.source());
        let _g = span.enter();
        let opened = match s.body {
            Err(r) => {
                let (code, detail) = match r {
                    Refusal::Envelope(e) => (envelope_code(&e), e.to_string()),
                    Refusal::BadName(name) => (
                        ErrorCode::FileName,
                        format!("file name {name:?} is not allowed (use A-Z a-z 0-9 _ - @, at most 80 characters, no reserved names)"),
                    ),
                    Refusal::Unreadable(e) => (ErrorCode::Envelope, format!("file cannot be read: {e}")),
                };
                return self.reject(&to, None, None, code, &detail);
            }
            Ok(p) => p,
        };
        let plain = &opened.plain;
        let ins = match Instruction::parse(plain) {
            Ok(i) => i,
            Err(e) => {
                let no = salvage_order_no(plain);
                return self.reject(&to, no.as_deref(), None, e.code(), &e.to_string());
            }
        };
        // Replay defence: the message must be recent, and its id (the nonce) new.
        let now = chrono::Local::now();
        if let Some(sent) = ins.sent_at {
            let skew = (now.fixed_offset() - sent).num_seconds();
            if skew.unsigned_abs() > self.s.replay_window.as_secs() {
                let detail = format!(
                    "sent_at {} differs from the bridge's clock {} by {skew} s (window {} s): an old message, or a clock to set",
                    sent.to_rfc3339(),
                    now.to_rfc3339(),
                    self.s.replay_window.as_secs()
                );
                return self.reject(&to, Some(&ins.order_no), Some(&ins), ErrorCode::Stale, &detail);
            }
        }
        let fresh = self.journal.record_message(&hex::encode(opened.nonce), &to.source(), now.timestamp())?;
        if !fresh && !s.resubmitted {
            let detail =
                "this exact message was received before (a replay); send a new message to repeat an instruction";
            return self.reject(&to, Some(&ins.order_no), Some(&ins), ErrorCode::Replay, detail);
        }
        if !self.s.terminals.contains(&ins.terminal_id) {
            let detail =
                format!("terminal {:?} is not in the configured list of software terminal IDs", ins.terminal_id);
            return self.reject(&to, Some(&ins.order_no), Some(&ins), ErrorCode::Terminal, &detail);
        }
        match ins.kind {
            InstructionKind::Order => self.on_order(&ins, &to),
            InstructionKind::Query => self.on_query(&ins, &to),
            InstructionKind::Cancel => self.on_cancel(&ins, &to).await,
        }
    }

    fn on_order(&mut self, ins: &Instruction, to: &Origin) -> Result<(), JournalError> {
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
                return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::Conflict, &detail);
            }
            self.register(row.id, to)?;
            let row = if matches!(row.state, State::Failed | State::Cancelled) {
                info!(key, "instruction repeated after a definite failure: new attempt");
                self.journal.transition(
                    row.id,
                    State::Accepted,
                    &Update { detail: Some("repeated by HIS"), ..Default::default() },
                )?
            } else {
                info!(key, state = row.state.as_str(), "instruction repeated: stored result returned");
                row
            };
            self.deliver(&row);
            return Ok(());
        }
        if self.paused {
            let detail =
                "the cashier paused taking payments at this window; send the order again later or to another window";
            return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::Paused, detail);
        }
        let mut orig_pos_ref = None;
        if amount.is_refund() {
            let orig =
                self.journal.get_by_key(&ins.order_no)?.filter(|o| o.state == State::Success && o.kind == Kind::Sale);
            let Some(orig) = orig else {
                let detail = format!("no paid collection with order number {} to refund", ins.order_no);
                return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::RefundOriginal, &detail);
            };
            let committed = self.journal.refunds_committed(&ins.order_no, None)?;
            if committed + amount.fen().abs() > orig.amount_fen {
                let detail = format!(
                    "refund {} exceeds what is left: paid {}, already refunded or refunding {}",
                    amount,
                    fmt_amount(orig.amount_fen),
                    crate::amount::yuan(committed as u64)
                );
                return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::RefundExceeds, &detail);
            }
            orig_pos_ref = orig.pos_ref;
        }
        let row = self.journal.insert(&NewOrder {
            key: &key,
            order_no: &ins.order_no,
            refund_no: ins.refund_no.as_deref(),
            terminal_id: &ins.terminal_id,
            amount_fen: amount.fen(),
            description: ins.description.as_deref(),
            operator: ins.operator.as_deref(),
            orig_pos_ref: orig_pos_ref.as_deref(),
            source: &to.source(),
        })?;
        self.register(row.id, to)?;
        crate::failpoint::hit("accepted");
        info!(key, amount = %amount, "order accepted");
        self.notify_row(&row);
        Ok(())
    }

    fn on_query(&mut self, ins: &Instruction, to: &Origin) -> Result<(), JournalError> {
        let Some(row) = self.journal.get_by_key(&ins.key())? else {
            let detail = format!("no order {}", ins.key());
            return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::NotFound, &detail);
        };
        self.register(row.id, to)?;
        self.last_query.remove(&row.id);
        self.deliver(&row);
        Ok(())
    }

    async fn on_cancel(&mut self, ins: &Instruction, to: &Origin) -> Result<(), JournalError> {
        let Some(row) = self.journal.get_by_key(&ins.key())? else {
            let detail = format!("no order {}", ins.key());
            return self.reject(to, Some(&ins.order_no), Some(ins), ErrorCode::NotFound, &detail);
        };
        self.register(row.id, to)?;
        match row.state {
            State::Accepted => {
                // Never sent: cancelling needs no POS.
                let row = self.journal.transition(
                    row.id,
                    State::Cancelled,
                    &Update {
                        error_code: Some(ErrorCode::Cancelled.as_str()),
                        detail: Some("cancelled by HIS before sending"),
                        ..Default::default()
                    },
                )?;
                self.deliver(&row);
            }
            s if s.is_open() && row.kind == Kind::Sale => {
                let is_active = self.active.as_ref().is_some_and(|a| a.id == row.id && a.phase != Phase::Querying);
                if is_active {
                    self.send_cancel(&row, false).await?;
                } else {
                    // The resolver will find it open, query it and cancel it if still running.
                    let row = self.journal.transition(
                        row.id,
                        State::Cancelling,
                        &Update { detail: Some("cancel requested by HIS"), ..Default::default() },
                    )?;
                    self.last_query.remove(&row.id);
                    self.deliver(&row);
                }
            }
            _ => self.deliver(&row),
        }
        Ok(())
    }

    fn reject(
        &mut self,
        to: &Origin,
        order_no: Option<&str>,
        ins: Option<&Instruction>,
        code: ErrorCode,
        detail: &str,
    ) -> Result<(), JournalError> {
        warn!(code = code.as_str(), detail, "instruction refused");
        self.journal.record_reject(&to.source(), order_no, code.as_str(), detail)?;
        let msg = ResultMessage {
            v: 1,
            kind: "result".into(),
            device_id: self.s.device_id.clone(),
            terminal_id: ins.map(|i| i.terminal_id.clone()),
            order_no: order_no.map(str::to_string),
            refund_no: ins.and_then(|i| i.refund_no.clone()),
            pay_order_no: None,
            status: Status::Rejected,
            channel: None,
            amount: ins.and_then(|i| i.amount).map(|a| a.to_string()),
            finished_at: Some(crate::journal::now_str()),
            error_code: Some(code.as_str().into()),
            error_message: Some(code.zh().into()),
            error_message_en: Some(detail.to_string()),
        };
        match to {
            Origin::File { stem, work_path } => {
                if let Err(e) = self.write_result(stem, &msg) {
                    error!(error = %e, "cannot write the error result");
                }
                let reason = format!(
                    "HIS Bridge refused this file / HIS Bridge 拒收此文件\ntime: {}\nerror_code: {}\n原因: {}\nreason: {}\n",
                    crate::journal::now_str(),
                    code.as_str(),
                    code.zh(),
                    detail
                );
                if let Err(e) = folders::quarantine(work_path, &self.s.folders.error, &reason) {
                    error!(error = %e, "cannot move the refused file to the error folder");
                }
            }
            Origin::Socket { tx, .. } => {
                let _ = tx.send(self.key.seal(Direction::ToHis, msg.to_json().as_bytes()));
            }
        }
        self.notice(Notice::Rejected { source: to.source(), code, detail: detail.to_string() });
        Ok(())
    }

    // ---- The POS --------------------------------------------------------------------------

    fn pos_ready(&self) -> bool {
        self.pos.status().link == Link::Ready
    }

    async fn advance(&mut self) -> Result<(), JournalError> {
        if self.active.is_some() || !self.pos_ready() {
            return Ok(());
        }
        self.send_totals().await;
        self.send_info().await;
        if self.totals_sent.is_some() || self.info_sent.is_some() {
            // The POS answers TOTALS at once; an ERROR in between must not be taken for a sale's.
            return Ok(());
        }
        let open = self.journal.open_orders()?;
        if !open.is_empty() {
            let now = Instant::now();
            let due = open.into_iter().find(|r| {
                self.last_query.get(&r.id).is_none_or(|t| now.duration_since(*t) >= self.s.timeouts.query_interval)
            });
            if let Some(row) = due {
                let pos_ref = row.pos_ref.clone().unwrap_or_default();
                self.last_query.insert(row.id, now);
                info!(key = row.key, pos_ref, state = row.state.as_str(), "querying the POS for an open order");
                if self.pos.request(Request::Query { reference: pos_ref.clone() }).await.is_ok() {
                    self.active = Some(Active {
                        id: row.id,
                        pos_ref,
                        phase: Phase::Querying,
                        deadline: now + QUERY_TIMEOUT,
                        cancel_by_timeout: false,
                        polled_at: Instant::now(),
                    });
                }
            }
            // Nothing new starts while an outcome is open: the POS may still be working on it.
            return Ok(());
        }
        let Some(row) = self.journal.next_accepted()? else {
            return Ok(());
        };
        let device = self.pos.status().device_id.unwrap_or_default();
        // Invariant: the SENT row (with its POS reference) is durable before the first byte.
        let row = self.journal.start_attempt(row.id, &device)?;
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
        match self.pos.request(req).instrument(span.clone()).await {
            Ok(()) => {
                crate::failpoint::hit("requested");
                span.in_scope(|| info!(kind = ?row.kind, amount = %fmt_amount(row.amount_fen), "sent to POS"));
                self.active = Some(Active {
                    id: row.id,
                    pos_ref,
                    phase: Phase::Sent,
                    deadline: Instant::now() + self.s.timeouts.scan,
                    cancel_by_timeout: false,
                    polled_at: Instant::now(),
                });
                self.deliver(&row);
            }
            Err(e) => {
                // The session refused before writing a byte: safe to queue again.
                span.in_scope(|| warn!(error = %e, "POS not ready; order stays queued"));
                self.journal.requeue(row.id, &format!("not sent: {e}"))?;
            }
        }
        Ok(())
    }

    async fn send_cancel(&mut self, row: &OrderRow, by_timeout: bool) -> Result<(), JournalError> {
        let pos_ref = row.pos_ref.clone().unwrap_or_default();
        let detail = if by_timeout { "timeout: cancelling on POS" } else { "cancel requested by HIS" };
        // Why it is cancelled is journaled with the state, so it survives a lost link or a restart.
        let why = if by_timeout { ErrorCode::Timeout } else { ErrorCode::Cancelled };
        let row = self.journal.transition(
            row.id,
            State::Cancelling,
            &Update { detail: Some(detail), error_code: Some(why.as_str()), ..Default::default() },
        )?;
        match self.pos.request(Request::Cancel { reference: pos_ref.clone() }).await {
            Ok(()) => {
                info!(key = row.key, pos_ref, by_timeout, "CANCEL sent");
                self.active = Some(Active {
                    id: row.id,
                    pos_ref,
                    phase: Phase::Cancelling,
                    deadline: Instant::now() + self.s.timeouts.cancel,
                    cancel_by_timeout: by_timeout,
                    polled_at: Instant::now(),
                });
            }
            Err(e) => {
                warn!(key = row.key, error = %e, "CANCEL could not be sent; the resolver will retry");
                self.active = None;
            }
        }
        self.deliver(&row);
        Ok(())
    }

    async fn on_timeout(&mut self) -> Result<(), JournalError> {
        let now = Instant::now();
        if now >= self.next_housekeeping {
            self.housekeeping();
        }
        if self.info_sent.is_some_and(|t| now >= t) {
            self.answer_info(Err("the POS did not answer INFO".into()));
        }
        if let Some((date, t)) = self.totals_sent.clone() {
            if now >= t {
                warn!(date, "the POS did not answer TOTALS");
                self.answer_totals(&date, Err("the POS did not answer the TOTALS request".into()));
            }
        }
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if now < a.deadline {
            if a.next_poll(self.s.timeouts.query_interval).is_some_and(|p| now >= p) {
                a.polled_at = now;
                let reference = a.pos_ref.clone();
                // The answer arrives as a RESULT; a lost QUERY is simply asked again.
                let _ = self.pos.request(Request::Query { reference }).await;
            }
            return Ok(());
        }
        let (id, phase) = (a.id, a.phase);
        let Some(row) = self.journal.get(id)? else {
            self.active = None;
            return Ok(());
        };
        match (phase, row.kind) {
            (Phase::Sent | Phase::Paying, Kind::Sale) => {
                warn!(key = row.key, "patient did not finish in time");
                self.send_cancel(&row, true).await?;
            }
            (Phase::Sent | Phase::Paying, Kind::Refund) | (Phase::Cancelling, _) => {
                warn!(key = row.key, "no answer from POS in time: outcome unknown, will query");
                self.set_unknown(&row, "no answer in time")?;
            }
            (Phase::Querying, _) => {
                warn!(key = row.key, "query unanswered; will ask again");
                self.active = None;
            }
        }
        Ok(())
    }

    fn set_unknown(&mut self, row: &OrderRow, why: &str) -> Result<(), JournalError> {
        self.active = None;
        if row.state.is_final() || row.state == State::Accepted {
            return Ok(());
        }
        // A cancel in flight stays CANCELLING so the resolver finishes it.
        let state = if row.state == State::Cancelling { State::Cancelling } else { State::Unknown };
        let row = self.journal.transition(row.id, state, &Update { detail: Some(why), ..Default::default() })?;
        self.last_query.insert(row.id, Instant::now());
        self.deliver(&row);
        Ok(())
    }

    async fn on_pos(&mut self, ev: PosEvent) -> Result<(), JournalError> {
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
                let Some(a) = self.active.as_mut().filter(|a| a.pos_ref == reference) else {
                    return Ok(());
                };
                if stage == Stage::UserPaying && a.phase == Phase::Sent {
                    a.phase = Phase::Paying;
                    a.deadline = Instant::now() + self.s.timeouts.password;
                    let id = a.id;
                    let row = self.journal.transition(
                        id,
                        State::Paying,
                        &Update { detail: Some("patient confirming payment"), ..Default::default() },
                    )?;
                    crate::failpoint::hit("paying");
                    self.notify_row(&row);
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::Result(r)) => self.on_result(r).await,
            PosEvent::Session(SessionEvent::Busy { reference, current }) => {
                let Some(a) = self.active.as_ref().filter(|a| a.pos_ref == reference && a.phase == Phase::Sent) else {
                    return Ok(());
                };
                let id = a.id;
                self.active = None;
                let msg = format!("POS busy with {current}");
                let row = self.journal.transition(
                    id,
                    State::Failed,
                    &Update {
                        error_code: Some(ErrorCode::PosBusy.as_str()),
                        pos_message: Some(&msg),
                        detail: Some(&msg),
                        ..Default::default()
                    },
                )?;
                self.deliver(&row);
                Ok(())
            }
            PosEvent::Session(SessionEvent::Totals(t)) => {
                self.journal.save_pos_totals(&t)?;
                info!(date = t.date, "POS day totals received");
                let date = t.date.clone();
                self.answer_totals(&date, Ok(t));
                Ok(())
            }
            PosEvent::Session(SessionEvent::Info { device_id, version, model, time }) => {
                if self.info_sent.is_some() {
                    self.answer_info(Ok(PosInfo { device_id, version, model, time }));
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::PosError { code, message }) if self.active.is_none() => {
                if self.info_sent.is_some() {
                    self.answer_info(Err(format!("the POS refused INFO: {code} {message}")));
                } else if let Some((date, _)) = self.totals_sent.clone() {
                    warn!(code, message, "POS refused TOTALS");
                    self.answer_totals(&date, Err(format!("the POS refused TOTALS: {code} {message}")));
                } else {
                    warn!(code, message, "POS reported an error");
                }
                Ok(())
            }
            PosEvent::Session(SessionEvent::PosError { code, message }) => {
                warn!(code, message, "POS reported an error");
                if let Some(a) = self.active.as_ref().filter(|a| a.phase == Phase::Sent) {
                    let id = a.id;
                    self.active = None;
                    let row = self.journal.transition(
                        id,
                        State::Failed,
                        &Update {
                            error_code: Some(ErrorCode::Declined.as_str()),
                            pos_code: Some(&code),
                            pos_message: Some(&message),
                            detail: Some(&message),
                            ..Default::default()
                        },
                    )?;
                    self.deliver(&row);
                }
                Ok(())
            }
            PosEvent::Session(_) => Ok(()),
        }
    }

    fn link_gone(&mut self, why: &str) -> Result<(), JournalError> {
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        if a.phase == Phase::Querying {
            return Ok(());
        }
        if let Some(row) = self.journal.get(a.id)? {
            warn!(key = row.key, why, "link lost during a transaction: outcome unknown until queried");
            self.set_unknown(&row, why)?;
        }
        Ok(())
    }

    async fn on_result(&mut self, r: TxnResult) -> Result<(), JournalError> {
        let Some(row) = self.journal.by_pos_ref(&r.reference)? else {
            warn!(reference = r.reference, "POS result for an unknown reference");
            return Ok(());
        };
        let span = info_span!("order", key = %row.key, pos_ref = %r.reference);
        let _g = span.enter();
        let is_active = self.active.as_ref().is_some_and(|a| a.pos_ref == r.reference);
        let cancel_by_timeout = self.active.as_ref().filter(|_| is_active).is_some_and(|a| a.cancel_by_timeout);
        if row.state.is_final() {
            if is_active {
                self.active = None;
            }
            return Ok(());
        }
        let answers_query =
            self.active.as_ref().is_some_and(|a| a.pos_ref == r.reference && a.phase == Phase::Querying);
        if row.kind == Kind::Refund && r.status == TxnStatus::Refunded && !answers_query {
            // A refund being accepted is not the refund being done: confirm it by a query.
            info!("POS reports the refund done; confirming by query");
            if self.pos.request(Request::Query { reference: r.reference.clone() }).await.is_ok() {
                self.active = Some(Active {
                    id: row.id,
                    pos_ref: r.reference.clone(),
                    phase: Phase::Querying,
                    deadline: Instant::now() + QUERY_TIMEOUT,
                    cancel_by_timeout: false,
                    polled_at: Instant::now(),
                });
                return Ok(());
            }
            return self.set_unknown(&row, "refund result awaiting confirmation");
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
            TxnStatus::Failed => (State::Failed, Some(ErrorCode::Declined)),
            TxnStatus::Cancelled => {
                let journaled = row.error_code.as_deref().and_then(ErrorCode::parse);
                let why = match journaled {
                    Some(c @ (ErrorCode::Timeout | ErrorCode::Cancelled)) => c,
                    _ if cancel_by_timeout => ErrorCode::Timeout,
                    _ => ErrorCode::Cancelled,
                };
                (State::Cancelled, Some(why))
            }
            TxnStatus::Reversed => (State::Reversed, None),
            TxnStatus::NotFound => (State::Failed, Some(ErrorCode::PosNotReceived)),
            TxnStatus::InProgress if is_active && !answers_query => {
                // The answer to a poll while waiting: still running, nothing changes.
                return Ok(());
            }
            TxnStatus::InProgress => {
                // A query found it still running: follow it as the active transaction.
                let phase = if row.state == State::Cancelling { Phase::Cancelling } else { Phase::Paying };
                info!(state = row.state.as_str(), "POS reports the transaction still running");
                self.active = Some(Active {
                    id: row.id,
                    pos_ref: r.reference.clone(),
                    phase,
                    deadline: Instant::now()
                        + if phase == Phase::Cancelling { self.s.timeouts.cancel } else { self.s.timeouts.password },
                    cancel_by_timeout: false,
                    polled_at: Instant::now(),
                });
                if row.state != State::Paying && phase == Phase::Paying {
                    let row = self.journal.transition(
                        row.id,
                        State::Paying,
                        &Update { detail: Some("query: still in progress"), ..Default::default() },
                    )?;
                    self.deliver(&row);
                }
                return Ok(());
            }
        };
        if is_active || self.active.as_ref().is_some_and(|a| a.id == row.id) {
            self.active = None;
        }
        self.last_query.remove(&row.id);
        let detail = format!("POS result {}", r.status.as_str());
        let row = self.journal.transition(
            row.id,
            state,
            &Update {
                pay_order_no: r.pay_order_no.as_deref(),
                channel,
                pos_code: r.code.as_deref(),
                pos_message: r.message.as_deref(),
                error_code: code.map(ErrorCode::as_str),
                detail: Some(&detail),
            },
        )?;
        crate::failpoint::hit("finished");
        info!(state = state.as_str(), channel, "order finished");
        self.deliver(&row);
        Ok(())
    }

    // ---- Results --------------------------------------------------------------------------

    fn result_message(&self, row: &OrderRow) -> ResultMessage {
        let status = row.state.his_status();
        // Error fields belong to final results (and UNKNOWN); a cancel in progress is PROCESSING.
        let code = row
            .error_code
            .as_deref()
            .and_then(ErrorCode::parse)
            .filter(|_| status.is_final() && !matches!(status, Status::Success | Status::Refunded));
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
                Some(match &row.pos_message {
                    Some(m) => format!("{}: {m}", en_text(c)),
                    None => en_text(c).to_string(),
                }),
            ),
            _ => (None, None),
        };
        ResultMessage {
            v: 1,
            kind: "result".into(),
            device_id: row.device_id.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| self.s.device_id.clone()),
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
        }
    }

    fn write_result(&self, stem: &str, msg: &ResultMessage) -> std::io::Result<PathBuf> {
        let text = self.key.seal(Direction::ToHis, msg.to_json().as_bytes());
        folders::write_atomic(&self.s.folders.outbox, &result_name(stem), text.as_bytes())
    }

    /// Remembers where the order's results go: a result file (journaled, survives a restart) or
    /// an open connection (in memory; after a restart the client asks again).
    fn register(&mut self, id: i64, to: &Origin) -> Result<(), JournalError> {
        match to {
            Origin::File { stem, work_path } => self.journal.add_reply(id, stem, Some(&work_path.to_string_lossy())),
            Origin::Socket { conn, tx } => {
                let subs = self.subscribers.entry(id).or_default();
                if !subs.iter().any(|(c, _)| c == conn) {
                    subs.push((*conn, tx.clone()));
                }
                Ok(())
            }
        }
    }

    /// Writes the order's current result to every answer it owes; once final, archives the
    /// claimed instruction files and records that the result is out.
    fn deliver(&mut self, row: &OrderRow) {
        self.notify_row(row);
        let msg = self.result_message(row);
        if let Some(subs) = self.subscribers.get_mut(&row.id) {
            let line = self.key.seal(Direction::ToHis, msg.to_json().as_bytes());
            subs.retain(|(_, tx)| tx.send(line.clone()).is_ok());
            if row.state.is_final() || subs.is_empty() {
                self.subscribers.remove(&row.id);
            }
        }
        let replies = match self.journal.replies(row.id) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "journal error");
                return;
            }
        };
        let mut all_written = true;
        for (stem, work) in &replies {
            if let Err(e) = self.write_result(stem, &msg) {
                error!(key = row.key, file = %result_name(stem), error = %e, "cannot write result file; will retry");
                all_written = false;
                continue;
            }
            if row.state.is_final() {
                crate::failpoint::hit("written");
                if let Some(w) = work {
                    let p = PathBuf::from(w);
                    if p.exists() {
                        if let Err(e) = folders::move_into(&p, &folders::archive_dir(&self.s.folders.archive)) {
                            error!(error = %e, "cannot archive instruction file");
                            continue;
                        }
                    }
                    let _ = self.journal.clear_work_file(row.id, stem);
                }
            }
        }
        if row.state.is_final() && all_written {
            if let Err(e) = self.journal.mark_result_written(row.id) {
                error!(error = %e, "journal error");
            }
        }
    }

    fn notify_row(&self, row: &OrderRow) {
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
        ErrorCode::PosNotReceived => {
            "the POS never received the transaction; nothing was charged; you may send it again"
        }
        ErrorCode::PosBusy => "the POS is busy with another transaction",
        ErrorCode::Timeout => "the patient did not pay in time; the transaction was cancelled",
        ErrorCode::Cancelled => "cancelled",
        ErrorCode::NotCancellable => "the order is finished and cannot be cancelled",
        ErrorCode::Stale => "message too old, or the HIS and bridge clocks differ",
        ErrorCode::Replay => "message received before (replay)",
        ErrorCode::Paused => "the cashier paused taking payments at this window; send it again later or elsewhere",
    }
}
