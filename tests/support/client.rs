//! Clients for the tests: HTTP/1.1 and h2c (prior knowledge) through hyper's pooled client,
//! and raw sockets for byte-exact requests.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body as text (lossy).
    pub body: String,
}

impl Reply {
    /// A header's value as text, or "".
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// An HTTP/1.1 keep-alive client.
pub fn http1() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge client.
pub fn h2c() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Sends `request` and reads the whole response (30 s at most).
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Reply {
    let exchange = async {
        let response = client.request(request).await.expect("request failed");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body failed").to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("request took over 30 s")
}

/// `GET http://{addr}{path}` over HTTP/1.1.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap();
    send(&http1(), request).await
}

/// `GET` over a fresh HTTP/1.1 connection; `None` on any failure or after 5 s.
pub async fn try_get(addr: SocketAddr, path: &str) -> Option<Reply> {
    let request = Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .ok()?;
    let exchange = async {
        let response = http1().request(request).await.ok()?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        Some(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// The backends (their `x-backend` header) that answered 200 to `n` GETs of `path`, each on a
/// fresh connection.
pub async fn served_by(addr: SocketAddr, path: &str, n: usize) -> HashSet<String> {
    let mut names = HashSet::new();
    for _ in 0..n {
        if let Some(reply) = try_get(addr, path).await
            && reply.status == 200
        {
            names.insert(reply.header("x-backend").to_string());
        }
    }
    names
}

/// Writes `bytes` on a new connection and reads until the server closes it (or `timeout`).
pub async fn raw(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The reason of the RST_STREAM behind `error`, if a stream reset caused it.
pub fn h2_reset(error: &(dyn std::error::Error + 'static)) -> Option<h2::Reason> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_reset().then(|| h2.reason()).flatten();
        }
        source = e.source();
    }
    None
}
