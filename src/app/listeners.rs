//! The traffic listeners of a running daemon, and how a reload changes them: every new or
//! moved listener is bound first (a port that cannot be bound fails the reload with nothing
//! changed), then the new ones start accepting, then the ones no longer wanted stop. Their
//! connections are not touched: they finish on their own or at shutdown.

use crate::config::ListenerConfig;
use crate::server::{self, ServerCtx, ServerError};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One accepting listener.
struct Running {
    config: ListenerConfig,
    address: SocketAddr,
    stop: CancellationToken,
}

/// Listeners bound for a change, not accepting yet.
pub struct Bound(Vec<(ListenerConfig, TcpListener)>);

/// The set of traffic listeners.
pub struct Listeners {
    running: Mutex<Vec<Running>>,
    /// Names and bound addresses, for `/status` and tests.
    addresses: Arc<ArcSwap<Vec<(String, SocketAddr)>>>,
    /// Parent of every listener's stop token: cancelled at shutdown.
    stop_all: CancellationToken,
}

impl Listeners {
    /// No listener yet.
    pub fn new() -> Self {
        Self {
            running: Mutex::new(Vec::new()),
            addresses: Arc::default(),
            stop_all: CancellationToken::new(),
        }
    }

    /// Binds every listener of `wanted` that is not already running at the same address.
    pub fn bind_new(&self, wanted: &[ListenerConfig], backlog: u32) -> Result<Bound, ServerError> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let mut bound = Vec::new();
        for listener in wanted {
            if !running.iter().any(|r| r.config == *listener) {
                bound.push((listener.clone(), server::bind(listener, backlog)?));
            }
        }
        Ok(Bound(bound))
    }

    /// Starts accepting on `bound` and stops the running listeners `wanted` no longer has.
    pub fn switch(&self, wanted: &[ListenerConfig], bound: Bound, server: &Arc<ServerCtx>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (config, listener) in bound.0 {
            let address = listener
                .local_addr()
                .expect("a bound listener has a local address");
            tracing::info!(listener = %config.name, %address, "listening");
            let stop = self.stop_all.child_token();
            let name: Arc<str> = Arc::from(config.name.as_str());
            tokio::spawn(server::accept::run(
                listener,
                name,
                Arc::clone(server),
                stop.clone(),
            ));
            running.push(Running {
                config,
                address,
                stop,
            });
        }
        running.retain(|r| {
            let keep = wanted.contains(&r.config);
            if !keep {
                tracing::info!(listener = %r.config.name, address = %r.address, "listener closed by reload");
                r.stop.cancel();
            }
            keep
        });
        self.addresses.store(Arc::new(
            running
                .iter()
                .map(|r| (r.config.name.clone(), r.address))
                .collect(),
        ));
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
