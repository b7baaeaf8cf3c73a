//! Frame codec (docs/pos-protocol.md §2).
//!
//! ```text
//! STX | LEN_HI | LEN_LO | PAYLOAD (LEN bytes) | ETX | LRC
//! LRC = XOR of every byte from LEN_HI to ETX inclusive
//! ```
//! Outside a frame the single bytes ACK (0x06) and NAK (0x15) travel on their own.
//! The deframer is sans-IO: bytes and `now` in, tokens and a deadline out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
/// Largest payload a frame may carry (§2.1).
pub const MAX_PAYLOAD: usize = 1024;
/// A frame must complete within this time of its STX, or it is dropped as truncated (§2.3).
pub const INTER_BYTE_TIMEOUT: Duration = Duration::from_millis(500);

/// A malformed frame, reported once per occurrence; the link layer answers NAK.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame check failed: computed LRC {computed:#04x}, frame carries {carried:#04x}")]
    BadChecksum { computed: u8, carried: u8 },
    #[error("byte {found:#04x} where ETX was expected")]
    MissingEtx { found: u8 },
    #[error("declared length {len} exceeds the maximum of {MAX_PAYLOAD}")]
    TooLong { len: usize },
    #[error("frame with an empty payload")]
    EmptyPayload,
    #[error("frame cut short: {have} of {want} bytes arrived before the inter-byte timeout")]
    Truncated { have: usize, want: usize },
    #[error("{count} stray byte(s) outside any frame")]
    StrayBytes { count: usize },
}

/// What the deframer recognised on the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Ack,
    Nak,
    Frame(Vec<u8>),
    Invalid(FrameError),
}

/// Longitudinal redundancy check over `bytes`.
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |acc, b| acc ^ b)
}

/// Encodes one payload as a frame. Panics never; rejects empty and oversized payloads.
pub fn encode(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    if payload.is_empty() {
        return Err(FrameError::EmptyPayload);
    }
    if payload.len() > MAX_PAYLOAD {
        return Err(FrameError::TooLong { len: payload.len() });
    }
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(STX);
    out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(ETX);
    out.push(lrc(&out[1..]));
    Ok(out)
}

/// Splits a byte stream into tokens. Feed bytes with [`Deframer::push`], take tokens with
/// [`Deframer::poll`], and call [`Deframer::handle_timeout`] at [`Deframer::deadline`].
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    started: Option<Instant>,
    /// The time a byte takes on the line: a frame gets its transmission time on top of the window.
    byte_time: Duration,
    stray: usize,
    out: VecDeque<Token>,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// A deframer for a line where a byte takes `byte_time` (a serial line's speed): a frame must
    /// be complete within 500 ms plus its own transmission time of its STX.
    pub fn with_byte_time(byte_time: Duration) -> Self {
        Self { byte_time, ..Self::default() }
    }

    pub fn push(&mut self, bytes: &[u8], now: Instant) {
        for &b in bytes {
            self.push_byte(b, now);
        }
        self.flush_stray();
    }

    fn flush_stray(&mut self) {
        if self.stray > 0 {
            self.out.push_back(Token::Invalid(FrameError::StrayBytes { count: self.stray }));
            self.stray = 0;
        }
    }

    fn push_byte(&mut self, b: u8, now: Instant) {
        if self.buf.is_empty() {
            match b {
                STX => {
                    self.flush_stray();
                    self.buf.push(b);
                    self.started = Some(now);
                }
                ACK => {
                    self.flush_stray();
                    self.out.push_back(Token::Ack);
                }
                NAK => {
                    self.flush_stray();
                    self.out.push_back(Token::Nak);
                }
                _ => self.stray += 1,
            }
            return;
        }
        self.buf.push(b);
        if self.buf.len() == 3 {
            let len = u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize;
            if len > MAX_PAYLOAD {
                self.reset();
                self.out.push_back(Token::Invalid(FrameError::TooLong { len }));
            } else if len == 0 {
                // Wait for the ETX/LRC so the whole empty frame is consumed, then report.
            }
            return;
        }
        if self.buf.len() < 3 {
            return;
        }
        let len = u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize;
        let etx_at = 3 + len;
        if self.buf.len() == etx_at + 1 && b != ETX {
            self.reset();
            self.out.push_back(Token::Invalid(FrameError::MissingEtx { found: b }));
            return;
        }
        if self.buf.len() == etx_at + 2 {
            let computed = lrc(&self.buf[1..=etx_at]);
            let token = if computed != b {
                Token::Invalid(FrameError::BadChecksum { computed, carried: b })
            } else if len == 0 {
                Token::Invalid(FrameError::EmptyPayload)
            } else {
                Token::Frame(self.buf[3..etx_at].to_vec())
            };
            self.reset();
            self.out.push_back(token);
        }
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.started = None;
    }

    pub fn poll(&mut self) -> Option<Token> {
        self.out.pop_front()
    }

    /// When a partly received frame must be given up.
    pub fn deadline(&self) -> Option<Instant> {
        let frame_len =
            if self.buf.len() >= 3 { u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize + 5 } else { 5 };
        self.started.map(|t| t + INTER_BYTE_TIMEOUT + self.byte_time * frame_len as u32)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.deadline() {
            if now >= deadline {
                let have = self.buf.len();
                let want = if have >= 3 { u16::from_be_bytes([self.buf[1], self.buf[2]]) as usize + 5 } else { 5 };
                self.reset();
                self.out.push_back(Token::Invalid(FrameError::Truncated { have, want }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(bytes: &[u8]) -> Vec<Token> {
        let mut d = Deframer::new();
        d.push(bytes, Instant::now());
        std::iter::from_fn(|| d.poll()).collect()
    }

    #[test]
    fn encodes_byte_for_byte() {
        // "0001|PING": LEN 0x0009, LRC = 0x00 ^ 0x09 ^ payload ^ 0x03
        let f = encode(b"0001|PING").unwrap();
        assert_eq!(&f[..3], &[STX, 0x00, 0x09]);
        assert_eq!(&f[3..12], b"0001|PING");
        assert_eq!(f[12], ETX);
        assert_eq!(f[13], lrc(&f[1..13]));
        assert_eq!(f, include_bytes!("../tests/fixtures/valid-ping.bin"));
    }

    #[test]
    fn round_trip_split_anywhere() {
        let f = encode("0002|SALE|ref=A.1|amount=1250|desc=门诊".as_bytes()).unwrap();
        for cut in 0..f.len() {
            let mut d = Deframer::new();
            let now = Instant::now();
            d.push(&f[..cut], now);
            d.push(&f[cut..], now);
            let got: Vec<_> = std::iter::from_fn(|| d.poll()).collect();
            assert_eq!(got, vec![Token::Frame(f[3..f.len() - 2].to_vec())], "cut at {cut}");
        }
    }

    #[test]
    fn ack_nak_between_frames() {
        let mut bytes = vec![ACK];
        bytes.extend(encode(b"x").unwrap());
        bytes.push(NAK);
        assert_eq!(tokens(&bytes), vec![Token::Ack, Token::Frame(b"x".to_vec()), Token::Nak]);
    }

    #[test]
    fn rejects_bad_encode_input() {
        assert_eq!(encode(b""), Err(FrameError::EmptyPayload));
        assert_eq!(encode(&[b'a'; MAX_PAYLOAD + 1]), Err(FrameError::TooLong { len: MAX_PAYLOAD + 1 }));
    }

    #[test]
    fn truncated_frame_expires() {
        let f = encode(b"0001|PING").unwrap();
        let mut d = Deframer::new();
        let t0 = Instant::now();
        d.push(&f[..6], t0);
        assert_eq!(d.poll(), None);
        assert_eq!(d.deadline(), Some(t0 + INTER_BYTE_TIMEOUT));
        d.handle_timeout(t0 + INTER_BYTE_TIMEOUT);
        assert_eq!(d.poll(), Some(Token::Invalid(FrameError::Truncated { have: 6, want: 14 })));
        // The next frame decodes normally.
        d.push(&f, t0 + INTER_BYTE_TIMEOUT);
        assert_eq!(d.poll(), Some(Token::Frame(b"0001|PING".to_vec())));
    }

    #[test]
    fn a_long_frame_at_9600_baud_has_its_transmission_time() {
        let byte = crate::link::LinkConfig::byte_time_at(9600);
        assert_eq!(byte, Duration::from_nanos(1_041_666));
        let f = encode(&[b'x'; MAX_PAYLOAD]).unwrap();
        let t0 = Instant::now();
        let mut d = Deframer::with_byte_time(byte);
        // 1029 bytes at 960 bytes/s: the last arrives ~1.07 s after the STX.
        for (i, b) in f.iter().enumerate() {
            let now = t0 + byte * i as u32;
            d.handle_timeout(now);
            d.push(&[*b], now);
        }
        assert!(matches!(d.poll(), Some(Token::Frame(p)) if p.len() == MAX_PAYLOAD));
        // Without the line speed the same bytes are a truncated frame.
        let mut d = Deframer::new();
        for (i, b) in f.iter().enumerate() {
            let now = t0 + byte * i as u32;
            d.handle_timeout(now);
            d.push(&[*b], now);
        }
        assert!(matches!(d.poll(), Some(Token::Invalid(FrameError::Truncated { .. }))));
    }
}
