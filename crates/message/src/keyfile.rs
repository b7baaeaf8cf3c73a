//! The shared AES key on disk: a small TOML file `key_id = "..."`, `key = "<base64 of 32 bytes>"`.
//! It must be readable by the bridge's account alone (checked on Unix; on Windows the installer
//! sets the ACL, docs/install.md).

use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::envelope::Key;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write key file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    key_id: String,
    key: String,
}

pub fn load(path: &Path) -> Result<Key, KeyFileError> {
    let meta = std::fs::metadata(path).map_err(|source| KeyFileError::Read { path: path.into(), source })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions { path: path.into(), mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read { path: path.into(), source })?;
    parse(&text).map_err(|reason| KeyFileError::Invalid { path: path.into(), reason })
}

/// Parses key file text. Error reasons never contain key material.
pub fn parse(text: &str) -> Result<Key, String> {
    let raw: Raw = toml::from_str(text).map_err(|_| "expected key_id = \"...\" and key = \"<base64>\"".to_string())?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(raw.key.trim())
        .map_err(|_| "key is not base64".to_string())?;
    let bytes: [u8; 32] =
        bytes.try_into().map_err(|b: Vec<u8>| format!("key has {} bytes, AES-256 needs 32", b.len()))?;
    Key::new(&raw.key_id, bytes).map_err(|e| e.to_string())
}

pub fn to_text(key: &Key) -> String {
    format!(
        "# HIS Bridge shared key. Keep secret: readable by the bridge's account only.\nkey_id = \"{}\"\nkey = \"{}\"\n",
        key.id(),
        base64::engine::general_purpose::STANDARD.encode(key.expose_bytes())
    )
}

/// Writes a key file readable by the owner only. Refuses to replace an existing file.
pub fn write_new(path: &Path, key: &Key) -> Result<(), KeyFileError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| KeyFileError::Write { path: path.into(), source })?;
    f.write_all(to_text(key).as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|source| KeyFileError::Write { path: path.into(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_loads_and_checks_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        let k = Key::generate("K1").unwrap();
        write_new(&p, &k).unwrap();
        assert!(write_new(&p, &k).is_err());
        let back = load(&p).unwrap();
        assert_eq!(back.expose_bytes(), k.expose_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(load(&p), Err(KeyFileError::Permissions { mode: 0o644, .. })));
        }
        let bad = parse("key_id = \"K1\"\nkey = \"AAAA\"\n").unwrap_err();
        assert_eq!(bad, "key has 3 bytes, AES-256 needs 32");
    }
}
