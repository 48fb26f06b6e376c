//! Start-up in two steps: [`Bound::bind`] takes every socket a config names (or adopts the
//! ones systemd passed) before anything runs, so a port in use fails the start with nothing
//! started; [`Bound::spawn`] builds the daemon around those sockets and starts its tasks.

use super::{
    App, AppError, admission_limits, listeners, members, notify, raise_fd_limit, read_token,
    unix_now, watch,
};
use crate::access_log::{self, AccessLog};
use crate::acme::Acme;
use crate::admin::{self, AdminCtx, Readiness};
use crate::admission::Admission;
use crate::config::Config;
use crate::control::ListenerError;
use crate::metrics::{Metrics, PoolSeries};
use crate::overload::Overload;
use crate::proxy::Proxy;
use crate::proxy::exchange::Recorder;
use crate::server::{self, ServerCtx};
use crate::snapshot::{Members, SharedSnapshot, Snapshot};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Every socket of a config, bound, and nothing running yet.
pub struct Bound {
    fd: Option<super::fd_limit::FdLimit>,
    metrics: Arc<Metrics>,
    /// Stops the background tasks (ACME's, from the first switch on; the rest at `spawn`).
    stop_background: CancellationToken,
    acme: Arc<Acme>,
    listeners: listeners::Listeners,
    traffic: listeners::Prepared,
    admin: TcpListener,
    admin_addr: SocketAddr,
}

impl Bound {
    /// Binds the traffic listeners of `config` (taking `inherited` ones, by name, instead) and
    /// its admin listener. The process's open-file limit is raised first, for the connections
    /// those sockets will take.
    pub async fn bind(
        config: &Config,
        mut inherited: HashMap<String, std::net::TcpListener>,
    ) -> Result<Bound, AppError> {
        let fd = raise_fd_limit(config);
        let metrics = Arc::new(Metrics::new());
        let stop_background = CancellationToken::new();
        let acme = Acme::new(Arc::clone(&metrics), stop_background.clone());
        let listeners = listeners::Listeners::new(Arc::clone(&acme));
        let traffic = listeners
            .prepare(config, &mut inherited)
            .map_err(|e| match e {
                ListenerError::Bind(e) => AppError::Bind(e),
                tls => AppError::Tls(tls.to_string()),
            })?;
        if let Some(name) = inherited.keys().next() {
            return Err(AppError::Inherited(name.clone()));
        }
        let admin = TcpListener::bind(config.admin.address)
            .await
            .map_err(|source| AppError::Admin {
                address: config.admin.address,
                source,
            })?;
        let admin_addr = admin
            .local_addr()
            .expect("a bound listener has a local address");
        Ok(Bound {
            fd,
            metrics,
            stop_background,
            acme,
            listeners,
            traffic,
            admin,
            admin_addr,
        })
    }

    /// The admin listener's address as bound (its port when the config said 0).
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Builds the daemon for `config` (the one these sockets were bound for) and starts it:
    /// the traffic listeners accept, the admin listener answers, health checks, discovery and
    /// the file watches run. `config_path` is what reloads re-read.
    pub async fn spawn(
        self,
        config: Config,
        config_path: Option<PathBuf>,
    ) -> Result<Arc<App>, AppError> {
        let metrics = self.metrics;
        let target = access_log::Target::parse(&config.log.access_log);
        let (access_log, _writer) = AccessLog::start(
            &target,
            metrics.control.access_log_dropped.clone(),
            access_log::Sampling {
                rate: config.log.access_log_sample,
                slow: config.log.access_log_slow,
            },
        )
        .await
        .map_err(|source| AppError::AccessLog {
            target: config.log.access_log.clone(),
            source,
        })?;
        let token = read_token(&config)?;
        let config = Arc::new(config);
        let members = Members::new();
        let snapshot: SharedSnapshot = Arc::new(ArcSwap::from_pointee(Snapshot::build(
            Arc::clone(&config),
            1,
            None,
            &members,
            Some(&metrics),
        )));
        let (baseline, burst) = admission_limits(&config, self.fd);
        let admission = Admission::new(baseline, burst);
        let overload = Arc::new(Overload::default());
        let recorder = Arc::new(Recorder {
            metrics: Arc::clone(&metrics),
            access_log: access_log.clone(),
            unrouted: PoolSeries::default(),
        });
        let proxy = Arc::new(Proxy::new(
            Arc::clone(&snapshot),
            recorder,
            Arc::clone(&overload),
            self.acme.answers(),
        ));
        let server = Arc::new(ServerCtx::new(
            &config,
            proxy,
            Arc::clone(&admission),
            Arc::clone(&metrics),
            CancellationToken::new(),
            Arc::clone(&snapshot),
            access_log.clone(),
        ));
        self.listeners.switch(&config, self.traffic, &server);

        let readiness = Arc::new(Readiness::default());
        let stop_background = self.stop_background;
        let (changes, generations) = tokio::sync::watch::channel(1);
        let app = Arc::new_cyclic(|app: &Weak<App>| {
            let admin = Arc::new(AdminCtx {
                snapshot: Arc::clone(&snapshot),
                metrics: Arc::clone(&metrics),
                admission: Arc::clone(&admission),
                readiness: Arc::clone(&readiness),
                listeners: Arc::clone(self.listeners.addresses()),
                token: ArcSwap::from_pointee(token),
                control: app.clone(),
            });
            App {
                config: ArcSwap::new(Arc::clone(&config)),
                config_path,
                fd: self.fd,
                snapshot: Arc::clone(&snapshot),
                generation: AtomicU64::new(1),
                members: std::sync::Mutex::new(members),
                metrics: Arc::clone(&metrics),
                admission,
                server,
                readiness: Arc::clone(&readiness),
                access_log,
                listeners: self.listeners,
                admin,
                admin_addr: self.admin_addr,
                stop_background: stop_background.clone(),
                changes,
                reloading: tokio::sync::Mutex::new(()),
                notifier: crate::systemd::Notifier::from_env().map(Arc::new),
            }
        });
        // Started only now that `app` exists: the discovery updates and the admin's write
        // endpoints reach it through a weak reference, which cannot be upgraded before.
        tracing::info!(address = %self.admin_addr, "admin listening");
        tokio::spawn(admin::run(
            self.admin,
            Arc::clone(&app.admin),
            stop_background.clone(),
        ));
        let stop = stop_background.clone();
        let gauge = metrics.control.overload_level.clone();
        let watched = Arc::clone(&snapshot);
        tokio::spawn(async move { overload.run(watched, gauge, stop).await });
        tokio::spawn(server::idle_sweep::run(
            Arc::clone(&app.server),
            stop_background.clone(),
        ));
        tokio::spawn(crate::health::run(
            Arc::clone(&snapshot),
            generations.clone(),
            Arc::clone(&metrics),
            stop_background.clone(),
        ));
        members::follow_discovery(
            Arc::downgrade(&app),
            snapshot,
            generations,
            Arc::clone(&metrics),
            stop_background,
        );
        watch::spawn_certificates(&app);
        if config.watch {
            watch::spawn(&app);
        }
        prepare_series(&metrics, &config);
        readiness.set_ready();
        notify::spawn(&app);
        Ok(app)
    }
}

/// The series that exist from the start, at zero, so rates and alerts work at once.
fn prepare_series(metrics: &Metrics, config: &Config) {
    metrics.prepare(
        config.listener_names(),
        config.pools.keys().map(String::as_str),
    );
    let reloads = &metrics.control.config_reloads;
    reloads.with_label_values(&["success"]);
    reloads.with_label_values(&["failure"]);
    metrics.control.config_last_reload_success.set(unix_now());
}
