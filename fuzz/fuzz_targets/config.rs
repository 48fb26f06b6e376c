//! libFuzzer entry point; the invariants live in `fuzz/invariants/config.rs`, shared with
//! `tests/fuzz_corpus.rs`, which replays the corpus on stable.
#![no_main]

#[path = "../invariants/config.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::check(data));
