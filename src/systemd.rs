//! systemd integration without libsystemd: the notify protocol (READY, RELOADING with
//! MONOTONIC_USEC, STOPPING, WATCHDOG, STATUS) over `$NOTIFY_SOCKET`, and listeners passed in
//! by socket activation (`$LISTEN_FDS`, `$LISTEN_PID`, `$LISTEN_FDNAMES`), matched to
//! `[[listener]]` entries by name.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The `$NOTIFY_SOCKET` endpoint, when systemd (or a test) gave one.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: String,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|t| !t.is_empty())?;
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, target })
    }

    /// Sends one message (`READY=1`, `STATUS=...`, several lines at once). Failures are
    /// logged: notifications must never stop the daemon.
    pub fn notify(&self, message: &str) {
        let sent = match self.target.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                    .and_then(|addr| self.socket.send_to_addr(message.as_bytes(), &addr))
            }
            None => self.socket.send_to(message.as_bytes(), &self.target),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// `RELOADING=1` with the monotonic timestamp systemd wants alongside it.
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let usec = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.notify(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (when it is meant for us).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Listening sockets passed by socket activation, by name (`$LISTEN_FDNAMES`; without names,
/// `listen0`, `listen1`...). Must be called before any thread starts: it clears the variables.
pub fn inherited_listeners() -> std::io::Result<HashMap<String, std::net::TcpListener>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let mut fds = listenfd::ListenFd::from_env();
    let mut listeners = HashMap::new();
    for index in 0..fds.len() {
        if let Some(listener) = fds.take_tcp_listener(index)? {
            let name = names
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("listen{index}"));
            listeners.insert(name, listener);
        }
    }
    Ok(listeners)
}
