//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally from whatever bytes
//! have arrived: data comes out as slices of the read buffer, uncopied.

use bytes::{Buf, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

/// Chunk extensions a body may carry in all (hyper's bound): they are read and dropped.
const MAX_EXTENSIONS: usize = 16 * 1024;
/// The most trailer fields one body may end with.
const MAX_TRAILERS: usize = 64;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Bad chunk-size line, data not followed by CRLF, or a malformed trailer section.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    /// A chunk size past u64, extensions or trailers past their bounds.
    #[error("chunked body over a limit: {0}")]
    TooLarge(&'static str),
}

/// What the decoder found next.
#[derive(Debug)]
pub enum Decoded {
    /// Body bytes.
    Data(bytes::Bytes),
    /// The trailer section (possibly empty) after the last chunk: the body is complete.
    End(HeaderMap),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size (`has_digit`: at least one so far).
    Size,
    /// Whitespace after the size.
    SizeWhitespace,
    /// A chunk extension, up to its line's CR.
    Extension,
    /// The LF ending a chunk-size line.
    SizeLf,
    /// Chunk data, `remaining` bytes still to come.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// The trailer section after the last chunk, up to its blank line.
    Trailers,
    /// Done.
    Done,
}

/// A chunked body's decoder.
#[derive(Debug)]
pub struct Chunked {
    state: State,
    size: u64,
    has_digit: bool,
    remaining: u64,
    extensions: usize,
    /// The trailer section so far (usually just its final CRLF).
    trailers: Vec<u8>,
    max_trailer_bytes: usize,
}

impl Chunked {
    /// A decoder whose trailer section may be up to `max_trailer_bytes` long.
    pub fn new(max_trailer_bytes: usize) -> Self {
        Self {
            state: State::Size,
            size: 0,
            has_digit: false,
            remaining: 0,
            extensions: 0,
            trailers: Vec::new(),
            max_trailer_bytes,
        }
    }

    /// Whether the body has ended.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the front of `buf`, taking what it uses. `Ok(None)`: more bytes are
    /// needed (everything in `buf` was taken).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ChunkError> {
        loop {
            if self.state == State::Data {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                return Ok(Some(Decoded::Data(buf.split_to(n).freeze())));
            }
            if self.state == State::Trailers {
                return self.trailer_bytes(buf);
            }
            if self.state == State::Done {
                return Ok(Some(Decoded::End(HeaderMap::new())));
            }
            let Some(&byte) = buf.first() else {
                return Ok(None);
            };
            buf.advance(1);
            self.step(byte)?;
        }
    }

    /// One byte of framing.
    fn step(&mut self, byte: u8) -> Result<(), ChunkError> {
        self.state = match (self.state, byte) {
            (State::Size, b) if b.is_ascii_hexdigit() => {
                let digit = (b as char).to_digit(16).unwrap_or(0);
                self.has_digit = true;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(digit)))
                    .ok_or(ChunkError::TooLarge("chunk size"))?;
                State::Size
            }
            (State::Size, _) if !self.has_digit => {
                return Err(ChunkError::Malformed("chunk size"));
            }
            (State::Size | State::SizeWhitespace, b' ' | b'\t') => State::SizeWhitespace,
            (State::Size | State::SizeWhitespace, b';') => State::Extension,
            (State::Size | State::SizeWhitespace | State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b'\n') => return Err(ChunkError::Malformed("chunk extension")),
            (State::Extension, _) => {
                self.extensions += 1;
                if self.extensions >= MAX_EXTENSIONS {
                    return Err(ChunkError::TooLarge("chunk extensions"));
                }
                State::Extension
            }
            (State::SizeLf, b'\n') if self.size == 0 => State::Trailers,
            (State::SizeLf, b'\n') => {
                self.remaining = std::mem::take(&mut self.size);
                self.has_digit = false;
                State::Data
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            (State::DataCr | State::DataLf, _) => {
                return Err(ChunkError::Malformed("chunk data not followed by CRLF"));
            }
            _ => return Err(ChunkError::Malformed("chunk size line")),
        };
        Ok(())
    }

    /// The trailer section: gathered up to its blank line, then parsed as header fields.
    fn trailer_bytes(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, ChunkError> {
        let end = if self.trailers.is_empty() && buf.starts_with(b"\r\n") {
            // No trailers: the usual end.
            buf.advance(2);
            self.state = State::Done;
            return Ok(Some(Decoded::End(HeaderMap::new())));
        } else {
            let before = self.trailers.len();
            self.trailers.extend_from_slice(buf);
            find_blank_line(&self.trailers, before.saturating_sub(3))
        };
        let Some(end) = end else {
            buf.clear();
            if self.trailers.len() > self.max_trailer_bytes {
                return Err(ChunkError::TooLarge("trailer section"));
            }
            return Ok(None);
        };
        if end > self.max_trailer_bytes {
            return Err(ChunkError::TooLarge("trailer section"));
        }
        let taken = end - (self.trailers.len() - buf.len());
        buf.advance(taken);
        self.trailers.truncate(end);
        self.state = State::Done;
        parse_trailers(&self.trailers).map(|map| Some(Decoded::End(map)))
    }
}

/// The end of the first CRLF CRLF (or a lone CRLF at the start) at or after `from`.
fn find_blank_line(bytes: &[u8], from: usize) -> Option<usize> {
    if bytes.starts_with(b"\r\n") {
        return Some(2);
    }
    memchr::memmem::find(&bytes[from..], b"\r\n\r\n").map(|at| from + at + 4)
}

fn parse_trailers(section: &[u8]) -> Result<HeaderMap, ChunkError> {
    // Rare, and at most MAX_TRAILERS: initialised slots cost nothing that matters here.
    let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILERS];
    let parsed = match httparse::parse_headers(section, &mut slots) {
        Ok(httparse::Status::Complete((_, parsed))) => parsed,
        Ok(httparse::Status::Partial) => return Err(ChunkError::Malformed("trailer section")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ChunkError::TooLarge("trailer fields"));
        }
        Err(_) => return Err(ChunkError::Malformed("trailer field")),
    };
    let mut map = HeaderMap::with_capacity(parsed.len());
    for field in parsed.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| ChunkError::Malformed("trailer field name"))?;
        let value = HeaderValue::from_bytes(field.value)
            .map_err(|_| ChunkError::Malformed("trailer field value"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests;
