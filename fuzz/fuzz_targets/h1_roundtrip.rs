//! libFuzzer entry point; the invariant lives in `fuzz/invariants/h1_roundtrip.rs`, shared
//! with `tests/fuzz_corpus.rs`, which replays the corpus on stable.
#![no_main]

#[path = "../invariants/h1_roundtrip.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check(data));
