//! What parsing a request head and a response head share: the buffer handling around
//! httparse, and where the header slots live.

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
/// the head's fields point into them, uncopied.
pub(super) fn parse_head<T: Parsed, E>(
    buf: &mut BytesMut,
    max_bytes: usize,
    max_headers: usize,
    too_large: E,
    parse: impl for<'b> FnOnce(
        &'b Bytes,
        &mut [MaybeUninit<httparse::Header<'b>>],
    ) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    // Taken whole (capacity too), the bytes stay unique, so an incomplete head goes back
    // into `buf` without a copy.
    let bytes = std::mem::take(buf).freeze();
    let parsed = if max_headers <= STACK_HEADERS {
        let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        parse(&bytes, &mut slots[..max_headers])
    } else {
        let mut slots = Vec::with_capacity(max_headers);
        slots.resize_with(max_headers, MaybeUninit::uninit);
        parse(&bytes, &mut slots)
    };
    match parsed? {
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
