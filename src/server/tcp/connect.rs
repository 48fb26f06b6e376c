//! Joining a session to a backend: pick one of the pool (least connections by default; a
//! `consistent_hash` pool by the client's address), connect within
//! `timeouts.upstream_connect`, and on a failed connect count it against the backend (outlier
//! ejection) and try another, up to the pool's `retries`. Nothing has been sent yet, so a
//! retry is always safe. Then the pool's PROXY header, if it asks for one, and the bytes the
//! session has read already (a passthrough listener's ClientHello), in one write.

use crate::backend::InFlight;
use crate::balance::client_ip_key;
use crate::clock::now_us;
use crate::config::ProxyVersion;
use crate::metrics::Metrics;
use crate::pool::{PickRequest, Pool};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A session's backend connection, and the backend it counts against while it lasts.
pub struct Joined {
    /// The connection.
    pub upstream: TcpStream,
    /// The session as its backend's in-flight work (least_conn's count).
    pub flight: InFlight,
}

/// Why a session reached no backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No member of the pool can take it (none healthy, or every one tried).
    NoBackend,
    /// Every connect tried failed.
    ConnectFailed,
}

impl Refusal {
    /// The metric label and access-log `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoBackend => "no_backend",
            Refusal::ConnectFailed => "connect_failed",
        }
    }
}

/// What a session's backend connection needs.
pub struct Target<'a> {
    /// The client, named in a PROXY header.
    pub client: SocketAddr,
    /// Where the client's connection arrived, named in a PROXY header too.
    pub local: Option<SocketAddr>,
    /// What the backend gets before the relay starts.
    pub first: &'a [u8],
    /// `timeouts.upstream_connect`, for the connect and those first bytes.
    pub timeout: Duration,
}

/// Connects to a backend of `pool` for the session `target` describes.
pub async fn join(
    pool: &Pool,
    target: &Target<'_>,
    listener: &str,
    metrics: &Metrics,
) -> Result<Joined, Refusal> {
    let key = pool
        .config()
        .balance
        .uses_key()
        .then(|| client_ip_key(target.client.ip()));
    let mut tried = Vec::new();
    let mut refusal = Refusal::NoBackend;
    for _ in 0..=pool.config().retries {
        let request = PickRequest {
            now: now_us(),
            key,
            exclude: &tried,
        };
        let Some(picked) = pool.pick(&request) else {
            break;
        };
        let backend = picked.backend;
        // In flight from the connect on, so least_conn sees the session at once.
        let flight = backend.begin_request();
        let started = Instant::now();
        match connect(backend.address(), target, pool.config().send_proxy_protocol).await {
            Ok(upstream) => {
                metrics
                    .pools
                    .upstream_connect
                    .with_label_values(&[pool.name()])
                    .observe(started.elapsed().as_secs_f64());
                crate::proxy::outlier::outcome(pool, backend, true, metrics);
                return Ok(Joined { upstream, flight });
            }
            Err(error) => {
                tracing::debug!(pool = %pool.name(), backend = %backend.address(), %error, "tcp session: connect failed");
                metrics
                    .sessions
                    .connect_errors
                    .with_label_values(&[listener, pool.name(), backend.label()])
                    .inc();
                crate::proxy::outlier::outcome(pool, backend, false, metrics);
                tried.push(backend.address());
                refusal = Refusal::ConnectFailed;
            }
        }
    }
    Err(refusal)
}

/// One connect, then the PROXY header `proxy` asks for and the target's first bytes.
async fn connect(
    backend: SocketAddr,
    target: &Target<'_>,
    proxy: Option<ProxyVersion>,
) -> std::io::Result<TcpStream> {
    let connecting = async {
        let mut stream = TcpStream::connect(backend).await?;
        let _ = stream.set_nodelay(true);
        match proxy {
            // One write for the header and what follows it, so they leave together.
            Some(version) => {
                let local = target.local.unwrap_or(backend);
                let mut first = proxy_header(version, target.client, local);
                first.extend_from_slice(target.first);
                stream.write_all(&first).await?;
            }
            // No copy of a kept ClientHello when it goes alone.
            None if !target.first.is_empty() => stream.write_all(target.first).await?,
            None => {}
        }
        Ok(stream)
    };
    tokio::time::timeout(target.timeout, connecting)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// The PROXY header naming `client` and the address it reached, as HAProxy's `send-proxy`
/// and `send-proxy-v2` write them. Mixed families (an IPv4 client on an IPv6 listener) are
/// written with the client's address mapped to IPv6.
fn proxy_header(version: ProxyVersion, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = same_family(client, local);
    match version {
        ProxyVersion::V1 => ppp::v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        ProxyVersion::V2 => ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, local),
        )
        .build()
        // Writing two socket addresses into a Vec cannot fail.
        .unwrap_or_default(),
    }
}

fn same_family(client: SocketAddr, local: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    match (client.is_ipv4(), local.is_ipv4()) {
        (true, true) | (false, false) => (client, local),
        _ => (v6(client), v6(local)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(header: &[u8]) -> ppp::HeaderResult<'_> {
        ppp::HeaderResult::parse(header)
    }

    #[test]
    fn proxy_headers_name_the_client_and_the_address_it_reached() {
        let client: SocketAddr = "192.0.2.7:51000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:6380".parse().unwrap();
        let v1 = proxy_header(ProxyVersion::V1, client, local);
        assert_eq!(v1, b"PROXY TCP4 192.0.2.7 127.0.0.1 51000 6380\r\n");
        let v2 = proxy_header(ProxyVersion::V2, client, local);
        assert!(v2.starts_with(b"\r\n\r\n\0\r\nQUIT\n"), "{v2:?}");
        match parse(&v2) {
            ppp::HeaderResult::V2(Ok(header)) => {
                assert_eq!(header.addresses, ppp::v2::Addresses::from((client, local)));
            }
            other => panic!("v2 header does not parse back: {other:?}"),
        }
    }

    #[test]
    fn an_ipv4_client_on_an_ipv6_listener_is_mapped() {
        let client: SocketAddr = "192.0.2.7:51000".parse().unwrap();
        let local: SocketAddr = "[::1]:6380".parse().unwrap();
        let v1 = String::from_utf8(proxy_header(ProxyVersion::V1, client, local)).unwrap();
        assert_eq!(v1, "PROXY TCP6 ::ffff:192.0.2.7 ::1 51000 6380\r\n");
    }
}
