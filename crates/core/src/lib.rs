//! Headless core of HIS Bridge. Nothing here knows about Tauri or any window: the `hisbridge`
//! command line and the tray app are two front ends over [`bridge::Bridge`].

pub use hisbridge_message::{amount, envelope, his, keyfile};

pub mod bridge;
pub mod config;
pub mod diag;
pub mod engine;
pub mod failpoint;
pub mod folders;
pub mod hisclient;
pub mod hub;
pub mod instance;
pub mod intake;
pub mod journal;
pub mod lifecycle;
pub mod logs;
pub mod password;
pub mod pos;
pub mod recon;
pub mod settings;
pub mod setup;
pub mod socket;
pub mod statement;
pub mod transport;
