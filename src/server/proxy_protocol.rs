//! The PROXY protocol (v1 text and v2 binary), as the DigitalOcean load balancer and HAProxy
//! send it: the first bytes of a connection name the real client. Only peers in the
//! listener's `proxy_protocol.trusted` may send one, and they must (a PROXY listener behind a
//! load balancer that forgot it would otherwise see every client as the balancer). Anyone else
//! is served as a plain client; a PROXY header from them is not one of ours to read, so it
//! reaches the HTTP parser or the TLS handshake as garbage and is refused there.
//!
//! Parsing is the `ppp` crate's; reading is ours: the header is peeked and then read exactly,
//! so not one byte of the client's request is consumed with it, whatever follows (HTTP or a
//! TLS ClientHello).

use ppp::{HeaderResult, PartialResult};
use std::net::SocketAddr;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// v1 headers are at most 107 bytes; v2 ones are 16 plus a length, usually well under this.
const PEEK: usize = 536;
/// The longest v1 line.
const V1_MAX: usize = 107;
/// v2 signature (12 bytes) + version/command, family, length.
const V2_FIXED: usize = 16;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Not a PROXY header (a trusted peer must send one).
    #[error("no PROXY header from a trusted peer")]
    Missing,
    /// A PROXY header that does not parse.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// The peer closed before the header was complete.
    #[error("connection closed inside the PROXY header")]
    Closed,
    /// Reading failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// Its length in bytes.
    pub len: usize,
    /// The client's address; `None` for `LOCAL` / `UNKNOWN` (the balancer's own health
    /// checks), which are served as coming from the peer itself.
    pub source: Option<SocketAddr>,
}

/// The result of parsing the first bytes of a connection. Pure; the fuzz target drives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header.
    Complete(ProxyHeader),
    /// The start of a header; more bytes are needed.
    Incomplete,
    /// Not a valid header.
    Invalid(String),
}

/// Parses a PROXY header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    // A v1 line cannot be judged before its CRLF: ppp calls "... 80 " a bad port, though
    // "443\r\n" may be on its way, and it ends an UNKNOWN line at a bare LF when no CR has
    // come yet, so the same header split over segments would end elsewhere (found by the
    // fuzzer: `PROXY UNKNOWN \n\r\n` was 15 bytes read in pieces, 17 in one).
    if bytes.starts_with(b"PROXY ") && bytes.len() < V1_MAX && !has_v1_line_end(bytes) {
        return Parsed::Incomplete;
    }
    let result = HeaderResult::parse(bytes);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(header)) => Parsed::Complete(ProxyHeader {
            len: header.header.len(),
            source: match header.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            },
        }),
        HeaderResult::V2(Ok(header)) => Parsed::Complete(ProxyHeader {
            len: header.header.len(),
            source: match (header.command, header.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            },
        }),
        HeaderResult::V1(Err(e)) => Parsed::Invalid(e.to_string()),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(e.to_string()),
    }
}

/// Reads a trusted peer's PROXY header off `stream`, consuming exactly its bytes. The caller
/// bounds it in time.
pub async fn read(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut peeked = [0u8; PEEK];
    let n = stream.peek(&mut peeked).await?;
    if n == 0 {
        return Err(ProxyHeaderError::Closed);
    }
    match parse(&peeked[..n]) {
        Parsed::Complete(header) => {
            // The usual case: the whole header came in the first segment.
            stream.read_exact(&mut peeked[..header.len]).await?;
            Ok(header)
        }
        Parsed::Invalid(_) if !looks_like_proxy(&peeked[..n]) => Err(ProxyHeaderError::Missing),
        Parsed::Invalid(reason) => Err(ProxyHeaderError::Malformed(reason)),
        Parsed::Incomplete => read_in_pieces(stream).await,
    }
}

/// A header split over segments: read it in exact pieces so nothing after it is consumed
/// (v2 says its length after 16 bytes; v1 ends at its line feed, read a byte at a time).
async fn read_in_pieces(stream: &mut TcpStream) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut buf: Vec<u8> = Vec::with_capacity(V2_FIXED);
    loop {
        let want = match buf.first() {
            Some(b'\r') if buf.len() < V2_FIXED => V2_FIXED - buf.len(),
            Some(b'\r') => {
                let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
                (V2_FIXED + len).saturating_sub(buf.len()).max(1)
            }
            _ => 1,
        };
        let start = buf.len();
        buf.resize(start + want, 0);
        if let Err(e) = stream.read_exact(&mut buf[start..]).await {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ProxyHeaderError::Closed
            } else {
                ProxyHeaderError::Io(e)
            });
        }
        match parse(&buf) {
            Parsed::Complete(header) => return Ok(header),
            Parsed::Incomplete if buf.len() < V2_FIXED + usize::from(u16::MAX) => {}
            Parsed::Incomplete => return Err(ProxyHeaderError::Malformed("too long".into())),
            Parsed::Invalid(reason) => return Err(ProxyHeaderError::Malformed(reason)),
        }
    }
}

/// Whether the byte after the first CR has arrived: ppp ends a v1 line there, with an error
/// unless that byte is the LF.
fn has_v1_line_end(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .position(|&b| b == b'\r')
        .is_some_and(|cr| cr + 1 < bytes.len())
}

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fn is_v2_prefix(bytes: &[u8]) -> bool {
    let n = bytes.len().min(V2_SIGNATURE.len());
    bytes[..n] == V2_SIGNATURE[..n]
}

/// Whether the bytes start like a PROXY header of either version.
fn looks_like_proxy(bytes: &[u8]) -> bool {
    let n = bytes.len().min(6);
    bytes[..n] == b"PROXY "[..n] || is_v2_prefix(bytes)
}

#[cfg(test)]
mod tests;
