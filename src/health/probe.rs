//! One active check of one backend: a TCP connect; an HTTP GET of the check's path that
//! passes when its status is expected and, if asked, its body holds the expected text; or a
//! data store's login and role question (`super::store`).
//!
//! The request is what a backend would get from portero's own traffic: origin-form
//! (`GET /healthz HTTP/1.1` with `Host`) on HTTP/1.1, `:path` and `:authority` on HTTP/2,
//! over TLS when the pool speaks HTTPS. An absolute-form target (`GET http://host/healthz`)
//! is what a client sends to a forward proxy; servers that route on the raw target (Python's
//! `http.server`, Node's `http`) miss their health route with it and answer from a catch-all,
//! so a sick backend read healthy.

use super::store;
use crate::config::{CheckKind, HealthCheckConfig, HttpCheck, UpstreamProtocol, UpstreamTls};
use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// The most of a response body searched for `expect_body`.
const MAX_SEARCHED_BODY: usize = 64 * 1024;

/// Why a check failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// No TCP connection.
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake with an HTTPS backend failed.
    #[error("tls handshake failed: {0}")]
    Tls(std::io::Error),
    /// The HTTP exchange failed.
    #[error("request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The backend answered with a status the check does not expect.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body did not contain the expected text.
    #[error("answered {0} without the expected body text")]
    Body(StatusCode),
    /// The check's request could not be built (a host that is no valid authority).
    #[error("invalid check request: {0}")]
    Request(String),
    /// No answer within the check's timeout.
    #[error("timed out")]
    Timeout,
    /// A data store refused the login or the question, or answered something unreadable.
    #[error("{0}")]
    Store(String),
    /// A data store answered, in a role the pool does not want.
    #[error("{0}")]
    Role(#[from] store::RoleMismatch),
}

/// What a check needs of its pool.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The check itself.
    pub check: HealthCheckConfig,
    /// Protocol of plain connections (HTTPS backends choose by ALPN).
    pub protocol: UpstreamProtocol,
    /// HTTPS to the backends, as the pool's traffic.
    pub tls: Option<UpstreamTls>,
}

/// What one backend's probes need, made once for its watch rather than per probe: the Host
/// they name and, for an HTTPS pool, the TLS client offering h2 and http/1.1 as its traffic
/// does, with the name checked on the backend's certificate.
pub struct Probe {
    address: SocketAddr,
    target: Target,
    host: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// A TLS client of `tls`'s settings offering `alpn`, and the name it checks on the certificate
/// of the backend at `address`.
fn connector(
    tls: &UpstreamTls,
    address: SocketAddr,
    alpn: &[&[u8]],
) -> (TlsConnector, ServerName<'static>) {
    let mut config = (*tls.client).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| address.ip().into());
    (TlsConnector::from(Arc::new(config)), name)
}

impl Probe {
    /// The probe of the backend at `address`.
    pub fn new(address: SocketAddr, target: Target) -> Self {
        let host = match &target.check.kind {
            CheckKind::Http(HttpCheck {
                host: Some(host), ..
            }) => host.clone(),
            _ => address.to_string(),
        };
        let tls = match &target.check.kind {
            CheckKind::Redis(store) => store.tls.as_ref().map(|tls| connector(tls, address, &[])),
            _ => target
                .tls
                .as_ref()
                .map(|tls| connector(tls, address, &[b"h2", b"http/1.1"])),
        };
        Self {
            address,
            target,
            host,
            tls,
        }
    }

    /// The check it runs.
    pub fn check(&self) -> &HealthCheckConfig {
        &self.target.check
    }
}

/// One probe, within the check's timeout.
pub async fn check_once(probe: &Probe) -> Result<(), CheckError> {
    tokio::time::timeout(probe.target.check.timeout, run(probe))
        .await
        .map_err(|_| CheckError::Timeout)?
}

async fn run(probe: &Probe) -> Result<(), CheckError> {
    if let CheckKind::Mysql(check) = &probe.target.check.kind {
        return store::mysql(probe.address, check).await;
    }
    let stream = TcpStream::connect(probe.address)
        .await
        .map_err(CheckError::Connect)?;
    let http = match &probe.target.check.kind {
        CheckKind::Http(http) => http,
        CheckKind::Redis(check) => {
            return match &probe.tls {
                None => store::redis(stream, check).await,
                Some((connector, name)) => {
                    let (stream, _) = tls_connect(stream, connector, name).await?;
                    store::redis(stream, check).await
                }
            };
        }
        CheckKind::Tcp | CheckKind::Mysql(_) => return Ok(()),
    };
    let path = &http.path;
    let _ = stream.set_nodelay(true);
    let response = match &probe.tls {
        None => {
            let version = match probe.target.protocol {
                UpstreamProtocol::Http1 => Version::HTTP_11,
                UpstreamProtocol::H2c => Version::HTTP_2,
            };
            let request = request(version, Scheme::HTTP, &probe.host, path)?;
            send(TokioIo::new(stream), request).await?
        }
        Some((connector, name)) => {
            let (stream, version) = tls_connect(stream, connector, name).await?;
            let request = request(version, Scheme::HTTPS, &probe.host, path)?;
            send(TokioIo::new(stream), request).await?
        }
    };
    verdict(response, http).await
}

/// The check's GET: origin-form with `Host` on HTTP/1.1; on HTTP/2 a URI whose scheme and
/// authority become `:scheme` and `:authority`, and whose path becomes `:path`.
fn request(
    version: Version,
    scheme: Scheme,
    host: &str,
    path: &str,
) -> Result<Request<Empty<Bytes>>, CheckError> {
    let invalid = |e: &dyn std::fmt::Display| CheckError::Request(e.to_string());
    let path: PathAndQuery = path.parse().map_err(|e| invalid(&e))?;
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(path);
    let mut request = Request::builder()
        .method(http::Method::GET)
        .version(version);
    if version == Version::HTTP_2 {
        parts.scheme = Some(scheme);
        parts.authority = Some(host.parse::<Authority>().map_err(|e| invalid(&e))?);
    } else {
        let host = HeaderValue::from_str(host).map_err(|e| invalid(&e))?;
        request = request
            .header(header::HOST, host)
            // The check's connection is not reused: say so, as HAProxy's checks do.
            .header(header::CONNECTION, "close");
    }
    request
        .uri(Uri::from_parts(parts).map_err(|e| invalid(&e))?)
        .header(
            header::USER_AGENT,
            concat!("portero-health-check/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| invalid(&e))
}

/// Sends `request` on its own connection, HTTP/1.1 or HTTP/2 by the request's version.
async fn send<T>(io: T, request: Request<Empty<Bytes>>) -> Result<Response<Incoming>, CheckError>
where
    T: Read + Write + Unpin + Send + 'static,
{
    if request.version() == Version::HTTP_2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(connection);
        Ok(sender.send_request(request).await?)
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(connection);
        Ok(sender.send_request(request).await?)
    }
}

/// The TLS handshake of an HTTPS pool's check; the HTTP version the backend chose by ALPN.
async fn tls_connect(
    stream: TcpStream,
    connector: &TlsConnector,
    name: &ServerName<'static>,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Version), CheckError> {
    let stream = connector
        .connect(name.clone(), stream)
        .await
        .map_err(CheckError::Tls)?;
    let version = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Version::HTTP_2,
        _ => Version::HTTP_11,
    };
    Ok((stream, version))
}

/// Passes when the status is expected and, with `expect_body`, the body holds the text.
async fn verdict(response: Response<Incoming>, check: &HttpCheck) -> Result<(), CheckError> {
    let status = response.status();
    if !check.expect_status.contains(status.as_u16()) {
        return Err(CheckError::Status(status));
    }
    let Some(text) = &check.expect_body else {
        return Ok(());
    };
    let mut body = response.into_body();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            seen.extend_from_slice(&data);
            if memchr::memmem::find(&seen, text.as_bytes()).is_some() {
                return Ok(());
            }
            if seen.len() >= MAX_SEARCHED_BODY {
                break;
            }
        }
    }
    Err(CheckError::Body(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_check_is_origin_form_with_host() {
        let request = request(
            Version::HTTP_11,
            Scheme::HTTP,
            "api.internal",
            "/healthz?x=1",
        )
        .unwrap();
        assert_eq!(request.uri().to_string(), "/healthz?x=1");
        assert!(request.uri().authority().is_none());
        assert_eq!(request.headers()[header::HOST], "api.internal");
    }

    #[test]
    fn http2_check_carries_authority_and_path_in_the_uri() {
        let request = request(Version::HTTP_2, Scheme::HTTP, "10.0.0.5:8080", "/healthz").unwrap();
        assert_eq!(request.uri().authority().unwrap(), "10.0.0.5:8080");
        assert_eq!(request.uri().path(), "/healthz");
        assert!(request.headers().get(header::HOST).is_none());
    }
}
