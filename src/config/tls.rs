//! `[listener.tls]` and `[pool.NAME.tls]`: the file entries, validated by loading and
//! checking every certificate and key they name.

use super::Problem;
use super::acme::{self, AcmeConfig, AcmeFile};
use crate::tls::{self, LoadedCert, TlsError};
use http::HeaderValue;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Deserialize;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[listener.tls]` as written.
fn strict_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    /// `{ cert, key }` pairs; SNI picks by the names in each; the first is the default.
    /// May be empty when `acme` obtains the listener's certificate.
    #[serde(default)]
    pub certificates: Vec<CertificateFile>,
    /// `[listener.tls.acme]`: a certificate obtained and renewed over ACME.
    #[serde(default)]
    pub acme: Option<AcmeFile>,
    /// When set, clients must present a certificate signed by one of these CAs.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// Answer 421 to a request whose Host the connection's certificate does not cover (on by
    /// default: otherwise one site's SNI could front for another's Host, ATTACKS.md row 52).
    #[serde(default = "strict_by_default")]
    pub strict_sni: bool,
    /// A `Strict-Transport-Security` value to add to every response, e.g. "max-age=63072000".
    #[serde(default)]
    pub hsts: Option<String>,
}

/// One certificate entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[pool.NAME.tls]` as written (empty strings mean "not set", as in PRODUCT.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTlsFile {
    pub ca_file: String,
    pub server_name: String,
    pub client_cert: String,
    pub client_key: String,
}

/// A validated HTTPS listener: certificates loaded and checked.
#[derive(Debug, Clone)]
pub struct ListenerTls {
    /// The certificate files, for the watch on disk.
    pub files: Vec<CertificateFile>,
    /// Loaded certificates, in file order.
    pub certs: Vec<Arc<LoadedCert>>,
    /// The client CA file, when client certificates are required.
    pub client_ca_file: Option<PathBuf>,
    /// Its certificates.
    pub client_ca: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// 421 for a Host the certificate does not cover.
    pub strict_sni: bool,
    /// `Strict-Transport-Security` to add.
    pub hsts: Option<HeaderValue>,
    /// The ACME section, when certificates are obtained over ACME.
    pub acme: Option<Arc<AcmeConfig>>,
    fingerprint: u64,
}

impl PartialEq for ListenerTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
            && self.strict_sni == other.strict_sni
            && self.hsts == other.hsts
            && self.acme == other.acme
    }
}

/// Validated TLS to a pool's backends.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// The rustls client config.
    pub client: Arc<rustls::ClientConfig>,
    /// The name to send as SNI and verify; `None` = the backend's address.
    pub server_name: Option<ServerName<'static>>,
    fingerprint: u64,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for UpstreamTls {}

/// A hash of the files' bytes and the settings: a reload with the same paths but new contents
/// is a change.
fn fingerprint(paths: &[&Path], extra: &str) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    for path in paths {
        std::fs::read(path).unwrap_or_default().hash(&mut hasher);
    }
    extra.hash(&mut hasher);
    hasher.finish()
}

/// Loads and checks a listener's certificates.
pub fn listener_tls(
    file: &ListenerTlsFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<ListenerTls> {
    if file.certificates.is_empty() && file.acme.is_none() {
        problems.push(Problem::at(
            span,
            "listener.tls needs at least one { cert, key } in `certificates`, or an [listener.tls.acme] section",
        ));
        return None;
    }
    let before = problems.len();
    let acme = match &file.acme {
        Some(written) => acme::acme(written)
            .map(Arc::new)
            .map_err(|found| {
                let at = |text| Problem::at(span.clone(), text);
                problems.extend(found.into_iter().map(at));
            })
            .ok(),
        None => None,
    };
    let loaded = load_certificates(&file.certificates);
    let certs: Vec<Arc<LoadedCert>> = loaded
        .into_iter()
        .filter_map(|r| {
            r.map_err(|e| problems.push(Problem::at(span.clone(), e.to_string())))
                .ok()
        })
        .collect();
    let client_ca = match &file.client_ca {
        Some(path) => tls::load_chain(path)
            .map(Arc::new)
            .map_err(|e| problems.push(Problem::at(span.clone(), e.to_string())))
            .ok(),
        None => None,
    };
    let hsts = match &file.hsts {
        Some(value) => HeaderValue::from_str(value)
            .map_err(|_| {
                problems.push(Problem::at(
                    span.clone(),
                    "listener.tls.hsts is not a valid header value",
                ))
            })
            .ok(),
        None => None,
    };
    if problems.len() > before {
        return None;
    }
    // Build once now, so a config rustls would refuse is refused by `check` too.
    if let Err(e) = tls::server_config(&certs, None, client_ca.as_deref().map(Vec::as_slice)) {
        problems.push(Problem::at(span, e.to_string()));
        return None;
    }
    let mut paths: Vec<&Path> = file
        .certificates
        .iter()
        .flat_map(|c| [c.cert.as_path(), c.key.as_path()])
        .collect();
    paths.extend(file.client_ca.as_deref());
    Some(ListenerTls {
        fingerprint: fingerprint(&paths, ""),
        files: file.certificates.clone(),
        certs,
        client_ca_file: file.client_ca.clone(),
        client_ca,
        strict_sni: file.strict_sni,
        hsts,
        acme,
    })
}

/// Loads every certificate entry (one result per entry).
pub fn load_certificates(files: &[CertificateFile]) -> Vec<Result<Arc<LoadedCert>, TlsError>> {
    files
        .iter()
        .map(|f| tls::load_cert(&f.cert, &f.key).map(Arc::new))
        .collect()
}

/// Loads and checks a pool's TLS to its backends.
pub fn upstream_tls(
    file: &UpstreamTlsFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<UpstreamTls> {
    tls_to("pool tls", file, span, problems)
}

/// Loads and checks TLS settings for connections portero makes: a pool's traffic, or a
/// data store's check. `table` names the settings in problems.
pub(super) fn tls_to(
    table: &str,
    file: &UpstreamTlsFile,
    span: Range<usize>,
    problems: &mut Vec<Problem>,
) -> Option<UpstreamTls> {
    let set = |s: &String| (!s.is_empty()).then(|| PathBuf::from(s));
    let (ca, cert, key) = (
        set(&file.ca_file),
        set(&file.client_cert),
        set(&file.client_key),
    );
    let client = match (&cert, &key) {
        (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
        (None, None) => None,
        _ => {
            problems.push(Problem::at(
                span,
                format!("{table}: client_cert and client_key go together"),
            ));
            return None;
        }
    };
    let server_name = match file.server_name.as_str() {
        "" => None,
        name => match ServerName::try_from(name.to_string()) {
            Ok(name) => Some(name),
            Err(_) => {
                problems.push(Problem::at(
                    span,
                    format!("{table}: invalid server_name `{name}`"),
                ));
                return None;
            }
        },
    };
    match tls::client_config(ca.as_deref(), client) {
        Ok(client) => {
            let paths: Vec<&Path> = [ca.as_deref(), cert.as_deref(), key.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            Some(UpstreamTls {
                client,
                server_name,
                fingerprint: fingerprint(&paths, &file.server_name),
            })
        }
        Err(e) => {
            problems.push(Problem::at(span, format!("{table}: {e}")));
            None
        }
    }
}
