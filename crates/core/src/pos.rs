//! The POS driver: a tokio task that owns the link to the POS (a [`crate::transport::Link`]:
//! serial port or raw USB) and the sans-IO [`Session`].
//!
//! A reader thread turns blocking reads into a channel; the task selects on bytes, requests and
//! the session's deadline, writes what the session hands back, and reopens the link when it
//! disappears (polling, and woken early by USB hotplug events where libusb has them). Nothing
//! here decides about money: that is the engine's job.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hisbridge_protocol::session::{Session, SessionConfig, SessionError, SessionEvent, State};
use hisbridge_protocol::Request;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

/// Link state shown to the cashier and checked by the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The port cannot be opened (unplugged, wrong name, held by another program).
    PortClosed { reason: String },
    /// The port is open; waiting for the POS to answer HELLO.
    Handshaking,
    /// The POS answered with the configured device ID.
    Ready,
    /// The POS answered with another device ID: no money commands.
    WrongDevice { reported: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosStatus {
    pub port: String,
    pub link: Link,
    pub device_id: Option<String>,
    pub version: Option<String>,
    pub model: Option<String>,
    /// Local time the POS was last heard.
    pub last_heard: Option<String>,
}

/// What the driver reports to the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PosEvent {
    Session(SessionEvent),
    /// The port closed under an open session; requests in flight may or may not have arrived.
    PortLost {
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub struct PosConfig {
    /// The POS as the config names it (shown until a link is open).
    pub port: String,
    pub target: crate::transport::PosTarget,
    pub transport: crate::transport::TransportKind,
    pub baud: u32,
    pub session: SessionConfig,
    pub reopen_interval: Duration,
}

type RequestMsg = (Request, oneshot::Sender<Result<(), SessionError>>);

/// The engine's handle on the driver.
#[derive(Clone)]
pub struct PosHandle {
    requests: mpsc::UnboundedSender<RequestMsg>,
    status: watch::Receiver<PosStatus>,
}

impl PosHandle {
    /// Hands a request to the session. `Ok` means it was queued on an open link; the answer
    /// arrives as a [`PosEvent`].
    pub async fn request(&self, req: Request) -> Result<(), SessionError> {
        let (tx, rx) = oneshot::channel();
        self.requests.send((req, tx)).map_err(|_| SessionError::NotReady)?;
        rx.await.unwrap_or(Err(SessionError::NotReady))
    }

    pub fn status(&self) -> PosStatus {
        self.status.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<PosStatus> {
        self.status.clone()
    }
}

/// Starts the driver on its own thread.
pub fn spawn(cfg: PosConfig) -> (PosHandle, mpsc::UnboundedReceiver<PosEvent>) {
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (st_tx, st_rx) = watch::channel(PosStatus {
        port: cfg.port.clone(),
        link: Link::PortClosed { reason: "starting".into() },
        device_id: None,
        version: None,
        model: None,
        last_heard: None,
    });
    // The driver gets a thread and a runtime of its own: the engine's synchronous disk writes
    // (journal commits, fsync) must never delay ACKs and heartbeats on the line.
    std::thread::Builder::new()
        .name("pos-driver".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("driver runtime");
            rt.block_on(drive(cfg, req_rx, ev_tx, st_tx));
        })
        .expect("spawn the POS driver thread");
    (PosHandle { requests: req_tx, status: st_rx }, ev_rx)
}

fn open(cfg: &PosConfig) -> Result<crate::transport::Link, String> {
    let device = cfg.session.expected_device.as_deref().unwrap_or("");
    crate::transport::open(&cfg.target, cfg.transport, cfg.baud, device)
}

async fn drive(
    cfg: PosConfig,
    mut requests: mpsc::UnboundedReceiver<RequestMsg>,
    events: mpsc::UnboundedSender<PosEvent>,
    status: watch::Sender<PosStatus>,
) {
    let mut last_error = String::new();
    // A POS named by USB identity may come back on another port or address: hotplug events
    // (where libusb has them) wake the reopen loop early; polling finds it everywhere.
    let wake = Arc::new(tokio::sync::Notify::new());
    // An Android POS comes back under other IDs in accessory mode: any arrival wakes it.
    let _hotplug = match (&cfg.target, cfg.transport) {
        (_, crate::transport::TransportKind::Aoa) => crate::transport::usb::watch(None, wake.clone()),
        (crate::transport::PosTarget::Usb(id), _) => crate::transport::usb::watch(Some(id), wake.clone()),
        (_, _) => None,
    };
    loop {
        let c = cfg.clone();
        let opened = tokio::task::spawn_blocking(move || open(&c)).await.unwrap_or_else(|e| Err(e.to_string()));
        let port = match opened {
            Ok(p) => p,
            Err(reason) => {
                if reason != last_error {
                    warn!(port = %cfg.port, %reason, "POS port cannot be opened");
                    last_error = reason.clone();
                }
                status.send_modify(|s| {
                    s.link = Link::PortClosed { reason };
                    s.port = cfg.port.clone();
                });
                // Refuse requests while closed, without waiting the whole interval.
                let deadline = tokio::time::Instant::now() + cfg.reopen_interval;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => break,
                        _ = wake.notified() => break,
                        r = requests.recv() => match r {
                            Some((_, reply)) => { let _ = reply.send(Err(SessionError::NotReady)); }
                            None => return,
                        },
                    }
                }
                continue;
            }
        };
        last_error.clear();
        info!(port = %port.name, transport = cfg.transport.as_str(), "POS link open");
        status.send_modify(|s| {
            s.link = Link::Handshaking;
            s.port = port.name.clone();
        });
        let reason = run_port(&cfg, port, &mut requests, &events, &status).await;
        match reason {
            None => return,
            Some(reason) => {
                warn!(port = %cfg.port, %reason, "POS link lost");
                status.send_modify(|s| {
                    s.link = Link::PortClosed { reason: reason.clone() };
                    s.port = cfg.port.clone();
                });
                let _ = events.send(PosEvent::PortLost { reason });
            }
        }
    }
}

/// Runs one open port until it fails (returns the reason) or the engine goes away (None).
async fn run_port(
    cfg: &PosConfig,
    port: crate::transport::Link,
    requests: &mut mpsc::UnboundedReceiver<RequestMsg>,
    events: &mpsc::UnboundedSender<PosEvent>,
    status: &watch::Sender<PosStatus>,
) -> Option<String> {
    let (bytes_tx, mut bytes_rx) = mpsc::unbounded_channel::<Result<Vec<u8>, String>>();
    let stop = Arc::new(AtomicBool::new(false));
    let crate::transport::Link { mut reader, writer: mut port, .. } = port;
    let stop_r = stop.clone();
    std::thread::Builder::new()
        .name("pos-reader".into())
        .spawn(move || {
            let mut buf = [0u8; 512];
            while !stop_r.load(Ordering::Relaxed) {
                match reader.read(&mut buf) {
                    Ok(0) => {}
                    Ok(n) => {
                        if bytes_tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = bytes_tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        })
        .expect("spawn reader thread");
    let _stop_guard = StopOnDrop(stop);

    let first_seq = (rand::random::<u16>() % 9999) + 1;
    let mut session = Session::new(cfg.session.clone(), first_seq, Instant::now());
    loop {
        // Write what the session wants on the wire, then report its events.
        while let Some(out) = session.poll_transmit() {
            // No flush: on a tty it is tcdrain, which waits for the far end to read and would
            // hold up this task; the kernel sends what was written.
            if let Err(e) = port.write_all(&out) {
                return Some(format!("write failed: {e}"));
            }
        }
        while let Some(ev) = session.poll_event() {
            update_status(status, &session, &ev);
            match &ev {
                SessionEvent::Garbled(what) => debug!(%what, "garbled input from POS"),
                other => debug!(event = ?other, "POS event"),
            }
            if events.send(PosEvent::Session(ev)).is_err() {
                return None;
            }
        }
        let deadline = tokio::time::Instant::from_std(session.poll_timeout());
        tokio::select! {
            // Input first: bytes that arrived are seen before any time-out is judged.
            biased;
            b = bytes_rx.recv() => match b {
                Some(Ok(bytes)) => {
                    session.handle_input(&bytes, Instant::now());
                    status.send_modify(|s| s.last_heard = Some(crate::journal::now_str()));
                }
                Some(Err(e)) => return Some(format!("read failed: {e}")),
                None => return Some("reader stopped".into()),
            },
            r = requests.recv() => match r {
                Some((req, reply)) => {
                    let res = session.request(req, Instant::now());
                    let _ = reply.send(res);
                }
                None => return None,
            },
            _ = tokio::time::sleep_until(deadline) => {
                // Anything read meanwhile counts before silence is declared.
                while let Ok(b) = bytes_rx.try_recv() {
                    match b {
                        Ok(bytes) => session.handle_input(&bytes, Instant::now()),
                        Err(e) => return Some(format!("read failed: {e}")),
                    }
                }
                session.handle_timeout(Instant::now())
            }
        }
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn update_status(status: &watch::Sender<PosStatus>, session: &Session, ev: &SessionEvent) {
    let link = match session.state() {
        State::Ready { .. } => Link::Ready,
        State::WrongDevice { reported } => Link::WrongDevice { reported: reported.clone() },
        State::ExpectHello => Link::Handshaking,
    };
    status.send_modify(|s| {
        s.link = link;
        match ev {
            SessionEvent::Connected { device_id, version, model } => {
                info!(device_id, version, model, "POS connected");
                s.device_id = Some(device_id.clone());
                s.version = Some(version.clone());
                s.model = Some(model.clone());
            }
            SessionEvent::DeviceMismatch { expected, reported } => {
                warn!(expected, reported, "POS reports another device ID; money commands refused");
                s.device_id = Some(reported.clone());
            }
            SessionEvent::LinkLost => warn!("POS stopped answering"),
            _ => {}
        }
    });
}
