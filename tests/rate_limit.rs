//! The per-client rate limit at the scale it exists for: one budget shared by two portero
//! processes through a real Redis, and a flood of 100,000 distinct client addresses (named by
//! PROXY headers, which makes them cheap to fake on loopback) that must not grow the table
//! without bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::{IpAddr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::backend::TestBackend;
use support::daemon::{Process, config_text};
use support::metrics::metrics;
use support::redis::Redis;
use support::source::{connect_from, exchange, get_closing, proxy_v2, status};
use support::{metric, rss_bytes};

const WAIT: Duration = Duration::from_secs(10);

async fn get_from(from: &str, addr: SocketAddr) -> u16 {
    let mut stream = connect_from(from.parse().unwrap(), addr).await;
    status(&exchange(&mut stream, &get_closing("/"), WAIT).await.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_budget_through_redis() {
    if !support::require_tool("redis-server") {
        return;
    }
    let mut redis = Redis::start();
    let backend = TestBackend::named("app").await;
    // One request per 10 s once the burst of 6 is spent: no refill during the test.
    let extra = format!(
        "[security.rate_limit]\nrequests_per_second = 0.1\nburst = 6\nstore = \"{}\"\nstore_timeout = \"500ms\"\n",
        redis.url()
    );
    let text = config_text(&[(backend.addr, 1)], &extra);
    let (a, b) = (Process::spawn(&text), Process::spawn(&text));

    // The same client, alternating between the instances: six in all, not six each.
    let mut codes = Vec::new();
    for i in 0..10 {
        let instance = if i % 2 == 0 { &a } else { &b };
        codes.push(get_from("127.0.0.2", instance.traffic).await);
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429]);
    assert_eq!(
        get_from("127.0.0.3", a.traffic).await,
        200,
        "another client"
    );
    assert_eq!(get_from("127.0.0.3", b.traffic).await, 200);
    for process in [&a, &b] {
        let m = metrics(process).await;
        assert_eq!(
            metric(&m, "portero_rate_limit_store_errors_total"),
            0.0,
            "{m}"
        );
    }

    // Redis goes away: requests are still decided (fail open to each instance's own budget),
    // and every such decision is counted.
    redis.stop();
    assert_eq!(get_from("127.0.0.4", a.traffic).await, 200);
    let m = metrics(&a).await;
    assert!(
        metric(&m, "portero_rate_limit_store_errors_total") >= 1.0,
        "{m}"
    );
}

/// Sends one PROXY-fronted request for each of `count` distinct client addresses
/// (10.x.y.z), `parallel` at a time, from several loopback source addresses (one source
/// would run out of ephemeral ports).
async fn flood(addr: SocketAddr, first: u32, count: u32, parallel: usize) -> u64 {
    let served = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(u64::from(first)));
    let end = u64::from(first + count);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..parallel {
        let (served, next) = (Arc::clone(&served), Arc::clone(&next));
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= end {
                    return;
                }
                let client = SocketAddrV4::new((0x0a00_0000 + n as u32).into(), 40000);
                let source = IpAddr::from([127, 0, 0, 2 + (n % 16) as u8]);
                let header = proxy_v2(client, "127.0.0.1:80".parse().unwrap());
                let mut stream = connect_from(source, addr).await;
                let request = [header, get_closing("/")].concat();
                let (response, _) = exchange(&mut stream, &request, WAIT).await;
                if status(&response) == 200 {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    served.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_client_addresses_keep_the_table_bounded() {
    let backend = TestBackend::named("app").await;
    // One request per client per 100 s: no bucket refills during the run, so no entry is
    // swept as full and the table can only stay bounded by forgetting.
    let extra =
        "[security.rate_limit]\nrequests_per_second = 0.01\nburst = 2\nmax_clients = 10000\n";
    let text = config_text(&[(backend.addr, 1)], extra).replacen(
        "name = \"http\"\naddress = \"127.0.0.1:0\"\n",
        "name = \"http\"\naddress = \"127.0.0.1:0\"\nproxy_protocol = { trusted = [\"127.0.0.0/8\"] }\n",
        1,
    );
    let process = Process::spawn(&text);
    const PARALLEL: usize = 32;
    let tracked = |m: &str| metric(m, "portero_rate_limit_tracked_clients");

    // Warm up past the bound once, so the table and the allocator reach their steady size.
    assert_eq!(flood(process.traffic, 0, 20_000, PARALLEL).await, 20_000);
    let rss_before = rss_bytes(process.pid());
    let started = Instant::now();
    let mut peak = 0.0f64;
    for round in 0..8u32 {
        let served = flood(process.traffic, 20_000 + round * 10_000, 10_000, PARALLEL).await;
        assert_eq!(served, 10_000, "every distinct client is served");
        let m = metrics(&process).await;
        peak = peak.max(tracked(&m));
        assert!(
            tracked(&m) <= 10_000.0 + PARALLEL as f64,
            "round {round}: {}",
            tracked(&m)
        );
    }
    let rss_after = rss_bytes(process.pid());
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "100,000 client addresses in {:.1?}: table peak {peak} entries (bound 10,000), RSS {} -> {} KiB (+{} KiB)",
        started.elapsed() + Duration::ZERO,
        rss_before / 1024,
        rss_after / 1024,
        growth / 1024
    );
    // 80,000 more addresses than the table holds: kept, they would take about 40 bytes each
    // in the map (3+ MiB); measured growth is a few hundred KiB.
    assert!(
        peak >= 7_000.0,
        "the flood pressed the table against its bound: {peak}"
    );
    assert!(growth < 2 * 1024 * 1024, "RSS grew by {growth} bytes");
    assert_eq!(backend.requests(), 100_000);
}
