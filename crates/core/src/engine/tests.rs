//! The engine driven directly: a hand-held clock, POS events written by hand, real folders and
//! a real journal file. No pty, no timer, no thread. One test per defect the engine once had.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisbridge_protocol::{Channel, Request, SessionEvent, Stage, TxnKind, TxnResult, TxnStatus};

use super::*;
use crate::amount::Amount;
use crate::envelope::{Direction, Key};
use crate::his::{Instruction, InstructionKind, ResultMessage, Status};
use crate::intake::Opened;
use crate::journal::Journal;

const WINDOW: Duration = Duration::from_secs(600);

struct T {
    dir: tempfile::TempDir,
    key: Arc<Key>,
    engine: Engine,
    files: FileExec,
    t0: Instant,
    now: Duration,
    wall0: DateTime<FixedOffset>,
    sent: Vec<Request>,
    notices: Vec<Notice>,
    nonce: u8,
}

fn folders(root: &std::path::Path) -> Folders {
    Folders {
        inbox: root.join("inbox"),
        outbox: root.join("outbox"),
        work: root.join("work"),
        archive: root.join("archive"),
        error: root.join("error"),
    }
}

fn settings(root: &std::path::Path) -> EngineSettings {
    EngineSettings {
        terminals: ["W01".to_string(), "W02".to_string(), "W09".to_string()].into(),
        supervisors: ["W09".to_string()].into(),
        device_id: "POS-1".into(),
        timeouts: Timeouts {
            scan: Duration::from_secs(90),
            password: Duration::from_secs(60),
            cancel: Duration::from_secs(30),
            query_interval: Duration::from_secs(5),
            pos_unavailable: Duration::from_secs(120),
        },
        folders: folders(root),
        replay_window: WINDOW,
    }
}

impl T {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        crate::folders::ensure_dirs(&folders(dir.path())).unwrap();
        let key = Arc::new(Key::new("K1", [7; 32]).unwrap());
        let t0 = Instant::now();
        let wall0 = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00+08:00").unwrap();
        let journal = Journal::open(&dir.path().join("journal.sqlite")).unwrap();
        let now = Now { mono: t0, wall: wall0 };
        let engine = Engine::new(settings(dir.path()), key.clone(), journal, now);
        let files = FileExec::new(folders(dir.path())).with_key(key.clone());
        let mut t =
            T { dir, key, engine, files, t0, now: Duration::ZERO, wall0, sent: vec![], notices: vec![], nonce: 0 };
        t.engine.start(t.clock());
        t.engine.handle_link(LinkState { ready: true, device_id: Some("POS-1".into()) }, t.clock());
        t.run();
        t
    }

    /// The same data folder and journal with a new engine (a restart).
    fn restart(mut self, after: Duration) -> Self {
        self.now += after;
        let journal = Journal::open(&self.dir.path().join("journal.sqlite")).unwrap();
        let now = self.clock();
        self.engine = Engine::new(settings(self.dir.path()), self.key.clone(), journal, now);
        self.engine.start(now);
        self.engine.handle_link(LinkState { ready: true, device_id: Some("POS-1".into()) }, now);
        self.run();
        self
    }

    fn clock(&self) -> Now {
        Now { mono: self.t0 + self.now, wall: self.wall0 + chrono::Duration::from_std(self.now).unwrap() }
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.engine.poll_timeout().filter(|t| *t <= self.t0 + end) {
            self.now = self.now.max(t.saturating_duration_since(self.t0));
            self.engine.handle_timeout(self.clock());
            self.run();
        }
        self.now = end;
    }

    /// Carries out every effect: files for real, POS commands recorded.
    fn run(&mut self) {
        while let Some(e) = self.engine.poll_effect() {
            match e {
                Effect::Pos(r) => self.sent.push(r),
                Effect::File { id, op } => {
                    let res = self.files.apply(&op).map_err(|e| e.to_string());
                    self.engine.handle_file_done(id, res, self.clock());
                }
                Effect::Notice(n) => self.notices.push(n),
                Effect::Socket { .. } | Effect::Answer { .. } => {}
            }
        }
    }

    fn instruction(&self, kind: InstructionKind, no: &str, amount: Option<&str>, refund: Option<&str>) -> Instruction {
        Instruction {
            kind,
            terminal_id: "W01".into(),
            order_no: no.into(),
            refund_no: refund.map(Into::into),
            amount: amount.map(|a| Amount::parse(a).unwrap()),
            operator: None,
            description: None,
            sent_at: Some(self.clock().wall),
        }
    }

    /// Drops `ins` as `<stem>.ord`, claimed into work/ as the intake would, and hands it over.
    fn file(&mut self, stem: &str, ins: &Instruction) -> PathBuf {
        self.nonce += 1;
        let n = [self.nonce; 12];
        let text = self.key.seal_with_nonce(Direction::ToBridge, ins.to_json().as_bytes(), n);
        self.file_text(stem, &text, false)
    }

    fn file_text(&mut self, stem: &str, text: &str, stem_final: bool) -> PathBuf {
        let work = self.dir.path().join("work").join(format!("{stem}.ord"));
        std::fs::write(&work, text).unwrap();
        let (plain, nonce) = self.key.open_with_nonce(Direction::ToBridge, text.as_bytes()).unwrap();
        let inc = Incoming {
            source: Source::File { stem: stem.into(), work_path: work.clone() },
            body: Ok(Opened { plain, nonce }),
            resubmitted: false,
            stem_final,
        };
        self.engine.handle_incoming(inc, self.clock());
        self.run();
        work
    }

    fn pos(&mut self, ev: SessionEvent) {
        self.engine.handle_pos(PosEvent::Session(ev), self.clock());
        self.run();
    }

    fn result_file(&self, stem: &str) -> Option<ResultMessage> {
        let bytes = std::fs::read(self.dir.path().join("outbox").join(format!("{stem}.res"))).ok()?;
        Some(ResultMessage::parse(&self.key.open(Direction::ToHis, &bytes).unwrap()).unwrap())
    }

    fn state(&self, key: &str) -> State {
        self.engine.journal().get_by_key(key).unwrap().unwrap().state
    }

    fn last_ref(&self) -> String {
        self.sent.iter().rev().find_map(|r| r.reference().map(str::to_string)).unwrap()
    }

    fn attention(&self, what: Attention) -> bool {
        self.engine.attention().contains_key(&what)
    }
}

fn paid(reference: &str, fen: u64) -> TxnResult {
    TxnResult {
        reference: reference.into(),
        kind: Some(TxnKind::Sale),
        status: TxnStatus::Paid,
        channel: Some(Channel::Wechat),
        pay_order_no: Some("4200001".into()),
        amount_fen: Some(fen),
        time: None,
        code: None,
        message: None,
    }
}

fn with(reference: &str, kind: Option<TxnKind>, status: TxnStatus, fen: Option<u64>) -> TxnResult {
    TxnResult {
        reference: reference.into(),
        kind,
        status,
        channel: None,
        pay_order_no: (status == TxnStatus::Refunded).then(|| "5030001".into()),
        amount_fen: fen,
        time: None,
        code: None,
        message: None,
    }
}

fn sales(sent: &[Request]) -> usize {
    sent.iter().filter(|r| matches!(r, Request::Sale { .. } | Request::Refund { .. })).count()
}

#[test]
fn nothing_goes_to_the_pos_before_its_attempt_is_journaled() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let Request::Sale { reference, .. } = &t.sent[0] else { panic!("{:?}", t.sent) };
    // Read back through a second connection: committed.
    let other = Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    let row = other.by_pos_ref(reference).unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (State::Sent, 1));
}

/// Defect 1: a file left in work/ by a crash, resubmitted after longer than the replay window,
/// is answered by its order, never refused as stale.
#[test]
fn a_claimed_file_of_a_running_order_is_not_stale_after_a_long_restart() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    let work = t.file("A1", &ins);
    let r = t.last_ref();
    let mut t = t.restart(Duration::from_secs(11 * 60));
    let text = std::fs::read_to_string(&work).unwrap();
    let (plain, nonce) = t.key.open_with_nonce(Direction::ToBridge, text.as_bytes()).unwrap();
    let inc = Incoming {
        source: Source::File { stem: "A1".into(), work_path: work.clone() },
        body: Ok(Opened { plain, nonce }),
        resubmitted: true,
        stem_final: false,
    };
    t.engine.handle_incoming(inc, t.clock());
    t.run();
    assert_ne!(t.result_file("A1").unwrap().status, Status::Rejected);
    // The restart queried it; the POS says paid.
    assert!(t.sent.iter().any(|q| matches!(q, Request::Query { reference } if *reference == r)));
    t.pos(SessionEvent::Result(paid(&r, 100)));
    assert_eq!(t.result_file("A1").unwrap().status, Status::Success);
    assert!(!work.exists(), "archived");
}

/// Defect 2: a final result file is never written again, even when the same order is sent
/// again in a new file and succeeds.
#[test]
fn a_failed_result_stays_when_the_order_is_sent_again() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A-1", &ins);
    let r = t.last_ref();
    let mut failed = with(&r, Some(TxnKind::Sale), TxnStatus::Failed, Some(100));
    failed.code = Some("NOTENOUGH".into());
    t.pos(SessionEvent::Result(failed));
    assert_eq!(t.result_file("A-1").unwrap().status, Status::Failed);
    let again = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A-2", &again);
    let r2 = t.last_ref();
    assert_eq!(r2, "A1.2");
    t.pos(SessionEvent::Result(paid(&r2, 100)));
    assert_eq!(t.result_file("A-2").unwrap().status, Status::Success);
    assert_eq!(t.result_file("A-1").unwrap().status, Status::Failed, "the first file keeps its final result");
}

/// Defect 3: the same file renamed into the inbox again does not overwrite its result, final
/// or still running.
#[test]
fn a_replayed_file_under_its_own_name_never_overwrites_the_result() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "X", Some("+1.00"), None);
    let text = t.key.seal_with_nonce(Direction::ToBridge, ins.to_json().as_bytes(), [9; 12]);
    t.file_text("X", &text, false);
    assert_eq!(t.result_file("X").unwrap().status, Status::Processing);
    // Again while the patient is paying: the result file is left alone.
    t.file_text("X", &text, false);
    assert_eq!(t.result_file("X").unwrap().status, Status::Processing);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(paid(&r, 100)));
    assert_eq!(t.result_file("X").unwrap().status, Status::Success);
    // Again after the success (the intake sees the final result under its name).
    t.file_text("X", &text, true);
    assert_eq!(t.result_file("X").unwrap().status, Status::Success);
    let errors: Vec<_> = std::fs::read_dir(t.dir.path().join("error")).unwrap().flatten().collect();
    assert_eq!(errors.len(), 4, "both replays in error/ with their reasons");
    assert_eq!(sales(&t.sent), 1);
}

/// Defect 4: a definite REFUNDED is never thrown away because a lagging lookup says NOT_FOUND.
#[test]
fn a_refund_the_pos_reported_done_is_never_reported_failed() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+5.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(paid(&r, 500)));
    let refund = t.instruction(InstructionKind::Order, "A1", Some("-5.00"), Some("R1"));
    t.file("A1_R1", &refund);
    let rr = t.last_ref();
    assert_eq!(rr, "A1@R1.1");
    t.pos(SessionEvent::Result(with(&rr, Some(TxnKind::Refund), TxnStatus::Refunded, Some(500))));
    assert!(matches!(t.sent.last(), Some(Request::Query { .. })), "confirmed by query");
    t.pos(SessionEvent::Result(with(&rr, None, TxnStatus::NotFound, None)));
    assert_eq!(t.state("A1@R1"), State::Unknown);
    assert!(t.attention(Attention::PosContradiction));
    assert_eq!(t.result_file("A1_R1").unwrap().status, Status::Unknown);
    // The HIS sends the same refund again: no second attempt.
    let again = t.instruction(InstructionKind::Order, "A1", Some("-5.00"), Some("R1"));
    t.file("A1_R1-b", &again);
    assert_eq!(sales(&t.sent), 2, "one sale, one refund");
    // The lookup catches up: refunded.
    t.advance(Duration::from_secs(60));
    t.pos(SessionEvent::Result(with(&rr, Some(TxnKind::Refund), TxnStatus::Refunded, Some(500))));
    assert_eq!(t.state("A1@R1"), State::Refunded);
    assert!(!t.attention(Attention::PosContradiction));
}

/// Defect 5: a NOT_FOUND without `op` settles the order (twice, some seconds apart).
#[test]
fn not_found_without_op_is_taken_when_confirmed() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::LinkLost);
    assert_eq!(t.state("A1"), State::Unknown);
    t.advance(Duration::from_secs(6));
    assert!(matches!(t.sent.last(), Some(Request::Query { .. })));
    t.pos(SessionEvent::Result(with(&r, None, TxnStatus::NotFound, None)));
    assert_eq!(t.state("A1"), State::Unknown, "one NOT_FOUND is asked again");
    t.advance(Duration::from_secs(6));
    t.pos(SessionEvent::Result(with(&r, None, TxnStatus::NotFound, None)));
    assert_eq!(t.state("A1"), State::Failed);
    assert_eq!(t.result_file("A1").unwrap().error_code.as_deref(), Some("E_POS_NOT_RECEIVED"));
    // The decoder takes it too.
    let frame = hisbridge_protocol::Reply::decode(b"RESULT|ref=A1.1|status=NOT_FOUND").unwrap();
    assert!(matches!(frame, hisbridge_protocol::Reply::Result(TxnResult { kind: None, .. })));
}

/// After the POS showed a SALE (an EVENT), its "not found" is a contradiction, never a failure;
/// after a mere ACK of the frame (a POS busy with another keeps no record) it counts, confirmed.
#[test]
fn not_found_after_the_pos_showed_the_sale_is_unknown() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::Delivered { reference: r.clone() });
    t.pos(SessionEvent::Progress { reference: r.clone(), stage: Stage::WaitScan });
    t.pos(SessionEvent::LinkLost);
    for _ in 0..3 {
        t.advance(Duration::from_secs(60));
        t.pos(SessionEvent::Result(with(&r, None, TxnStatus::NotFound, None)));
    }
    assert_eq!(t.state("A1"), State::Unknown);
    assert!(t.attention(Attention::PosContradiction));
    // It does not hold up the window: the next order goes to the POS.
    let next = t.instruction(InstructionKind::Order, "A2", Some("+2.00"), None);
    t.file("A2", &next);
    assert_eq!(t.last_ref(), "A2.1");
    let r2 = t.last_ref();
    // Only acknowledged, then lost: NOT_FOUND twice, a query interval apart, is a failure.
    t.pos(SessionEvent::Delivered { reference: r2.clone() });
    t.pos(SessionEvent::LinkLost);
    t.advance(Duration::from_secs(6));
    t.pos(SessionEvent::Result(with(&r2, None, TxnStatus::NotFound, None)));
    assert_eq!(t.state("A2"), State::Unknown);
    t.advance(Duration::from_secs(6));
    t.pos(SessionEvent::Result(with(&r2, None, TxnStatus::NotFound, None)));
    assert_eq!(t.state("A2"), State::Failed);
}

/// Defect 6: a RESULT is checked against the request.
#[test]
fn a_result_that_does_not_match_the_request_is_never_a_success() {
    for (name, bad) in [
        ("wrong amount", { paid("A1.1", 99) }),
        ("no pay_no", TxnResult { pay_order_no: None, ..paid("A1.1", 100) }),
        ("no channel", TxnResult { channel: None, ..paid("A1.1", 100) }),
        ("wrong op", TxnResult { kind: Some(TxnKind::Refund), ..paid("A1.1", 100) }),
    ] {
        let mut t = T::new();
        let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
        t.file("A1", &ins);
        t.pos(SessionEvent::Result(bad));
        assert_eq!(t.state("A1"), State::Unknown, "{name}");
        assert!(t.attention(Attention::PosContradiction), "{name}");
        assert_eq!(t.result_file("A1").unwrap().status, Status::Unknown, "{name}");
        // A correct answer to the next query settles it.
        t.advance(Duration::from_secs(60));
        t.pos(SessionEvent::Result(paid("A1.1", 100)));
        assert_eq!(t.state("A1"), State::Success, "{name}");
    }
}

/// Defect 7: a journal that cannot be written stops new orders with a clear error, says
/// attention, and does not spin.
#[test]
fn an_unwritable_journal_stops_new_orders_without_spinning() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    // The disk fills up under the bridge: every journal write fails.
    let full = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = full.clone();
    let journal = Journal::open(&t.dir.path().join("journal.sqlite")).unwrap();
    t.engine = {
        let mut j = journal;
        j.set_fault_hook(Some(Box::new(move |_| f.load(std::sync::atomic::Ordering::SeqCst))));
        let now = t.clock();
        let mut e = Engine::new(settings(t.dir.path()), t.key.clone(), j, now);
        e.handle_link(LinkState { ready: true, device_id: Some("POS-1".into()) }, now);
        e.active = Some(Active { id: 1, pos_ref: r.clone(), phase: Phase::Sent });
        e
    };
    t.pos(SessionEvent::Progress { reference: r.clone(), stage: Stage::UserPaying });
    assert!(t.attention(Attention::Journal));
    let before = t.sent.len();
    t.advance(Duration::from_secs(30));
    assert!(t.sent.len() <= before + 1, "no query storm: {:?}", &t.sent[before..]);
    let next = t.instruction(InstructionKind::Order, "A2", Some("+2.00"), None);
    t.file("A2", &next);
    let res = t.result_file("A2").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Rejected, Some("E_JOURNAL")));
    assert!(!t.dir.path().join("work/A2.ord").exists(), "refused, in error/: never charged later");
    // The journal is back: the open order is asked again and settles.
    full.store(false, std::sync::atomic::Ordering::SeqCst);
    t.advance(Duration::from_secs(10));
    assert!(!t.attention(Attention::Journal));
    assert!(t.sent.iter().skip(before).any(|q| matches!(q, Request::Query { reference } if *reference == r)));
    t.pos(SessionEvent::Result(paid(&r, 100)));
    assert_eq!(t.state("A1"), State::Success);
}

/// Defect 8: a result that cannot be written is tried again until it is.
#[test]
fn a_result_that_cannot_be_written_is_retried() {
    let mut t = T::new();
    let outbox = t.dir.path().join("outbox");
    std::fs::remove_dir_all(&outbox).unwrap();
    std::fs::write(&outbox, b"not a folder").unwrap();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(paid(&r, 100)));
    assert!(t.attention(Attention::Files));
    t.advance(Duration::from_secs(10));
    std::fs::remove_file(&outbox).unwrap();
    std::fs::create_dir(&outbox).unwrap();
    t.advance(Duration::from_secs(120));
    assert_eq!(t.result_file("A1").unwrap().status, Status::Success);
    assert!(!t.attention(Attention::Files));
    assert!(t.engine.journal().unwritten_results().unwrap().is_empty());
}

/// Defect 9: a message id is remembered as long as its `sent_at` could pass the window check.
#[test]
fn a_message_dated_ahead_is_remembered_until_it_could_no_longer_pass() {
    let mut t = T::new();
    let mut ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    let mut failed = with(&r, Some(TxnKind::Sale), TxnStatus::Failed, Some(100));
    failed.code = Some("X".into());
    t.pos(SessionEvent::Result(failed));
    // A re-send dated almost a window ahead (a fast HIS clock): accepted, a new attempt.
    ins.sent_at = Some(t.clock().wall + chrono::Duration::seconds(WINDOW.as_secs() as i64));
    let text = t.key.seal_with_nonce(Direction::ToBridge, ins.to_json().as_bytes(), [200; 12]);
    t.file_text("A1-b", &text, false);
    let r2 = t.last_ref();
    let mut failed = with(&r2, Some(TxnKind::Sale), TxnStatus::Failed, Some(100));
    failed.code = Some("X".into());
    t.pos(SessionEvent::Result(failed));
    // Replayed at the last moment its sent_at passes the window check, after housekeeping ran.
    // (sent_at + window + 1 s, the truncated skew; housekeeping has just pruned at 2 windows.)
    t.advance(WINDOW * 2 + Duration::from_millis(500));
    t.file_text("A1-c", &text, false);
    let res = t.result_file("A1-c").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Rejected, Some("E_REPLAY")));
    assert_eq!(sales(&t.sent), 2);
}

#[test]
fn who_cancelled_is_journaled_and_told() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    t.advance(Duration::from_secs(91));
    assert!(matches!(t.sent.last(), Some(Request::Cancel { .. })), "the deadline cancels");
    let row = t.engine.journal().get_by_key("A1").unwrap().unwrap();
    assert_eq!(row.cancelled_by, Some(CancelledBy::Timeout));
    t.pos(SessionEvent::Result(with(&r, Some(TxnKind::Sale), TxnStatus::Cancelled, None)));
    assert_eq!(t.result_file("A1").unwrap().error_code.as_deref(), Some("E_TIMEOUT"));
    // Cancelled at the POS itself: journaled as the POS's.
    let ins = t.instruction(InstructionKind::Order, "A2", Some("+1.00"), None);
    t.file("A2", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(with(&r, Some(TxnKind::Sale), TxnStatus::Cancelled, None)));
    let row = t.engine.journal().get_by_key("A2").unwrap().unwrap();
    assert_eq!(row.cancelled_by, Some(CancelledBy::Pos));
}

/// Only the terminal that took an order, or a supervisor's, may cancel or refund it.
#[test]
fn another_terminal_may_not_cancel_or_refund_an_order() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+5.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    let mut cancel = t.instruction(InstructionKind::Cancel, "A1", None, None);
    cancel.terminal_id = "W02".into();
    t.file("A1-c", &cancel);
    let res = t.result_file("A1-c").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Rejected, Some("E_NOT_ALLOWED")));
    assert!(!t.sent.iter().any(|q| matches!(q, Request::Cancel { .. })), "nothing cancelled");
    t.pos(SessionEvent::Result(paid(&r, 500)));
    let mut refund = t.instruction(InstructionKind::Order, "A1", Some("-1.00"), Some("R1"));
    refund.terminal_id = "W02".into();
    t.file("A1_R1", &refund);
    let res = t.result_file("A1_R1").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Rejected, Some("E_NOT_ALLOWED")));
    assert_eq!(sales(&t.sent), 1);
    // The supervisor's desk may.
    refund.terminal_id = "W09".into();
    t.file("A1_R1-s", &refund);
    assert_eq!(t.last_ref(), "A1@R1.1");
}

/// A cancel the bridge never asked for is the POS's (its cashier, or a restart before the
/// patient paid), and a failed refund is not a failed payment: the HIS is told which.
#[test]
fn a_pos_side_cancel_and_a_failed_refund_are_named_for_what_they_are() {
    let mut t = T::new();
    let ins = t.instruction(InstructionKind::Order, "A1", Some("+1.00"), None);
    t.file("A1", &ins);
    let r = t.last_ref();
    let mut c = with(&r, Some(TxnKind::Sale), TxnStatus::Cancelled, Some(100));
    c.code = Some("POS_RESTARTED".into());
    c.message = Some("POS 重启，交易未发起".into());
    t.pos(SessionEvent::Result(c));
    let res = t.result_file("A1").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Cancelled, Some("E_POS_CANCELLED")));
    assert!(res.error_message.as_deref().unwrap().contains("POS 重启"), "{res:?}");
    let en = res.error_message_en.as_deref().unwrap();
    assert!(en.contains("cancelled at the POS") && en.contains("POS_RESTARTED") && en.is_ascii(), "{en}");

    let ins = t.instruction(InstructionKind::Order, "B1", Some("+5.00"), None);
    t.file("B1", &ins);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(paid(&r, 500)));
    let refund = t.instruction(InstructionKind::Order, "B1", Some("-2.00"), Some("R1"));
    t.file("B1_R1", &refund);
    let rr = t.last_ref();
    let mut f = with(&rr, Some(TxnKind::Refund), TxnStatus::Failed, Some(200));
    f.code = Some("TRADE_HAS_CLOSE".into());
    f.message = Some("交易已关闭".into());
    t.pos(SessionEvent::Result(f));
    let res = t.result_file("B1_R1").unwrap();
    assert_eq!((res.status, res.error_code.as_deref()), (Status::Failed, Some("E_REFUND_FAILED")));
    assert!(res.error_message_en.as_deref().unwrap().contains("refund failed"), "{res:?}");
}

/// §3.3: a refusal echoes the terminal, order, refund and amount wherever they were readable,
/// whatever else was wrong.
#[test]
fn a_refusal_echoes_every_field_that_was_well_formed() {
    let mut t = T::new();
    let sent = t.clock().wall.to_rfc3339();
    let cases = [
        (
            "unknown",
            format!(
                r#"{{"v":1,"type":"order","terminal_id":"W01","order_no":"E1","amount":"+12.5","sent_at":"{sent}","colour":"red"}}"#
            ),
            "E_FORMAT",
        ),
        (
            "v2",
            format!(
                r#"{{"v":2,"type":"order","terminal_id":"W01","order_no":"E2","amount":"+1.00","sent_at":"{sent}"}}"#
            ),
            "E_FORMAT",
        ),
        (
            "nosent",
            r#"{"v":1,"type":"order","terminal_id":"W02","order_no":"E3","refund_no":"R1","amount":"-3"}"#.to_string(),
            "E_FIELD",
        ),
    ];
    for (stem, json, code) in cases {
        t.nonce += 1;
        let text = t.key.seal_with_nonce(Direction::ToBridge, json.as_bytes(), [t.nonce; 12]);
        t.file_text(stem, &text, false);
        let r = t.result_file(stem).unwrap_or_else(|| panic!("no result for {stem}"));
        assert_eq!(r.status, Status::Rejected, "{stem}");
        assert_eq!(r.error_code.as_deref(), Some(code), "{stem}: {r:?}");
        assert!(r.terminal_id.is_some(), "{stem}: terminal echoed: {r:?}");
    }
    let r = t.result_file("unknown").unwrap();
    assert_eq!((r.order_no.as_deref(), r.amount.as_deref()), (Some("E1"), Some("+12.50")), "normalised");
    let r = t.result_file("nosent").unwrap();
    assert_eq!(
        (r.terminal_id.as_deref(), r.refund_no.as_deref(), r.amount.as_deref()),
        (Some("W02"), Some("R1"), Some("-3.00"))
    );
}

/// An order that cannot reach the POS does not wait for ever: PROCESSING with the reason, then,
/// after `pos_unavailable`, a definite FAILED (nothing was sent); the HIS may send it again.
#[test]
fn an_order_for_a_pos_that_cannot_be_reached_fails_in_bounded_time() {
    let mut t = T::new();
    t.engine.handle_link(LinkState { ready: false, device_id: None }, t.clock());
    t.run();
    let ins = t.instruction(InstructionKind::Order, "U1", Some("+1.00"), None);
    t.file("U1", &ins);
    let r = t.result_file("U1").unwrap();
    assert_eq!(r.status, Status::Processing);
    assert!(r.error_message_en.as_deref().unwrap().contains("E_POS_UNAVAILABLE after 120 s"), "{r:?}");
    t.advance(Duration::from_secs(119));
    assert_eq!(t.state("U1"), State::Accepted);
    t.advance(Duration::from_secs(2));
    assert_eq!(t.state("U1"), State::Failed);
    let r = t.result_file("U1").unwrap();
    assert_eq!((r.status, r.error_code.as_deref()), (Status::Failed, Some("E_POS_UNAVAILABLE")));
    assert!(r.error_message_en.unwrap().contains("was not sent"));
    assert_eq!(sales(&t.sent), 0, "nothing reached the POS");

    // A POS that comes back in time takes the queued order; the failed one may be sent again.
    let ins = t.instruction(InstructionKind::Order, "U2", Some("+2.00"), None);
    t.file("U2", &ins);
    t.advance(Duration::from_secs(100));
    t.engine.handle_link(LinkState { ready: true, device_id: Some("POS-1".into()) }, t.clock());
    t.run();
    assert_eq!(t.state("U2"), State::Sent);
    let r = t.last_ref();
    t.pos(SessionEvent::Result(paid(&r, 200)));
    let again = t.instruction(InstructionKind::Order, "U1", Some("+1.00"), None);
    t.file("U1-again", &again);
    assert_eq!(t.state("U1"), State::Sent, "a new attempt after the definite failure");
    t.advance(Duration::from_secs(600));
    assert_ne!(t.state("U1"), State::Failed, "sent now: its fate is the POS's, not the queue's");
}
