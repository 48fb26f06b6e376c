//! `watch = true`: reload when the config file changes on disk. The file is read once a
//! second and compared with what was last seen, rather than watched with inotify: Kubernetes
//! updates a mounted ConfigMap by swapping a symlink, which inotify on the file does not see,
//! and a config file is small.

use super::App;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Spawns the watch of `app`'s config file.
pub fn spawn(app: &Arc<App>) {
    let Some(path) = app.config_path.clone() else {
        return;
    };
    let stop = app.stop_background.clone();
    let app: Weak<App> = Arc::downgrade(app);
    // Read now, while the daemon starts, not when the task first runs: a change written in
    // between (on a busy machine, after `App::start` has returned) would otherwise be taken
    // for the file as loaded and never reloaded.
    let mut seen = std::fs::read(&path).ok();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let now = read(&path).await;
            if now.is_none() || now == seen {
                continue;
            }
            seen = now;
            let Some(app) = app.upgrade() else { return };
            // Failures are logged and counted inside; the old config keeps serving.
            let _ = app.reload("watch").await;
        }
    });
}

async fn read(path: &Path) -> Option<Vec<u8>> {
    tokio::fs::read(path).await.ok()
}

/// Picks up certificate files changed on disk every two seconds (renewals by certbot or a
/// Kubernetes secret update), without a reload.
pub fn spawn_certificates(app: &Arc<App>) {
    if !app.config().listeners.iter().any(|l| l.tls.is_some()) {
        return;
    }
    let stop = app.stop_background.clone();
    let app: Weak<App> = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => return,
            }
            let Some(app) = app.upgrade() else { return };
            // Reading the files is blocking I/O.
            let _ = tokio::task::spawn_blocking(move || {
                app.listeners.reload_changed_certificates(&app.metrics)
            })
            .await;
        }
    });
}
