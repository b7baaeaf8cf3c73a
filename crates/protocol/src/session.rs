//! The bridge's side of a POS session (docs/pos-protocol.md §5): handshake with device check,
//! heartbeat, requests out and replies in. Sans-IO like the link below it.
//!
//! States are named for what they expect: [`State::ExpectHello`] until the POS reports its
//! device ID, then [`State::Ready`]. Silence past the heartbeat timeout drops back to
//! `ExpectHello` and reports [`SessionEvent::LinkLost`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::link::{Link, LinkConfig, LinkEvent};
use crate::message::{PosTotals, Reply, Request, Stage, TxnResult};

pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub link: LinkConfig,
    /// A PING goes out when nothing was sent for this long.
    pub heartbeat_interval: Duration,
    /// Nothing heard from the POS for this long means the link is lost.
    pub heartbeat_timeout: Duration,
    /// How often HELLO is repeated while the POS does not answer.
    pub hello_interval: Duration,
    /// The configured POS device ID; money commands are refused for any other device.
    pub expected_device: Option<String>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            link: LinkConfig::default(),
            heartbeat_interval: Duration::from_secs(2),
            heartbeat_timeout: Duration::from_secs(6),
            hello_interval: Duration::from_secs(2),
            expected_device: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    ExpectHello,
    Ready {
        device_id: String,
        version: String,
        model: String,
    },
    /// The POS answered with a device ID other than the configured one.
    WrongDevice {
        reported: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    Connected {
        device_id: String,
        version: String,
        model: String,
    },
    DeviceMismatch {
        expected: String,
        reported: String,
    },
    Progress {
        reference: String,
        stage: Stage,
    },
    Result(TxnResult),
    Busy {
        reference: String,
        current: String,
    },
    PosError {
        code: String,
        message: String,
    },
    Info {
        device_id: String,
        version: String,
        model: String,
        time: String,
    },
    /// The POS's day totals (answer to TOTALS).
    Totals(PosTotals),
    /// A request never got an ACK after every retry: whether the POS acted on it is unknown.
    SendFailed(Request),
    /// The POS acknowledged a SALE or REFUND frame: it has received that transaction, so a
    /// later "not found" for it contradicts the POS's own word.
    Delivered {
        reference: String,
    },
    /// Nothing heard from the POS within the heartbeat timeout.
    LinkLost,
    /// Something unreadable arrived; logged, already answered with NAK where the link could.
    Garbled(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("POS not connected")]
    NotReady,
    #[error("POS reports device {reported}, configured device is {expected}")]
    WrongDevice { expected: String, reported: String },
}

#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    link: Link,
    state: State,
    last_rx: Instant,
    last_tx: Instant,
    events: VecDeque<SessionEvent>,
    pending: Vec<(u16, Request)>,
}

impl Session {
    pub fn new(cfg: SessionConfig, first_seq: u16, now: Instant) -> Self {
        let mut s = Self {
            link: Link::new(cfg.link, first_seq),
            cfg,
            state: State::ExpectHello,
            last_rx: now,
            last_tx: now,
            events: VecDeque::new(),
            pending: Vec::new(),
        };
        s.send(Request::Hello { proto: PROTOCOL_VERSION }, now);
        s
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn device_id(&self) -> Option<&str> {
        match &self.state {
            State::Ready { device_id, .. } => Some(device_id),
            _ => None,
        }
    }

    fn send(&mut self, req: Request, now: Instant) {
        let seq = self.link.send(req.encode().as_bytes(), now);
        self.last_tx = now;
        self.pending.push((seq, req));
    }

    /// Sends a request. Money commands, CANCEL and QUERY need a connected POS with the
    /// configured device ID.
    pub fn request(&mut self, req: Request, now: Instant) -> Result<(), SessionError> {
        match &self.state {
            State::Ready { .. } => {}
            State::WrongDevice { reported } => {
                return Err(SessionError::WrongDevice {
                    expected: self.cfg.expected_device.clone().unwrap_or_default(),
                    reported: reported.clone(),
                })
            }
            State::ExpectHello => return Err(SessionError::NotReady),
        }
        self.send(req, now);
        Ok(())
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.link.handle_input(bytes, now);
        self.drain_link(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
        self.drain_link(now);
        let silent = now.saturating_duration_since(self.last_rx);
        match self.state {
            State::Ready { .. } if silent >= self.cfg.heartbeat_timeout => {
                self.state = State::ExpectHello;
                self.events.push_back(SessionEvent::LinkLost);
                self.send(Request::Hello { proto: PROTOCOL_VERSION }, now);
            }
            State::Ready { .. } => {
                if now.saturating_duration_since(self.last_tx) >= self.cfg.heartbeat_interval && self.link.is_idle() {
                    self.send(Request::Ping, now);
                }
            }
            _ => {
                if now.saturating_duration_since(self.last_tx) >= self.cfg.hello_interval && self.link.is_idle() {
                    self.send(Request::Hello { proto: PROTOCOL_VERSION }, now);
                }
            }
        }
    }

    pub fn poll_timeout(&self) -> Instant {
        let next = match self.state {
            State::Ready { .. } => {
                (self.last_tx + self.cfg.heartbeat_interval).min(self.last_rx + self.cfg.heartbeat_timeout)
            }
            _ => self.last_tx + self.cfg.hello_interval,
        };
        match self.link.poll_timeout() {
            Some(t) => t.min(next),
            None => next,
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.link.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn drain_link(&mut self, now: Instant) {
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Received(payload) => {
                    self.last_rx = now;
                    match Reply::decode(&payload) {
                        Ok(reply) => self.on_reply(reply),
                        Err(e) => self.events.push_back(SessionEvent::Garbled(e.to_string())),
                    }
                }
                LinkEvent::Delivered { seq } => {
                    self.last_rx = now;
                    if let Some(i) = self.pending.iter().position(|(s, _)| *s == seq) {
                        let (_, req) = self.pending.remove(i);
                        if let Request::Sale { reference, .. } | Request::Refund { reference, .. } = req {
                            self.events.push_back(SessionEvent::Delivered { reference });
                        }
                    }
                }
                LinkEvent::SendFailed { seq, .. } => {
                    if let Some(i) = self.pending.iter().position(|(s, _)| *s == seq) {
                        let (_, req) = self.pending.remove(i);
                        if !matches!(req, Request::Ping | Request::Hello { .. }) {
                            self.events.push_back(SessionEvent::SendFailed(req));
                        }
                    }
                }
                LinkEvent::Duplicate { .. } => self.last_rx = now,
                LinkEvent::Malformed(e) => self.events.push_back(SessionEvent::Garbled(e.to_string())),
                LinkEvent::BadSequence => {
                    self.events.push_back(SessionEvent::Garbled("frame without sequence number".into()))
                }
            }
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let ev = match reply {
            Reply::Hello { device_id, version, model } => {
                if let Some(expected) = self.cfg.expected_device.clone().filter(|e| *e != device_id) {
                    self.state = State::WrongDevice { reported: device_id.clone() };
                    SessionEvent::DeviceMismatch { expected, reported: device_id }
                } else {
                    let was_ready = matches!(&self.state, State::Ready { device_id: d, .. } if *d == device_id);
                    self.state =
                        State::Ready { device_id: device_id.clone(), version: version.clone(), model: model.clone() };
                    if was_ready {
                        return;
                    }
                    SessionEvent::Connected { device_id, version, model }
                }
            }
            Reply::Pong => return,
            Reply::Info { device_id, version, model, time } => SessionEvent::Info { device_id, version, model, time },
            Reply::Event { reference, stage } => SessionEvent::Progress { reference, stage },
            Reply::Result(r) => SessionEvent::Result(r),
            Reply::Busy { reference, current } => SessionEvent::Busy { reference, current },
            Reply::Error { code, message } => SessionEvent::PosError { code, message },
            Reply::Totals(t) => SessionEvent::Totals(t),
        };
        self.events.push_back(ev);
    }

    /// The port was closed: forget the link state, start a new handshake, and return the
    /// requests that may or may not have reached the POS.
    pub fn reset(&mut self, now: Instant) -> Vec<Request> {
        self.link.reset();
        let lost: Vec<Request> = self
            .pending
            .drain(..)
            .map(|(_, r)| r)
            .filter(|r| !matches!(r, Request::Ping | Request::Hello { .. }))
            .collect();
        if !matches!(self.state, State::ExpectHello) {
            self.events.push_back(SessionEvent::LinkLost);
        }
        self.state = State::ExpectHello;
        self.last_rx = now;
        self.send(Request::Hello { proto: PROTOCOL_VERSION }, now);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, ACK};

    /// Feeds one POS reply frame (with ACK of whatever was outstanding first).
    fn pos_says(s: &mut Session, seq: u16, text: &str, now: Instant) {
        s.handle_input(&[ACK], now);
        s.handle_input(&frame::encode(format!("{seq:04}|{text}").as_bytes()).unwrap(), now);
    }

    fn events(s: &mut Session) -> Vec<SessionEvent> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn tx(s: &mut Session) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn cfg(expected: Option<&str>) -> SessionConfig {
        SessionConfig { expected_device: expected.map(Into::into), ..SessionConfig::default() }
    }

    #[test]
    fn handshake_then_sale_then_result() {
        let t = Instant::now();
        let mut s = Session::new(cfg(Some("POS-1")), 1, t);
        assert_eq!(tx(&mut s), vec![frame::encode(b"0001|HELLO|proto=1").unwrap()]);
        assert_eq!(s.request(Request::Ping, t), Err(SessionError::NotReady));
        pos_says(&mut s, 1, "HELLO|device=POS-1|ver=2.0|model=SIM", t);
        assert_eq!(tx(&mut s), vec![vec![ACK]]);
        assert_eq!(
            events(&mut s),
            vec![SessionEvent::Connected { device_id: "POS-1".into(), version: "2.0".into(), model: "SIM".into() }]
        );
        let sale = Request::Sale { reference: "A.1".into(), amount_fen: 100, description: None };
        s.request(sale, t).unwrap();
        assert_eq!(tx(&mut s), vec![frame::encode(b"0002|SALE|ref=A.1|amount=100").unwrap()]);
        pos_says(&mut s, 2, "EVENT|ref=A.1|stage=WAIT_SCAN", t);
        pos_says(&mut s, 3, "RESULT|ref=A.1|op=SALE|status=PAID|channel=ALIPAY|pay_no=X|amount=100", t);
        let ev = events(&mut s);
        assert_eq!(ev[0], SessionEvent::Delivered { reference: "A.1".into() }, "the POS acknowledged the SALE");
        assert_eq!(ev[1], SessionEvent::Progress { reference: "A.1".into(), stage: Stage::WaitScan });
        assert!(matches!(&ev[2], SessionEvent::Result(r) if r.pay_order_no.as_deref() == Some("X")));
    }

    #[test]
    fn wrong_device_refuses_money_commands() {
        let t = Instant::now();
        let mut s = Session::new(cfg(Some("POS-1")), 1, t);
        pos_says(&mut s, 1, "HELLO|device=POS-9|ver=2.0", t);
        assert_eq!(
            events(&mut s),
            vec![SessionEvent::DeviceMismatch { expected: "POS-1".into(), reported: "POS-9".into() }]
        );
        let sale = Request::Sale { reference: "A.1".into(), amount_fen: 100, description: None };
        assert_eq!(
            s.request(sale, t),
            Err(SessionError::WrongDevice { expected: "POS-1".into(), reported: "POS-9".into() })
        );
    }

    #[test]
    fn heartbeat_and_link_loss() {
        let t = Instant::now();
        let c = cfg(None);
        let mut s = Session::new(c.clone(), 1, t);
        pos_says(&mut s, 1, "HELLO|device=P|ver=1", t);
        events(&mut s);
        tx(&mut s);
        let t1 = s.poll_timeout();
        assert_eq!(t1, t + c.heartbeat_interval);
        s.handle_timeout(t1);
        assert_eq!(tx(&mut s), vec![frame::encode(b"0002|PING").unwrap()]);
        // The POS never answers: retries, then the heartbeat timeout ends the session.
        loop {
            let now = s.poll_timeout();
            s.handle_timeout(now);
            if now >= t + c.heartbeat_timeout {
                break;
            }
        }
        assert!(events(&mut s).contains(&SessionEvent::LinkLost));
        assert_eq!(s.state(), &State::ExpectHello);
    }

    #[test]
    fn unacknowledged_sale_is_reported_not_resent_as_new() {
        let t = Instant::now();
        let mut s = Session::new(cfg(None), 1, t);
        pos_says(&mut s, 1, "HELLO|device=P|ver=1", t);
        events(&mut s);
        tx(&mut s);
        let sale = Request::Sale { reference: "A.1".into(), amount_fen: 100, description: None };
        s.request(sale.clone(), t).unwrap();
        let frames = {
            let mut all = tx(&mut s);
            for _ in 0..3 {
                let now = s.poll_timeout();
                s.handle_timeout(now);
                all.extend(tx(&mut s));
            }
            all
        };
        // Four copies of one identical frame, never a second sequence number.
        assert_eq!(frames.len(), 4);
        assert!(frames.windows(2).all(|w| w[0] == w[1]));
        let now = s.poll_timeout();
        s.handle_timeout(now);
        assert!(events(&mut s).contains(&SessionEvent::SendFailed(sale)));
    }
}
