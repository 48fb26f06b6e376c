//! Reload: re-read the config file, validate all of it, bind any new listener, build a
//! complete new snapshot off to the side, and publish it with one atomic swap. A file that
//! fails validation, or a port that cannot be bound, changes nothing. Requests in flight
//! finish on the snapshot they started with; backends that leave a pool are marked draining
//! (no new requests) and cut at `timeouts.drain` if anything of theirs still streams.

use super::App;
use crate::backend::Transition;
use crate::config::Config;
use crate::control::{ReloadError, ReloadReport};
use crate::snapshot::{Members, Snapshot};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

impl App {
    /// Reloads the config file; `trigger` says why (signal, admin, watch). Logged and counted
    /// in `portero_config_reloads_total`.
    pub async fn reload(&self, trigger: &'static str) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        if let Some(notifier) = &self.notifier {
            notifier.reloading();
        }
        let result = match &self.config_path {
            None => Err(ReloadError::NoConfigFile),
            Some(path) => {
                let path = path.clone();
                // Reading files is blocking I/O: keep it off the runtime's workers.
                let read = tokio::task::spawn_blocking(move || -> Result<_, ReloadError> {
                    let config = Config::from_file(&path)?;
                    let token = super::read_token(&config).map_err(|e| match e {
                        super::AppError::Token { source, .. } => ReloadError::Token(source),
                        other => ReloadError::NeedsRestart(other.to_string()),
                    })?;
                    Ok((config, token))
                })
                .await;
                match read {
                    Ok(Ok((config, token))) => self.apply_with_token(config, token),
                    Ok(Err(e)) => Err(e),
                    Err(e) => Err(ReloadError::NeedsRestart(format!(
                        "config reader failed: {e}"
                    ))),
                }
            }
        };
        self.notify_ready();
        match &result {
            Ok(report) => {
                self.metrics
                    .control
                    .config_reloads
                    .with_label_values(&["success"])
                    .inc();
                self.metrics
                    .control
                    .config_last_reload_success
                    .set(super::unix_now());
                // After a reload, as after SIGUSR1: logrotate's postrotate may use either.
                self.access_log.reopen();
                tracing::info!(
                    trigger,
                    generation = report.generation,
                    changes = report.changes.len(),
                    "config reloaded"
                );
            }
            Err(e) => {
                self.metrics
                    .control
                    .config_reloads
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(trigger, error = %e, "config reload rejected; the old config keeps serving");
            }
        }
        result
    }

    /// Applies an already validated config (the admin token unchanged).
    pub fn apply(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let token = self.admin.token.load_full();
        self.apply_with_token(config, (*token).clone())
    }

    fn apply_with_token(
        &self,
        config: Config,
        token: Option<String>,
    ) -> Result<ReloadReport, ReloadError> {
        needs_restart(&self.config(), &config)?;
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let prepared = self.listeners.prepare(&config, &mut HashMap::new())?;
        let old_config = self.config();
        // A pool's own source wins on reload: the file for static pools; a discovery pool keeps
        // its feed's last set (never emptied while its feed re-resolves) unless the feed changed.
        members.retain(|pool, _| {
            let discovery = |c: &Config| c.pools.get(pool).and_then(|p| p.discovery.clone());
            discovery(&config).is_some() && discovery(&config) == discovery(&old_config)
        });
        let config = Arc::new(config);
        self.metrics.prepare(
            config.listener_names(),
            config.pools.keys().map(String::as_str),
        );
        self.config.store(Arc::clone(&config));
        let report = self.swap(Arc::clone(&config), &members);
        self.listeners.switch(&config, prepared, &self.server);
        self.server.update(&config);
        if let Some(warning) = self
            .fd
            .and_then(|fd| super::fd_limit::shortfall(config.admission.burst_connections, fd))
        {
            tracing::warn!("{warning}");
        }
        let (baseline, burst) = super::admission_limits(&config, self.fd);
        self.admission.resize(baseline, burst);
        self.admin.token.store(Arc::new(token));
        Ok(report)
    }

    /// Builds and publishes the snapshot for `config` and `members`. Callers hold the
    /// `members` lock, so swaps never interleave.
    pub(super) fn swap(&self, config: Arc<Config>, members: &Members) -> ReloadReport {
        let old = self.snapshot.load_full();
        let generation = self.next_generation();
        let new = Arc::new(Snapshot::build(
            Arc::clone(&config),
            generation,
            Some(&old),
            members,
            Some(&self.metrics),
        ));
        let changes = diff(&old, &new);
        self.snapshot.store(Arc::clone(&new));
        self.changes.send_replace(generation);
        self.drain_removed(&old, &new, config.timeouts.drain);
        for change in &changes {
            tracing::info!(generation, "{change}");
        }
        ReloadReport {
            generation,
            changes,
        }
    }

    /// Backends no pool of the new snapshot uses get no new requests; what still streams from
    /// them is cut at the drain deadline.
    fn drain_removed(&self, old: &Snapshot, new: &Snapshot, drain: std::time::Duration) {
        for (name, pool) in old.pools() {
            for member in pool.members() {
                let stays = new.pools().get(name).is_some_and(|p| {
                    p.members()
                        .iter()
                        .any(|m| Arc::ptr_eq(&m.backend, &member.backend))
                });
                if stays || member.backend.is_draining() {
                    continue;
                }
                member.backend.start_draining();
                let removed = Transition::Removed;
                let label = member.backend.label();
                self.metrics
                    .transition(name, label, removed.to(), removed.reason());
                let backend = Arc::clone(&member.backend);
                let (metrics, snapshot, pool) = (
                    Arc::clone(&self.metrics),
                    Arc::clone(&self.snapshot),
                    name.clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(drain).await;
                    if backend.in_flight() > 0 {
                        tracing::info!(backend = %backend.address(), in_flight = backend.in_flight(), "drain deadline passed: cutting what still streams");
                    }
                    backend.cut_in_flight();
                    let back = snapshot.load().pools().get(&pool).is_some_and(|p| {
                        p.members()
                            .iter()
                            .any(|m| m.backend.address() == backend.address())
                    });
                    if !back {
                        metrics.forget_backend(&pool, backend.label());
                    }
                });
            }
        }
    }
}

fn needs_restart(current: &Config, new: &Config) -> Result<(), ReloadError> {
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

/// One line per pool added or removed, backend added or removed, and weight changed.
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
