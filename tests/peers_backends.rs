//! The backend half of the matrix of real peers: Python `http.server`, Node `http`, uvicorn
//! (ASGI), gunicorn (WSGI) and nginx behind portero with active health checks on. Each serves
//! traffic (origin-form targets, the client's Host, request bodies), and each is made sick
//! through its own `/healthz`, shown ejected after `fall` failed checks with nothing but health
//! checks reaching it, then shown back in rotation. The scripted peers route on the raw
//! request target, as applications do, so a probe that is not origin-form misses `/healthz`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::client::{self, send};
use support::daemon::{start, traffic};
use support::peers::{self, FALL, INTERVAL, Kind, Peer, RISE, wait_probed};

/// One GET through portero; (status, the `x-backend` that answered).
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = Request::get(format!("http://{addr}{path}"))
        .header("host", "app.test")
        .body(Full::default())
        .unwrap();
    let reply = send(&client::http1(), request).await;
    assert_eq!(reply.body, reply.header("x-backend"), "{reply:?}");
    (reply.status.as_u16(), reply.body)
}

/// Two `kind` peers behind portero with health checks on; `None` when the program is missing.
async fn pair(kind: Kind) -> Option<(Peer, Peer, std::sync::Arc<portero::App>)> {
    let (a, b) = (Peer::spawn(kind, "a")?, Peer::spawn(kind, "b")?);
    let app = start(&peers::config(&[a.addr, b.addr], "")).await;
    wait_probed(&a).await;
    wait_probed(&b).await;
    Some((a, b, app))
}

/// 20 GETs and a 100 KB POST through portero: every answer 200 from one of the peers, both
/// serve, and each peer saw exactly the requests it answered, with origin-form targets and the
/// client's Host, and health checks with its own address as Host.
async fn serves_through_portero(kind: Kind) {
    let Some((a, b, app)) = pair(kind).await else {
        return;
    };
    let addr = traffic(&app);
    let mut served: HashMap<String, u64> = HashMap::new();
    for i in 0..20 {
        let (status, name) = get(addr, &format!("/cell/{i}?q={i}")).await;
        assert_eq!(status, 200, "{name}");
        *served.entry(name).or_default() += 1;
    }
    let post = Request::post(format!("http://{addr}/cell/post?q=post"))
        .header("host", "app.test")
        .body(Full::new(Bytes::from(vec![b'p'; 100_000])))
        .unwrap();
    let reply = send(&client::http1(), post).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    *served
        .entry(reply.header("x-backend").to_string())
        .or_default() += 1;
    assert!(
        served.contains_key("a") && served.contains_key("b"),
        "{served:?}"
    );

    // nginx writes its access log after the response: wait for each peer's share.
    let sa = a.wait_seen(|seen| seen.requests >= served["a"]).await;
    let sb = b.wait_seen(|seen| seen.requests >= served["b"]).await;
    assert_eq!(
        (sa.requests, sb.requests),
        (served["a"], served["b"]),
        "{sa:?} {sb:?}"
    );
    for (peer, seen) in [(&a, &sa), (&b, &sb)] {
        assert_eq!(seen.absolute, 0, "{}: {seen:?}", peer.name);
        assert!(
            seen.last_target.starts_with("/cell/") && seen.last_target.contains("?q="),
            "{}: {seen:?}",
            peer.name
        );
        assert_eq!(seen.last_host, "app.test", "{}: {seen:?}", peer.name);
        // A check without `host` names the backend's own address.
        assert_eq!(seen.health_host, peer.addr.to_string(), "{}", peer.name);
    }
}

/// `b` made sick through its `/healthz`: ejected on its `FALL`th failed check, then no
/// request reaches it while traffic runs over several more checks; made well: back after
/// `RISE` passed checks, and requests reach it again.
async fn sick_is_ejected_and_recovers(kind: Kind) {
    let Some((_a, b, app)) = pair(kind).await else {
        return;
    };
    let addr = traffic(&app);
    // Counted before the flip: a check could land between the flip and a later count.
    let failed_before = b.seen().await.health_failed;
    b.set_sick(true).await;
    let Some(took) = peers::time_to_state(&app, b.addr, "unhealthy", Duration::from_secs(5)).await
    else {
        panic!(
            "{kind:?}: a backend whose /healthz answers 503 was never ejected; it saw {:?}",
            b.seen().await
        );
    };
    let failed = b.seen().await.health_failed - failed_before;
    eprintln!(
        "{kind:?}: ejected {took:?} after /healthz turned 503, on failed check {failed} \
         (fall {FALL} x interval {INTERVAL:?})"
    );
    assert!(
        (FALL..=FALL + 1).contains(&failed),
        "ejected after {failed} failed checks, fall is {FALL}"
    );
    // Checks are jittered by up to 10%; the rest is slack for a loaded machine (the count of
    // failed checks above is the exact measure).
    let bound = INTERVAL.mul_f64(1.1 * FALL as f64) + Duration::from_millis(600);
    assert!(took <= bound, "ejection took {took:?}, over {bound:?}");

    // Traffic until b has failed two more checks: all of it goes to a.
    let before = b.seen().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut sent = 0;
    while b.seen().await.health_failed < before.health_failed + 2 {
        assert!(
            Instant::now() < deadline && sent < 2_000,
            "b stopped being checked"
        );
        for _ in 0..5 {
            assert_eq!(get(addr, "/while-sick").await, (200, "a".to_string()));
            sent += 1;
        }
    }
    let after = b.seen().await;
    assert_eq!(
        after.requests, before.requests,
        "{sent} requests while b was ejected, yet some reached it: {after:?}"
    );

    let sick = b.seen().await;
    let passed_before = sick.health - sick.health_failed;
    b.set_sick(false).await;
    let took = peers::time_to_state(&app, b.addr, "healthy", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("{kind:?}: b never came back"));
    let seen = b.seen().await;
    let passed = seen.health - seen.health_failed - passed_before;
    eprintln!("{kind:?}: back {took:?} after /healthz turned 200, on passed check {passed}");
    assert!(
        passed >= RISE,
        "back after {passed} passed checks, rise is {RISE}"
    );
    let mut tries = 0;
    while get(addr, "/after").await.1 != "b" {
        tries += 1;
        assert!(tries < 50, "b is healthy but gets no requests");
    }
    b.wait_seen(|seen| seen.requests > after.requests).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_python_http_server() {
    serves_through_portero(Kind::PythonHttpServer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_python_sick_is_ejected_and_recovers() {
    sick_is_ejected_and_recovers(Kind::PythonHttpServer).await;
}

/// The check's own keys against a real server: the probe carries the configured `host`, and
/// with `expect_body = "ok"` a backend whose `/healthz` answers 200 "degraded" is ejected
/// though its status passes, then comes back when it says "ok" again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_python_probe_host_and_expect_body() {
    let kind = Kind::PythonHttpServer;
    let (Some(a), Some(b)) = (Peer::spawn(kind, "a"), Peer::spawn(kind, "b")) else {
        return;
    };
    let keys = "host = \"health.app.test\"\nexpect_status = \"200\"\nexpect_body = \"ok\"\n";
    let table = "[pool.app.health_check]\n";
    let config = peers::config(&[a.addr, b.addr], "").replace(table, &format!("{table}{keys}"));
    let app = start(&config).await;
    wait_probed(&a).await;
    wait_probed(&b).await;
    assert_eq!(b.seen().await.health_host, "health.app.test");

    let failed_before = b.seen().await.health_failed;
    b.set_degraded().await;
    let took = peers::time_to_state(&app, b.addr, "unhealthy", Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("200 \"degraded\" passed expect_body = \"ok\""));
    let failed = b.seen().await.health_failed - failed_before;
    eprintln!("degraded: ejected {took:?} after, on check {failed}");
    assert!(
        (FALL..=FALL + 1).contains(&failed),
        "ejected after {failed} checks"
    );
    let before = b.seen().await.requests;
    for _ in 0..20 {
        assert_eq!(get(traffic(&app), "/").await, (200, "a".to_string()));
    }
    assert_eq!(b.seen().await.requests, before);

    b.set_sick(false).await;
    assert!(
        peers::time_to_state(&app, b.addr, "healthy", Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_node_http() {
    serves_through_portero(Kind::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_node_sick_is_ejected_and_recovers() {
    sick_is_ejected_and_recovers(Kind::Node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_uvicorn_asgi() {
    serves_through_portero(Kind::Uvicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_uvicorn_sick_is_ejected_and_recovers() {
    sick_is_ejected_and_recovers(Kind::Uvicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_gunicorn_wsgi() {
    serves_through_portero(Kind::Gunicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_gunicorn_sick_is_ejected_and_recovers() {
    sick_is_ejected_and_recovers(Kind::Gunicorn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_nginx() {
    serves_through_portero(Kind::Nginx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_backend_nginx_sick_is_ejected_and_recovers() {
    sick_is_ejected_and_recovers(Kind::Nginx).await;
}
