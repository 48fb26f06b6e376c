//! The `portero` command line. The only place that uses `anyhow` and prints to the terminal.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use portero::config::LogFormat;
use portero::{App, Config};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc's malloc: every request allocates and frees header maps, futures
/// and buffers, and jemalloc's thread caches do that in fewer instructions (4.5% fewer per request,
/// measured with benches/instructions.py) while an idle connection costs no more resident memory
/// (3,152 bytes against 3,404; BENCHMARKS.md). mimalloc was not taken: MEASUREMENTS.md shows it
/// doubling hyper's idle memory.
///
/// One option is changed from jemalloc's defaults, in `.cargo/config.toml`:
/// `tcache_gc_incr_bytes` from 64 KiB to 4 MiB. A request allocates about 10 KiB (its boxed
/// future and two read buffers, mostly), so the thread cache's garbage collection, which
/// hands cached blocks back to the arena and takes them again, ran every six requests, at
/// 889 instructions a request (77 now, BENCHMARKS.md); now every few hundred. A thread's
/// cache is bounded by its slots whatever the interval, and it holds none of a connection's
/// memory.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "portero",
    version,
    about = "A Layer-7 HTTP load balancer daemon"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// Config file [default: $PORTERO_CONFIG, then /etc/portero/portero.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Parse and validate a config file, print a summary; exit non-zero on any problem.
    Check {
        /// Config file [default: $PORTERO_CONFIG, then /etc/portero/portero.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Three built-in backends behind a load balancer on 127.0.0.1:8080 (admin :9901).
    Demo {
        /// Traffic address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
    /// Exit 0 when GET /readyz on the admin address answers 200 (for container HEALTHCHECK).
    Healthcheck {
        /// Admin address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: SocketAddr,
    },
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("PORTERO_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/portero/portero.toml"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => return check(&config_path(config)),
        Command::Run { config } => run(config_path(config)),
        Command::Demo { listen, admin } => demo(listen, admin),
        Command::Healthcheck { admin } => return healthcheck(admin),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("portero: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match Config::from_file(path) {
        Ok(config) => {
            print!("{}", summary(path, &config));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn summary(path: &std::path::Path, config: &Config) -> String {
    let mut out = format!("{}: ok\n", path.display());
    let a = &config.admission;
    out += &format!(
        "admission: baseline {} / burst {} connections, at limit: {:?}\n",
        a.baseline_connections, a.burst_connections, a.at_limit
    );
    for l in &config.listeners {
        let proxy = match &l.proxy_protocol {
            Some(trusted) => format!(" (PROXY protocol from {} CIDRs)", trusted.len()),
            None => String::new(),
        };
        let mode = match &l.mode {
            portero::config::ListenerMode::Http => String::new(),
            portero::config::ListenerMode::Tcp { pool } => format!(" tcp -> pool {pool}"),
            portero::config::ListenerMode::TlsPassthrough { sni, default } => format!(
                " tls-passthrough, {} sni rule(s) -> pool {}",
                sni.len(),
                default.as_deref().unwrap_or("none")
            ),
        };
        out += &format!("listener {}: {}{mode}{proxy}\n", l.name, l.address);
    }
    out += &format!("admin: {}\n", config.admin.address);
    for r in &config.routes {
        let guarded = if r.access.is_open() {
            ""
        } else {
            " (allow/deny)"
        };
        out += &format!(
            "route {}{} -> pool {}{guarded}\n",
            r.host, r.path_prefix, r.pool
        );
    }
    let s = &config.security;
    out += &format!(
        "security: access lists {}, connections per address {}, rate limit {}\n",
        if s.access.is_open() { "open" } else { "set" },
        match s.max_connections_per_ip {
            0 => "unlimited".to_string(),
            n => n.to_string(),
        },
        match &s.rate_limit {
            None => "off".to_string(),
            Some(r) => format!(
                "{}/s burst {} ({})",
                r.requests_per_second,
                r.burst,
                // Not the URL: it may carry a password.
                match r.store {
                    portero::config::RateLimitStore::Local => "local",
                    portero::config::RateLimitStore::Redis(_) => "shared through Redis",
                }
            ),
        }
    );
    for (name, pool) in &config.pools {
        let backends: Vec<String> = pool
            .backends
            .iter()
            .map(|b| format!("{} (weight {})", b.address, b.weight))
            .collect();
        let speaks = match pool.serves {
            portero::config::Serves::Http => format!("{:?}", pool.protocol),
            portero::config::Serves::Tcp => "tcp".to_string(),
        };
        let check = match pool.health_check.as_ref().map(|c| &c.kind) {
            None => String::new(),
            Some(portero::config::CheckKind::Tcp) => ", checked by TCP connect".to_string(),
            Some(portero::config::CheckKind::Http(http)) => {
                format!(", checked by GET {}", http.path)
            }
            // Not the password: only whether one is set.
            Some(portero::config::CheckKind::Redis(store)) => format!(
                ", checked by redis for role {:?}{}",
                store.role,
                if store.password.is_some() {
                    " (with AUTH)"
                } else {
                    ""
                }
            ),
            Some(portero::config::CheckKind::Mysql(store)) => format!(
                ", checked by mysql as {} for role {:?}{}",
                store.user.as_deref().unwrap_or(""),
                store.role,
                if store.password.is_some() {
                    " (with a password)"
                } else {
                    ""
                }
            ),
        };
        out += &format!(
            "pool {name}: {:?}, {speaks}{check}, {}\n",
            pool.balance,
            backends.join(", ")
        );
    }
    out
}

fn init_logging(level: &str, format: LogFormat) {
    // RUST_LOG, when set, stands in for `log.level`; either way the wire libraries stay quiet
    // below debug unless named (see portero::logging).
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let filter = EnvFilter::try_new(portero::logging::directives(&level))
        .unwrap_or_else(|_| EnvFilter::new(portero::logging::directives("info")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        // Take a task from the shared queue every second scheduling tick. With a thousand
        // busy connections per worker, more tasks wake at once than the worker's local queue
        // holds (256), and the rest wait in the shared one. wrk -c1000 on one core
        // (benches/compare.py), p99 over runs of 8 s: every tick, the shared queue is never
        // empty under that load and the local queue is not served while it is not (tokio's
        // own tuning never goes below 2 for that reason): a batch of 128 tasks left there
        // waited seconds (p99 1-4 s, or 128 requests unanswered for 5 s, in about half the
        // runs). Every second tick: 133-152 ms in five runs of five. Every third: 206-243 ms;
        // tokio's tuning: 298-366 ms; every 31st: about 1 s.
        .global_queue_interval(2)
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn run(path: PathBuf) -> anyhow::Result<u8> {
    let config = Config::from_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(&config.log.level, config.log.format);
    // Before the runtime starts threads: taking them clears the LISTEN_* variables.
    let inherited =
        portero::systemd::inherited_listeners().context("taking the sockets passed by systemd")?;
    runtime()?.block_on(async {
        let app = App::start_with(config, Some(path), inherited).await?;
        let code = app.run_until_signalled().await?;
        Ok(code as u8)
    })
}

fn demo(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<u8> {
    init_logging("info", LogFormat::Text);
    runtime()?.block_on(async {
        let backends = portero::demo::start_backends(3).await?;
        let config =
            portero::demo::config(&backends, listen, admin).map_err(|e| anyhow::anyhow!("{e}"))?;
        let app = App::start(config, None).await?;
        let traffic = app.listener_addr("http").context("the demo listener")?;
        print!("{}", portero::demo::banner(traffic, app.admin_addr()));
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let code = app.run_until_signalled().await?;
        Ok(code as u8)
    })
}

fn healthcheck(admin: SocketAddr) -> ExitCode {
    let ready = runtime()
        .ok()
        .is_some_and(|rt| rt.block_on(portero::admin::probe_ready(admin)));
    if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
