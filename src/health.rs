//! Active health checks: one task per (pool, backend) that probes every `interval` (with
//! jitter, so a hundred backends are not probed in the same millisecond) and feeds the
//! backend's rise/fall hysteresis. A supervisor keeps the set of tasks equal to the current
//! snapshot's members: when membership changes, tasks of backends that left stop and new ones
//! start, while backends that stay keep their task and their health (it lives in the
//! [`Backend`], which the swap carries over). Checks never count against client limits.

mod probe;
mod store;

pub use probe::{CheckError, Probe, Target, check_once};

use crate::backend::{Backend, BackendState, Transition};
use crate::clock::now_us;
use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One backend's checks until `stop`: the first at once, then every `interval` ± 10%.
async fn watch_backend(
    pool: Arc<str>,
    backend: Arc<Backend>,
    target: Target,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let label = Arc::clone(backend.label());
    let probe = Probe::new(backend.address(), target);
    let check = probe.check();
    let mut first = true;
    loop {
        let result = tokio::select! {
            result = check_once(&probe) => result,
            () = stop.cancelled() => return,
        };
        let passed = result.is_ok();
        let result_label = if passed { "pass" } else { "fail" };
        metrics
            .pools
            .health_checks
            .with_label_values(&[&*pool, &*label, result_label])
            .inc();
        if let Some(transition) = backend.record_check(passed, check.rise, check.fall) {
            metrics.transition(&pool, &label, transition.to(), transition.reason());
            match result {
                Ok(()) => {
                    tracing::info!(%pool, backend = %label, rise = check.rise, "backend {transition}")
                }
                Err(e) => {
                    tracing::warn!(%pool, backend = %label, fall = check.fall, error = %e, "backend {transition}")
                }
            }
        } else if let (true, Err(e)) = (first, &result) {
            // A node of a role-aware pool starts down, so a check that can never pass (a wrong
            // CA or password, a replica in a primary pool) flips nothing: said once, here.
            if backend.state() != BackendState::Healthy {
                tracing::info!(%pool, backend = %label, rise = check.rise, error = %e, "backend stays down: its first check failed");
            }
        }
        first = false;
        let jitter = check.interval.mul_f64(0.9 + fastrand::f64() * 0.2);
        tokio::select! {
            () = tokio::time::sleep(jitter) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// A running check task and what it was started with.
struct Watched {
    backend: Arc<Backend>,
    target: Target,
    stop: CancellationToken,
}

/// Keeps one check task per backend of every pool that has `[health_check]`, following the
/// snapshot as `changes` announces new generations; also reports ejections that ran out.
pub async fn run(
    snapshot: SharedSnapshot,
    mut changes: watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut watched: HashMap<(Arc<str>, SocketAddr), Watched> = HashMap::new();
    let mut ejected: HashMap<(Arc<str>, SocketAddr), Arc<Backend>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        reconcile(&snapshot, &mut watched, &metrics, &stop);
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = tick.tick() => note_ejections(&snapshot, &mut ejected, &metrics),
            () = stop.cancelled() => break,
        }
    }
    for (_, task) in watched {
        task.stop.cancel();
    }
}

fn reconcile(
    snapshot: &SharedSnapshot,
    watched: &mut HashMap<(Arc<str>, SocketAddr), Watched>,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) {
    let snapshot = snapshot.load();
    let mut wanted = HashMap::new();
    for pool in snapshot.pools().values() {
        let Some(check) = &pool.config().health_check else {
            continue;
        };
        for member in pool.members() {
            let target = Target {
                check: check.clone(),
                protocol: pool.config().protocol,
                tls: pool.config().tls.clone(),
            };
            wanted.insert(
                (Arc::clone(pool.name()), member.backend.address()),
                (Arc::clone(&member.backend), target),
            );
        }
    }
    watched.retain(|key, task| {
        let keep = wanted.get(key).is_some_and(|(backend, target)| {
            Arc::ptr_eq(backend, &task.backend) && *target == task.target
        });
        if !keep {
            task.stop.cancel();
        }
        keep
    });
    for (key, (backend, target)) in wanted {
        if watched.contains_key(&key) {
            continue;
        }
        let task_stop = stop.child_token();
        tokio::spawn(watch_backend(
            Arc::clone(&key.0),
            Arc::clone(&backend),
            target.clone(),
            Arc::clone(metrics),
            task_stop.clone(),
        ));
        watched.insert(
            key,
            Watched {
                backend,
                target,
                stop: task_stop,
            },
        );
    }
}

/// Logs and counts ejections that have run out (they end by time, not by an event).
fn note_ejections(
    snapshot: &SharedSnapshot,
    ejected: &mut HashMap<(Arc<str>, SocketAddr), Arc<Backend>>,
    metrics: &Metrics,
) {
    let now = now_us();
    let snapshot = snapshot.load();
    ejected.retain(|(pool, address), backend| {
        if backend.ejected_at(now) {
            return true;
        }
        let ended = Transition::EjectionEnded;
        metrics.transition(pool, backend.label(), ended.to(), ended.reason());
        tracing::info!(%pool, backend = %address, "backend {}", Transition::EjectionEnded);
        false
    });
    for pool in snapshot.pools().values() {
        for member in pool.members().iter().filter(|m| m.backend.ejected_at(now)) {
            ejected
                .entry((Arc::clone(pool.name()), member.backend.address()))
                .or_insert_with(|| Arc::clone(&member.backend));
        }
    }
}
