//! What one traffic listener's connections share: its name and its settings (TLS acceptor and
//! certificates, HTTPS redirect), replaced whole by a reload or a certificate change on disk
//! without rebinding; new connections use the new settings, established ones keep theirs.

use crate::config::{Config, ListenerConfig, ListenerMode, ListenerProtocols};
use crate::tls::{self, ACME_TLS_ALPN, AcmeSource, LoadedCert, TlsError};
use arc_swap::ArcSwap;
use http::HeaderValue;
use ipnet::IpNet;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// A listener's shared state.
pub struct ListenerCtx {
    /// Its name (metric label).
    pub name: Arc<str>,
    /// Its current settings.
    pub settings: ArcSwap<ListenerSettings>,
}

impl ListenerSettings {
    /// Whether a refusal may be answered in plain HTTP (a plain HTTP listener): a TLS client
    /// cannot read one, and a tcp listener's client speaks its own protocol.
    pub fn answers_plain_http(&self) -> bool {
        self.tls.is_none() && self.mode == ListenerMode::Http
    }
}

/// A listener's settings.
pub struct ListenerSettings {
    /// HTTPS: how to accept, and what the connection's certificate covers.
    pub tls: Option<TlsSettings>,
    /// Plain listener that redirects to https: the https port to name (`None` = 443).
    pub redirect: Option<Option<u16>>,
    /// Peers whose connections open with a PROXY header.
    pub proxy_protocol: Option<Vec<IpNet>>,
    /// What the listener speaks; a TLS listener offers only these in ALPN.
    pub protocols: ListenerProtocols,
    /// HTTP, or TCP to one pool.
    pub mode: ListenerMode,
}

/// An HTTPS listener's TLS state.
pub struct TlsSettings {
    /// Accepts handshakes.
    pub acceptor: TlsAcceptor,
    /// The certificates from files, in SNI order.
    pub certs: Vec<Arc<LoadedCert>>,
    /// The certificate obtained over ACME, when the listener has an ACME section.
    pub acme: Option<AcmeSource>,
    /// 421 for a Host the connection's certificate does not cover.
    pub strict_sni: bool,
    /// `Strict-Transport-Security` to add.
    pub hsts: Option<HeaderValue>,
}

impl ListenerSettings {
    /// The settings `listener` asks for, within `config` (which says where https lives);
    /// `acme` is its ACME section's certificate, when it has one.
    pub fn from_config(
        listener: &ListenerConfig,
        config: &Config,
        acme: Option<AcmeSource>,
    ) -> Result<Self, TlsError> {
        let tls = match &listener.tls {
            None => None,
            Some(t) => Some(
                TlsSettings::new(
                    t.certs.clone(),
                    acme,
                    t.client_ca.as_deref().map(Vec::as_slice),
                    t.strict_sni,
                    t.hsts.clone(),
                )?
                .offering(listener.protocols),
            ),
        };
        // The port is settled once listeners are bound (see `with_https_port`).
        let redirect = listener.http_redirect.then(|| {
            let https_port = config
                .listeners
                .iter()
                .find(|l| l.tls.is_some())
                .map(|l| l.address.port());
            https_port.filter(|&p| p != 443)
        });
        Ok(Self {
            tls,
            redirect,
            proxy_protocol: listener.proxy_protocol.clone(),
            protocols: listener.protocols,
            mode: listener.mode.clone(),
        })
    }

    /// These settings with new certificates (read again from disk), offered in ALPN as before.
    pub fn with_tls(&self, tls: TlsSettings) -> Self {
        Self {
            tls: Some(tls.offering(self.protocols)),
            redirect: self.redirect,
            proxy_protocol: self.proxy_protocol.clone(),
            protocols: self.protocols,
            mode: self.mode.clone(),
        }
    }
}

impl ListenerSettings {
    /// A redirecting listener's settings naming the https port actually bound.
    pub fn with_https_port(&self, port: u16) -> Option<Self> {
        self.redirect.map(|_| Self {
            tls: None,
            redirect: Some((port != 443).then_some(port)),
            proxy_protocol: self.proxy_protocol.clone(),
            protocols: self.protocols,
            mode: self.mode.clone(),
        })
    }
}

impl TlsSettings {
    /// Builds the acceptor for `certs` and `acme`'s certificate.
    pub fn new(
        certs: Vec<Arc<LoadedCert>>,
        acme: Option<AcmeSource>,
        client_ca: Option<&[rustls::pki_types::CertificateDer<'static>]>,
        strict_sni: bool,
        hsts: Option<HeaderValue>,
    ) -> Result<Self, TlsError> {
        let config = tls::server_config(&certs, acme.clone(), client_ca)?;
        Ok(Self {
            acceptor: TlsAcceptor::from(config),
            certs,
            acme,
            strict_sni,
            hsts,
        })
    }

    /// Offers only `protocols` in ALPN (`tls::server_config` offers h2 and http/1.1, and
    /// acme-tls/1 for a CA's validation). A client that offers none of them gets a
    /// `no_application_protocol` alert from rustls; one that offers no ALPN at all is served
    /// the listener's protocol (HTTP/1 when both are allowed).
    pub fn offering(self, protocols: ListenerProtocols) -> Self {
        if protocols == ListenerProtocols::default() {
            return self;
        }
        let mut config = rustls::ServerConfig::clone(self.acceptor.config());
        config.alpn_protocols.retain(|p| {
            (p == b"h2" && protocols.http2)
                || (p == b"http/1.1" && protocols.http1)
                || p == ACME_TLS_ALPN
        });
        Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ..self
        }
    }
}

impl ListenerCtx {
    /// A listener's state.
    pub fn new(name: &str, settings: ListenerSettings) -> Arc<Self> {
        Arc::new(Self {
            name: Arc::from(name),
            settings: ArcSwap::from_pointee(settings),
        })
    }
}
