//! The MySQL side of the data tier, with Debian's real MariaDB: a primary and a replica with
//! replication set up here, a `primary` pool and a `replica` pool checked by `kind = "mysql"`
//! (a check user with a password from the environment), a switchover under steady writes
//! that the primary pool follows by itself with no acknowledged write lost, and a replica
//! killed under load that loses only its own sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::daemon::Process;
use support::mariadb::Mariadb;
use support::metrics::{metric_reaches, metric_sum};
use support::{bounded_by, require_tool, wait_until_blocking};

const CHECK_PASSWORD: &str = "check-secret";

/// `rw` over the primary pool and `ro` over the replica pool, both listing both nodes. The
/// harness wants an `http` listener too; its pool is never used.
fn config(nodes: &[SocketAddr]) -> String {
    let list: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    let list = list.join(", ");
    let check = "kind = \"mysql\"\nuser = \"check\"\npassword_env = \"MYSQL_CHECK_PASSWORD\"\n\
                 interval = \"100ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n";
    format!(
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n\
         [[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n\
         [[listener]]\nname = \"rw\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"mysql-primary\"\n\
         [[listener]]\nname = \"ro\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"mysql-replicas\"\n\
         [pool.unused]\nbackends = [\"127.0.0.1:9\"]\n\
         [pool.mysql-primary]\nbackends = [{list}]\n\
         [pool.mysql-primary.health_check]\n{check}role = \"primary\"\n\
         [pool.mysql-replicas]\nbackends = [{list}]\n\
         [pool.mysql-replicas.health_check]\n{check}role = \"replica\"\nmax_lag = \"30s\"\n"
    )
}

/// The accounts, the schema, and a replica following `primary` from its first binlog event.
fn set_up(primary: &Mariadb, replica: &Mariadb) {
    primary.sql(&format!(
        "CREATE USER 'repl'@'%' IDENTIFIED BY 'repl-secret';\
         GRANT REPLICATION SLAVE ON *.* TO 'repl'@'%';\
         CREATE USER 'check'@'%' IDENTIFIED BY '{CHECK_PASSWORD}';\
         GRANT SLAVE MONITOR ON *.* TO 'check'@'%';\
         CREATE USER 'app'@'%' IDENTIFIED BY 'app-secret';\
         CREATE DATABASE app; GRANT ALL ON app.* TO 'app'@'%';\
         CREATE TABLE app.t (n BIGINT PRIMARY KEY);"
    ));
    follow(replica, primary);
}

/// Makes `replica` a read-only replica of `primary`.
fn follow(replica: &Mariadb, primary: &Mariadb) {
    let at = primary.address();
    replica.sql(&format!(
        "SET GLOBAL read_only = 1; STOP SLAVE;\
         CHANGE MASTER TO MASTER_HOST = '{}', MASTER_PORT = {}, MASTER_USER = 'repl',\
         MASTER_PASSWORD = 'repl-secret', MASTER_USE_GTID = current_pos;\
         START SLAVE;",
        at.ip(),
        at.port()
    ));
}

/// Whether `replica` has applied everything `primary` has logged.
fn caught_up(primary: &Mariadb, replica: &Mariadb) -> bool {
    let logged = primary.sql("SELECT @@gtid_binlog_pos");
    let applied = replica.sql("SELECT @@gtid_slave_pos");
    // `Slave_running` is ON while both replication threads run.
    let running = replica.sql("SHOW GLOBAL STATUS LIKE 'Slave_running'");
    running.ends_with("ON") && logged == applied
}

async fn app_connection(listener: SocketAddr) -> mysql_async::Result<mysql_async::Conn> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(listener.ip().to_string())
        .tcp_port(listener.port())
        .user(Some("app"))
        .pass(Some("app-secret"))
        .db_name(Some("app"))
        .prefer_socket(false);
    mysql_async::Conn::new(opts).await
}

/// `@@read_only` of the node a new session through `listener` reaches.
async fn read_only_through(listener: SocketAddr) -> Option<i64> {
    let mut connection = app_connection(listener).await.ok()?;
    let value = connection.query_first("SELECT @@read_only").await.ok()?;
    let _ = connection.disconnect().await;
    value
}

/// Inserts n = from, from + 1, ... through `listener`, each until acknowledged (`INSERT IGNORE` keeps
/// a retry harmless), until `stop`; counts failed tries in `errors`.
async fn writer(
    listener: SocketAddr,
    from: u64,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) -> Vec<(u64, Instant)> {
    let mut connection = None;
    let mut acked = Vec::new();
    let mut n = from;
    while !stop.load(Ordering::SeqCst) && n < from + 100_000 {
        if connection.is_none() {
            connection = app_connection(listener).await.ok();
        }
        let Some(live) = connection.as_mut() else {
            errors.fetch_add(1, Ordering::SeqCst);
            // No primary this instant: paced, and bounded by `stop`.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        match live
            .exec_drop("INSERT IGNORE INTO t (n) VALUES (?)", (n,))
            .await
        {
            Ok(()) => {
                acked.push((n, Instant::now()));
                n += 1;
            }
            Err(_) => {
                // read_only on a demoted primary not yet marked down, or a closed session.
                errors.fetch_add(1, Ordering::SeqCst);
                connection = None;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    acked
}

fn count(node: &Mariadb) -> u64 {
    node.sql("SELECT COUNT(*) FROM app.t").parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_role_pools_follow_a_switchover_and_a_dead_replica_costs_only_its_sessions() {
    if !require_tool("mariadbd") {
        return;
    }
    bounded_by(Duration::from_secs(150), async {
        let first = Mariadb::start(1);
        let second = Mariadb::start(2);
        set_up(&first, &second);
        wait_until_blocking("the replica to catch up", Duration::from_secs(30), || caught_up(&first, &second));
        let daemon = Process::spawn_via(
            &config(&[first.address(), second.address()]),
            &["sh".into(), "-c".into(), "exec \"$0\" run --config \"$1\"".into()],
            &[("MYSQL_CHECK_PASSWORD", CHECK_PASSWORD.to_string())],
        );
        let (rw, ro) = (daemon.listener("rw").unwrap(), daemon.listener("ro").unwrap());
        let up = |pool: &str, node: SocketAddr| format!("backend=\"{node}\",pool=\"{pool}\"");
        metric_reaches(&daemon, "portero_backend_up", &up("mysql-primary", first.address()), 1.0, Duration::from_secs(20)).await;
        metric_reaches(&daemon, "portero_backend_up", &up("mysql-replicas", second.address()), 1.0, Duration::from_secs(20)).await;
        assert_eq!(metric_sum(&daemon, "portero_backend_up", "pool=\"mysql-primary\"").await, 1.0);
        for _ in 0..4 {
            assert_eq!(read_only_through(rw).await, Some(0), "writes reach the primary");
            assert_eq!(read_only_through(ro).await, Some(1), "reads reach the replica");
        }

        // Switchover under steady writes: the primary made read-only, the replica caught up
        // and promoted, the old primary following it.
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let writes = tokio::spawn(writer(rw, 0, Arc::clone(&stop), Arc::clone(&errors)));
        support::wait_until("writes to flow", Duration::from_secs(20), || count(&first) >= 200).await;
        first.sql("SET GLOBAL read_only = 1");
        wait_until_blocking("the replica to catch up", Duration::from_secs(30), || caught_up(&first, &second));
        let promoted = Instant::now();
        second.sql("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;");
        follow(&first, &second);
        metric_reaches(&daemon, "portero_backend_up", &up("mysql-primary", second.address()), 1.0, Duration::from_secs(20)).await;
        metric_reaches(&daemon, "portero_backend_up", "pool=\"mysql-primary\"", 1.0, Duration::from_secs(20)).await;
        let followed = promoted.elapsed();
        let at_follow = count(&second);
        support::wait_until("writes on the new primary", Duration::from_secs(20), || count(&second) >= at_follow + 200).await;
        stop.store(true, Ordering::SeqCst);
        let acked = writes.await.unwrap();
        let after = acked.iter().filter(|(_, at)| *at > promoted).count();
        let acknowledged: std::collections::BTreeSet<u64> = acked.iter().map(|(n, _)| *n).collect();
        let stored: std::collections::BTreeSet<u64> = second
            .sql("SELECT n FROM app.t")
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let lost: Vec<_> = acknowledged.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged writes lost: {} of {}", lost.len(), acknowledged.len());
        eprintln!(
            "mysql switchover: {} writes acknowledged ({after} after it), none lost; primary pool followed in {followed:?}; {} failed tries",
            acked.len(),
            errors.load(Ordering::SeqCst)
        );

        // The old primary rejoins as the replica; then it dies under load. Writes through the
        // primary listener never notice; only the replica's own sessions end.
        metric_reaches(&daemon, "portero_backend_up", &up("mysql-replicas", first.address()), 1.0, Duration::from_secs(30)).await;
        let mut first = first;
        let stop = Arc::new(AtomicBool::new(false));
        let write_errors = Arc::new(AtomicU64::new(0));
        let writes = tokio::spawn(writer(rw, 1_000_000, Arc::clone(&stop), Arc::clone(&write_errors)));
        let mut reader = app_connection(ro).await.unwrap();
        let _: Option<i64> = reader.query_first("SELECT COUNT(*) FROM t").await.unwrap();
        let before = count(&second);
        first.kill();
        let read_after = reader.query_first::<i64, _>("SELECT COUNT(*) FROM t").await;
        assert!(read_after.is_err(), "the dead replica's session ended");
        support::wait_until("writes to go on", Duration::from_secs(20), || count(&second) >= before + 300).await;
        stop.store(true, Ordering::SeqCst);
        let acked = writes.await.unwrap();
        assert!(!acked.is_empty());
        assert_eq!(write_errors.load(Ordering::SeqCst), 0, "a write failed while only the replica died");
    })
    .await;
}
