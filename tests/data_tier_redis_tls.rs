//! Redis checks over TLS, against Debian's real `redis-server` listening only on its
//! `tls-port`: the check logs in as an ACL user over TLS, verifies the node's certificate the
//! way `health_check.tls` says, picks the primary by role, and follows a switchover; a check
//! with the wrong CA or the wrong password keeps its node down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::daemon::Process;
use support::metrics::{metric_reaches, metric_sum};
use support::pki::{self, Ca};
use support::redis::Redis;
use support::{bounded_by, require_tool, wait_until_blocking};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NAME: &str = "redis.test";
const PASSWORD: &str = "check-secret";

/// A `redis` check of `role` logging in as `check` with the password from `password_env`,
/// trusting `ca` for the name redis.test.
fn check(role: &str, password_env: &str, ca: &Path) -> String {
    format!(
        "kind = \"redis\"\nrole = \"{role}\"\nuser = \"check\"\npassword_env = \"{password_env}\"\n\
         interval = \"100ms\"\ntimeout = \"1s\"\nrise = 2\nfall = 2\n\
         tls = {{ ca_file = \"{}\", server_name = \"{NAME}\" }}\n",
        ca.display()
    )
}

/// `rw` over the primary of both nodes; `wrong-ca` and `wrong-password` over pools whose
/// checks can never pass. The `http` listener is the one the harness waits for.
fn config(nodes: &[SocketAddr], ca: &Path, other_ca: &Path) -> String {
    let list: Vec<String> = nodes.iter().map(|a| format!("\"{a}\"")).collect();
    let list = list.join(", ");
    let tcp = |name: &str| {
        format!(
            "[[listener]]\nname = \"{name}\"\naddress = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"{name}\"\n"
        )
    };
    let pool = |name: &str, check: String| {
        format!("[pool.{name}]\nbackends = [{list}]\n[pool.{name}.health_check]\n{check}")
    };
    [
        "[admin]\naddress = \"127.0.0.1:0\"\n[log]\naccess_log = \"off\"\n".to_string(),
        "[[listener]]\nname = \"http\"\naddress = \"127.0.0.1:0\"\n".to_string(),
        tcp("rw"),
        tcp("wrong-ca"),
        tcp("wrong-password"),
        "[pool.unused]\nbackends = [\"127.0.0.1:9\"]\n".to_string(),
        pool("rw", check("primary", "REDIS_CHECK_PASSWORD", ca)),
        // A primary pool's nodes start down: only the first failed check says why.
        pool(
            "wrong-ca",
            check("primary", "REDIS_CHECK_PASSWORD", other_ca),
        ),
        pool("wrong-password", check("any", "WRONG_PASSWORD", ca)),
    ]
    .concat()
}

/// A synchronous connection to `node` over its unix socket, which speaks plain text.
fn control(node: &Redis) -> redis::Connection {
    redis::Client::open(node.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap()
}

fn link_up(replica: &Redis) -> bool {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut control(replica))
        .unwrap_or_default();
    info.lines()
        .any(|l| l.trim_end() == "master_link_status:up")
}

/// The first word of `ROLE`'s answer from the node a new TLS session through `listener`
/// reaches, the client checking the node's certificate for redis.test.
async fn role_through(listener: SocketAddr, client: Arc<rustls::ClientConfig>) -> String {
    let tcp = tokio::net::TcpStream::connect(listener).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(NAME).unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"ROLE\r\n").await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tls.read(&mut answer).await.unwrap();
    // *3\r\n$6\r\nmaster\r\n... or *5\r\n$5\r\nslave\r\n...
    let text = String::from_utf8_lossy(&answer[..n]).into_owned();
    text.lines().nth(2).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_checks_log_in_over_tls_and_follow_the_primary() {
    if !require_tool("redis-server") {
        return;
    }
    bounded_by(Duration::from_secs(90), async {
        let ca = Ca::new("redis test CA");
        let other_ca = Ca::new("another CA");
        let leaf = ca.issue("redis", NAME, &[NAME], 1);
        let user = [
            "--user",
            "check",
            "on",
            &format!(">{PASSWORD}"),
            "~*",
            "+@all",
        ]
        .map(String::from);
        let first = Redis::start_tls(&leaf, &ca.file(), &user);
        let at = first.address();
        let follow = [
            &user[..],
            &[
                "--replicaof".into(),
                at.ip().to_string(),
                at.port().to_string(),
            ],
        ]
        .concat();
        let second = Redis::start_tls(&leaf, &ca.file(), &follow);
        wait_until_blocking(
            "the replica's TLS link to come up",
            Duration::from_secs(20),
            || link_up(&second),
        );

        let nodes = [first.address(), second.address()];
        let daemon = Process::spawn_via(
            &config(&nodes, &ca.file(), &other_ca.file()),
            &[
                "sh".into(),
                "-c".into(),
                "exec \"$0\" run --config \"$1\"".into(),
            ],
            &[
                ("REDIS_CHECK_PASSWORD", PASSWORD.to_string()),
                ("WRONG_PASSWORD", "not-it".to_string()),
            ],
        );
        let up = |node: SocketAddr| format!("backend=\"{node}\",pool=\"rw\"");
        metric_reaches(
            &daemon,
            "portero_backend_up",
            &up(first.address()),
            1.0,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(
            metric_sum(&daemon, "portero_backend_up", &up(second.address())).await,
            0.0,
            "a replica is not the primary"
        );
        let rw = daemon.listener("rw").unwrap();
        let client = pki::rustls_client(&ca, &[&rustls::version::TLS13]);
        for _ in 0..4 {
            assert_eq!(role_through(rw, Arc::clone(&client)).await, "master");
        }

        // Switchover: the replica promoted, the old primary following it.
        redis::cmd("REPLICAOF")
            .arg("NO")
            .arg("ONE")
            .query::<()>(&mut control(&second))
            .unwrap();
        let new = second.address();
        redis::cmd("REPLICAOF")
            .arg(new.ip().to_string())
            .arg(new.port())
            .query::<()>(&mut control(&first))
            .unwrap();
        metric_reaches(
            &daemon,
            "portero_backend_up",
            &up(new),
            1.0,
            Duration::from_secs(20),
        )
        .await;
        metric_reaches(
            &daemon,
            "portero_backend_up",
            &up(first.address()),
            0.0,
            Duration::from_secs(20),
        )
        .await;
        for _ in 0..4 {
            assert_eq!(role_through(rw, Arc::clone(&client)).await, "master");
        }

        // The checks that cannot pass have kept every node down all along, and say why.
        for pool in ["wrong-ca", "wrong-password"] {
            let pool = format!("pool=\"{pool}\"");
            assert_eq!(
                metric_sum(&daemon, "portero_backend_up", &pool).await,
                0.0,
                "{pool}"
            );
        }
        assert!(
            daemon.logged("UnknownIssuer"),
            "the wrong CA's failure is logged"
        );
        assert!(
            daemon.logged("Password authentication failed"),
            "the wrong password's failure is logged"
        );
    })
    .await;
}
