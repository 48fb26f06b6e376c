//! Discovery feeds against real servers on loopback: DNS (A records with TTLs, SRV, SERVFAIL,
//! NXDOMAIN) from a DNS server started here, an HTTP feed with ETags, a file, and pushes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use support::backend::TestBackend;
use support::client;
use support::daemon::{start, start_with_file, traffic};
use support::dns::{Answer, TestDns};
use support::feed::{TestFeed, document};
use support::metric;

fn discovery_config(discovery: &str) -> String {
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n\n[log]\naccess_log = \"off\"\n\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\n\
         [pool.app.discovery]\n{discovery}\n"
    )
}

/// The backends that answered `n` requests.
async fn served_by(addr: SocketAddr, n: usize) -> HashSet<String> {
    client::served_by(addr, "/", n).await
}

async fn wait_for_backends(addr: SocketAddr, wanted: &[&str], within: Duration) {
    let wanted: HashSet<String> = wanted.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + within;
    loop {
        let seen = served_by(addr, 8).await;
        if seen == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {wanted:?}, still served by {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_records_are_followed_at_their_ttl_and_failures_keep_the_last_good_set() {
    let dns = TestDns::start().await;
    let (port, _backends) = TestBackend::on_one_port("b", 3);
    dns.set("app.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 2)], 1));
    // refresh is long: only the 1 s TTL can explain a re-read within a few seconds.
    let text = discovery_config(&format!(
        "dns = \"app.test:{port}\"\nnameserver = \"{}\"\nrefresh = \"60s\"\n",
        dns.addr
    ));
    let app = start(&text).await;
    let addr = traffic(&app);
    wait_for_backends(addr, &["b0"], Duration::from_secs(10)).await;

    dns.set("app.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 3)], 1));
    wait_for_backends(addr, &["b1"], Duration::from_secs(8)).await;

    for failure in [Answer::ServFail, Answer::NxDomain] {
        let before = dns.queries();
        dns.set("app.test", failure.clone());
        support::wait_until(
            "two re-reads of the failing name",
            Duration::from_secs(10),
            || dns.queries() >= before + 2,
        )
        .await;
        assert_eq!(
            served_by(addr, 10).await,
            HashSet::from(["b1".to_string()]),
            "{failure:?} keeps the last good set"
        );
    }
    let m = client::get(app.admin_addr(), "/metrics").await.body;
    assert!(
        metric(
            &m,
            "portero_discovery_updates_total{pool=\"app\",result=\"error\",source=\"dns\"}"
        ) >= 2.0,
        "{m}"
    );

    dns.set(
        "app.test",
        Answer::A(
            vec![Ipv4Addr::new(127, 0, 0, 4), Ipv4Addr::new(127, 0, 0, 2)],
            1,
        ),
    );
    wait_for_backends(addr, &["b0", "b2"], Duration::from_secs(8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_ports_and_weights_of_the_best_priority() {
    let dns = TestDns::start().await;
    let (port, _backends) = TestBackend::on_one_port("b", 3);
    dns.set("b2.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 2)], 30));
    dns.set("b3.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 3)], 30));
    dns.set("b4.test", Answer::A(vec![Ipv4Addr::new(127, 0, 0, 4)], 30));
    let records = vec![
        (10, 1, port, "b2.test".to_string()),
        (10, 3, port, "b3.test".to_string()),
        (20, 1, port, "b4.test".to_string()),
    ];
    dns.set("_http._tcp.app.test", Answer::Srv(records, 30));
    let text = discovery_config(&format!(
        "srv = \"_http._tcp.app.test\"\nnameserver = \"{}\"\n",
        dns.addr
    ));
    let app = start(&text).await;
    wait_for_backends(traffic(&app), &["b0", "b1"], Duration::from_secs(10)).await;
    let status: serde_json::Value =
        serde_json::from_str(&client::get(app.admin_addr(), "/status").await.body).unwrap();
    let mut members: Vec<(String, u64)> = status["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["address"].as_str().unwrap().to_string(),
                b["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    members.sort();
    assert_eq!(
        members,
        vec![
            (format!("127.0.0.2:{port}"), 1),
            (format!("127.0.0.3:{port}"), 3)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_feed_is_polled_with_etags_and_a_bad_document_is_rejected_whole() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let feed = TestFeed::start(&document(&[a.addr])).await;
    let app = start(&discovery_config(&format!(
        "http = \"{}\"\nrefresh = \"50ms\"\n",
        feed.url
    )))
    .await;
    let addr = traffic(&app);
    wait_for_backends(addr, &["a"], Duration::from_secs(10)).await;
    support::wait_until("a conditional re-read", Duration::from_secs(10), || {
        feed.not_modified.load(std::sync::atomic::Ordering::SeqCst) > 0
    })
    .await;

    feed.set(&document(&[a.addr, b.addr]));
    wait_for_backends(addr, &["a", "b"], Duration::from_secs(5)).await;

    feed.set("{\"backends\": [{\"address\": \"not-an-address\"}]}");
    let served = feed.served.load(std::sync::atomic::Ordering::SeqCst);
    support::wait_until(
        "the bad document to be read",
        Duration::from_secs(10),
        || feed.served.load(std::sync::atomic::Ordering::SeqCst) > served + 1,
    )
    .await;
    assert_eq!(
        served_by(addr, 10).await,
        HashSet::from(["a".to_string(), "b".to_string()]),
        "the last good set stays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_feed_follows_the_file() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), document(&[a.addr])).unwrap();
    let app = start(&discovery_config(&format!(
        "file = \"{}\"\nrefresh = \"50ms\"\n",
        file.path().display()
    )))
    .await;
    let addr = traffic(&app);
    wait_for_backends(addr, &["a"], Duration::from_secs(10)).await;
    std::fs::write(file.path(), document(&[b.addr])).unwrap();
    wait_for_backends(addr, &["b"], Duration::from_secs(5)).await;
    std::fs::write(file.path(), "{ truncated").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        served_by(addr, 10).await,
        HashSet::from(["b".to_string()]),
        "a broken file keeps the last good set"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_sets_membership_until_the_pools_own_source_changes_it() {
    let a = TestBackend::named("a").await;
    let b = TestBackend::named("b").await;
    let token_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(token_file.path(), "s3cret\n").unwrap();
    let text = support::daemon::config_text(&[(a.addr, 1)], "").replace(
        "[admin]\naddress = \"127.0.0.1:0\"\n",
        &format!(
            "[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
            token_file.path().display()
        ),
    );
    let (app, config) = start_with_file(&text).await;
    let (addr, admin) = (traffic(&app), app.admin_addr());
    let http = client::http1();
    let put = |pool: &str, body: String, token: Option<&str>| {
        let mut request = http::Request::put(format!("http://{admin}/pools/{pool}/backends"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        client::send(
            &http,
            request
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap(),
        )
    };
    assert_eq!(put("app", document(&[b.addr]), None).await.status, 401);
    assert_eq!(
        put("app", document(&[b.addr]), Some("wrong")).await.status,
        401
    );
    assert_eq!(
        put("nope", document(&[b.addr]), Some("s3cret"))
            .await
            .status,
        404
    );
    let bad = put(
        "app",
        "{\"backends\": [{\"address\": \"x\"}]}".into(),
        Some("s3cret"),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("not an ip:port"), "{}", bad.body);
    let ok = put("app", document(&[b.addr]), Some("s3cret")).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("\"changed\":true"), "{}", ok.body);
    wait_for_backends(addr, &["b"], Duration::from_secs(5)).await;

    // The file is this static pool's own source: a reload brings its list back.
    std::fs::write(config.path(), &text).unwrap();
    let reload = client::send(
        &client::http1(),
        http::Request::post(format!("http://{admin}/reload"))
            .header("authorization", "Bearer s3cret")
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(reload.status, 200, "{}", reload.body);
    wait_for_backends(addr, &["a"], Duration::from_secs(5)).await;
}
