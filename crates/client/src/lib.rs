//! The HIS side of HIS Bridge's localhost socket channel, in Rust and behind a C ABI
//! (`include/hisbridge.h`) for HIS written in Delphi, PowerBuilder, C# or C: one blocking call
//! per instruction, in the style of the MIS-POS bank DLLs.

pub mod ffi;

use std::time::{Duration, Instant};

use hisbridge_message::envelope::{Direction, Key};
use hisbridge_message::his::{Instruction, ResultMessage};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot send the instruction: {0}")]
    Write(std::io::Error),
    #[error("no final result for {stem} within {secs} s (last seen: {last})")]
    Timeout { stem: String, secs: u64, last: String },
    #[error("the result for {stem} cannot be read: {reason}")]
    Bad { stem: String, reason: String },
}

/// The HIS side of the socket channel: one TCP connection to the bridge on loopback.
pub struct SocketClient {
    reader: std::io::BufReader<std::net::TcpStream>,
    writer: std::net::TcpStream,
    key: Key,
}

impl SocketClient {
    pub fn connect(port: u16, key: Key) -> std::io::Result<Self> {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Self { reader: std::io::BufReader::new(stream.try_clone()?), writer: stream, key })
    }

    /// Sends one raw line (for tests of broken input).
    pub fn send_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.writer.write_all(line)?;
        self.writer.write_all(b"\n")
    }

    pub fn send(&mut self, ins: &Instruction) -> std::io::Result<()> {
        let text = self.key.seal(Direction::ToBridge, ins.to_json().as_bytes());
        self.send_line(text.as_bytes())
    }

    /// The next result line, decrypted; None at end of stream or time-out.
    pub fn next(&mut self, timeout: Duration) -> Result<Option<ResultMessage>, ClientError> {
        use std::io::BufRead;
        let bad = |reason: String| ClientError::Bad { stem: "socket".into(), reason };
        self.writer.set_read_timeout(Some(timeout)).map_err(|e| bad(e.to_string()))?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                let plain =
                    self.key.open(Direction::ToHis, line.trim_end().as_bytes()).map_err(|e| bad(e.to_string()))?;
                ResultMessage::parse(&plain).map(Some).map_err(|e| bad(e.to_string()))
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(None),
            Err(e) => Err(bad(e.to_string())),
        }
    }

    /// Sends `ins` and waits for its final result (skipping updates and other orders' results).
    pub fn call(&mut self, ins: &Instruction, timeout: Duration) -> Result<ResultMessage, ClientError> {
        self.send(ins).map_err(ClientError::Write)?;
        let start = Instant::now();
        let mut last = "nothing".to_string();
        while start.elapsed() < timeout {
            let left = timeout.saturating_sub(start.elapsed()).max(Duration::from_millis(1));
            match self.next(left)? {
                Some(r) if r.order_no.as_deref() == Some(ins.order_no.as_str()) && r.refund_no == ins.refund_no => {
                    if r.status.is_final() {
                        return Ok(r);
                    }
                    last = format!("{:?}", r.status);
                }
                Some(r) if r.order_no.is_none() && r.status.is_final() => return Ok(r),
                _ => {}
            }
        }
        Err(ClientError::Timeout { stem: ins.key(), secs: timeout.as_secs(), last })
    }
}
