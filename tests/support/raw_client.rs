//! Raw HTTP/1 for the attack tests: a client that writes any bytes on a `TcpStream` and reads
//! the answers with deadlines, and a small parser for both directions — the responses portero
//! sends back, and the requests a [`RawBackend`](super::raw_backend::RawBackend) received —
//! so a test can assert the exact status, whether the connection was closed, and exactly what
//! was forwarded. The parser is deliberately plain (CRLF heads, Content-Length or chunked
//! bodies): it reads what portero and hyper write, not what attackers write.

use super::raw_backend::find;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Header or trailer fields: lower-cased names, values as sent, in order.
pub type Fields = Vec<(String, String)>;

/// One parsed HTTP/1 message (a response, or a request as a backend received it).
#[derive(Clone, Debug, Default)]
pub struct Message {
    /// The status line or request line, without CRLF.
    pub start: String,
    /// Header fields in the order received.
    pub headers: Fields,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Fields,
    /// The message's raw bytes, head and body as framed on the wire.
    pub raw: Vec<u8>,
}

impl Message {
    /// The status code of a response (0 when the start line is not a status line).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The header block as sorted `name: value` lines, with `x-request-id`'s random value
    /// shown as `*`: what a test compares exactly.
    pub fn header_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| match n.as_str() {
                "x-request-id" => format!("{n}: *"),
                _ => format!("{n}: {v}"),
            })
            .collect();
        lines.sort();
        lines
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses one message at the start of `buf`: the message and the bytes it took, or `None`
/// while it is incomplete. `response` says whether it answers a request (then 1xx, 204 and
/// 304 have no body); a message with neither Content-Length nor chunked framing has no body
/// when it is a request and runs to `eof` when it is a response.
pub fn parse(buf: &[u8], response: bool, eof: bool) -> Option<(Message, usize)> {
    let head_end = find(buf, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_string();
    let headers = fields(lines);
    let mut message = Message {
        start,
        headers,
        ..Message::default()
    };
    let status = message.status();
    let chunked = message
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    let rest = &buf[head_end..];
    let used = if response && (status < 200 || status == 204 || status == 304) {
        0
    } else if chunked {
        let (body, trailers, used) = dechunk(rest)?;
        message.body = body;
        message.trailers = trailers;
        used
    } else if let Some(length) = message.header("content-length") {
        let length: usize = length.trim().parse().ok()?;
        message.body = rest.get(..length)?.to_vec();
        length
    } else if response {
        if !eof {
            return None;
        }
        message.body = rest.to_vec();
        rest.len()
    } else {
        0
    };
    message.raw = buf[..head_end + used].to_vec();
    Some((message, head_end + used))
}

/// Every whole message in `buf`, in order, and the bytes left after them.
pub fn parse_all(buf: &[u8], response: bool, eof: bool) -> (Vec<Message>, Vec<u8>) {
    let mut messages = Vec::new();
    let mut at = 0;
    // Each message takes at least its 4-byte head end, so this ends.
    while let Some((message, used)) = parse(&buf[at..], response, eof) {
        messages.push(message);
        at += used;
    }
    (messages, buf[at..].to_vec())
}

fn fields<'a>(lines: impl Iterator<Item = &'a str>) -> Fields {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// A chunked body at the start of `buf`: data, trailers and the bytes taken.
fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, Fields, usize)> {
    let (mut body, mut at) = (Vec::new(), 0);
    loop {
        let line = find(&buf[at..], b"\r\n")?;
        let size = std::str::from_utf8(&buf[at..at + line]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        at += line + 2;
        if size == 0 {
            let end = if buf[at..].starts_with(b"\r\n") {
                at
            } else {
                at + find(&buf[at..], b"\r\n\r\n")? + 2
            };
            let text = String::from_utf8_lossy(&buf[at..end]).into_owned();
            return Some((body, fields(text.split("\r\n")), end + 2));
        }
        body.extend_from_slice(buf.get(at..at + size)?);
        at += size;
        if buf.get(at..at + 2)? != b"\r\n" {
            return None;
        }
        at += 2;
    }
}

/// Whether `bytes` hold a LF not preceded by CR.
pub fn has_bare_lf(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || bytes[i - 1] != b'\r'))
}

/// What one connection gave back.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The responses, in order.
    pub responses: Vec<Message>,
    /// Whether portero closed (or reset) the connection before the deadline.
    pub closed: bool,
    /// Bytes after the last whole response.
    pub rest: Vec<u8>,
}

impl Outcome {
    /// The statuses, in order.
    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(Message::status).collect()
    }
}

/// A raw client connection that keeps whatever it has read but not yet parsed.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    eof: bool,
}

impl RawClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient::from(TcpStream::connect(addr).await.unwrap())
    }

    /// Writes `bytes`.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next whole response, or `None` when the connection closes or `timeout` passes
    /// first.
    pub async fn response(&mut self, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((message, used)) = parse(&self.buf, true, self.eof) {
                self.buf.drain(..used);
                return Some(message);
            }
            if self.eof || !self.read_some(deadline).await {
                return None;
            }
        }
    }

    /// Reads until the server closes the connection; whether it did before `timeout`.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.eof {
            if !self.read_some(deadline).await && !self.eof {
                return false;
            }
        }
        true
    }

    /// Every whole response read so far (or still to read until close or `timeout`), whether
    /// the connection closed, and the rest.
    pub async fn finish(mut self, timeout: Duration) -> Outcome {
        let closed = self.closed_within(timeout).await;
        let (responses, rest) = parse_all(&self.buf, true, closed);
        Outcome {
            responses,
            closed,
            rest,
        }
    }

    /// Bytes read and not yet taken as a response.
    pub fn unread(&self) -> &[u8] {
        &self.buf
    }

    /// One read before `deadline`; `false` at the deadline or at the end of the stream (a
    /// reset counts as the end).
    async fn read_some(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => false,
        }
    }
}

impl From<TcpStream> for RawClient {
    fn from(stream: TcpStream) -> RawClient {
        RawClient {
            stream,
            buf: Vec::new(),
            eof: false,
        }
    }
}

/// Reads until the peer closes (or resets) the connection or `deadline` passes: what came,
/// and whether it closed.
pub async fn read_to_close<R: AsyncRead + Unpin>(
    reader: &mut R,
    deadline: Instant,
) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) => return (received, true),
            Ok(Ok(n)) => received.extend_from_slice(&chunk[..n]),
            Err(_) => return (received, false),
        }
    }
}

/// Connects, writes `bytes` while reading (so a server that answers early and stops reading
/// cannot stall the test), and reads until the server closes or `timeout` passes.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> Outcome {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + timeout;
    let (mut reader, mut writer) = stream.split();
    let write = async {
        // The server may close before taking everything: that is an answer, not a failure.
        let _ = writer.write_all(bytes).await;
    };
    let ((), (received, closed)) = tokio::join!(write, read_to_close(&mut reader, deadline));
    let (responses, rest) = parse_all(&received, true, closed);
    Outcome {
        responses,
        closed,
        rest,
    }
}
