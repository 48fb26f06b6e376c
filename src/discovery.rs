//! Discovery: sources that each yield the *complete* desired backend set of one pool (DNS A/AAAA
//! or SRV records, a polled JSON document, a watched JSON file). A supervisor keeps one task per
//! pool that has `[pool.*.discovery]`, in step with the snapshot; each task reads its source
//! every `refresh` (DNS: sooner when the records' TTL ends) and hands a set to the app only when
//! it differs from the last one it handed over. A failed read (SERVFAIL, timeout, NXDOMAIN, a
//! bad document) keeps the last good set: it is logged and counted, never applied.

mod dns;
mod feed;

pub use feed::{FeedError, parse_feed};

use crate::backend::BackendSpec;
use crate::config::{DiscoveryConfig, DiscoverySource};
use crate::metrics::Metrics;
use crate::snapshot::SharedSnapshot;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

/// A new set for a pool.
#[derive(Debug)]
pub struct Update {
    /// The pool.
    pub pool: String,
    /// Its complete new set.
    pub specs: Vec<BackendSpec>,
    /// `dns`, `srv`, `http` or `file`.
    pub source: &'static str,
}

/// What one read of a source found.
#[derive(Debug)]
pub enum Found {
    /// This set, valid for at most this long (a DNS TTL) when the source says.
    Set(Vec<BackendSpec>, Option<Duration>),
    /// The same as last time (HTTP 304, an unchanged file).
    Unchanged,
}

/// One pool's source.
enum Source {
    Dns(dns::Dns),
    Http(feed::HttpFeed),
    File(feed::FileFeed),
}

impl Source {
    fn new(config: &DiscoveryConfig) -> Result<Source, FeedError> {
        Ok(match &config.source {
            DiscoverySource::Dns { .. } | DiscoverySource::Srv { .. } => {
                Source::Dns(dns::Dns::new(config)?)
            }
            DiscoverySource::Http { url } => {
                Source::Http(feed::HttpFeed::new(url.clone(), config.refresh))
            }
            DiscoverySource::File { path } => Source::File(feed::FileFeed::new(path.clone())),
        })
    }

    async fn read(&mut self) -> Result<Found, FeedError> {
        match self {
            Source::Dns(dns) => dns.read().await,
            Source::Http(http) => http.read().await,
            Source::File(file) => file.read().await,
        }
    }
}

/// Reads one pool's source until `stop`, sending every new set.
async fn follow(
    pool: String,
    config: DiscoveryConfig,
    updates: mpsc::Sender<Update>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let kind = config.source.kind();
    let mut source = match Source::new(&config) {
        Ok(source) => source,
        Err(e) => {
            tracing::error!(%pool, source = kind, error = %e, "discovery cannot start");
            return;
        }
    };
    let mut last: Option<Vec<BackendSpec>> = None;
    // After a failed read, try again at the pace of the last good one (a short TTL keeps
    // its short cadence), never slower than `refresh`.
    let mut pace = config.refresh;
    loop {
        let read = tokio::select! {
            read = source.read() => read,
            () = stop.cancelled() => return,
        };
        let (result, wait) = match read {
            Ok(Found::Set(mut specs, valid_for)) => {
                specs.sort();
                let changed = last.as_ref() != Some(&specs);
                if changed {
                    last = Some(specs.clone());
                    let update = Update {
                        pool: pool.clone(),
                        specs,
                        source: kind,
                    };
                    if updates.send(update).await.is_err() {
                        return;
                    }
                }
                // Re-read when the records expire, but not in a tight loop on a zero TTL.
                pace = valid_for.map_or(config.refresh, |v| {
                    v.clamp(Duration::from_millis(100), config.refresh)
                });
                (if changed { "changed" } else { "unchanged" }, pace)
            }
            Ok(Found::Unchanged) => ("unchanged", config.refresh),
            Err(e) => {
                let every = Duration::from_secs(60);
                if let Some(suppressed) = crate::log_limit::keyed("discovery", &pool, every) {
                    tracing::warn!(%pool, source = kind, error = %e, suppressed, "discovery read failed; keeping the last good set");
                }
                ("error", pace)
            }
        };
        metrics
            .pools
            .discovery_updates
            .with_label_values(&[&pool, kind, result])
            .inc();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Keeps one feed task per pool with `[discovery]`, following the snapshot's generations.
pub async fn run(
    snapshot: SharedSnapshot,
    mut changes: watch::Receiver<u64>,
    updates: mpsc::Sender<Update>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut running: HashMap<String, (DiscoveryConfig, CancellationToken)> = HashMap::new();
    loop {
        let wanted: HashMap<String, DiscoveryConfig> = snapshot
            .load()
            .config()
            .pools
            .iter()
            .filter_map(|(name, pool)| Some((name.clone(), pool.discovery.clone()?)))
            .collect();
        running.retain(|pool, (config, task)| {
            let keep = wanted.get(pool) == Some(config);
            if !keep {
                task.cancel();
            }
            keep
        });
        for (pool, config) in wanted {
            if running.contains_key(&pool) {
                continue;
            }
            let task = stop.child_token();
            tokio::spawn(follow(
                pool.clone(),
                config.clone(),
                updates.clone(),
                Arc::clone(&metrics),
                task.clone(),
            ));
            running.insert(pool, (config, task));
        }
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            () = stop.cancelled() => break,
        }
    }
    for (_, (_, task)) in running {
        task.cancel();
    }
}
