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

/// Connections served at once; more are closed as they come (the folder channel and the
/// journal keep their file descriptors).
pub const MAX_CONNECTIONS: usize = 128;
/// A connection that sends nothing (not even an empty line) for this long is closed.
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(600);
/// Lines that are not a valid envelope before the connection is closed.
pub const MAX_BAD_LINES: u32 = 16;

/// Raises the soft limit on open files to the hard limit (Unix), so a burst of connections
/// never starves the journal and the inbox. Returns the limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: plain getrlimit/setrlimit on a local struct.
        unsafe {
            let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return None;
            }
            if r.rlim_cur < r.rlim_max {
                let want = libc::rlimit { rlim_cur: r.rlim_max, rlim_max: r.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    r.rlim_cur = r.rlim_max;
                }
            }
            #[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every Unix
            Some(r.rlim_cur as u64)
        }
    }
    #[cfg(not(unix))]
    None
}

/// Accepts connections until the engine goes away.
pub async fn serve(listener: TcpListener, key: Arc<Key>, tx: mpsc::Sender<Submission>) {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    if let Ok(a) = listener.local_addr() {
        info!(addr = %a, "HIS socket channel listening");
    }
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut refused_since_log = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and the like: wait, never spin.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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
        if active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            if refused_since_log.is_multiple_of(1000) {
                warn!(max = MAX_CONNECTIONS, "too many connections open: new ones are closed");
            }
            refused_since_log += 1;
            drop(stream);
            continue;
        }
        refused_since_log = 0;
        active.fetch_add(1, Ordering::SeqCst);
        let conn = NEXT.fetch_add(1, Ordering::Relaxed);
        let (key, tx, active) = (key.clone(), tx.clone(), active.clone());
        tokio::spawn(async move {
            connection(conn, stream, key, tx).await;
            active.fetch_sub(1, Ordering::SeqCst);
        });
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
    let mut bad_lines = 0u32;
    loop {
        line.clear();
        // Read one line, never holding more than the largest envelope.
        let mut too_long = false;
        let mut eof = false;
        loop {
            let filled = match tokio::time::timeout(IDLE, reader.fill_buf()).await {
                Ok(r) => r,
                Err(_) => {
                    info!(conn, "connection idle for 10 minutes: closed");
                    return finish(writer, out_tx).await;
                }
            };
            let buf = match filled {
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
        if body.is_err() {
            bad_lines += 1;
        }
        let last_straw = bad_lines >= MAX_BAD_LINES;
        let sub = Submission {
            origin: Origin::Socket { conn, tx: out_tx.clone() },
            body,
            resubmitted: false,
            stem_final: false,
        };
        if tx.send(sub).await.is_err() || eof {
            return finish(writer, out_tx).await;
        }
        if last_straw {
            warn!(conn, lines = bad_lines, "too many lines that are not valid envelopes: connection closed");
            return finish(writer, out_tx).await;
        }
    }
}

async fn finish(mut writer: tokio::task::JoinHandle<()>, out_tx: mpsc::UnboundedSender<String>) {
    // Results still owed go out before the connection closes its write side; a client that
    // does not read them within a second is closed all the same (the socket goes with the task).
    drop(out_tx);
    if tokio::time::timeout(std::time::Duration::from_secs(1), &mut writer).await.is_err() {
        writer.abort();
    }
}
