//! The daemon's own log under load and attack: what clients can trigger never becomes a line
//! per handshake or request (it is counted in metrics), repeated warnings are rate-limited
//! with the suppression counted, and the access log neither blocks requests when its pipe is
//! not read nor writes the ordinary requests a sample leaves out.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;
use support::daemon::Process;
use support::external::free_port;
use support::metrics::metric_sum;
use support::pki::Ca;

/// Runs `wrk ARGS URL` once; its report.
fn wrk(args: &[&str], url: &str) -> String {
    let out = Command::new("wrk").args(args).arg(url).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The daemon's own lines after the first `skip`, for the assertion message.
fn lines_after(process: &Process, skip: usize) -> Vec<String> {
    process.log.lock().unwrap()[skip..].to_vec()
}

/// 2,000 TLS handshakes naming an IP address as SNI (what wrk, curl-by-address, cloud health
/// checks send) and 1,000 requests failing on a one-backend pool leave a handful of lines;
/// what was held back is in `portero_log_suppressed_total`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_handshakes_and_failures_leave_a_handful_of_lines() {
    if !support::require_tool("wrk") {
        return;
    }
    support::bounded_by(Duration::from_secs(120), async {
        let ca = Ca::new("logs test CA");
        let leaf = ca.issue("site", "site", &["site.test"], 1);
        // Nothing listens there: every request fails to connect, and a one-backend pool
        // cannot eject its only backend.
        let dead = format!("127.0.0.1:{}", free_port());
        let config = format!(
            r#"
[admin]
address = "127.0.0.1:0"
[log]
access_log = "off"

[[listener]]
name = "http"
address = "127.0.0.1:0"

[[listener]]
name = "https"
address = "127.0.0.1:0"
[listener.tls]
certificates = [{{ cert = "{cert}", key = "{key}" }}]

[pool.app]
backends = ["{dead}"]
retries = 0
"#,
            cert = leaf.cert.display(),
            key = leaf.key.display(),
        );
        let daemon = Process::spawn(&config);
        let https = daemon.listener("https").unwrap();
        let started = daemon.log.lock().unwrap().len();

        let handshakes = "portero_tls_handshakes_total";
        let url = format!("https://127.0.0.1:{}/", https.port());
        for _ in 0..20 {
            if metric_sum(&daemon, handshakes, "result=\"ok\"").await >= 2000.0 {
                break;
            }
            let args = ["-t1", "-c4", "-d1s", "-H", "Connection: close"];
            tokio::task::block_in_place(|| wrk(&args, &url));
        }
        assert!(metric_sum(&daemon, handshakes, "result=\"ok\"").await >= 2000.0);

        for _ in 0..1000 {
            let reply = support::client::get(daemon.traffic, "/").await;
            assert_eq!(reply.status, 502);
        }
        let suppressed = metric_sum(
            &daemon,
            "portero_log_suppressed_total",
            "target=\"backend_failing\"",
        )
        .await;
        assert!(suppressed >= 900.0, "held back: {suppressed}");

        let lines = lines_after(&daemon, started);
        assert!(
            lines.len() <= 5,
            "{} lines of the daemon's own log:\n{}",
            lines.len(),
            lines.join("\n")
        );
        assert!(
            !lines.iter().any(|l| l.contains("Illegal SNI")),
            "{lines:?}"
        );
        for line in &lines {
            let parsed: serde_json::Value =
                serde_json::from_str(line).expect("one JSON object per line");
            assert!(
                parsed["level"].is_string() && parsed["message"].is_string(),
                "{line}"
            );
        }
    })
    .await;
}

/// An access log on a pipe nobody reads: requests keep being answered, and the lines that
/// cannot be queued are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_access_log_pipe_drops_lines_and_never_stops_requests() {
    if !support::require_tool("wrk") {
        return;
    }
    support::bounded_by(Duration::from_secs(120), async {
        let backend = support::backend::TestBackend::named("app").await;
        let config = support::daemon::config_text(&[(backend.addr, 1)], "")
            .replace("access_log = \"off\"", "access_log = \"stdout\"");
        let daemon = Process::spawn_with_unread_stdout(&config);
        let url = format!("http://{}/", daemon.traffic);
        let dropped = || async {
            let text = support::metrics::metrics(&daemon).await;
            support::metric(&text, "portero_access_log_dropped_total")
        };
        for _ in 0..20 {
            if dropped().await > 0.0 {
                break;
            }
            let report = tokio::task::block_in_place(|| wrk(&["-t1", "-c8", "-d1s"], &url));
            assert!(!report.contains("Non-2xx"), "{report}");
            assert!(!report.contains("Socket errors"), "{report}");
        }
        let dropped_now = dropped().await;
        assert!(dropped_now > 0.0, "lines were dropped and counted");
        // The pipe is still full and unread: a request is answered at once all the same.
        let reply = tokio::time::timeout(
            Duration::from_secs(5),
            support::client::get(daemon.traffic, "/"),
        )
        .await
        .expect("answered while the log pipe is full");
        assert_eq!(reply.status, 200);
        assert!(
            dropped().await > dropped_now,
            "its line was dropped and counted too"
        );
    })
    .await;
}

/// `log.access_log_sample = 0`: ordinary requests get no line, a server error still does.
#[tokio::test]
async fn a_sampled_access_log_keeps_errors_and_drops_the_ordinary() {
    support::bounded(async {
        let backend = support::backend::TestBackend::named("app").await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("access.log");
        let dead = format!("127.0.0.1:{}", free_port());
        let extra = format!(
            "[pool.dead]\nbackends = [\"{dead}\"]\nretries = 0\n\n\
             [[route]]\npath_prefix = \"/dead\"\npool = \"dead\"\n\n\
             [[route]]\npath_prefix = \"/\"\npool = \"app\"\n"
        );
        let config = support::daemon::config_text(&[(backend.addr, 1)], &extra).replace(
            "access_log = \"off\"",
            &format!(
                "access_log = \"{}\"\naccess_log_sample = 0.0\naccess_log_slow = \"10s\"",
                file.display()
            ),
        );
        let app = support::daemon::start(&config).await;
        let traffic = support::daemon::traffic(&app);
        for _ in 0..50 {
            assert_eq!(support::client::get(traffic, "/ordinary").await.status, 200);
        }
        assert_eq!(support::client::get(traffic, "/dead").await.status, 502);
        // Lines are written in order: once the 502's is there, any 200's would be too.
        support::wait_until("the 502 logged", Duration::from_secs(10), || {
            std::fs::read_to_string(&file).is_ok_and(|t| t.contains("\"status\":502"))
        })
        .await;
        let text = std::fs::read_to_string(&file).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
    })
    .await;
}
