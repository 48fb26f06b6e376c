//! The read-only endpoints: `/metrics`, `/readyz`, `/status`.

use super::Body;
use super::{AdminCtx, text};
use crate::config::{Role, Serves};
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

pub(super) fn metrics(ctx: &AdminCtx) -> Response<Body> {
    refresh_gauges(ctx);
    let mut response = Response::new(Body::from(ctx.metrics.encode()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Gauges that mirror live state are set at scrape time; backends are labelled only while
/// they are members, so the label set stays bounded.
fn refresh_gauges(ctx: &AdminCtx) {
    let m = &ctx.metrics;
    let a = &ctx.admission;
    m.connections
        .limit
        .with_label_values(&["baseline"])
        .set(a.baseline() as i64);
    m.connections
        .limit
        .with_label_values(&["burst"])
        .set(a.burst() as i64);
    m.connections.in_burst.set(a.in_burst() as i64);
    m.pools.backend_up.reset();
    m.pools.backend_in_flight.reset();
    m.pools.backends.reset();
    m.pools.upstream_connections.reset();
    m.pools.pool_role.reset();
    let snapshot = ctx.snapshot.load();
    let now = crate::clock::now_us();
    for (name, pool) in snapshot.pools() {
        if let Some(role) = role_name(pool.config().role()) {
            m.pools.pool_role.with_label_values(&[name, role]).set(1);
        }
        let clients = snapshot.clients(name);
        for (index, member) in pool.members().iter().enumerate() {
            let labels = [name.as_str(), &**member.backend.label()];
            m.pools
                .backend_up
                .with_label_values(&labels)
                .set(i64::from(member.backend.is_selectable(now)));
            m.pools
                .backend_in_flight
                .with_label_values(&labels)
                .set(member.backend.in_flight() as i64);
            if let Some(clients) = clients {
                m.pools
                    .upstream_connections
                    .with_label_values(&labels)
                    .set(clients.get(index).open_connections());
            }
            m.pools
                .backends
                .with_label_values(&[name.as_str(), member.backend.state_at(now).as_str()])
                .inc();
        }
    }
}

pub(super) fn readyz(ctx: &AdminCtx) -> Response<Body> {
    let state = ctx.readiness.as_str();
    if state != "ready" {
        return text(StatusCode::SERVICE_UNAVAILABLE, &format!("{state}\n"));
    }
    let snapshot = ctx.snapshot.load();
    let now = crate::clock::now_us();
    let empty: Vec<&str> = snapshot
        .pools()
        .iter()
        .filter(|(_, pool)| !pool.members().iter().any(|m| m.backend.is_selectable(now)))
        .map(|(name, _)| name.as_str())
        .collect();
    if empty.is_empty() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("no healthy backend in: {}\n", empty.join(", ")),
        )
    }
}

/// The role a pool's checks keep, when they keep one.
fn role_name(role: Role) -> Option<&'static str> {
    match role {
        Role::Primary => Some("primary"),
        Role::Replica => Some("replica"),
        Role::Any => None,
    }
}

pub(super) fn status(ctx: &AdminCtx) -> serde_json::Value {
    let snapshot = ctx.snapshot.load();
    let a = &ctx.admission;
    let pools: Vec<_> = snapshot
        .pools()
        .iter()
        .map(|(name, pool)| {
            let backends: Vec<_> = pool
                .members()
                .iter()
                .map(|m| {
                    json!({
                        "address": m.backend.address().to_string(),
                        "state": m.backend.state().as_str(),
                        "weight": m.weight,
                        "in_flight": m.backend.in_flight(),
                    })
                })
                .collect();
            let config = pool.config();
            let serves = match config.serves {
                Serves::Http => "http",
                Serves::Tcp => "tcp",
            };
            let role = role_name(config.role()).unwrap_or("any");
            json!({ "name": name, "serves": serves, "role": role, "backends": backends })
        })
        .collect();
    let listeners: Vec<_> = ctx
        .listeners
        .load()
        .iter()
        .map(|(name, address)| json!({ "name": name, "address": address.to_string() }))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "state": ctx.readiness.as_str(),
        "generation": snapshot.generation(),
        "connections": {
            "open": a.open(),
            "baseline": a.baseline(),
            "burst": a.burst(),
            "in_burst": a.in_burst(),
        },
        "listeners": listeners,
        "pools": pools,
    })
}
