//! Role-aware checks of a replicated data store: log in as the check's user, ask the node
//! what it is, and pass only when that is the role the pool wants. A node's answer is read by
//! pure functions ([`Replication::parse`], [`Replication::from_mysql`], [`verdict`]); the
//! clients are the `redis` and `mysql_async` crates'.
//!
//! HAProxy's `redis-check` stops at PING, so a pool behind it cannot tell the primary from
//! a replica; here a `primary` pool follows a failover by itself within `fall` + `rise`
//! checks.

use super::CheckError;
use crate::config::{Role, StoreCheck};
use redis::RedisConnectionInfo;
use redis::aio::MultiplexedConnection;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// What a node said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// Takes writes (`role:master`), or follows a primary.
    pub primary: bool,
    /// A replica's link to its primary is up.
    pub link_up: bool,
    /// A replica's time since it last heard from its primary.
    pub lag: Option<Duration>,
}

/// Why a node that answered does not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleMismatch {
    /// A replica, and the pool wants the primary.
    #[error("is a replica; the pool wants the primary")]
    NotPrimary,
    /// The primary, and the pool wants replicas.
    #[error("is the primary; the pool wants replicas")]
    NotReplica,
    /// A replica whose link to its primary is down: its data is going stale.
    #[error("is a replica with its link to the primary down")]
    LinkDown,
    /// A replica further behind than `max_lag`.
    #[error("is a replica {lag:?} behind its primary, over max_lag {max:?}")]
    Lagging {
        /// How far behind.
        lag: Duration,
        /// The most the check allows.
        max: Duration,
    },
}

impl Replication {
    /// Reads Redis's `INFO replication` text (`field:value` lines). `None` when it names no
    /// role.
    pub fn parse(info: &str) -> Option<Replication> {
        let field = |name: &str| {
            info.lines()
                .filter_map(|line| line.trim_end().split_once(':'))
                .find_map(|(key, value)| (key == name).then_some(value))
        };
        let primary = match field("role")? {
            "master" => true,
            "slave" | "replica" => false,
            _ => return None,
        };
        // `-1` (never heard from it) reads as no figure, which `max_lag` refuses.
        let lag = field("master_last_io_seconds_ago")
            .and_then(|seconds| seconds.parse::<u64>().ok())
            .map(Duration::from_secs);
        Some(Replication {
            primary,
            link_up: field("master_link_status") == Some("up"),
            lag,
        })
    }
}

/// A MySQL/MariaDB replica's status row, the fields the check reads, by either vocabulary:
/// `Replica_IO_Running`/`Seconds_Behind_Source` (MySQL 8.0.22+) or
/// `Slave_IO_Running`/`Seconds_Behind_Master` (MariaDB, older MySQL).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The I/O thread (`Yes`, `No`, `Connecting`).
    pub io_running: Option<String>,
    /// The SQL thread.
    pub sql_running: Option<String>,
    /// Seconds behind the source; `None` (NULL) when the threads do not run.
    pub seconds_behind: Option<u64>,
}

impl Replication {
    /// A MySQL node's state: `@@read_only`, and its replica status row if it has one. A
    /// writable node is the primary; a read-only one is a replica, linked when both of its
    /// threads run.
    pub fn from_mysql(read_only: bool, status: Option<&ReplicaStatus>) -> Replication {
        let running = |thread: &Option<String>| thread.as_deref() == Some("Yes");
        Replication {
            primary: !read_only,
            link_up: status.is_some_and(|s| running(&s.io_running) && running(&s.sql_running)),
            lag: status
                .and_then(|s| s.seconds_behind)
                .map(Duration::from_secs),
        }
    }
}

/// Whether a node in the state `node` passes a check asking for `role`.
pub fn verdict(
    node: Replication,
    role: Role,
    max_lag: Option<Duration>,
) -> Result<(), RoleMismatch> {
    match role {
        Role::Any => Ok(()),
        Role::Primary if node.primary => Ok(()),
        Role::Primary => Err(RoleMismatch::NotPrimary),
        Role::Replica if node.primary => Err(RoleMismatch::NotReplica),
        Role::Replica if !node.link_up => Err(RoleMismatch::LinkDown),
        Role::Replica => match (max_lag, node.lag) {
            (Some(max), Some(lag)) if lag > max => Err(RoleMismatch::Lagging { lag, max }),
            (Some(max), None) => Err(RoleMismatch::Lagging {
                lag: Duration::MAX,
                max,
            }),
            _ => Ok(()),
        },
    }
}

/// Logs in to a Redis node over `stream` (plain TCP, or TLS to its `tls-port`), with AUTH
/// as the check's user and password when configured, asks `INFO replication`, and judges the
/// answer. The session is the crate's, on the stream the probe made, so the check reaches the
/// very address the pool lists and checks the certificate the way the pool's config says.
pub async fn redis<S>(stream: S, check: &StoreCheck) -> Result<(), CheckError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: redis::RedisError| CheckError::Store(format!("redis: {e}"));
    let mut login = RedisConnectionInfo::default();
    if let Some(user) = &check.user {
        login = login.set_username(user);
    }
    if let Some(password) = &check.password {
        login = login.set_password(&password.0);
    }
    let (mut connection, driver) = MultiplexedConnection::new(&login, stream)
        .await
        .map_err(failed)?;
    let mut info = redis::cmd("INFO");
    let ask = info
        .arg("replication")
        .query_async::<String>(&mut connection);
    // The driver moves the bytes; it ends only when the connection does.
    let text = tokio::select! {
        text = ask => text.map_err(failed)?,
        () = driver => return Err(CheckError::Store("redis: the node closed the connection".into())),
    };
    let node = Replication::parse(&text)
        .ok_or_else(|| CheckError::Store("redis: INFO replication names no role".into()))?;
    Ok(verdict(node, check.role, check.max_lag)?)
}

/// Logs in to the MySQL/MariaDB node at `address` as the check's user (who needs no
/// privilege beyond `REPLICATION CLIENT`, or MariaDB's `SLAVE MONITOR`, for replicas), reads
/// `@@global.read_only` and, for a read-only node, its replica status, and judges them.
pub async fn mysql(address: SocketAddr, check: &StoreCheck) -> Result<(), CheckError> {
    use mysql_async::prelude::Queryable;
    let failed = |e: mysql_async::Error| CheckError::Store(format!("mysql: {e}"));
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(address.ip().to_string())
        .tcp_port(address.port())
        .user(check.user.clone())
        .pass(check.password.as_ref().map(|p| p.0.clone()))
        // Never switch to a local socket: the check is of the address the pool lists.
        .prefer_socket(false);
    let mut connection = mysql_async::Conn::new(opts).await.map_err(failed)?;
    let read_only: Option<i64> = connection
        .query_first("SELECT @@global.read_only")
        .await
        .map_err(failed)?;
    let read_only =
        read_only.ok_or_else(|| CheckError::Store("mysql: no @@read_only".into()))? != 0;
    let status = if read_only && check.role == Role::Replica {
        replica_status(&mut connection).await.map_err(failed)?
    } else {
        None
    };
    // A polite goodbye; the verdict does not depend on it.
    let _ = connection.disconnect().await;
    Ok(verdict(
        Replication::from_mysql(read_only, status.as_ref()),
        check.role,
        check.max_lag,
    )?)
}

/// `SHOW REPLICA STATUS` (MySQL 8.0.22+, MariaDB 10.5.1+), else `SHOW SLAVE STATUS`.
async fn replica_status(
    connection: &mut mysql_async::Conn,
) -> Result<Option<ReplicaStatus>, mysql_async::Error> {
    use mysql_async::prelude::Queryable;
    let rows: Vec<mysql_async::Row> = match connection.query("SHOW REPLICA STATUS").await {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(_)) => connection.query("SHOW SLAVE STATUS").await?,
        Err(e) => return Err(e),
    };
    Ok(rows.first().map(|row| {
        let text = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| row.get_opt::<Option<String>, _>(*name)?.ok())
                .flatten()
        };
        ReplicaStatus {
            io_running: text(["Replica_IO_Running", "Slave_IO_Running"]),
            sql_running: text(["Replica_SQL_Running", "Slave_SQL_Running"]),
            seconds_behind: text(["Seconds_Behind_Source", "Seconds_Behind_Master"])
                .and_then(|s| s.parse().ok()),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
        slave0:ip=127.0.0.1,port=6381,state=online,offset=42,lag=0\r\n";
    const REPLICA: &str = "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\n\
        master_port:6380\r\nmaster_link_status:up\r\nmaster_last_io_seconds_ago:3\r\n";

    #[test]
    fn info_replication_names_the_role_the_link_and_the_lag() {
        assert_eq!(
            Replication::parse(PRIMARY),
            Some(Replication {
                primary: true,
                link_up: false,
                lag: None
            })
        );
        assert_eq!(
            Replication::parse(REPLICA),
            Some(Replication {
                primary: false,
                link_up: true,
                lag: Some(Duration::from_secs(3))
            })
        );
        let down = REPLICA
            .replace("link_status:up", "link_status:down")
            .replace("seconds_ago:3", "seconds_ago:-1");
        let node = Replication::parse(&down).unwrap();
        assert!(!node.link_up && node.lag.is_none());
        for unreadable in [
            "",
            "# Replication\r\n",
            "role:sentinel\r\n",
            "role master\r\n",
        ] {
            assert_eq!(Replication::parse(unreadable), None, "{unreadable:?}");
        }
    }

    #[test]
    fn only_the_asked_role_passes() {
        let primary = Replication::parse(PRIMARY).unwrap();
        let replica = Replication::parse(REPLICA).unwrap();
        assert_eq!(verdict(primary, Role::Primary, None), Ok(()));
        assert_eq!(
            verdict(replica, Role::Primary, None),
            Err(RoleMismatch::NotPrimary)
        );
        assert_eq!(verdict(replica, Role::Replica, None), Ok(()));
        assert_eq!(
            verdict(primary, Role::Replica, None),
            Err(RoleMismatch::NotReplica)
        );
        assert_eq!(verdict(primary, Role::Any, None), Ok(()));
        assert_eq!(verdict(replica, Role::Any, None), Ok(()));
    }

    #[test]
    fn a_replica_passes_with_its_link_up_and_within_max_lag() {
        let replica = Replication::parse(REPLICA).unwrap();
        let max = |s| Some(Duration::from_secs(s));
        assert_eq!(verdict(replica, Role::Replica, max(3)), Ok(()));
        assert_eq!(
            verdict(replica, Role::Replica, max(2)),
            Err(RoleMismatch::Lagging {
                lag: Duration::from_secs(3),
                max: Duration::from_secs(2)
            })
        );
        let unlinked = Replication {
            link_up: false,
            ..replica
        };
        assert_eq!(
            verdict(unlinked, Role::Replica, None),
            Err(RoleMismatch::LinkDown)
        );
        let unheard = Replication {
            lag: None,
            ..replica
        };
        assert!(verdict(unheard, Role::Replica, max(10)).is_err());
        assert_eq!(verdict(unheard, Role::Replica, None), Ok(()));
    }

    #[test]
    fn a_mysql_node_is_primary_when_writable_and_a_linked_replica_when_its_threads_run() {
        let status = |io: &str, sql: &str, behind: Option<u64>| ReplicaStatus {
            io_running: Some(io.into()),
            sql_running: Some(sql.into()),
            seconds_behind: behind,
        };
        let primary = Replication::from_mysql(false, None);
        assert_eq!(verdict(primary, Role::Primary, None), Ok(()));
        assert_eq!(
            verdict(primary, Role::Replica, None),
            Err(RoleMismatch::NotReplica)
        );
        let linked = Replication::from_mysql(true, Some(&status("Yes", "Yes", Some(2))));
        assert_eq!(
            verdict(linked, Role::Replica, Some(Duration::from_secs(5))),
            Ok(())
        );
        assert_eq!(
            verdict(linked, Role::Primary, None),
            Err(RoleMismatch::NotPrimary)
        );
        assert!(verdict(linked, Role::Replica, Some(Duration::from_secs(1))).is_err());
        for (io, sql) in [("Connecting", "Yes"), ("Yes", "No"), ("No", "No")] {
            let broken = Replication::from_mysql(true, Some(&status(io, sql, None)));
            assert_eq!(
                verdict(broken, Role::Replica, None),
                Err(RoleMismatch::LinkDown),
                "{io}/{sql}"
            );
        }
        // Read-only with no replication configured: neither role.
        let stray = Replication::from_mysql(true, None);
        assert!(verdict(stray, Role::Primary, None).is_err());
        assert!(verdict(stray, Role::Replica, None).is_err());
        assert_eq!(verdict(stray, Role::Any, None), Ok(()));
    }
}
