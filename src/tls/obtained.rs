//! Certificates portero obtains itself over ACME, and the challenge answers it gives while
//! obtaining them. The ACME task (`crate::acme`) writes here; listeners' handshakes and the
//! HTTP-01 route read. Nothing here talks to a CA.

use super::LoadedCert;
use arc_swap::{ArcSwap, ArcSwapOption};
use dashmap::DashMap;
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Whether a ClientHello is a CA validating TLS-ALPN-01: it offers `acme-tls/1` and nothing
/// else (RFC 8737 §3), so no browser is ever answered with a challenge certificate.
pub fn is_alpn_challenge<'a>(offered: Option<impl Iterator<Item = &'a [u8]>>) -> bool {
    let Some(mut offered) = offered else {
        return false;
    };
    offered.next() == Some(ACME_TLS_ALPN) && offered.next().is_none()
}

/// Challenge answers in flight, for the whole process: a CA validates HTTP-01 on port 80 and
/// TLS-ALPN-01 on port 443, whichever listener those are, so every listener may answer for
/// every ACME order. Entries live only while their order does.
///
/// Behind one name, the CA's validation may reach any instance, not the one ordering: so the
/// ordering instance also writes its answers to the shared storage's `challenges/`
/// directory, and an answer not held here is looked for there.
#[derive(Debug, Default)]
pub struct Answers {
    /// HTTP-01: token -> key authorization.
    http01: DashMap<String, String>,
    /// TLS-ALPN-01: lower-case name -> the self-signed validation certificate.
    tls_alpn01: DashMap<String, Arc<CertifiedKey>>,
    /// The `challenges/` directories of every ACME storage in use.
    shared: ArcSwap<Vec<PathBuf>>,
}

/// The file holding an HTTP-01 answer in a `challenges/` directory; `None` for a token that
/// is not base64url (RFC 8555 §8.3), so no request path can name another file.
pub fn http01_file(dir: &Path, token: &str) -> Option<PathBuf> {
    let safe = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then(|| dir.join(format!("{token}.http01")))
}

/// The file holding a TLS-ALPN-01 certificate and key for `name`; `None` for a name that is
/// not a plain DNS name.
pub fn tls_alpn01_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let name = name.to_ascii_lowercase();
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    safe.then(|| dir.join(format!("{name}.alpn.pem")))
}

impl Answers {
    /// Where answers written by other instances are looked for.
    pub fn share(&self, dirs: Vec<PathBuf>) {
        self.shared.store(Arc::new(dirs));
    }

    /// The key authorization for an HTTP-01 `token`, while its order is in flight here or in
    /// another instance sharing storage.
    pub fn http01(&self, token: &str) -> Option<String> {
        if let Some(answer) = self.http01.get(token) {
            return Some(answer.value().clone());
        }
        self.shared
            .load()
            .iter()
            .filter_map(|dir| http01_file(dir, token))
            .find_map(|file| std::fs::read_to_string(file).ok())
    }

    /// Starts answering `token`.
    pub fn put_http01(&self, token: &str, key_authorization: &str) {
        self.http01
            .insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering `token`.
    pub fn drop_http01(&self, token: &str) {
        self.http01.remove(token);
    }

    /// The validation certificate for `name`, while its order is in flight here or in
    /// another instance sharing storage.
    pub fn tls_alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(key) = self.tls_alpn01.get(&name.to_ascii_lowercase()) {
            return Some(Arc::clone(key.value()));
        }
        self.shared
            .load()
            .iter()
            .filter_map(|dir| tls_alpn01_file(dir, name))
            .filter(|file| file.exists())
            .find_map(|file| super::load_certified_key(&file).ok())
    }

    /// Starts answering TLS-ALPN-01 for `name`.
    pub fn put_tls_alpn01(&self, name: &str, key: Arc<CertifiedKey>) {
        self.tls_alpn01.insert(name.to_ascii_lowercase(), key);
    }

    /// Stops answering for `name`.
    pub fn drop_tls_alpn01(&self, name: &str) {
        self.tls_alpn01.remove(&name.to_ascii_lowercase());
    }
}

/// The certificate one ACME section obtained: none until the first order succeeds (or
/// storage had one), then swapped whole at each renewal. Handshakes read it lock-free.
#[derive(Debug)]
pub struct Obtained {
    names: Vec<String>,
    current: ArcSwapOption<LoadedCert>,
}

impl Obtained {
    /// Nothing obtained yet for `names`.
    pub fn new(names: Vec<String>) -> Self {
        Self {
            names,
            current: ArcSwapOption::empty(),
        }
    }

    /// The names ordered.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The certificate being served, if any.
    pub fn get(&self) -> Option<Arc<LoadedCert>> {
        self.current.load_full()
    }

    /// Serves `cert` from the next handshake on; established connections keep theirs.
    pub fn install(&self, cert: Arc<LoadedCert>) {
        self.current.store(Some(cert));
    }
}

/// What a listener with an ACME section needs at handshake time.
#[derive(Debug, Clone)]
pub struct AcmeSource {
    /// Its certificate.
    pub obtained: Arc<Obtained>,
    /// The process's challenge answers.
    pub answers: Arc<Answers>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(protocols: &[&'static [u8]]) -> Option<impl Iterator<Item = &'static [u8]>> {
        Some(protocols.iter().copied())
    }

    #[test]
    fn only_a_hello_offering_acme_tls_alone_is_a_challenge() {
        assert!(is_alpn_challenge(offered(&[b"acme-tls/1"])));
        assert!(!is_alpn_challenge(offered(&[b"h2", b"acme-tls/1"])));
        assert!(!is_alpn_challenge(offered(&[b"acme-tls/1", b"http/1.1"])));
        assert!(!is_alpn_challenge(offered(&[b"h2"])));
        assert!(!is_alpn_challenge(offered(&[])));
        assert!(!is_alpn_challenge(None::<std::iter::Empty<&[u8]>>));
    }

    #[test]
    fn http01_tokens_are_answered_only_while_in_flight() {
        let answers = Answers::default();
        assert_eq!(answers.http01("tok"), None);
        answers.put_http01("tok", "tok.thumb");
        assert_eq!(answers.http01("tok").as_deref(), Some("tok.thumb"));
        answers.drop_http01("tok");
        assert_eq!(answers.http01("tok"), None);
    }

    #[test]
    fn answers_written_by_another_instance_are_found_in_shared_storage() {
        let dir = tempfile::tempdir().unwrap();
        let answers = Answers::default();
        answers.share(vec![dir.path().to_path_buf()]);
        assert_eq!(answers.http01("tok-1_A"), None);
        std::fs::write(http01_file(dir.path(), "tok-1_A").unwrap(), "tok-1_A.thumb").unwrap();
        assert_eq!(answers.http01("tok-1_A").as_deref(), Some("tok-1_A.thumb"));
        assert!(answers.tls_alpn01("a.test").is_none());
    }

    #[test]
    fn no_token_or_name_can_name_a_file_outside_the_directory() {
        let dir = Path::new("/shared/challenges");
        for token in ["../account", "a/b", "", "a.b", "%2e%2e"] {
            assert_eq!(http01_file(dir, token), None, "{token:?}");
        }
        for name in ["../x", "a/b", "", ".hidden", "a b"] {
            assert_eq!(tls_alpn01_file(dir, name), None, "{name:?}");
        }
        assert_eq!(
            tls_alpn01_file(dir, "A.test"),
            Some(dir.join("a.test.alpn.pem"))
        );
    }
}
