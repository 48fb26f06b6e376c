//! The storage directory: the account per ACME directory, the certificate with its key in one
//! file (so a reader never pairs a new certificate with an old key), and the lock that lets
//! instances sharing the directory take turns. Everything is written to a temporary file with
//! mode 0600 and renamed into place.

use super::AcmeError;
use crate::config::AcmeConfig;
use crate::tls::{self, LoadedCert};
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One ACME section's files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// `NAME.HASH`: the first name, and a hash of the directory URL and key type, so a
    /// staging certificate is never served after switching to production.
    stem: String,
    /// The account, one per directory URL.
    account: PathBuf,
}

/// Held while this instance orders; released when dropped (the kernel releases it if the
/// process dies, so a crash never leaves the others locked out).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

fn short_hash(parts: &[&str]) -> String {
    let mut hasher = fnv::FnvHasher::default();
    parts.hash(&mut hasher);
    format!("{:08x}", hasher.finish() as u32)
}

impl Store {
    /// The files of `config` (nothing is touched yet).
    pub fn new(config: &AcmeConfig) -> Self {
        let key_type = format!("{:?}", config.key_type);
        let stem = format!(
            "{}.{}",
            config.names[0],
            short_hash(&[&config.directory, &key_type])
        );
        let account = config
            .storage
            .join(format!("account.{}.json", short_hash(&[&config.directory])));
        Self {
            dir: config.storage.clone(),
            stem,
            account,
        }
    }

    /// The certificate file: the chain, leaf first, then its private key.
    pub fn certificate_path(&self) -> PathBuf {
        self.dir.join(format!("{}.pem", self.stem))
    }

    /// The certificate stored, if any; `Err` when a file is there but unusable.
    pub fn certificate(&self) -> Result<Option<LoadedCert>, AcmeError> {
        let path = self.certificate_path();
        if !path.exists() {
            return Ok(None);
        }
        tls::load_cert(&path, &path)
            .map(Some)
            .map_err(AcmeError::Stored)
    }

    /// Stores a new chain and key.
    pub fn save_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), AcmeError> {
        let mut both = String::with_capacity(chain_pem.len() + key_pem.len() + 1);
        both.push_str(chain_pem.trim_end());
        both.push('\n');
        both.push_str(key_pem);
        self.write(&self.certificate_path(), both.as_bytes())
    }

    /// The account's credentials (JSON), if stored.
    pub fn account(&self) -> Result<Option<String>, AcmeError> {
        match std::fs::read_to_string(&self.account) {
            Ok(json) => Ok(Some(json)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(&self.account, e)),
        }
    }

    /// Stores the account's credentials.
    pub fn save_account(&self, json: &str) -> Result<(), AcmeError> {
        self.write(&self.account, json.as_bytes())
    }

    /// Where challenge answers are shared with other instances.
    pub fn challenges(&self) -> PathBuf {
        self.dir.join("challenges")
    }

    /// Shares a challenge answer: `file` is in [`Store::challenges`].
    pub fn put_challenge(&self, file: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.challenges())
            .map_err(|e| self.error(&self.challenges(), e))?;
        self.write(file, bytes)
    }

    /// Removes the account the CA no longer knows.
    pub fn forget_account(&self) -> Result<(), AcmeError> {
        match std::fs::remove_file(&self.account) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.error(&self.account, e)),
            _ => Ok(()),
        }
    }

    /// Takes the order lock, or `None` when another instance holds it.
    pub fn try_lock(&self) -> Result<Option<Lock>, AcmeError> {
        self.ensure_dir()?;
        let path = self.dir.join(format!("{}.lock", self.stem));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| self.error(&path, e))?;
        // flock(2), not File::try_lock: that is newer than the crate's rust-version.
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(self.error(&path, e.into())),
        }
    }

    fn ensure_dir(&self) -> Result<(), AcmeError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| self.error(&self.dir, e))
    }

    /// Writes `bytes` to a private temporary file beside `path`, syncs it, and renames it
    /// over `path`: readers see the old file or the new one, never half of one.
    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
        self.ensure_dir()?;
        let temporary = path.with_extension(format!(
            "tmp.{}.{:x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let written = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temporary, path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temporary);
            return Err(self.error(path, e));
        }
        Ok(())
    }

    fn error(&self, path: &Path, source: std::io::Error) -> AcmeError {
        AcmeError::Storage {
            path: path.display().to_string(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::acme::{Challenge, KeyType};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn config(dir: &Path, directory: &str) -> AcmeConfig {
        AcmeConfig {
            directory: directory.into(),
            contact: None,
            names: vec!["a.test".into()],
            storage: dir.join("acme"),
            challenges: vec![Challenge::Http01],
            ca_bundle: None,
            key_type: KeyType::EcdsaP256,
            retry: Duration::from_secs(1),
        }
    }

    #[test]
    fn files_are_private_and_per_directory() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Store::new(&config(dir.path(), "https://staging.test/dir"));
        let production = Store::new(&config(dir.path(), "https://production.test/dir"));
        assert_ne!(staging.certificate_path(), production.certificate_path());
        staging.save_account("{}").unwrap();
        assert_eq!(staging.account().unwrap().as_deref(), Some("{}"));
        assert_eq!(production.account().unwrap(), None);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&staging.account), 0o600);
        assert_eq!(mode(&dir.path().join("acme")), 0o700);
        assert!(staging.certificate().unwrap().is_none());
        let leftovers = std::fs::read_dir(dir.path().join("acme")).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file left behind");
    }

    #[test]
    fn one_holder_of_the_lock_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(&config(dir.path(), "https://ca.test/dir"));
        let held = store.try_lock().unwrap().expect("free at first");
        assert!(store.try_lock().unwrap().is_none(), "held by another");
        drop(held);
        assert!(store.try_lock().unwrap().is_some(), "free again");
    }
}
