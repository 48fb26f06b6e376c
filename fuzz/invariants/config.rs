//! Invariants of the config loader, for the `config` fuzz target and for
//! `tests/fuzz_corpus.rs` (the same checks on the committed corpus, on stable).
//!
//! Any text may be handed to `portero check` or a reload: the loader must answer with a
//! `Config` or with problems that point inside the text, never panic. A broken invariant
//! panics.

use portero::Config;

/// Checks every invariant that applies to `data` (UTF-8 only: a config file is read as a
/// `String`, so other bytes never reach the loader).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(error) = Config::from_toml(text, "fuzz.toml") else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    for problem in &error.problems {
        if let Some(span) = &problem.span {
            assert!(
                span.start <= span.end && span.end <= text.len(),
                "span {span:?} outside {} bytes: {}",
                text.len(),
                problem.message
            );
        }
        if let Some((line, column)) = problem.line_col {
            let in_text = line
                .checked_sub(1)
                .and_then(|i| lines.get(i))
                .is_some_and(|l| column >= 1 && column <= l.len() + 1);
            assert!(
                in_text,
                "{line}:{column} outside the text: {}",
                problem.message
            );
        }
    }
    // The message an operator reads must render too.
    let _ = error.to_string();
}
