//! libFuzzer entry point; the invariants live in `fuzz/invariants/request_head.rs`, shared with
//! `tests/fuzz_corpus.rs`, which replays the corpus on stable.
#![no_main]

#[path = "../invariants/request_head.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check(data));
