//! Assembles the bridge: folders, journal, POS driver, inbox and engine on one tokio runtime.

use std::sync::Arc;
use std::time::Duration;

use hisbridge_protocol::link::LinkConfig;
use hisbridge_protocol::SessionConfig;
use tokio::sync::{broadcast, mpsc};

use crate::config::Config;
use crate::engine::{Control, Driver, EngineSettings, Health, Notice, OrderAction, PosInfo};
use crate::envelope::Key;
use crate::intake::{Inbox, Scanner};
use crate::journal::Journal;
use crate::journal::State;
use crate::pos::{self, PosConfig, PosHandle};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create folder: {0}")]
    Folders(std::io::Error),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Socket(#[from] crate::socket::SocketError),
    /// Another instance (the service, the tray app, `hisbridge run`) drives this POS and journal.
    #[error(transparent)]
    Locked(#[from] crate::instance::LockError),
}

/// A running bridge. Dropping the runtime stops it; state is in the journal.
pub struct Bridge {
    pub pos: PosHandle,
    pub notices: broadcast::Sender<Notice>,
    pub control: mpsc::Sender<Control>,
    pub engine: tokio::task::JoinHandle<()>,
    /// What needs a person now (journal, result files, POS contradictions).
    pub health: tokio::sync::watch::Receiver<Health>,
    /// Held while this bridge lives: no second engine on the same journal.
    _lock: crate::instance::InstanceLock,
}

impl Bridge {
    /// Starts every task on the current runtime.
    pub fn start(cfg: &Config, key: Key) -> Result<Self, StartError> {
        Self::start_as(cfg, key, "run")
    }

    /// Starts the bridge as `mode` (`service`, `tray`, `run`: shown to other instances).
    /// Fails with [`StartError::Locked`] while another instance drives the same journal.
    pub fn start_as(cfg: &Config, key: Key, mode: &str) -> Result<Self, StartError> {
        if let Some(parent) = cfg.journal.parent() {
            std::fs::create_dir_all(parent).map_err(StartError::Folders)?;
        }
        let lock = crate::instance::acquire(&cfg.journal)?;
        crate::folders::ensure_dirs(&cfg.folders).map_err(StartError::Folders)?;
        let mut journal = Journal::open(&cfg.journal)?;
        journal.checkpoint_in_background()?;
        let listener = cfg.socket.as_ref().map(|s| crate::socket::bind(s.address, s.port)).transpose()?;
        if listener.is_some() {
            crate::socket::raise_fd_limit();
        }
        let key = Arc::new(key);
        let (pos, pos_events) = pos::spawn(PosConfig {
            port: cfg.pos.port.clone(),
            target: cfg.pos.target.clone(),
            transport: cfg.pos.transport,
            baud: cfg.pos.baud,
            session: SessionConfig {
                expected_device: Some(cfg.pos.device_id.clone()),
                link: LinkConfig {
                    // On a serial line the windows count from the end of a frame's transmission.
                    byte_time: match cfg.pos.transport {
                        crate::transport::TransportKind::Serial => LinkConfig::byte_time_at(cfg.pos.baud),
                        _ => Duration::ZERO,
                    },
                    ..LinkConfig::default()
                },
                ..SessionConfig::default()
            },
            reopen_interval: Duration::from_secs(1),
        });
        let (health_tx, health) = tokio::sync::watch::channel(Health::new());
        let (notices, _) = broadcast::channel(256);
        // Replication to the hospital's hub: its own task and its own (read-only) journal
        // connection; payments never wait on it.
        let hub = cfg.hub.as_ref().map(|h| {
            let (tx, rx) = tokio::sync::watch::channel(crate::hub::replica::HubStatus::default());
            tokio::spawn(crate::hub::replica::run(
                h.clone(),
                cfg.journal.clone(),
                cfg.pos.device_id.clone(),
                crate::hub::replica::Inputs { pos: pos.watch(), health: health.clone(), notices: notices.subscribe() },
                tx,
            ));
            rx
        });
        tokio::spawn(crate::instance::publish(
            crate::instance::status_path(&cfg.journal),
            mode.to_string(),
            pos.watch(),
            health.clone(),
            notices.subscribe(),
            hub,
        ));
        let (sub_tx, sub_rx) = mpsc::channel(64);
        let engine = Driver::new(
            EngineSettings {
                terminals: cfg.terminals.clone(),
                supervisors: cfg.policy.supervisors.clone(),
                device_id: cfg.pos.device_id.clone(),
                timeouts: cfg.timeouts.clone(),
                folders: cfg.folders.clone(),
                replay_window: cfg.intake.replay_window,
            },
            key.clone(),
            journal,
            pos.clone(),
            notices.clone(),
            health_tx,
        );
        let (control, control_rx) = mpsc::channel(16);
        let engine = tokio::spawn(engine.run(sub_rx, pos_events, control_rx));
        if cfg.reconciliation.enabled {
            tokio::spawn(crate::recon::schedule(
                cfg.reconciliation.clone(),
                cfg.journal.clone(),
                key.clone(),
                cfg.pos.device_id.clone(),
                control.clone(),
            ));
        }
        if let Some(l) = listener {
            tokio::spawn(crate::socket::serve(l, key.clone(), sub_tx.clone()));
        }
        let scanner = Scanner { folders: cfg.folders.clone(), cfg: cfg.intake.clone(), key };
        tokio::spawn(Inbox { scanner, tx: sub_tx }.run());
        Ok(Self { pos, notices, control, engine, health, _lock: lock })
    }
}

impl Bridge {
    /// A cashier's action on an order (dashboard): query, cancel, or rewrite its result file.
    pub async fn order_action(&self, key: &str, action: OrderAction) -> Result<State, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control
            .send(Control::Order { key: key.to_string(), action, reply: tx })
            .await
            .map_err(|_| "the bridge is not running".to_string())?;
        rx.await.map_err(|_| "the bridge stopped".to_string())?
    }

    async fn control(&self, c: Control) -> Result<(), String> {
        self.control.send(c).await.map_err(|_| "the bridge is not running".to_string())
    }

    /// Stops (true) or resumes (false) taking new orders at this window.
    pub async fn pause(&self, paused: bool) -> Result<(), String> {
        self.control(Control::Pause(paused)).await
    }

    /// The cashier's connection test: the POS answers INFO (device, version, its clock).
    pub async fn pos_info(&self) -> Result<PosInfo, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.control(Control::PosInfo { reply: tx }).await?;
        match tokio::time::timeout(std::time::Duration::from_secs(30), rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the bridge stopped".into()),
            Err(_) => Err("the POS did not answer in 30 s (a payment may be in progress)".into()),
        }
    }

    /// Applies the settings a running bridge can take at once: terminals and timeouts.
    pub async fn reconfigure(&self, cfg: &Config) -> Result<(), String> {
        self.control(Control::Reconfigure { terminals: cfg.terminals.clone(), timeouts: cfg.timeouts.clone() }).await
    }
}
