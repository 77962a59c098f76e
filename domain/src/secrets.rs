//! Provider credentials at rest: AES-256-GCM with a random 96-bit nonce per value, bound
//! to its row (tenant and provider as associated data) so a ciphertext copied to another
//! tenant's row does not decrypt.
//!
//! The key comes from `SECRETS_KEY`; the embedded default creates a key file beside its
//! SQLite database on first start and keeps using it.

use std::fmt;
use std::path::{Path, PathBuf};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the secrets key file {path}: {message}")]
    KeyFile { path: PathBuf, message: String },
    #[error("a stored credential could not be decrypted (wrong SECRETS_KEY?)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// Encrypts and decrypts provider credentials. Never prints its key.
pub struct Cipher {
    key: LessSafeKey,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Result<Self, SecretsError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SecretsError::Encrypt)?;
        Ok(Cipher {
            key: LessSafeKey::new(unbound),
        })
    }

    /// The key from `SECRETS_KEY`, or the embedded default's key file (created if missing).
    pub fn from_settings(settings: &Settings) -> Result<Self, SecretsError> {
        if let Some(hex_key) = &settings.providers.secrets_key {
            let bytes = decode_key(hex_key.expose()).ok_or_else(|| SecretsError::KeyFile {
                path: PathBuf::from("SECRETS_KEY"),
                message: "not 64 hex characters".into(),
            })?;
            return Self::new(&bytes);
        }
        match key_file_path(settings.database.url.expose()) {
            Some(path) => Self::new(&load_or_create_key_file(&path)?),
            None => {
                // In-memory SQLite: nothing outlives the process, so neither need the key.
                tracing::warn!(
                    "no SECRETS_KEY and no database file: provider credentials use a key that lasts only as long as this process"
                );
                Self::new(&random_key()?)
            }
        }
    }

    /// `hex(nonce || ciphertext || tag)`.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> Result<String, SecretsError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| SecretsError::Encrypt)?;
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| SecretsError::Encrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(hex::encode(out))
    }

    pub fn decrypt(&self, stored: &str, context: &str) -> Result<String, SecretsError> {
        let bytes = hex::decode(stored).map_err(|_| SecretsError::Decrypt)?;
        if bytes.len() < NONCE_LEN {
            return Err(SecretsError::Decrypt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SecretsError::Decrypt)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| SecretsError::Decrypt)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SecretsError::Decrypt)
    }
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    hex::decode(text.trim()).ok()?.try_into().ok()
}

fn random_key() -> Result<[u8; 32], SecretsError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|_| SecretsError::Encrypt)?;
    Ok(key)
}

/// `sqlite://dir/switchboard.db?mode=rwc` keeps its key in `dir/switchboard.db.key`.
fn key_file_path(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.trim_start_matches("//");
    let path = rest.split('?').next()?;
    if path.is_empty() || path.contains(":memory:") || path == "memory" {
        return None;
    }
    Some(PathBuf::from(format!("{path}.key")))
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; 32], SecretsError> {
    let err = |message: String| SecretsError::KeyFile {
        path: path.to_owned(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => decode_key(&text).ok_or_else(|| err("does not hold 64 hex characters".into())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_key()?;
            write_private(path, &hex::encode(key)).map_err(|e| err(e.to_string()))?;
            tracing::info!(path = %path.display(), "created a secrets key file for provider credentials; back it up with the database");
            Ok(key)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_to_its_row() {
        let c = Cipher::new(&[7u8; 32]).unwrap();
        let sealed = c.encrypt("bn-secret-key", "tenant-a/BOLNA").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(
            c.decrypt(&sealed, "tenant-a/BOLNA").unwrap(),
            "bn-secret-key"
        );
        assert!(c.decrypt(&sealed, "tenant-b/BOLNA").is_err());
        assert!(
            Cipher::new(&[8u8; 32])
                .unwrap()
                .decrypt(&sealed, "tenant-a/BOLNA")
                .is_err()
        );
        assert!(c.decrypt("zz", "tenant-a/BOLNA").is_err());
        // A fresh nonce each time.
        assert_ne!(
            sealed,
            c.encrypt("bn-secret-key", "tenant-a/BOLNA").unwrap()
        );
    }

    #[test]
    fn key_file_sits_beside_the_database() {
        assert_eq!(
            key_file_path("sqlite://data/switchboard.db?mode=rwc"),
            Some(PathBuf::from("data/switchboard.db.key"))
        );
        assert_eq!(key_file_path("sqlite::memory:"), None);
        assert_eq!(key_file_path("postgres://x/y"), None);
    }

    #[test]
    fn key_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("sb-key-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.key");
        let first = load_or_create_key_file(&path).unwrap();
        assert_eq!(load_or_create_key_file(&path).unwrap(), first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
