//! One ACME order, start to finish, with instant-acme doing the protocol (JWS, nonces,
//! polling): the account (restored from storage, or created and stored), the order for the
//! section's names, one challenge per name answered through [`Answers`] for as long as the
//! order runs, a new key and its CSR, and the issued chain.

use super::AcmeError;
use super::store::Store;
use crate::config::AcmeConfig;
use crate::config::acme::{Challenge, KeyType};
use crate::tls::{self, Answers};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long the CA may take to validate, and then to issue: generous for a real CA under
/// load, and the order is simply retried later if it is not enough.
const VALIDATION: Duration = Duration::from_secs(120);

/// A certificate as issued: the PEM chain, leaf first, and its PEM private key.
pub struct Issued {
    /// PEM chain.
    pub chain: String,
    /// PEM PKCS#8 key.
    pub key: String,
}

/// The account for `config`'s directory: stored credentials, or a new account (terms of
/// service agreed, as every ACME client does on the operator's behalf) whose credentials are
/// stored at once.
pub async fn account(config: &AcmeConfig, store: &Store) -> Result<Account, AcmeError> {
    let builder = || match &config.ca_bundle {
        Some(bundle) => Account::builder_with_root(bundle),
        None => Account::builder(),
    };
    if let Some(json) = store.account()? {
        let credentials: AccountCredentials =
            serde_json::from_str(&json).map_err(|e| AcmeError::AccountFile(e.to_string()))?;
        return builder()
            .map_err(AcmeError::Account)?
            .from_credentials(credentials)
            .await
            .map_err(AcmeError::Account);
    }
    let contact: Vec<&str> = config.contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()
        .map_err(AcmeError::Account)?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(AcmeError::Account)?;
    let json =
        serde_json::to_string(&credentials).map_err(|e| AcmeError::AccountFile(e.to_string()))?;
    store.save_account(&json)?;
    tracing::info!(directory = %config.directory, account = account.id(), "ACME account created");
    Ok(account)
}

/// Orders a certificate for `config.names` and waits for it.
pub async fn obtain(
    config: &AcmeConfig,
    account: &Account,
    answers: &Answers,
    store: &Store,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = config
        .names
        .iter()
        .map(|n| Identifier::Dns(n.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(AcmeError::Order)?;
    // Answers stay up until the order is done, whichever way it ends.
    let mut answering = Answering {
        answers,
        store,
        http01: Vec::new(),
        tls_alpn01: Vec::new(),
        files: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(AcmeError::Order)?;
        if authorization.status == AuthorizationStatus::Valid {
            continue;
        }
        let name = authorization.identifier().to_string();
        let Some(kind) = config.challenges.iter().copied().find(|kind| {
            let wanted = challenge_type(*kind);
            authorization.challenges.iter().any(|c| c.r#type == wanted)
        }) else {
            return Err(AcmeError::NoChallenge(name));
        };
        let mut challenge = authorization
            .challenge(challenge_type(kind))
            .ok_or_else(|| AcmeError::NoChallenge(name.clone()))?;
        let key_authorization = challenge.key_authorization();
        match kind {
            Challenge::Http01 => answering.http01(&challenge.token, key_authorization.as_str())?,
            Challenge::TlsAlpn01 => {
                let (key, pem) = alpn_certificate(&name, key_authorization.digest())?;
                answering.tls_alpn01(&name, key, &pem)?;
            }
        }
        tracing::debug!(%name, challenge = ?kind, "ACME challenge ready");
        challenge.set_ready().await.map_err(AcmeError::Order)?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(VALIDATION);
    let status = order.poll_ready(&retries).await.map_err(AcmeError::Order)?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Invalid(why_invalid(&mut order).await));
    }
    drop(answering);
    let (key, csr) = key_and_csr(&config.names, config.key_type)?;
    order.finalize_csr(&csr).await.map_err(AcmeError::Order)?;
    let chain = order
        .poll_certificate(&retries)
        .await
        .map_err(AcmeError::Order)?;
    Ok(Issued { chain, key })
}

fn challenge_type(kind: Challenge) -> ChallengeType {
    match kind {
        Challenge::Http01 => ChallengeType::Http01,
        Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

/// What the CA said about each failed challenge of an invalid order.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if authorization.refresh().await.is_err() {
            continue;
        }
        let name = authorization.identifier().to_string();
        reasons.extend(
            authorization
                .challenges
                .iter()
                .filter_map(|c| c.error.as_ref())
                .map(|problem| format!("{name}: {problem}")),
        );
    }
    if reasons.is_empty() {
        "the CA marked the order invalid".into()
    } else {
        reasons.join("; ")
    }
}

/// The challenge answers of one order, in this process and in shared storage for the other
/// instances; taken down when the order ends.
struct Answering<'a> {
    answers: &'a Answers,
    store: &'a Store,
    http01: Vec<String>,
    tls_alpn01: Vec<String>,
    files: Vec<PathBuf>,
}

impl Answering<'_> {
    fn http01(&mut self, token: &str, key_authorization: &str) -> Result<(), AcmeError> {
        self.answers.put_http01(token, key_authorization);
        self.http01.push(token.to_string());
        let file = tls::http01_file(&self.store.challenges(), token)
            .ok_or_else(|| AcmeError::Certificate(format!("unusable HTTP-01 token `{token}`")))?;
        self.share(file, key_authorization.as_bytes())
    }

    fn tls_alpn01(
        &mut self,
        name: &str,
        key: Arc<CertifiedKey>,
        pem: &str,
    ) -> Result<(), AcmeError> {
        self.answers.put_tls_alpn01(name, key);
        self.tls_alpn01.push(name.to_string());
        let file = tls::tls_alpn01_file(&self.store.challenges(), name)
            .ok_or_else(|| AcmeError::NoChallenge(name.to_string()))?;
        self.share(file, pem.as_bytes())
    }

    fn share(&mut self, file: PathBuf, bytes: &[u8]) -> Result<(), AcmeError> {
        self.store.put_challenge(&file, bytes)?;
        self.files.push(file);
        Ok(())
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        for token in &self.http01 {
            self.answers.drop_http01(token);
        }
        for name in &self.tls_alpn01 {
            self.answers.drop_tls_alpn01(name);
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// The TLS-ALPN-01 validation certificate for `name` (RFC 8737 §3): self-signed, the name as
/// its only SAN, and the critical acmeIdentifier extension holding the SHA-256 of the key
/// authorization; ready for rustls, and as PEM (certificate, then key) for other instances.
fn alpn_certificate(
    name: &str,
    digest: impl AsRef<[u8]>,
) -> Result<(Arc<CertifiedKey>, String), AcmeError> {
    let key = rcgen::KeyPair::generate().map_err(AcmeError::Key)?;
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(AcmeError::Key)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let cert = params.self_signed(&key).map_err(AcmeError::Key)?;
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&private)
        .map_err(|e| AcmeError::Certificate(e.to_string()))?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let key = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
    Ok((key, pem))
}

/// A new private key of `key_type` (PEM) and a CSR (DER) for `names`: a fresh key at every
/// order, so a renewal also rotates the key.
fn key_and_csr(names: &[String], key_type: KeyType) -> Result<(String, Vec<u8>), AcmeError> {
    let key = match key_type {
        KeyType::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Rsa2048 => rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256),
    }
    .map_err(AcmeError::Key)?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(AcmeError::Key)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key).map_err(AcmeError::Key)?;
    Ok((key.serialize_pem(), csr.der().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_makes_a_key_and_csr_rustls_accepts() {
        for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Rsa2048] {
            let (pem, csr) = key_and_csr(&["a.test".into()], key_type).unwrap();
            assert!(!csr.is_empty());
            use rustls::pki_types::pem::PemObject;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap();
            rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
        }
    }

    #[test]
    fn the_alpn_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let (key, pem) = alpn_certificate("a.test", digest).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.test.alpn.pem");
        std::fs::write(&file, pem).unwrap();
        let shared = crate::tls::load_certified_key(&file).expect("other instances can load it");
        assert_eq!(shared.cert, key.cert);
        use x509_parser::prelude::*;
        let (_, cert) = parse_x509_certificate(&key.cert[0]).unwrap();
        // id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31
        let oid = x509_parser::oid_registry::Oid::from(&[1, 3, 6, 1, 5, 5, 7, 1, 31]).unwrap();
        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid == oid)
            .expect("acmeIdentifier present");
        assert!(extension.critical);
        assert!(extension.value.ends_with(&digest));
    }
}
