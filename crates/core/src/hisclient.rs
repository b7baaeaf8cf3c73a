//! The HIS side of the drop-folder contract, as an HIS programmer would write it: used by
//! `hisbridge his ...`, the demo and the tests (docs/his-interface.md §4).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::envelope::{Direction, Key};
use crate::folders::{write_atomic, ORDER_EXT, RESULT_EXT};
use crate::his::{Instruction, ResultMessage};
pub use hisbridge_client::{ClientError, SocketClient};

/// A unique file stem for an instruction: its order key and the time.
pub fn new_stem(ins: &Instruction) -> String {
    format!("{}-{}", ins.key(), chrono::Local::now().format("%Y%m%d%H%M%S%3f"))
}

/// Encrypts `ins` and places it in the inbox the way the contract asks: a temp name, then a
/// rename into `<stem>.ord`.
pub fn send(inbox: &Path, key: &Key, ins: &Instruction, stem: &str) -> Result<(), ClientError> {
    let text = key.seal(Direction::ToBridge, ins.to_json().as_bytes());
    write_atomic(inbox, &format!("{stem}.{ORDER_EXT}"), text.as_bytes()).map_err(ClientError::Write)?;
    Ok(())
}

/// Reads and decrypts `<stem>.res` if it is there.
pub fn read_result(outbox: &Path, key: &Key, stem: &str) -> Result<Option<ResultMessage>, ClientError> {
    let path = outbox.join(format!("{stem}.{RESULT_EXT}"));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ClientError::Bad { stem: stem.into(), reason: e.to_string() }),
    };
    let plain = key
        .open(Direction::ToHis, &bytes)
        .map_err(|e| ClientError::Bad { stem: stem.into(), reason: e.to_string() })?;
    ResultMessage::parse(&plain).map(Some).map_err(|e| ClientError::Bad { stem: stem.into(), reason: e.to_string() })
}

/// Waits for a final result in `<stem>.res`, checking `expect_device` like step 6 of the
/// exchange: a result from another device is an error.
pub fn wait_final(outbox: &Path, key: &Key, stem: &str, timeout: Duration) -> Result<ResultMessage, ClientError> {
    let start = Instant::now();
    let mut last = "nothing".to_string();
    loop {
        if let Some(r) = read_result(outbox, key, stem)? {
            if r.status.is_final() {
                return Ok(r);
            }
            last = format!("{:?}", r.status);
        }
        if start.elapsed() >= timeout {
            return Err(ClientError::Timeout { stem: stem.into(), secs: timeout.as_secs(), last });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
