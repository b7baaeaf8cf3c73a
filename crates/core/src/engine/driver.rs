//! The IO shell around the engine: one tokio task that feeds it instructions, POS events, link
//! changes, front-end requests and its deadlines, and carries out what it asks (POS commands,
//! file operations, socket lines, notices, answers). Every effect's outcome goes straight back
//! into the engine before the next input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use hisbridge_protocol::PosTotals;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::info;

use super::effects::FileExec;
use super::{
    Answer, Attention, Command, Effect, Engine, EngineSettings, Incoming, LinkState, Notice, Now, OrderAction, PosInfo,
    Source,
};
use crate::config::Timeouts;
use crate::envelope::Key;
use crate::intake::{Origin, Submission};
use crate::journal::{Journal, State};
use crate::pos::{Link, PosEvent, PosHandle, PosStatus};

/// Requests from front ends (tray, scheduler, command line) to the engine.
#[derive(Debug)]
pub enum Control {
    /// Ask the POS for its totals of `date` (`YYYYMMDD`); journaled when they arrive.
    PosTotals { date: String, reply: oneshot::Sender<Result<PosTotals, String>> },
    /// New terminal list and timeouts from the settings window; they apply from the next order
    /// (and the next deadline) on.
    Reconfigure { terminals: BTreeSet<String>, timeouts: Timeouts },
    /// Stop (true) or resume (false) taking new orders.
    Pause(bool),
    /// Ask the POS for its INFO (device, version, clock): the cashier's connection test.
    PosInfo { reply: oneshot::Sender<Result<PosInfo, String>> },
    /// A cashier's action on one order (by its key, `order_no` or `order_no@refund_no`).
    Order { key: String, action: OrderAction, reply: oneshot::Sender<Result<State, String>> },
}

enum Waiting {
    Totals(oneshot::Sender<Result<PosTotals, String>>),
    Info(oneshot::Sender<Result<PosInfo, String>>),
    Order(oneshot::Sender<Result<State, String>>),
}

/// What needs a person, for the status file and the tray: kind → detail.
pub type Health = BTreeMap<Attention, String>;

pub struct Driver {
    engine: Engine,
    pos: PosHandle,
    files: FileExec,
    notices: broadcast::Sender<Notice>,
    health: watch::Sender<Health>,
    conns: HashMap<u64, mpsc::UnboundedSender<String>>,
    waiting: HashMap<u64, Waiting>,
    next_token: u64,
}

fn link_state(s: &PosStatus) -> LinkState {
    LinkState { ready: s.link == Link::Ready, device_id: s.device_id.clone() }
}

impl Driver {
    pub fn new(
        s: EngineSettings,
        key: Arc<Key>,
        journal: Journal,
        pos: PosHandle,
        notices: broadcast::Sender<Notice>,
        health: watch::Sender<Health>,
    ) -> Self {
        // A crash may have left temp files of results and reasons: they are never read.
        for dir in [&s.folders.outbox, &s.folders.error] {
            let n = crate::folders::remove_stale_temps(dir);
            if n > 0 {
                info!(folder = %dir.display(), removed = n, "temp files of an interrupted run removed");
            }
        }
        let files = FileExec::new(s.folders.clone()).with_key(key.clone());
        let engine = Engine::new(s, key, journal, Now::system());
        Self { engine, pos, files, notices, health, conns: HashMap::new(), waiting: HashMap::new(), next_token: 1 }
    }

    pub async fn run(
        mut self,
        mut subs: mpsc::Receiver<Submission>,
        mut pos_events: mpsc::UnboundedReceiver<PosEvent>,
        mut control: mpsc::Receiver<Control>,
    ) {
        let mut link = self.pos.watch();
        self.engine.start(Now::system());
        self.engine.handle_link(link_state(&link.borrow_and_update()), Now::system());
        self.flush().await;
        loop {
            let deadline = self.engine.poll_timeout();
            tokio::select! {
                s = subs.recv() => match s {
                    Some(s) => {
                        let inc = self.incoming(s);
                        self.engine.handle_incoming(inc, Now::system());
                    }
                    None => break,
                },
                e = pos_events.recv() => match e {
                    Some(e) => self.engine.handle_pos(e, Now::system()),
                    None => break,
                },
                Some(c) = control.recv() => {
                    let c = self.command(c);
                    self.engine.handle_command(c, Now::system());
                }
                changed = link.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let l = link_state(&link.borrow_and_update());
                    self.engine.handle_link(l, Now::system());
                }
                _ = sleep_until(deadline) => self.engine.handle_timeout(Now::system()),
            }
            self.flush().await;
        }
        info!("engine stopped");
    }

    fn incoming(&mut self, s: Submission) -> Incoming {
        let source = match s.origin {
            Origin::File { stem, work_path } => Source::File { stem, work_path },
            Origin::Socket { conn, tx } => {
                self.conns.insert(conn, tx);
                Source::Socket { conn }
            }
        };
        Incoming { source, body: s.body, resubmitted: s.resubmitted, stem_final: s.stem_final }
    }

    fn token(&mut self, w: Waiting) -> u64 {
        let t = self.next_token;
        self.next_token += 1;
        self.waiting.insert(t, w);
        t
    }

    fn command(&mut self, c: Control) -> Command {
        match c {
            Control::PosTotals { date, reply } => {
                Command::PosTotals { date, token: self.token(Waiting::Totals(reply)) }
            }
            Control::Reconfigure { terminals, timeouts } => Command::Reconfigure { terminals, timeouts },
            Control::Pause(p) => Command::Pause(p),
            Control::PosInfo { reply } => Command::PosInfo { token: self.token(Waiting::Info(reply)) },
            Control::Order { key, action, reply } => {
                Command::Order { key, action, token: self.token(Waiting::Order(reply)) }
            }
        }
    }

    /// Carries out every effect, feeding each outcome back at once. A step's commands for the
    /// POS go out before its files: the progress results the HIS reads do not delay a payment
    /// (every effect of a step follows its journal commits either way).
    async fn flush(&mut self) {
        loop {
            let batch: Vec<Effect> = std::iter::from_fn(|| self.engine.poll_effect()).collect();
            if batch.is_empty() {
                return;
            }
            let (pos, rest): (Vec<Effect>, Vec<Effect>) = batch.into_iter().partition(|e| matches!(e, Effect::Pos(_)));
            for e in pos.into_iter().chain(rest) {
                self.apply(e).await;
            }
        }
    }

    async fn apply(&mut self, e: Effect) {
        {
            match e {
                Effect::Pos(req) => {
                    if let Err(err) = self.pos.request(req.clone()).await {
                        self.engine.handle_pos_refused(req, err.to_string(), Now::system());
                    } else {
                        crate::failpoint::hit("requested");
                    }
                }
                Effect::File { id, op } => {
                    let res = self.files.apply(&op).map_err(|e| e.to_string());
                    self.engine.handle_file_done(id, res, Now::system());
                }
                Effect::Socket { conn, line } => {
                    let gone = self.conns.get(&conn).is_none_or(|tx| tx.send(line).is_err());
                    if gone {
                        self.conns.remove(&conn);
                        self.engine.handle_disconnected(conn, Now::system());
                    }
                }
                Effect::Notice(n) => {
                    if matches!(n, Notice::Attention { .. } | Notice::Resolved(_)) {
                        let h = self.engine.attention().clone();
                        self.health.send_replace(h);
                    }
                    let _ = self.notices.send(n);
                }
                Effect::Answer { token, answer } => match (self.waiting.remove(&token), answer) {
                    (Some(Waiting::Totals(tx)), Answer::Totals(r)) => drop(tx.send(r)),
                    (Some(Waiting::Info(tx)), Answer::Info(r)) => drop(tx.send(r)),
                    (Some(Waiting::Order(tx)), Answer::Order(r)) => drop(tx.send(r)),
                    _ => {}
                },
            }
        }
    }
}

async fn sleep_until(t: Option<std::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}
