//! The encrypted envelope every HIS message travels in (docs/his-interface.md §2).
//!
//! ```text
//! HB1.<key id>.<ORD|RES>.<base64( nonce[12] || ciphertext || tag[16] )>
//! ```
//! AES-256-GCM with a fresh random 96-bit nonce per message. The header `HB1.<key id>.<kind>` is
//! the associated data, so the version, the key id and the direction are all covered by the tag:
//! a result can never be fed back as an order.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine as _;
use rand::RngCore;

pub const VERSION: &str = "HB1";
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Largest envelope text accepted (a message is a few hundred bytes).
pub const MAX_ENVELOPE: usize = 64 * 1024;
/// Largest reconciliation file (docs/his-interface.md §8): a day's report is far larger than a
/// message, and only ever travels from the bridge to the HIS.
pub const MAX_REPORT: usize = 512 * 1024 * 1024;

/// Which way a message travels; bound into the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// HIS → bridge: order, query, cancel.
    ToBridge,
    /// Bridge → HIS: result.
    ToHis,
}

impl Direction {
    pub fn tag(self) -> &'static str {
        match self {
            Direction::ToBridge => "ORD",
            Direction::ToHis => "RES",
        }
    }
}

/// A 256-bit key with its id. `Debug` never shows the key bytes.
#[derive(Clone)]
pub struct Key {
    id: String,
    bytes: [u8; 32],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {:?}, bytes: <redacted> }}", self.id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message is empty")]
    Empty,
    #[error("message is larger than {MAX_ENVELOPE} bytes")]
    TooLarge,
    #[error("message is not an HB1 envelope (expected HB1.<key id>.<ORD|RES>.<base64>)")]
    Malformed,
    #[error("envelope version {0:?} is not supported (expected HB1)")]
    Version(String),
    #[error("envelope is encrypted with key id {got:?}, the bridge uses {expected:?}")]
    KeyId { expected: String, got: String },
    #[error("envelope travels the wrong way: expected {expected}, got {got}")]
    Direction { expected: &'static str, got: String },
    #[error("envelope body is not valid base64")]
    Base64,
    #[error("envelope body is too short to hold a nonce and a tag")]
    Truncated,
    #[error("authentication failed: wrong key, or the message was altered")]
    Tag,
    #[error("key id must be 1-32 characters of A-Z a-z 0-9 _ -")]
    BadKeyId,
}

pub fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Key {
    pub fn new(id: &str, bytes: [u8; 32]) -> Result<Self, EnvelopeError> {
        if !valid_key_id(id) {
            return Err(EnvelopeError::BadKeyId);
        }
        Ok(Self { id: id.to_string(), bytes })
    }

    pub fn generate(id: &str) -> Result<Self, EnvelopeError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::new(id, bytes)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key bytes, for writing a key file only.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    fn header(&self, dir: Direction) -> String {
        format!("{VERSION}.{}.{}", self.id, dir.tag())
    }

    /// Encrypts `plaintext` with a fresh random nonce.
    pub fn seal(&self, dir: Direction, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.seal_with_nonce(dir, plaintext, nonce)
    }

    /// Encrypts with a given nonce: for the published test vectors only.
    pub fn seal_with_nonce(&self, dir: Direction, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
        let header = self.header(dir);
        let cipher = Aes256Gcm::new_from_slice(&self.bytes).expect("32-byte key");
        let ct = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext, aad: header.as_bytes() })
            .expect("AES-GCM encryption of a bounded message cannot fail");
        let mut body = nonce.to_vec();
        body.extend_from_slice(&ct);
        format!("{header}.{}", base64::engine::general_purpose::STANDARD.encode(body))
    }

    /// Checks and decrypts an envelope travelling in `dir`. Surrounding whitespace (a trailing
    /// newline, a UTF-8 BOM) is tolerated; anything else is an error.
    pub fn open(&self, dir: Direction, text: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.open_with_nonce(dir, text).map(|(plain, _)| plain)
    }

    /// Like [`Key::open`], also returning the message's nonce (its unique id, for the replay
    /// cache).
    pub fn open_with_nonce(&self, dir: Direction, text: &[u8]) -> Result<(Vec<u8>, [u8; NONCE_LEN]), EnvelopeError> {
        self.open_limited(dir, text, MAX_ENVELOPE)
    }

    /// Opens a reconciliation file: like [`Key::open`] with the size limit of [`MAX_REPORT`].
    pub fn open_report(&self, text: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        self.open_limited(Direction::ToHis, text, MAX_REPORT).map(|(plain, _)| plain)
    }

    fn open_limited(
        &self,
        dir: Direction,
        text: &[u8],
        max: usize,
    ) -> Result<(Vec<u8>, [u8; NONCE_LEN]), EnvelopeError> {
        if text.len() > max {
            return Err(EnvelopeError::TooLarge);
        }
        let h = split(text)?;
        if h.version != VERSION {
            return Err(EnvelopeError::Version(h.version.to_string()));
        }
        if h.kind != dir.tag() {
            return Err(EnvelopeError::Direction { expected: dir.tag(), got: h.kind.to_string() });
        }
        if h.key_id != self.id {
            return Err(EnvelopeError::KeyId { expected: self.id.clone(), got: h.key_id.to_string() });
        }
        let body = base64::engine::general_purpose::STANDARD.decode(h.body).map_err(|_| EnvelopeError::Base64)?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(EnvelopeError::Truncated);
        }
        let (nonce, ct) = body.split_at(NONCE_LEN);
        let header = self.header(dir);
        let cipher = Aes256Gcm::new_from_slice(&self.bytes).expect("32-byte key");
        let plain = cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: header.as_bytes() })
            .map_err(|_| EnvelopeError::Tag)?;
        Ok((plain, nonce.try_into().expect("split at NONCE_LEN")))
    }
}

/// The clear-text header of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub version: &'a str,
    pub key_id: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
}

/// Splits an envelope into its parts without decrypting (for diagnostics and routing).
pub fn peek(text: &[u8]) -> Result<Header<'_>, EnvelopeError> {
    if text.len() > MAX_ENVELOPE {
        return Err(EnvelopeError::TooLarge);
    }
    split(text)
}

fn split(text: &[u8]) -> Result<Header<'_>, EnvelopeError> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let s = std::str::from_utf8(text).map_err(|_| EnvelopeError::Malformed)?.trim();
    if s.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let mut parts = s.splitn(4, '.');
    let (Some(version), Some(key_id), Some(kind), Some(body)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(EnvelopeError::Malformed);
    };
    if !version.starts_with("HB") || !valid_key_id(key_id) || kind.len() != 3 {
        return Err(EnvelopeError::Malformed);
    }
    Ok(Header { version, key_id, kind, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new("K1", [7u8; 32]).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let k = key();
        let a = k.seal(Direction::ToBridge, b"hello");
        let b = k.seal(Direction::ToBridge, b"hello");
        assert_ne!(a, b);
        assert!(a.starts_with("HB1.K1.ORD."));
        assert_eq!(k.open(Direction::ToBridge, a.as_bytes()).unwrap(), b"hello");
        assert_eq!(k.open(Direction::ToBridge, format!("\u{feff}{a}\r\n").as_bytes()).unwrap(), b"hello");
    }

    #[test]
    fn every_tampering_case_is_refused() {
        let k = key();
        let good = k.seal(Direction::ToBridge, b"{}");
        let swapped = good.replacen(".ORD.", ".RES.", 1);
        assert_eq!(
            k.open(Direction::ToBridge, swapped.as_bytes()),
            Err(EnvelopeError::Direction { expected: "ORD", got: "RES".into() })
        );
        // Swapping the direction and opening as a result still fails: the header is authenticated.
        assert_eq!(k.open(Direction::ToHis, swapped.as_bytes()), Err(EnvelopeError::Tag));
        assert_eq!(
            k.open(Direction::ToBridge, good.replacen("HB1", "HB2", 1).as_bytes()),
            Err(EnvelopeError::Version("HB2".into()))
        );
        assert_eq!(
            k.open(Direction::ToBridge, good.replacen("K1", "K2", 1).as_bytes()),
            Err(EnvelopeError::KeyId { expected: "K1".into(), got: "K2".into() })
        );
        let other = Key::new("K1", [8u8; 32]).unwrap();
        assert_eq!(other.open(Direction::ToBridge, good.as_bytes()), Err(EnvelopeError::Tag));
        let mut body = base64::engine::general_purpose::STANDARD.decode(good.rsplit('.').next().unwrap()).unwrap();
        let last = body.len() - 1;
        body[last] ^= 1;
        let tampered = format!("HB1.K1.ORD.{}", base64::engine::general_purpose::STANDARD.encode(&body));
        assert_eq!(k.open(Direction::ToBridge, tampered.as_bytes()), Err(EnvelopeError::Tag));
        assert_eq!(k.open(Direction::ToBridge, b"HB1.K1.ORD.AAAA"), Err(EnvelopeError::Truncated));
        assert_eq!(k.open(Direction::ToBridge, b"HB1.K1.ORD.!!!"), Err(EnvelopeError::Base64));
        assert_eq!(k.open(Direction::ToBridge, b""), Err(EnvelopeError::Empty));
        assert_eq!(k.open(Direction::ToBridge, b"\n"), Err(EnvelopeError::Empty));
        assert_eq!(k.open(Direction::ToBridge, &good.as_bytes()[..20]), Err(EnvelopeError::Base64));
        assert_eq!(k.open(Direction::ToBridge, b"\x00\x01binary"), Err(EnvelopeError::Malformed));
        assert_eq!(k.open(Direction::ToBridge, &vec![b'A'; MAX_ENVELOPE + 1]), Err(EnvelopeError::TooLarge));
        assert!(format!("{k:?}").contains("redacted"));
    }
}
