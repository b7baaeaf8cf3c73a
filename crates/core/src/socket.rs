//! The localhost socket channel (docs/his-interface.md §7): the same HB1 envelopes as the drop
//! folder, one per line (`\n`), over TCP on a loopback address only. A connection sends
//! instructions and receives, for each, its PROCESSING/UNKNOWN updates and its final result.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::envelope::{Direction, EnvelopeError, Key, MAX_ENVELOPE};
use crate::intake::{Opened, Origin, Refusal, Submission};

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("the socket channel listens on loopback addresses only (127.0.0.1 or ::1), not {0}")]
    NotLoopback(IpAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// Binds the listener, refusing any address that is not loopback.
pub fn bind(addr: IpAddr, port: u16) -> Result<TcpListener, SocketError> {
    if !addr.is_loopback() {
        return Err(SocketError::NotLoopback(addr));
    }
    let sa = SocketAddr::new(addr, port);
    let std = std::net::TcpListener::bind(sa).map_err(|source| SocketError::Bind { addr: sa, source })?;
    std.set_nonblocking(true).map_err(|source| SocketError::Bind { addr: sa, source })?;
    TcpListener::from_std(std).map_err(|source| SocketError::Bind { addr: sa, source })
}

/// Accepts connections until the engine goes away.
pub async fn serve(listener: TcpListener, key: Arc<Key>, tx: mpsc::Sender<Submission>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if let Ok(a) = listener.local_addr() {
        info!(addr = %a, "HIS socket channel listening");
    }
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        if !peer.ip().is_loopback() {
            warn!(%peer, "refusing a connection from outside this computer");
            continue;
        }
        if tx.is_closed() {
            return;
        }
        let conn = NEXT.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(connection(conn, stream, key.clone(), tx.clone()));
    }
}

async fn connection(conn: u64, stream: TcpStream, key: Arc<Key>, tx: mpsc::Sender<Submission>) {
    let _ = stream.set_nodelay(true);
    let (r, mut w) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        while let Some(line) = out_rx.recv().await {
            if w.write_all(line.as_bytes()).await.is_err() || w.write_all(b"\n").await.is_err() {
                return;
            }
        }
    });
    let mut reader = BufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Read one line, never holding more than the largest envelope.
        let mut too_long = false;
        let mut eof = false;
        loop {
            let buf = match reader.fill_buf().await {
                Ok(b) if !b.is_empty() => b,
                // The peer closed: a last line without its `\n` is still an instruction.
                _ if !line.is_empty() || too_long => {
                    eof = true;
                    break;
                }
                _ => return finish(writer, out_tx).await,
            };
            let newline = buf.iter().position(|&b| b == b'\n');
            let chunk = &buf[..newline.unwrap_or(buf.len())];
            if line.len() + chunk.len() > MAX_ENVELOPE {
                too_long = true;
                line.clear();
            } else if !too_long {
                line.extend_from_slice(chunk);
            }
            let used = newline.map_or(buf.len(), |i| i + 1);
            reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        if !too_long && line.iter().all(u8::is_ascii_whitespace) {
            // An empty line is a keep-alive (docs/his-interface.md §7).
            debug!(conn, "empty line ignored");
            continue;
        }
        let body = if too_long {
            Err(Refusal::Envelope(EnvelopeError::TooLarge))
        } else {
            key.open_with_nonce(Direction::ToBridge, &line)
                .map(|(plain, nonce)| Opened { plain, nonce })
                .map_err(Refusal::Envelope)
        };
        let sub = Submission {
            origin: Origin::Socket { conn, tx: out_tx.clone() },
            body,
            resubmitted: false,
            stem_final: false,
        };
        if tx.send(sub).await.is_err() || eof {
            return finish(writer, out_tx).await;
        }
    }
}

async fn finish(writer: tokio::task::JoinHandle<()>, out_tx: mpsc::UnboundedSender<String>) {
    // Results still owed go out before the connection closes its write side.
    drop(out_tx);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
}
