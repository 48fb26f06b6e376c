//! The response half of `h1_roundtrip`: a response portero's client connection could send
//! for a request, chosen by the input, encoded with `encode_response_head` and parsed back
//! with `parse_response` as the upstream connection would read it from a backend.

use super::hyper_io::escaped;
use super::{Message, REENCODED_BYTES};
use bytes::BytesMut;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use portero::h1::{
    ParsedResponse, ResponseBodyFraming, ResponseFraming, ResponseLimits, encode_response_head,
    parse_response,
};

/// Bytes from the end of the input, backwards and round again: the responses' choices, in
/// the part of an input libFuzzer's mutations reach as easily as any.
pub struct Choices<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Choices<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    fn byte(&mut self) -> u8 {
        let back = 1 + self.at % self.data.len().max(1);
        self.at += 1;
        self.data
            .len()
            .checked_sub(back)
            .map_or(0, |index| self.data[index])
    }
}

/// A response to one request.
struct Chosen<'m> {
    method: &'m Method,
    status: StatusCode,
    framing: ResponseFraming,
    connection: Option<&'static str>,
    /// Some of the request's fields, never the framing ones (the connection's to write).
    headers: HeaderMap,
}

impl<'m> Chosen<'m> {
    fn new(message: &'m Message, choices: &mut Choices<'_>) -> Self {
        let code = 100 + u16::from_be_bytes([choices.byte(), choices.byte()]) % 900;
        let status = StatusCode::from_u16(code).expect("100 to 999 is a status");
        let framing = match choices.byte() % 3 {
            _ if bodiless(status, &message.method) => ResponseFraming::Empty,
            0 => ResponseFraming::Length {
                length: u64::from(choices.byte()),
                declared: false,
            },
            1 => ResponseFraming::Chunked,
            _ => ResponseFraming::UntilClose,
        };
        let connection = [None, Some("close"), Some("keep-alive")][usize::from(choices.byte() % 3)];
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers.iter().take(usize::from(choices.byte() % 8)) {
            if *name != header::CONTENT_LENGTH && *name != header::TRANSFER_ENCODING {
                headers.append(name.clone(), value.clone());
            }
        }
        Self {
            method: &message.method,
            status,
            framing,
            connection,
            headers,
        }
    }

    /// The fields read back: the chosen ones, then the framing field and `Connection` the
    /// encoder adds (its `Date`, when it adds one, is checked apart).
    fn fields(&self) -> HeaderMap {
        let mut fields = self.headers.clone();
        match self.framing {
            ResponseFraming::Length { length, .. } => {
                fields.append(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            ResponseFraming::Chunked => {
                fields.append(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
            }
            _ => {}
        }
        if let Some(connection) = self.connection {
            fields.append(header::CONNECTION, HeaderValue::from_static(connection));
        }
        fields
    }

    /// RFC 9112 §6.3, for what was encoded.
    fn body(&self) -> ResponseBodyFraming {
        let tunnel = self.status == StatusCode::SWITCHING_PROTOCOLS
            || (self.method == Method::CONNECT
                && self.status.is_success()
                && self.status != StatusCode::NO_CONTENT);
        match self.framing {
            _ if tunnel => ResponseBodyFraming::Tunnel,
            ResponseFraming::Empty | ResponseFraming::Length { length: 0, .. } => {
                ResponseBodyFraming::Empty
            }
            ResponseFraming::Length { length, .. } => ResponseBodyFraming::Length(length),
            ResponseFraming::Chunked => ResponseBodyFraming::Chunked,
            ResponseFraming::UntilClose => ResponseBodyFraming::UntilClose,
        }
    }

    /// HTTP/1.1's default, unless a `Connection` says close or the body ends the connection.
    fn keep_alive(&self) -> bool {
        let close = self
            .fields()
            .get_all(header::CONNECTION)
            .iter()
            .any(|value| has_token(value, "close"));
        !close
            && !matches!(
                self.body(),
                ResponseBodyFraming::UntilClose | ResponseBodyFraming::Tunnel
            )
    }

    /// Whether `parsed` is what was encoded.
    fn matches(&self, parsed: &ParsedResponse) -> bool {
        let response = &parsed.response;
        // The fields as `http` types, as an HTTP/2 client gets them.
        let mut headers = http::HeaderMap::new();
        parsed.fields.prepend_to(&mut headers);
        let dated = self.headers.contains_key(header::DATE);
        let read: Vec<_> = headers
            .iter()
            .filter(|(name, _)| dated || *name != header::DATE)
            .collect();
        let added_date = headers.get_all(header::DATE).iter().count() == 1;
        response.status() == self.status
            && response.version() == Version::HTTP_11
            && read == self.fields().iter().collect::<Vec<_>>()
            && (dated || added_date)
            && parsed.framing == self.body()
            && parsed.keep_alive == self.keep_alive()
    }
}

/// A response to `message`, chosen from `choices`, encoded and parsed back.
pub fn check(data: &[u8], message: &Message, choices: &mut Choices<'_>) {
    let chosen = Chosen::new(message, choices);
    let mut out = Vec::new();
    encode_response_head(
        &mut out,
        chosen.status,
        None,
        &chosen.headers,
        chosen.framing,
        chosen.connection,
    );
    let mut buf = BytesMut::from(&out[..]);
    let limits = ResponseLimits {
        max_bytes: REENCODED_BYTES,
        max_headers: 128,
    };
    let parsed = parse_response(&mut buf, limits, chosen.method);
    let ok = match &parsed {
        Ok(Some(parsed)) => buf.is_empty() && chosen.matches(parsed),
        _ => false,
    };
    assert!(
        ok,
        "a response does not round-trip\n  input: {}\n  response: {}\n  parsed: {parsed:?}\n  expected framing {:?}, keep-alive {}",
        escaped(data),
        escaped(&out),
        chosen.body(),
        chosen.keep_alive(),
    );
}

/// Responses that never have a body, which portero's connection encodes as `Empty`.
fn bodiless(status: StatusCode, method: &Method) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
        || (method == Method::CONNECT && status.is_success())
}

fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}
