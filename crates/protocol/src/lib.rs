//! The POS link protocol of HIS Bridge, specified in `docs/pos-protocol.md`.
//!
//! Everything here is sans-IO: no sockets, ports, threads or clocks. Callers feed bytes and
//! `now`, and take back bytes to write, events and the next deadline.

pub mod aoa;
pub mod frame;
#[doc(hidden)]
pub mod fuzz;
pub mod link;
pub mod message;
pub mod session;
pub mod usb;

pub use message::{Channel, ChannelTotals, PosTotals, Reply, Request, Stage, TxnKind, TxnResult, TxnStatus};
pub use session::{Session, SessionConfig, SessionError, SessionEvent};
