//! Link layer (docs/pos-protocol.md §3): stop-and-wait with ACK/NAK, re-send of the identical
//! frame on NAK or silence, duplicate suppression by sequence number and content.
//!
//! Sans-IO: [`Link::handle_input`] and [`Link::handle_timeout`] take bytes and `now`;
//! [`Link::poll_transmit`], [`Link::poll_event`] and [`Link::poll_timeout`] hand back bytes to
//! write, events and the next deadline. Both ends of the line use the same type.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::frame::{self, Deframer, FrameError, Token, ACK, NAK};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// How long to wait for ACK/NAK before sending the same frame again.
    pub ack_timeout: Duration,
    /// How many times a frame is re-sent before the link reports failure.
    pub max_retries: u32,
    /// The time one byte takes on the line (10 bits at the baud rate; zero on USB): the ACK
    /// timeout counts from the end of the frame's transmission, and a frame being received
    /// gets its transmission time on top of the 500 ms window (docs/pos-protocol.md §2.3, §3.2).
    pub byte_time: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self { ack_timeout: Duration::from_millis(300), max_retries: 3, byte_time: Duration::ZERO }
    }
}

impl LinkConfig {
    /// The byte time of a serial line at `baud` (8N1: 10 bits a byte).
    pub fn byte_time_at(baud: u32) -> Duration {
        Duration::from_nanos(10_000_000_000 / u64::from(baud.max(1)))
    }

    fn ack_deadline(&self, now: Instant, frame_len: usize) -> Instant {
        now + self.ack_timeout + self.byte_time * frame_len as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A new payload from the peer (sequence number stripped).
    Received(Vec<u8>),
    /// The peer acknowledged the frame with this sequence number.
    Delivered { seq: u16 },
    /// The frame went unacknowledged after every retry; `payload` is what it carried.
    SendFailed { seq: u16, payload: Vec<u8> },
    /// The peer sent the previous frame again (our ACK was lost); acknowledged, not delivered.
    Duplicate { seq: u16 },
    /// A malformed frame was NAKed, or stray bytes were skipped.
    Malformed(FrameError),
    /// A frame whose payload lacks the `SEQ|` prefix was NAKed.
    BadSequence,
}

#[derive(Debug)]
struct Outstanding {
    seq: u16,
    frame: Vec<u8>,
    tries: u32,
    deadline: Instant,
}

#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    deframer: Deframer,
    queue: VecDeque<(u16, Vec<u8>)>,
    outstanding: Option<Outstanding>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    next_seq: u16,
    last_rx: Option<Vec<u8>>,
}

/// Splits `SEQ|rest` into the sequence number and the rest.
pub fn split_seq(payload: &[u8]) -> Option<(u16, &[u8])> {
    if payload.len() < 5 || payload[4] != b'|' || !payload[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let seq = std::str::from_utf8(&payload[..4]).ok()?.parse().ok()?;
    Some((seq, &payload[5..]))
}

impl Link {
    /// `first_seq` should differ between runs (a restarted peer must not look like a duplicate).
    pub fn new(cfg: LinkConfig, first_seq: u16) -> Self {
        Self {
            cfg,
            deframer: Deframer::with_byte_time(cfg.byte_time),
            queue: VecDeque::new(),
            outstanding: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            next_seq: first_seq.clamp(1, 9999),
            last_rx: None,
        }
    }

    /// Queues `payload` for sending and returns its sequence number.
    pub fn send(&mut self, payload: &[u8], now: Instant) -> u16 {
        let seq = self.next_seq;
        self.next_seq = if seq >= 9999 { 1 } else { seq + 1 };
        self.queue.push_back((seq, payload.to_vec()));
        self.pump(now);
        seq
    }

    /// True when nothing waits for an ACK and nothing is queued.
    pub fn is_idle(&self) -> bool {
        self.outstanding.is_none() && self.queue.is_empty()
    }

    fn pump(&mut self, now: Instant) {
        if self.outstanding.is_some() {
            return;
        }
        let Some((seq, payload)) = self.queue.pop_front() else {
            return;
        };
        let mut body = format!("{seq:04}|").into_bytes();
        body.extend_from_slice(&payload);
        match frame::encode(&body) {
            Ok(f) => {
                self.transmit.push_back(f.clone());
                let deadline = self.cfg.ack_deadline(now, f.len());
                self.outstanding = Some(Outstanding { seq, frame: f, tries: 0, deadline });
            }
            Err(_) => self.events.push_back(LinkEvent::SendFailed { seq, payload }),
        }
    }

    fn retransmit(&mut self, now: Instant) {
        let Some(o) = self.outstanding.as_mut() else {
            return;
        };
        if o.tries >= self.cfg.max_retries {
            let o = self.outstanding.take().expect("checked above");
            let payload = split_seq(&o.frame[3..o.frame.len() - 2]).map(|(_, p)| p.to_vec()).unwrap_or_default();
            self.events.push_back(LinkEvent::SendFailed { seq: o.seq, payload });
            self.pump(now);
        } else {
            o.tries += 1;
            o.deadline = self.cfg.ack_deadline(now, o.frame.len());
            self.transmit.push_back(o.frame.clone());
        }
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.deframer.push(bytes, now);
        self.drain_tokens(now);
    }

    fn drain_tokens(&mut self, now: Instant) {
        while let Some(tok) = self.deframer.poll() {
            match tok {
                Token::Ack => {
                    if let Some(o) = self.outstanding.take() {
                        self.events.push_back(LinkEvent::Delivered { seq: o.seq });
                        self.pump(now);
                    }
                }
                Token::Nak => self.retransmit(now),
                Token::Frame(body) => match split_seq(&body) {
                    None => {
                        self.transmit.push_back(vec![NAK]);
                        self.events.push_back(LinkEvent::BadSequence);
                    }
                    Some((seq, payload)) => {
                        self.transmit.push_back(vec![ACK]);
                        if self.last_rx.as_deref() == Some(&body[..]) {
                            self.events.push_back(LinkEvent::Duplicate { seq });
                        } else {
                            self.events.push_back(LinkEvent::Received(payload.to_vec()));
                            self.last_rx = Some(body);
                        }
                    }
                },
                Token::Invalid(e @ FrameError::StrayBytes { .. }) => {
                    self.events.push_back(LinkEvent::Malformed(e));
                }
                Token::Invalid(e) => {
                    self.transmit.push_back(vec![NAK]);
                    self.events.push_back(LinkEvent::Malformed(e));
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.deframer.handle_timeout(now);
        self.drain_tokens(now);
        if self.outstanding.as_ref().is_some_and(|o| now >= o.deadline) {
            self.retransmit(now);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.outstanding.as_ref().map(|o| o.deadline);
        let b = self.deframer.deadline();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Forgets everything in flight (the port was closed); returns the payloads never delivered.
    pub fn reset(&mut self) -> Vec<Vec<u8>> {
        let mut lost = Vec::new();
        if let Some(o) = self.outstanding.take() {
            if let Some((_, p)) = split_seq(&o.frame[3..o.frame.len() - 2]) {
                lost.push(p.to_vec());
            }
        }
        lost.extend(self.queue.drain(..).map(|(_, p)| p));
        self.deframer = Deframer::new();
        self.transmit.clear();
        self.last_rx = None;
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(l: &mut Link) -> (Vec<Vec<u8>>, Vec<LinkEvent>) {
        (std::iter::from_fn(|| l.poll_transmit()).collect(), std::iter::from_fn(|| l.poll_event()).collect())
    }

    #[test]
    fn sends_then_ack() {
        let t = Instant::now();
        let mut l = Link::new(LinkConfig::default(), 7);
        assert_eq!(l.send(b"PING", t), 7);
        let (tx, _) = drain(&mut l);
        assert_eq!(tx, vec![frame::encode(b"0007|PING").unwrap()]);
        l.handle_input(&[ACK], t);
        assert_eq!(drain(&mut l).1, vec![LinkEvent::Delivered { seq: 7 }]);
        assert!(l.is_idle());
    }

    #[test]
    fn resends_identical_frame_on_nak_and_silence_then_gives_up() {
        let t = Instant::now();
        let cfg = LinkConfig::default();
        let mut l = Link::new(cfg, 1);
        l.send(b"QUERY|ref=A.1", t);
        let first = drain(&mut l).0.remove(0);
        l.handle_input(&[NAK], t);
        assert_eq!(drain(&mut l).0, vec![first.clone()]);
        for _ in 0..cfg.max_retries - 1 {
            let now = l.poll_timeout().unwrap();
            l.handle_timeout(now);
            assert_eq!(drain(&mut l).0, vec![first.clone()]);
        }
        let now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        let (tx, ev) = drain(&mut l);
        assert!(tx.is_empty());
        assert_eq!(ev, vec![LinkEvent::SendFailed { seq: 1, payload: b"QUERY|ref=A.1".to_vec() }]);
        assert!(l.is_idle());
    }

    #[test]
    fn acks_and_drops_duplicates() {
        let t = Instant::now();
        let mut l = Link::new(LinkConfig::default(), 1);
        let f = frame::encode(b"0042|PONG").unwrap();
        l.handle_input(&f, t);
        l.handle_input(&f, t);
        let (tx, ev) = drain(&mut l);
        assert_eq!(tx, vec![vec![ACK], vec![ACK]]);
        assert_eq!(ev, vec![LinkEvent::Received(b"PONG".to_vec()), LinkEvent::Duplicate { seq: 42 }]);
        // Same number, other content: a restarted peer, delivered.
        l.handle_input(&frame::encode(b"0042|HELLO|device=X|ver=1").unwrap(), t);
        assert_eq!(drain(&mut l).1, vec![LinkEvent::Received(b"HELLO|device=X|ver=1".to_vec())]);
    }

    #[test]
    fn naks_corrupt_frames() {
        let t = Instant::now();
        let mut l = Link::new(LinkConfig::default(), 1);
        let mut f = frame::encode(b"0001|PONG").unwrap();
        f[6] ^= 1;
        l.handle_input(&f, t);
        let (tx, ev) = drain(&mut l);
        assert_eq!(tx, vec![vec![NAK]]);
        assert!(matches!(ev[0], LinkEvent::Malformed(FrameError::BadChecksum { .. })));
        l.handle_input(&frame::encode(b"PONG").unwrap(), t);
        assert_eq!(drain(&mut l), (vec![vec![NAK]], vec![LinkEvent::BadSequence]));
    }

    #[test]
    fn queues_behind_the_outstanding_frame() {
        let t = Instant::now();
        let mut l = Link::new(LinkConfig::default(), 9999);
        l.send(b"A", t);
        l.send(b"B", t);
        assert_eq!(drain(&mut l).0, vec![frame::encode(b"9999|A").unwrap()]);
        l.handle_input(&[ACK], t);
        assert_eq!(drain(&mut l).0, vec![frame::encode(b"0001|B").unwrap()]);
    }
}
