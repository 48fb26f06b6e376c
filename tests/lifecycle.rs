//! The binary as an operator runs it: `check`, `demo`, and signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::daemon::{Process, binary, config_text};

/// `portero check --config PATH`.
fn check(path: impl AsRef<std::ffi::OsStr>) -> std::process::Output {
    Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_the_example_config() {
    let out = check("config/portero.toml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("config/portero.toml: ok"), "{stdout}");
    assert!(stdout.contains("pool api:"), "{stdout}");
}

#[test]
fn check_accepts_the_acme_example_and_names_what_is_wrong_in_a_broken_acme_section() {
    let out = check("config/acme.toml");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("config/acme.toml: ok"), "{stdout}");

    let broken = std::fs::read_to_string("config/acme.toml")
        .unwrap()
        .replace("\"www.example.com\"", "\"*.example.com\"")
        .replace("https://acme-staging", "http://acme-staging");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), broken).unwrap();
    let out = check(file.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`*.example.com` is a wildcard"), "{stderr}");
    assert!(stderr.contains("must be an https:// URL"), "{stderr}");
}

#[test]
fn check_accepts_the_data_tier_example_with_its_check_password_set() {
    let check = |password: Option<&str>| {
        let mut command = Command::new(binary());
        command.args(["check", "--config", "config/data-tier.toml"]);
        for name in ["REDIS_CHECK_PASSWORD", "MYSQL_CHECK_PASSWORD"] {
            match password {
                Some(password) => command.env(name, password),
                None => command.env_remove(name),
            };
        }
        command.output().unwrap()
    };
    let out = check(Some("s3cret"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("config/data-tier.toml: ok"), "{stdout}");
    assert!(
        !stdout.contains("s3cret"),
        "the password is never printed: {stdout}"
    );
    let out = check(None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDIS_CHECK_PASSWORD"), "{stderr}");
}

#[test]
fn check_names_the_line_and_problem_of_a_broken_file_and_exits_non_zero() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "[[listener]]\naddress = \"127.0.0.1:8080\"\n\n[timeouts]\nidle = \"soon\"\n\n[pool.api]\nbackends = [\"10.0.0.1:80\"]\nbalanse = \"random\"\n",
    )
    .unwrap();
    let out = check(file.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = file.path().display().to_string();
    assert!(
        stderr.contains(&format!("{path}:5:8: invalid duration `soon`")),
        "{stderr}"
    );
    assert!(stderr.contains("unknown field `balanse`"), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing printed as a summary");
}

#[test]
fn check_reads_portero_config_from_the_environment() {
    let out = Command::new(binary())
        .arg("check")
        .env("PORTERO_CONFIG", "config/portero.toml")
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(binary())
        .arg("check")
        .env("PORTERO_CONFIG", "/nonexistent/portero.toml")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the file"));
}

#[test]
fn version_is_printed() {
    let out = Command::new(binary()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("portero {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_alternates_backends_and_stops_on_ctrl_c() {
    let mut child = Command::new(binary())
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let traffic = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("the demo printed its banner");
        if let Some(url) = line.trim().strip_prefix("traffic") {
            break url
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse::<std::net::SocketAddr>()
                .unwrap();
        }
    };
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let reply = support::client::get(traffic, "/").await;
        assert_eq!(reply.status, 200);
        assert!(
            reply.body.starts_with("hello from demo backend"),
            "{}",
            reply.body
        );
        bodies.push(reply.body);
    }
    assert_ne!(bodies[0], bodies[1]);
    assert_ne!(bodies[1], bodies[2]);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// A backend that takes 1.5 s per request, behind a daemon that drains for up to 20 s and
/// stops accepting at once when told to stop.
async fn slow_backend_behind_a_draining_daemon() -> (TestBackend, Process) {
    let slow = TestBackend::start("slow", Behavior::Delay(Duration::from_millis(1500))).await;
    let text = config_text(
        &[(slow.addr, 1)],
        "[timeouts]\nshutdown_grace = \"0s\"\ndrain = \"20s\"\n",
    );
    (slow, Process::spawn(&text))
}

/// Sends SIGTERM once the request in flight has reached the backend.
async fn term_once_the_backend_has_it(slow: &TestBackend, process: &Process) {
    support::wait_until(
        "the request to reach the backend",
        Duration::from_secs(10),
        || slow.requests() == 1,
    )
    .await;
    process.signal("TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    let (slow, mut process) = slow_backend_behind_a_draining_daemon().await;
    let traffic = process.traffic;
    let in_flight = tokio::spawn(async move { support::client::get(traffic, "/slow").await });
    term_once_the_backend_has_it(&slow, &process).await;
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "the in-flight request finished");
    assert_eq!(reply.body, "slow");
    let code = tokio::task::spawn_blocking(move || {
        let code = process.wait_exit(Duration::from_secs(20));
        (code, process)
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0));
    assert!(code.1.logged("stopped"));
    assert!(
        tokio::net::TcpStream::connect(traffic).await.is_err(),
        "the listener is closed"
    );
}

/// The drain reaches a keep-alive connection busy inside hyper (not parked): its response in
/// flight says `Connection: close` and the connection closes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_a_busy_keep_alive_connection_after_its_response() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (slow, mut process) = slow_backend_behind_a_draining_daemon().await;
    let mut stream = tokio::net::TcpStream::connect(process.traffic)
        .await
        .unwrap();
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    term_once_the_backend_has_it(&slow, &process).await;
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut reply))
        .await
        .expect("portero closes the connection after the response")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply).to_ascii_lowercase();
    assert!(reply.starts_with("http/1.1 200"), "{reply}");
    assert!(reply.contains("\r\nconnection: close\r\n"), "{reply}");
    assert!(reply.ends_with("slow"), "{reply}");
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once() {
    let hung = TestBackend::start("hung", Behavior::Hang).await;
    let text = config_text(
        &[(hung.addr, 1)],
        "[timeouts]\nshutdown_grace = \"0s\"\ndrain = \"60s\"\n",
    );
    let mut process = Process::spawn(&text);
    let traffic = process.traffic;
    let _in_flight = tokio::spawn(async move {
        support::client::raw(
            traffic,
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(60),
        )
        .await
    });
    support::wait_until(
        "the request to reach the backend",
        Duration::from_secs(10),
        || hung.requests() == 1,
    )
    .await;
    process.signal("TERM");
    support::wait_until("portero to start draining", Duration::from_secs(10), || {
        process.logged("waiting for in-flight requests")
    })
    .await;
    process.signal("INT");
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(code, Some(1), "stopped at once, not after the 60 s drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_backs_off_and_recovers() {
    // 64 descriptors in all: admission keeps a reserve, but every client below has a request
    // in flight to a backend that never answers, so upstream sockets exhaust the rest.
    let hung = TestBackend::start("hung", Behavior::Hang).await;
    let ok = TestBackend::named("ok").await;
    let text = config_text(
        &[(hung.addr, 1)],
        "[timeouts]\nupstream_response = \"60s\"\n",
    );
    let mut process = Process::spawn_with_fd_limit(&text, Some(64));
    let mut held = Vec::new();
    for sent in 1..=60 {
        if process.logged("accept failed; backing off") {
            break;
        }
        let mut stream = tokio::net::TcpStream::connect(process.traffic)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        held.push(stream);
        // One client at a time: its upstream socket is open before the next one is accepted,
        // so descriptors run out at an accept. Sent all at once, the accepts could reach the
        // admission ceiling first and the upstream connects take the EMFILE instead (about a
        // third of runs). A request that got no upstream socket is not waited for long.
        let until = Instant::now() + Duration::from_secs(2);
        while hung.requests() < sent
            && !process.logged("accept failed; backing off")
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    support::wait_until("descriptors to run out", Duration::from_secs(10), || {
        process.logged("accept failed; backing off")
    })
    .await;
    // Swap the hung backend for a healthy one and free every descriptor.
    std::fs::write(
        process.config.path(),
        config_text(&[(ok.addr, 1)], "").replace("[log]\n", "[log]\nformat = \"json\"\n"),
    )
    .unwrap();
    drop(held);
    // Reading the new file needs a descriptor too: an operator would retry, and so do we.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !process.logged("config reloaded") {
        assert!(Instant::now() < deadline, "the reload never went through");
        process.signal("HUP");
        let retry = Instant::now() + Duration::from_millis(500);
        while !process.logged("config reloaded") && Instant::now() < retry {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let mut served = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !served && Instant::now() < deadline {
        served = support::client::try_get(process.traffic, "/")
            .await
            .is_some_and(|r| r.status == 200 && r.body == "ok");
    }
    assert!(served, "portero serves again once descriptors are free");
    assert_eq!(process.child.try_wait().unwrap(), None, "still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_writes_one_json_access_log_line() {
    let backend = TestBackend::named("a").await;
    let log = tempfile::NamedTempFile::new().unwrap();
    let text = config_text(
        &[(backend.addr, 1)],
        "[timeouts]\nshutdown_grace = \"0s\"\n",
    )
    .replace(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"", log.path().display()),
    );
    let mut process = Process::spawn(&text);
    for i in 0..20 {
        let reply = support::client::get(process.traffic, &format!("/item/{i}?q=1")).await;
        assert_eq!(reply.status, 200);
    }
    assert_eq!(
        support::client::get(process.traffic, "/missing")
            .await
            .status,
        200
    );
    process.signal("TERM");
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    let text = std::fs::read_to_string(log.path()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 21, "one line per request, flushed at shutdown");
    let first = &lines[0];
    for field in [
        "time",
        "client",
        "method",
        "host",
        "path",
        "status",
        "bytes_in",
        "bytes_out",
        "duration",
        "upstream_duration",
        "pool",
        "backend",
        "request_id",
    ] {
        assert!(!first[field].is_null(), "{field} missing in {first}");
    }
    assert_eq!(first["path"], "/item/0?q=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["bytes_out"], 1);
    assert_eq!(first["pool"], "app");
    assert_eq!(first["backend"], backend.addr.to_string());
    assert_eq!(first["request_id"].as_str().unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_membership_and_an_invalid_file_changes_nothing() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let process = Process::spawn(&config_text(&[(a.addr, 1)], ""));
    let rewrite = |text: String| process.write_config(&text);
    rewrite(config_text(&[(a.addr, 1), (b.addr, 1)], ""));
    process.signal("HUP");
    support::wait_until("the reload to be logged", Duration::from_secs(10), || {
        process.logged("config reloaded")
    })
    .await;
    for _ in 0..4 {
        support::client::get(process.traffic, "/").await;
    }
    assert_eq!(
        (a.requests(), b.requests()),
        (2, 2),
        "the added backend takes its share"
    );

    rewrite("[[listener]]\naddress = \"nonsense\"\n".to_string());
    process.signal("HUP");
    support::wait_until(
        "the rejection to be logged",
        Duration::from_secs(10),
        || process.logged("config reload rejected"),
    )
    .await;
    assert_eq!(
        support::client::get(process.traffic, "/").await.status,
        200,
        "the old config still serves"
    );
    let metrics = support::client::get(process.admin, "/metrics").await.body;
    assert!(
        metrics.contains("portero_config_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portero_config_reloads_total{result=\"success\"} 1"),
        "{metrics}"
    );
    let status: serde_json::Value =
        serde_json::from_str(&support::client::get(process.admin, "/status").await.body).unwrap();
    assert_eq!(status["generation"], 2);
}
