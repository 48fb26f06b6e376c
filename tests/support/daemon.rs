//! Starting portero for a test: in this process (fast, for most tests) or as a child process
//! (for signals, exit codes and memory measurements). Always on 127.0.0.1 with port 0.

use portero::{App, Config};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A config with one listener (`http`) and the admin port on 127.0.0.1:0, access log off,
/// and one pool `app` over `backends` (address, weight); `extra` is appended verbatim.
pub fn config_text(backends: &[(SocketAddr, u32)], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|(a, w)| format!("{{ address = \"{a}\", weight = {w} }}"))
        .collect();
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = \"off\"\n\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [pool.app]\nbackends = [{}]\n\n{extra}\n",
        list.join(", ")
    )
}

/// Starts portero in this process.
pub async fn start(text: &str) -> Arc<App> {
    let config = Config::from_toml(text, "test config").unwrap_or_else(|e| panic!("{e}"));
    App::start(config, None).await.unwrap()
}

/// The `http` listener's address.
pub fn traffic(app: &App) -> SocketAddr {
    app.listener_addr("http").unwrap()
}

/// portero as a child process; killed when dropped.
pub struct Process {
    /// The child.
    pub child: Child,
    /// The `http` listener's bound address.
    pub traffic: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    /// The config file (kept alive with the process).
    pub config: tempfile::NamedTempFile,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Process {
    /// Writes `text` to a file and runs `portero run --config FILE` with JSON logs.
    pub fn spawn(text: &str) -> Process {
        Self::spawn_with_fd_limit(text, None)
    }

    /// Like [`spawn`](Self::spawn), with the open-files limit (soft and hard) set to `fds` first.
    pub fn spawn_with_fd_limit(text: &str, fds: Option<u32>) -> Process {
        let limit = fds.map_or(String::new(), |n| format!("ulimit -n {n} && "));
        let launcher = [
            "sh".to_string(),
            "-c".to_string(),
            format!("{limit}exec \"$0\" run --config \"$1\""),
        ];
        Self::spawn_via(text, &launcher, &[])
    }

    /// Runs `launcher... BINARY CONFIG_FILE` with `envs`; the launcher must end by exec'ing
    /// `BINARY run --config CONFIG_FILE` (a shell setting limits, a socket-activation shim).
    pub fn spawn_via(text: &str, launcher: &[String], envs: &[(&str, String)]) -> Process {
        Self::spawn_full(text, launcher, envs, Stdio::null())
    }

    /// Runs `portero run` with its standard output (where `access_log = "stdout"` goes) a
    /// pipe that nobody reads: kept open in `child.stdout`, never drained.
    pub fn spawn_with_unread_stdout(text: &str) -> Process {
        let launcher = [
            "sh".into(),
            "-c".into(),
            "exec \"$0\" run --config \"$1\"".into(),
        ];
        Self::spawn_full(text, &launcher, &[], Stdio::piped())
    }

    fn spawn_full(
        text: &str,
        launcher: &[String],
        envs: &[(&str, String)],
        stdout: Stdio,
    ) -> Process {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), with_json_log(text)).unwrap();
        let mut child = Command::new(&launcher[0])
            .args(&launcher[1..])
            .arg(binary())
            .arg(config.path())
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let (mut traffic, mut admin) = (None, None);
        super::wait_until_blocking(
            "portero to log its addresses",
            Duration::from_secs(20),
            || {
                for line in log.lock().unwrap().iter() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                        continue;
                    };
                    let address = v["address"].as_str().and_then(|a| a.parse().ok());
                    match v["message"].as_str() {
                        Some("listening") if v["listener"] == "http" => traffic = address,
                        Some("admin listening") => admin = address,
                        _ => {}
                    }
                }
                traffic.is_some() && admin.is_some()
            },
        );
        Process {
            child,
            traffic: traffic.unwrap(),
            admin: admin.unwrap(),
            config,
            log,
        }
    }

    /// The bound address of the listener `name`, from its "listening" log line.
    pub fn listener(&self, name: &str) -> Option<SocketAddr> {
        self.log.lock().unwrap().iter().find_map(|line| {
            let v = serde_json::from_str::<serde_json::Value>(line).ok()?;
            (v["message"] == "listening" && v["listener"] == name)
                .then(|| v["address"].as_str()?.parse().ok())
                .flatten()
        })
    }

    /// Replaces the config file (a reload is up to the caller), keeping the JSON log format
    /// the process started with (a `[log]` change is refused by a reload).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config.path(), with_json_log(text)).unwrap();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (up to `timeout`) and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "portero did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether any log line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` with JSON log lines, which the process helpers read.
fn with_json_log(text: &str) -> String {
    let text = format!("{text}\n");
    if text.contains("[log]") {
        text.replace("[log]\n", "[log]\nformat = \"json\"\n")
    } else {
        format!("{text}\n[log]\nformat = \"json\"\n")
    }
}

/// The portero binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portero"))
}

/// Starts portero in this process from a config file, so reloads re-read it.
pub async fn start_with_file(text: &str) -> (Arc<App>, tempfile::NamedTempFile) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    let config = Config::from_file(file.path()).unwrap_or_else(|e| panic!("{e}"));
    let app = App::start(config, Some(file.path().to_path_buf()))
        .await
        .unwrap();
    (app, file)
}
