//! One stored fixture per malformed frame, each asserting the exact error (pos-protocol.md §2.4).

use std::time::Instant;

use hisbridge_protocol::frame::{Deframer, FrameError, Token, INTER_BYTE_TIMEOUT};

fn decode(bytes: &[u8]) -> Vec<Token> {
    let mut d = Deframer::new();
    let t = Instant::now();
    d.push(bytes, t);
    d.handle_timeout(t + INTER_BYTE_TIMEOUT);
    std::iter::from_fn(|| d.poll()).collect()
}

#[test]
fn valid_ping() {
    assert_eq!(decode(include_bytes!("fixtures/valid-ping.bin")), vec![Token::Frame(b"0001|PING".to_vec())]);
}

#[test]
fn bad_lrc() {
    let good = include_bytes!("fixtures/valid-ping.bin");
    assert_eq!(
        decode(include_bytes!("fixtures/invalid-bad-lrc.bin")),
        vec![Token::Invalid(FrameError::BadChecksum { computed: good[13], carried: good[13] ^ 0xff })]
    );
}

#[test]
fn corrupt_payload_fails_the_check() {
    let t = decode(include_bytes!("fixtures/invalid-corrupt-payload.bin"));
    assert!(matches!(t[..], [Token::Invalid(FrameError::BadChecksum { .. })]), "{t:?}");
}

#[test]
fn missing_etx() {
    assert_eq!(
        decode(include_bytes!("fixtures/invalid-missing-etx.bin")),
        vec![
            Token::Invalid(FrameError::MissingEtx { found: 0x04 }),
            Token::Invalid(FrameError::StrayBytes { count: 1 })
        ]
    );
}

#[test]
fn too_long() {
    assert_eq!(
        decode(include_bytes!("fixtures/invalid-too-long.bin")),
        vec![Token::Invalid(FrameError::TooLong { len: 0x0401 }), Token::Invalid(FrameError::StrayBytes { count: 4 })]
    );
}

#[test]
fn empty_payload() {
    assert_eq!(
        decode(include_bytes!("fixtures/invalid-empty-payload.bin")),
        vec![Token::Invalid(FrameError::EmptyPayload)]
    );
}

#[test]
fn stray_bytes() {
    assert_eq!(
        decode(include_bytes!("fixtures/invalid-stray-bytes.bin")),
        vec![Token::Invalid(FrameError::StrayBytes { count: 6 })]
    );
}

#[test]
fn truncated() {
    let f = include_bytes!("fixtures/valid-ping.bin");
    assert_eq!(decode(&f[..9]), vec![Token::Invalid(FrameError::Truncated { have: 9, want: 14 })]);
}
