//! A request head: bytes to an [`http::Request`], its body framing and its connection
//! semantics, in one pass over the fields.

use super::head::{Parsed, has_token, last_coding_is_chunked, parse_head};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version, header};
use std::mem::MaybeUninit;

/// The longest request target hyper's server took (`u16::MAX - 1`); a longer one is 414.
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// The bounds one head is read under.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// The head, request line to blank line, as sent (`limits.max_header_bytes`).
    pub max_bytes: usize,
    /// Header fields (`limits.max_headers`).
    pub max_headers: usize,
}

/// How the request's body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes (a non-zero `Content-Length`).
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`.
    Chunked,
}

/// A parsed request head.
#[derive(Debug)]
pub struct ParsedRequest {
    /// Method, target, version and every field as sent.
    pub request: Request<()>,
    /// Bytes of the head, leading blank lines included.
    pub len: usize,
    /// The body's framing.
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one (the version's
    /// default, changed by `Connection: close` or, for HTTP/1.0, `keep-alive`).
    pub keep_alive: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
    /// The request asks to switch protocols (`Upgrade`) or is a CONNECT.
    pub upgrade: bool,
}

/// Why a head was refused; the connection answers [`HeadError::status`] and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Longer than `limits.max_header_bytes`, or more fields than `limits.max_headers`.
    #[error("request head too large")]
    TooLarge,
    /// A request target longer than hyper ever took.
    #[error("request target too long")]
    UriTooLong,
    /// Not an HTTP/1.x request head: bad syntax, method, target, version or field.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// A `Content-Length` that is not one decimal number, or several that differ.
    #[error("invalid Content-Length")]
    ContentLength,
    /// A `Transfer-Encoding` whose last coding is not `chunked`, or one in HTTP/1.0.
    #[error("invalid Transfer-Encoding")]
    TransferEncoding,
}

impl HeadError {
    /// The status the connection answers with before closing, as hyper's server did.
    pub fn status(self) -> StatusCode {
        match self {
            HeadError::TooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HeadError::UriTooLong => StatusCode::URI_TOO_LONG,
            HeadError::Malformed(_) | HeadError::ContentLength | HeadError::TransferEncoding => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: not complete yet, `buf` is
/// left as it was. On success the head's bytes are taken from `buf` (what follows, a body or
/// the next request, stays) and the request's target and fields point into them, uncopied.
pub fn parse_request(
    buf: &mut BytesMut,
    limits: HeadLimits,
) -> Result<Option<ParsedRequest>, HeadError> {
    // Parsed once, from shared bytes the target and every field value are then slices of.
    parse_head(
        buf,
        limits.max_bytes,
        limits.max_headers,
        HeadError::TooLarge,
        |bytes, slots| parse_bytes(bytes, limits, slots),
    )
}

impl Parsed for ParsedRequest {
    fn len(&self) -> usize {
        self.len
    }
}

fn parse_bytes<'b>(
    bytes: &'b Bytes,
    limits: HeadLimits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<ParsedRequest>, HeadError> {
    let mut parsed = httparse::Request::new(&mut []);
    let parser = httparse::ParserConfig::default();
    let len = match parser.parse_request_with_uninit_headers(&mut parsed, bytes, slots) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_bytes => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Token) if parsed.method.is_none() => {
            return Err(HeadError::Malformed("method"));
        }
        Err(httparse::Error::Token) => return Err(HeadError::Malformed("target")),
        Err(httparse::Error::Version) => return Err(HeadError::Malformed("version")),
        Err(_) => return Err(HeadError::Malformed("field")),
    };
    build(bytes, len, &parsed).map(Some)
}

/// What the fields say about framing and the connection, read in one pass.
struct Semantics {
    framing: BodyFraming,
    content_length: Option<u64>,
    /// Any `Content-Length` field, before or after a `Transfer-Encoding`.
    content_length_field: bool,
    transfer_encoding: bool,
    keep_alive: bool,
    close: bool,
    expect_continue: bool,
    upgrade: bool,
}

fn build(
    head: &Bytes,
    len: usize,
    parsed: &httparse::Request<'_, '_>,
) -> Result<ParsedRequest, HeadError> {
    let (Some(method), Some(target), Some(minor)) = (parsed.method, parsed.path, parsed.version)
    else {
        return Err(HeadError::Malformed("request line"));
    };
    if target.len() > MAX_TARGET {
        return Err(HeadError::UriTooLong);
    }
    let method =
        Method::from_bytes(method.as_bytes()).map_err(|_| HeadError::Malformed("method"))?;
    let uri = Uri::from_maybe_shared(head.slice_ref(target.as_bytes()))
        .map_err(|_| HeadError::Malformed("target"))?;
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut seen = Semantics {
        framing: BodyFraming::None,
        content_length: None,
        content_length_field: false,
        transfer_encoding: false,
        keep_alive: version == Version::HTTP_11,
        close: false,
        expect_continue: false,
        upgrade: method == Method::CONNECT,
    };
    // Room for the two fields a try may set in the map (Host, TE), so it is not grown on the
    // way out; the forwarding fields go beside it (`proxy::headers::Forwarding`).
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 2);
    for field in parsed.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| HeadError::Malformed("field name"))?;
        let value = HeaderValue::from_maybe_shared(head.slice_ref(field.value))
            .map_err(|_| HeadError::Malformed("field value"))?;
        if seen.read(&name, &value, version)? {
            headers.append(name, value);
        }
    }
    if seen.transfer_encoding && seen.framing != BodyFraming::Chunked {
        return Err(HeadError::TransferEncoding);
    }
    // A request framed both ways closes after its answer, as in hyper (proxy::sanitize
    // refuses it in any case).
    if seen.transfer_encoding && seen.content_length_field {
        seen.close = true;
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(ParsedRequest {
        request,
        len,
        framing: seen.framing,
        keep_alive: seen.keep_alive && !seen.close,
        expect_continue: seen.expect_continue,
        upgrade: seen.upgrade,
    })
}

impl Semantics {
    /// One field's effect, by hyper's rules: a `Transfer-Encoding` frames the body whatever
    /// `Content-Length` says (the field stays for `proxy::sanitize` to refuse the pair).
    /// Whether the field is kept: a `Content-Length` repeating the first is not.
    fn read(
        &mut self,
        name: &HeaderName,
        value: &HeaderValue,
        version: Version,
    ) -> Result<bool, HeadError> {
        match *name {
            header::TRANSFER_ENCODING => {
                if version != Version::HTTP_11 {
                    return Err(HeadError::TransferEncoding);
                }
                self.transfer_encoding = true;
                self.framing = if last_coding_is_chunked(value) {
                    BodyFraming::Chunked
                } else {
                    BodyFraming::None
                };
            }
            header::CONTENT_LENGTH if self.transfer_encoding => self.content_length_field = true,
            header::CONTENT_LENGTH => {
                self.content_length_field = true;
                let length = content_length(value.as_bytes())?;
                match self.content_length {
                    Some(previous) if previous != length => return Err(HeadError::ContentLength),
                    Some(_) => return Ok(false),
                    None => {
                        self.content_length = Some(length);
                        self.framing = match length {
                            0 => BodyFraming::None,
                            n => BodyFraming::Length(n),
                        };
                    }
                }
            }
            header::CONNECTION => {
                if self.close || has_token(value, "close") {
                    self.close = true;
                } else if !self.keep_alive {
                    self.keep_alive = has_token(value, "keep-alive");
                }
            }
            header::EXPECT => {
                self.expect_continue = value.as_bytes().eq_ignore_ascii_case(b"100-continue");
            }
            // As in hyper, only HTTP/1.1 switches protocols (an HTTP/1.0 CONNECT carrying
            // the field included).
            header::UPGRADE => self.upgrade = version == Version::HTTP_11,
            _ => {}
        }
        Ok(true)
    }
}

/// `1*DIGIT` within u64; hyper reserves the two largest values and refused them as too
/// large, so portero does too.
fn content_length(bytes: &[u8]) -> Result<u64, HeadError> {
    if bytes.is_empty() {
        return Err(HeadError::ContentLength);
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return Err(HeadError::ContentLength);
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::ContentLength)?;
    }
    if n >= u64::MAX - 1 {
        return Err(HeadError::TooLarge);
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
