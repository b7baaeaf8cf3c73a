//! POS simulator: the POS side of the HIS Bridge protocol (docs/pos-protocol.md), simulating
//! WeChat Pay / Alipay micropay outcomes and keeping a ledger of what was really charged.
//! Documented for HIS and POS vendors in docs/pos-simulator.md.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hisbridge_protocol::link::{Link, LinkConfig, LinkEvent};
use hisbridge_protocol::{Channel, ChannelTotals, PosTotals, Reply, Request, Stage, TxnKind, TxnResult, TxnStatus};
use serde::Serialize;

/// What the simulated patient and wallet do with one SALE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Scanned and paid at once.
    Paid(Channel),
    /// Scanned; the patient confirms or enters a password; then paid.
    PayingThenPaid(Channel),
    /// The wallet refuses the code.
    Declined,
    /// Not enough balance.
    InsufficientFunds,
    /// The patient never shows a code: waits until CANCEL.
    NoScan,
    /// The patient starts paying and never finishes: waits until CANCEL.
    PayingForever,
    /// The wallet takes the money but the POS never sends RESULT (only QUERY tells).
    Silent,
}

impl Outcome {
    /// The amount rules (docs/pos-simulator.md): the last two digits of the amount in fen.
    pub fn for_amount(fen: u64) -> Self {
        match fen % 100 {
            91 => Outcome::Declined,
            92 => Outcome::InsufficientFunds,
            93 => Outcome::PayingThenPaid(Channel::Wechat),
            94 => Outcome::NoScan,
            95 => Outcome::Silent,
            96 => Outcome::PayingForever,
            97 => Outcome::PayingThenPaid(Channel::Alipay),
            50..=89 => Outcome::Paid(Channel::Alipay),
            _ => Outcome::Paid(Channel::Wechat),
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "paid-wechat" => Outcome::Paid(Channel::Wechat),
            "paid-alipay" => Outcome::Paid(Channel::Alipay),
            "paying-wechat" => Outcome::PayingThenPaid(Channel::Wechat),
            "paying-alipay" => Outcome::PayingThenPaid(Channel::Alipay),
            "declined" => Outcome::Declined,
            "insufficient" => Outcome::InsufficientFunds,
            "no-scan" => Outcome::NoScan,
            "paying-forever" => Outcome::PayingForever,
            "silent" => Outcome::Silent,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub device_id: String,
    pub version: String,
    pub model: String,
    /// From SALE to the code being scanned.
    pub scan_delay: Duration,
    /// From USER_PAYING to the wallet's answer.
    pub paying_delay: Duration,
    /// Outcomes for the next SALEs, in order; the amount rules apply when it runs out.
    pub script: VecDeque<Outcome>,
    /// Where to keep the ledger as JSON (optional).
    pub ledger_file: Option<PathBuf>,
    /// Deliberate breaches of the protocol (a broken POS, for tests and `hisbridge pos-check`).
    pub lies: Lies,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            device_id: "POS-0001".into(),
            version: "1.0.0".into(),
            model: "HISBRIDGE-SIM".into(),
            scan_delay: Duration::from_millis(150),
            paying_delay: Duration::from_millis(600),
            script: VecDeque::new(),
            ledger_file: None,
            lies: Lies::default(),
        }
    }
}

/// One transaction as the wallet knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub reference: String,
    pub kind: &'static str,
    pub amount_fen: u64,
    pub status: &'static str,
    pub channel: Option<&'static str>,
    pub pay_order_no: Option<String>,
    pub original: Option<String>,
    pub time: String,
    /// Why a FAILED transaction failed: the wallet's code and message.
    pub failure: Option<(&'static str, &'static str)>,
}

/// The wallet's book: what was really charged and refunded.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Ledger {
    pub entries: BTreeMap<String, LedgerEntry>,
    counter: u64,
}

impl Ledger {
    /// References whose money is with the merchant now (PAID, not reversed).
    pub fn charged(&self) -> Vec<&LedgerEntry> {
        self.entries.values().filter(|e| e.kind == "SALE" && e.status == "PAID").collect()
    }
    pub fn refunds(&self) -> Vec<&LedgerEntry> {
        self.entries.values().filter(|e| e.kind == "REFUND" && e.status == "REFUNDED").collect()
    }
    pub fn get(&self, reference: &str) -> Option<&LedgerEntry> {
        self.entries.get(reference)
    }
    /// The day's totals by channel as the POS reports them to TOTALS (docs/pos-protocol.md §4.6):
    /// collections that stand and refunds done, by the POS clock's day (`YYYYMMDD`).
    pub fn totals(&self, date: &str) -> PosTotals {
        let mut lines: Vec<ChannelTotals> = Vec::new();
        for e in self.entries.values().filter(|e| e.time.starts_with(date)) {
            let Some(channel) = e.channel.and_then(Channel::parse) else { continue };
            let i = match lines.iter().position(|l| l.channel == channel) {
                Some(i) => i,
                None => {
                    lines.push(ChannelTotals { channel, sales: 0, sales_fen: 0, refunds: 0, refunds_fen: 0 });
                    lines.len() - 1
                }
            };
            let l = &mut lines[i];
            match (e.kind, e.status) {
                ("SALE", "PAID") => {
                    l.sales += 1;
                    l.sales_fen += e.amount_fen;
                }
                ("REFUND", "REFUNDED") => {
                    l.refunds += 1;
                    l.refunds_fen += e.amount_fen;
                }
                _ => {}
            }
        }
        lines.sort_by_key(|l| l.channel.as_str());
        PosTotals { date: date.to_string(), lines }
    }

    /// The POS's settlement export (docs/pos-protocol.md §8): one CSV line per transaction of
    /// the day, as the POS vendor's back office exports it.
    pub fn settlement_csv(&self, date: &str) -> String {
        let mut out = String::from("time,reference,op,status,channel,pay_no,original,amount_fen\n");
        for e in self.entries.values().filter(|e| e.time.starts_with(date) && e.status != "IN_PROGRESS") {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                e.time,
                e.reference,
                e.kind,
                e.status,
                e.channel.unwrap_or(""),
                e.pay_order_no.as_deref().unwrap_or(""),
                e.original.as_deref().unwrap_or(""),
                e.amount_fen
            ));
        }
        out
    }

    /// All SALE entries for one HIS order key (`key.1`, `key.2`, ...).
    pub fn sales_for(&self, key: &str) -> Vec<&LedgerEntry> {
        self.entries
            .values()
            .filter(|e| e.kind == "SALE" && e.reference.rsplit_once('.').is_some_and(|(k, _)| k == key))
            .collect()
    }
}

fn status_str(s: TxnStatus) -> &'static str {
    s.as_str()
}

#[derive(Debug)]
struct Pending {
    reference: String,
    outcome: Outcome,
    /// When the next step happens; None waits for CANCEL.
    next_at: Option<Instant>,
    scanned: bool,
}

/// Timing points the simulator records for the latency benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A SALE frame was complete on the POS side.
    SaleReceived,
    /// A final RESULT was handed to the line.
    ResultSent,
    /// A QUERY arrived.
    QueryReceived,
}

pub type Trace = Arc<Mutex<Vec<(String, Mark, Instant)>>>;

/// Ways a POS misbehaves in its answers (not on the line): set by the deterministic
/// simulation, each counter consumed one message at a time. The ledger stays the truth.
#[derive(Debug, Default, Clone)]
pub struct Lies {
    /// QUERY does not see a transaction until this long after the POS received it (a lookup
    /// that lags behind): it answers NOT_FOUND meanwhile.
    pub query_lag: Duration,
    /// Report the next N final RESULTs of a SALE or REFUND with the amount off by one fen.
    pub wrong_amounts: u32,
    /// Leave `pay_no` and `channel` out of the next N final RESULTs.
    pub missing_fields: u32,
    /// Never send the next N final RESULTs (only a QUERY tells).
    pub swallowed_results: u32,
}

fn take_lie(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

/// The POS state machine, sans-IO apart from the clock passed in.
pub struct Pos {
    trace: Trace,
    cfg: SimConfig,
    link: Link,
    ledger: Arc<Mutex<Ledger>>,
    current: Option<Pending>,
    /// Replies to send once the link is free, and refunds finishing later.
    delayed: Vec<(Instant, Reply)>,
    /// The wall clock for ledger times and payment numbers (None: the system's).
    wall: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub lies: Lies,
    /// When each transaction arrived (in memory: a reboot forgets, and lags no more).
    arrived: BTreeMap<String, Instant>,
}

impl Pos {
    pub fn new(cfg: SimConfig, ledger: Arc<Mutex<Ledger>>) -> Self {
        let first = (rand::random::<u16>() % 9999) + 1;
        Self::with_seq(cfg, ledger, first)
    }

    /// A POS whose link starts at sequence number `first_seq` (deterministic runs).
    pub fn with_seq(cfg: SimConfig, ledger: Arc<Mutex<Ledger>>, first_seq: u16) -> Self {
        let lies = cfg.lies.clone();
        Self {
            trace: Trace::default(),
            cfg,
            link: Link::new(LinkConfig::default(), first_seq),
            ledger,
            current: None,
            delayed: Vec::new(),
            wall: None,
            lies,
            arrived: BTreeMap::new(),
        }
    }

    /// Sets the wall clock (deterministic runs); the system clock is used otherwise.
    pub fn set_wall(&mut self, t: chrono::DateTime<chrono::FixedOffset>) {
        self.wall = Some(t);
    }

    fn wall(&self) -> chrono::DateTime<chrono::FixedOffset> {
        self.wall.unwrap_or_else(|| chrono::Local::now().fixed_offset())
    }

    /// The same POS after a reboot: fresh link state, nothing in memory, the ledger kept.
    pub fn restarted(self) -> Self {
        let first = (rand::random::<u16>() % 9999) + 1;
        self.rebooted(first, false)
    }

    /// A reboot with a given first sequence number. With `forget_running`, the transaction
    /// that was running is lost from the ledger as well (a POS app that kept it in memory only:
    /// nothing was charged, and the POS answers NOT_FOUND for it from now on).
    pub fn rebooted(self, first_seq: u16, forget_running: bool) -> Self {
        if forget_running {
            let mut l = self.ledger.lock().expect("ledger");
            l.entries.retain(|_, e| e.status != "IN_PROGRESS");
        }
        let mut p = Pos::with_seq(self.cfg, self.ledger, first_seq);
        p.trace = self.trace;
        p.wall = self.wall;
        p
    }

    /// Whether a transaction is running (waiting for the scan or the password).
    pub fn is_running(&self) -> bool {
        self.current.is_some()
    }

    pub fn trace(&self) -> Trace {
        self.trace.clone()
    }

    fn mark(&self, reference: &str, m: Mark, now: Instant) {
        self.trace.lock().expect("trace").push((reference.to_string(), m, now));
    }

    fn reply(&mut self, r: Reply, now: Instant) {
        self.reply_as(r, now, false);
    }

    /// Sends a reply; `to_query` marks the answer to a QUERY (lags apply there, not elsewhere).
    fn reply_as(&mut self, mut r: Reply, now: Instant, to_query: bool) {
        if let Reply::Result(res) = &mut r {
            let money = matches!(res.status, TxnStatus::Paid | TxnStatus::Refunded);
            let young = self
                .arrived
                .get(&res.reference)
                .is_some_and(|t| now.saturating_duration_since(*t) < self.lies.query_lag);
            if to_query && res.status != TxnStatus::NotFound && young {
                *res = match not_found(&res.reference) {
                    Reply::Result(nf) => nf,
                    _ => unreachable!(),
                };
            } else if !to_query && money {
                if take_lie(&mut self.lies.swallowed_results) {
                    return;
                }
                if take_lie(&mut self.lies.wrong_amounts) {
                    res.amount_fen = res.amount_fen.map(|a| a + 1);
                }
                if take_lie(&mut self.lies.missing_fields) {
                    res.pay_order_no = None;
                    res.channel = None;
                }
            }
            if res.status.is_final() {
                self.mark(&res.reference, Mark::ResultSent, Instant::now());
            }
        }
        self.link.send(r.encode().as_bytes(), now);
    }

    fn result_of(&self, e: &LedgerEntry) -> Reply {
        Reply::Result(TxnResult {
            reference: e.reference.clone(),
            kind: Some(if e.kind == "REFUND" { TxnKind::Refund } else { TxnKind::Sale }),
            status: TxnStatus::parse(e.status).unwrap_or(TxnStatus::Failed),
            channel: e.channel.and_then(Channel::parse),
            pay_order_no: e.pay_order_no.clone(),
            amount_fen: Some(e.amount_fen),
            time: Some(e.time.clone()),
            code: e.failure.map(|f| f.0.to_string()),
            message: e.failure.map(|f| f.1.to_string()),
        })
    }

    fn set_status(&mut self, reference: &str, status: TxnStatus, channel: Option<Channel>) -> Option<LedgerEntry> {
        let mut l = self.ledger.lock().expect("ledger");
        l.counter += 1;
        let n = l.counter;
        let e = l.entries.get_mut(reference)?;
        e.status = status_str(status);
        e.time = self.wall().format("%Y%m%d%H%M%S").to_string();
        if let Some(c) = channel {
            e.channel = Some(c.as_str());
            if status == TxnStatus::Paid {
                e.pay_order_no = Some(match c {
                    Channel::Alipay => {
                        format!("{}2200{:010}", self.wall().format("%Y%m%d"), n)
                    }
                    _ => format!("4200{}{:016}", self.wall().format("%Y%m%d"), n),
                });
            }
        }
        let out = e.clone();
        drop(l);
        self.save();
        Some(out)
    }

    fn save(&self) {
        if let Some(path) = &self.cfg.ledger_file {
            let l = self.ledger.lock().expect("ledger");
            let text = serde_json::to_string_pretty(&*l).unwrap_or_default();
            drop(l);
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        }
    }

    fn on_request(&mut self, req: Request, now: Instant) {
        match req {
            Request::Hello { .. } => {
                let r = Reply::Hello {
                    device_id: self.cfg.device_id.clone(),
                    version: self.cfg.version.clone(),
                    model: self.cfg.model.clone(),
                };
                self.reply(r, now);
            }
            Request::Ping => self.reply(Reply::Pong, now),
            Request::Info => {
                let r = Reply::Info {
                    device_id: self.cfg.device_id.clone(),
                    version: self.cfg.version.clone(),
                    model: self.cfg.model.clone(),
                    time: self.wall().format("%Y%m%d%H%M%S").to_string(),
                };
                self.reply(r, now);
            }
            Request::Sale { reference, amount_fen, .. } => {
                self.mark(&reference, Mark::SaleReceived, now);
                self.arrived.entry(reference.clone()).or_insert(now);
                let existing = self.ledger.lock().expect("ledger").get(&reference).cloned();
                if let Some(e) = existing {
                    // The same reference again: never a second charge; report what happened.
                    if e.status != "IN_PROGRESS" {
                        let r = self.result_of(&e);
                        self.reply(r, now);
                    }
                    return;
                }
                if let Some(cur) = &self.current {
                    let r = Reply::Busy { reference, current: cur.reference.clone() };
                    self.reply(r, now);
                    return;
                }
                let outcome = self.cfg.script.pop_front().unwrap_or_else(|| Outcome::for_amount(amount_fen));
                self.ledger.lock().expect("ledger").entries.insert(
                    reference.clone(),
                    LedgerEntry {
                        reference: reference.clone(),
                        kind: "SALE",
                        amount_fen,
                        status: "IN_PROGRESS",
                        channel: None,
                        pay_order_no: None,
                        original: None,
                        time: self.wall().format("%Y%m%d%H%M%S").to_string(),
                        failure: None,
                    },
                );
                self.save();
                self.reply(Reply::Event { reference: reference.clone(), stage: Stage::WaitScan }, now);
                let next_at = (outcome != Outcome::NoScan).then(|| now + self.cfg.scan_delay);
                self.current = Some(Pending { reference, outcome, next_at, scanned: false });
            }
            Request::Refund { reference, original, amount_fen } => {
                self.arrived.entry(reference.clone()).or_insert(now);
                let l = self.ledger.lock().expect("ledger");
                if let Some(e) = l.get(&reference).cloned() {
                    drop(l);
                    let r = self.result_of(&e);
                    self.reply(r, now);
                    return;
                }
                if let Some(cur) = &self.current {
                    // One money transaction at a time: a refund waits as a second sale does.
                    drop(l);
                    let r = Reply::Busy { reference, current: cur.reference.clone() };
                    self.reply(r, now);
                    return;
                }
                let paid = l.get(&original).filter(|o| o.status == "PAID").map(|o| (o.amount_fen, o.channel));
                let refunded: u64 =
                    l.refunds().iter().filter(|r| r.original.as_deref() == Some(&original)).map(|r| r.amount_fen).sum();
                drop(l);
                const EXCEEDS: (&str, &str) = ("REFUND_EXCEEDS", "退款金额超过可退金额");
                let (status, channel, failure) = match paid {
                    Some((amt, ch)) if refunded + amount_fen <= amt => (TxnStatus::Refunded, ch, None),
                    Some((_, ch)) => (TxnStatus::Failed, ch, Some(EXCEEDS)),
                    None => (TxnStatus::Failed, None, Some(EXCEEDS)),
                };
                let n = {
                    let mut l = self.ledger.lock().expect("ledger");
                    l.counter += 1;
                    l.counter
                };
                let entry = LedgerEntry {
                    reference: reference.clone(),
                    kind: "REFUND",
                    amount_fen,
                    status: status_str(status),
                    channel,
                    pay_order_no: failure.is_none().then(|| format!("5030{}{:012}", self.wall().format("%Y%m%d"), n)),
                    original: Some(original),
                    time: self.wall().format("%Y%m%d%H%M%S").to_string(),
                    failure,
                };
                self.ledger.lock().expect("ledger").entries.insert(reference, entry.clone());
                self.save();
                let r = self.result_of(&entry);
                self.delayed.push((now + self.cfg.scan_delay, r));
            }
            Request::Cancel { reference } => {
                let e = self.ledger.lock().expect("ledger").get(&reference).cloned();
                let r = match e {
                    None => not_found(&reference),
                    Some(e) if e.status == "IN_PROGRESS" => {
                        let e = self.set_status(&reference, TxnStatus::Cancelled, None).expect("exists");
                        self.result_of(&e)
                    }
                    Some(e) if e.status == "PAID" && e.kind == "SALE" => {
                        let e = self.set_status(&reference, TxnStatus::Reversed, None).expect("exists");
                        self.result_of(&e)
                    }
                    Some(e) => self.result_of(&e),
                };
                if self.current.as_ref().is_some_and(|c| c.reference == reference) {
                    self.current = None;
                }
                self.reply(r, now);
            }
            Request::Totals { date } => {
                let t = self.ledger.lock().expect("ledger").totals(&date);
                self.reply(Reply::Totals(t), now);
            }
            Request::Query { reference } => {
                self.mark(&reference, Mark::QueryReceived, now);
                let e = self.ledger.lock().expect("ledger").get(&reference).cloned();
                let r = match e {
                    Some(e) => self.result_of(&e),
                    None => not_found(&reference),
                };
                self.reply_as(r, now, true);
            }
        }
    }

    fn step(&mut self, now: Instant) {
        let due: Vec<Reply> = {
            let (d, keep): (Vec<_>, Vec<_>) = self.delayed.drain(..).partition(|(t, _)| *t <= now);
            self.delayed = keep;
            d.into_iter().map(|(_, r)| r).collect()
        };
        for r in due {
            self.reply(r, now);
        }
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        if cur.next_at.is_none_or(|t| t > now) {
            return;
        }
        let reference = cur.reference.clone();
        let first_step = !cur.scanned;
        cur.scanned = true;
        let outcome = cur.outcome;
        match (outcome, first_step) {
            (Outcome::PayingThenPaid(_) | Outcome::PayingForever, true) => {
                cur.next_at = (outcome != Outcome::PayingForever).then(|| now + self.cfg.paying_delay);
                self.reply(Reply::Event { reference, stage: Stage::UserPaying }, now);
            }
            (Outcome::Paid(c) | Outcome::PayingThenPaid(c), _) => {
                self.current = None;
                let e = self.set_status(&reference, TxnStatus::Paid, Some(c)).expect("exists");
                let r = self.result_of(&e);
                self.reply(r, now);
            }
            (Outcome::Silent, _) => {
                self.current = None;
                self.set_status(&reference, TxnStatus::Paid, Some(Channel::Wechat));
            }
            (Outcome::Declined | Outcome::InsufficientFunds, _) => {
                self.current = None;
                let failure = if outcome == Outcome::InsufficientFunds {
                    ("NOTENOUGH", "余额不足")
                } else {
                    ("AUTH_CODE_INVALID", "付款码无效，请患者刷新付款码")
                };
                if let Some(e) = self.ledger.lock().expect("ledger").entries.get_mut(&reference) {
                    e.failure = Some(failure);
                }
                let e = self.set_status(&reference, TxnStatus::Failed, None).expect("exists");
                let r = self.result_of(&e);
                self.reply(r, now);
            }
            (Outcome::NoScan, _) | (Outcome::PayingForever, false) => {}
        }
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.link.handle_input(bytes, now);
        while let Some(ev) = self.link.poll_event() {
            if let LinkEvent::Received(p) = ev {
                match Request::decode(&p) {
                    Ok(req) => self.on_request(req, now),
                    Err(e) => self.reply(Reply::Error { code: "BAD_REQUEST".into(), message: e.to_string() }, now),
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
        while self.link.poll_event().is_some() {}
        self.step(now);
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    /// When [`Pos::handle_timeout`] has something to do next (a re-send, the scan, the wallet's
    /// answer, a delayed reply); None while it only waits for input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let step = self.current.as_ref().and_then(|c| c.next_at);
        let delayed = self.delayed.iter().map(|(t, _)| *t).min();
        [self.link.poll_timeout(), step, delayed].into_iter().flatten().min()
    }
}

/// Faults the simulator injects on the line, set from a test while it runs
/// (docs/pos-simulator.md, "Faults"). Counters are consumed one frame at a time.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Stop answering entirely: input ignored, nothing sent (the cable pulled on the POS side).
    pub mute: Arc<AtomicBool>,
    /// Swallow the next N ACK bytes the POS sends (the bridge re-sends; the POS sees duplicates).
    pub drop_acks: Arc<AtomicU32>,
    /// Flip one byte in each of the next N frames the POS sends.
    pub corrupt_frames: Arc<AtomicU32>,
    /// Send each of the next N frames twice.
    pub duplicate_frames: Arc<AtomicU32>,
    /// Send each of the next N frames in two halves, `split_gap` apart.
    pub split_frames: Arc<AtomicU32>,
    pub split_gap_ms: Arc<AtomicU32>,
    /// Ignore the next N chunks of bytes from the bridge (a frame lost on the way in).
    pub drop_input: Arc<AtomicU32>,
    /// Per-mille chance of corrupting any frame sent, and of losing any chunk received.
    pub noise_permille: Arc<AtomicU32>,
    /// Restart the POS: its link state is reset and the running transaction is forgotten in
    /// memory (its ledger entry stays, as on a real POS).
    pub restart: Arc<AtomicBool>,
}

fn take(c: &AtomicU32) -> bool {
    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
}

fn chance(permille: u32) -> bool {
    permille > 0 && rand::random::<u32>() % 1000 < permille
}

/// The answer for a reference the POS has no transaction for.
fn not_found(reference: &str) -> Reply {
    Reply::Result(TxnResult {
        reference: reference.to_string(),
        // `op` is optional for NOT_FOUND (docs/pos-protocol.md §4.5): the simulator leaves it out.
        kind: None,
        status: TxnStatus::NotFound,
        channel: None,
        pay_order_no: None,
        amount_fen: None,
        time: None,
        code: None,
        message: None,
    })
}

/// Writes all of `bytes` on a port that may be non-blocking; gives up only on a real error.
fn write_fully<P: Write>(port: &mut P, mut bytes: &[u8]) {
    let start = Instant::now();
    while !bytes.is_empty() && start.elapsed() < Duration::from_secs(2) {
        match port.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) =>
            {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => return,
        }
    }
}

/// Runs the simulator on an open port until `stop` is set.
pub fn serve<P: Read + Write>(port: &mut P, mut pos: Pos, faults: Faults, stop: &AtomicBool) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::Relaxed) {
        if faults.restart.swap(false, Ordering::SeqCst) {
            pos = pos.restarted();
        }
        let muted = faults.mute.load(Ordering::Relaxed);
        match port.read(&mut buf) {
            Ok(n) if n > 0 => {
                let lost = take(&faults.drop_input) || chance(faults.noise_permille.load(Ordering::Relaxed));
                if !muted && !lost {
                    pos.handle_input(&buf[..n], Instant::now());
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            // Readiness without data (seen on pty masters): wait a little instead of spinning.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // EIO on a pty master while nobody holds the other end: wait for the bridge.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
        pos.handle_timeout(Instant::now());
        while let Some(mut out) = pos.poll_transmit() {
            if faults.mute.load(Ordering::Relaxed) {
                continue;
            }
            let is_ack = out == [hisbridge_protocol::frame::ACK];
            if is_ack && take(&faults.drop_acks) {
                continue;
            }
            if !is_ack
                && out.len() > 4
                && (take(&faults.corrupt_frames) || chance(faults.noise_permille.load(Ordering::Relaxed)))
            {
                let i = 3 + rand::random::<usize>() % (out.len() - 4);
                out[i] ^= 0x5A;
            }
            let copies = if !is_ack && take(&faults.duplicate_frames) { 2 } else { 1 };
            for _ in 0..copies {
                if !is_ack && out.len() > 2 && take(&faults.split_frames) {
                    let (a, b) = out.split_at(out.len() / 2);
                    write_fully(port, a);
                    std::thread::sleep(Duration::from_millis(faults.split_gap_ms.load(Ordering::Relaxed) as u64));
                    write_fully(port, b);
                } else {
                    write_fully(port, &out);
                }
            }
        }
    }
}

/// A simulator running on its own thread behind a pseudo-terminal. The bridge opens
/// [`SimHandle::port_path`] like any serial port.
pub struct SimHandle {
    pub ledger: Arc<Mutex<Ledger>>,
    pub trace: Trace,
    pub faults: Faults,
    path: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimHandle {
    pub fn port_path(&self) -> &str {
        &self.path
    }
    pub fn ledger(&self) -> Ledger {
        self.ledger.lock().expect("ledger").clone()
    }
    /// Numbers the wallet gives from `n` on: several simulated POS of one merchant (the hub's
    /// tests) then give numbers that differ, as one merchant's wallet does.
    pub fn number_from(&self, n: u64) {
        let mut l = self.ledger.lock().expect("ledger");
        l.counter = l.counter.max(n);
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(unix)]
/// Creates a pseudo-terminal pair and runs the simulator on its master side.
pub fn spawn_on_pty(cfg: SimConfig) -> std::io::Result<SimHandle> {
    let (mut master, slave) = serialport::TTYPort::pair().map_err(std::io::Error::other)?;
    use serialport::SerialPort;
    master.set_timeout(Duration::from_millis(5)).map_err(std::io::Error::other)?;
    // Non-blocking: a pty master can report POLLIN and then block in read() until the far end
    // writes again, which would stall this single thread's ACKs and events for seconds.
    {
        use std::os::fd::AsRawFd;
        let fd = master.as_raw_fd();
        // SAFETY: plain fcntl on a descriptor this function owns.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
        };
        if !ok {
            return Err(std::io::Error::last_os_error());
        }
    }
    let path = slave.name().unwrap_or_default();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let faults = Faults::default();
    let stop = Arc::new(AtomicBool::new(false));
    let pos = Pos::new(cfg, ledger.clone());
    let trace = pos.trace();
    let (stop2, faults2) = (stop.clone(), faults.clone());
    let thread = std::thread::Builder::new().name("pos-sim".into()).spawn(move || {
        // Holding the slave open keeps the master readable while the bridge reconnects.
        let _slave = slave;
        serve(&mut master, pos, faults2, &stop2);
    })?;
    Ok(SimHandle { ledger, trace, faults, path, stop, thread: Some(thread) })
}
