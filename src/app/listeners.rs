//! The traffic listeners of a running daemon, and how a reload changes them: every new or
//! moved listener is bound, and every listener's settings (TLS certificates...) are built,
//! before anything changes, so a port that cannot be bound or a certificate rustls refuses
//! fails the reload with nothing changed. Then new listeners start accepting, kept ones get
//! their new settings (new handshakes use them; established connections keep theirs), and
//! the ones no longer wanted stop; their connections are not touched.

use crate::acme::Acme;
use crate::config::{Config, ListenerConfig, load_certificates};
use crate::control::ListenerError;
use crate::metrics::Metrics;
use crate::server::listener::{ListenerCtx, ListenerSettings, TlsSettings};
use crate::server::{self, ServerCtx, ServerError};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One accepting listener.
struct Running {
    config: ListenerConfig,
    address: SocketAddr,
    ctx: Arc<ListenerCtx>,
    stop: CancellationToken,
    /// The certificate files' bytes as last loaded, to notice changes on disk.
    certificates: u64,
}

/// What a reload prepared: new sockets, and settings for every wanted listener.
pub struct Prepared {
    bound: Vec<(ListenerConfig, TcpListener)>,
    settings: Vec<(String, ListenerSettings)>,
}

/// The set of traffic listeners.
pub struct Listeners {
    running: Mutex<Vec<Running>>,
    /// Names and bound addresses, for `/status` and tests.
    addresses: Arc<ArcSwap<Vec<(String, SocketAddr)>>>,
    /// Parent of every listener's stop token: cancelled at shutdown.
    stop_all: CancellationToken,
    /// The certificates obtained over ACME, and their tasks.
    acme: Arc<Acme>,
}

fn same_socket(a: &ListenerConfig, b: &ListenerConfig) -> bool {
    a.name == b.name && a.address == b.address
}

/// A hash of the bytes of a listener's certificate and key files.
fn certificates_on_disk(listener: &ListenerConfig) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    for file in listener.tls.iter().flat_map(|t| &t.files) {
        std::fs::read(&file.cert)
            .unwrap_or_default()
            .hash(&mut hasher);
        std::fs::read(&file.key)
            .unwrap_or_default()
            .hash(&mut hasher);
    }
    hasher.finish()
}

impl Listeners {
    /// No listener yet; ACME sections are run by `acme`.
    pub fn new(acme: Arc<Acme>) -> Self {
        Self {
            running: Mutex::new(Vec::new()),
            addresses: Arc::default(),
            stop_all: CancellationToken::new(),
            acme,
        }
    }

    /// Binds every listener of `config` not already running at the same address (or takes the
    /// socket systemd passed for it by name), and builds every listener's settings.
    pub fn prepare(
        &self,
        config: &Config,
        inherited: &mut HashMap<String, std::net::TcpListener>,
    ) -> Result<Prepared, ListenerError> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut bound = Vec::new();
        let mut settings = Vec::new();
        for listener in &config.listeners {
            let acme = listener
                .tls
                .as_ref()
                .and_then(|t| t.acme.as_ref())
                .map(|acme| self.acme.source(&listener.name, acme));
            let built = ListenerSettings::from_config(listener, config, acme)
                .map_err(|e| ListenerError::Tls(listener.name.clone(), e))?;
            settings.push((listener.name.clone(), built));
            if running.iter().any(|r| same_socket(&r.config, listener)) {
                continue;
            }
            let socket = match inherited.remove(&listener.name) {
                Some(passed) => adopt(passed, listener)?,
                None => server::bind(listener, config.admission.backlog)?,
            };
            bound.push((listener.clone(), socket));
        }
        Ok(Prepared { bound, settings })
    }

    /// Starts the new listeners, gives kept ones their new settings, stops the unwanted.
    pub fn switch(&self, config: &Config, prepared: Prepared, server: &Arc<ServerCtx>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let Prepared {
            bound,
            mut settings,
        } = prepared;
        let mut take = |name: &str| {
            let at = settings
                .iter()
                .position(|(n, _)| n == name)
                .expect("settings prepared for every listener");
            settings.swap_remove(at).1
        };
        running.retain(|r| {
            let keep = config.listeners.iter().any(|l| same_socket(l, &r.config));
            if !keep {
                tracing::info!(listener = %r.config.name, address = %r.address, "listener closed by reload");
                r.stop.cancel();
            }
            keep
        });
        for r in running.iter_mut() {
            let wanted = config
                .listeners
                .iter()
                .find(|l| same_socket(l, &r.config))
                .expect("kept listeners are wanted");
            r.ctx.settings.store(Arc::new(take(&r.config.name)));
            r.config = wanted.clone();
            r.certificates = certificates_on_disk(wanted);
        }
        for (config, listener) in bound {
            let address = listener
                .local_addr()
                .expect("a bound listener has a local address");
            tracing::info!(listener = %config.name, %address, tls = config.tls.is_some(), "listening");
            let stop = self.stop_all.child_token();
            let ctx = ListenerCtx::new(&config.name, take(&config.name));
            tokio::spawn(server::accept::run(
                listener,
                Arc::clone(&ctx),
                Arc::clone(server),
                stop.clone(),
            ));
            let certificates = certificates_on_disk(&config);
            running.push(Running {
                config,
                address,
                ctx,
                stop,
                certificates,
            });
        }
        // A redirect names the https listener's bound port (the config may say port 0).
        if let Some(https) = running
            .iter()
            .find(|r| r.config.tls.is_some())
            .map(|r| r.address.port())
        {
            for r in running.iter() {
                if let Some(settings) = r.ctx.settings.load().with_https_port(https) {
                    r.ctx.settings.store(Arc::new(settings));
                }
            }
        }
        self.addresses.store(Arc::new(
            running
                .iter()
                .map(|r| (r.config.name.clone(), r.address))
                .collect(),
        ));
        self.acme.sync(&config.listeners);
        publish_expiry(&running, &server.metrics);
    }

    /// Rebuilds the TLS settings of listeners whose certificate files changed on disk. A
    /// certificate or key that does not load is refused: logged, counted, old one kept.
    pub fn reload_changed_certificates(&self, metrics: &Metrics) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for r in running.iter_mut() {
            let Some(tls) = &r.config.tls else { continue };
            let now = certificates_on_disk(&r.config);
            if now == r.certificates {
                continue;
            }
            r.certificates = now;
            let reloads = |result: &str| {
                metrics
                    .control
                    .tls_certificate_reloads
                    .with_label_values(&[&r.config.name, result])
                    .inc()
            };
            let loaded: Result<Vec<_>, _> = load_certificates(&tls.files).into_iter().collect();
            let acme = r
                .ctx
                .settings
                .load()
                .tls
                .as_ref()
                .and_then(|t| t.acme.clone());
            let built = loaded.and_then(|certs| {
                TlsSettings::new(
                    certs,
                    acme,
                    tls.client_ca.as_deref().map(Vec::as_slice),
                    tls.strict_sni,
                    tls.hsts.clone(),
                )
                .map(|tls| r.ctx.settings.load().with_tls(tls))
            });
            match built {
                Ok(settings) => {
                    tracing::info!(listener = %r.config.name, "certificates reloaded from disk");
                    r.ctx.settings.store(Arc::new(settings));
                    reloads("success");
                    changed = true;
                }
                Err(e) => {
                    tracing::error!(listener = %r.config.name, error = %e, "new certificate refused; the old one keeps serving");
                    reloads("failure");
                }
            }
        }
        if changed {
            publish_expiry(&running, metrics);
        }
    }

    /// The ACME sections' tasks.
    pub fn acme(&self) -> &Arc<Acme> {
        &self.acme
    }

    /// Names and bound addresses, shared with the admin API.
    pub fn addresses(&self) -> &Arc<ArcSwap<Vec<(String, SocketAddr)>>> {
        &self.addresses
    }

    /// Stops accepting everywhere (shutdown).
    pub fn stop_all(&self) {
        self.stop_all.cancel();
    }
}

/// A socket systemd bound and passed: portero never binds that address itself.
fn adopt(
    passed: std::net::TcpListener,
    listener: &ListenerConfig,
) -> Result<TcpListener, ServerError> {
    let error = |source| ServerError::Bind {
        name: listener.name.clone(),
        address: listener.address,
        source,
    };
    passed.set_nonblocking(true).map_err(error)?;
    let socket = TcpListener::from_std(passed).map_err(error)?;
    tracing::info!(listener = %listener.name, "using the socket passed by systemd");
    Ok(socket)
}

fn publish_expiry(running: &[Running], metrics: &Metrics) {
    metrics.control.tls_certificate_expiry.reset();
    for r in running {
        let settings = r.ctx.settings.load();
        let obtained = settings
            .tls
            .iter()
            .filter_map(|t| t.acme.as_ref()?.obtained.get());
        let files = settings.tls.iter().flat_map(|t| t.certs.iter().cloned());
        for cert in files.chain(obtained) {
            let name = cert.names.first().map_or("", String::as_str);
            metrics
                .control
                .tls_certificate_expiry
                .with_label_values(&[&r.config.name, name])
                .set(cert.not_after);
        }
    }
}
