//! What parsing a request head and a response head share: the buffer handling around
//! httparse, and where the header slots live.

use super::fields::visible_ascii;
use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;

/// Header slots kept on the stack; a limit allowing more parses into a heap array.
const STACK_HEADERS: usize = 128;

/// A parsed head and the number of bytes it took.
pub(super) trait Parsed {
    fn len(&self) -> usize;
}

/// Parses the head at the start of `buf` with `parse`, given up to `max_headers` header
/// slots. `Ok(None)`: not complete yet, `buf` is left as it was; a partial head already
/// `max_bytes` long is `too_large` (as hyper: it cannot end within the limit). On success the
/// head's bytes are taken from `buf` (what follows, a body or the next message, stays) and
/// the head's fields point into them, uncopied. On error `buf` is emptied.
pub(super) fn parse_head<T: Parsed, E>(
    buf: &mut BytesMut,
    max_bytes: usize,
    max_headers: usize,
    too_large: E,
    parse: impl for<'b> Fn(&'b Bytes, &mut [MaybeUninit<httparse::Header<'b>>]) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    // Usually the head's end is found first, and only the head is taken: what follows stays
    // in `buf`, in the same allocation, which the next read reuses once the message is gone.
    if let Some(end) = head_end(buf).filter(|&end| end <= max_bytes) {
        let head = buf.split_to(end).freeze();
        if buf.is_empty() {
            // Nothing follows: the buffer is let go with the head, as below, so a connection
            // between messages holds none.
            *buf = BytesMut::new();
        }
        match with_slots(max_headers, |slots| parse(&head, slots)) {
            Ok(Some(parsed)) if parsed.len() == end => return Ok(Some(parsed)),
            Err(error) => {
                // As below: a refused head leaves nothing behind to read on.
                buf.clear();
                return Err(error);
            }
            // Not where the parser ends it (blank lines before a request line): put back.
            _ => {
                let mut whole = BytesMut::with_capacity(head.len() + buf.len());
                whole.extend_from_slice(&head);
                whole.extend_from_slice(buf);
                *buf = whole;
            }
        }
    }
    // Taken whole (capacity too), the bytes stay unique, so an incomplete head goes back
    // into `buf` without a copy.
    let bytes = std::mem::take(buf).freeze();
    match with_slots(max_headers, |slots| parse(&bytes, slots))? {
        None if bytes.len() >= max_bytes => Err(too_large),
        None => {
            *buf = BytesMut::from(bytes);
            Ok(None)
        }
        Some(parsed) => {
            // What follows the head is copied out only when there is some: the head's
            // bytes live on in the message.
            if bytes.len() > parsed.len() {
                *buf = BytesMut::from(&bytes[parsed.len()..]);
            }
            Ok(Some(parsed))
        }
    }
}

/// Whether a `Transfer-Encoding` field's last coding is `chunked` (RFC 9112 §6.3), the only
/// way a body framed by codings has an end before the connection's.
pub(super) fn last_coding_is_chunked(value: impl AsRef<[u8]>) -> bool {
    visible_ascii(value.as_ref())
        .and_then(|v| v.rsplit(|&b| b == b',').next())
        .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// Whether a comma-separated field (`Connection`, `Expect`...) lists `token`, in any case.
pub fn has_token(value: impl AsRef<[u8]>, token: &str) -> bool {
    let value = value.as_ref();
    if !value.contains(&b',') {
        // One element, as almost every `Connection` is: no list to walk, and an element equal
        // to the token (once its spaces and tabs are trimmed) is all visible ASCII.
        return trim_spaces(value).eq_ignore_ascii_case(token.as_bytes());
    }
    listed(value, token)
}

/// [`has_token`] by the list: the value must be visible ASCII, as `HeaderValue::to_str` reads it.
fn listed(value: &[u8], token: &str) -> bool {
    visible_ascii(value).is_some_and(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `value` without the spaces and tabs at its ends (optional whitespace, RFC 9110 §5.6.3).
fn trim_spaces(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !ows(b))
        .map_or(start, |end| end + 1);
    &value[start..end]
}

/// Runs `parse` with `max_headers` header slots: on the stack up to [`STACK_HEADERS`].
fn with_slots<'b, R>(
    max_headers: usize,
    parse: impl FnOnce(&mut [MaybeUninit<httparse::Header<'b>>]) -> R,
) -> R {
    if max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        parse(&mut slots[..max_headers])
    } else {
        let mut slots = Vec::with_capacity(max_headers);
        slots.resize_with(max_headers, MaybeUninit::uninit);
        parse(&mut slots)
    }
}

/// Where the first empty line ends (`\n\n` or `\n\r\n`, as httparse reads line ends), if
/// one has arrived.
fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', buf).find_map(|at| match buf.get(at + 1..at + 3) {
        Some([b'\n', _]) => Some(at + 2),
        Some([b'\r', b'\n']) => Some(at + 3),
        None if buf.get(at + 1) == Some(&b'\n') => Some(at + 2),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::{has_token, head_end, listed};

    #[test]
    fn one_element_is_read_as_the_list_would_read_it() {
        let tokens = ["close", "keep-alive", "upgrade"];
        let values: &[&[u8]] = &[
            b"close",
            b"Close",
            b" close\t",
            b"close,",
            b"keep-alive",
            b"KEEP-ALIVE ",
            b"",
            b" ",
            b"clos",
            b"closed",
            b"close\x0c",
            b"\x0cclose",
            b"close\x01",
            b"c\xfflose",
            b"upgrade, close",
            b"x, Keep-Alive",
            b"\tupgrade",
            b"close close",
        ];
        for token in tokens {
            for value in values {
                assert_eq!(
                    has_token(value, token),
                    listed(value, token),
                    "{token} in {:?}",
                    String::from_utf8_lossy(value)
                );
            }
        }
        assert!(has_token(b" Close ", "close"));
        assert!(!has_token(b"keep-alive", "close"));
    }

    #[test]
    fn the_head_ends_at_the_first_empty_line_whatever_its_line_ends() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nhost: a\n\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\n\r\n"), Some(26));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\n\n"), Some(25));
        // Blank lines before the request line end no head: the parser finds it partial.
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"), Some(4));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nhost: a\r\n\r"), None);
    }
}
