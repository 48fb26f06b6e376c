//! portero's own HTTP/1.1 codec: the bytes of a message head to an [`http`] head and back,
//! and a body's chunked framing, as pure functions over buffers (no socket, no timer), and
//! the [`Wire`] a message's bytes are queued on for whichever socket takes them.
//! `server::h1` drives it for client connections; `upstream` holds the backend side (a
//! request head out, a response head and its framing back) for the upstream connection.
//!
//! It accepts what hyper's HTTP/1 server accepted, with the same parser underneath
//! (`httparse`) and the same framing rules (RFC 9112 §6), and differs where an edge proxy
//! must see more than hyper shows: every field is kept as sent (a `Content-Length` beside a
//! `Transfer-Encoding` stays for `proxy::sanitize` to refuse, where hyper dropped it). The
//! differential fuzz target `fuzz/fuzz_targets/h1_differential.rs` holds it to hyper's
//! verdict on the same bytes, and `fuzz/fuzz_targets/h1_roundtrip.rs` sends what it parsed
//! back out through the upstream encoder to hyper's server and to itself.

mod chunked;
mod date;
mod fields;
mod head;
mod request;
mod response;
mod upstream;
mod wire;

pub use chunked::{ChunkError, Chunked, Decoded};
pub use date::http_date;
pub use fields::RawFields;
pub use head::has_token;
pub use request::{BodyFraming, HeadError, HeadLimits, ParsedRequest, parse_request};
pub use response::{ResponseFraming, chunk_size_line, encode_response_head, encode_trailers};
pub use upstream::{
    ParsedResponse, RequestFraming, ResponseBodyFraming, ResponseHeadError, ResponseLimits,
    encode_request_head, encode_request_head_with, parse_response,
};
pub use wire::{Coding, SendError, Wire};
