//! Let's Encrypt's test ACME server, Debian's `pebble` (2.4.0 in bookworm), for the ACME
//! tests: a real CA on loopback ports, which resolves every name through
//! `pebble-challtestsrv` to 127.0.0.1, so its challenge requests reach the test's portero on
//! the ports the test names. Both processes are killed when dropped.
//!
//! Pebble's own HTTPS certificate is signed by a test CA made here ([`Pebble::ca_bundle`]);
//! the certificates it issues chain to a root it makes afresh at each start
//! ([`Pebble::issuing_root`]), as its state is kept only in memory.

use super::pki::{Ca, Leaf};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How pebble runs, chosen at each [`Pebble::start`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Where it sends http-01 challenge requests (on 127.0.0.1): portero's HTTP listener.
    pub http_port: u16,
    /// Where it sends tls-alpn-01 challenge handshakes (on 127.0.0.1): portero's TLS listener.
    pub tls_port: u16,
    /// Lifetime of the certificates it issues, in seconds (`certificateValidityPeriod`, which
    /// pebble 2.4.0 reads); `None`: pebble's default of five years.
    pub validity: Option<u64>,
    /// Every challenge validation fails. Pebble 2.4.0 has no switch for that
    /// (`PEBBLE_VA_ALWAYS_INVALID` came later; it is set too, for a newer pebble), so
    /// `pebble-challtestsrv` also answers no address for any name: http-01 and tls-alpn-01
    /// fail to resolve the name, dns-01 finds no TXT record. The challenge's error is then
    /// `urn:ietf:params:acme:error:connection` ("could not resolve URL"), not a wrong response.
    pub always_invalid: bool,
}

/// A pebble and its DNS server, started and stopped at will on the same ports, under the
/// same HTTPS certificate.
pub struct Pebble {
    /// The config, the logs, the fetched issuing root.
    dir: tempfile::TempDir,
    /// Signed pebble's HTTPS certificate; kept for its directory, where the files live.
    _ca: Ca,
    ca_file: PathBuf,
    cert: Leaf,
    /// The ACME server's port.
    port: u16,
    /// Pebble's management interface (the issuing roots).
    management: u16,
    /// `pebble-challtestsrv`'s DNS server (UDP and TCP), pebble's only resolver.
    dns: u16,
    /// `pebble-challtestsrv`'s management interface, which it cannot run without.
    dns_management: u16,
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
}

/// How long a start may take before it counts as failed (it takes well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Pebble {
    /// Picks its ports and makes its HTTPS certificate; starts nothing (see
    /// [`Pebble::start`]). The ports are found by binding port 0 and letting go, so another
    /// process could take one before the start; they are kept across restarts so that a
    /// client's configured directory URL stays valid.
    pub fn new() -> Pebble {
        let ca = Ca::new("pebble test CA");
        let cert = ca.issue("pebble", "pebble", &["127.0.0.1", "localhost"], 1);
        let ca_file = ca.file();
        // All held at once, so the four differ.
        let mut held = Vec::new();
        let [port, management, dns, dns_management] =
            [false, false, true, false].map(|udp_too| free_port(&mut held, udp_too));
        drop(held);
        Pebble {
            dir: tempfile::tempdir().unwrap(),
            _ca: ca,
            ca_file,
            cert,
            port,
            management,
            dns,
            dns_management,
            pebble: None,
            challtestsrv: None,
        }
    }

    /// Starts `pebble-challtestsrv` and pebble (stopping them first if running) and waits
    /// until the ACME directory and the management interface answer. Blocks the thread (for
    /// well under a second); panics with the logs when a process exits or 20 s pass.
    pub fn start(&mut self, opts: &Options) {
        self.stop();
        let localhost = "127.0.0.1";
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("{localhost}:{}", self.port),
                "managementListenAddress": format!("{localhost}:{}", self.management),
                "certificate": self.cert.cert,
                "privateKey": self.cert.key,
                "httpPort": opts.http_port,
                "tlsPort": opts.tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(seconds) = opts.validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let config_file = self.dir.path().join("pebble-config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();

        // Every A query is answered 127.0.0.1 (none when validations are to fail), no AAAA
        // query is answered, so pebble never tries ::1, where another test's server may listen.
        // Its own challenge servers are off: portero answers the challenges.
        let address = if opts.always_invalid { "" } else { localhost };
        let challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", address, "-defaultIPv6", ""])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .arg("-dns01")
            .arg(format!("{localhost}:{}", self.dns))
            .arg("-management")
            .arg(format!("{localhost}:{}", self.dns_management))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(self.log_file("challtestsrv.log"))
            .stderr(self.log_file("challtestsrv.log"))
            .spawn()
            .expect("pebble-challtestsrv runs");
        self.challtestsrv = Some(challtestsrv);

        let mut pebble = Command::new("pebble");
        pebble
            .arg("-config")
            .arg(&config_file)
            .arg("-dnsserver")
            .arg(format!("{localhost}:{}", self.dns))
            // Validations at once rather than after a random sleep of up to 5 s; every good
            // nonce accepted (it rejects 5 % by default, to exercise clients' retries); a fresh
            // authorization for every order (it reuses half by default), so each order has
            // challenges to answer.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(self.log_file("pebble.log"))
            .stderr(self.log_file("pebble.log"));
        if opts.always_invalid {
            pebble.env("PEBBLE_VA_ALWAYS_INVALID", "1");
        } else {
            pebble.env_remove("PEBBLE_VA_ALWAYS_INVALID");
        }
        self.pebble = Some(pebble.spawn().expect("pebble runs"));

        let deadline = Instant::now() + START_TIMEOUT;
        let mut ready = [false; 3];
        while ready != [true; 3] {
            let exited = [
                ("pebble", &mut self.pebble),
                ("pebble-challtestsrv", &mut self.challtestsrv),
            ]
            .into_iter()
            .find_map(|(name, child)| {
                let status = child.as_mut()?.try_wait().ok()??;
                Some(format!("{name} exited ({status})"))
            });
            if let Some(exited) = exited {
                panic!("{exited} while starting (a port taken?)\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "pebble did not answer in {START_TIMEOUT:?}\n{}",
                self.log()
            );
            // A TCP connect first, so curl runs only once something listens (pebble logs the
            // probe as a "TLS handshake error ... EOF"); then a real request.
            ready = [
                ready[0] || self.answers(self.port, "/dir"),
                ready[1] || self.answers(self.management, "/roots/0"),
                ready[2] || resolves(self.dns),
            ];
            if ready != [true; 3] {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Kills both processes and waits for them; pebble forgets its accounts, orders and
    /// issuing root. Does nothing when they are not running.
    pub fn stop(&mut self) {
        for mut child in [self.pebble.take(), self.challtestsrv.take()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The PEM CA that signed pebble's own HTTPS certificate (for 127.0.0.1 and localhost):
    /// what an ACME client must trust to talk to it.
    pub fn ca_bundle(&self) -> &Path {
        &self.ca_file
    }

    /// A file holding the PEM root that pebble issues certificates under, fetched from its
    /// management interface: a new one at each start, so fetch it after the start that
    /// matters.
    pub fn issuing_root(&self) -> PathBuf {
        assert!(self.pebble.is_some(), "pebble is not running");
        let pem = self
            .get(self.management, "/roots/0")
            .unwrap_or_else(|e| panic!("pebble's issuing root: {e}\n{}", self.log()));
        let file = self.dir.path().join("issuing-root.pem");
        super::pki::write_atomically(&file, &pem);
        file
    }

    /// What pebble and `pebble-challtestsrv` printed, every start so far (for a failing
    /// test's message).
    pub fn log(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- pebble ---\n{}--- pebble-challtestsrv ---\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// `name` in the directory, opened for appending, so each start's lines follow the last.
    fn log_file(&self, name: &str) -> std::fs::File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(name))
            .unwrap()
    }

    /// Whether `GET https://127.0.0.1:{port}{path}` succeeds now.
    fn answers(&self, port: u16, path: &str) -> bool {
        connects(port) && self.get(port, path).is_ok()
    }

    /// The body of `GET https://127.0.0.1:{port}{path}`, trusting [`Pebble::ca_bundle`] (by
    /// curl, which the tests have anyway); an error for a failure or a status other than 2xx.
    fn get(&self, port: u16, path: &str) -> Result<String, String> {
        let out = Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--max-time", "5"])
            .arg("--cacert")
            .arg(&self.ca_file)
            .arg(format!("https://127.0.0.1:{port}{path}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("curl runs: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        String::from_utf8(out.stdout).map_err(|e| e.to_string())
    }
}

impl Default for Pebble {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port` now.
fn connects(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
}

/// Whether the DNS server on 127.0.0.1:`port` answers a query over UDP now (what pebble
/// asks over; its TCP side may be up first).
fn resolves(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    // ID 0x5e6b, recursion desired, one question: `pebble.test. IN A`.
    let mut query = vec![0x5e, 0x6b, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(b"\x06pebble\x04test\x00\x00\x01\x00\x01");
    let mut reply = [0u8; 512];
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .is_ok()
        && socket.connect(("127.0.0.1", port)).is_ok()
        && socket.send(&query).is_ok()
        && socket
            .recv(&mut reply)
            .is_ok_and(|n| n >= 12 && reply[..2] == query[..2])
}

/// A loopback port free for TCP (and for UDP too when `udp_too`), its sockets left in `held`
/// so the next call picks another.
fn free_port(held: &mut Vec<(TcpListener, Option<UdpSocket>)>, udp_too: bool) -> u16 {
    for _ in 0..20 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let udp = if udp_too {
            match UdpSocket::bind(("127.0.0.1", port)) {
                Ok(udp) => Some(udp),
                Err(_) => continue,
            }
        } else {
            None
        };
        held.push((tcp, udp));
        return port;
    }
    panic!("no loopback port free for both TCP and UDP in 20 tries");
}
