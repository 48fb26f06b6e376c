//! The data tier behind tcp listeners, with Debian's real `redis-server`: a primary and two
//! replicas on loopback ports, a `primary` pool and a `replica` pool checked by role, writes
//! through the one and reads through the other, and a switchover under steady writes that the
//! primary pool follows by itself, losing no acknowledged write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use redis::AsyncCommands;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::metrics::{metric_reaches, metric_sum};
use support::redis::Redis;
use support::{bounded_by, daemon, require_tool, wait_until_blocking};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Two tcp listeners: `rw` over the pool of the primary, `ro` over the pool of replicas;
/// both pools hold all three nodes and let their checks pick.
fn config(nodes: &[SocketAddr]) -> String {
    let list: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    let list = list.join(", ");
    let check = "kind = \"redis\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n";
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
         [[listener]]\nname = \"rw\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"redis-primary\"\n\
         [[listener]]\nname = \"ro\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"redis-replicas\"\n\
         [pool.redis-primary]\nbackends = [{list}]\n\
         [pool.redis-primary.health_check]\n{check}role = \"primary\"\n\
         [pool.redis-replicas]\nbackends = [{list}]\n\
         [pool.redis-replicas.health_check]\n{check}role = \"replica\"\nmax_lag = \"30s\"\n"
    )
}

/// A synchronous connection straight to a node (not through portero).
fn direct(node: &Redis) -> redis::Connection {
    redis::Client::open(format!("redis://{}", node.address()))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn info_field(connection: &mut redis::Connection, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(connection)
        .ok()?;
    info.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix(&format!("{field}:"))
            .map(str::to_string)
    })
}

/// How many keys the node holds.
fn dbsize(connection: &mut redis::Connection) -> u64 {
    redis::cmd("DBSIZE").query(connection).unwrap_or(0)
}

/// Whether `replica` follows its primary with the link up and has every byte it was sent.
fn in_sync(primary: &mut redis::Connection, replica: &mut redis::Connection) -> bool {
    let offset = info_field(primary, "master_repl_offset");
    info_field(replica, "master_link_status").as_deref() == Some("up")
        && offset.is_some()
        && info_field(replica, "slave_repl_offset") == offset
}

/// The role of the node a new session through `listener` reaches.
async fn role_through(listener: SocketAddr) -> Option<String> {
    let client = redis::Client::open(format!("redis://{listener}")).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let role: redis::Value = redis::cmd("ROLE").query_async(&mut connection).await.ok()?;
    match role {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::BulkString(name)) => String::from_utf8(name.clone()).ok(),
            _ => None,
        },
        _ => None,
    }
}

/// Writes `key:N` = N through `listener`, N = 0, 1, ..., each until it is acknowledged (a
/// failed write is tried again on a new session: SET is idempotent), until `stop` or
/// `limit` writes. Returns the acknowledged N, in order, with when each was acknowledged.
async fn writer(listener: SocketAddr, stop: Arc<AtomicBool>, limit: u64) -> Vec<(u64, Instant)> {
    let client = redis::Client::open(format!("redis://{listener}")).unwrap();
    let mut connection = None;
    let mut acked = Vec::new();
    let mut n = 0;
    while n < limit && !stop.load(Ordering::SeqCst) {
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.ok();
        }
        let Some(live) = connection.as_mut() else {
            // No primary in the pool this instant: portero closed the session. Paced, and
            // bounded by `stop`.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let written: redis::RedisResult<()> = live.set(format!("key:{n}"), n).await;
        match written {
            Ok(()) => {
                acked.push((n, Instant::now()));
                n += 1;
            }
            Err(_) => {
                // READONLY from a demoted primary not yet marked down, or a closed session.
                connection = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_primary_and_replica_pools_follow_a_switchover_without_losing_a_write() {
    if !require_tool("redis-server") {
        return;
    }
    bounded_by(Duration::from_secs(90), async {
        let first = Redis::start_tcp(&[]);
        let follow = |primary: &Redis| {
            let at = primary.address();
            vec!["--replicaof".to_string(), at.ip().to_string(), at.port().to_string()]
        };
        let second = Redis::start_tcp(&follow(&first));
        let third = Redis::start_tcp(&follow(&first));
        let (mut p, mut r2, mut r3) = (direct(&first), direct(&second), direct(&third));
        wait_until_blocking("both replicas to sync", Duration::from_secs(20), || {
            in_sync(&mut p, &mut r2) && in_sync(&mut p, &mut r3)
        });
        let nodes = [first.address(), second.address(), third.address()];
        let app = daemon::start(&config(&nodes)).await;
        let (rw, ro) = (app.listener_addr("rw").unwrap(), app.listener_addr("ro").unwrap());
        let up = |pool: &'static str, node: SocketAddr| {
            let app = Arc::clone(&app);
            async move {
                metric_sum(&app, "portero_backend_up", &format!("backend=\"{node}\",pool=\"{pool}\"")).await
            }
        };
        // The checks settle: the primary in one pool, the two replicas in the other.
        metric_reaches(&app, "portero_backend_up", "pool=\"redis-primary\"", 1.0, Duration::from_secs(10)).await;
        metric_reaches(&app, "portero_backend_up", "pool=\"redis-replicas\"", 2.0, Duration::from_secs(10)).await;
        assert_eq!(up("redis-primary", first.address()).await, 1.0);
        for _ in 0..6 {
            assert_eq!(role_through(rw).await.as_deref(), Some("master"));
            assert_eq!(role_through(ro).await.as_deref(), Some("slave"), "reads never reach the primary");
        }

        // A session held open on the primary, as an application's pooled connection is.
        let mut held = tokio::net::TcpStream::connect(rw).await.unwrap();
        held.write_all(b"PING\r\n").await.unwrap();
        let mut pong = [0u8; 7];
        held.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"+PONG\r\n");

        // Steady writes through the primary listener, then a switchover under them: writes
        // paused on the old primary, the new one caught up, promoted, the old one following.
        let stop = Arc::new(AtomicBool::new(false));
        let writes = tokio::spawn(writer(rw, Arc::clone(&stop), 200_000));
        support::wait_until("writes to flow", Duration::from_secs(10), || dbsize(&mut p) >= 200).await;
        redis::cmd("CLIENT").arg("PAUSE").arg(10_000).arg("WRITE").query::<()>(&mut p).unwrap();
        wait_until_blocking("the replica to catch up", Duration::from_secs(10), || {
            in_sync(&mut p, &mut r2)
        });
        let promoted = Instant::now();
        redis::cmd("REPLICAOF").arg("NO").arg("ONE").query::<()>(&mut r2).unwrap();
        let new_primary = second.address();
        for follower in [&mut p, &mut r3] {
            redis::cmd("REPLICAOF")
                .arg(new_primary.ip().to_string())
                .arg(new_primary.port())
                .query::<()>(follower)
                .unwrap();
        }
        redis::cmd("CLIENT").arg("UNPAUSE").query::<()>(&mut p).unwrap();

        // The primary pool follows by itself; sessions to the old primary were closed.
        metric_reaches(&app, "portero_backend_up", &format!("backend=\"{new_primary}\",pool=\"redis-primary\""), 1.0, Duration::from_secs(10)).await;
        metric_reaches(&app, "portero_backend_up", "pool=\"redis-primary\"", 1.0, Duration::from_secs(10)).await;
        let followed = promoted.elapsed();
        // The held session to the old primary was closed when checks marked it down.
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), held.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the session to the demoted primary stayed open");
        // Writes go on, on the new primary.
        let mut on_new = direct(&second);
        let at_follow = dbsize(&mut on_new);
        support::wait_until("writes on the new primary", Duration::from_secs(20), || {
            dbsize(&mut on_new) >= at_follow + 200
        })
        .await;
        stop.store(true, Ordering::SeqCst);
        let acked = writes.await.unwrap();
        let after: Vec<_> = acked.iter().filter(|(_, at)| *at > promoted).collect();
        assert!(!after.is_empty(), "no write was acknowledged after the switchover");
        let gap = after.first().unwrap().1.duration_since(promoted);

        // Every acknowledged write is on the new primary.
        let mut check = direct(&second);
        let keys: Vec<String> = acked.iter().map(|(n, _)| format!("key:{n}")).collect();
        let values: Vec<Option<u64>> = redis::cmd("MGET").arg(&keys).query(&mut check).unwrap();
        let lost: Vec<u64> = acked
            .iter()
            .zip(&values)
            .filter(|((n, _), value)| **value != Some(*n))
            .map(|((n, _), _)| *n)
            .collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {} of {}, first {:?}", lost.len(), acked.len(), lost.first());

        // Reads: the old primary rejoins the replica pool once it has synced.
        metric_reaches(&app, "portero_backend_up", &format!("backend=\"{}\",pool=\"redis-replicas\"", first.address()), 1.0, Duration::from_secs(20)).await;
        assert_eq!(up("redis-replicas", new_primary).await, 0.0, "the new primary left the replica pool");
        for _ in 0..6 {
            assert_eq!(role_through(ro).await.as_deref(), Some("slave"));
            assert_eq!(role_through(rw).await.as_deref(), Some("master"));
        }
        let cut = metric_sum(&app, "portero_tcp_sessions_total", "end=\"marked_down\"").await;
        assert!(cut >= 1.0, "the held session's end is counted as marked_down");
        eprintln!(
            "switchover: {} writes acknowledged ({} after it), none lost; primary pool followed in {followed:?}; \
             first write on the new primary {gap:?} after the promotion; {cut} session(s) to the old primary closed",
            acked.len(),
            after.len()
        );
    })
    .await;
}
