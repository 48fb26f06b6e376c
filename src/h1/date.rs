//! The `Date` field value (RFC 9110 §6.6.1), formatted once a second per thread.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
const LEN: usize = 29;

struct Cached {
    second: u64,
    text: [u8; LEN],
}

thread_local! {
    static CACHED: RefCell<Cached> = const { RefCell::new(Cached { second: 0, text: [0; LEN] }) };
}

/// Calls `f` with the current date as an HTTP-date.
pub fn http_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.second != now {
            let text = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(now));
            let Ok(text) = <[u8; LEN]>::try_from(text.as_bytes()) else {
                return f(text.as_bytes());
            };
            *cached = Cached { second: now, text };
        }
        f(&cached.text);
    });
}
