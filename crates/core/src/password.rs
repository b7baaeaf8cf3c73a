//! Passwords kept as Argon2id hashes (PHC strings, `$argon2id$v=19$...`): the users of the hub's
//! monitoring page and the IT password that guards the tray app's settings
//! (`[tray] it_password_hash`, set by `hisbridge it-password`). The password itself is never
//! stored, logged or echoed.
//!
//! [`SettingsLock`] is the guard itself, sans-IO: the caller gives `now`; it counts failed tries
//! and makes the next try wait after [`MAX_TRIES`] of them, so the password cannot be guessed
//! at the cashier's window.

use std::time::{Duration, Instant};

/// The fewest characters a password may have.
pub const MIN_LEN: usize = 8;
/// Failed tries in a row before the next one has to wait [`BLOCKED_FOR`].
pub const MAX_TRIES: u32 = 5;
pub const BLOCKED_FOR: Duration = Duration::from_secs(60);
/// How long the settings stay unlocked after the last unlock or save.
pub const UNLOCKED_FOR: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_LEN} characters")]
    TooShort,
    #[error("not an Argon2 password hash (set it with `hisbridge it-password`): {0}")]
    BadHash(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// The Argon2id hash of a password, with a fresh salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    if password.chars().count() < MIN_LEN {
        return Err(PasswordError::TooShort);
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether a text is a password hash this module can check against.
pub fn check_hash(hash: &str) -> Result<(), PasswordError> {
    let h = argon2::PasswordHash::new(hash).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if !h.algorithm.as_str().starts_with("argon2") {
        return Err(PasswordError::BadHash(format!("algorithm {}", h.algorithm)));
    }
    Ok(())
}

/// Whether `password` is the one `hash` was made from (false for a malformed hash).
pub fn verify(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::PasswordHash::new(hash)
        .is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The password alone in its file (`--password-file`, `[hub] password_file`): surrounding
/// whitespace and a final newline are not part of it; an empty file is an error.
pub fn read_file(path: &std::path::Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let p = text.trim_matches(|c| c == '\r' || c == '\n' || c == ' ' || c == '\t');
    if p.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"));
    }
    Ok(p.to_string())
}

/// Why an unlock or a change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The password was wrong; `left` tries before the next one has to wait.
    Wrong { left: u32 },
    /// Too many wrong tries: the next is taken after `secs` seconds.
    Blocked { secs: u64 },
    /// The settings are locked: the IT password must be given first.
    Locked,
    /// The config's hash is damaged: no password opens the settings until IT sets it again.
    Damaged,
}

impl Refusal {
    /// In the cashier's words, Chinese then English.
    pub fn text(&self) -> (String, String) {
        match self {
            Refusal::Wrong { left } if *left > 0 => {
                (format!("密码不对，还可以再试 {left} 次"), format!("Wrong password: {left} more tries before a pause"))
            }
            Refusal::Wrong { .. } => (
                format!("密码不对，请 {} 秒后再试", BLOCKED_FOR.as_secs()),
                format!("Wrong password: try again in {} seconds", BLOCKED_FOR.as_secs()),
            ),
            Refusal::Blocked { secs } => (
                format!("密码错误次数过多，请 {secs} 秒后再试"),
                format!("Too many wrong tries: try again in {secs} seconds"),
            ),
            Refusal::Damaged => (
                "配置中的信息科密码已损坏，设置保持锁定：请信息科重新运行 hisbridge it-password".into(),
                "The IT password's hash in the config is damaged; the settings stay locked: IT, run hisbridge it-password again".into(),
            ),
            Refusal::Locked => (
                "设置已锁定：请先输入信息科密码解锁".into(),
                "The settings are locked: enter the IT password first".into(),
            ),
        }
    }
}

/// The guard in front of the tray's settings. Without a hash the settings are open (the config
/// file's ACL alone decides, docs/security.md); with one, every change needs an unlock that
/// lasts [`UNLOCKED_FOR`] from the last use.
#[derive(Debug, Clone, Default)]
pub struct SettingsLock {
    hash: Option<String>,
    failures: u32,
    blocked_until: Option<Instant>,
    unlocked_until: Option<Instant>,
}

impl SettingsLock {
    pub fn new(hash: Option<String>) -> Self {
        SettingsLock { hash, ..Default::default() }
    }

    /// Takes the config's hash again (after a save or `hisbridge it-password`); a changed hash
    /// locks the settings.
    pub fn set_hash(&mut self, hash: Option<String>) {
        if hash != self.hash {
            self.hash = hash;
            self.unlocked_until = None;
        }
    }

    pub fn protected(&self) -> bool {
        self.hash.is_some()
    }

    /// Whether a change may be made now.
    pub fn is_open(&self, now: Instant) -> bool {
        self.hash.is_none() || self.unlocked_until.is_some_and(|t| now < t)
    }

    /// Tries a password: a right one unlocks until `now + UNLOCKED_FOR`.
    pub fn unlock(&mut self, now: Instant, password: &str) -> Result<(), Refusal> {
        let Some(hash) = &self.hash else { return Ok(()) };
        if check_hash(hash).is_err() {
            return Err(Refusal::Damaged);
        }
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(Refusal::Blocked { secs: (until - now).as_secs().max(1) });
            }
            self.blocked_until = None;
        }
        if verify(hash, password) {
            self.failures = 0;
            self.unlocked_until = Some(now + UNLOCKED_FOR);
            return Ok(());
        }
        self.failures += 1;
        if self.failures >= MAX_TRIES {
            self.failures = 0;
            self.blocked_until = Some(now + BLOCKED_FOR);
            return Err(Refusal::Wrong { left: 0 });
        }
        Err(Refusal::Wrong { left: MAX_TRIES - self.failures })
    }

    /// Before a change: refused while locked; otherwise the unlock lasts again from now.
    pub fn allow(&mut self, now: Instant) -> Result<(), Refusal> {
        if !self.is_open(now) {
            return Err(Refusal::Locked);
        }
        if self.hash.is_some() {
            self.unlocked_until = Some(now + UNLOCKED_FOR);
        }
        Ok(())
    }

    /// Locks at once (the cashier left the settings page, or pressed 锁定).
    pub fn lock(&mut self) {
        self.unlocked_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("it-secret-9").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("it-secret-9"));
        assert!(verify(&h, "it-secret-9"));
        assert!(!verify(&h, "it-secret-8"));
        assert!(!verify("not a hash", "it-secret-9"));
        assert_ne!(hash("it-secret-9").unwrap(), h, "a fresh salt each time");
        check_hash(&h).unwrap();
        assert!(matches!(check_hash("it-secret-9"), Err(PasswordError::BadHash(_))));
        assert_eq!(hash("short"), Err(PasswordError::TooShort));
    }

    #[test]
    fn without_a_hash_the_settings_are_open() {
        let mut l = SettingsLock::new(None);
        let now = Instant::now();
        assert!(!l.protected() && l.is_open(now));
        assert_eq!(l.allow(now), Ok(()));
    }

    #[test]
    fn a_right_password_unlocks_for_a_while_and_a_save_extends_it() {
        let mut l = SettingsLock::new(Some(hash("it-secret-9").unwrap()));
        let t0 = Instant::now();
        assert!(!l.is_open(t0));
        assert_eq!(l.allow(t0), Err(Refusal::Locked));
        l.unlock(t0, "it-secret-9").unwrap();
        let later = t0 + UNLOCKED_FOR - Duration::from_secs(1);
        assert_eq!(l.allow(later), Ok(()), "still open");
        assert!(l.is_open(later + Duration::from_secs(2)), "the save extended it");
        assert!(!l.is_open(later + UNLOCKED_FOR));
        l.unlock(later, "it-secret-9").unwrap();
        l.lock();
        assert!(!l.is_open(later));
        // A new password (hisbridge it-password) locks an open session.
        l.unlock(later, "it-secret-9").unwrap();
        l.set_hash(Some(hash("another-pass").unwrap()));
        assert!(!l.is_open(later));
    }

    #[test]
    fn a_damaged_hash_keeps_the_settings_locked() {
        let mut l = SettingsLock::new(Some("$argon2idv=19$broken".into()));
        let now = Instant::now();
        assert!(l.protected() && !l.is_open(now));
        assert_eq!(l.unlock(now, "anything-at-all"), Err(Refusal::Damaged));
        assert_eq!(l.allow(now), Err(Refusal::Locked));
        assert!(l.unlock(now, "").is_err());
    }

    #[test]
    fn wrong_tries_make_the_next_wait() {
        let mut l = SettingsLock::new(Some(hash("it-secret-9").unwrap()));
        let t0 = Instant::now();
        for left in (1..MAX_TRIES).rev() {
            assert_eq!(l.unlock(t0, "guess"), Err(Refusal::Wrong { left }));
        }
        assert_eq!(l.unlock(t0, "guess"), Err(Refusal::Wrong { left: 0 }));
        // Blocked: even the right password waits.
        assert_eq!(l.unlock(t0 + Duration::from_secs(1), "it-secret-9"), Err(Refusal::Blocked { secs: 59 }));
        assert!(!l.is_open(t0 + Duration::from_secs(1)));
        l.unlock(t0 + BLOCKED_FOR, "it-secret-9").unwrap();
        assert!(l.is_open(t0 + BLOCKED_FOR));
        // The count starts again after a success.
        l.lock();
        assert_eq!(l.unlock(t0 + BLOCKED_FOR, "guess"), Err(Refusal::Wrong { left: MAX_TRIES - 1 }));
        for r in [Refusal::Wrong { left: 2 }, Refusal::Wrong { left: 0 }, Refusal::Blocked { secs: 7 }, Refusal::Locked]
        {
            let (zh, en) = r.text();
            assert!(!zh.is_empty() && en.is_ascii(), "{zh} {en}");
        }
    }
}
