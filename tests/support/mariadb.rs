//! A real MariaDB server (Debian's `mariadb-server`) for a test: a fresh data directory made
//! by `mariadb-install-db`, the server on a free loopback port with its binary log on (so it
//! can be a primary), nothing shared with the machine's own; killed when dropped. Statements
//! are run as root over its unix socket with the `mariadb` client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running MariaDB.
pub struct Mariadb {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

/// `--user=root` when the tests run as root (CI does): mariadbd refuses root otherwise.
fn as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"))
}

impl Mariadb {
    /// Starts one with `server_id` on a free port; waits until it takes statements.
    pub fn start(server_id: u32) -> Mariadb {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db"])
            .arg(format!("--datadir={}", data.display()));
        if as_root() {
            install.arg("--user=root");
        }
        let installed = install.output().expect("mariadb-install-db runs");
        assert!(
            installed.status.success(),
            "mariadb-install-db: {}",
            String::from_utf8_lossy(&installed.stderr)
        );
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .unwrap();
            if let Some(server) = Self::spawn(&dir, port, server_id) {
                return Mariadb {
                    child: server,
                    dir,
                    port,
                };
            }
        }
        panic!("mariadbd did not start on a free port in 5 tries");
    }

    fn spawn(dir: &tempfile::TempDir, port: u16, server_id: u32) -> Option<Child> {
        let at = |name: &str| dir.path().join(name);
        let mut command = Command::new("mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", at("data").display()))
            .arg(format!("--socket={}", at("mysqld.sock").display()))
            .arg(format!("--pid-file={}", at("mysqld.pid").display()))
            .arg(format!("--log-error={}", at("error.log").display()))
            .arg(format!("--log-bin={}", at("data/binlog").display()))
            .arg(format!("--port={port}"))
            .arg(format!("--server-id={server_id}"))
            .args(["--bind-address=127.0.0.1", "--skip-name-resolve"])
            // A replica's binlog holds what it applied, so it can serve as the next primary.
            .arg("--log-slave-updates")
            .args(["--innodb-buffer-pool-size=16M", "--max-connections=200"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if as_root() {
            command.arg("--user=root");
        }
        let mut child = command.spawn().expect("mariadbd runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if Self::client(&at("mysqld.sock"), "SELECT 1").is_ok() {
                return Some(child);
            }
            // It exits at once when the port was taken.
            if child.try_wait().ok().flatten().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(socket: &std::path::Path, statements: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .arg("--no-defaults")
            .arg(format!("--socket={}", socket.display()))
            .args(["-u", "root", "-N", "-B", "-e", statements])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }

    /// Runs `statements` as root; their output, tab-separated, without column names.
    pub fn sql(&self, statements: &str) -> String {
        Self::client(&self.socket(), statements)
            .unwrap_or_else(|e| panic!("mariadb on port {}: {statements}: {e}", self.port))
    }

    /// Its socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("mysqld.sock")
    }

    /// Its loopback TCP address.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Stops it now, as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
    }
}
