//! Invariants of the PROXY protocol parser, for the `proxy_header` fuzz target and for
//! `tests/fuzz_corpus.rs` (the same checks on the committed corpus, on stable).
//!
//! `server::proxy_protocol::read` peeks at whatever the peer sent, reads exactly the header's
//! `len` bytes when `parse` says `Complete`, and otherwise reads on in pieces while it says
//! `Incomplete`. That is sound only if these hold. A broken invariant panics.

use portero::server::proxy_protocol::{Parsed, parse};

/// Every prefix of a header this short is checked; longer ones are sampled.
const ALL_PREFIXES_UP_TO: usize = 256;

/// Checks every invariant that applies to `data`.
pub fn check(data: &[u8]) {
    let Parsed::Complete(header) = parse(data) else {
        return;
    };
    assert!(
        header.len > 0 && header.len <= data.len(),
        "header length {} of {} bytes",
        header.len,
        data.len()
    );
    // What follows the header (the client's request) never changes what the header is.
    let exact = &data[..header.len];
    assert_eq!(parse(exact), Parsed::Complete(header), "header alone");
    // The header arriving in pieces: until its last byte, only ever "more, please".
    for cut in prefixes(header.len) {
        assert_eq!(
            parse(&exact[..cut]),
            Parsed::Incomplete,
            "prefix of {cut} of {} bytes",
            header.len
        );
    }
}

/// Lengths of proper prefixes to check: all of them for a short header, otherwise the
/// boundaries that matter (the v2 fixed part, around the middle, the last few bytes).
fn prefixes(len: usize) -> Vec<usize> {
    if len <= ALL_PREFIXES_UP_TO {
        return (0..len).collect();
    }
    let mut cuts: Vec<usize> = (0..=28).collect();
    cuts.extend([len / 2, len - 3, len - 2, len - 1]);
    cuts
}
