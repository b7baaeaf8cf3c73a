//! How `hisbridge` ends: one message for a failure (the cause once), a distinct exit status per
//! kind of outcome (docs/install.md §8 lists them), and where the config is when `--config` is
//! not given.

use std::path::PathBuf;

/// The exit statuses. Scripts test these; their numbers never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The command could not do its work: a config, a file, the POS, the service manager.
    Failed = 1,
    /// Wrong arguments (what clap reports).
    #[allow(dead_code)]
    Usage = 2,
    /// Done, and IT must look: the statement differs from the journal, the journal lost history.
    Attention = 3,
    /// A check found something the bridge would refuse (`his check`) or a clause a POS fails
    /// (`pos-check`).
    Refused = 4,
    /// `his send | query | cancel`: no final result within `--wait`.
    Timeout = 5,
    /// `his send | query | cancel`: a final result that is not what was asked (a declined
    /// payment, a refused instruction, an order that could not be cancelled).
    NotDone = 6,
}

impl Exit {
    pub fn word(self) -> &'static str {
        match self {
            Exit::Failed => "failed",
            Exit::Usage => "usage",
            Exit::Attention => "attention",
            Exit::Refused => "refused",
            Exit::Timeout => "timeout",
            Exit::NotDone => "not_done",
        }
    }
}

/// A failure with its exit status and, for `--json`, what to print on stdout instead of the
/// message on stderr.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    pub json: Option<serde_json::Value>,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure { exit, message: message.into(), json: None }
    }

    /// Said already (the result on stdout says it): only the exit status tells.
    pub fn silent(mut self) -> Self {
        self.json = Some(serde_json::Value::Null);
        self
    }

    /// With `json`, the failure is printed as `{"error": {...}}` on stdout (with `extra`'s fields).
    pub fn json_if(mut self, json: bool, extra: serde_json::Value) -> Self {
        if json {
            let mut e =
                serde_json::json!({ "exit": self.exit as i32, "kind": self.exit.word(), "message": self.message });
            if let (Some(e), serde_json::Value::Object(extra)) = (e.as_object_mut(), extra) {
                e.extend(extra);
            }
            self.json = Some(serde_json::json!({ "error": e }));
        }
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// The error and its causes on one line, each cause once: a cause whose text the message so far
/// already holds (a `{0}` in an error's own text) is not repeated.
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}

/// Prints a failure once (stderr, or the JSON on stdout) and gives its exit status.
pub fn report(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Failure>() {
        Some(f) => {
            match &f.json {
                Some(serde_json::Value::Null) => {}
                Some(j) => println!("{}", serde_json::to_string_pretty(j).unwrap_or_default()),
                None => eprintln!("error: {}", message(e)),
            }
            f.exit as i32
        }
        None => {
            eprintln!("error: {}", message(e));
            Exit::Failed as i32
        }
    }
}

/// The environment variable naming the config for every command (scripts, a lab box).
pub const CONFIG_ENV: &str = "HISBRIDGE_CONFIG";

/// The config to use: `--config` (or `HISBRIDGE_CONFIG`, which clap reads into it), else the
/// one the MSI installed (the registry's `ConfigFile`, then `%ProgramData%\HISBridge`), else on
/// Linux `/etc/hisbridge/hisbridge.toml`.
pub fn config(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p);
    }
    let candidates = hisbridge_core::config::installed_candidates();
    for c in &candidates {
        if c.is_file() {
            tracing::debug!(config = %c.display(), "config found without --config");
            return Ok(c.clone());
        }
    }
    let looked = candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", ");
    Err(Failure::new(
        Exit::Failed,
        format!(
            "no config: pass --config FILE or set {CONFIG_ENV}{}",
            if looked.is_empty() { String::new() } else { format!(" (none at {looked})") }
        ),
    )
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Inner;
    impl std::fmt::Display for Inner {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("disk I/O error")
        }
    }
    impl std::error::Error for Inner {}

    #[derive(Debug)]
    struct Outer(Inner);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "journal database error: {}", self.0)
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_is_said_once() {
        let e = anyhow::Error::new(Outer(Inner)).context("open /data/journal.db");
        assert_eq!(message(&e), "open /data/journal.db: journal database error: disk I/O error");
        assert_eq!(format!("{e:#}").matches("disk I/O error").count(), 2, "what anyhow alone prints");
    }

    #[test]
    fn json_failures_carry_their_status_and_extra_fields() {
        let f = Failure::new(Exit::Timeout, "no result").json_if(true, serde_json::json!({ "file": "A.ord" }));
        let j = f.json.unwrap();
        assert_eq!(j["error"]["exit"], 5);
        assert_eq!(j["error"]["kind"], "timeout");
        assert_eq!(j["error"]["file"], "A.ord");
    }
}
