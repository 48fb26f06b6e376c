//! A raw HTTP/2 client (h2c, prior knowledge) for the attack tests: it writes any frame,
//! well-formed or not, and reads the server's frames with deadlines. Header blocks are HPACK
//! written by hand (literals, no Huffman), so a test can send what no real client would:
//! uppercase names, connection-specific headers, pseudo-headers out of order.

use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (only a server may send it).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Error codes (RFC 9113 §7).
pub mod code {
    /// NO_ERROR.
    pub const NO_ERROR: u32 = 0x0;
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: u32 = 0x2;
    /// FLOW_CONTROL_ERROR.
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    /// STREAM_CLOSED.
    pub const STREAM_CLOSED: u32 = 0x5;
    /// FRAME_SIZE_ERROR.
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    /// REFUSED_STREAM.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// CANCEL.
    pub const CANCEL: u32 = 0x8;
    /// COMPRESSION_ERROR.
    pub const COMPRESSION_ERROR: u32 = 0x9;
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
}

/// END_STREAM on DATA and HEADERS (the same bit as [`ACK`]).
pub const END_STREAM: u8 = 0x1;
/// ACK on SETTINGS and PING.
pub const ACK: u8 = 0x1;
/// END_HEADERS on HEADERS and CONTINUATION.
pub const END_HEADERS: u8 = 0x4;
/// PADDED on DATA and HEADERS.
pub const PADDED: u8 = 0x8;
/// PRIORITY on HEADERS (a 5-byte priority block before the fields).
pub const PRIORITY: u8 = 0x20;
/// SETTINGS_INITIAL_WINDOW_SIZE.
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
/// SETTINGS_HEADER_TABLE_SIZE.
pub const HEADER_TABLE_SIZE: u16 = 0x1;
/// SETTINGS_ENABLE_PUSH.
pub const ENABLE_PUSH: u16 = 0x2;
/// SETTINGS_MAX_CONCURRENT_STREAMS.
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// SETTINGS_MAX_FRAME_SIZE.
pub const MAX_FRAME_SIZE: u16 = 0x5;

/// One frame: the 9-byte header, then `payload`.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap();
    assert!(len < 1 << 24, "frame payload too long");
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend((stream & 0x7fff_ffff).to_be_bytes());
    out.extend(payload);
    out
}

/// SETTINGS with these (identifier, value) pairs.
pub fn settings(values: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = values
        .iter()
        .flat_map(|(id, value)| [&id.to_be_bytes()[..], &value.to_be_bytes()].concat())
        .collect();
    frame(kind::SETTINGS, 0, 0, &payload)
}

/// SETTINGS with ACK.
pub fn settings_ack() -> Vec<u8> {
    frame(kind::SETTINGS, ACK, 0, &[])
}

/// HEADERS carrying (part of) a header block.
pub fn headers(stream: u32, flags: u8, block: &Block) -> Vec<u8> {
    frame(kind::HEADERS, flags, stream, &block.0)
}

/// CONTINUATION carrying more of a header block.
pub fn continuation(stream: u32, flags: u8, block: &Block) -> Vec<u8> {
    frame(kind::CONTINUATION, flags, stream, &block.0)
}

/// DATA.
pub fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    frame(kind::DATA, flags, stream, payload)
}

/// RST_STREAM with an error code.
pub fn rst_stream(stream: u32, code: u32) -> Vec<u8> {
    frame(kind::RST_STREAM, 0, stream, &code.to_be_bytes())
}

/// PING (not an ACK).
pub fn ping(payload: [u8; 8]) -> Vec<u8> {
    frame(kind::PING, 0, 0, &payload)
}

/// PRIORITY: `stream` depends (non-exclusively) on `depends_on` with `weight`.
pub fn priority(stream: u32, depends_on: u32, weight: u8) -> Vec<u8> {
    let mut payload = depends_on.to_be_bytes().to_vec();
    payload.push(weight);
    frame(kind::PRIORITY, 0, stream, &payload)
}

/// GOAWAY naming `last_stream`, with an error code and no debug data.
pub fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let payload = [last_stream.to_be_bytes(), code.to_be_bytes()].concat();
    frame(kind::GOAWAY, 0, 0, &payload)
}

/// WINDOW_UPDATE (`stream` 0 for the connection).
pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(kind::WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// An HPACK header block written field by field, in the order given.
#[derive(Clone, Debug, Default)]
pub struct Block(pub Vec<u8>);

impl Block {
    /// `:method`, `:scheme http`, `:path`, `:authority localhost`: a valid request head.
    pub fn request(method: &str, path: &str) -> Block {
        Block::default()
            .field(":method", method)
            .field(":scheme", "http")
            .field(":path", path)
            .field(":authority", "localhost")
    }

    /// A literal field without indexing, with a new name (RFC 7541 §6.2.2), sent verbatim.
    pub fn field(mut self, name: &str, value: &str) -> Block {
        self.0.push(0x00);
        put_string(&mut self.0, name.as_bytes());
        put_string(&mut self.0, value.as_bytes());
        self
    }

    /// A literal field with incremental indexing, new name (§6.2.1): it enters the dynamic
    /// table at index 62.
    pub fn indexed_literal(mut self, name: &str, value: &str) -> Block {
        self.0.push(0x40);
        put_string(&mut self.0, name.as_bytes());
        put_string(&mut self.0, value.as_bytes());
        self
    }

    /// An indexed field (§6.1): one byte (for `index` < 127) that may stand for a long field.
    pub fn index(mut self, index: usize) -> Block {
        put_int(&mut self.0, 0x80, 7, index);
        self
    }
}

fn put_string(dst: &mut Vec<u8>, s: &[u8]) {
    put_int(dst, 0x00, 7, s.len()); // H bit clear: no Huffman
    dst.extend(s);
}

/// An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits above it.
fn put_int(dst: &mut Vec<u8>, high: u8, prefix: u8, mut value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        dst.push(high | value as u8);
        return;
    }
    dst.push(high | max as u8);
    value -= max;
    while value >= 128 {
        dst.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    dst.push(value as u8);
}

/// A frame as read from the server.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Type, see [`kind`].
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The error code of a RST_STREAM or GOAWAY.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            kind::RST_STREAM => 0,
            kind::GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    }

    /// The `:status` of a response HEADERS, when it is its first field and coded as h2's
    /// encoder does for a status new to the connection: indexed (200, 204, 206, 304, 400,
    /// 404, 500) or a literal with the `:status` name (Huffman or not).
    pub fn status(&self) -> Option<u16> {
        if self.kind != kind::HEADERS {
            return None;
        }
        let mut p: &[u8] = &self.payload;
        if self.flags & 0x8 != 0 {
            p = p.get(1..)?; // PADDED: pad length; the padding is after the fields
        }
        if self.flags & 0x20 != 0 {
            p = p.get(5..)?; // PRIORITY
        }
        match *p.first()? {
            b @ 0x88..=0x8e => Some([200, 204, 206, 304, 400, 404, 500][usize::from(b - 0x88)]),
            0x48 | 0x08 | 0x18 => {
                let len = usize::from(p.get(1)? & 0x7f);
                let digits = p.get(2..2 + len)?;
                let text = if p[1] & 0x80 != 0 {
                    huffman_digits(digits)?
                } else {
                    String::from_utf8(digits.to_vec()).ok()?
                };
                text.parse().ok()
            }
            _ => None,
        }
    }
}

/// Decodes a Huffman string of ASCII digits (RFC 7541 Appendix B: '0'-'2' take 5 bits,
/// '3'-'9' take 6); the rest of the last byte is EOS padding (all ones).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let take = |at: usize, n: usize| {
        let code = bits.get(at..at + n)?;
        Some(code.iter().fold(0u8, |v, bit| v * 2 + bit))
    };
    let (mut out, mut at) = (String::new(), 0);
    while bits.len() - at >= 5 {
        let five = take(at, 5)?;
        if five <= 2 {
            out.push(char::from(b'0' + five));
            at += 5;
        } else if five == 0b11111 {
            break; // padding
        } else {
            let six = take(at, 6).filter(|code| (0x19..=0x1f).contains(code))?;
            out.push(char::from(b'0' + six - 0x16));
            at += 6;
        }
    }
    Some(out)
}

/// A GOAWAY frame, decoded.
#[derive(Clone, Debug)]
pub struct GoAway {
    /// The last stream the server processed.
    pub last_stream: u32,
    /// The error code, see [`code`].
    pub code: u32,
    /// The debug data, as text.
    pub debug: String,
}

/// What one read gave.
#[derive(Debug)]
pub enum Event {
    /// A whole frame.
    Frame(Frame),
    /// The server closed (or reset) the connection.
    Closed,
    /// The deadline passed.
    TimedOut,
}

/// The reading half of a raw connection.
pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next frame, or why there is none before `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Event {
        loop {
            if self.buf.len() >= 9 {
                let len = usize::from(self.buf[0]) << 16
                    | usize::from(self.buf[1]) << 8
                    | usize::from(self.buf[2]);
                if self.buf.len() >= 9 + len {
                    let head = self.buf.split_to(9);
                    let payload = self.buf.split_to(len).to_vec();
                    let stream = (&head[5..9]).get_u32() & 0x7fff_ffff;
                    return Event::Frame(Frame {
                        kind: head[3],
                        flags: head[4],
                        stream,
                        payload,
                    });
                }
            }
            match tokio::time::timeout_at(deadline, self.half.read_buf(&mut self.buf)).await {
                Ok(Ok(0) | Err(_)) => return Event::Closed,
                Ok(Ok(_)) => {}
                Err(_) => return Event::TimedOut,
            }
        }
    }

    /// The first frame for which `wanted` holds, skipping others; panics if the connection
    /// closes or `deadline` passes first.
    pub async fn find(&mut self, deadline: Instant, wanted: impl Fn(&Frame) -> bool) -> Frame {
        loop {
            match self.next(deadline).await {
                Event::Frame(frame) if wanted(&frame) => return frame,
                Event::Frame(_) => {}
                other => panic!("no matching frame: {other:?}"),
            }
        }
    }

    /// The next GOAWAY, skipping other frames; panics if none comes before `deadline`.
    pub async fn expect_goaway(&mut self, deadline: Instant) -> GoAway {
        let frame = self.find(deadline, |f| f.kind == kind::GOAWAY).await;
        let p = &frame.payload;
        GoAway {
            last_stream: u32::from_be_bytes(p[0..4].try_into().unwrap()) & 0x7fff_ffff,
            code: frame.error_code().unwrap(),
            debug: String::from_utf8_lossy(&p[8..]).into_owned(),
        }
    }

    /// The GOAWAY that ends the connection and then its close, each before `deadline`; panics
    /// unless the GOAWAY carries `code` and `debug`.
    pub async fn expect_goaway_then_close(
        &mut self,
        code: u32,
        debug: &str,
        deadline: Instant,
    ) -> GoAway {
        let goaway = self.expect_goaway(deadline).await;
        assert_eq!(
            (goaway.code, goaway.debug.as_str()),
            (code, debug),
            "{goaway:?}"
        );
        assert!(
            self.closed_within(deadline).await,
            "still open after {goaway:?}"
        );
        goaway
    }

    /// The first answer to the request on `stream`: its response HEADERS, its RST_STREAM, or
    /// a GOAWAY, whichever comes first.
    pub async fn answer(&mut self, stream: u32, deadline: Instant) -> Frame {
        self.find(deadline, |f| {
            f.stream == stream && (f.kind == kind::HEADERS || f.kind == kind::RST_STREAM)
                || f.kind == kind::GOAWAY
        })
        .await
    }

    /// The next RST_STREAM for `stream`, or GOAWAY, whichever comes first.
    pub async fn read_until_rst_or_goaway(&mut self, stream: u32, deadline: Instant) -> Frame {
        self.find(deadline, |f| {
            f.kind == kind::GOAWAY || (f.kind == kind::RST_STREAM && f.stream == stream)
        })
        .await
    }

    /// Whether the server closes the connection before `deadline`; frames are skipped.
    pub async fn closed_within(&mut self, deadline: Instant) -> bool {
        loop {
            match self.next(deadline).await {
                Event::Frame(_) => {}
                Event::Closed => return true,
                Event::TimedOut => return false,
            }
        }
    }
}

/// A raw HTTP/2 connection: read with `reader`, write with [`Client::send`] or hand `writer`
/// to a task (for floods, so that reading goes on while it writes).
pub struct Client {
    /// Frames from the server.
    pub reader: Reader,
    /// The socket's writing half.
    pub writer: OwnedWriteHalf,
}

impl Client {
    /// Connects, sends the preface and SETTINGS with `values`, waits for the server's
    /// SETTINGS (5 s at most) and acknowledges them.
    pub async fn connect(addr: SocketAddr, values: &[(u16, u32)]) -> Client {
        let (half, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = Client {
            reader: Reader {
                half,
                buf: BytesMut::with_capacity(64 * 1024),
            },
            writer,
        };
        client
            .send(&[PREFACE, &settings(values)].concat())
            .await
            .unwrap();
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let wanted = |f: &Frame| f.kind == kind::SETTINGS && f.flags & ACK == 0;
        client.reader.find(deadline, wanted).await;
        client.send(&settings_ack()).await.unwrap();
        client
    }

    /// Connects and sends nothing: the test writes the preface (or not) itself.
    pub async fn open(addr: SocketAddr) -> Client {
        let (half, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Client {
            reader: Reader {
                half,
                buf: BytesMut::with_capacity(64 * 1024),
            },
            writer,
        }
    }

    /// Writes `chunk` `times` times from a task of its own, so that reading goes on meanwhile;
    /// the task gives how many chunks were written whole.
    pub fn flood_in_background(
        self,
        chunk: Vec<u8>,
        times: usize,
    ) -> (Reader, tokio::task::JoinHandle<usize>) {
        let Client { reader, mut writer } = self;
        let task = tokio::spawn(async move { flood(&mut writer, &chunk, times).await });
        (reader, task)
    }

    /// Writes `bytes` (any number of frames).
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await
    }
}

/// Sends `block` as a GET (END_STREAM) on stream 1 of a fresh connection to `addr`; the
/// first answer to it ([`Reader::answer`]) within `timeout` of sending it.
pub async fn answer_on_fresh(addr: SocketAddr, block: &Block, timeout: Duration) -> Frame {
    let mut client = Client::connect(addr, &[]).await;
    client
        .send(&headers(1, END_STREAM | END_HEADERS, block))
        .await
        .unwrap();
    client.reader.answer(1, Instant::now() + timeout).await
}

/// Writes `chunk` up to `times` times, stopping at the first error (the server closed);
/// returns how many were written whole.
pub async fn flood(writer: &mut OwnedWriteHalf, chunk: &[u8], times: usize) -> usize {
    for written in 0..times {
        if writer.write_all(chunk).await.is_err() {
            return written;
        }
    }
    times
}
