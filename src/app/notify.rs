//! What the daemon tells systemd: READY once the listeners are bound and the first round of
//! health checks has answered (so systemd's "started" means "can serve"), READY again after
//! each reload, STOPPING at shutdown, WATCHDOG pings from the runtime (a wedged runtime misses
//! them and systemd restarts it), and a STATUS line with the connections against the limits.

use super::App;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl App {
    /// Sends a notify message, when systemd listens.
    pub(super) fn notify(&self, message: &str) {
        if let Some(notifier) = &self.notifier {
            notifier.notify(message);
        }
    }

    /// `READY=1` with the current status line.
    pub(super) fn notify_ready(&self) {
        self.notify(&format!("READY=1\n{}", self.status_line()));
    }

    fn status_line(&self) -> String {
        let a = &self.admission;
        format!(
            "STATUS={} connections open ({} in burst; baseline {}, burst {}), generation {}",
            a.open(),
            a.in_burst(),
            a.baseline(),
            a.burst(),
            self.snapshot.load().generation()
        )
    }

    /// Whether every backend with active checks has been checked once.
    fn first_round_done(&self) -> bool {
        self.snapshot
            .load()
            .pools()
            .values()
            .filter(|p| p.config().health_check.is_some())
            .flat_map(|p| p.members())
            .all(|m| m.backend.has_been_checked())
    }
}

/// Starts the notifications: READY after the first health round (or its timeouts), then the
/// watchdog and status lines until the process ends.
pub(super) fn spawn(app: &Arc<App>) {
    if app.notifier.is_none() {
        return;
    }
    let longest_check = app
        .config()
        .pools
        .values()
        .filter_map(|p| p.health_check.as_ref())
        .map(|c| c.timeout)
        .max()
        .unwrap_or_default();
    let deadline = Instant::now() + longest_check + Duration::from_secs(1);
    let watchdog = crate::systemd::watchdog_interval();
    let app: Weak<App> = Arc::downgrade(app);
    tokio::spawn(async move {
        loop {
            let Some(app) = app.upgrade() else { return };
            if app.first_round_done() || Instant::now() >= deadline {
                app.notify_ready();
                break;
            }
            drop(app);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let every = watchdog
            .unwrap_or(Duration::from_secs(5))
            .min(Duration::from_secs(5));
        loop {
            tokio::time::sleep(every).await;
            let Some(app) = app.upgrade() else { return };
            let ping = if watchdog.is_some() {
                "WATCHDOG=1\n"
            } else {
                ""
            };
            app.notify(&format!("{ping}{}", app.status_line()));
        }
    });
}
