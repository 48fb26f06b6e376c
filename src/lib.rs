//! portero: a Layer-7 (HTTP/1.1 and HTTP/2) load balancer daemon.
//!
//! A request, top to bottom; data flows down, and each answer flows back up the same way:
//!
//! ```text
//!   client ──TCP──► server::accept ──permit──► admission      (baseline / burst tiers)
//!                      │ accept
//!                      ▼
//!                server::gate ── PROXY header (trusted balancers), allow/deny, per-address cap
//!                      ▼
//!                server::session ──── ConnIo (header, idle, write timeouts)
//!                      │ HTTP/1: server::h1 (portero's engine over the h1 codec: head
//!                      │ parsed and framing checked in one pass, body fed as asked for);
//!                      │ HTTP/2: hyper. One call per request either way.
//!                      ▼
//!                proxy::Proxy::handle ── overload, rate limit, sanitize (framing, Host, limits)
//!                      │ snapshot.load() ─► route (+ access) ─► pool.pick() ─► member index
//!                      │ headers: hop-by-hop out, X-Forwarded-* in; body: ClientBody bounds
//!                      ▼
//!                upstream::PoolClients[index].send ──pooled keep-alive──► backend
//!                      │ plain HTTP/1.1: upstream::http1, portero's own connection over
//!                      │ the h1 codec (one writev out, the head parsed from the first
//!                      │ read); TLS and h2c backends: hyper-util's client
//!                      │ response head
//!                      ▼
//!                proxy::ResponseBody (streams; records the Exchange at its end) ──► client
//!                      (the server's request count rides in it as a proxy::Watch; a 101
//!                       goes back as a proxy::Tunnel response extension and the server
//!                       splices the two sockets; overload's proxy::CloseAfter likewise)
//! ```
//!
//! A `protocol = "tcp"` or `"tls-passthrough"` listener's connection leaves that path after
//! the gate: `server::tcp` picks its pool (by the ClientHello's server name on passthrough),
//! a backend with `pool.pick()`, connects (retrying another on a failed connect), and pumps
//! bytes both ways until either side is done. Role-aware checks (`health`, `kind = "redis"`
//! or `"mysql"`) decide which members serve.
//!
//! Modules by floor: each imports only from its own floor or below, and no two import each
//! other in a loop (`tests/architecture.rs` checks it against this list on every test run;
//! `farm-studio look` draws it).
//!
//! - **Control plane**: [`app`] (start, reload, membership, shutdown), [`admin`] (the admin
//!   listener), [`control`] (what may be asked of the daemon, what a change did, why one was
//!   refused: below both), [`systemd`] (notify, socket activation), [`demo`].
//! - **Server**: [`server`] (listeners, accept loop, gate, connections, tunnels, tcp
//!   sessions).
//! - **Request**: [`proxy`] (one request, its tries and its response body), [`snapshot`] (the
//!   one atomically swapped view: config, routes, pools and their clients), [`health`] (active
//!   checks: TCP, HTTP, and the role of a Redis or MySQL node), [`discovery`] (membership
//!   feeds), [`rate_limit`] (per-client budgets, local or Redis), [`overload`] (memory
//!   pressure), [`acme`] (certificates obtained and renewed over ACME).
//! - **Wire**: [`body`] (request bodies, pacing, trailers), [`upstream`] (pooled clients to
//!   backends, by member index), [`conn`] (a client connection as the rest sees it).
//! - **Ground**, no hyper and no sockets: [`config`] (file -> validated [`config::Config`]),
//!   [`pool`] (members, policies, the pick), [`balance`] (one file per algorithm, and the
//!   dispatch), [`backend`] (a backend's state, pure data), [`metrics`] (series by consumer,
//!   knowing no config), [`route`], [`access`] (allow/deny lists), [`admission`] (connection
//!   tiers), [`tls`] (certificates), [`h1`] (portero's HTTP/1.1 codec: heads and chunked
//!   framing, bytes to `http` types and back), [`access_log`], [`log_limit`], [`logging`]
//!   (what the daemon's own log shows), [`clock`].
//!
//! Names: `config/X.rs` reads the part of the file that module `X` runs on (`config/pool.rs`
//! makes a [`config::PoolConfig`] for [`pool`], `config/tls.rs` the TLS settings [`tls`]
//! loads). A client connection is [`conn::ConnInfo`] (what it is: all the proxy reads) inside
//! [`conn::ClientConn`] (what it is doing); `server::session` serves it, over
//! `server::conn_io` (its socket with portero's timeouts).

// Control plane.
pub mod admin;
pub mod app;
pub mod control;
pub mod demo;
pub mod systemd;

// Server.
pub mod server;

// Request.
pub mod acme;
pub mod discovery;
pub mod health;
pub mod overload;
pub mod proxy;
pub mod rate_limit;
pub mod snapshot;

// Wire.
pub mod body;
pub mod conn;
pub mod upstream;

// Ground.
pub mod access;
pub mod access_log;
pub mod admission;
pub mod backend;
pub mod balance;
pub mod clock;
pub mod config;
pub mod h1;
pub mod log_limit;
pub mod logging;
pub mod metrics;
pub mod pool;
pub mod route;
pub mod tls;

pub use app::App;
pub use config::Config;
