//! portero: a Layer-7 (HTTP/1.1 and HTTP/2) load balancer daemon.
//!
//! A request, top to bottom:
//!
//! ```text
//!   client ──TCP──► server::run ──permit──► admission        (baseline / burst tiers)
//!                      │ accept
//!                      ▼
//!                server::serve ── ConnIo (header + idle timeouts) ── hyper auto (h1 / h2c)
//!                      │ one call per request
//!                      ▼
//!                proxy::Proxy::handle ── snapshot.load() ─► route ─► pool.pick() ─► backend
//!                      │ headers: hop-by-hop out, X-Forwarded-* in
//!                      ▼
//!                upstream::Upstream::send ──pooled keep-alive──► backend
//!                      │ response head
//!                      ▼
//!                body::ResponseBody (streams; records the Exchange at its end) ──► client
//! ```
//!
//! Module map: [`config`] (file -> validated [`config::Config`]), [`app`] (start, reload,
//! shutdown), [`server`] (listeners, accept loop, connections), [`admission`] (connection
//! tiers), [`proxy`] (one request), [`route`], [`snapshot`] (the one atomically swapped view),
//! [`pool`], [`backend`], [`balance`], [`upstream`] (pooled clients), [`body`], [`metrics`],
//! [`access_log`], [`admin`], [`demo`].

pub mod access;
pub mod access_log;
pub mod admin;
pub mod admission;
pub mod app;
pub mod backend;
pub mod balance;
pub mod body;
pub mod config;
pub mod conn;
pub mod demo;
pub mod discovery;
pub mod health;
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
