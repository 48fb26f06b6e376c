//! Micro-benchmarks of the pieces every request goes through: routing, picking a backend,
//! rewriting headers, taking an admission permit. Run with `cargo bench --bench hot_path`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use portero::admission::Admission;
use portero::backend::BackendSpec;
use portero::clock::now_us;
use portero::config::{
    Balance, HashKey, OnMarkedDown, OutlierConfig, PoolConfig, Serves, UpstreamProtocol,
};
use portero::pool::{PickRequest, Pool};
use portero::proxy::headers::{self, Hop};
use portero::route::{HostMatch, Router, normalize_host};
use std::hint::black_box;
use std::time::Duration;

fn routing(c: &mut Criterion) {
    let router = Router::new(vec![
        (
            HostMatch::parse("api.example.com").unwrap(),
            "/v2".to_string(),
            0,
        ),
        (
            HostMatch::parse("api.example.com").unwrap(),
            "/".to_string(),
            1,
        ),
        (
            HostMatch::parse("*.example.com").unwrap(),
            "/".to_string(),
            2,
        ),
        (HostMatch::Any, "/".to_string(), 3),
    ]);
    c.bench_function("route: normalise host + first match of 4", |b| {
        b.iter(|| {
            router
                .route(
                    &normalize_host(black_box("WWW.example.com:8080")),
                    black_box("/index.html"),
                )
                .copied()
        })
    });
}

fn picking(c: &mut Criterion) {
    for balance in [
        Balance::RoundRobin,
        Balance::LeastRequests,
        Balance::Random,
        Balance::ConsistentHash,
    ] {
        let config = PoolConfig {
            name: "bench".into(),
            balance,
            protocol: UpstreamProtocol::Http1,
            backends: (1..=8)
                .map(|i| BackendSpec::new(format!("10.0.0.{i}:80").parse().unwrap(), i % 3 + 1))
                .collect(),
            health_check: None,
            outlier: OutlierConfig::default(),
            hash_key: HashKey::ClientIp,
            slow_start: Duration::ZERO,
            retries: 1,
            retry_budget: 0.2,
            discovery: None,
            tls: None,
            serves: Serves::Http,
            send_proxy_protocol: None,
            on_marked_down: OnMarkedDown::Close,
        };
        let pool = Pool::build(&config, &config.backends, None, now_us());
        let now = now_us();
        c.bench_function(&format!("pick: {balance:?}, 8 weighted backends"), |b| {
            let mut key = 0u64;
            b.iter(|| {
                key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let request = PickRequest {
                    now,
                    key: Some(key),
                    exclude: &[],
                };
                pool.pick(black_box(&request)).map(|p| p.backend.address())
            })
        });
    }
}

fn header_rewrite(c: &mut Criterion) {
    let mut template = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("cookie", "session=abcdef0123456789"),
        ("x-forwarded-for", "198.51.100.1"),
    ] {
        template.insert(k, HeaderValue::from_static(v));
    }
    let hop = Hop {
        peer: "203.0.113.7".parse().unwrap(),
        trusted: false,
        proto: "http",
        host: "api.example.com",
    };
    c.bench_function(
        "headers: hop-by-hop removal + X-Forwarded-* + request id",
        |b| {
            b.iter_batched_ref(
                || template.clone(),
                |h| {
                    headers::remove_hop_by_hop(h, None);
                    headers::forwarding(h, &hop)
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
}

fn admission(c: &mut Criterion) {
    let a = Admission::new(10_000, 40_000);
    c.bench_function("admission: acquire + accept + release", |b| {
        b.iter(|| {
            let mut p = a.try_acquire().unwrap();
            p.accepted();
            black_box(p.tier())
        })
    });
}

criterion_group!(benches, routing, picking, header_rewrite, admission);
criterion_main!(benches);
