//! Backends: [`BackendSpec`] is the desired state (an address and a weight, from the config
//! file or a feed); [`Backend`] is the live one (health, in-flight requests, and the pooled
//! upstream connections), shared by `Arc` so that it survives a membership swap when its
//! address stays.

use crate::upstream::Upstream;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// A backend as the config or a discovery feed describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendSpec {
    /// Where it listens.
    pub address: SocketAddr,
    /// Relative share of requests (at least 1).
    pub weight: u32,
}

impl BackendSpec {
    /// A spec with the given weight.
    pub fn new(address: SocketAddr, weight: u32) -> Self {
        Self { address, weight }
    }
}

/// The state shown in `/status` and used by selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BackendState {
    /// Receives new requests.
    Healthy = 0,
    /// Failed its checks; receives requests only in panic mode.
    Unhealthy = 1,
    /// Removed from its pool; finishes in-flight requests, receives no new ones.
    Draining = 2,
}

impl BackendState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => BackendState::Healthy,
            1 => BackendState::Unhealthy,
            _ => BackendState::Draining,
        }
    }

    /// The lower-case name used in `/status` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendState::Healthy => "healthy",
            BackendState::Unhealthy => "unhealthy",
            BackendState::Draining => "draining",
        }
    }
}

impl fmt::Display for BackendState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A live backend.
pub struct Backend {
    address: SocketAddr,
    /// The address as text, made once: it labels metrics and log lines on every request.
    label: Arc<str>,
    state: AtomicU8,
    in_flight: AtomicU64,
    upstream: Upstream,
}

impl Backend {
    /// A new backend, healthy until a check says otherwise.
    pub fn new(address: SocketAddr, upstream: Upstream) -> Self {
        Self {
            address,
            label: address.to_string().into(),
            state: AtomicU8::new(BackendState::Healthy as u8),
            in_flight: AtomicU64::new(0),
            upstream,
        }
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address as text (metric label).
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Its current state.
    pub fn state(&self) -> BackendState {
        BackendState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Sets its state; returns the previous one.
    pub fn set_state(&self, state: BackendState) -> BackendState {
        BackendState::from_u8(self.state.swap(state as u8, Ordering::AcqRel))
    }

    /// Whether selection may send it a new request outside panic mode.
    pub fn is_selectable(&self) -> bool {
        self.state() == BackendState::Healthy
    }

    /// Requests sent to it whose response has not finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request as in flight until the returned guard is dropped.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            backend: Arc::clone(self),
        }
    }

    /// The pooled client that reaches it.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("address", &self.address)
            .field("state", &self.state())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

/// One in-flight request on a backend; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight {
    backend: Arc<Backend>,
}

impl InFlight {
    /// The backend the request went to.
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
