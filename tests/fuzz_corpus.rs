//! The fuzz targets' invariants (`fuzz/invariants/`), replayed on every committed input in
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. libFuzzer needs instrumentation
//! that `cargo test` does not have; this runs on stable with the rest of the suite, so a bug
//! the fuzzer once found stays fixed wherever the tests run.

#[path = "../fuzz/invariants/config.rs"]
mod config;
#[path = "../fuzz/invariants/h1_differential.rs"]
mod h1_differential;
#[path = "../fuzz/invariants/h1_roundtrip.rs"]
mod h1_roundtrip;
#[path = "../fuzz/invariants/proxy_header.rs"]
mod proxy_header;
#[path = "../fuzz/invariants/request_head.rs"]
mod request_head;

use std::panic;
use std::path::Path;

/// Runs `check` on every input for `target`; fails naming each input that broke an invariant.
fn replay(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for dir in [
        fuzz.join("corpus").join(target),
        fuzz.join("regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue; // regressions/<target>/ exists only once the fuzzer found something
        };
        for entry in entries {
            inputs.push(entry.expect("readable corpus directory").path());
        }
    }
    assert!(!inputs.is_empty(), "no corpus for {target}");
    let broken: Vec<String> = inputs
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).expect("readable corpus file");
            panic::catch_unwind(|| check(&data)).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(broken.is_empty(), "invariants broken by {broken:#?}");
}

#[test]
fn request_head_corpus_keeps_its_invariants() {
    replay("request_head", request_head::check);
}

#[test]
fn proxy_header_corpus_keeps_its_invariants() {
    replay("proxy_header", proxy_header::check);
}

#[test]
fn config_corpus_keeps_its_invariants() {
    replay("config", config::check);
}

#[test]
fn h1_differential_corpus_keeps_its_invariants() {
    replay("h1_differential", h1_differential::check);
}

#[test]
fn h1_roundtrip_corpus_keeps_its_invariants() {
    replay("h1_roundtrip", h1_roundtrip::check);
}
