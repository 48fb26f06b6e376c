use super::*;
use crate::clock::now_us;
use crate::config::{Balance, HashKey, OutlierConfig, UpstreamProtocol};

fn config(balance: Balance, backends: &[(&str, u32)]) -> PoolConfig {
    PoolConfig {
        name: "api".into(),
        balance,
        protocol: UpstreamProtocol::Http1,
        backends: backends
            .iter()
            .map(|(a, w)| BackendSpec::new(a.parse().unwrap(), *w))
            .collect(),
        health_check: None,
        outlier: OutlierConfig::default(),
        hash_key: HashKey::ClientIp,
        slow_start: Duration::ZERO,
        retries: 1,
        retry_budget: 0.2,
        discovery: None,
        tls: None,
        serves: crate::config::Serves::Http,
        send_proxy_protocol: None,
        on_marked_down: crate::config::OnMarkedDown::Close,
    }
}

fn four(balance: Balance) -> Pool {
    let backends = [
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 1),
        ("10.0.0.4:80", 1),
    ];
    build(&config(balance, &backends), None, now_us())
}

fn build(config: &PoolConfig, previous: Option<&Pool>, now: u64) -> Pool {
    Pool::build(config, &config.backends, previous, now)
}

fn request(now: u64) -> PickRequest<'static> {
    PickRequest {
        now,
        key: None,
        exclude: &[],
    }
}

fn take_down(pool: &Pool, index: usize) {
    pool.members()[index].backend.record_check(false, 1, 1);
}

#[test]
fn picks_by_weight_and_skips_unhealthy() {
    let pool = build(
        &config(
            Balance::RoundRobin,
            &[("10.0.0.1:80", 2), ("10.0.0.2:80", 1), ("10.0.0.3:80", 1)],
        ),
        None,
        now_us(),
    );
    let first = pool.members()[0].backend.address();
    let now = now_us();
    assert_eq!(
        (0..400)
            .filter(|_| pool.pick(&request(now)).unwrap().backend.address() == first)
            .count(),
        200
    );
    take_down(&pool, 0);
    assert!((0..50).all(|_| pool.pick(&request(now)).unwrap().backend.address() != first));
    pool.members()[1].backend.start_draining();
    pool.members()[2].backend.start_draining();
    assert!(
        pool.pick(&request(now)).is_none(),
        "draining members never take new requests"
    );
}

#[test]
fn a_pool_replaced_under_a_request_still_serves_it() {
    let pool = four(Balance::RoundRobin);
    let now = now_us();
    for member in &pool.members()[..3] {
        member.backend.start_draining();
    }
    let last = pool.members()[3].backend.address();
    assert!((0..20).all(|_| pool.pick(&request(now)).unwrap().backend.address() == last));
    // Once every member drains, the pool can only be one a swap has replaced since the request
    // loaded it: its healthy members take the request rather than a 503.
    pool.members()[3].backend.start_draining();
    take_down(&pool, 0);
    let picked: std::collections::HashSet<_> = (0..200)
        .map(|_| pool.pick(&request(now)).unwrap().backend.address())
        .collect();
    assert_eq!(picked.len(), 3, "the three that are up: {picked:?}");
    assert!(!picked.contains(&pool.members()[0].backend.address()));
    let all: Vec<_> = pool.members().iter().map(|m| m.backend.address()).collect();
    assert!(
        pool.pick(&PickRequest {
            now,
            key: None,
            exclude: &all,
        })
        .is_none(),
        "what a try excluded stays excluded"
    );
}

#[test]
fn panic_mode_spreads_over_all_when_fewer_than_half_are_healthy() {
    for balance in [
        Balance::RoundRobin,
        Balance::Random,
        Balance::LeastRequests,
        Balance::ConsistentHash,
    ] {
        let pool = four(balance);
        let now = now_us();
        take_down(&pool, 1);
        let picked = pool.pick(&request(now)).unwrap();
        assert!(!picked.panic, "{balance:?}: 3 of 4 healthy is not panic");
        take_down(&pool, 2);
        take_down(&pool, 3);
        let mut seen = [0usize; 4];
        for k in 0..400u64 {
            let picked = pool
                .pick(&PickRequest {
                    now,
                    key: Some(k.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
                    exclude: &[],
                })
                .unwrap();
            assert!(picked.panic, "{balance:?}: 1 of 4 healthy is panic");
            seen[pool
                .members()
                .iter()
                .position(|m| Arc::ptr_eq(&m.backend, picked.backend))
                .unwrap()] += 1;
        }
        assert!(
            seen.iter().all(|&n| n > 40),
            "{balance:?}: spread over all: {seen:?}"
        );
        take_down(&pool, 0);
        assert!(
            pool.pick(&request(now)).is_none(),
            "{balance:?}: none healthy: no pick (503)"
        );
    }
}

/// A pool whose check asks for `role`.
fn with_role(role: crate::config::Role) -> Pool {
    use crate::config::{CheckKind, HealthCheckConfig, StoreCheck};
    let mut config = config(
        Balance::LeastConn,
        &[
            ("10.0.0.1:6379", 1),
            ("10.0.0.2:6379", 1),
            ("10.0.0.3:6379", 1),
        ],
    );
    config.health_check = Some(HealthCheckConfig {
        kind: CheckKind::Redis(StoreCheck {
            role,
            user: None,
            password: None,
            max_lag: None,
            tls: None,
        }),
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        rise: 2,
        fall: 2,
    });
    build(&config, None, now_us())
}

#[test]
fn a_role_pool_takes_no_member_before_its_checks_and_never_panics() {
    let pool = with_role(crate::config::Role::Primary);
    let now = now_us();
    assert!(
        pool.pick(&request(now)).is_none(),
        "no node has a known role before a check"
    );
    let primary = &pool.members()[1].backend;
    primary.record_check(true, 2, 2);
    assert!(
        pool.pick(&request(now)).is_none(),
        "rise = 2 passes in a row"
    );
    primary.record_check(true, 2, 2);
    for _ in 0..50 {
        let picked = pool.pick(&request(now)).unwrap();
        assert!(
            Arc::ptr_eq(picked.backend, primary),
            "1 of 3 up: the primary, never a replica"
        );
        assert!(!picked.panic);
    }
    let any = with_role(crate::config::Role::Any);
    assert!(
        any.pick(&request(now)).is_some(),
        "role = any starts up, as HTTP pools do"
    );
}

#[tokio::test]
async fn a_session_hears_its_backend_marked_down() {
    let pool = with_role(crate::config::Role::Primary);
    let backend = Arc::clone(&pool.members()[0].backend);
    backend.record_check(true, 1, 1);
    let seen = backend.downs();
    let waiting = tokio::spawn({
        let backend = Arc::clone(&backend);
        async move { backend.marked_down_after(seen).await }
    });
    backend.record_check(true, 1, 1);
    assert!(!waiting.is_finished());
    backend.record_check(false, 1, 1);
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken by the mark")
        .unwrap();
    // A session that began after the mark waits for the next one.
    let later = backend.downs();
    let next = backend.marked_down_after(later);
    assert!(
        tokio::time::timeout(Duration::from_millis(20), next)
            .await
            .is_err(),
        "not woken by a mark it began after"
    );
}

#[test]
fn retries_exclude_what_was_tried() {
    let pool = four(Balance::RoundRobin);
    let now = now_us();
    let tried: Vec<SocketAddr> = pool.members()[..3]
        .iter()
        .map(|m| m.backend.address())
        .collect();
    for _ in 0..20 {
        let picked = pool
            .pick(&PickRequest {
                now,
                key: None,
                exclude: &tried,
            })
            .unwrap();
        assert_eq!(
            picked.backend.address(),
            pool.members()[3].backend.address()
        );
    }
}

#[test]
fn never_more_than_half_the_pool_is_ejected() {
    let pool = four(Balance::RoundRobin);
    let now = now_us();
    assert!(pool.try_eject(&pool.members()[0].backend, now).is_some());
    assert!(pool.try_eject(&pool.members()[1].backend, now).is_some());
    assert_eq!(pool.try_eject(&pool.members()[2].backend, now), None);
    assert!(!pool.members()[2].backend.ejected_at(now));
    // Ejection runs out by itself.
    let later = now + Duration::from_secs(31).as_micros() as u64;
    assert!(pool.members()[0].backend.is_selectable(later));
}

#[test]
fn repeated_ejections_last_longer() {
    let pool = four(Balance::RoundRobin);
    let backend = &pool.members()[0].backend;
    let now = now_us();
    assert_eq!(pool.try_eject(backend, now), Some(Duration::from_secs(30)));
    let after = now + 31_000_000;
    assert_eq!(
        pool.try_eject(backend, after),
        Some(Duration::from_secs(60))
    );
}

#[test]
fn rebuild_keeps_live_backends_that_stay() {
    let old = build(
        &config(
            Balance::RoundRobin,
            &[("10.0.0.1:80", 1), ("10.0.0.2:80", 1)],
        ),
        None,
        now_us(),
    );
    take_down(&old, 0);
    let now = now_us();
    let new = build(
        &config(
            Balance::RoundRobin,
            &[("10.0.0.1:80", 5), ("10.0.0.3:80", 1)],
        ),
        Some(&old),
        now,
    );
    assert!(Arc::ptr_eq(
        &old.members()[0].backend,
        &new.members()[0].backend
    ));
    assert!(
        !new.members()[0].backend.is_selectable(now),
        "health carried over"
    );
    assert_eq!(new.members()[0].weight, 5);
    assert_eq!(
        new.members()[1].backend.up_since(),
        now,
        "a newcomer starts its slow-start ramp"
    );
    assert!(
        std::ptr::eq(old.retry_budget(), new.retry_budget()),
        "the retry budget carries over"
    );
}
