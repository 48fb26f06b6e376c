//! The first flight of a `tls-passthrough` session: the client's TLS ClientHello, read (not
//! answered) for its server name, and kept whole to be sent on to the backend, which
//! terminates TLS itself. rustls's own `Acceptor` parses it, so a hello is judged by the same
//! code that judges one on a TLS listener; portero bounds it (`MAX_HELLO` bytes, the
//! handshake timeout) and reads it as it comes, however it is split.

use rustls::server::Acceptor;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The most of a ClientHello read before giving up on it: 16 KiB, a whole TLS record, holds
/// any hello a browser or driver sends today (post-quantum key shares included).
pub const MAX_HELLO: usize = 16 * 1024;

/// A complete ClientHello.
#[derive(Debug)]
pub struct Hello {
    /// Every byte read, to be sent to the backend first.
    pub bytes: Vec<u8>,
    /// Its `server_name` (SNI), if it has one.
    pub server_name: Option<String>,
}

/// Why a passthrough session was closed before a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// The first bytes are not a TLS ClientHello.
    NotTls,
    /// No complete ClientHello within [`MAX_HELLO`] bytes.
    TooLarge,
    /// The client closed, or the socket failed, before its hello was complete.
    Closed,
    /// No complete ClientHello within the handshake timeout.
    Timeout,
}

impl HelloError {
    /// The metric label and access-log `end`.
    pub fn as_str(self) -> &'static str {
        match self {
            HelloError::NotTls => "not_tls",
            HelloError::TooLarge => "client_hello_too_large",
            HelloError::Closed => "client_hello_incomplete",
            HelloError::Timeout => "client_hello_timeout",
        }
    }
}

/// A ClientHello being read: bytes go in as they arrive.
pub struct HelloReader {
    acceptor: Acceptor,
    bytes: Vec<u8>,
}

impl Default for HelloReader {
    fn default() -> Self {
        Self {
            acceptor: Acceptor::default(),
            bytes: Vec::with_capacity(2048),
        }
    }
}

impl HelloReader {
    /// Takes the next bytes: `Ok(Some(hello))` once the ClientHello is complete, `Ok(None)`
    /// while it is not.
    pub fn push(&mut self, mut new: &[u8]) -> Result<Option<Hello>, HelloError> {
        if self.bytes.len() + new.len() > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        self.bytes.extend_from_slice(new);
        while !new.is_empty() {
            match self.acceptor.read_tls(&mut new) {
                Ok(0) | Err(_) => return Err(HelloError::NotTls),
                Ok(_) => {}
            }
        }
        match self.acceptor.accept() {
            Ok(None) => Ok(None),
            Ok(Some(accepted)) => Ok(Some(Hello {
                server_name: accepted.client_hello().server_name().map(str::to_owned),
                bytes: std::mem::take(&mut self.bytes),
            })),
            Err(_) => Err(HelloError::NotTls),
        }
    }
}

/// Reads the client's ClientHello from `stream`, within `timeout`.
pub async fn read(
    stream: &mut TcpStream,
    timeout: std::time::Duration,
) -> Result<Hello, HelloError> {
    let reading = async {
        let mut reader = HelloReader::default();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return Err(HelloError::Closed),
                Ok(n) => n,
            };
            if let Some(hello) = reader.push(&chunk[..n])? {
                return Ok(hello);
            }
        }
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(HelloError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// The first flight rustls's client sends for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(config), name.to_string().try_into().unwrap())
                .unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_whole_hello_names_its_server_and_keeps_every_byte() {
        let bytes = client_hello("db.example.com");
        let hello = HelloReader::default().push(&bytes).unwrap().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("db.example.com"));
        assert_eq!(hello.bytes, bytes);
    }

    #[test]
    fn a_hello_split_into_single_bytes_is_read_the_same() {
        let bytes = client_hello("a.db.example.com");
        let mut reader = HelloReader::default();
        let (last, head) = bytes.split_last().unwrap();
        for byte in head {
            assert!(reader.push(std::slice::from_ref(byte)).unwrap().is_none());
        }
        let hello = reader.push(std::slice::from_ref(last)).unwrap().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some("a.db.example.com"));
        assert_eq!(hello.bytes, bytes);
    }

    #[test]
    fn what_is_not_a_hello_is_refused() {
        assert_eq!(
            HelloReader::default()
                .push(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap_err(),
            HelloError::NotTls
        );
        assert_eq!(
            HelloReader::default().push(b"PING\r\n").unwrap_err(),
            HelloError::NotTls
        );
        // A full record opening a hello that announces 60 KiB: more than MAX_HELLO.
        let mut reader = HelloReader::default();
        let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00, 0xf0, 0x00];
        record.resize(4096, 0);
        for _ in 0..4 {
            assert!(
                reader.push(&record).unwrap().is_none(),
                "within MAX_HELLO: more needed"
            );
            record = vec![0; 4096];
        }
        assert_eq!(reader.push(&[0; 16]).unwrap_err(), HelloError::TooLarge);
    }
}
