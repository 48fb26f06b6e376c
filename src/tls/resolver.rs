//! Which certificate a handshake gets, by its SNI name: a file certificate that covers it,
//! else the ACME-obtained one that covers it, else the default; and a CA's TLS-ALPN-01
//! validation gets its challenge certificate.

use super::{AcmeSource, LoadedCert, covers, is_alpn_challenge};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// A listener's certificates, as rustls asks for them.
#[derive(Debug)]
pub(super) struct SniResolver {
    certs: Vec<Arc<LoadedCert>>,
    acme: Option<AcmeSource>,
}

impl SniResolver {
    pub(super) fn new(certs: Vec<Arc<LoadedCert>>, acme: Option<AcmeSource>) -> Self {
        Self { certs, acme }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if is_alpn_challenge(hello.alpn()) {
            let (acme, name) = (self.acme.as_ref()?, hello.server_name()?);
            return acme.answers.tls_alpn01(name);
        }
        chosen(&self.certs, self.acme.as_ref(), hello.server_name()).map(|c| Arc::clone(&c.key))
    }
}

/// The certificate for `sni` (also what the 421 check compares Host with). `None` for a name
/// the ACME section orders but has not obtained yet: the handshake fails plainly rather
/// than presenting another name's certificate.
pub fn chosen(
    certs: &[Arc<LoadedCert>],
    acme: Option<&AcmeSource>,
    sni: Option<&str>,
) -> Option<Arc<LoadedCert>> {
    let obtained = acme.and_then(|a| a.obtained.get());
    if let Some(name) = sni {
        if let Some(file) = certs.iter().find(|c| covers(&c.names, name)) {
            return Some(Arc::clone(file));
        }
        if let Some(cert) = obtained.as_ref().filter(|c| covers(&c.names, name)) {
            return Some(Arc::clone(cert));
        }
        if acme.is_some_and(|a| covers(a.obtained.names(), name)) {
            return None;
        }
    }
    certs.first().cloned().or(obtained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{Answers, Obtained};

    fn cert(names: &[&str], serial: &str) -> Arc<LoadedCert> {
        let key = rcgen::KeyPair::generate().unwrap();
        let der = rcgen::CertificateParams::new(vec!["x.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .clone();
        let private = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&private).unwrap();
        Arc::new(LoadedCert {
            key: Arc::new(CertifiedKey::new(vec![der], signing)),
            names: names.iter().map(|n| n.to_string()).collect(),
            not_before: 0,
            not_after: 0,
            serial: serial.into(),
        })
    }

    fn serial(picked: Option<Arc<LoadedCert>>) -> Option<String> {
        picked.map(|c| c.serial.clone())
    }

    #[test]
    fn files_first_then_obtained_then_nothing_for_an_acme_name_not_yet_obtained() {
        let files = vec![cert(&["files.test"], "file")];
        let acme = AcmeSource {
            obtained: Arc::new(Obtained::new(vec!["a.test".into(), "b.test".into()])),
            answers: Arc::new(Answers::default()),
        };
        let pick = |sni| serial(chosen(&files, Some(&acme), sni));
        assert_eq!(pick(Some("a.test")), None, "ordered, not obtained");
        assert_eq!(pick(Some("files.test")).as_deref(), Some("file"));
        assert_eq!(pick(Some("other.test")).as_deref(), Some("file"));
        assert_eq!(pick(None).as_deref(), Some("file"));

        acme.obtained.install(cert(&["a.test", "b.test"], "acme"));
        assert_eq!(pick(Some("B.test")).as_deref(), Some("acme"));
        assert_eq!(pick(Some("files.test")).as_deref(), Some("file"));
        assert_eq!(pick(Some("other.test")).as_deref(), Some("file"));
    }

    #[test]
    fn an_acme_only_listener_defaults_to_what_it_obtained() {
        let acme = AcmeSource {
            obtained: Arc::new(Obtained::new(vec!["a.test".into()])),
            answers: Arc::new(Answers::default()),
        };
        assert_eq!(serial(chosen(&[], Some(&acme), None)), None);
        acme.obtained.install(cert(&["a.test"], "acme"));
        assert_eq!(
            serial(chosen(&[], Some(&acme), None)).as_deref(),
            Some("acme")
        );
        assert_eq!(
            serial(chosen(&[], Some(&acme), Some("other.test"))).as_deref(),
            Some("acme")
        );
    }
}
