//! Real backends that are not hyper (Python `http.server`, Node `http`, uvicorn, gunicorn,
//! nginx) for the matrix of peers, all speaking one small protocol: `/healthz` answers 200 or,
//! once made sick, 503; everything else is counted and answered with the peer's name. The
//! counts let a test prove that nothing but health checks reaches an ejected backend.

use super::external::{External, free_port, peer_file, peers_python};
pub use super::status::state;
use super::{client, require_tool};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The health check every peer test runs with: short, so ejection is seen in well under a
/// second.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Failed checks in a row that eject a backend.
pub const FALL: u64 = 2;
/// Passed checks in a row that bring it back.
pub const RISE: u64 = 2;

/// The `[pool.app.health_check]` table of [`INTERVAL`], [`FALL`] and [`RISE`].
pub fn health_table() -> String {
    format!(
        "[pool.app.health_check]\npath = \"/healthz\"\ninterval = \"{}ms\"\n\
         timeout = \"1s\"\nrise = {RISE}\nfall = {FALL}\n",
        INTERVAL.as_millis()
    )
}

/// A portero config over `backends` (weight 1) with health checks on, and `extra` appended.
pub fn config(backends: &[SocketAddr], extra: &str) -> String {
    let weighted: Vec<(SocketAddr, u32)> = backends.iter().map(|a| (*a, 1)).collect();
    super::daemon::config_text(&weighted, &format!("{}{extra}", health_table()))
}

/// The server programs of the matrix.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// `tests/peers/http_server.py`: stdlib `http.server`, routes on the raw target.
    PythonHttpServer,
    /// `tests/peers/node_server.js`: Node's `http` module.
    Node,
    /// `tests/peers/asgi_app.py` under uvicorn.
    Uvicorn,
    /// `tests/peers/wsgi_app.py` under gunicorn (gthread worker).
    Gunicorn,
    /// nginx with a generated config; sick while a file exists.
    Nginx,
}

/// What a peer has seen.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Requests other than health checks and control.
    pub requests: u64,
    /// Health checks that reached `/healthz`.
    pub health: u64,
    /// Health checks answered 503 (or 200 "degraded").
    pub health_failed: u64,
    /// Requests whose target was not origin-form (did not start with `/`).
    pub absolute: u64,
    /// The last counted request's target.
    pub last_target: String,
    /// The last counted request's Host header.
    pub last_host: String,
    /// The last health check's Host header.
    pub health_host: String,
}

/// A running backend peer; stopped when dropped.
pub struct Peer {
    /// Its name (the body and `x-backend` of its answers).
    pub name: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The nginx directory (config, logs, the `sick` flag); `None` for the scripted peers,
    /// which take `/control/*` requests instead.
    dir: Option<tempfile::TempDir>,
    process: External,
}

impl Peer {
    /// Starts a `kind` peer named `name`; `None` (a loud skip, a failure under CI) when its
    /// program is missing.
    pub fn spawn(kind: Kind, name: &str) -> Option<Peer> {
        match kind {
            Kind::PythonHttpServer => {
                let mut command = Command::new(peers_python()?);
                command.arg(peer_file("http_server.py")).arg(name);
                Some(Self::scripted(command, name))
            }
            Kind::Node => {
                if !require_tool("node") {
                    return None;
                }
                let mut command = Command::new("node");
                command.arg(peer_file("node_server.js")).arg(name);
                Some(Self::scripted(command, name))
            }
            Kind::Uvicorn => {
                let mut command = Command::new(peers_python()?);
                command.arg(peer_file("asgi_app.py")).arg(name);
                Some(Self::scripted(command, name))
            }
            Kind::Gunicorn => Some(Self::gunicorn(peers_python()?, name)),
            Kind::Nginx => require_tool("nginx").then(|| Self::nginx(name)),
        }
    }

    fn scripted(command: Command, name: &str) -> Peer {
        let (process, addr) = External::spawn_listening(command);
        Peer {
            name: name.to_string(),
            addr,
            dir: None,
            process,
        }
    }

    /// gunicorn cannot say which port it bound, so it gets one from [`free_port`].
    fn gunicorn(python: PathBuf, name: &str) -> Peer {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut command = Command::new(python);
        command
            .args(["-m", "gunicorn", "--bind", &addr.to_string()])
            .args(["--workers", "1", "--threads", "8", "--log-level", "warning"])
            .arg("wsgi_app:app")
            .current_dir(peer_file(""))
            .env("PEER_NAME", name);
        let process = External::spawn(command);
        wait_accepting(addr, &process);
        Peer {
            name: name.to_string(),
            addr,
            dir: None,
            process,
        }
    }

    fn nginx(name: &str) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        std::fs::write(dir.path().join("nginx.conf"), nginx_conf(&dir, addr, name)).unwrap();
        let mut command = Command::new("nginx");
        command
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"));
        let process = External::spawn(command);
        wait_accepting(addr, &process);
        Peer {
            name: name.to_string(),
            addr,
            dir: Some(dir),
            process,
        }
    }

    /// Makes `/healthz` answer 503 (`true`) or 200 (`false`).
    pub async fn set_sick(&self, sick: bool) {
        match &self.dir {
            Some(dir) if sick => std::fs::write(dir.path().join("sick"), "").unwrap(),
            Some(dir) => std::fs::remove_file(dir.path().join("sick")).unwrap(),
            None => {
                let path = if sick {
                    "/control/sick"
                } else {
                    "/control/well"
                };
                assert_eq!(client::get(self.addr, path).await.status, 200);
            }
        }
    }

    /// Makes `/healthz` answer 200 with the body "degraded" (Python `http.server` only), until
    /// [`set_sick(false)`](Self::set_sick).
    pub async fn set_degraded(&self) {
        assert!(
            self.dir.is_none(),
            "only the scripted peers can be degraded"
        );
        assert_eq!(
            client::get(self.addr, "/control/degraded").await.status,
            200
        );
    }

    /// What the peer has seen so far (asked directly, never through portero).
    pub async fn seen(&self) -> Seen {
        let Some(dir) = &self.dir else {
            let body = client::get(self.addr, "/control/count").await.body;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            return Seen {
                requests: v["requests"].as_u64().unwrap(),
                health: v["health"].as_u64().unwrap(),
                health_failed: v["health_failed"].as_u64().unwrap(),
                absolute: v["absolute"].as_u64().unwrap(),
                last_target: text("last_target"),
                last_host: text("last_host"),
                health_host: text("health_host"),
            };
        };
        // nginx writes one access-log line per request, unbuffered: `STATUS TARGET HOST`.
        let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        let (requests, health) = (read("requests.log"), read("health.log"));
        let last: Vec<&str> = requests.lines().last().unwrap_or("").split(' ').collect();
        let health_host = health.lines().last().unwrap_or("").split(' ').nth(2);
        Seen {
            requests: requests.lines().count() as u64,
            health: health.lines().count() as u64,
            health_failed: health.lines().filter(|l| l.starts_with("503 ")).count() as u64,
            absolute: requests
                .lines()
                .filter(|l| !l.split(' ').nth(1).unwrap_or("").starts_with('/'))
                .count() as u64,
            last_target: last.get(1).unwrap_or(&"").to_string(),
            last_host: last.get(2).unwrap_or(&"").to_string(),
            health_host: health_host.unwrap_or("").to_string(),
        }
    }

    /// Polls [`seen`](Self::seen) until `condition` holds (5 s at most; nginx logs a request
    /// only after answering it) and returns what it saw then.
    pub async fn wait_seen(&self, condition: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let seen = self.seen().await;
            if condition(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "{}: still {seen:?}", self.name);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The peer's own output, for assertion messages.
    pub fn output(&self) -> String {
        self.process.output()
    }
}

/// Waits (30 s at most) until `addr` accepts connections, failing early if `process` exits.
fn wait_accepting(addr: SocketAddr, process: &External) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} never accepted: {}",
            process.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A foreground, single-process nginx with every path inside `dir`.
fn nginx_conf(dir: &tempfile::TempDir, addr: SocketAddr, name: &str) -> String {
    let d = dir.path().display();
    let temp: String = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|t| format!("{t}_temp_path {d}/{t};\n"))
        .collect();
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n{temp}access_log off;\nlog_format peer '$status $request_uri $http_host';\n\
         keepalive_requests 100000;\ndefault_type text/plain;\n\
         server {{\nlisten {addr};\n\
         location = /healthz {{\naccess_log {d}/health.log peer;\n\
         if (-f {d}/sick) {{ return 503 \"sick\"; }}\nreturn 200 \"ok\";\n}}\n\
         location / {{\naccess_log {d}/requests.log peer;\n\
         add_header x-backend {name} always;\nreturn 200 \"{name}\";\n}}\n}}\n}}\n"
    )
}

/// Polls `/status` every 10 ms until `backend` is `wanted`; how long that took, or `None`
/// after `timeout`.
pub async fn time_to_state(
    app: &portero::App,
    backend: SocketAddr,
    wanted: &str,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while state(app, backend).await != wanted {
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(start.elapsed())
}

/// Waits until portero's health checks have reached `peer`'s `/healthz` at least `RISE`
/// times; fails at once if one arrived with a target that is not origin-form.
pub async fn wait_probed(peer: &Peer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = peer.seen().await;
        assert_eq!(
            seen.absolute, 0,
            "{} got a request whose target is not origin-form (`{}`): a proxy must send \
             `GET /path HTTP/1.1` to a backend, health probes included",
            peer.name, seen.last_target
        );
        if seen.health >= RISE {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "portero's health checks never reached {}'s /healthz in 10 s: {seen:?}",
            peer.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
