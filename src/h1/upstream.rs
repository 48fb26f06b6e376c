//! The backend side of the codec: a request head as bytes for a backend, and the backend's
//! response head parsed back with its body framing (RFC 9112 §6.3), decided from the method
//! the request was sent with. The mirror of `request` and `response`, for the upstream
//! connection; a chunked response body is decoded with the same [`Chunked`](super::Chunked).

use super::fields::{Known, RawFields};
use super::head::{Parsed, has_token, last_coding_is_chunked, parse_head};
use super::response::field;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Version, header};
use std::mem::MaybeUninit;

/// How the request's body is framed on the wire; the encoder writes the field that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body, and no framing field: what hyper 1.x's client sends for a body already at
    /// its end, whatever the method (see [`encode_request_head`]).
    Empty,
    /// `content-length: N`, then exactly N bytes. `Length(0)` writes `content-length: 0`,
    /// for a caller that keeps a client's explicit zero as hyper did.
    Length(u64),
    /// `transfer-encoding: chunked`, then the body in chunks.
    Chunked,
}

/// Appends an HTTP/1.1 request head to `dst`: the request line, every field of `headers` as
/// given except `Content-Length` and `Transfer-Encoding`, then the one framing field
/// `framing` needs, then the blank line.
///
/// The encoder owns the framing fields, so a head never says two things about its body: the
/// caller has validated the client's framing already (`proxy::sanitize` admits only a lone
/// `chunked` coding, and transfer codings are hop-by-hop), and `framing` is what it will send.
///
/// An empty body is sent as hyper 1.12's client sends one (`role::Client::set_length`, for a
/// body whose `is_end_stream` is true): no `Content-Length: 0` is added even for POST or PUT,
/// and any `Transfer-Encoding` is dropped. hyper did keep a `Content-Length` the caller had
/// left in the fields; here the caller asks for that with `Length(0)`.
///
/// `target` must be a request-target (no whitespace or control bytes), as the path-and-query
/// or authority of an [`http::Uri`] always is.
pub fn encode_request_head(
    dst: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: RequestFraming,
) {
    encode_request_head_with(dst, method, target, headers, &[], framing);
}

/// [`encode_request_head`], with `added` written after `headers`: the fields the proxy adds
/// to every request, kept out of the map (see `proxy::headers::Forwarding`).
pub fn encode_request_head_with(
    dst: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    added: &[(HeaderName, HeaderValue)],
    framing: RequestFraming,
) {
    debug_assert!(
        !target.is_empty() && !target.bytes().any(|b| b <= b' ' || b == 0x7f),
        "not a request-target: {target:?}"
    );
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers.iter().chain(added.iter().map(|(n, v)| (n, v))) {
        if *name != header::CONTENT_LENGTH && *name != header::TRANSFER_ENCODING {
            field(dst, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match framing {
        RequestFraming::Empty => {}
        RequestFraming::Length(length) => {
            let mut digits = itoa::Buffer::new();
            field(dst, b"content-length", digits.format(length).as_bytes());
        }
        RequestFraming::Chunked => field(dst, b"transfer-encoding", b"chunked"),
    }
    dst.extend_from_slice(b"\r\n");
}

/// The longest field name `http::HeaderName` takes.
const MAX_NAME_BYTES: usize = (1 << 16) - 1;

/// The bounds one response head is read under.
#[derive(Debug, Clone, Copy)]
pub struct ResponseLimits {
    /// The head, status line to blank line, as sent (`limits.max_response_header_bytes`).
    pub max_bytes: usize,
    /// Header fields (hyper's client allowed 100).
    pub max_headers: usize,
}

/// How the response's body is framed (RFC 9112 §6.3), given the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBodyFraming {
    /// No body bytes follow: a response to HEAD; a 1xx, 204 or 304; a `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes (a non-zero `Content-Length`).
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`: decode with [`Chunked`](super::Chunked).
    Chunked,
    /// Until the backend closes: a `Transfer-Encoding` not ending in `chunked`, or neither
    /// framing field. The connection cannot be reused.
    UntilClose,
    /// No body; after the head the connection carries another protocol both ways: a 101, or
    /// a 2xx to CONNECT. The caller checks that it asked for this (an `Upgrade` it sent, a
    /// CONNECT); the connection is never reused for HTTP.
    Tunnel,
}

/// A parsed response head.
#[derive(Debug)]
pub struct ParsedResponse {
    /// Status and version, with no fields: they are in `fields`. The reason phrase is not
    /// kept: portero's encoder writes the canonical one.
    pub response: Response<()>,
    /// Every field as sent (a repeated `Content-Length` too), as the head's bytes.
    pub fields: RawFields,
    /// Bytes of the head, leading blank lines included.
    pub len: usize,
    /// The body's framing.
    pub framing: ResponseBodyFraming,
    /// Whether the connection may carry another request after this response's body (the
    /// version's default, changed by `Connection`; never after a body that ends with the
    /// connection, nor after a tunnel).
    pub keep_alive: bool,
}

impl ParsedResponse {
    /// An interim response (1xx other than 101): the caller skips it and reads the next head
    /// for the same request.
    pub fn is_interim(&self) -> bool {
        let status = self.response.status();
        status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS
    }
}

/// Why a backend's response head was refused; the upstream connection answers 502 and closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseHeadError {
    /// Longer than `max_bytes`, complete or not (a partial head already that long cannot end
    /// within it).
    #[error("response head too large")]
    TooLarge,
    /// More fields than `max_headers`.
    #[error("too many fields in response head")]
    TooManyFields,
    /// Not `HTTP/1.0` or `HTTP/1.1`, or not HTTP at all.
    #[error("response version is not HTTP/1.0 or HTTP/1.1")]
    Version,
    /// The status is not three digits from 100 to 999, or the status line has a forbidden
    /// byte or ending.
    #[error("malformed response status line")]
    StatusLine,
    /// A field name or value with a forbidden byte, a bad line ending or an obs-fold (RFC 9112
    /// §5.2 lets a proxy refuse one, as hyper's client did by default).
    #[error("malformed response field")]
    Field,
    /// A `Content-Length` that is not a decimal number (or a list of equal ones), several that
    /// differ, or one too large to count.
    #[error("invalid Content-Length in response")]
    ContentLength,
    /// Both `Transfer-Encoding` and `Content-Length`: they describe different bodies to
    /// whoever reads the response next (RFC 9112 §6.3 item 3), so it is refused whatever the
    /// status, as portero refused it behind hyper.
    #[error("response has both Content-Length and Transfer-Encoding")]
    TransferEncodingWithContentLength,
    /// A `Transfer-Encoding` framing an HTTP/1.0 response, which has no transfer codings
    /// (RFC 9112 §6.1: the framing is faulty).
    #[error("Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingInHttp10,
}

/// Parses the response head at the start of `buf`, the answer to a request sent with
/// `method`. `Ok(None)`: not complete yet, `buf` is left as it was. On success the head's
/// bytes are taken from `buf` (the body's first bytes stay) and every field value points into
/// them, uncopied. On error `buf` is emptied: the connection is done.
///
/// An interim response (100, 103) is returned like any other; see
/// [`ParsedResponse::is_interim`].
pub fn parse_response(
    buf: &mut BytesMut,
    limits: ResponseLimits,
    method: &Method,
) -> Result<Option<ParsedResponse>, ResponseHeadError> {
    parse_head(
        buf,
        limits.max_bytes,
        limits.max_headers,
        ResponseHeadError::TooLarge,
        |bytes, slots| parse_bytes(bytes, limits, slots, method),
    )
}

impl Parsed for ParsedResponse {
    fn len(&self) -> usize {
        self.len
    }
}

fn parse_bytes<'b>(
    bytes: &'b Bytes,
    limits: ResponseLimits,
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    method: &Method,
) -> Result<Option<ParsedResponse>, ResponseHeadError> {
    let mut parsed = httparse::Response::new(&mut []);
    // The default config, as hyper's client had it: no obs-fold, no spaces after a name.
    let parser = httparse::ParserConfig::default();
    let len = match parser.parse_response_with_uninit_headers(&mut parsed, bytes, slots) {
        Ok(httparse::Status::Complete(len)) if len > limits.max_bytes => {
            return Err(ResponseHeadError::TooLarge);
        }
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseHeadError::TooManyFields),
        Err(httparse::Error::Version) => return Err(ResponseHeadError::Version),
        Err(httparse::Error::Status) => return Err(ResponseHeadError::StatusLine),
        Err(_) => return Err(ResponseHeadError::Field),
    };
    build(bytes, len, &parsed, method).map(Some)
}

fn build(
    head: &Bytes,
    len: usize,
    parsed: &httparse::Response<'_, '_>,
    method: &Method,
) -> Result<ParsedResponse, ResponseHeadError> {
    // httparse fills both in a complete head; a missing one is refused all the same.
    let (Some(minor), Some(code)) = (parsed.version, parsed.code) else {
        return Err(ResponseHeadError::StatusLine);
    };
    let status = StatusCode::from_u16(code).map_err(|_| ResponseHeadError::StatusLine)?;
    let version = if minor == 1 {
        Version::HTTP_11
    } else {
        Version::HTTP_10
    };
    let mut seen = Fields::new(version);
    let mut fields = RawFields::with_capacity(head.clone(), parsed.headers.len());
    for field in parsed.headers.iter() {
        let name = field.name.as_bytes();
        // httparse checks each byte as `HeaderName` does, not the length `http` allows.
        if name.len() > MAX_NAME_BYTES {
            return Err(ResponseHeadError::Field);
        }
        let known = fields.push(name, field.value);
        seen.read(known, field.value);
    }
    let framing = seen.framing(status, method)?;
    let reusable = !matches!(
        framing,
        ResponseBodyFraming::UntilClose | ResponseBodyFraming::Tunnel
    );
    let mut response = Response::new(());
    *response.status_mut() = status;
    *response.version_mut() = version;
    Ok(ParsedResponse {
        response,
        fields,
        len,
        framing,
        keep_alive: seen.keep_alive && reusable,
    })
}

/// What the fields say about framing and the connection, read in one pass.
struct Fields {
    version: Version,
    /// Any `Transfer-Encoding`, and whether the last one's last coding is `chunked`.
    transfer_encoding: Option<bool>,
    /// The agreed `Content-Length`, once one was read; an error once they disagree.
    content_length: Option<Result<u64, ResponseHeadError>>,
    keep_alive: bool,
    close: bool,
}

impl Fields {
    fn new(version: Version) -> Self {
        Self {
            version,
            transfer_encoding: None,
            content_length: None,
            keep_alive: version == Version::HTTP_11,
            close: false,
        }
    }

    /// One field's effect. `Content-Length` errors wait for [`Fields::framing`]: a 204 or a
    /// response to HEAD ignores the field, as hyper's client did.
    fn read(&mut self, name: Known, value: &[u8]) {
        match name {
            Known::TransferEncoding => {
                self.transfer_encoding = Some(last_coding_is_chunked(value));
            }
            Known::ContentLength => {
                let length = content_length(value);
                self.content_length = Some(match (self.content_length, length) {
                    (None, length) => length,
                    (Some(Ok(previous)), Ok(length)) if previous == length => Ok(length),
                    _ => Err(ResponseHeadError::ContentLength),
                });
            }
            // As hyper's client: a `close` anywhere wins over a later `keep-alive`.
            Known::Connection if self.close || has_token(value, "close") => {
                self.close = true;
                self.keep_alive = false;
            }
            Known::Connection if !self.keep_alive => {
                self.keep_alive = has_token(value, "keep-alive");
            }
            _ => {}
        }
    }

    /// RFC 9112 §6.3, in its order, for a response to `method`.
    fn framing(
        &self,
        status: StatusCode,
        method: &Method,
    ) -> Result<ResponseBodyFraming, ResponseHeadError> {
        if self.transfer_encoding.is_some() && self.content_length.is_some() {
            return Err(ResponseHeadError::TransferEncodingWithContentLength);
        }
        // The status before the method, as hyper's client: a 101 switches whatever was asked.
        match status.as_u16() {
            101 => return Ok(ResponseBodyFraming::Tunnel),
            100..=199 | 204 | 304 => return Ok(ResponseBodyFraming::Empty),
            _ => {}
        }
        if *method == Method::HEAD {
            return Ok(ResponseBodyFraming::Empty);
        }
        if *method == Method::CONNECT && status.is_success() {
            return Ok(ResponseBodyFraming::Tunnel);
        }
        if let Some(chunked) = self.transfer_encoding {
            return match (self.version, chunked) {
                (Version::HTTP_10, _) => Err(ResponseHeadError::TransferEncodingInHttp10),
                (_, true) => Ok(ResponseBodyFraming::Chunked),
                (_, false) => Ok(ResponseBodyFraming::UntilClose),
            };
        }
        match self.content_length {
            Some(Ok(0)) => Ok(ResponseBodyFraming::Empty),
            Some(Ok(length)) => Ok(ResponseBodyFraming::Length(length)),
            Some(Err(error)) => Err(error),
            None => Ok(ResponseBodyFraming::UntilClose),
        }
    }
}

/// A `Content-Length` as hyper's client read one: `1*DIGIT`, or a comma-separated list of
/// equal ones (RFC 9110 §8.6 lets a recipient take that as the one value). The two largest
/// u64 values are hyper's reserved ones and are refused, as `parse_request` does.
fn content_length(value: &[u8]) -> Result<u64, ResponseHeadError> {
    let mut agreed = None;
    for item in value.split(|&b| b == b',') {
        let n = digits(item.trim_ascii()).ok_or(ResponseHeadError::ContentLength)?;
        if agreed.is_some_and(|agreed| agreed != n) {
            return Err(ResponseHeadError::ContentLength);
        }
        agreed = Some(n);
    }
    match agreed {
        Some(n) if n < u64::MAX - 1 => Ok(n),
        _ => Err(ResponseHeadError::ContentLength),
    }
}

fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        let digit = b.is_ascii_digit().then(|| u64::from(b - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests;
