//! `hisbridge pos-check`: the conformance kit for POS vendors. It drives a POS through the
//! clauses of docs/pos-protocol.md at the byte level (its own frames, ACKs and re-sends, not the
//! bridge's session, so it can also do what a bridge never does: leave a frame unacknowledged,
//! send a broken one, repeat one) and prints pass or fail per clause, with the bytes exchanged
//! when a clause fails.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use hisbridge_core::transport::{PosTarget, TransportKind};
use hisbridge_protocol::frame::{self, Deframer, Token, ACK};
use hisbridge_protocol::link::split_seq;
use hisbridge_protocol::{Reply, TxnKind, TxnResult, TxnStatus};
use serde::Serialize;

/// §3.2: the ACK must come within this.
const ACK_WINDOW: Duration = Duration::from_millis(300);

#[derive(clap::Args, Clone)]
pub struct PosCheckArgs {
    /// The POS: a port (`COM5`, `/dev/ttyACM0`) or `usb:VID:PID[:SERIAL]` / `auto`, as in `[pos] port`.
    #[arg(long)]
    port: String,
    /// `serial`, `usb` or `aoa`, as in `[pos] transport`.
    #[arg(long, default_value = "serial")]
    transport: String,
    /// The serial line's speed (ignored over USB).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// The device ID the POS must report in HELLO.
    #[arg(long)]
    device_id: Option<String>,
    /// Amount in fen of the collections that must be paid (scan a test code at a real POS).
    #[arg(long, default_value_t = 1)]
    pay_fen: u64,
    /// Amount in fen of a collection nobody pays (it stays waiting for the code until cancelled;
    /// the simulator's amount rule 94 does the same).
    #[arg(long, default_value_t = 94)]
    hold_fen: u64,
    /// How long a collection may wait for the patient, in seconds.
    #[arg(long, default_value_t = 120)]
    pay_secs: u64,
    /// A shell command that restarts the POS app (its ledger must survive); without it the
    /// restart clause is skipped.
    #[arg(long)]
    restart: Option<String>,
    /// Prefix of the references this run makes (default: CHK and the time, unique per run).
    #[arg(long)]
    prefix: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Show the bytes of every clause, not only of failed ones.
    #[arg(long)]
    bytes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Verdict {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
struct ClauseReport {
    clause: &'static str,
    title: &'static str,
    verdict: Verdict,
    detail: String,
    /// The bytes of this clause, when it failed: `+seconds dir hex "text"`.
    bytes: Vec<String>,
}

#[derive(Clone, Copy)]
enum Dir {
    Out,
    In,
}

/// The line to the POS: a reader thread, the deframer, our own link bookkeeping and a log of
/// every byte.
struct Wire {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    writer: Box<dyn Write + Send>,
    stop: Arc<AtomicBool>,
    deframer: Deframer,
    tokens: VecDeque<Token>,
    /// Frames from the POS not yet looked at: (sequence, payload).
    inbox: VecDeque<(u16, Vec<u8>)>,
    last_rx: Option<Vec<u8>>,
    /// ACK the POS's frames (off to make it re-send).
    auto_ack: bool,
    /// Frames containing this are not ACKed (a RESULT "lost" on its way).
    hold_ack: Option<Vec<u8>>,
    seq: u16,
    start: Instant,
    log: Vec<(Duration, Dir, Vec<u8>)>,
    duplicates: usize,
    lost: Option<String>,
}

fn open_wire(a: &PosCheckArgs) -> Result<Wire> {
    let target = PosTarget::parse(&a.port).map_err(|e| anyhow!("--port: {e}"))?;
    let kind = match a.transport.as_str() {
        "serial" => TransportKind::Serial,
        "usb" => TransportKind::Usb,
        "aoa" => TransportKind::Aoa,
        other => bail!("--transport {other:?}: serial, usb or aoa"),
    };
    let link = hisbridge_core::transport::open(&target, kind, a.baud, a.device_id.as_deref().unwrap_or(""))
        .map_err(|e| anyhow!("cannot open the POS: {e}"))?;
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_r = stop.clone();
    let mut reader = link.reader;
    std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while !stop_r.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(5)),
                Ok(n) => {
                    if tx.send(Ok(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            }
        }
    });
    let seq = (rand::random::<u16>() % 9000) + 1;
    Ok(Wire {
        rx,
        writer: link.writer,
        stop,
        deframer: Deframer::new(),
        tokens: VecDeque::new(),
        inbox: VecDeque::new(),
        last_rx: None,
        auto_ack: true,
        hold_ack: None,
        seq,
        start: Instant::now(),
        log: Vec::new(),
        duplicates: 0,
        lost: None,
    })
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Wire {
    fn write(&mut self, bytes: &[u8]) {
        self.log.push((self.start.elapsed(), Dir::Out, bytes.to_vec()));
        if let Err(e) = self.writer.write_all(bytes).and_then(|_| self.writer.flush()) {
            self.lost.get_or_insert(format!("write failed: {e}"));
        }
    }

    /// Reads what arrives until `until`, or until at least one token is there.
    fn pump(&mut self, until: Instant) {
        while self.tokens.is_empty() {
            let now = Instant::now();
            let wait = until.saturating_duration_since(now).min(
                self.deframer.deadline().map(|d| d.saturating_duration_since(now)).unwrap_or(Duration::from_secs(3600)),
            );
            match self.rx.recv_timeout(wait) {
                Ok(Ok(bytes)) => {
                    self.log.push((self.start.elapsed(), Dir::In, bytes.clone()));
                    self.deframer.push(&bytes, Instant::now());
                }
                Ok(Err(e)) => {
                    self.lost.get_or_insert(e);
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => self.deframer.handle_timeout(Instant::now()),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
            while let Some(t) = self.deframer.poll() {
                self.tokens.push_back(t);
            }
            if Instant::now() >= until {
                return;
            }
        }
    }

    /// The next ACK, NAK or invalid token within `timeout`; frames meanwhile go to the inbox.
    fn next_signal(&mut self, timeout: Duration) -> Option<Token> {
        let until = Instant::now() + timeout;
        loop {
            while let Some(t) = self.tokens.pop_front() {
                match t {
                    Token::Frame(p) => self.on_frame(p),
                    Token::Invalid(frame::FrameError::StrayBytes { .. }) => {}
                    other => return Some(other),
                }
            }
            if Instant::now() >= until || self.lost.is_some() {
                return None;
            }
            self.pump(until);
        }
    }

    fn on_frame(&mut self, payload: Vec<u8>) {
        let held = self.hold_ack.as_ref().is_some_and(|h| payload.windows(h.len()).any(|w| w == h.as_slice()));
        if self.auto_ack && !held {
            self.write(&[ACK]);
        }
        if self.last_rx.as_deref() == Some(payload.as_slice()) {
            self.duplicates += 1;
            return;
        }
        self.last_rx = Some(payload.clone());
        if let Some((seq, _)) = split_seq(&payload) {
            self.inbox.push_back((seq, payload));
        } else {
            self.inbox.push_back((0, payload));
        }
    }

    fn frame_bytes(&mut self, body: &str) -> Vec<u8> {
        self.seq = if self.seq >= 9999 { 1 } else { self.seq + 1 };
        frame::encode(format!("{:04}|{body}", self.seq).as_bytes()).expect("a short payload")
    }

    /// Sends a command and waits for its ACK (re-sending identical bytes on NAK or silence, as
    /// the bridge does). Returns how many re-sends it took, or why it failed.
    fn command(&mut self, body: &str) -> Result<usize, String> {
        let bytes = self.frame_bytes(body);
        self.send_frame(&bytes)
    }

    fn send_frame(&mut self, bytes: &[u8]) -> Result<usize, String> {
        for attempt in 0..4 {
            self.write(bytes);
            match self.next_signal(ACK_WINDOW) {
                Some(Token::Ack) => return Ok(attempt),
                Some(_) | None if self.lost.is_some() => break,
                _ => {}
            }
        }
        Err(match &self.lost {
            Some(l) => format!("the link was lost: {l}"),
            None => "no ACK after 3 re-sends of identical bytes (§3.2)".into(),
        })
    }

    /// The next reply from the POS matching `want` within `timeout`; others are kept in `seen`.
    fn reply(
        &mut self,
        timeout: Duration,
        seen: &mut Vec<Reply>,
        want: impl Fn(&Reply) -> bool,
    ) -> Result<Reply, String> {
        let until = Instant::now() + timeout;
        loop {
            while let Some((_, p)) = self.inbox.pop_front() {
                let body = split_seq(&p).map(|(_, b)| b).ok_or_else(|| {
                    format!("a frame without a 4-digit sequence number (§3.3): {:?}", String::from_utf8_lossy(&p))
                })?;
                let r =
                    Reply::decode(body).map_err(|e| format!("cannot read {:?}: {e}", String::from_utf8_lossy(body)))?;
                if want(&r) {
                    return Ok(r);
                }
                seen.push(r);
            }
            let _ = self.next_signal(Duration::from_millis(20));
            if let Some(l) = &self.lost {
                return Err(format!("the link was lost: {l}"));
            }
            if Instant::now() >= until {
                return Err(format!("no answer within {:.1} s", timeout.as_secs_f64()));
            }
        }
    }

    /// Waits `d`, answering what comes.
    fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            let _ = self.next_signal(until.saturating_duration_since(Instant::now()));
        }
    }

    /// Closes the line (before the POS is reopened): the port is released once the reader
    /// thread has seen the stop.
    fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.writer = Box::new(std::io::sink());
        std::thread::sleep(Duration::from_millis(300));
    }

    fn transcript(&self, from: usize) -> Vec<String> {
        self.log[from..]
            .iter()
            .map(|(t, d, b)| {
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
                let text: String = b.iter().map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '.' }).collect();
                format!(
                    "+{:>8.3} {} {}  \"{}\"",
                    t.as_secs_f64(),
                    match d {
                        Dir::Out => "->",
                        Dir::In => "<-",
                    },
                    hex.join(" "),
                    text
                )
            })
            .collect()
    }
}

fn result_for<'a>(reference: &'a str) -> impl Fn(&Reply) -> bool + 'a {
    move |r| matches!(r, Reply::Result(t) if t.reference == reference)
}

fn as_result(r: Reply) -> TxnResult {
    match r {
        Reply::Result(t) => t,
        _ => unreachable!("selected by result_for"),
    }
}

fn is_time(s: &str) -> bool {
    s.len() == 14
        && s.bytes().all(|b| b.is_ascii_digit())
        && chrono::NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").is_ok()
}

/// The fields §4.5 requires for a final result, and that it answers the request.
fn check_final(t: &TxnResult, op: TxnKind, amount: u64) -> Result<(), String> {
    if t.kind != Some(op) {
        return Err(format!("op is {:?}, not {}", t.kind.map(|k| k.as_str()), op.as_str()));
    }
    match t.status {
        TxnStatus::Paid | TxnStatus::Refunded => {
            if t.status == TxnStatus::Paid && t.channel.is_none() {
                return Err("PAID without channel (§4.5)".into());
            }
            if t.pay_order_no.as_deref().unwrap_or("").is_empty() {
                return Err(format!("{} without pay_no (§4.5)", t.status.as_str()));
            }
            if t.amount_fen != Some(amount) {
                return Err(format!("amount is {:?}, the request said {amount} (§4.5.1)", t.amount_fen));
            }
        }
        _ => {}
    }
    if let Some(time) = &t.time {
        if !is_time(time) {
            return Err(format!("time {time:?} is not YYYYMMDDhhmmss"));
        }
    }
    Ok(())
}

/// What the clauses share: the references made and what the POS said of them.
struct Run {
    a: PosCheckArgs,
    w: Wire,
    prefix: String,
    paid: Option<TxnResult>,
    held: Option<String>,
    refund: Option<TxnResult>,
    /// The collection of the lost-RESULT clause was paid.
    lost_paid: bool,
}

/// Why a clause did not pass: it failed, or it could not run because one before it failed.
struct Failure {
    needs: bool,
    why: String,
}

impl From<String> for Failure {
    fn from(why: String) -> Self {
        Failure { needs: false, why }
    }
}

impl From<&str> for Failure {
    fn from(why: &str) -> Self {
        Failure { needs: false, why: why.into() }
    }
}

fn needs(what: &str) -> Failure {
    Failure { needs: true, why: format!("needs {what}, which did not pass") }
}

type Outcome = Result<String, Failure>;

impl Run {
    fn r(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn ping(&mut self) -> Outcome {
        let resends = self.w.command("PING")?;
        if resends > 0 {
            return Err(format!("the PING needed {resends} re-send(s) before its ACK (ACK within 300 ms, §3.1)").into());
        }
        self.w.reply(ACK_WINDOW * 4, &mut Vec::new(), |r| *r == Reply::Pong)?;
        Ok("ACK within 300 ms, then PONG".into())
    }

    fn bad_lrc(&mut self) -> Outcome {
        let mut bytes = self.w.frame_bytes("PING");
        let n = bytes.len();
        bytes[n - 1] ^= 0xFF;
        self.w.write(&bytes);
        match self.w.next_signal(ACK_WINDOW) {
            Some(Token::Nak) => {}
            other => return Err(format!("answered {other:?}, not NAK").into()),
        }
        self.w.idle(Duration::from_millis(300));
        if let Some((_, p)) = self.w.inbox.pop_front() {
            return Err(format!("acted on a broken frame: {:?}", String::from_utf8_lossy(&p)).into());
        }
        Ok("NAK, nothing acted on".into())
    }

    fn empty(&mut self) -> Outcome {
        self.w.write(&[frame::STX, 0, 0, frame::ETX, frame::ETX]);
        match self.w.next_signal(ACK_WINDOW) {
            Some(Token::Nak) => Ok("NAK".into()),
            other => Err(format!("answered {other:?}, not NAK").into()),
        }
    }

    fn stray(&mut self) -> Outcome {
        self.w.write(b"\r\nAT\r\n\xff");
        self.w.idle(Duration::from_millis(100));
        self.ping()?;
        Ok("skipped silently; the next frame was answered".into())
    }

    fn duplicate(&mut self) -> Outcome {
        let bytes = self.w.frame_bytes("PING");
        self.w.send_frame(&bytes)?;
        // Our ACK was "lost": the same bytes again.
        self.w.write(&bytes);
        match self.w.next_signal(ACK_WINDOW) {
            Some(Token::Ack) => {}
            other => return Err(format!("the repeated frame got {other:?}, not ACK (§3.3)").into()),
        }
        self.w.idle(Duration::from_millis(500));
        let pongs =
            self.w.inbox.drain(..).filter(|(_, p)| split_seq(p).map(|(_, b)| b == b"PONG").unwrap_or(false)).count();
        match pongs {
            1 => Ok("ACKed twice, acted on once".into()),
            n => Err(format!("{n} PONGs for one PING sent twice (§3.3: a duplicate is not acted on)").into()),
        }
    }

    fn pos_resends(&mut self) -> Outcome {
        self.w.auto_ack = false;
        let out = (|| -> Outcome {
            self.w.command("PING")?;
            let until = Instant::now() + Duration::from_millis(2500);
            let mut copies = Vec::new();
            while Instant::now() < until {
                let _ = self.w.next_signal(Duration::from_millis(50));
                copies.extend(self.w.inbox.drain(..).map(|(_, p)| p));
            }
            // The deframer sees each copy; `on_frame` counted the identical ones as duplicates.
            let resends = self.w.duplicates;
            if copies.len() != 1 {
                return Err(format!(
                    "{} different frames for one PONG: a re-send must be identical (§3.2)",
                    copies.len()
                )
                .into());
            }
            match resends {
                3 => Ok("an unacknowledged frame is sent again 3 times, identical, then given up".to_string()),
                n => Err(format!("re-sent {n} times without ACK; §3.2 says 3, identical").into()),
            }
        })();
        self.w.auto_ack = true;
        self.w.duplicates = 0;
        out
    }

    fn hello(&mut self) -> Outcome {
        self.w.command("HELLO|proto=1")?;
        let r = self.w.reply(Duration::from_secs(2), &mut Vec::new(), |r| matches!(r, Reply::Hello { .. }))?;
        let Reply::Hello { device_id, version, .. } = r else { unreachable!() };
        let ok = (1..=32).contains(&device_id.len())
            && device_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(format!("device {device_id:?} is not 1-32 of A-Z a-z 0-9 _ - (§4.3)").into());
        }
        if version.is_empty() {
            return Err("ver is empty (§4.3)".into());
        }
        if let Some(want) = &self.a.device_id {
            if *want != device_id {
                return Err(format!("device is {device_id:?}, this POS should be {want:?}").into());
            }
        }
        Ok(format!("device {device_id}, ver {version}"))
    }

    fn info(&mut self) -> Outcome {
        self.w.command("INFO")?;
        let r = self.w.reply(Duration::from_secs(2), &mut Vec::new(), |r| matches!(r, Reply::Info { .. }))?;
        let Reply::Info { time, .. } = r else { unreachable!() };
        if !is_time(&time) {
            return Err(format!("time {time:?} is not YYYYMMDDhhmmss (§4.3)").into());
        }
        Ok(format!("time {time}"))
    }

    fn unknown_command(&mut self) -> Outcome {
        self.w.command("FROBNICATE|x=1")?;
        self.w.reply(Duration::from_secs(2), &mut Vec::new(), |r| matches!(r, Reply::Error { .. }))?;
        Ok("ERROR".into())
    }

    fn sale(&mut self) -> Outcome {
        let reference = self.r("P.1");
        if self.a.pay_fen > 0 && !self.a.json {
            eprintln!("pos-check: pay {:.2} yuan on the POS now (a test payment code)", self.a.pay_fen as f64 / 100.0);
        }
        self.w.command(&format!("SALE|ref={reference}|amount={}|desc=pos-check", self.a.pay_fen))?;
        let mut seen = Vec::new();
        let t = as_result(self.w.reply(Duration::from_secs(self.a.pay_secs), &mut seen, result_for(&reference))?);
        let waited = seen.iter().any(|r| matches!(r, Reply::Event { reference: x, .. } if *x == reference));
        if t.status != TxnStatus::Paid {
            return Err(format!(
                "status {} (code {:?}), not PAID: pay the amount at the POS",
                t.status.as_str(),
                t.code
            )
            .into());
        }
        check_final(&t, TxnKind::Sale, self.a.pay_fen)?;
        self.paid = Some(t);
        Ok(format!("PAID with the required fields{}", if waited { ", after EVENT" } else { "" }))
    }

    fn paid(&self) -> Result<TxnResult, Failure> {
        self.paid.clone().ok_or_else(|| needs("the paid collection of §4.2 SALE"))
    }

    fn same_ref(&mut self) -> Outcome {
        let p = self.paid()?;
        self.w.command(&format!("SALE|ref={}|amount={}|desc=pos-check", p.reference, self.a.pay_fen))?;
        let mut seen = Vec::new();
        let t = as_result(self.w.reply(Duration::from_secs(5), &mut seen, result_for(&p.reference))?);
        if t.status != p.status || t.pay_order_no != p.pay_order_no {
            return Err(format!(
                "answered {} {:?}, not the first RESULT {} {:?} (§4.2: a ref is executed at most once)",
                t.status.as_str(),
                t.pay_order_no,
                p.status.as_str(),
                p.pay_order_no
            )
            .into());
        }
        if seen.iter().any(|r| matches!(r, Reply::Event { reference, .. } if *reference == p.reference)) {
            return Err("started the transaction again (EVENT for a finished ref)".into());
        }
        Ok("the same RESULT, nothing started".into())
    }

    fn query_paid(&mut self) -> Outcome {
        let p = self.paid()?;
        let t = self.query(&p.reference)?;
        if t.status != p.status || t.pay_order_no != p.pay_order_no || t.amount_fen != p.amount_fen {
            return Err(format!("QUERY says {t:?}, the RESULT said {p:?}").into());
        }
        check_final(&t, TxnKind::Sale, self.a.pay_fen)?;
        Ok("the RESULT again, from the record".into())
    }

    fn query(&mut self, reference: &str) -> Result<TxnResult, String> {
        self.w.command(&format!("QUERY|ref={reference}"))?;
        Ok(as_result(self.w.reply(Duration::from_secs(3), &mut Vec::new(), result_for(reference))?))
    }

    fn not_found(&mut self) -> Outcome {
        let t = self.query(&self.r("NEVER.1"))?;
        match t.status {
            TxnStatus::NotFound => Ok("NOT_FOUND".into()),
            s => Err(format!("status {} for a ref never sent", s.as_str()).into()),
        }
    }

    fn lost_result(&mut self) -> Outcome {
        let reference = self.r("L.1");
        if !self.a.json {
            eprintln!("pos-check: pay {:.2} yuan on the POS again", self.a.pay_fen as f64 / 100.0);
        }
        // The RESULT is never acknowledged: the POS re-sends it and gives up; QUERY must know.
        self.w.hold_ack = Some(format!("RESULT|ref={reference}|").into_bytes());
        self.w.command(&format!("SALE|ref={reference}|amount={}", self.a.pay_fen))?;
        let mut seen = Vec::new();
        let got = self.w.reply(Duration::from_secs(self.a.pay_secs), &mut seen, result_for(&reference));
        let first = match got {
            Ok(r) => as_result(r),
            Err(e) => {
                self.w.hold_ack = None;
                return Err(e.into());
            }
        };
        self.w.idle(Duration::from_millis(2000));
        self.w.hold_ack = None;
        if first.status == TxnStatus::Paid {
            check_final(&first, TxnKind::Sale, self.a.pay_fen)?;
            self.lost_paid = true;
        }
        self.w.inbox.clear();
        self.w.last_rx = None;
        self.w.duplicates = 0;
        let t = self.query(&reference)?;
        if t.status != first.status || t.pay_order_no != first.pay_order_no {
            return Err(format!("QUERY says {t:?} after the lost RESULT {first:?}").into());
        }
        Ok(format!("QUERY after a lost RESULT: {}", t.status.as_str()))
    }

    fn busy(&mut self) -> Outcome {
        let held = self.r("H.1");
        self.w.command(&format!("SALE|ref={held}|amount={}", self.a.hold_fen))?;
        self.held = Some(held.clone());
        self.w.idle(Duration::from_millis(100));
        let other = self.r("B.1");
        self.w.command(&format!("SALE|ref={other}|amount={}", self.a.pay_fen))?;
        let r = self.w.reply(Duration::from_secs(3), &mut Vec::new(), |r| {
            matches!(r, Reply::Busy { .. }) || matches!(r, Reply::Result(t) if t.reference == other)
        })?;
        match r {
            Reply::Busy { reference, current } if reference == other && current == held => {}
            other => return Err(format!("answered {other:?}, not BUSY|ref=<second>|current=<running> (§4.2)").into()),
        }
        let refund = format!("{}@R9.1", self.r("B"));
        self.w.command(&format!("REFUND|ref={refund}|orig={}|amount=1", self.r("B.1")))?;
        match self.w.reply(Duration::from_secs(3), &mut Vec::new(), |r| {
            matches!(r, Reply::Busy { .. }) || matches!(r, Reply::Result(t) if t.reference == refund)
        })? {
            Reply::Busy { reference, current } if reference == refund && current == held => {}
            other => return Err(format!("a REFUND while a SALE runs got {other:?}, not BUSY (§4.2)").into()),
        }
        let t = self.query(&held)?;
        if t.status != TxnStatus::InProgress || t.kind != Some(TxnKind::Sale) {
            return Err(format!("QUERY of the running SALE says {t:?}, not IN_PROGRESS op=SALE").into());
        }
        self.ping().map_err(|e| format!("PING while a transaction runs: {}", e.why))?;
        Ok("a second SALE and a REFUND get BUSY naming the running ref; QUERY IN_PROGRESS and PING answered".into())
    }

    fn cancel(&mut self) -> Outcome {
        let held = self.held.clone().ok_or_else(|| needs("the running SALE of §4.2 BUSY"))?;
        self.w.command(&format!("CANCEL|ref={held}"))?;
        let t = as_result(self.w.reply(Duration::from_secs(10), &mut Vec::new(), result_for(&held))?);
        if t.status != TxnStatus::Cancelled || t.kind != Some(TxnKind::Sale) {
            return Err(format!("the CANCEL's RESULT is {t:?}, not CANCELLED op=SALE").into());
        }
        let q = self.query(&held)?;
        if q.status != TxnStatus::Cancelled {
            return Err(format!("QUERY after CANCEL says {}", q.status.as_str()).into());
        }
        let busy_ref = self.r("B.1");
        let b = self.query(&busy_ref)?;
        if b.status != TxnStatus::NotFound {
            return Err(format!("the SALE refused with BUSY has a record ({}); §4.5.3: none", b.status.as_str()).into());
        }
        Ok("CANCELLED op=SALE, kept; the refused SALE has no record".into())
    }

    fn refund(&mut self) -> Outcome {
        let p = self.paid()?;
        let reference = format!("{}@R1.1", p.reference.trim_end_matches(".1"));
        self.w.command(&format!("REFUND|ref={reference}|orig={}|amount={}", p.reference, self.a.pay_fen))?;
        let t = as_result(self.w.reply(Duration::from_secs(30), &mut Vec::new(), result_for(&reference))?);
        if t.status != TxnStatus::Refunded {
            return Err(format!("status {} (code {:?}), not REFUNDED", t.status.as_str(), t.code).into());
        }
        check_final(&t, TxnKind::Refund, self.a.pay_fen)?;
        let q = self.query(&reference)?;
        if q.status != TxnStatus::Refunded || q.pay_order_no != t.pay_order_no {
            return Err(format!("the confirming QUERY says {q:?} (§5.5)").into());
        }
        self.refund = Some(t);
        Ok("REFUNDED with pay_no and amount, confirmed by QUERY".into())
    }

    fn refund_too_much(&mut self) -> Outcome {
        let p = self.paid()?;
        self.refund.as_ref().ok_or_else(|| needs("the refund of §4.2 REFUND"))?;
        let reference = format!("{}@R2.1", p.reference.trim_end_matches(".1"));
        self.w.command(&format!("REFUND|ref={reference}|orig={}|amount=1", p.reference))?;
        let t = as_result(self.w.reply(Duration::from_secs(30), &mut Vec::new(), result_for(&reference))?);
        if t.status != TxnStatus::Failed || t.kind != Some(TxnKind::Refund) {
            return Err(format!("refunding more than was paid gave {t:?}, not FAILED op=REFUND").into());
        }
        Ok(format!("FAILED op=REFUND, code {}", t.code.as_deref().unwrap_or("-")))
    }

    fn cancel_paid(&mut self) -> Outcome {
        let reference = self.r("V.1");
        if !self.a.json {
            eprintln!(
                "pos-check: pay {:.2} yuan on the POS once more (it will be reversed)",
                self.a.pay_fen as f64 / 100.0
            );
        }
        self.w.command(&format!("SALE|ref={reference}|amount={}", self.a.pay_fen))?;
        let t =
            as_result(self.w.reply(Duration::from_secs(self.a.pay_secs), &mut Vec::new(), result_for(&reference))?);
        if t.status != TxnStatus::Paid {
            return Err(format!("status {}, not PAID", t.status.as_str()).into());
        }
        check_final(&t, TxnKind::Sale, self.a.pay_fen)?;
        self.w.command(&format!("CANCEL|ref={reference}"))?;
        let c = as_result(self.w.reply(Duration::from_secs(30), &mut Vec::new(), result_for(&reference))?);
        if c.status != TxnStatus::Reversed || c.kind != Some(TxnKind::Sale) {
            return Err(format!("CANCEL of a paid SALE gave {c:?}, not REVERSED op=SALE").into());
        }
        let q = self.query(&reference)?;
        if q.status != TxnStatus::Reversed {
            return Err(format!("QUERY after the reversal says {}", q.status.as_str()).into());
        }
        Ok("REVERSED op=SALE, kept".into())
    }

    fn totals(&mut self) -> Outcome {
        // The day of the POS's own clock (§4.6): asked by INFO, so a PC in another time zone
        // asks for the day the POS booked this run's transactions on.
        self.w.command("INFO")?;
        let info = self.w.reply(Duration::from_secs(2), &mut Vec::new(), |r| matches!(r, Reply::Info { .. }))?;
        let Reply::Info { time, .. } = info else { unreachable!() };
        let date = time.get(..8).unwrap_or_default().to_string();
        self.w.command(&format!("TOTALS|date={date}"))?;
        let r = self.w.reply(Duration::from_secs(10), &mut Vec::new(), |r| matches!(r, Reply::Totals(_)))?;
        let Reply::Totals(t) = r else { unreachable!() };
        if t.date != date {
            return Err(format!("TOTALS for {}, asked for {date}", t.date).into());
        }
        // This run's own business is in them: the collection of §4.2 SALE and the one of §3.2
        // stand (the reversed one does not), and the refund of §4.2 REFUND is done.
        let sales: u64 = t.lines.iter().map(|l| l.sales).sum();
        let sales_fen: u64 = t.lines.iter().map(|l| l.sales_fen).sum();
        let refunds: u64 = t.lines.iter().map(|l| l.refunds).sum();
        let refunds_fen: u64 = t.lines.iter().map(|l| l.refunds_fen).sum();
        let (want_sales, want_refunds) = (
            [self.paid.is_some(), self.lost_paid].iter().filter(|b| **b).count() as u64,
            u64::from(self.refund.is_some()),
        );
        if sales < want_sales || sales_fen < want_sales * self.a.pay_fen {
            return Err(format!(
                "TOTALS count {sales} collections ({sales_fen} fen); this run alone left {want_sales} of {} fen standing",
                self.a.pay_fen
            )
            .into());
        }
        if refunds < want_refunds || refunds_fen < want_refunds * self.a.pay_fen {
            return Err(
                format!("TOTALS count {refunds} refunds ({refunds_fen} fen); this run made {want_refunds}").into()
            );
        }
        Ok(format!("{date}: {} channel(s), this run's collections and refund included", t.lines.len()))
    }

    fn restart(&mut self) -> Outcome {
        let Some(cmd) = self.a.restart.clone() else { return Ok("skip".into()) };
        let p = self.paid()?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .status()
            .map_err(|e| format!("--restart {cmd:?}: {e}"))?;
        if !status.success() {
            return Err(format!("--restart {cmd:?} exited with {status}").into());
        }
        // A new line: the POS may be back on another port, its frames numbered anew.
        let (log, start) = (std::mem::take(&mut self.w.log), self.w.start);
        self.w.close();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let answered = open_wire(&self.a).map_err(|e| e.to_string()).and_then(|mut w| {
                w.command("HELLO|proto=1")?;
                w.reply(Duration::from_secs(2), &mut Vec::new(), |r| matches!(r, Reply::Hello { .. }))?;
                Ok(w)
            });
            match answered {
                Ok(w) => {
                    self.w = w;
                    break;
                }
                Err(e) if Instant::now() >= until => {
                    return Err(format!("no HELLO within 30 s of the restart: {e}").into())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        let mut log = log;
        let offset = self.w.start.duration_since(start);
        log.extend(self.w.log.drain(..).map(|(t, d, b)| (t + offset, d, b)));
        self.w.log = log;
        self.w.start = start;
        let q = self.query(&p.reference)?;
        if q.status != p.status || q.pay_order_no != p.pay_order_no {
            return Err(format!("after the restart QUERY says {q:?}, before it {p:?} (§4.1)").into());
        }
        if let Some(held) = self.held.clone() {
            let h = self.query(&held)?;
            if h.status != TxnStatus::Cancelled {
                return Err(format!("after the restart the cancelled SALE is {}", h.status.as_str()).into());
            }
        }
        self.same_ref().map_err(|e| format!("after the restart: {}", e.why))?;
        Ok("records kept across the restart; a finished ref is not executed again".into())
    }
}

type Clause = (&'static str, &'static str, fn(&mut Run) -> Outcome);

const CLAUSES: &[Clause] = &[
    ("§2 §3.1 frame", "a frame is ACKed within 300 ms and answered", Run::ping),
    ("§2.4 bad LRC", "a frame with a wrong LRC gets NAK and is not acted on", Run::bad_lrc),
    ("§2.4 empty", "a frame with LEN 0 gets NAK", Run::empty),
    ("§2.4 stray bytes", "bytes outside a frame are skipped silently", Run::stray),
    ("§3.3 duplicate", "a frame received twice is ACKed twice and acted on once", Run::duplicate),
    ("§3.2 re-send", "an unacknowledged frame is re-sent identical, 3 times", Run::pos_resends),
    ("§5.1 HELLO", "HELLO is answered with the device ID and version", Run::hello),
    ("§4.3 INFO", "INFO is answered with the POS clock", Run::info),
    ("§4.3 ERROR", "a command the POS does not know gets ERROR", Run::unknown_command),
    ("§4.2 SALE", "a collection ends with RESULT PAID and its fields", Run::sale),
    ("§4.2 same ref", "a SALE with a finished ref gets the same RESULT, nothing new", Run::same_ref),
    ("§4.1 QUERY", "QUERY answers a finished ref from the record", Run::query_paid),
    ("§4.5 NOT_FOUND", "QUERY of an unknown ref answers NOT_FOUND", Run::not_found),
    ("§3.2 lost RESULT", "a RESULT never acknowledged is found by QUERY", Run::lost_result),
    ("§4.2 BUSY", "a SALE or REFUND while one runs gets BUSY; QUERY and PING still answered", Run::busy),
    ("§4.2 CANCEL", "CANCEL of a running SALE gives CANCELLED", Run::cancel),
    ("§4.2 REFUND §5.5", "a refund gives REFUNDED, confirmed by QUERY", Run::refund),
    ("§4.5 refund failure", "refunding more than was paid gives FAILED op=REFUND", Run::refund_too_much),
    ("§4.2 CANCEL paid", "CANCEL of a paid SALE gives REVERSED", Run::cancel_paid),
    ("§4.6 TOTALS", "TOTALS answers the POS day's totals, this run's business in them", Run::totals),
    ("§4.1 restart", "after a restart of the POS app its records answer QUERY", Run::restart),
];

pub fn run(a: PosCheckArgs) -> Result<()> {
    let w = open_wire(&a)?;
    let prefix = a.prefix.clone().unwrap_or_else(|| format!("CHK{}", chrono::Local::now().format("%H%M%S")));
    let mut run = Run { a: a.clone(), w, prefix, paid: None, held: None, refund: None, lost_paid: false };
    let mut reports = Vec::new();
    if !a.json {
        println!("pos-check {} ({}), references {}*", a.port, a.transport, run.prefix);
    }
    for (clause, title, f) in CLAUSES {
        let from = run.w.log.len();
        // Each clause starts on a quiet line with a clean link state.
        run.w.idle(Duration::from_millis(50));
        run.w.inbox.clear();
        let outcome = f(&mut run);
        let (verdict, detail) = match outcome {
            Ok(d) if d == "skip" => (Verdict::Skip, "no --restart command given".to_string()),
            Ok(d) => (Verdict::Pass, d),
            Err(Failure { needs: true, why }) => (Verdict::Skip, why),
            Err(Failure { why, .. }) => (Verdict::Fail, why),
        };
        let bytes = if verdict == Verdict::Fail || a.bytes { run.w.transcript(from) } else { Vec::new() };
        if !a.json {
            println!(
                "{}  {:<22} {}: {}",
                match verdict {
                    Verdict::Pass => "PASS",
                    Verdict::Fail => "FAIL",
                    Verdict::Skip => "SKIP",
                },
                clause,
                title,
                detail
            );
            for b in &bytes {
                println!("        {b}");
            }
        }
        reports.push(ClauseReport { clause, title, verdict, detail, bytes });
        if run.w.lost.is_some() {
            break;
        }
    }
    let failed = reports.iter().filter(|r| r.verdict == Verdict::Fail).count();
    let passed = reports.iter().filter(|r| r.verdict == Verdict::Pass).count();
    let skipped = reports.iter().filter(|r| r.verdict == Verdict::Skip).count();
    let not_run = CLAUSES.len() - reports.len();
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "clauses": reports, "passed": passed, "failed": failed, "skipped": skipped, "not_run": not_run })
            )?
        );
    } else {
        println!(
            "{passed} passed, {failed} failed, {skipped} skipped{}",
            if not_run > 0 { format!(", {not_run} not run (link lost)") } else { String::new() }
        );
    }
    if failed > 0 || not_run > 0 {
        let f = crate::exit::Failure::new(
            crate::exit::Exit::Refused,
            format!(
                "the POS fails {failed} clause(s){}",
                if not_run > 0 { format!("; {not_run} not run") } else { String::new() }
            ),
        );
        return Err(if a.json { f.silent() } else { f }.into());
    }
    Ok(())
}
