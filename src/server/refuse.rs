//! Connections turned away before HTTP begins: a pre-built answer written on the raw socket
//! (plain listeners only; a TLS client cannot read one and is just closed), then a brief drain.
//! Closing a socket with unread input sends a reset, which could destroy the answer before
//! the client reads it.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// At the admission ceiling with `at_limit = "reject"`.
pub const AT_LIMIT: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 24\r\nretry-after: 1\r\nconnection: close\r\n\r\n503 Service Unavailable\n";

/// Over `security.max_connections_per_ip`.
pub const PER_IP_LIMIT: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 22\r\nretry-after: 1\r\nconnection: close\r\n\r\n429 Too Many Requests\n";

/// Writes `answer`, closes, and reads what the client still sends for up to a second.
pub async fn answer(mut stream: TcpStream, answer: &[u8]) {
    let exchange = async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), exchange).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answers_are_well_formed() {
        for (answer, status) in [(AT_LIMIT, "503"), (PER_IP_LIMIT, "429")] {
            let text = std::str::from_utf8(answer).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")));
            assert!(head.contains("retry-after: 1"));
            assert!(head.contains(&format!("content-length: {}", body.len())));
        }
    }
}
