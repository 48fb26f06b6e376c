//! Open-file limits. A client connection costs one descriptor and, while it has a request in
//! flight, usually a second one upstream. At start the soft limit is raised to the hard limit,
//! and the admission ceiling is kept under what the limit allows minus a reserve, so that at
//! the ceiling portero stops accepting (the kernel backlog queues) instead of failing accepts
//! and upstream connects with EMFILE, and the admin port and health checks still get sockets.

use std::io;

/// The process's open-files limits after raising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit now in force.
    pub soft: u64,
    /// The hard limit (cannot be raised without privileges, and not at all on some hosts).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit.
pub fn raise() -> io::Result<FdLimit> {
    use rlimit::Resource;
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    if soft < hard {
        rlimit::setrlimit(Resource::NOFILE, hard, hard)?;
    }
    let (soft, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    Ok(FdLimit { soft, hard })
}

/// Descriptors kept back for the admin listener, health checks, logs and the runtime.
pub fn reserve(limit: u64) -> u64 {
    (limit / 10).clamp(16, 4096)
}

/// The connection ceiling the limit allows: the configured one, or less.
pub fn ceiling(configured: usize, limit: u64) -> usize {
    let usable = limit.saturating_sub(reserve(limit));
    configured.min(usize::try_from(usable).unwrap_or(usize::MAX))
}

/// What an operator needs to hear when the limit cannot cover the configured burst with an
/// upstream socket per connection; `None` when it can.
pub fn shortfall(burst: usize, limit: FdLimit) -> Option<String> {
    let need = 2 * burst as u64 + reserve(limit.soft);
    (need > limit.soft).then(|| {
        format!(
            "open-files limit {} (hard {}) cannot cover burst_connections = {} with an upstream socket each \
             plus {} reserved (about {} needed); admitting at most {} client connections. \
             Raise the hard limit (systemd: LimitNOFILE=131072); it cannot be raised from inside the process",
            limit.soft,
            limit.hard,
            burst,
            reserve(limit.soft),
            need,
            ceiling(burst, limit.soft)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_keeps_a_reserve() {
        assert_eq!(reserve(20_000), 2_000);
        assert_eq!(reserve(1_000_000), 4_096);
        assert_eq!(reserve(100), 16);
        assert_eq!(ceiling(40_000, 20_000), 18_000);
        assert_eq!(ceiling(40_000, 1_048_576), 40_000);
        assert_eq!(ceiling(10, 20), 4);
    }

    #[test]
    fn shortfall_names_the_numbers() {
        let this_machine = FdLimit {
            soft: 20_000,
            hard: 20_000,
        };
        let message = shortfall(40_000, this_machine).unwrap();
        assert!(message.contains("open-files limit 20000"), "{message}");
        assert!(message.contains("burst_connections = 40000"), "{message}");
        assert!(message.contains("at most 18000"), "{message}");
        assert_eq!(
            shortfall(
                40_000,
                FdLimit {
                    soft: 131_072,
                    hard: 131_072
                }
            ),
            None
        );
    }

    #[test]
    fn raising_is_idempotent() {
        let first = raise().unwrap();
        assert_eq!(first.soft, first.hard);
        assert_eq!(raise().unwrap(), first);
    }
}
