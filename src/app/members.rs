//! Membership from discovery feeds and pushes: each sets the complete backend set of one
//! pool, applied like a reload (one snapshot swap, logged as a diff) when it differs from
//! what the pool has. A set lasts until the pool's own source changes it again: its feed's
//! next different answer, or the config file on reload for a static pool.

use super::App;
use crate::backend::BackendSpec;
use crate::control::{MembersError, ReloadReport};
use crate::discovery::{self, Update};
use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

impl App {
    /// Sets `pool`'s backends to `specs` (from `source`: a feed kind or `push`). `None` when
    /// that is what the pool has already.
    pub fn set_members(
        &self,
        pool: &str,
        specs: Vec<BackendSpec>,
        source: &str,
    ) -> Result<Option<ReloadReport>, MembersError> {
        validate(&specs)?;
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        let config = self.config();
        let Some(pool_config) = config.pools.get(pool) else {
            return Err(MembersError::UnknownPool(pool.to_string()));
        };
        let current = members.get(pool).unwrap_or(&pool_config.backends);
        let same = |a: &[BackendSpec], b: &[BackendSpec]| {
            a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
        };
        if same(current, &specs) {
            return Ok(None);
        }
        members.insert(pool.to_string(), specs);
        let report = self.swap(config, &members);
        tracing::info!(
            pool,
            source,
            generation = report.generation,
            changes = report.changes.len(),
            "membership updated"
        );
        Ok(Some(report))
    }
}

fn validate(specs: &[BackendSpec]) -> Result<(), MembersError> {
    let mut seen = BTreeSet::new();
    for spec in specs {
        if spec.weight == 0 {
            return Err(MembersError::Invalid(format!(
                "backend {} has weight 0",
                spec.address
            )));
        }
        if !seen.insert(spec.address) {
            return Err(MembersError::Invalid(format!(
                "backend {} is listed twice",
                spec.address
            )));
        }
    }
    Ok(())
}

/// Starts the discovery feeds and applies what they find to `app`.
pub fn follow_discovery(
    app: Weak<App>,
    snapshot: SharedSnapshot,
    generations: watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let (updates, mut found) = mpsc::channel::<Update>(64);
    tokio::spawn(discovery::run(
        snapshot,
        generations,
        updates,
        metrics,
        stop,
    ));
    tokio::spawn(async move {
        while let Some(update) = found.recv().await {
            let Some(app) = app.upgrade() else { break };
            if let Err(e) = app.set_members(&update.pool, update.specs, update.source) {
                tracing::warn!(pool = %update.pool, source = update.source, error = %e, "discovery update not applied");
            }
        }
    });
}
