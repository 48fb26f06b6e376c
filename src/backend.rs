//! Backends: [`BackendSpec`] is the desired state (an address and a weight, from the config
//! file or a feed); [`Backend`] is the live one (health and in-flight requests), shared by
//! `Arc` so that it survives a membership swap when its address stays. Pure data: the client
//! that reaches it lives in `upstream`, the series that count it in the pool's members.
//!
//! Health has three inputs, kept apart so each is simple: active checks (up/down with
//! rise/fall hysteresis, [`Hysteresis`]), passive outlier ejection (a deadline), and removal
//! from the pool (draining). The reported [`BackendState`] is derived from them.

mod hysteresis;
mod transition;

pub use hysteresis::Hysteresis;
pub use transition::Transition;

use crate::clock::now_us;
use crate::log_limit::Every;
use http::uri::Authority;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

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
pub enum BackendState {
    /// Receives new requests.
    Healthy,
    /// Failed its checks or was ejected; receives requests only in panic mode.
    Unhealthy,
    /// Removed from its pool; finishes in-flight requests, receives no new ones.
    Draining,
}

impl BackendState {
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
    /// The same text as a URI authority, for the requests sent to it.
    authority: Authority,
    draining: AtomicBool,
    checks: Mutex<Hysteresis>,
    check_down: AtomicBool,
    /// Whether an active check has answered at least once.
    checked: AtomicBool,
    /// µs (process clock) until which passive outlier detection keeps it out; 0 = never.
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    consecutive_failures: AtomicU32,
    /// µs when it last became able to take traffic, for slow start.
    up_since: AtomicU64,
    in_flight: AtomicU64,
    /// Cancelled at the drain deadline after removal: what is still streaming is cut.
    cut: CancellationToken,
    /// Set by `cut_in_flight`, read by every response body's poll.
    cut_flag: AtomicBool,
    /// "failing but not ejected" comes once per failed request: logged at most this often.
    failing_warning: Every,
    /// How many times checks have marked it down; tcp sessions that began before the latest
    /// may be closed ([`Backend::marked_down_after`]).
    downs: AtomicU64,
    marked_down: Notify,
}

/// How often a backend that keeps failing without being ejected is logged.
const FAILING_WARNING_PERIOD: Duration = Duration::from_secs(10);

impl Backend {
    /// A backend able to take traffic since `up_since` (µs on [`now_us`]; 0 = always).
    pub fn new(address: SocketAddr, up_since: u64) -> Self {
        Self::starting(address, up_since, Hysteresis::up())
    }

    /// A backend that takes no traffic until its active checks pass `rise` times: one of a
    /// pool that asks for a role, which no node has until a check has seen it.
    pub fn unproven(address: SocketAddr) -> Self {
        Self::starting(address, 0, Hysteresis::down())
    }

    fn starting(address: SocketAddr, up_since: u64, checks: Hysteresis) -> Self {
        let label: Arc<str> = address.to_string().into();
        Self {
            address,
            authority: Authority::try_from(&*label).expect("a socket address is an authority"),
            label,
            draining: AtomicBool::new(false),
            check_down: AtomicBool::new(!checks.is_up()),
            checks: Mutex::new(checks),
            checked: AtomicBool::new(false),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            consecutive_failures: AtomicU32::new(0),
            up_since: AtomicU64::new(up_since),
            in_flight: AtomicU64::new(0),
            cut: CancellationToken::new(),
            cut_flag: AtomicBool::new(false),
            failing_warning: Every::new("backend_failing", FAILING_WARNING_PERIOD),
            downs: AtomicU64::new(0),
            marked_down: Notify::new(),
        }
    }

    /// Whether to log now that it keeps failing without being ejected; when yes, how many
    /// such warnings were held back since the last.
    pub fn failing_warning(&self, now: u64) -> Option<u64> {
        self.failing_warning.admit(now)
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The address as a URI authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The address as text (metric label).
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// Its state at `now` (µs on [`now_us`]).
    pub fn state_at(&self, now: u64) -> BackendState {
        if self.draining.load(Ordering::Acquire) {
            BackendState::Draining
        } else if !self.is_up(now) {
            BackendState::Unhealthy
        } else {
            BackendState::Healthy
        }
    }

    /// Its state now.
    pub fn state(&self) -> BackendState {
        self.state_at(now_us())
    }

    /// Whether it may get a new request at `now` outside panic mode.
    pub fn is_selectable(&self, now: u64) -> bool {
        self.state_at(now) == BackendState::Healthy
    }

    /// Whether its checks and outlier detection would let it take a request at `now`, be it
    /// draining or not.
    pub fn is_up(&self, now: u64) -> bool {
        !self.check_down.load(Ordering::Acquire) && !self.is_ejected(now)
    }

    /// Whether it is draining (removed from its pool).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Marks it removed: no new requests; in-flight ones finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Ends whatever still streams from it (response bodies, tunnels): its drain deadline passed.
    pub fn cut_in_flight(&self) {
        // Set before the token is cancelled: whoever reads it unset and then waits on the
        // token is woken by the cancel.
        self.cut_flag.store(true, Ordering::Release);
        self.cut.cancel();
    }

    /// Resolves when [`cut_in_flight`](Self::cut_in_flight) is called.
    pub fn cut_signal(&self) -> WaitForCancellationFutureOwned {
        self.cut.clone().cancelled_owned()
    }

    /// Whether [`cut_in_flight`](Self::cut_in_flight) has been called: one atomic load, for
    /// a caller that asks far more often than it waits on [`cut_signal`](Self::cut_signal)
    /// (the token's own check takes a lock).
    pub fn is_cut(&self) -> bool {
        self.cut_flag.load(Ordering::Acquire)
    }

    /// Records one active check result; returns the transition it caused, if any.
    pub fn record_check(&self, pass: bool, rise: u32, fall: u32) -> Option<Transition> {
        self.checked.store(true, Ordering::Release);
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        let up = checks.record(pass, rise, fall)?;
        self.check_down.store(!up, Ordering::Release);
        if up {
            self.up_since.store(now_us(), Ordering::Release);
            Some(Transition::CheckPassed)
        } else {
            self.downs.fetch_add(1, Ordering::AcqRel);
            self.marked_down.notify_waiters();
            Some(Transition::CheckFailed)
        }
    }

    /// How many times checks have marked it down so far.
    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::Acquire)
    }

    /// Resolves once checks mark it down after `seen` (a [`Backend::downs`] read earlier):
    /// what a tcp session to it waits on, to close when its node loses its role.
    pub async fn marked_down_after(&self, seen: u64) {
        loop {
            let notified = self.marked_down.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the count is read: a mark in between is not missed.
            notified.as_mut().enable();
            if self.downs() != seen {
                return;
            }
            notified.await;
        }
    }

    /// Whether an active check has answered at least once.
    pub fn has_been_checked(&self) -> bool {
        self.checked.load(Ordering::Acquire)
    }

    fn is_ejected(&self, now: u64) -> bool {
        now < self.ejected_until.load(Ordering::Acquire)
    }

    /// Whether passive outlier detection keeps it out at `now`.
    pub fn ejected_at(&self, now: u64) -> bool {
        self.is_ejected(now)
    }

    /// Records a real request that succeeded: the failures in a row start again from 0.
    pub fn record_success(&self) {
        self.consecutive_failures.store(0, Ordering::Release);
    }

    /// Records a real request that failed at `now`. Returns true when `threshold` failures in
    /// a row have been reached and it is not ejected yet: the caller decides whether to eject
    /// (the pool caps how many are out at once). A `threshold` of 0 turns this off.
    pub fn record_failure(&self, threshold: u32, now: u64) -> bool {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1;
        threshold > 0 && failures >= threshold && !self.is_ejected(now)
    }

    /// Ejects it from `now` for `base` times the number of recent ejections (capped at 10x),
    /// so a backend that keeps failing stays out longer. Returns the duration.
    pub fn eject(&self, now: u64, base: Duration) -> Duration {
        let base_us = base.as_micros() as u64;
        let last_end = self.ejected_until.load(Ordering::Acquire);
        // A long quiet spell since the last ejection forgives the earlier ones.
        if last_end != 0 && now.saturating_sub(last_end) > base_us.saturating_mul(10) {
            self.ejections.store(0, Ordering::Release);
        }
        let times = (self.ejections.fetch_add(1, Ordering::AcqRel) + 1).min(10);
        let duration = base_us.saturating_mul(u64::from(times));
        self.ejected_until
            .store(now.saturating_add(duration), Ordering::Release);
        self.up_since
            .store(now.saturating_add(duration), Ordering::Release);
        self.consecutive_failures.store(0, Ordering::Release);
        Duration::from_micros(duration)
    }

    /// When it last became able to take traffic (µs), for slow start.
    pub fn up_since(&self) -> u64 {
        self.up_since.load(Ordering::Acquire)
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
