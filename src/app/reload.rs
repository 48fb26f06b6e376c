//! Reload: re-read the config file, validate all of it, build a complete new snapshot off to
//! the side, and publish it with one atomic swap. A file that fails validation changes nothing.
//! Requests in flight finish on the snapshot they started with; backends that leave a pool
//! are marked draining (no new requests) and are dropped, with their idle pooled connections,
//! once their last request ends.

use super::{App, unix_now};
use crate::backend::Transition;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// What a successful reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    /// The new config generation.
    pub generation: u64,
    /// One line per change, e.g. `pool api: added 10.0.0.7:8080`.
    pub changes: Vec<String>,
}

/// Why a reload was refused; the old config keeps serving in every case.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The daemon was started without a config file (e.g. `portero demo`).
    #[error("no config file to reload (started without --config)")]
    NoConfigFile,
    /// The new file is invalid.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The change needs a restart in this build.
    #[error("{0}; restart portero to apply it")]
    NeedsRestart(String),
}

impl App {
    /// Reloads the config file. Logged and counted in `portero_config_reloads_total`.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let result = match &self.config_path {
            None => Err(ReloadError::NoConfigFile),
            Some(path) => {
                let path = path.clone();
                // Reading the file is blocking I/O: keep it off the runtime's workers.
                match tokio::task::spawn_blocking(move || Config::from_file(&path)).await {
                    Ok(parsed) => parsed
                        .map_err(ReloadError::from)
                        .and_then(|c| self.apply(c)),
                    Err(e) => Err(ReloadError::NeedsRestart(format!(
                        "config reader failed: {e}"
                    ))),
                }
            }
        };
        match &result {
            Ok(report) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics.config_last_reload_success.set(unix_now());
                tracing::info!(
                    generation = report.generation,
                    changes = report.changes.len(),
                    "config reloaded"
                );
            }
            Err(e) => {
                self.metrics
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(error = %e, "config reload rejected; the old config keeps serving");
            }
        }
        result
    }

    /// Applies an already validated config: one atomic swap of a complete snapshot.
    pub fn apply(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let current = self.config();
        needs_restart(&current, &config)?;
        let config = Arc::new(config);
        let old = self.snapshot.load_full();
        let generation = self.next_generation();
        let new = Arc::new(Snapshot::build(Arc::clone(&config), generation, Some(&old)));
        let changes = diff(&old, &new);
        self.snapshot.store(Arc::clone(&new));
        self.changes.send_replace(generation);
        drain_removed(&old, &new, &self.metrics);
        self.server.update(&config);
        if let Some(warning) = self
            .fd
            .and_then(|fd| super::fd_limit::shortfall(config.admission.burst_connections, fd))
        {
            tracing::warn!("{warning}");
        }
        let (baseline, burst) = super::admission_limits(&config, self.fd);
        self.admission.resize(baseline, burst);
        self.config.store(config);
        for change in &changes {
            tracing::info!(generation, "{change}");
        }
        Ok(ReloadReport {
            generation,
            changes,
        })
    }
}

fn needs_restart(current: &Config, new: &Config) -> Result<(), ReloadError> {
    if current.listeners != new.listeners {
        return Err(ReloadError::NeedsRestart(
            "the [[listener]] set changed".into(),
        ));
    }
    if current.admin.address != new.admin.address {
        return Err(ReloadError::NeedsRestart("admin.address changed".into()));
    }
    if current.log != new.log {
        return Err(ReloadError::NeedsRestart(
            "the [log] section changed".into(),
        ));
    }
    Ok(())
}

fn addresses(snapshot: &Snapshot, pool: &str) -> BTreeSet<(SocketAddr, u32)> {
    snapshot
        .pools()
        .get(pool)
        .map(|p| {
            p.members()
                .iter()
                .map(|m| (m.backend.address(), m.weight))
                .collect()
        })
        .unwrap_or_default()
}

fn diff(old: &Snapshot, new: &Snapshot) -> Vec<String> {
    let names: BTreeSet<&String> = old.pools().keys().chain(new.pools().keys()).collect();
    let mut changes = Vec::new();
    for name in names {
        let (before, after) = (addresses(old, name), addresses(new, name));
        match (
            old.pools().contains_key(name),
            new.pools().contains_key(name),
        ) {
            (false, true) => {
                changes.push(format!("pool {name}: added with {} backends", after.len()))
            }
            (true, false) => changes.push(format!("pool {name}: removed")),
            _ => {}
        }
        for (address, weight) in after.difference(&before) {
            match before.iter().find(|(a, _)| a == address) {
                Some((_, old)) => {
                    changes.push(format!("pool {name}: {address} weight {old} -> {weight}"))
                }
                None => changes.push(format!("pool {name}: added {address} weight {weight}")),
            }
        }
        for (address, _) in before.difference(&after) {
            if !after.iter().any(|(a, _)| a == address) {
                changes.push(format!("pool {name}: removed {address}"));
            }
        }
    }
    changes
}

/// Backends no pool of the new snapshot uses get no new requests; their in-flight ones finish.
fn drain_removed(old: &Snapshot, new: &Snapshot, metrics: &Metrics) {
    for (name, pool) in old.pools() {
        for member in pool.members() {
            let stays = new.pools().get(name).is_some_and(|p| {
                p.members()
                    .iter()
                    .any(|m| Arc::ptr_eq(&m.backend, &member.backend))
            });
            if !stays {
                member.backend.start_draining();
                metrics.transition(name, member.backend.label(), Transition::Removed);
            }
        }
    }
}
