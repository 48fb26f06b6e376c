//! The daemon as systemd runs it: the notify protocol spoken for real over a datagram socket,
//! socket activation, the drain on SIGTERM, and `portero healthcheck`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client;
use support::daemon::{Process, binary, config_text};

/// A notify socket the test reads.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: String,
}

impl NotifySocket {
    fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        NotifySocket {
            socket,
            path: path.display().to_string(),
            _dir: dir,
        }
    }

    /// The next message containing `wanted`, skipping others; panics after 20 s.
    fn expect(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = vec![0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "no {wanted} message");
            let n = self
                .socket
                .recv(&mut buf)
                .expect("a notify message in time");
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            if message.contains(wanted) {
                return message;
            }
        }
    }
}

#[test]
fn the_notify_protocol_is_spoken_ready_reloading_watchdog_stopping() {
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let notify = NotifySocket::new();
    let checks =
        "[pool.app.health_check]\ninterval = \"100ms\"\n[timeouts]\nshutdown_grace = \"0s\"\n";
    let text = config_text(&[(backend.local_addr().unwrap(), 1)], checks);
    let launcher = ["sh", "-c", "exec \"$0\" run --config \"$1\""].map(String::from);
    let envs = [
        ("NOTIFY_SOCKET", notify.path.clone()),
        ("WATCHDOG_USEC", "300000".to_string()),
    ];
    let mut process = Process::spawn_via(&text, &launcher, &envs);

    let ready = notify.expect("READY=1");
    assert!(ready.contains("STATUS=0 connections open"), "{ready}");
    assert!(ready.contains("baseline 10000"), "{ready}");
    notify.expect("WATCHDOG=1");
    notify.expect("WATCHDOG=1");

    process.signal("HUP");
    let reloading = notify.expect("RELOADING=1");
    let usec: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC")
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert!(notify.expect("READY=1").contains("generation 2"));

    process.signal("TERM");
    notify.expect("STOPPING=1");
    assert_eq!(process.wait_exit(Duration::from_secs(20)), Some(0));
}

/// Binds 127.0.0.1:0, prints the port, and execs portero with the socket as fd 3, the way
/// systemd passes it.
const ACTIVATE: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http")
os.execve(sys.argv[1], [sys.argv[1], "run", "--config", sys.argv[2]], env)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_passed_by_systemd_serves_and_portero_binds_nothing_itself() {
    let backend = TestBackend::named("a").await;
    // The config names an address the test holds: binding it would fail the start.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = config_text(&[(backend.addr, 1)], "").replace(
        "address = \"127.0.0.1:0\"\n\n[pool.app]",
        &format!("address = \"{}\"\n\n[pool.app]", held.local_addr().unwrap()),
    );
    assert!(text.contains(&held.local_addr().unwrap().to_string()));
    let launcher = [
        "python3".to_string(),
        "-c".to_string(),
        ACTIVATE.to_string(),
    ];
    let process = Process::spawn_via(&text, &launcher, &[]);
    assert!(process.logged("using the socket passed by systemd"));
    assert_ne!(process.traffic, held.local_addr().unwrap());
    let reply = client::get(process.traffic, "/").await;
    assert_eq!((reply.status.as_u16(), reply.body.as_str()), (200, "a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_keeps_accepting_for_the_grace_then_drains_and_exits_zero() {
    let slow = TestBackend::start("slow", Behavior::Delay(Duration::from_millis(2500))).await;
    let text = config_text(
        &[(slow.addr, 1)],
        "[timeouts]\nshutdown_grace = \"1s\"\ndrain = \"20s\"\n",
    );
    let mut process = Process::spawn(&text);
    let (traffic, admin) = (process.traffic, process.admin);
    assert_eq!(client::get(admin, "/readyz").await.status, 200);
    let in_flight = tokio::spawn(async move { client::get(traffic, "/slow").await });
    support::wait_until(
        "the slow request to reach the backend",
        Duration::from_secs(10),
        || slow.requests() == 1,
    )
    .await;

    let sent = Instant::now();
    process.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client::try_get(admin, "/readyz")
        .await
        .map(|r| r.status.as_u16())
        != Some(503)
    {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
    }
    // Within the grace, new connections are still served.
    if sent.elapsed() < Duration::from_millis(700) {
        let during = tokio::net::TcpStream::connect(traffic).await;
        assert!(during.is_ok(), "refused during the grace");
    }
    let reply = in_flight.await.unwrap();
    // Printed whole: a 503 here was seen once in CI (0.56 s into the test, before the grace
    // ended), not reproduced since; its body and headers say which refusal it was.
    assert_eq!(
        reply.status,
        200,
        "the in-flight request finished ({:?} after the signal): {reply:?}",
        sent.elapsed()
    );
    assert!(sent.elapsed() >= Duration::from_secs(1));
    assert!(
        tokio::net::TcpStream::connect(traffic).await.is_err(),
        "refused after the grace"
    );
    let code = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portero_healthcheck_follows_readyz() {
    let backend = TestBackend::named("a").await;
    let mut process = Process::spawn(&config_text(
        &[(backend.addr, 1)],
        "[timeouts]\nshutdown_grace = \"0s\"\n",
    ));
    let admin = process.admin.to_string();
    let check = |admin: String| async move {
        tokio::process::Command::new(binary())
            .args(["healthcheck", "--admin", &admin])
            .status()
            .await
            .unwrap()
            .code()
    };
    assert_eq!(check(admin.clone()).await, Some(0));
    process.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || process.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(check(admin).await, Some(1));
}
