//! Clients that come from somewhere else: connections from a chosen loopback source address
//! (127.0.0.2, 127.0.0.3... are all this machine), and PROXY protocol headers naming any
//! client at all, which is how a test plays a load balancer fronting many users.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `to` from the loopback address `from` (any port).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// A PROXY v1 line for a TCP4 client `client` talking to `to`.
pub fn proxy_v1(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let family = if client.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        client.ip(),
        to.ip(),
        client.port(),
        to.port()
    )
    .into_bytes()
}

/// A PROXY v2 header (PROXY command, TCP over IPv4) for `client` talking to `to`.
pub fn proxy_v2(client: std::net::SocketAddrV4, to: std::net::SocketAddrV4) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client.ip().octets());
    header.extend_from_slice(&to.ip().octets());
    header.extend_from_slice(&client.port().to_be_bytes());
    header.extend_from_slice(&to.port().to_be_bytes());
    header
}

/// A `GET path` that closes the connection after the answer.
pub fn get_closing(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Writes `bytes` and reads until the server closes (or `timeout`); returns what was read
/// and whether the close was seen.
pub async fn exchange(stream: &mut TcpStream, bytes: &[u8], timeout: Duration) -> (String, bool) {
    let (out, closed) = exchange_bytes(stream, bytes, timeout).await;
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// [`exchange`] for answers that are not text (TLS records, binary frames).
pub async fn exchange_bytes(
    stream: &mut TcpStream,
    bytes: &[u8],
    timeout: Duration,
) -> (Vec<u8>, bool) {
    if stream.write_all(bytes).await.is_err() {
        return (Vec::new(), true);
    }
    let mut out = Vec::new();
    let closed = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    (out, closed)
}

/// The status code at the start of a raw response, or 0.
pub fn status(response: &str) -> u16 {
    response
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}
