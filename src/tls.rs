//! TLS with rustls (aws-lc-rs provider: see README): server configs for HTTPS listeners (several
//! certificates chosen by SNI, wildcards included, the first as default; ALPN h2 and http/1.1;
//! session tickets and a session cache; optional client certificates) and client configs for
//! HTTPS backends. Certificates and keys are read and checked when the config is, so
//! `portero check` finds a bad key and a reload with one changes nothing. Certificates
//! obtained over ACME are held in [`Obtained`] and picked by the same resolver.

use rustls::crypto::aws_lc_rs;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

mod obtained;
mod resolver;

pub use obtained::{
    ACME_TLS_ALPN, AcmeSource, Answers, Obtained, http01_file, is_alpn_challenge, tls_alpn01_file,
};
use resolver::SniResolver;
pub use resolver::chosen;

/// Session cache entries per listener (resumption without tickets, TLS 1.2 clients).
const SESSION_CACHE: usize = 16 * 1024;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("{path}: {problem}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the material.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, problem: impl fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// A certificate chain with its key, and what portero needs to know about the leaf.
pub struct LoadedCert {
    /// Ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf (subject alternative names, else the common name), lower case.
    pub names: Vec<String>,
    /// Its notBefore, as Unix seconds.
    pub not_before: i64,
    /// Its notAfter, as Unix seconds.
    pub not_after: i64,
    /// Its serial number, hex.
    pub serial: String,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("names", &self.names)
            .field("serial", &self.serial)
            .finish()
    }
}

/// Reads a PEM certificate chain (leaf first) and its PEM private key (RSA, ECDSA or Ed25519).
pub fn load_cert(cert: &Path, key: &Path) -> Result<LoadedCert, TlsError> {
    let chain = load_chain(cert)?;
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| file_error(key, format!("no usable private key: {e}")))?;
    let signing = aws_lc_rs::sign::any_supported_type(&private).map_err(|e| file_error(key, e))?;
    let leaf = describe(&chain[0]).map_err(|e| file_error(cert, e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display())))?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        names: leaf.names,
        not_before: leaf.not_before,
        not_after: leaf.not_after,
        serial: leaf.serial,
    })
}

/// Reads a chain and its key from one PEM file as they are, without parsing the leaf: for a
/// TLS-ALPN-01 validation certificate, whose critical acmeIdentifier extension webpki (and so
/// `load_cert`'s key check) refuses.
pub fn load_certified_key(path: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_chain(path)?;
    let private = PrivateKeyDer::from_pem_file(path)
        .map_err(|e| file_error(path, format!("no usable private key: {e}")))?;
    let signing = aws_lc_rs::sign::any_supported_type(&private).map_err(|e| file_error(path, e))?;
    Ok(Arc::new(CertifiedKey::new(chain, signing)))
}

/// Reads every certificate of a PEM file.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if chain.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(chain)
}

/// What `LoadedCert` keeps of a leaf.
struct Leaf {
    names: Vec<String>,
    not_before: i64,
    not_after: i64,
    serial: String,
}

fn describe(leaf: &CertificateDer<'_>) -> Result<Leaf, String> {
    use x509_parser::prelude::*;
    let (_, cert) =
        parse_x509_certificate(leaf).map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    GeneralName::IPAddress(ip) => match ip.len() {
                        4 => Some(std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_ascii_lowercase),
        );
    }
    Ok(Leaf {
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        serial: cert.raw_serial_as_string(),
    })
}

/// Whether a certificate with `names` covers `host` (exactly, or by a `*.` wildcard of one label).
pub fn covers(names: &[String], host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    names.iter().any(|name| match name.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => *name == host,
    })
}

/// Why a server handshake failed, as a metric label: what a client can cause is counted
/// (`portero_tls_handshake_errors_total{reason}`), not logged.
pub fn failure_reason(error: &std::io::Error) -> &'static str {
    use rustls::Error as E;
    let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => "closed",
            _ => "io",
        };
    };
    match tls {
        // A name no certificate covers, or an ACME name not obtained yet (see `chosen`).
        E::General(why) if why.contains("no server certificate") => "no_certificate",
        E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
        E::AlertReceived(_) => "alert_received",
        E::NoCertificatesPresented | E::InvalidCertificate(_) => "client_certificate",
        E::InvalidMessage(_)
        | E::InappropriateMessage { .. }
        | E::InappropriateHandshakeMessage { .. }
        | E::PeerMisbehaved(_)
        | E::PeerSentOversizedRecord
        | E::DecryptError => "protocol",
        _ => "other",
    }
}

/// A listener's server config: `certs` from files, and with `acme` the certificate obtained
/// over ACME and the TLS-ALPN-01 answers. `client_ca` requires and verifies client
/// certificates.
pub fn server_config(
    certs: &[Arc<LoadedCert>],
    acme: Option<AcmeSource>,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(server_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots.add(ca.clone())?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::File {
                    path: "client_ca".into(),
                    problem: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let answers_alpn_challenge = acme.is_some();
    let mut config = builder.with_cert_resolver(Arc::new(SniResolver::new(certs.to_vec(), acme)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Last, so a client offering it with others never gets it (see `is_alpn_challenge`).
    if answers_alpn_challenge {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    // See `server_provider`.
    config.ignore_client_order = true;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// aws-lc-rs with the AES-128-GCM suites first, chosen by the server's order rather than the
/// client's. Browsers already ask for AES-128-GCM first; OpenSSL-based clients ask for
/// AES-256-GCM-SHA384, whose SHA-384 key schedule has no instructions of its own on x86
/// (SHA-256 has SHA-NI), and that alone made a full handshake cost about 20% more CPU (about
/// 400 -> 330 µs per connection, benches/compare.py tls-new). Go's crypto/tls prefers it the
/// same way. ChaCha20 stays for clients that offer nothing else.
fn server_provider() -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS13_AES_128_GCM_SHA256,
    };
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|suite| {
        !matches!(
            suite.suite(),
            TLS13_AES_128_GCM_SHA256
                | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// A client config for HTTPS backends: `ca_file` or the system's roots; a client certificate
/// for mTLS.
pub fn client_config(
    ca_file: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for ca in load_chain(path)? {
                roots.add(ca).map_err(|e| file_error(path, e))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for ca in found.certs {
                // One unusable system root is no reason to refuse the others.
                let _ = roots.add(ca);
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    // ALPN (h2, http/1.1) is set by the HTTPS connector built from this config.
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = load_chain(cert)?;
            let private = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| file_error(key, format!("no usable private key: {e}")))?;
            builder.with_client_auth_cert(chain, private)?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_are_told_apart_for_the_metric() {
        let tls = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let general = rustls::Error::General("no server certificate chain resolved".into());
        assert_eq!(failure_reason(&tls(general)), "no_certificate");
        let garbage = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert_eq!(failure_reason(&tls(garbage)), "protocol");
        assert_eq!(
            failure_reason(&tls(rustls::Error::NoApplicationProtocol)),
            "incompatible"
        );
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        assert_eq!(failure_reason(&tls(alert)), "alert_received");
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(failure_reason(&eof), "closed");
    }

    #[test]
    fn names_cover_hosts_exactly_or_by_one_label_wildcards() {
        let names = vec!["api.example.com".to_string(), "*.example.org".to_string()];
        assert!(covers(&names, "API.example.com"));
        assert!(covers(&names, "www.example.org"));
        assert!(!covers(&names, "example.org"));
        assert!(!covers(&names, "a.b.example.org"));
        assert!(!covers(&names, "www.example.com"));
    }
}
