//! The client half of the matrix of real peers: curl (HTTP/1.1, h2c, h2 over TLS), h2load,
//! Python's `h2`, a WebSocket page in headless Chromium and a committed JMeter plan, each
//! through portero (health checks on) to a Python `http.server` backend, which counts what
//! reaches it: every request a client sent arrives once, and nothing else does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::daemon::{start, traffic};
use support::external::{peer_file, peers_python};
use support::peers::{self, Kind, Peer, wait_probed};
use support::pki::{Ca, https_config};
use support::require_tool;

/// The backend every client cell talks to through portero: a Python `http.server` named
/// `web`, probed healthy. `None` when Python's venv is missing.
async fn site() -> Option<(Peer, Arc<portero::App>)> {
    let peer = Peer::spawn(Kind::PythonHttpServer, "web")?;
    let app = start(&peers::config(&[peer.addr], "")).await;
    wait_probed(&peer).await;
    Some((peer, app))
}

/// Runs `command` in a process group of its own to its end (at most `deadline`, then the
/// test fails); (exit code, stdout, stdout and stderr for messages). The group is killed
/// afterwards, so nothing a browser or a JVM left behind outlives the test.
async fn run(mut command: Command, deadline: Duration) -> (i32, String, String) {
    use std::os::unix::process::CommandExt;
    command.process_group(0).stdin(Stdio::null());
    let what = format!("{command:?}");
    let child = tokio::process::Command::from(command)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let _group = KillGroup(child.id().unwrap());
    let Ok(out) = tokio::time::timeout(deadline, child.wait_with_output()).await else {
        panic!("{what} still running after {deadline:?}");
    };
    let out = out.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout, all)
}

/// Kills a process group when dropped.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(Stdio::null())
            .status();
    }
}

/// `curl -sS URL` with `args`, printing the body then ` STATUS HTTP_VERSION`.
async fn curl(args: &[&str], url: &str) -> String {
    let mut command = Command::new("curl");
    command
        .args([
            "-sS",
            "--max-time",
            "10",
            "-w",
            " %{http_code} %{http_version}",
        ])
        .args(args)
        .arg(url);
    let (code, _, output) = run(command, Duration::from_secs(20)).await;
    assert_eq!(code, 0, "{output}");
    output
}

/// The cell's requests reached the backend exactly `n` times.
async fn assert_reached(peer: &Peer, n: u64) {
    let seen = peer.seen().await;
    assert_eq!(seen.requests, n, "{seen:?}");
    assert_eq!(seen.absolute, 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_curl_http1() {
    if !require_tool("curl") {
        return;
    }
    let Some((peer, app)) = site().await else {
        return;
    };
    let out = curl(
        &["--http1.1"],
        &format!("http://{}/curl?v=1", traffic(&app)),
    )
    .await;
    assert!(out.contains("web 200 1.1"), "{out}");
    assert_reached(&peer, 1).await;
    assert_eq!(peer.seen().await.last_target, "/curl?v=1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_curl_h2c() {
    if !require_tool("curl") {
        return;
    }
    let Some((peer, app)) = site().await else {
        return;
    };
    let url = format!("http://{}/curl?v=2", traffic(&app));
    let out = curl(&["--http2-prior-knowledge"], &url).await;
    assert!(out.contains("web 200 2"), "{out}");
    assert_reached(&peer, 1).await;
    assert_eq!(peer.seen().await.last_target, "/curl?v=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_curl_h2_over_tls() {
    if !require_tool("curl") {
        return;
    }
    let Some(peer) = Peer::spawn(Kind::PythonHttpServer, "web") else {
        return;
    };
    let ca = Ca::new("peers ca");
    let leaf = ca.issue("app", "app.test", &["app.test"], 1);
    let config = https_config(&[&leaf], "", peer.addr, &peers::health_table());
    let app = start(&config).await;
    wait_probed(&peer).await;
    let port = app.listener_addr("https").unwrap().port();
    let ca_file = ca.file().display().to_string();
    let resolve = format!("app.test:{port}:127.0.0.1");
    let args = ["--http2", "--cacert", &ca_file, "--resolve", &resolve];
    let out = curl(&args, &format!("https://app.test:{port}/tls")).await;
    assert!(out.contains("web 200 2"), "{out}");
    assert_reached(&peer, 1).await;
    assert_eq!(peer.seen().await.last_host, format!("app.test:{port}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_h2load() {
    if !require_tool("h2load") {
        return;
    }
    let Some((peer, app)) = site().await else {
        return;
    };
    let mut command = Command::new("h2load");
    command
        .args(["-n", "1000", "-c", "10", "-m", "10", "-T", "10"])
        .arg(format!("http://{}/h2load", traffic(&app)));
    let (code, stdout, output) = run(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}");
    assert!(
        stdout.contains(
            "requests: 1000 total, 1000 started, 1000 done, 1000 succeeded, 0 failed, \
             0 errored, 0 timeout"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("status codes: 1000 2xx"), "{stdout}");
    assert_reached(&peer, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_python_h2() {
    let Some((peer, app)) = site().await else {
        return;
    };
    let addr: SocketAddr = traffic(&app);
    let mut command = Command::new(peers_python().unwrap());
    command.arg(peer_file("h2_client.py")).args([
        "127.0.0.1",
        &addr.port().to_string(),
        "20",
        "100000",
    ]);
    let (code, stdout, output) = run(command, Duration::from_secs(30)).await;
    assert_eq!(code, 0, "{output}");
    let streams: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(streams.len(), 21, "{stdout}");
    for stream in &streams {
        assert_eq!(stream["status"], 200, "{stream}");
        assert_eq!(stream["backend"], "web", "{stream}");
        assert_eq!(stream["body"], "web", "{stream}");
    }
    let post = streams.iter().find(|s| s["path"] == "/h2/post").unwrap();
    assert_eq!(post["received"], "100000", "{post}");
    assert_reached(&peer, 21).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_chromium_websocket() {
    if !require_tool("chromium") {
        return;
    }
    let Some((peer, app)) = site().await else {
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        // Loopback only: none of the browser's own calls home.
        .args([
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .args([
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{}/page", traffic(&app)));
    let (code, stdout, output) = run(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}");
    // The page writes the echo and tells the backend so before its load event can fire
    // (an image it holds), and --dump-dom prints the DOM after the load event.
    assert!(
        stdout.contains(r#"<p id="out">echo: hello from chromium</p>"#),
        "{stdout}"
    );
    let seen = peer.seen().await;
    assert!(seen.requests >= 3, "page, /ws and /hold: {seen:?}");
    assert_eq!(seen.absolute, 0, "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_client_jmeter_plan() {
    let http_sampler = Path::new("/usr/share/jmeter/lib/ext/ApacheJMeter_http.jar");
    if !require_tool("jmeter") || !require_tool("java") {
        return;
    }
    assert!(
        http_sampler.exists() || std::env::var("CI").as_deref() != Ok("true"),
        "Debian's jmeter-http package is required under CI=true (the HTTP sampler)"
    );
    if !http_sampler.exists() {
        eprintln!("\n*** SKIPPED: jmeter-http is not installed ***\n");
        return;
    }
    let Some((peer, app)) = site().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jtl");
    let mut command = Command::new("java");
    command
        .arg("-Djmeter.home=/usr/share/jmeter")
        .args([
            "-cp",
            "/usr/share/jmeter/bin/ApacheJMeter.jar:/usr/share/java/bsh.jar",
        ])
        .arg("bsh.Interpreter")
        .arg(peer_file("jmeter_run.bsh"))
        .arg("-n")
        .arg("-t")
        .arg(peer_file("jmeter_plan.jmx"))
        .arg("-l")
        .arg(&results)
        .arg("-j")
        .arg(dir.path().join("jmeter.log"))
        .arg(format!("-Jport={}", traffic(&app).port()))
        .args([
            "-Jhost=127.0.0.1",
            "-Jthreads=10",
            "-Jloops=50",
            "-Jexpect=web",
        ])
        .args(["-Jjmeter.save.saveservice.output_format=csv"])
        .args(["-Jjmeter.save.saveservice.print_field_names=true"])
        // No shutdown listener on UDP 4445 (parallel tests would fight over it).
        .args([
            "-Jjmeterengine.nongui.port=0",
            "-Jjmeter.exit.check.pause=0",
        ])
        .current_dir(dir.path());
    let (code, _, output) = run(command, Duration::from_secs(60)).await;
    assert_eq!(code, 0, "{output}");
    let jtl = std::fs::read_to_string(&results).unwrap_or_else(|e| panic!("{e}: {output}"));
    let mut lines = jtl.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (code_at, success_at) = (column("responseCode"), column("success"));
    let samples: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(samples.len(), 500, "{jtl}");
    for sample in &samples {
        assert_eq!(
            (sample[code_at], sample[success_at]),
            ("200", "true"),
            "{sample:?}"
        );
    }
    assert_reached(&peer, 500).await;
}
