//! `hisbridge demo`: the main job on embedded defaults.

#![cfg_attr(not(unix), allow(unused_imports))]
use std::time::Duration;

use anyhow::{Context, Result};
use hisbridge_core::amount::Amount;
use hisbridge_core::bridge::Bridge;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::Key;
use hisbridge_core::his::{Instruction, InstructionKind};
use hisbridge_core::{hisclient, keyfile};

#[cfg(unix)]
pub fn run() -> Result<()> {
    let dir = tempfile::Builder::new().prefix("hisbridge-demo-").tempdir()?;
    let sim = hisbridge_sim::spawn_on_pty(hisbridge_sim::SimConfig::default())?;
    let key = Key::generate("DEMO")?;
    let key_path = dir.path().join("hisbridge.key");
    keyfile::write_new(&key_path, &key)?;
    let toml = format!(
        "data_dir = {:?}\nterminals = [\"W01\"]\n[pos]\nport = {:?}\ndevice_id = \"POS-0001\"\n[intake]\nrescan_ms = 200\nstable_ms = 50\n",
        dir.path().display().to_string(),
        sim.port_path()
    );
    std::fs::write(dir.path().join("hisbridge.toml"), &toml)?;
    let cfg = Config::load(&dir.path().join("hisbridge.toml"))?;
    println!("HIS Bridge demo");
    println!("  folders     {}", dir.path().display());
    println!("  POS (sim)   {} (device POS-0001)", sim.port_path());
    let rt = tokio::runtime::Runtime::new()?;
    let _bridge = rt.block_on(async { Bridge::start(&cfg, key.clone()) })?;
    let _guard = rt.enter();

    let orders = [
        ("DEMO0001", "+12.30", None, "WeChat"),
        ("DEMO0002", "+8.60", None, "Alipay"),
        ("DEMO0001", "-2.50", Some("R1"), "refund"),
    ];
    for (order_no, amount, refund_no, what) in orders {
        let ins = Instruction {
            kind: InstructionKind::Order,
            terminal_id: "W01".into(),
            order_no: order_no.into(),
            refund_no: refund_no.map(Into::into),
            amount: Some(Amount::parse(amount).expect("valid")),
            operator: Some("1001".into()),
            description: Some("门诊缴费".into()),
            sent_at: None,
        };
        let stem = hisclient::new_stem(&ins);
        hisclient::send(&cfg.folders.inbox, &key, &ins, &stem)?;
        println!("\nHIS -> {}/{stem}.ord ({what}, {amount})", cfg.folders.inbox.display());
        let r = hisclient::wait_final(&cfg.folders.outbox, &key, &stem, Duration::from_secs(30))
            .context("waiting for the result")?;
        println!("HIS <- {}/{stem}.res, decrypted:", cfg.folders.outbox.display());
        println!("{}", serde_json::to_string_pretty(&r)?);
    }
    let ledger = sim.ledger();
    println!("\nPOS simulator ledger:");
    for e in ledger.entries.values() {
        println!(
            "  {:<24} {:<6} {:>8} fen  {:<9} {}",
            e.reference,
            e.kind,
            e.amount_fen,
            e.status,
            e.channel.unwrap_or("-")
        );
    }
    drop(rt);
    Ok(())
}

#[cfg(not(unix))]
pub fn run() -> Result<()> {
    anyhow::bail!("the demo needs a pseudo-terminal (Linux); on Windows use sim-pos with a COM port pair")
}
