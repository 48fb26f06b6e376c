//! The application: binds everything a [`Config`] names, spawns the tasks, and owns what
//! changes a running daemon: reloads and membership updates ([`reload`]), and shutdown.
//!
//! Shutdown, in order: `/readyz` answers 503; listeners keep accepting for
//! `timeouts.shutdown_grace` so outer load balancers notice; listeners close; every connection
//! is asked to finish (HTTP/1 `Connection: close`, HTTP/2 GOAWAY); in-flight requests and
//! tunnels get up to `timeouts.drain`; whatever is left is cut.

use crate::access_log::AccessLog;
use crate::admin::{AdminCtx, Readiness};
use crate::admission::Admission;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::server::{ServerCtx, ServerError};
use crate::snapshot::{Members, SharedSnapshot, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

mod bound;
mod control;
mod fd_limit;
mod listeners;
mod members;
mod notify;
mod reload;
mod watch;

pub use crate::control::{MembersError, ReloadError, ReloadReport};
pub use bound::Bound;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A traffic listener could not be bound.
    #[error(transparent)]
    Bind(#[from] ServerError),
    /// The admin listener could not be bound.
    #[error("cannot listen on {address} (admin): {source}")]
    Admin {
        /// Address asked for.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The access log file could not be opened.
    #[error("cannot open the access log {target:?}: {source}")]
    AccessLog {
        /// The configured target.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener's TLS settings could not be built.
    #[error("{0}")]
    Tls(String),
    /// systemd passed a socket no `[[listener]]` is named for.
    #[error("systemd passed a socket named `{0}`, and no [[listener]] has that name")]
    Inherited(String),
    /// `admin.token_file` could not be read.
    #[error("cannot read admin.token_file {path:?}: {source}")]
    Token {
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running daemon.
pub struct App {
    config: ArcSwap<Config>,
    config_path: Option<PathBuf>,
    fd: Option<fd_limit::FdLimit>,
    snapshot: SharedSnapshot,
    generation: AtomicU64,
    /// Backend sets from discovery feeds and pushes. Its lock also serializes every change
    /// to the snapshot, so two updates never interleave.
    members: std::sync::Mutex<Members>,
    metrics: Arc<Metrics>,
    admission: Arc<Admission>,
    server: Arc<ServerCtx>,
    readiness: Arc<Readiness>,
    access_log: AccessLog,
    listeners: listeners::Listeners,
    admin: Arc<AdminCtx>,
    admin_addr: SocketAddr,
    /// Stops the admin listener, health checks, discovery and the file watch, after the drain.
    stop_background: CancellationToken,
    /// Announces every new snapshot generation (health checks and discovery follow it).
    changes: tokio::sync::watch::Sender<u64>,
    reloading: tokio::sync::Mutex<()>,
    /// systemd's notify socket, when there is one.
    notifier: Option<Arc<crate::systemd::Notifier>>,
}

impl App {
    /// Binds every listener and the admin port, then starts serving. `config_path` is what
    /// reloads re-read; without one, reloads are refused.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Arc<App>, AppError> {
        Self::start_with(config, config_path, HashMap::new()).await
    }

    /// Like [`start`](Self::start), with listening sockets passed by systemd (by listener name).
    pub async fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        inherited: HashMap<String, std::net::TcpListener>,
    ) -> Result<Arc<App>, AppError> {
        Bound::bind(&config, inherited)
            .await?
            .spawn(config, config_path)
            .await
    }

    /// The bound address of the traffic listener called `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners
            .addresses()
            .load()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
    }

    /// Every traffic listener's name and bound address.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        self.listeners.addresses().load().to_vec()
    }

    /// The bound admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Drains and stops: see the module docs for the order. `grace` is how long listeners keep
    /// accepting after `/readyz` turns 503.
    pub async fn shutdown(&self, grace: Duration) {
        self.readiness.set_draining();
        self.notify("STOPPING=1\nSTATUS=draining");
        if !grace.is_zero() {
            tracing::info!(grace = ?grace, "draining: /readyz is 503, still accepting for the grace period");
            tokio::time::sleep(grace).await;
        }
        self.listeners.stop_all();
        self.server.start_draining();
        self.server.connections.close();
        let drain = self.config().timeouts.drain;
        tracing::info!(open = self.admission.open(), deadline = ?drain, "listeners closed; waiting for in-flight requests");
        if tokio::time::timeout(drain, self.server.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.admission.open(),
                "drain deadline passed; closing what is left"
            );
            self.server.hard_stop.cancel();
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.server.connections.wait()).await;
        }
        self.stop_background.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.access_log.flush()).await;
        tracing::info!("stopped");
    }

    /// Runs until SIGTERM or SIGINT, reloading on SIGHUP. SIGTERM drains with the configured
    /// grace; SIGINT drains without it (an operator at a terminal); a second signal of either
    /// kind exits at once. Returns the process exit code.
    pub async fn run_until_signalled(self: &Arc<Self>) -> std::io::Result<i32> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let mut usr1 = signal(SignalKind::user_defined1())?;
        let grace = loop {
            tokio::select! {
                _ = term.recv() => break self.config().timeouts.shutdown_grace,
                _ = int.recv() => break Duration::ZERO,
                _ = hup.recv() => {
                    // A reload failure is logged and counted inside; the daemon keeps serving.
                    let _ = self.reload("signal").await;
                }
                _ = usr1.recv() => {
                    tracing::info!("reopening the access log");
                    self.access_log.reopen();
                }
            }
        };
        tracing::info!("shutting down");
        tokio::select! {
            () = self.shutdown(grace) => Ok(0),
            _ = term.recv() => Ok(second_signal()),
            _ = int.recv() => Ok(second_signal()),
        }
    }

    fn next_generation(&self) -> u64 {
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// Reads `admin.token_file`, when set (surrounding whitespace ignored).
fn read_token(config: &Config) -> Result<Option<String>, AppError> {
    let Some(path) = &config.admin.token_file else {
        return Ok(None);
    };
    let token = std::fs::read_to_string(path).map_err(|source| AppError::Token {
        path: path.clone(),
        source,
    })?;
    Ok(Some(token.trim().to_string()))
}

/// Raises the open-files limit and says loudly when it cannot cover the configured burst.
fn raise_fd_limit(config: &Config) -> Option<fd_limit::FdLimit> {
    match fd_limit::raise() {
        Ok(limit) => {
            tracing::info!(soft = limit.soft, hard = limit.hard, "open-files limit");
            if let Some(warning) = fd_limit::shortfall(config.admission.burst_connections, limit) {
                tracing::warn!("{warning}");
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit; admission limits are used as configured");
            None
        }
    }
}

/// The admission tiers in force: as configured, capped by what the open-files limit allows.
fn admission_limits(config: &Config, fd: Option<fd_limit::FdLimit>) -> (usize, usize) {
    let a = &config.admission;
    let burst = fd.map_or(a.burst_connections, |fd| {
        fd_limit::ceiling(a.burst_connections, fd.soft)
    });
    (a.baseline_connections.min(burst), burst)
}

fn second_signal() -> i32 {
    tracing::warn!("second signal: stopping now");
    1
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
