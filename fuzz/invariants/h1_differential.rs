//! Differential invariant over one raw HTTP/1 request stream, for the `h1_differential` fuzz
//! target and for `tests/fuzz_corpus.rs` (the same check on the committed corpus, on stable):
//! portero's request-head parser (`portero::h1::parse_request`) must give hyper 1.x's HTTP/1
//! server's verdict on the same bytes.
//!
//! hyper runs for real: `hyper::server::conn::http1::Builder` (`max_header_size` 32 KiB,
//! default parser config and 100 header slots, no timer, no date) serves an in-memory
//! connection whose reads hand out the input and then wait, polled by hand on this thread
//! (no runtime, no network, no sleeps; every poll is counted, so a run is deterministic and
//! bounded). Its service records the first request and answers 404 with no body. Verdicts:
//!
//! - **accepted**: hyper called the service. Compared with portero's `ParsedRequest`: method,
//!   target (`Uri` as a string), version, fields (lowercased name and value bytes; the values
//!   of each name in order, names sorted, since hyper's `HeaderMap::remove` reorders names),
//!   body framing (hyper's from its `Incoming`: `is_end_stream`, exact `size_hint`, else
//!   chunked), upgrade (hyper put an `OnUpgrade` in the request) and keep-alive where hyper
//!   shows it (HTTP/1.1: `connection: close` on its answer; HTTP/1.0 without a body: whether
//!   it closed after answering). portero keeps a `Content-Length` beside a
//!   `Transfer-Encoding`, where hyper drops it: the one deliberate difference, so portero's
//!   `content-length` fields are left out of the comparison when a `transfer-encoding` is
//!   present. Nothing else is forgiven.
//! - **refused**: hyper answered without calling the service; its status must be portero's
//!   `HeadError::status`. hyper closing without any answer counts as refused with no status.
//! - **incomplete**: hyper, given the whole input, waited for more, and at end of input closed
//!   without calling the service or answering; portero returned `Ok(None)`.
//!
//! hyper reads a partial head in pieces (8 KiB at first) and parses it again only once a line
//! ending that may end the head arrived (`role::is_complete_fast`), refusing it as too large
//! once its buffer holds `max_header_size` bytes. So portero is asked at the same points: at
//! each read hyper made before its verdict, where hyper would parse, and otherwise only for
//! portero's own length bound. An input hyper takes in one read (all under 8 KiB) is simply
//! parsed whole.
//!
//! One more of hyper's ways is not portero's business: hyper refuses without an answer when,
//! after refusing a head, it finds the HTTP/2 connection preface at the start of what is left
//! of its buffer (the input's start, or what follows a head it took off the buffer before
//! refusing it). portero must refuse those heads too, with any status; for a connection that
//! opens with the preface, the connection (`server::conn_io`) hands it to HTTP/2 before a head
//! is ever parsed.
//!
//! A disagreement panics with the input and both verdicts.

// Each invariant that runs hyper loads it: a fuzz target compiles one invariant, while
// `tests/fuzz_corpus.rs` compiles them all side by side.
#[allow(clippy::duplicate_mod)]
#[path = "hyper_io.rs"]
mod hyper_io;

use bytes::BytesMut;
use http::{HeaderMap, Request, StatusCode, Version};
use hyper::body::{Body, Incoming};
use hyper_io::{Io, Wakes, Wire, escaped, not_found, run, server};
use portero::h1::{BodyFraming, HeadError, HeadLimits, ParsedRequest, parse_request};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;

/// `limits.max_header_bytes` as the fuzz target runs it, for both sides.
const MAX_HEADER_BYTES: usize = 32 * 1024;
const LIMITS: HeadLimits = HeadLimits {
    max_bytes: MAX_HEADER_BYTES,
    // hyper's default.
    max_headers: 100,
};
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Checks that portero and hyper agree on `data`.
pub fn check(data: &[u8]) {
    let hyper = hyper_verdict(data);
    let portero = portero_verdict(data, &hyper.reads);
    let seen = &data[..hyper.reads.last().copied().unwrap_or(0)];
    if hyper.verdict == Verdict::Refused(None)
        && matches!(portero, Verdict::Refused(Some(_)))
        && preface_left(seen)
    {
        // hyper refused the head and then found the HTTP/2 preface where it would read the
        // next one: it closes without an answer (`Conn::on_parse_error`), portero answers.
        return;
    }
    assert!(
        portero == hyper.verdict,
        "portero and hyper disagree on {}\n  portero: {portero:?}\n  hyper:   {:?}\n  hyper's reads ended at {:?}",
        escaped(data),
        hyper.verdict,
        hyper.reads,
    );
}

/// Whether what hyper had read holds the HTTP/2 connection preface where hyper looks for it
/// after refusing a head: at the start, or after the head when hyper refused it only once it
/// had taken it off its buffer (a bad target, `Content-Length` or `Transfer-Encoding`); blank
/// lines before it are skipped (`Buffered::consume_leading_lines`).
fn preface_left(seen: &[u8]) -> bool {
    let after_head = {
        let mut headers = [httparse::EMPTY_HEADER; LIMITS.max_headers];
        match httparse::Request::new(&mut headers).parse(seen) {
            Ok(httparse::Status::Complete(len)) => Some(len),
            _ => None,
        }
    };
    let preface_at = |at: usize| {
        let rest = &seen[at..];
        let blank = rest
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        rest[blank..].starts_with(H2_PREFACE)
    };
    preface_at(0) || after_head.is_some_and(preface_at)
}

/// What became of the first request.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Accepted(Head),
    /// With the status answered; `None`: the connection closed without an answer.
    Refused(Option<StatusCode>),
    /// More bytes needed.
    Incomplete,
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    method: String,
    target: String,
    version: Version,
    /// Lowercased name to its values, in order.
    fields: BTreeMap<String, Vec<Vec<u8>>>,
    framing: BodyFraming,
    upgrade: bool,
    /// Where hyper shows it: HTTP/1.1, or HTTP/1.0 without a body.
    keep_alive: Option<bool>,
}

fn fields(headers: &HeaderMap) -> BTreeMap<String, Vec<Vec<u8>>> {
    headers
        .keys()
        .map(|name| {
            let values = headers.get_all(name).iter().map(|v| v.as_bytes().to_vec());
            (name.as_str().to_owned(), values.collect())
        })
        .collect()
}

/// Whether hyper lets the keep-alive decision show (see [`hyper_verdict`]).
fn keep_alive_shows(version: Version, framing: BodyFraming) -> bool {
    version == Version::HTTP_11 || framing == BodyFraming::None
}

// ---------------------------------------------------------------------------------------
// portero

/// portero's verdict, asked where hyper looked (`reads`: where each of hyper's reads before
/// its verdict ended).
fn portero_verdict(data: &[u8], reads: &[usize]) -> Verdict {
    let mut previous: Option<usize> = None;
    for &end in reads {
        let seen = &data[..end];
        if previous.is_none_or(|previous| is_complete_fast(seen, previous)) {
            let mut buf = BytesMut::from(seen);
            match parse_request(&mut buf, LIMITS) {
                Ok(Some(parsed)) => return Verdict::Accepted(portero_head(&parsed)),
                Err(error) => return Verdict::Refused(Some(error.status())),
                Ok(None) => {}
            }
        } else if end > LIMITS.max_bytes {
            // What `parse_request` says of a partial head this long.
            return Verdict::Refused(Some(HeadError::TooLarge.status()));
        }
        previous = Some(end);
    }
    Verdict::Incomplete
}

fn portero_head(parsed: &ParsedRequest) -> Head {
    let request = &parsed.request;
    let mut fields = fields(request.headers());
    if fields.contains_key("transfer-encoding") {
        // The deliberate difference: hyper drops these, portero keeps them.
        fields.remove("content-length");
    }
    Head {
        method: request.method().as_str().to_owned(),
        target: request.uri().to_string(),
        version: request.version(),
        fields,
        framing: parsed.framing,
        upgrade: parsed.upgrade,
        keep_alive: keep_alive_shows(request.version(), parsed.framing)
            .then_some(parsed.keep_alive),
    }
}

/// hyper's `proto::h1::role::is_complete_fast` (1.12): whether a partial head that was
/// `prev_len` bytes long may have ended in what arrived since.
fn is_complete_fast(bytes: &[u8], prev_len: usize) -> bool {
    let start = prev_len.saturating_sub(3);
    let bytes = &bytes[start..];
    for (i, b) in bytes.iter().copied().enumerate() {
        if b == b'\r' {
            if bytes[i + 1..].chunks(3).next() == Some(&b"\n\r\n"[..]) {
                return true;
            }
        } else if b == b'\n'
            && (bytes.get(i + 1) == Some(&b'\n')
                || bytes[i + 1..].chunks(2).next() == Some(&b"\r\n"[..]))
        {
            return true;
        }
    }
    false
}

// ---------------------------------------------------------------------------------------
// hyper

struct HyperRun {
    verdict: Verdict,
    /// Where hyper's reads ended, up to its verdict.
    reads: Vec<usize>,
}

/// What the service saw.
#[derive(Default)]
struct Served {
    /// The first request's head, keep-alive still unknown, and how many reads hyper had made.
    first: Option<(Head, usize)>,
    calls: usize,
    /// Requests kept whole, so that no dropped body changes what hyper does next.
    kept: Vec<Request<Incoming>>,
}

fn hyper_head(request: &Request<Incoming>) -> Head {
    let body = request.body();
    let framing = if body.is_end_stream() {
        BodyFraming::None
    } else if let Some(length) = body.size_hint().exact() {
        BodyFraming::Length(length)
    } else {
        BodyFraming::Chunked
    };
    Head {
        method: request.method().as_str().to_owned(),
        target: request.uri().to_string(),
        version: request.version(),
        fields: fields(request.headers()),
        framing,
        upgrade: request
            .extensions()
            .get::<hyper::upgrade::OnUpgrade>()
            .is_some(),
        keep_alive: None,
    }
}

/// hyper's verdict: first with the whole input and the peer still there (so that an end of
/// input changes nothing it decides), then, when it still waits for more, at end of input.
fn hyper_verdict(data: &[u8]) -> HyperRun {
    let wire = Rc::new(RefCell::new(Wire {
        input: data.to_vec(),
        ..Wire::default()
    }));
    let served = Rc::new(RefCell::new(Served::default()));
    let service = hyper::service::service_fn({
        let wire = wire.clone();
        let served = served.clone();
        move |request: Request<Incoming>| {
            let mut served = served.borrow_mut();
            served.calls += 1;
            if served.first.is_none() {
                served.first = Some((hyper_head(&request), wire.borrow().reads.len()));
            }
            served.kept.push(request);
            std::future::ready(Ok::<_, Infallible>(not_found()))
        }
    });
    let mut conn = pin!(server(MAX_HEADER_BYTES).serve_connection(Io(wire.clone()), service));
    let wakes = Arc::new(Wakes::default());

    let waiting = run(conn.as_mut(), &wakes);
    let first = served.borrow_mut().first.take();
    if let Some((mut head, reads)) = first {
        let wire = wire.borrow();
        let answers = response_heads(&wire.output);
        let Some(answer) = answers.first() else {
            panic!("hyper took a request and did not answer it: {head:?}");
        };
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "hyper's answer to the first request"
        );
        if head.version == Version::HTTP_11 {
            head.keep_alive = Some(!answer.close);
        } else if head.framing == BodyFraming::None {
            // hyper tells an HTTP/1.0 client nothing: it either reads on or closes.
            // Closed cleanly, having answered once and read no further request.
            let closed =
                matches!(waiting, Some(Ok(()))) && answers.len() == 1 && served.borrow().calls == 1;
            head.keep_alive = Some(!closed);
        }
        return HyperRun {
            verdict: Verdict::Accepted(head),
            reads: wire.reads[..reads].to_vec(),
        };
    }
    let outcome = match waiting {
        Some(outcome) => outcome,
        None => {
            wire.borrow_mut().eof = true;
            run(conn.as_mut(), &wakes)
                .unwrap_or_else(|| panic!("hyper waits for input after its end"))
        }
    };
    assert!(
        served.borrow().first.is_none(),
        "hyper took a request only once the input ended"
    );
    let wire = wire.borrow();
    let verdict = match (response_heads(&wire.output).first(), outcome) {
        (Some(answer), _) => Verdict::Refused(Some(answer.status)),
        (None, Ok(())) => Verdict::Incomplete,
        (None, Err(error)) if error.is_incomplete_message() => Verdict::Incomplete,
        (None, Err(_)) => Verdict::Refused(None),
    };
    HyperRun {
        verdict,
        reads: wire.reads.clone(),
    }
}

struct Answer {
    status: StatusCode,
    close: bool,
}

/// The heads of hyper's answers (none has a body).
fn response_heads(mut output: &[u8]) -> Vec<Answer> {
    let mut answers = Vec::new();
    while !output.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        let Ok(httparse::Status::Complete(len)) = response.parse(output) else {
            panic!(
                "hyper wrote what is not a response head: {}",
                escaped(output)
            );
        };
        let status = response
            .code
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or_else(|| panic!("hyper answered without a status"));
        let close = response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        });
        answers.push(Answer { status, close });
        output = &output[len..];
    }
    answers
}
