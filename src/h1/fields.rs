//! A backend's response fields as it sent them: the head's bytes, and where each field lies in
//! them. An HTTP/1.1 client gets them copied into its own head with no `http` types between
//! (as HAProxy's HTX keeps a message's fields), which spares every field a `HeaderName`, a
//! `HeaderValue` and a place in a `HeaderMap`, and the map its allocations; an HTTP/2 client
//! gets them as a `HeaderMap` ([`RawFields::prepend_to`]).
//!
//! The bytes were checked by httparse, which accepts exactly the names and values `http`'s
//! types accept (a unit test below holds the two to the same verdict on every byte), so
//! either way out carries the same fields.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// Where one field's name and value lie in the head.
#[derive(Debug, Clone, Copy)]
struct Span {
    name_at: u32,
    name_len: u32,
    value_at: u32,
    value_len: u32,
    /// Read once, when the field is added, so that no later step compares its name again.
    known: Known,
}

/// The names a head's readers look for: framing, the connection, and the client's `Date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Known {
    ContentLength,
    TransferEncoding,
    Connection,
    /// Another hop-by-hop name: `keep-alive`, `proxy-connection`, `proxy-authorization`,
    /// `te`, `upgrade` (RFC 9110 §7.6.1, with the two non-standard ones old clients send).
    HopByHop,
    Date,
    Other,
}

impl Known {
    /// What `name` is, in any case. By length first: most names are none of these, and
    /// one comparison at most tells.
    pub(super) fn of(name: &[u8]) -> Self {
        let (known, candidate): (Known, &str) = match name.len() {
            2 => (Known::HopByHop, "te"),
            4 => (Known::Date, "date"),
            7 => (Known::HopByHop, "upgrade"),
            10 if name[0].eq_ignore_ascii_case(&b'c') => (Known::Connection, "connection"),
            10 => (Known::HopByHop, "keep-alive"),
            14 => (Known::ContentLength, "content-length"),
            16 => (Known::HopByHop, "proxy-connection"),
            17 => (Known::TransferEncoding, "transfer-encoding"),
            19 => (Known::HopByHop, "proxy-authorization"),
            _ => return Known::Other,
        };
        if name.eq_ignore_ascii_case(candidate.as_bytes()) {
            known
        } else {
            Known::Other
        }
    }

    fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Known::Connection | Known::HopByHop | Known::TransferEncoding
        )
    }
}

/// The fields of one head, in the order they came, names in the case they came in.
#[derive(Debug, Clone, Default)]
pub struct RawFields {
    head: Bytes,
    spans: Vec<Span>,
}

impl RawFields {
    /// Room for `fields` fields of `head`.
    pub(super) fn with_capacity(head: Bytes, fields: usize) -> Self {
        Self {
            head,
            spans: Vec::with_capacity(fields),
        }
    }

    /// Adds a field; `name` and `value` are slices of the head given to
    /// [`with_capacity`](Self::with_capacity). Returns what the name is, for the caller's
    /// own reading of the field.
    pub(super) fn push(&mut self, name: &[u8], value: &[u8]) -> Known {
        let known = Known::of(name);
        self.spans.push(Span {
            name_at: self.offset(name),
            name_len: len32(name),
            value_at: self.offset(value),
            value_len: len32(value),
            known,
        });
        known
    }

    fn offset(&self, part: &[u8]) -> u32 {
        let at = (part.as_ptr() as usize).wrapping_sub(self.head.as_ptr() as usize);
        debug_assert!(
            at + part.len() <= self.head.len(),
            "not a slice of the head"
        );
        u32::try_from(at).unwrap_or(u32::MAX)
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Each field as (name, value), in the order they came.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|span| self.field(span))
    }

    fn field(&self, span: &Span) -> (&[u8], &[u8]) {
        (name_of(&self.head, span), value_of(&self.head, span))
    }

    /// The first value of `name` (lowercase), in any case.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Whether a field is named `name` (lowercase), in any case.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The first `Content-Length` value.
    pub fn content_length(&self) -> Option<&[u8]> {
        let span = self
            .spans
            .iter()
            .find(|s| s.known == Known::ContentLength)?;
        Some(value_of(&self.head, span))
    }

    /// Whether there is a `Date`.
    pub fn has_date(&self) -> bool {
        self.spans.iter().any(|s| s.known == Known::Date)
    }

    /// Removes every field named `name` (lowercase), in any case.
    pub fn remove(&mut self, name: &str) {
        let head = &self.head;
        self.spans
            .retain(|span| !name_of(head, span).eq_ignore_ascii_case(name.as_bytes()));
    }

    /// Removes the hop-by-hop fields: the fixed set, and every name `Connection` lists. The
    /// same rule as `proxy::headers::remove_hop_by_hop` without an upgrade.
    pub fn remove_hop_by_hop(&mut self) {
        // Without a `Connection` field only the fixed names are hop-by-hop, and most
        // responses carry none of them: nothing to collect or keep.
        if !self.spans.iter().any(|span| span.known.is_hop_by_hop()) {
            return;
        }
        let head = &self.head;
        let listed: Vec<&[u8]> = self
            .spans
            .iter()
            .filter(|span| span.known == Known::Connection)
            .filter_map(|span| visible_ascii(value_of(head, span)))
            .flat_map(|value| value.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            // The fixed names go below in any case (`Connection: keep-alive`, as most
            // servers send, lists nothing more).
            .filter(|token| !token.is_empty() && !Known::of(token).is_hop_by_hop())
            .collect();
        self.spans.retain(|span| {
            let name = name_of(head, span);
            !span.known.is_hop_by_hop()
                && !listed.iter().any(|token| name.eq_ignore_ascii_case(token))
        });
    }

    /// Puts the fields in front of those `headers` holds already, as `http` types.
    pub fn prepend_to(&self, headers: &mut HeaderMap) {
        let mut map = HeaderMap::with_capacity(self.len() + headers.len());
        for span in &self.spans {
            // Cannot fail: httparse admitted the field, and admits what `http` does.
            let name = HeaderName::from_bytes(name_of(&self.head, span));
            let at = span.value_at as usize;
            let value =
                HeaderValue::from_maybe_shared(self.head.slice(at..at + span.value_len as usize));
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        let mut last = None;
        for (name, value) in std::mem::take(headers) {
            let name = name.or_else(|| last.clone());
            if let Some(name) = name {
                map.append(name.clone(), value);
                last = Some(name);
            }
        }
        *headers = map;
    }
}

fn name_of<'h>(head: &'h [u8], span: &Span) -> &'h [u8] {
    let at = span.name_at as usize;
    head.get(at..at + span.name_len as usize)
        .unwrap_or_default()
}

fn value_of<'h>(head: &'h [u8], span: &Span) -> &'h [u8] {
    let at = span.value_at as usize;
    head.get(at..at + span.value_len as usize)
        .unwrap_or_default()
}

fn len32(part: &[u8]) -> u32 {
    u32::try_from(part.len()).unwrap_or(u32::MAX)
}

/// The value, when it is all visible ASCII (and tabs), as `HeaderValue::to_str` reads it.
pub(super) fn visible_ascii(value: &[u8]) -> Option<&[u8]> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
        .then_some(value)
}

#[cfg(test)]
mod tests;
