//! ACME against a real ACME server: Debian's pebble, Let's Encrypt's test CA, on loopback,
//! resolving every name to 127.0.0.1 so its validations reach portero's listeners on the
//! ports each test names. Clients verify what portero serves against pebble's root: curl (not
//! rustls, not hyper) and a rustls client that reads serials.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use portero::App;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::backend::TestBackend;
use support::external::free_port;
use support::metrics::{metric_reaches, metric_sum};
use support::pebble::{Options, Pebble};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const ISSUED: &str = "portero_acme_orders_total";
const LIMIT: Duration = Duration::from_secs(60);

/// One portero in front of pebble: the plain listener (redirecting to https, as an edge's
/// port 80 does) on pebble's HTTP-01 port, the TLS one on its TLS-ALPN-01 port.
struct Rig {
    pebble: Pebble,
    options: Options,
    storage: tempfile::TempDir,
    backend: TestBackend,
}

impl Rig {
    async fn new(validity: Option<u64>) -> Rig {
        let options = Options {
            http_port: free_port(),
            tls_port: free_port(),
            validity,
            always_invalid: false,
        };
        Rig {
            pebble: Pebble::new(),
            options,
            storage: tempfile::tempdir().unwrap(),
            backend: TestBackend::named("site").await,
        }
    }

    /// A rig with pebble started; `None` (a loud skip, a failure under CI) without pebble.
    async fn running(validity: Option<u64>) -> Option<Rig> {
        if !support::require_tool("pebble") {
            return None;
        }
        let mut rig = Rig::new(validity).await;
        rig.start_pebble();
        Some(rig)
    }

    fn start_pebble(&mut self) {
        let options = self.options.clone();
        tokio::task::block_in_place(|| self.pebble.start(&options));
    }

    /// A config whose plain and TLS listeners are on `ports` (pebble's, or others for a
    /// second instance), ordering for a.test and b.test with `challenges`.
    fn config(&self, challenges: &str, ports: (u16, u16)) -> String {
        self.config_for(challenges, ports, "\"a.test\", \"b.test\"")
    }

    /// [`Rig::config`] ordering for `names`.
    fn config_for(&self, challenges: &str, ports: (u16, u16), names: &str) -> String {
        format!(
            r#"
[admin]
address = "127.0.0.1:0"
[log]
access_log = "off"

[[listener]]
name = "http"
address = "127.0.0.1:{http}"
http_redirect = true

[[listener]]
name = "https"
address = "127.0.0.1:{tls}"
[listener.tls.acme]
directory = "{directory}"
contact = "mailto:ops@example.com"
names = [{names}]
storage = "{storage}"
challenges = [{challenges}]
ca_bundle = "{ca}"
retry = "1s"

[pool.app]
backends = [{{ address = "{backend}" }}]
"#,
            http = ports.0,
            tls = ports.1,
            directory = self.pebble.directory(),
            storage = self.storage.path().display(),
            ca = self.pebble.ca_bundle().display(),
            backend = self.backend.addr,
        )
    }

    fn ports(&self) -> (u16, u16) {
        (self.options.http_port, self.options.tls_port)
    }

    /// A rustls client config trusting only pebble's current issuing root.
    fn client(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in portero::tls::load_chain(&self.pebble.issuing_root()).unwrap() {
            roots.add(cert).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }
}

async fn tls(
    addr: SocketAddr,
    name: &str,
    config: &Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::clone(config))
        .connect(name, tcp)
        .await
}

fn serial(stream: &TlsStream<TcpStream>) -> String {
    let der = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string()
}

/// The serial a new (not resumed) handshake for `name` gets, verified against pebble's root.
async fn served_serial(rig: &Rig, addr: SocketAddr, name: &str) -> String {
    let stream = tls(addr, name, &rig.client()).await.unwrap();
    serial(&stream)
}

/// curl, trusting only pebble's root, fetching https://NAME:PORT/ through portero.
async fn curl(rig: &Rig, addr: SocketAddr, name: &str) -> (bool, String) {
    let root = rig.pebble.issuing_root().display().to_string();
    curl_https(addr, name, &["--cacert", &root]).await
}

/// curl fetching https://NAME:PORT/ from portero at `addr` with `trust` (`--cacert FILE`, or
/// `-k`); whether it succeeded, and everything it printed.
async fn curl_https(addr: SocketAddr, name: &str, trust: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(trust)
        .arg("--resolve")
        .arg(format!("{name}:{}:127.0.0.1", addr.port()))
        .arg(format!("https://{name}:{}/", addr.port()))
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect()
}

async fn admin_post(app: &App, path: &str) -> u16 {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .arg(format!("http://{}{path}", app.admin_addr()))
        .output()
        .await
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

/// Issues through `challenges` (pebble's validation reaches portero on the listener the
/// challenge names), then serves the names, verified by curl against pebble's root.
async fn issue_through(challenges: &str) {
    if !support::require_tool("pebble") {
        return;
    }
    let mut rig = Rig::new(None).await;
    // portero first, pebble not yet up: the missing names fail their handshakes plainly
    // and nothing crashes while the CA is unreachable.
    rig.start_pebble();
    rig.pebble.stop();
    let app = support::daemon::start(&rig.config(challenges, rig.ports())).await;
    let https = app.listener_addr("https").unwrap();
    metric_reaches(&app, ISSUED, "result=\"failed\"", 1.0, LIMIT).await;
    let (ok, text) = curl_status(https).await;
    assert!(
        !ok && text.contains("alert"),
        "a name not yet obtained fails its handshake, whatever the client trusts: {text}"
    );
    let no_certificate = "reason=\"no_certificate\"";
    let errors = "portero_tls_handshake_errors_total";
    assert!(
        metric_sum(&app, errors, no_certificate).await >= 1.0,
        "counted, not logged"
    );
    // The plain listener redirects everything but the challenges in flight.
    let plain = app.listener_addr("http").unwrap();
    let token = support::client::get(plain, "/.well-known/acme-challenge/not-in-flight").await;
    assert_eq!(token.status, 308);
    assert_eq!(support::client::get(plain, "/").await.status, 308);

    rig.start_pebble();
    metric_reaches(&app, ISSUED, "result=\"issued\"", 1.0, LIMIT).await;
    for name in ["a.test", "b.test"] {
        let (ok, text) = curl(&rig, https, name).await;
        assert!(
            ok,
            "curl {name} verifies pebble's chain: {text}\n{}",
            rig.pebble.log()
        );
        assert!(text.contains("site"), "{text}");
    }
    // Stored privately, and the expiry is published.
    for file in files(rig.storage.path()) {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    let expiry = metric_sum(
        &app,
        "portero_tls_certificate_expiry_timestamp_seconds",
        "name=\"a.test\"",
    )
    .await;
    assert!(expiry > 0.0, "expiry published");
    let next = metric_sum(
        &app,
        "portero_acme_next_renewal_timestamp_seconds",
        "listener=\"https\"",
    )
    .await;
    assert!(
        next > 0.0 && next < expiry,
        "next renewal {next} before expiry {expiry}"
    );
    // No challenge answer outlives its order.
    let tokens = rig.storage.path().join("challenges");
    assert!(
        !tokens.exists() || files(&tokens).is_empty(),
        "{:?}",
        files(&tokens)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_through_http01() {
    support::bounded_by(Duration::from_secs(120), issue_through("\"http-01\"")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_through_tls_alpn01() {
    support::bounded_by(Duration::from_secs(120), issue_through("\"tls-alpn-01\"")).await;
}

/// With 30-second certificates, the renewal at two thirds of the lifetime happens while a
/// client holds a connection: the connection keeps working, new handshakes get the new
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_without_cutting_a_connection() {
    support::bounded_by(Duration::from_secs(120), async {
        let Some(rig) = Rig::running(Some(30)).await else {
            return;
        };
        let app =
            support::daemon::start(&rig.config("\"tls-alpn-01\", \"http-01\"", rig.ports())).await;
        let https = app.listener_addr("https").unwrap();
        metric_reaches(&app, ISSUED, "result=\"issued\"", 1.0, LIMIT).await;
        let mut held = tls(https, "a.test", &rig.client()).await.unwrap();
        let first = serial(&held);
        assert!(get_on(&mut held, "a.test").await.contains("site"));

        metric_reaches(&app, ISSUED, "result=\"issued\"", 2.0, LIMIT).await;
        let second = served_serial(&rig, https, "b.test").await;
        assert_ne!(
            first, second,
            "a new handshake gets the renewed certificate"
        );
        assert!(
            get_on(&mut held, "a.test").await.contains("site"),
            "the connection opened before the renewal still works"
        );
        assert_eq!(serial(&held), first);
        assert_eq!(metric_sum(&app, ISSUED, "result=\"failed\"").await, 0.0);
    })
    .await;
}

/// One GET over an open HTTP/1.1 connection; the whole response.
async fn get_on(stream: &mut TlsStream<TcpStream>, host: &str) -> String {
    let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !complete(&seen) {
        assert!(Instant::now() < deadline, "no whole response: {seen:?}");
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response")
            .unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Whether `seen` holds a whole response framed by Content-Length.
fn complete(seen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(seen);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    body.len() >= length
}

/// The CA away, then rejecting every validation: failed orders are counted and spaced by the
/// backoff (no tight loop), and the certificate already obtained keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_renewals_back_off_and_keep_the_old_certificate() {
    support::bounded_by(Duration::from_secs(120), async {
        let Some(mut rig) = Rig::running(None).await else {
            return;
        };
        let app = support::daemon::start(&rig.config("\"http-01\"", rig.ports())).await;
        let https = app.listener_addr("https").unwrap();
        metric_reaches(&app, ISSUED, "result=\"issued\"", 1.0, LIMIT).await;
        let serving = served_serial(&rig, https, "a.test").await;
        let client = rig.client();

        // The CA away: a renewal asked for fails, and is retried after 1 s, then 2 s.
        rig.pebble.stop();
        let asked = Instant::now();
        assert_eq!(admin_post(&app, "/acme/renew?listener=https").await, 202);
        assert_eq!(admin_post(&app, "/acme/renew?listener=nope").await, 404);
        metric_reaches(&app, ISSUED, "result=\"failed\"", 3.0, LIMIT).await;
        assert!(
            asked.elapsed() >= Duration::from_secs(3),
            "three failures took {:?}: the waits of 1 s and 2 s were skipped",
            asked.elapsed()
        );
        let stream = tls(https, "a.test", &client).await.unwrap();
        assert_eq!(
            serial(&stream),
            serving,
            "the old certificate keeps serving"
        );
        let next = metric_sum(
            &app,
            "portero_acme_next_renewal_timestamp_seconds",
            "listener=\"https\"",
        )
        .await;
        assert!(
            next >= portero_now() as f64,
            "the next try is scheduled, not overdue"
        );

        // The CA back but rejecting every validation (and no longer knowing the account).
        rig.options.always_invalid = true;
        rig.start_pebble();
        let before = metric_sum(&app, ISSUED, "result=\"failed\"").await;
        assert_eq!(admin_post(&app, "/acme/renew").await, 202);
        metric_reaches(&app, ISSUED, "result=\"failed\"", before + 2.0, LIMIT).await;
        assert_eq!(metric_sum(&app, ISSUED, "result=\"issued\"").await, 1.0);
        // The client config trusting the old root still verifies the old certificate.
        let stream = tls(https, "b.test", &client).await.unwrap();
        assert_eq!(serial(&stream), serving, "still the old certificate");
        let (ok, _) = curl_status(https).await;
        assert!(ok, "still serving HTTPS");
    })
    .await;
}

fn portero_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1
}

/// Any HTTPS answer at all for a.test (the certificate not checked: `curl -k`).
async fn curl_status(addr: SocketAddr) -> (bool, String) {
    curl_https(addr, "a.test", &["-k"]).await
}

/// Two instances sharing the storage directory (the scale-out case): one order between them,
/// the same certificate served by both; the CA's validation reaches only the first (it holds
/// pebble's ports), which answers from shared storage when the second is the one ordering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_one_order() {
    support::bounded_by(Duration::from_secs(120), async {
        let Some(rig) = Rig::running(None).await else {
            return;
        };
        let first = support::daemon::start(&rig.config("\"http-01\"", rig.ports())).await;
        let second = support::daemon::start(&rig.config("\"http-01\"", (0, 0))).await;
        let issued = || async {
            metric_sum(&first, ISSUED, "result=\"issued\"").await
                + metric_sum(&second, ISSUED, "result=\"issued\"").await
        };
        support::wait_until_async("one certificate issued", LIMIT, || async {
            issued().await >= 1.0
        })
        .await;
        let a = first.listener_addr("https").unwrap();
        let b = second.listener_addr("https").unwrap();
        support::wait_until_async("both serve it", LIMIT, || async {
            let one = tls(a, "a.test", &rig.client()).await;
            let two = tls(b, "a.test", &rig.client()).await;
            matches!((one, two), (Ok(one), Ok(two)) if serial(&one) == serial(&two))
        })
        .await;
        assert_eq!(issued().await, 1.0, "one order between the two");
        assert_eq!(
            metric_sum(&first, ISSUED, "result=\"failed\"").await
                + metric_sum(&second, ISSUED, "result=\"failed\"").await,
            0.0
        );
    })
    .await;
}

/// The CA's validation may reach any instance behind the name, not the one ordering: an
/// instance holding pebble's ports (and ordering another name into the same storage) answers
/// the challenges of an order made by an instance the CA cannot reach, for either challenge.
async fn answer_for_another(challenge: &str) {
    let Some(rig) = Rig::running(None).await else {
        return;
    };
    let reachable =
        support::daemon::start(&rig.config_for(challenge, rig.ports(), "\"c.test\"")).await;
    metric_reaches(&reachable, ISSUED, "result=\"issued\"", 1.0, LIMIT).await;
    let unreachable = support::daemon::start(&rig.config(challenge, (0, 0))).await;
    metric_reaches(&unreachable, ISSUED, "result=\"issued\"", 1.0, LIMIT).await;
    let https = unreachable.listener_addr("https").unwrap();
    let (ok, text) = curl(&rig, https, "b.test").await;
    assert!(ok, "{text}");
    assert_eq!(
        metric_sum(&unreachable, ISSUED, "result=\"failed\"").await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_answers_http01_from_shared_storage() {
    support::bounded_by(Duration::from_secs(120), answer_for_another("\"http-01\"")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_answers_tls_alpn01_from_shared_storage() {
    support::bounded_by(
        Duration::from_secs(120),
        answer_for_another("\"tls-alpn-01\""),
    )
    .await;
}
