//! portero: a Layer-7 (HTTP/1.1 and HTTP/2) load balancer daemon.
//!
//! A request, top to bottom:
//!
//! ```text
//!   client ──TCP──► server::accept ──permit──► admission      (baseline / burst tiers)
//!                      │ accept
//!                      ▼
//!                server::gate ── PROXY header (trusted balancers), allow/deny, per-address cap
//!                      ▼
//!                server::connection ── ConnIo (header, idle, write timeouts) ── hyper h1 / h2c
//!                      │ one call per request
//!                      ▼
//!                proxy::Proxy::handle ── overload, rate limit, sanitize (framing, Host, limits)
//!                      │ snapshot.load() ─► route (+ access) ─► pool.pick() ─► backend
//!                      │ headers: hop-by-hop out, X-Forwarded-* in; body: ClientBody bounds
//!                      ▼
//!                upstream::Upstream::send ──pooled keep-alive──► backend
//!                      │ response head
//!                      ▼
//!                body::ResponseBody (streams; records the Exchange at its end) ──► client
//! ```
//!
//! Module map: [`config`] (file -> validated [`config::Config`]), [`app`] (start, reload,
//! shutdown), [`server`] (listeners, accept loop, gate, connections), [`admission`]
//! (connection tiers), [`access`] (allow/deny lists), [`rate_limit`] (per-client budgets,
//! local or Redis), [`overload`] (memory pressure), [`proxy`] (one request), [`route`],
//! [`snapshot`] (the one atomically swapped view), [`pool`], [`backend`], [`balance`],
//! [`upstream`] (pooled clients), [`body`], [`metrics`], [`access_log`], [`admin`], [`demo`].

pub mod access;
pub mod access_log;
pub mod admin;
pub mod admission;
pub mod app;
pub mod backend;
pub mod balance;
pub mod body;
pub mod clock;
pub mod config;
pub mod control;
pub mod conn;
pub mod demo;
pub mod discovery;
pub mod health;
pub mod log_limit;
pub mod metrics;
pub mod overload;
pub mod pool;
pub mod proxy;
pub mod rate_limit;
pub mod route;
pub mod server;
pub mod snapshot;
pub mod systemd;
pub mod tls;
pub mod upstream;

pub use app::App;
pub use config::Config;
