//! Real peers that are not hyper: external programs (nginx, node, Python servers and clients,
//! curl, h2load, JMeter) run as child processes for a test, killed when the test drops them.
//!
//! A peer that binds a port prints `listening PORT` as its first stdout line (the scripts in
//! `tests/peers/` do), so servers bind port 0 and tests never guess a free port. Programs that
//! cannot report their port (nginx) get one from [`free_port`].

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running external program; killed (whole process group) when dropped.
pub struct External {
    /// The child.
    pub child: Child,
    /// Every stderr line so far.
    pub stderr: Arc<Mutex<Vec<String>>>,
    /// Every stdout line after the first, so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
}

impl External {
    /// Starts `command` with stdout and stderr captured line by line.
    pub fn spawn(mut command: Command) -> External {
        use std::os::unix::process::CommandExt;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a server's workers (gunicorn, nginx) die with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let stderr = lines_of(child.stderr.take().expect("piped"));
        let stdout = lines_of(child.stdout.take().expect("piped"));
        External {
            child,
            stderr,
            stdout,
        }
    }

    /// Starts a peer script that prints `listening PORT` first, and waits (up to 30 s) for that
    /// line: the peer's address on 127.0.0.1.
    pub fn spawn_listening(command: Command) -> (External, SocketAddr) {
        let peer = External::spawn(command);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let port = peer.stdout.lock().unwrap().iter().find_map(|line| {
                line.strip_prefix("listening ")
                    .and_then(|p| p.trim().parse::<u16>().ok())
            });
            if let Some(port) = port {
                return (peer, SocketAddr::from(([127, 0, 0, 1], port)));
            }
            assert!(
                Instant::now() < deadline,
                "peer did not say `listening PORT` in 30 s; stderr: {:?}",
                peer.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the program to exit; its exit code (-1 if killed by a signal).
    pub fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the program wrote to stdout and stderr so far, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "stdout: {}\nstderr: {}",
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }
}

impl Drop for External {
    fn drop(&mut self) {
        // The group id is the child's pid (process_group(0)).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(stream: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// A port on 127.0.0.1 that was free a moment ago, for programs that cannot bind port 0 and
/// say which port they got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python of `target/peers-venv` (grpcio, h2, gunicorn, uvicorn), made by
/// `scripts/peers-venv`; `None` (a loud skip) when it is missing outside CI.
pub fn peers_python() -> Option<PathBuf> {
    let path = std::env::var_os("PORTERO_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers-venv/bin/python")
        });
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{} is required under CI=true; scripts/test makes it (scripts/peers-venv)",
        path.display()
    );
    eprintln!(
        "\n*** SKIPPED: {} is missing (run scripts/peers-venv) ***\n",
        path.display()
    );
    None
}

/// A file of `tests/peers/` (the peer scripts and the JMeter plan).
pub fn peer_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}
