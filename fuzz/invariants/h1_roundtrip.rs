//! Round-trip invariant over one raw HTTP/1 request stream, for the `h1_roundtrip` fuzz target
//! and for `tests/fuzz_corpus.rs` (the same check on the committed corpus, on stable): what
//! portero's request parser accepts, sent on through its upstream encoder, is read back the
//! same by a backend.
//!
//! The requests the input starts with are parsed with `portero::h1::parse_request` (the
//! daemon's limits) and their bodies read whole (`Content-Length` bytes as they are, a chunked
//! body through `Chunked`), up to the first that is refused, incomplete, or ends the
//! connection (`Connection: close`, HTTP/1.0 without keep-alive, an upgrade or CONNECT). Each
//! is re-encoded as portero's upstream connection would send it: `encode_request_head` with
//! the parsed fields, target the URI's path and query (a CONNECT's authority), framing the
//! parsed one, and the body re-framed (the same chunks, no extensions, the trailers through
//! `encode_trailers`). The stream of them is then read by:
//!
//! - **hyper 1.x's HTTP/1 server** (`fuzz/invariants/hyper_io.rs`, as `h1_differential`
//!   runs it), a backend parser that is not portero's: it must call its service once per
//!   request, with no error in any body;
//! - **`parse_request` again**, with a limit twice the daemon's (re-encoding adds `": "` and
//!   CRLF where the input had `":"` and LF).
//!
//! Both must see each request as the original: method, target, HTTP/1.1, every field (name
//! and value, in the map's order) except `Content-Length` and `Transfer-Encoding`, which the
//! encoder owns, and the same framing, body bytes and trailers.
//!
//! Responses round-trip too: for each request, a response whose status, framing, `Connection`
//! and fields (some of the request's) are chosen by the input's last bytes is encoded with
//! `encode_response_head` and parsed back with `parse_response` for the request's method:
//! same status and fields (plus the framing, `Connection` and `Date` fields the encoder adds),
//! the framing RFC 9112 §6.3 gives, and keep-alive as the fields say.
//!
//! A disagreement panics with the input, the re-encoded stream and both readings.

// Each invariant that runs hyper loads it: a fuzz target compiles one invariant, while
// `tests/fuzz_corpus.rs` compiles them all side by side.
#[allow(clippy::duplicate_mod)]
#[path = "hyper_io.rs"]
mod hyper_io;
#[path = "h1_roundtrip/response.rs"]
mod response;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, Version, header};
use hyper::body::{Body, Incoming};
use hyper_io::{Io, Wakes, Wire, escaped, not_found, run, server};
use portero::h1::{
    BodyFraming, ChunkError, Chunked, Decoded, HeadLimits, ParsedRequest, RequestFraming,
    chunk_size_line, encode_request_head, encode_trailers, parse_request,
};
use std::cell::RefCell;
use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;

/// The daemon's limits (`limits.max_header_bytes`, `limits.max_headers`), for the input.
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: 32 * 1024,
    max_headers: 100,
};
/// For what portero re-encoded, on both backends: room for the `": "` and CRLF it adds.
const REENCODED_BYTES: usize = 2 * LIMITS.max_bytes;
/// The input's trailer sections; hyper's server takes up to 16 KiB of one.
const MAX_TRAILER_BYTES: usize = 8 * 1024;
/// Requests taken from one input.
const MAX_MESSAGES: usize = 16;

/// Checks that what portero accepts in `data` round-trips.
pub fn check(data: &[u8]) {
    let messages = messages(data);
    if messages.is_empty() {
        return;
    }
    let mut wire = Vec::new();
    for message in &messages {
        message.encode(&mut wire);
    }
    let expected: Vec<Seen> = messages.iter().map(Message::expected).collect();
    let fail = |reader: &str, seen: &dyn std::fmt::Debug| -> ! {
        panic!(
            "{reader} reads portero's re-encoding differently\n  input:      {}\n  re-encoded: {}\n  expected: {expected:#?}\n  {reader}: {seen:#?}",
            escaped(data),
            escaped(&wire),
        )
    };
    match portero_reading(&wire, messages.len()) {
        Ok(seen) if seen == expected => {}
        other => fail("portero", &other),
    }
    match hyper_reading(&wire) {
        Ok(seen) if seen == expected => {}
        other => fail("hyper", &other),
    }
    let mut choices = response::Choices::new(data);
    for message in &messages {
        response::check(data, message, &mut choices);
    }
}

/// One request as portero parsed it, with its whole body.
#[derive(Debug)]
struct Message {
    method: Method,
    target: String,
    /// Every field as parsed, framing fields included: the encoder must leave them out.
    headers: HeaderMap,
    framing: RequestFraming,
    /// The body's pieces as decoded (one per chunk), re-sent as they came.
    chunks: Vec<Bytes>,
    trailers: HeaderMap,
}

/// What a reader made of one request, in a form both readers produce.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    target: String,
    version: Version,
    /// Name and value, in the map's order, framing fields left out.
    fields: Vec<(String, Vec<u8>)>,
    framing: BodyFraming,
    body: Vec<u8>,
    /// Name and value, in the map's order, all of them.
    trailers: Vec<(String, Vec<u8>)>,
}

/// A head's fields but the two the encoder owns.
fn fields(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    let owned = [
        header::CONTENT_LENGTH.as_str(),
        header::TRANSFER_ENCODING.as_str(),
    ];
    all_fields(headers)
        .into_iter()
        .filter(|(name, _)| !owned.contains(&name.as_str()))
        .collect()
}

fn all_fields(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// The requests `data` starts with, while they are whole and the connection would go on.
fn messages(data: &[u8]) -> Vec<Message> {
    let mut buf = BytesMut::from(data);
    let mut messages = Vec::new();
    while messages.len() < MAX_MESSAGES {
        let Ok(Some(parsed)) = parse_request(&mut buf, LIMITS) else {
            break;
        };
        let Ok(Some((chunks, trailers))) = read_body(&mut buf, parsed.framing, MAX_TRAILER_BYTES)
        else {
            break;
        };
        let last = ends_connection(&parsed);
        messages.push(Message::new(parsed, chunks, trailers));
        if last {
            break;
        }
    }
    messages
}

/// After this request the connection carries no further one, on either side of portero
/// (re-encoded as HTTP/1.1, an HTTP/1.0 `Upgrade` would ask to switch).
fn ends_connection(parsed: &ParsedRequest) -> bool {
    let request = &parsed.request;
    !parsed.keep_alive
        || parsed.upgrade
        || request.headers().contains_key(header::UPGRADE)
        || request.method() == Method::CONNECT
}

/// A whole body from the front of `buf`; `Ok(None)`: not all there.
fn read_body(
    buf: &mut BytesMut,
    framing: BodyFraming,
    max_trailer_bytes: usize,
) -> Result<Option<(Vec<Bytes>, HeaderMap)>, ChunkError> {
    match framing {
        BodyFraming::None => Ok(Some((Vec::new(), HeaderMap::new()))),
        BodyFraming::Length(length) => Ok(usize::try_from(length)
            .ok()
            .filter(|&length| length <= buf.len())
            .map(|length| (vec![buf.split_to(length).freeze()], HeaderMap::new()))),
        BodyFraming::Chunked => {
            let mut decoder = Chunked::new(max_trailer_bytes);
            let mut chunks = Vec::new();
            loop {
                match decoder.decode(buf)? {
                    Some(Decoded::Data(data)) => chunks.push(data),
                    Some(Decoded::End(trailers)) => return Ok(Some((chunks, trailers))),
                    None => return Ok(None),
                }
            }
        }
    }
}

impl Message {
    fn new(parsed: ParsedRequest, chunks: Vec<Bytes>, trailers: HeaderMap) -> Self {
        let (parts, ()) = parsed.request.into_parts();
        let uri = &parts.uri;
        let target = match (uri.authority(), &parts.method) {
            (Some(authority), &Method::CONNECT) if uri.path_and_query().is_none() => {
                authority.as_str().to_owned()
            }
            // An authority-form target of another method has no path: `/`.
            _ => {
                let path = Some(uri.path())
                    .filter(|path| !path.is_empty())
                    .unwrap_or("/");
                match uri.query() {
                    Some(query) => format!("{path}?{query}"),
                    None => path.to_owned(),
                }
            }
        };
        let framing = match parsed.framing {
            BodyFraming::None => RequestFraming::Empty,
            BodyFraming::Length(length) => RequestFraming::Length(length),
            BodyFraming::Chunked => RequestFraming::Chunked,
        };
        Self {
            method: parts.method,
            target,
            headers: parts.headers,
            framing,
            chunks,
            trailers,
        }
    }

    /// The request as portero's upstream connection sends it.
    fn encode(&self, dst: &mut Vec<u8>) {
        encode_request_head(dst, &self.method, &self.target, &self.headers, self.framing);
        match self.framing {
            RequestFraming::Empty => {}
            RequestFraming::Length(_) => {
                for chunk in &self.chunks {
                    dst.extend_from_slice(chunk);
                }
            }
            RequestFraming::Chunked => {
                for chunk in &self.chunks {
                    chunk_size_line(chunk.len(), dst);
                    dst.extend_from_slice(chunk);
                    dst.extend_from_slice(b"\r\n");
                }
                encode_trailers(dst, Some(&self.trailers));
            }
        }
    }

    fn expected(&self) -> Seen {
        Seen {
            method: self.method.as_str().to_owned(),
            target: self.target.clone(),
            version: Version::HTTP_11,
            fields: fields(&self.headers),
            framing: match self.framing {
                RequestFraming::Empty => BodyFraming::None,
                RequestFraming::Length(length) => BodyFraming::Length(length),
                RequestFraming::Chunked => BodyFraming::Chunked,
            },
            body: self.chunks.concat(),
            trailers: all_fields(&self.trailers),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The readers

/// portero's own reading of the re-encoded stream: `count` requests and nothing more.
fn portero_reading(wire: &[u8], count: usize) -> Result<Vec<Seen>, String> {
    let limits = HeadLimits {
        max_bytes: REENCODED_BYTES,
        ..LIMITS
    };
    let mut buf = BytesMut::from(wire);
    let mut seen = Vec::new();
    for _ in 0..count {
        let parsed = match parse_request(&mut buf, limits) {
            Ok(Some(parsed)) => parsed,
            other => return Err(format!("request {}: {other:?}", seen.len())),
        };
        let (chunks, trailers) = match read_body(&mut buf, parsed.framing, REENCODED_BYTES) {
            Ok(Some(body)) => body,
            other => return Err(format!("body {}: {other:?}", seen.len())),
        };
        let request = &parsed.request;
        seen.push(Seen {
            method: request.method().as_str().to_owned(),
            target: request.uri().to_string(),
            version: request.version(),
            fields: fields(request.headers()),
            framing: parsed.framing,
            body: chunks.concat(),
            trailers: all_fields(&trailers),
        });
    }
    if !buf.is_empty() {
        return Err(format!("{} bytes left over", buf.len()));
    }
    Ok(seen)
}

/// hyper's server's reading of the re-encoded stream; the service answers 404 with no body
/// (not 2xx, so that a CONNECT is not turned into a tunnel).
fn hyper_reading(wire: &[u8]) -> Result<Vec<Seen>, String> {
    let io = Rc::new(RefCell::new(Wire {
        input: wire.to_vec(),
        ..Wire::default()
    }));
    let served = Rc::new(RefCell::new(Vec::new()));
    let service = hyper::service::service_fn({
        let served = served.clone();
        move |request: Request<Incoming>| {
            let served = served.clone();
            async move {
                let seen = hyper_request(request).await;
                served.borrow_mut().push(seen);
                Ok::<_, Infallible>(not_found())
            }
        }
    });
    let mut conn = pin!(server(REENCODED_BYTES).serve_connection(Io(io.clone()), service));
    let wakes = Arc::new(Wakes::default());
    let outcome = match run(conn.as_mut(), &wakes) {
        Some(outcome) => outcome,
        None => {
            io.borrow_mut().eof = true;
            run(conn.as_mut(), &wakes).ok_or("hyper waits for input after its end")?
        }
    };
    let served = served.take();
    let heads = served.len();
    let seen: Vec<Seen> = served.into_iter().collect::<Result<_, _>>()?;
    outcome.map_err(|error| {
        let io = io.borrow();
        format!(
            "after {heads} requests: {error}; hyper wrote {}",
            escaped(&io.output)
        )
    })?;
    Ok(seen)
}

async fn hyper_request(request: Request<Incoming>) -> Result<Seen, String> {
    let (parts, mut body) = request.into_parts();
    let framing = if body.is_end_stream() {
        BodyFraming::None
    } else if let Some(length) = body.size_hint().exact() {
        BodyFraming::Length(length)
    } else {
        BodyFraming::Chunked
    };
    let mut data = Vec::new();
    let mut trailers = HeaderMap::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|error| format!("hyper's body: {error}"))?;
        match frame.into_data() {
            Ok(bytes) => data.extend_from_slice(&bytes),
            Err(frame) => trailers = frame.into_trailers().unwrap_or_default(),
        }
    }
    Ok(Seen {
        method: parts.method.as_str().to_owned(),
        target: parts.uri.to_string(),
        version: parts.version,
        fields: fields(&parts.headers),
        framing,
        body: data,
        trailers: all_fields(&trailers),
    })
}
