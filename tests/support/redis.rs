//! A real `redis-server` (Debian's package) for a test: on a unix socket in a temporary
//! directory (and, for the data-tier tests, a loopback TCP port), nothing persisted, killed
//! when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running Redis.
pub struct Redis {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Redis {
    /// Starts one and waits until it answers PING.
    pub fn start() -> Redis {
        Self::spawn(0, &[]).expect("redis-server starts")
    }

    /// Starts one that also listens on a free loopback TCP port, with `args` added (such
    /// as `--replicaof 127.0.0.1 PORT`).
    pub fn start_tcp(args: &[String]) -> Redis {
        Self::on_free_port(|port| {
            let mut all = vec!["--port".to_string(), port.to_string()];
            all.extend_from_slice(args);
            all
        })
    }

    /// Starts one whose loopback port speaks only TLS, with `cert` (also its client
    /// certificate when it replicates over TLS) and `ca` trusted, clients not asked for
    /// certificates; `args` as for [`Redis::start_tcp`].
    pub fn start_tls(cert: &super::pki::Leaf, ca: &Path, args: &[String]) -> Redis {
        let path = |p: &Path| p.display().to_string();
        Self::on_free_port(|port| {
            let mut all: Vec<String> = ["--port", "0", "--tls-port", &port.to_string()]
                .map(String::from)
                .into();
            all.extend(["--tls-cert-file".into(), path(&cert.cert)]);
            all.extend(["--tls-key-file".into(), path(&cert.key)]);
            all.extend(["--tls-ca-cert-file".into(), path(ca)]);
            all.extend(["--tls-auth-clients", "no", "--tls-replication", "yes"].map(String::from));
            all.extend_from_slice(args);
            all
        })
    }

    /// Starts one with `args(port)`, `port` a free loopback port it listens on. The port is
    /// found by binding port 0 and letting it go; another process may take it in between,
    /// so a start that fails is tried again.
    fn on_free_port(args: impl Fn(u16) -> Vec<String>) -> Redis {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            if let Some(redis) = Self::spawn(port, &args(port)) {
                return redis;
            }
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// Runs `redis-server` with `args` (which set its TCP ports; none: `--port 0`), and
    /// notes `port` as its address.
    fn spawn(port: u16, args: &[String]) -> Option<Redis> {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("redis.sock");
        let child = Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let mut redis = Redis { child, dir, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !redis.ping() {
            // It exits at once when the port was taken.
            if redis.child.try_wait().ok().flatten().is_some()
                || std::time::Instant::now() > deadline
            {
                redis.stop();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(redis)
    }

    /// Its loopback TCP address (for a Redis from [`Redis::start_tcp`] or
    /// [`Redis::start_tls`]).
    pub fn address(&self) -> SocketAddr {
        assert_ne!(self.port, 0, "started without a TCP port");
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// The URL portero's `security.rate_limit.store` takes.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Whether it answers PING now.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::os::unix::net::UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Stops it now (the socket goes away with it).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}
