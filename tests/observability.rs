//! What an operator sees: metrics checked by promtool after real traffic, the dashboard in a
//! real browser, and the access log across a logrotate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::backend::{Behavior, TestBackend};
use support::daemon::{Process, start, traffic};
use support::{client, metric};
use tokio::io::AsyncWriteExt;

/// Every metric name PRODUCT.md promises.
const PROMISED: &[&str] = &[
    "portero_connections_open",
    "portero_connections_limit",
    "portero_connections_in_burst",
    "portero_connections_accepted_total",
    "portero_connections_rejected_total",
    "portero_requests_total",
    "portero_request_duration_seconds",
    "portero_upstream_requests_total",
    "portero_backend_up",
    "portero_backend_in_flight",
    "portero_health_checks_total",
    "portero_retries_total",
    "portero_config_reloads_total",
    "portero_config_last_reload_success_timestamp_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
];

fn config(app: SocketAddr, dead: SocketAddr) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/dead\"\npool = \"dead\"\n[[route]]\nhost = \"app.test\"\npool = \"app\"\n\
         [pool.app]\nbackends = [\"{app}\"]\n[pool.app.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\n\
         [pool.dead]\nbackends = [\"{dead}\"]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_traffic_pass_promtool_and_count_exactly() {
    if !support::require_tool("promtool") {
        return;
    }
    let backend = TestBackend::named("app").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let app = start(&config(backend.addr, dead)).await;
    let addr = traffic(&app);
    support::wait_until("health checks", Duration::from_secs(10), || {
        backend.health_checks() > 0
    })
    .await;
    let http = client::http1();
    let get = |path: &str, host: &str| {
        let request = http::Request::get(format!("http://{addr}{path}"))
            .header("host", host)
            .body(Default::default())
            .unwrap();
        client::send(&http, request)
    };
    for _ in 0..7 {
        assert_eq!(get("/", "app.test").await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(get("/", "nowhere.test").await.status, 404);
    }
    assert_eq!(get("/dead", "app.test").await.status, 502);

    let text = client::get(app.admin_addr(), "/metrics").await.body;
    let mut promtool = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .await
        .unwrap();
    let out = promtool.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for name in PROMISED {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} is missing from /metrics"
        );
    }

    let sample = |s: &str| metric(&text, s);
    let backend_label = backend.addr.to_string();
    assert_eq!(
        sample("portero_requests_total{code_class=\"2xx\",listener=\"http\",pool=\"app\"}"),
        7.0
    );
    assert_eq!(
        sample("portero_requests_total{code_class=\"4xx\",listener=\"http\",pool=\"none\"}"),
        3.0
    );
    assert_eq!(
        sample("portero_requests_total{code_class=\"5xx\",listener=\"http\",pool=\"dead\"}"),
        1.0
    );
    assert_eq!(
        sample(&format!(
            "portero_upstream_requests_total{{backend=\"{backend_label}\",code_class=\"2xx\",pool=\"app\"}}"
        )),
        7.0
    );
    assert_eq!(
        sample("portero_request_duration_seconds_count{pool=\"app\"}"),
        7.0
    );
    assert_eq!(
        sample("portero_requests_refused_total{listener=\"http\",reason=\"no_route\"}"),
        3.0
    );
    assert_eq!(
        sample(&format!(
            "portero_upstream_errors_total{{backend=\"{dead}\",kind=\"connect_failed\",pool=\"dead\"}}"
        )),
        1.0
    );
    assert_eq!(
        sample(&format!(
            "portero_backend_up{{backend=\"{backend_label}\",pool=\"app\"}}"
        )),
        1.0
    );
    assert!(
        sample(&format!(
            "portero_health_checks_total{{backend=\"{backend_label}\",pool=\"app\",result=\"pass\"}}"
        )) >= 1.0
    );
    assert!(sample("portero_connections_accepted_total{listener=\"http\"}") >= 1.0);
    assert!(sample("portero_connections_limit{tier=\"burst\"}") > 0.0);
    assert_eq!(
        sample("portero_config_reloads_total{result=\"success\"}"),
        0.0
    );
    assert!(sample("portero_upstream_connect_seconds_count{pool=\"app\"}") >= 1.0);
    assert!(
        sample(&format!(
            "portero_upstream_connections{{backend=\"{backend_label}\",pool=\"app\"}}"
        )) >= 1.0,
        "the pooled connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_every_backend_and_its_state_in_a_real_browser() {
    if !support::require_tool("chromium") {
        return;
    }
    let good = TestBackend::named("good").await;
    let sick = TestBackend::start("sick", Behavior::Name).await;
    sick.set_health(503);
    let text = format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"db\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"db\"\n\
         [pool.web]\nbackends = [\"{}\", \"{}\"]\n[pool.web.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\nfall = 1\n\
         [pool.db]\nbackends = [\"{}\"]\n",
        good.addr, sick.addr, good.addr
    );
    let app = start(&text).await;
    support::wait_until(
        "the sick backend to be marked down",
        Duration::from_secs(10),
        || {
            app.snapshot().pools()["web"]
                .members()
                .iter()
                .any(|m| m.backend.state().as_str() == "unhealthy")
        },
    )
    .await;
    for _ in 0..5 {
        client::get(traffic(&app), "/").await;
    }
    let screenshot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{}/", app.admin_addr());
    let browser = |extra: Vec<String>| {
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
            "--window-size=1280,900",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra);
        args.push(url.clone());
        tokio::process::Command::new("chromium")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
    };
    let dom = tokio::time::timeout(Duration::from_secs(60), browser(vec!["--dump-dom".into()]))
        .await
        .unwrap()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    for (backend, state) in [(good.addr, "healthy"), (sick.addr, "unhealthy")] {
        let row = format!("data-pool=\"web\" data-address=\"{backend}\" data-state=\"{state}\"");
        assert!(
            dom.contains(&row),
            "row {row} missing from the rendered dashboard:\n{dom}"
        );
    }
    assert!(dom.contains("id=\"state\""), "{dom}");
    assert!(
        dom.contains("data-pool=\"db\" data-serves=\"tcp\""),
        "the tcp listener's pool is shown as one:\n{dom}"
    );
    let shot = tokio::time::timeout(
        Duration::from_secs(60),
        browser(vec![format!("--screenshot={}", screenshot.display())]),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        screenshot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    println!("dashboard screenshot: {}", screenshot.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_reopened_on_sigusr1_for_logrotate() {
    let backend = TestBackend::named("a").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let text = support::daemon::config_text(&[(backend.addr, 1)], "").replace(
        "access_log = \"off\"",
        &format!("access_log = \"{}\"", log.display()),
    );
    let process = Process::spawn(&text);
    for _ in 0..3 {
        client::get(process.traffic, "/before").await;
    }
    support::wait_until_blocking("3 lines", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            == 3
    });
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    process.signal("USR1");
    support::wait_until("the reopen", Duration::from_secs(10), || {
        process.logged("reopening the access log")
    })
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !log.exists() || std::fs::read_to_string(&log).unwrap().lines().count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no new file after SIGUSR1"
        );
        client::get(process.traffic, "/after").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap().lines().count(),
        3,
        "the old file kept what it had"
    );
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .all(|l| l.contains("/after"))
    );
}

/// A pool of one cannot eject its backend, so each failed request past the outlier threshold
/// would warn "failing but not ejected": one line per period instead, counting the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_failing_without_ejection_is_warned_about_once_per_period() {
    let backend = TestBackend::start("failing", Behavior::Status(500)).await;
    let text = support::daemon::config_text(&[(backend.addr, 1)], "")
        .replace("[pool.app]\n", "[pool.app]\nretries = 0\n");
    let process = Process::spawn(&text);
    for _ in 0..100 {
        assert_eq!(client::get(process.traffic, "/").await.status, 500);
    }
    support::wait_until("the warning", Duration::from_secs(10), || {
        process.logged("failing but not ejected")
    })
    .await;
    // A marker after the last failure: once it is logged, every earlier warning would be too.
    process.signal("USR1");
    support::wait_until("the marker", Duration::from_secs(10), || {
        process.logged("reopening the access log")
    })
    .await;
    let warnings = process
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("failing but not ejected"))
        .count();
    assert_eq!(warnings, 1, "95 failures past the threshold, one line");
}
