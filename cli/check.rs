//! `hisbridge his check`: what the bridge would say about an HIS's instruction files, at once
//! and in words, for joint testing.

use std::path::{Path, PathBuf};

use anyhow::Result;
use hisbridge_core::config::Config;
use hisbridge_core::envelope::{self, Direction, EnvelopeError};
use hisbridge_core::folders::{classify, NameKind};
use hisbridge_core::his::{Instruction, InstructionKind};
use hisbridge_core::keyfile;

use crate::exit::{Exit, Failure};

pub fn run(config: &Path, files: &[PathBuf], json: bool) -> Result<()> {
    let cfg = Config::load(config)?;
    let key = keyfile::load(&cfg.key_file)?;
    let mut bad = 0;
    let mut report = Vec::new();
    for f in files {
        let (problems, what) = check(&cfg, &key, f);
        if !problems.is_empty() {
            bad += 1;
        }
        if json {
            report.push(serde_json::json!({
                "file": f.display().to_string(),
                "ok": problems.is_empty(),
                "instruction": what,
                "problems": problems.iter().map(|p| {
                    // "E_CODE: text": the code apart, for programs.
                    let (code, text) = match p.split_once(": ") {
                        Some((c, t)) if c.starts_with("E_") => (Some(c), t),
                        _ => (None, p.as_str()),
                    };
                    serde_json::json!({ "code": code, "message": text })
                }).collect::<Vec<_>>(),
            }));
        } else if problems.is_empty() {
            println!("OK    {}", f.display());
            if let Some(w) = what {
                println!("      {w}");
            }
        } else {
            println!("BAD   {}", f.display());
            for p in problems {
                println!("      - {p}");
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "files": report, "refused": bad }))?);
    }
    if bad > 0 {
        let f = Failure::new(Exit::Refused, format!("{bad} of {} file(s) would be refused", files.len()));
        return Err(if json { f.silent() } else { f }.into());
    }
    Ok(())
}

/// The problems with one file, and for a good order what it asks.
fn check(cfg: &Config, key: &envelope::Key, f: &Path) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    match classify(name) {
        NameKind::Instruction { .. } => {}
        NameKind::BadName => out.push(format!(
            "E_FILE_NAME: {name:?}: use 1-80 of A-Z a-z 0-9 _ - @ . before .ord, no Windows reserved names (CON, NUL, COM1...)"
        )),
        NameKind::Ignored | NameKind::Marker { .. } => {
            out.push(format!("{name:?} is not taken by the bridge: instruction files end in .ord and do not start with '.'"))
        }
    }
    let bytes = match std::fs::read(f) {
        Ok(b) => b,
        Err(e) => {
            out.push(format!("cannot read: {e}"));
            return (out, None);
        }
    };
    let plain = match key.open(Direction::ToBridge, &bytes) {
        Ok(p) => p,
        Err(e) => {
            let hint = match &e {
                EnvelopeError::KeyId { expected, got } => {
                    format!("E_KEY_ID: encrypted with key id {got:?}; this bridge's key id is {expected:?}")
                }
                EnvelopeError::Tag => "E_DECRYPT: the tag does not verify: another key with the same id, altered bytes, or AAD not \"HB1.<key id>.ORD\"".into(),
                EnvelopeError::Direction { .. } => "E_DIRECTION: this is a result (RES), not an instruction (ORD)".into(),
                EnvelopeError::Base64 => "E_ENVELOPE: the body is not standard base64 (with = padding)".into(),
                EnvelopeError::Truncated => "E_ENVELOPE: the body is shorter than nonce (12) + tag (16) bytes".into(),
                other => format!("E_ENVELOPE: {other}"),
            };
            out.push(hint);
            return (out, None);
        }
    };
    let ins = match Instruction::parse(&plain) {
        Ok(i) => i,
        Err(e) => {
            out.push(format!("{}: {e}", e.code().as_str()));
            return (out, None);
        }
    };
    if !cfg.terminals.contains(&ins.terminal_id) {
        out.push(format!(
            "E_TERMINAL: terminal {:?} is not configured (known: {})",
            ins.terminal_id,
            cfg.terminals.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(sent) = ins.sent_at {
        let skew = (chrono::Local::now().fixed_offset() - sent).num_seconds();
        if skew.unsigned_abs() > cfg.intake.replay_window.as_secs() {
            out.push(format!(
                "E_STALE: sent_at is {skew} s from this computer's clock (window {} s); fine for a check of an old file, refused when sent",
                cfg.intake.replay_window.as_secs()
            ));
        }
    }
    let what = (out.is_empty() && ins.kind == InstructionKind::Order).then(|| {
        format!("{} {} order {} amount {}", ins.terminal_id, kind_word(&ins), ins.order_no, ins.amount.expect("order"))
    });
    (out, what)
}

fn kind_word(ins: &Instruction) -> &'static str {
    if ins.amount.is_some_and(|a| a.is_refund()) {
        "refund"
    } else {
        "collect"
    }
}
