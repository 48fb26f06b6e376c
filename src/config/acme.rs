//! `[listener.tls.acme]`: certificates obtained and renewed over ACME (RFC 8555), Let's
//! Encrypt's or any other CA's. What is checked here is what can be checked without the
//! network: the directory is https, the names are names a CA will issue for, the challenges
//! and key type are known ones. Whether the CA agrees is found out at run time.

use super::units;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Let's Encrypt's production directory: the default.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";
/// Where certificates and the account key live unless `storage` says otherwise.
pub const DEFAULT_STORAGE: &str = "/var/lib/portero/acme";
/// RFC 8555 §7.4 puts no limit on names per order; Let's Encrypt's is 100.
const MAX_NAMES: usize = 100;

/// `[listener.tls.acme]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeFile {
    /// The CA's directory URL, or `letsencrypt` / `letsencrypt-staging`.
    #[serde(default)]
    pub directory: Option<String>,
    /// `mailto:` address for the CA's expiry and incident mail.
    #[serde(default)]
    pub contact: Option<String>,
    /// DNS names of the one certificate ordered.
    pub names: Vec<String>,
    /// Account key, certificate and key, and the lock; may be shared by several instances.
    #[serde(default)]
    pub storage: Option<PathBuf>,
    /// Challenge types to answer, in order of preference.
    #[serde(default)]
    pub challenges: Option<Vec<String>>,
    /// PEM root that signed the ACME server's own HTTPS certificate (pebble, a private CA).
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// `ecdsa-p256` (default), `ecdsa-p384` or `rsa-2048`.
    #[serde(default)]
    pub key_type: Option<String>,
    /// First wait after a failed order; doubles up to an hour.
    #[serde(default, deserialize_with = "units::optional_duration")]
    pub retry: Option<Duration>,
}

/// A challenge type portero answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// RFC 8737: a self-signed certificate on the TLS listener, ALPN `acme-tls/1`.
    TlsAlpn01,
    /// RFC 8555 §8.3: `/.well-known/acme-challenge/TOKEN` on a plain listener on port 80.
    Http01,
}

/// The key of the certificate (the account key is always ECDSA P-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA on P-256 with SHA-256: small and fast to sign with; the default.
    EcdsaP256,
    /// ECDSA on P-384 with SHA-384.
    EcdsaP384,
    /// RSA 2048 with SHA-256, for clients that know no ECDSA.
    Rsa2048,
}

/// A validated ACME section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeConfig {
    /// Directory URL (https).
    pub directory: String,
    /// `mailto:` contact, if any.
    pub contact: Option<String>,
    /// Lower-case DNS names, in the order written, no duplicates.
    pub names: Vec<String>,
    /// Storage directory.
    pub storage: PathBuf,
    /// Challenges to offer, preferred first.
    pub challenges: Vec<Challenge>,
    /// Trust for the ACME server itself.
    pub ca_bundle: Option<PathBuf>,
    /// Certificate key type.
    pub key_type: KeyType,
    /// First retry delay after a failure.
    pub retry: Duration,
}

impl AcmeConfig {
    /// Whether any challenge needs a token served over plain HTTP.
    pub fn uses_http01(&self) -> bool {
        self.challenges.contains(&Challenge::Http01)
    }
}

/// Checks `[listener.tls.acme]`; every problem found is returned, as text.
pub fn acme(file: &AcmeFile) -> Result<AcmeConfig, Vec<String>> {
    let mut problems = Vec::new();
    let directory = directory(file.directory.as_deref()).unwrap_or_else(|p| {
        problems.push(p);
        String::new()
    });
    if let Some(contact) = &file.contact {
        let address = contact.strip_prefix("mailto:").unwrap_or_default();
        if !address.contains('@') || address.contains(char::is_whitespace) {
            problems.push(format!(
                "acme.contact `{contact}` must be a mailto: address, e.g. \"mailto:ops@example.com\""
            ));
        }
    }
    let names = names(&file.names, &mut problems);
    let challenges = challenges(file.challenges.as_deref(), &mut problems);
    let key_type = match file.key_type.as_deref() {
        None | Some("ecdsa-p256") => KeyType::EcdsaP256,
        Some("ecdsa-p384") => KeyType::EcdsaP384,
        Some("rsa-2048") => KeyType::Rsa2048,
        Some(other) => {
            problems.push(format!(
                "acme.key_type `{other}`: use \"ecdsa-p256\", \"ecdsa-p384\" or \"rsa-2048\""
            ));
            KeyType::EcdsaP256
        }
    };
    let retry = file.retry.unwrap_or(Duration::from_secs(60));
    if retry < Duration::from_secs(1) {
        problems.push("acme.retry must be at least 1s: a CA rate-limits tight loops".into());
    }
    if let Some(bundle) = &file.ca_bundle
        && let Err(e) = crate::tls::load_chain(bundle)
    {
        problems.push(format!("acme.ca_bundle: {e}"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(AcmeConfig {
        directory,
        contact: file.contact.clone(),
        names,
        storage: file
            .storage
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORAGE)),
        challenges,
        ca_bundle: file.ca_bundle.clone(),
        key_type,
        retry,
    })
}

fn directory(written: Option<&str>) -> Result<String, String> {
    let url = match written {
        None | Some("letsencrypt") => return Ok(LETSENCRYPT.into()),
        Some("letsencrypt-staging") => return Ok(LETSENCRYPT_STAGING.into()),
        Some(url) => url,
    };
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => Ok(url.into()),
        _ => Err(format!(
            "acme.directory `{url}` must be an https:// URL (or \"letsencrypt\", \"letsencrypt-staging\")"
        )),
    }
}

fn names(written: &[String], problems: &mut Vec<String>) -> Vec<String> {
    if written.is_empty() || written.len() > MAX_NAMES {
        problems.push(format!(
            "acme.names needs 1 to {MAX_NAMES} DNS names (it has {})",
            written.len()
        ));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in written {
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if let Err(why) = issuable(&lower) {
            problems.push(format!("acme.names: `{name}` {why}"));
        } else if seen.insert(lower.clone()) {
            out.push(lower);
        }
    }
    out
}

/// Whether a CA can issue for `name` with the challenges portero answers.
fn issuable(name: &str) -> Result<(), &'static str> {
    if name.starts_with("*.") {
        return Err("is a wildcard, which needs DNS-01 (not answered by portero)");
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address; ACME here issues for DNS names");
    }
    let labels_ok = name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok {
        Ok(())
    } else {
        Err("is not a fully qualified DNS name")
    }
}

fn challenges(written: Option<&[String]>, problems: &mut Vec<String>) -> Vec<Challenge> {
    let Some(written) = written else {
        return vec![Challenge::TlsAlpn01, Challenge::Http01];
    };
    let mut out = Vec::new();
    for kind in written {
        let challenge = match kind.as_str() {
            "tls-alpn-01" => Challenge::TlsAlpn01,
            "http-01" => Challenge::Http01,
            other => {
                problems.push(format!(
                    "acme.challenges: `{other}` is not answered by portero; use \"tls-alpn-01\" and/or \"http-01\""
                ));
                continue;
            }
        };
        if !out.contains(&challenge) {
            out.push(challenge);
        }
    }
    if written.is_empty() {
        problems.push("acme.challenges is empty: list \"tls-alpn-01\", \"http-01\" or both".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(names: &[&str]) -> AcmeFile {
        AcmeFile {
            directory: None,
            contact: None,
            names: names.iter().map(|s| s.to_string()).collect(),
            storage: None,
            challenges: None,
            ca_bundle: None,
            key_type: None,
            retry: None,
        }
    }

    #[test]
    fn defaults_are_lets_encrypt_production_both_challenges_p256() {
        let config = acme(&file(&["Example.com.", "www.example.com", "example.com"])).unwrap();
        assert_eq!(config.directory, LETSENCRYPT);
        assert_eq!(config.names, ["example.com", "www.example.com"]);
        assert_eq!(config.challenges, [Challenge::TlsAlpn01, Challenge::Http01]);
        assert_eq!(config.key_type, KeyType::EcdsaP256);
        assert_eq!(config.storage, PathBuf::from(DEFAULT_STORAGE));
        assert_eq!(config.retry, Duration::from_secs(60));
    }

    #[test]
    fn staging_is_one_word_away() {
        let mut f = file(&["example.com"]);
        f.directory = Some("letsencrypt-staging".into());
        assert_eq!(acme(&f).unwrap().directory, LETSENCRYPT_STAGING);
    }

    #[test]
    fn refuses_what_no_ca_would_issue_or_portero_cannot_answer() {
        let mut f = file(&[
            "*.example.com",
            "127.0.0.1",
            "localhost",
            "bad_label.example",
        ]);
        f.directory = Some("http://acme.example/directory".into());
        f.contact = Some("ops@example.com".into());
        f.challenges = Some(vec!["dns-01".into()]);
        f.key_type = Some("ed25519".into());
        f.retry = Some(Duration::from_millis(10));
        let problems = acme(&f).unwrap_err().join("\n");
        for expected in [
            "must be an https:// URL",
            "must be a mailto: address",
            "is a wildcard",
            "is an IP address",
            "`localhost` is not a fully qualified",
            "`bad_label.example` is not",
            "`dns-01` is not answered",
            "key_type `ed25519`",
            "at least 1s",
        ] {
            assert!(problems.contains(expected), "{expected:?} in:\n{problems}");
        }
    }

    #[test]
    fn refuses_no_names_and_an_empty_challenge_list() {
        let mut f = file(&[]);
        f.challenges = Some(vec![]);
        let problems = acme(&f).unwrap_err().join("\n");
        assert!(problems.contains("needs 1 to 100 DNS names"), "{problems}");
        assert!(problems.contains("acme.challenges is empty"), "{problems}");
    }

    #[test]
    fn keeps_the_order_of_challenges_written() {
        let mut f = file(&["example.com"]);
        f.challenges = Some(vec![
            "http-01".into(),
            "tls-alpn-01".into(),
            "http-01".into(),
        ]);
        let config = acme(&f).unwrap();
        assert_eq!(config.challenges, [Challenge::Http01, Challenge::TlsAlpn01]);
        assert!(config.uses_http01());
    }
}
