//! Membership changes under load: reloads, pushes and every feed change the backend sets
//! many times while requests flow, and none fails; long streams survive reloads; bad reloads
//! change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client::{self, served_by};
use support::daemon::{start_with_file, traffic};
use support::dns::{Answer, TestDns};
use support::feed::{TestFeed, document};
use support::metric;
use support::raw_backend::{RawBackend, Reply};

/// The pools' sources, written into one config.
struct Sources<'a> {
    statics: &'a [(SocketAddr, u32)],
    feed_url: &'a str,
    file: &'a str,
    dns: SocketAddr,
    dns_port: u16,
}

fn config(s: &Sources<'_>) -> String {
    let statics: Vec<String> = s
        .statics
        .iter()
        .map(|(a, w)| format!("{{ address = \"{a}\", weight = {w} }}"))
        .collect();
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n[timeouts]\ndrain = \"1s\"\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/static\"\npool = \"static\"\n\
         [[route]]\npath_prefix = \"/http\"\npool = \"http\"\n\
         [[route]]\npath_prefix = \"/file\"\npool = \"file\"\n\
         [[route]]\npath_prefix = \"/dns\"\npool = \"dns\"\n\
         [pool.static]\nbackends = [{}]\n\
         [pool.http.discovery]\nhttp = \"{}\"\nrefresh = \"100ms\"\n\
         [pool.file.discovery]\nfile = \"{}\"\nrefresh = \"100ms\"\n\
         [pool.dns.discovery]\ndns = \"app.test:{}\"\nnameserver = \"{}\"\nrefresh = \"10s\"\n",
        statics.join(", "),
        s.feed_url,
        s.file,
        s.dns_port,
        s.dns,
    )
}

async fn wait_for(addr: SocketAddr, path: &str, wanted: &[&str]) -> Duration {
    let wanted: HashSet<String> = wanted.iter().map(|s| s.to_string()).collect();
    let started = Instant::now();
    loop {
        let seen = served_by(addr, path, 12).await;
        if seen == wanted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path}: wanted {wanted:?}, served by {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn post_reload(admin: SocketAddr) -> client::Reply {
    client::send(
        &client::http1(),
        http::Request::post(format!("http://{admin}/reload"))
            .body(Default::default())
            .unwrap(),
    )
    .await
}

async fn push(admin: SocketAddr, pool: &str, backends: &[SocketAddr]) {
    let request = http::Request::put(format!("http://{admin}/pools/{pool}/backends"))
        .body(http_body_util::Full::new(bytes::Bytes::from(document(
            backends,
        ))))
        .unwrap();
    let reply = client::send(&client::http1(), request).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_sees_no_failure_while_membership_changes_twenty_times_by_every_route() {
    let s: Vec<TestBackend> = futures_util::future::join_all(
        (0..4).map(|i| TestBackend::named(Box::leak(format!("s{i}").into_boxed_str()))),
    )
    .await;
    let h: Vec<TestBackend> = futures_util::future::join_all(
        (0..4).map(|i| TestBackend::named(Box::leak(format!("h{i}").into_boxed_str()))),
    )
    .await;
    let f: Vec<TestBackend> = futures_util::future::join_all(
        (0..4).map(|i| TestBackend::named(Box::leak(format!("f{i}").into_boxed_str()))),
    )
    .await;
    let (dns_port, d) = TestBackend::on_one_port("d", 3);
    let ip = |i: u8| Ipv4Addr::new(127, 0, 0, 2 + i);
    let feed = TestFeed::start(&document(&[h[0].addr])).await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), document(&[f[0].addr])).unwrap();
    let dns = TestDns::start().await;
    dns.set("app.test", Answer::A(vec![ip(0)], 1));
    let file_path = file.path().display().to_string();
    let sources = |statics: &[(SocketAddr, u32)]| {
        config(&Sources {
            statics,
            feed_url: &feed.url,
            file: &file_path,
            dns: dns.addr,
            dns_port,
        })
    };
    let (app, config_file) = start_with_file(&sources(&[(s[0].addr, 1)])).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    for (path, first) in [
        ("/static", "s0"),
        ("/http", "h0"),
        ("/file", "f0"),
        ("/dns", "d0"),
    ] {
        wait_for(addr, path, &[first]).await;
    }

    // Steady load over every pool for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, sent, failed) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&failed));
        tokio::spawn(async move {
            let client = client::http1();
            let started = Instant::now();
            let paths = ["/static", "/http", "/file", "/dns"];
            while !stop.load(Ordering::SeqCst)
                && started.elapsed() < Duration::from_secs(120)
                && sent.load(Ordering::SeqCst) < 200_000
            {
                let path = paths[sent.load(Ordering::SeqCst) as usize % 4];
                let request = http::Request::get(format!("http://{addr}{path}"))
                    .body(Default::default())
                    .unwrap();
                let failure = match client.request(request).await {
                    Ok(response) if response.status() != 200 => {
                        let (status, headers) = (response.status(), response.headers().clone());
                        let body = response.into_body().collect().await.map(|b| b.to_bytes());
                        Some(format!("{path}: {status} {headers:?} {body:?}"))
                    }
                    Ok(response) => match response.into_body().collect().await {
                        Ok(_) => None,
                        Err(error) => Some(format!("{path}: body: {error:?}")),
                    },
                    Err(error) => Some(format!("{path}: {error:?}")),
                };
                sent.fetch_add(1, Ordering::SeqCst);
                if let Some(failure) = failure {
                    // Said at once, with the time, to be read against the membership changes.
                    println!("{:?} after the start: {failure}", started.elapsed());
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };

    let mut changes = 0;
    let mut slowest = Duration::ZERO;
    let mut note = |took: Duration| {
        changes += 1;
        slowest = slowest.max(took);
    };
    // By reload (4) and by push (3): the static pool.
    for (members, expect) in [
        (vec![(s[0].addr, 1), (s[1].addr, 1)], vec!["s0", "s1"]),
        (vec![(s[0].addr, 3), (s[1].addr, 1)], vec!["s0", "s1"]),
        (vec![(s[1].addr, 1)], vec!["s1"]),
        (vec![(s[1].addr, 1), (s[2].addr, 2)], vec!["s1", "s2"]),
    ] {
        std::fs::write(config_file.path(), sources(&members)).unwrap();
        let reply = post_reload(admin).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        note(wait_for(addr, "/static", &expect).await);
    }
    for (members, expect) in [
        (vec![s[3].addr], vec!["s3"]),
        (vec![s[3].addr, s[0].addr], vec!["s3", "s0"]),
        (vec![s[2].addr], vec!["s2"]),
    ] {
        push(admin, "static", &members).await;
        note(wait_for(addr, "/static", &expect).await);
    }
    // By the HTTP feed (5) and the file feed (5).
    let steps = [vec![0, 1], vec![1], vec![1, 2, 3], vec![3], vec![0, 3]];
    for step in &steps {
        let names: Vec<String> = step.iter().map(|i| format!("h{i}")).collect();
        feed.set(&document(
            &step.iter().map(|&i| h[i].addr).collect::<Vec<_>>(),
        ));
        note(
            wait_for(
                addr,
                "/http",
                &names.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await,
        );
        let names: Vec<String> = step.iter().map(|i| format!("f{i}")).collect();
        std::fs::write(
            file.path(),
            document(&step.iter().map(|&i| f[i].addr).collect::<Vec<_>>()),
        )
        .unwrap();
        note(
            wait_for(
                addr,
                "/file",
                &names.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await,
        );
    }
    // By DNS (4), at the records' 1 s TTL.
    for (ips, expect) in [
        (vec![0, 1], vec!["d0", "d1"]),
        (vec![2], vec!["d2"]),
        (vec![1, 2], vec!["d1", "d2"]),
        (vec![0], vec!["d0"]),
    ] {
        dns.set(
            "app.test",
            Answer::A(ips.iter().map(|&i| ip(i)).collect(), 1),
        );
        note(wait_for(addr, "/dns", &expect).await);
    }

    // Removed backends get nothing more once their drain (1 s) is over.
    let last_change = Instant::now();
    while last_change.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed = [&s[1], &h[1], &h[2], &f[1], &f[2], &d[1], &d[2]];
    let counts: Vec<u64> = removed.iter().map(|b| b.requests()).collect();
    let more = sent.load(Ordering::SeqCst) + 400;
    support::wait_until(
        "more load after the last change",
        Duration::from_secs(30),
        || sent.load(Ordering::SeqCst) > more,
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    let after: Vec<u64> = removed.iter().map(|b| b.requests()).collect();
    println!(
        "{changes} membership changes, slowest seen after {slowest:?}; {} requests, {} failed",
        sent.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
    assert!(changes >= 20);
    assert_eq!(counts, after, "removed backends got no new request");
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    let status: serde_json::Value =
        serde_json::from_str(&client::get(admin, "/status").await.body).unwrap();
    assert!(status["generation"].as_u64().unwrap() > 20, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_and_a_slow_stream_survive_five_reloads() {
    let ws = TestBackend::start("ws", Behavior::WebSocketEcho).await;
    let slow = TestBackend::start("slow", Behavior::Trickle(20, Duration::from_millis(100))).await;
    let other = TestBackend::named("other").await;
    let text = |weight: u32, with_other: bool| {
        let extra = if with_other {
            format!(", \"{}\"", other.addr)
        } else {
            String::new()
        };
        format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
             [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
             [[route]]\npath_prefix = \"/ws\"\npool = \"ws\"\n[[route]]\npool = \"slow\"\n\
             [pool.ws]\nbackends = [{{ address = \"{}\", weight = {weight} }}{extra}]\n\
             [pool.slow]\nbackends = [\"{}\"{extra}]\n",
            ws.addr, slow.addr
        )
    };
    let (app, file) = start_with_file(&text(1, false)).await;
    let addr = traffic(&app);
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    let stream = tokio::spawn(async move {
        let response = client::http1()
            .request(
                http::Request::get(format!("http://{addr}/slow"))
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        response.into_body().collect().await.map(|b| b.to_bytes())
    });
    support::wait_until("the slow stream to start", Duration::from_secs(10), || {
        slow.requests() == 1
    })
    .await;
    for round in 0..5u32 {
        std::fs::write(file.path(), text(round + 2, round % 2 == 0)).unwrap();
        assert_eq!(
            app.reload("test").await.unwrap().generation,
            u64::from(round) + 2
        );
        let message = format!("after reload {round}");
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.clone(),
            ))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), message);
    }
    let body = stream.await.unwrap().expect("the stream finished whole");
    assert_eq!(body.len(), 20 * 5, "every tick arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backends_stream_is_cut_at_the_drain_deadline() {
    let slow = TestBackend::start("slow", Behavior::Trickle(100, Duration::from_millis(50))).await;
    let other = TestBackend::named("other").await;
    let cut = cut_after_removal(slow.addr, other.addr, "").await;
    cut.was_at_the_deadline("cut at the deadline, not at the stream's end (5 s)");
}

/// The same for a backend gone silent mid-body (not hyper: raw bytes, and no idle timeout):
/// nothing more comes from it to wake the response, so the cut itself must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backends_silent_response_is_cut_at_the_drain_deadline() {
    let mut stalled = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n".to_vec();
    stalled.extend_from_slice(&[b'x'; 1000]);
    let silent = RawBackend::start(vec![Reply::Keep(stalled)]).await;
    let other = TestBackend::named("other").await;
    let cut = cut_after_removal(silent.addr, other.addr, "upstream_idle = \"0s\"\n").await;
    cut.was_at_the_deadline("cut at the deadline, not when something else wakes the response");
}

/// How a response from a backend removed while it streamed ended.
struct Cut {
    /// Its body's length, or the error that ended it.
    body: Result<usize, hyper::Error>,
    /// From the reload that removed the backend to the body's end.
    after: Duration,
}

impl Cut {
    /// Truncated, at the 300 ms drain deadline and not seconds later (`late` says why not).
    fn was_at_the_deadline(&self, late: &str) {
        assert!(
            self.body.is_err(),
            "a truncated body must not look complete: {:?}",
            self.body
        );
        assert!(
            self.after >= Duration::from_millis(300),
            "cut no earlier than the drain deadline"
        );
        assert!(self.after < Duration::from_secs(4), "{late}");
    }
}

/// Starts portero on `first` alone (drain 300 ms, `timeouts` added to its `[timeouts]`),
/// reloads it onto `other` alone once a response from `first` has begun, and waits (10 s at
/// most) for that response to end. New requests go to `other`.
async fn cut_after_removal(first: SocketAddr, other: SocketAddr, timeouts: &str) -> Cut {
    let text = |backend: SocketAddr| {
        format!(
            "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
             [timeouts]\ndrain = \"300ms\"\n{timeouts}[[listener]]\nname = \"http\"\n\
             address = \"127.0.0.1:0\"\n[pool.app]\nbackends = [\"{backend}\"]\n"
        )
    };
    let (app, file) = start_with_file(&text(first)).await;
    let addr = traffic(&app);
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let stream = tokio::spawn(async move {
        let response = client::http1()
            .request(
                http::Request::get(format!("http://{addr}/"))
                    .body(Default::default())
                    .unwrap(),
            )
            .await
            .unwrap();
        let _ = head_tx.send(());
        response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes().len())
    });
    tokio::time::timeout(Duration::from_secs(10), head_rx)
        .await
        .expect("the response head within 10 s")
        .unwrap();
    std::fs::write(file.path(), text(other)).unwrap();
    let removed = Instant::now();
    app.reload("test").await.unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), stream)
        .await
        .expect("the response is cut, not left waiting for its backend")
        .unwrap();
    let after = removed.elapsed();
    assert_eq!(client::get(addr, "/").await.header("x-backend"), "other");
    Cut { body, after }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_or_a_taken_port_leaves_the_old_config_serving() {
    let a = TestBackend::named("a").await;
    let text = support::daemon::config_text(&[(a.addr, 1)], "");
    let (app, file) = start_with_file(&text).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());

    std::fs::write(
        file.path(),
        text.replace("backends = [", "backends = [ \"nope\", "),
    )
    .unwrap();
    let reply = post_reload(admin).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let answer: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer["result"], "error");
    assert!(answer["errors"][0]["line"].as_u64().is_some(), "{answer}");
    assert_eq!(
        client::get(addr, "/").await.status,
        200,
        "the old config serves"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_text = text.replace(
        "[pool.app]",
        &format!(
            "[[listener]]\nname = \"second\"\naddress = \"{}\"\n\n[pool.app]",
            taken.local_addr().unwrap()
        ),
    );
    std::fs::write(file.path(), &port_text).unwrap();
    let reply = post_reload(admin).await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    assert!(reply.body.contains("cannot listen on"), "{}", reply.body);
    assert_eq!(client::get(addr, "/").await.status, 200);
    assert_eq!(app.listeners().len(), 1, "nothing half-applied");

    let m = client::get(admin, "/metrics").await.body;
    assert_eq!(
        metric(&m, "portero_config_reloads_total{result=\"failure\"}"),
        2.0
    );
    let status: serde_json::Value =
        serde_json::from_str(&client::get(admin, "/status").await.body).unwrap();
    assert_eq!(status["generation"], 1);

    // A free port is bound by the reload, and closed by the next one.
    drop(taken);
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        file.path(),
        text.replace(
            "[pool.app]",
            &format!("[[listener]]\nname = \"second\"\naddress = \"{free}\"\n\n[pool.app]"),
        ),
    )
    .unwrap();
    assert_eq!(post_reload(admin).await.status, 200);
    assert_eq!(
        client::get(free, "/").await.status,
        200,
        "the new listener serves"
    );
    std::fs::write(file.path(), &text).unwrap();
    assert_eq!(post_reload(admin).await.status, 200);
    assert!(
        tokio::net::TcpStream::connect(free).await.is_err(),
        "the removed listener is closed"
    );
    assert_eq!(client::get(addr, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_watch_a_changed_file_is_reloaded_by_itself() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let text = |backend: SocketAddr| {
        format!(
            "watch = true\n{}",
            support::daemon::config_text(&[(backend, 1)], "")
        )
    };
    let (app, file) = start_with_file(&text(a.addr)).await;
    let addr = traffic(&app);
    assert_eq!(
        served_by(addr, "/", 3).await,
        HashSet::from(["a".to_string()])
    );
    std::fs::write(file.path(), text(b.addr)).unwrap();
    wait_for(addr, "/", &["b"]).await;
    std::fs::write(
        file.path(),
        "watch = true\n[[listener]]\naddress = \"broken\"\n",
    )
    .unwrap();
    support::wait_until(
        "the broken file to be rejected",
        Duration::from_secs(10),
        || {
            app.metrics()
                .control
                .config_reloads
                .with_label_values(&["failure"])
                .get()
                == 1
        },
    )
    .await;
    assert_eq!(
        served_by(addr, "/", 3).await,
        HashSet::from(["b".to_string()]),
        "the old config serves"
    );
}
