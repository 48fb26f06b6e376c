//! A byte-at-a-time watch over one HTTP/1 request head for the one thing hyper's parser
//! hides from the request it hands over: a `Content-Length` line beside a `Transfer-Encoding`
//! (hyper drops the Content-Length and frames by chunked). portero refuses such a request
//! outright (ATTACKS.md row 1, strict choice), so the connection notes whether the head had
//! a Content-Length line at all, and the proxy checks that against the Transfer-Encoding.
//!
//! The scan covers a head that begins at a known boundary: the first bytes of a connection or
//! of a request after a keep-alive pause. Heads pipelined behind a busy request are not
//! scanned; for those hyper's own rule holds (frame by chunked, drop the Content-Length,
//! close after the response), which is safe, only less strict.

const CONTENT_LENGTH: &[u8] = b"content-length:";

/// The scan of one head.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadScan {
    /// Position in the current line.
    column: u16,
    /// The current line may still be `Content-Length:`.
    candidate: bool,
    /// The current line holds nothing but (possibly) CR.
    blank: bool,
    /// Non-blank lines so far (the first is the request line).
    lines: u16,
    content_length: bool,
    state: State,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Not scanning.
    #[default]
    Off,
    /// Inside a head.
    Scanning,
}

impl HeadScan {
    /// Starts scanning a new head.
    pub fn start(&mut self) {
        *self = HeadScan {
            state: State::Scanning,
            ..HeadScan::default()
        };
        self.new_line();
    }

    fn new_line(&mut self) {
        self.column = 0;
        // The request line itself can never be a header.
        self.candidate = self.lines > 0;
        self.blank = true;
    }

    /// Feeds bytes; returns `Some(had_content_length)` when they complete the head.
    ///
    /// A line at a time, not a byte: the search for each line's end is `memchr`'s, and a
    /// line is looked at only for its first 15 bytes (was 15 instructions per byte of head,
    /// about 3% of a proxied request, BENCHMARKS.md).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Option<bool> {
        if self.state != State::Scanning {
            return None;
        }
        while !bytes.is_empty() {
            let Some(end) = memchr::memchr(b'\n', bytes) else {
                self.line_part(bytes);
                return None;
            };
            self.line_part(&bytes[..end]);
            bytes = &bytes[end + 1..];
            if !self.blank {
                self.lines = self.lines.saturating_add(1);
            } else if self.lines > 0 {
                self.state = State::Off;
                return Some(self.content_length);
            }
            // Blank lines before the request line are ignored, as hyper does.
            self.new_line();
        }
        None
    }

    /// Some bytes of the current line, none of them its `\n`.
    fn line_part(&mut self, part: &[u8]) {
        if self.blank && part.iter().any(|&b| b != b'\r') {
            self.blank = false;
        }
        let column = usize::from(self.column);
        if self.candidate && column < CONTENT_LENGTH.len() {
            let rest = &CONTENT_LENGTH[column..];
            let n = rest.len().min(part.len());
            if !part[..n].eq_ignore_ascii_case(&rest[..n]) {
                self.candidate = false;
            } else if n == rest.len() {
                self.content_length = true;
            }
        }
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        self.column = self.column.saturating_add(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&[u8]]) -> Option<bool> {
        let mut s = HeadScan::default();
        s.start();
        chunks.iter().find_map(|c| s.feed(c))
    }

    #[test]
    fn finds_content_length_in_any_case_and_split_anywhere() {
        let head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\ncOnTeNt-LeNgTh: 5\r\n\r\nbody";
        for split in 0..head.len() {
            assert_eq!(
                scan(&[&head[..split], &head[split..]]),
                Some(true),
                "{split}"
            );
        }
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\r\nHost: h\r\nX-Content-Length: 5\r\n\r\n"]),
            Some(false)
        );
        assert_eq!(scan(&[b"GET / HTTP/1.1\nHost: h\n\n"]), Some(false));
        assert_eq!(
            scan(&[b"\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n"]),
            Some(true),
            "leading blank lines"
        );
        assert_eq!(
            scan(&[b"GET / HTTP/1.1\nContent-Length: 0\n\n"]),
            Some(true)
        );
    }

    #[test]
    fn byte_at_a_time_is_the_same_as_whole() {
        let heads: [(&[u8], bool); 4] = [
            (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nX: content-length: 5\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nContent-Lengt: 5\r\n\r\n", false),
            (b"GET /content-length: HTTP/1.1\r\n\r\n", false),
        ];
        for (head, expected) in heads {
            let bytes: Vec<&[u8]> = head.chunks(1).collect();
            assert_eq!(
                scan(&bytes),
                Some(expected),
                "{:?}",
                String::from_utf8_lossy(head)
            );
            assert_eq!(scan(&[head]), Some(expected));
        }
    }

    #[test]
    fn stops_at_the_end_of_the_head() {
        let mut s = HeadScan::default();
        s.start();
        assert_eq!(s.feed(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
        assert_eq!(s.feed(b"\r\nContent-Length: 1\r\n\r\n"), Some(false));
        assert_eq!(
            s.feed(b"Content-Length: 1\r\n\r\n"),
            None,
            "off until restarted"
        );
        assert_eq!(HeadScan::default().feed(b"Content-Length: 1\r\n\r\n"), None);
    }
}
