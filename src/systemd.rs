//! systemd integration without libsystemd: the notify protocol (READY, RELOADING with
//! MONOTONIC_USEC, STOPPING, WATCHDOG, STATUS) over `$NOTIFY_SOCKET` and the watchdog settings
//! through the `sd-notify` crate, and listeners passed in by socket activation (`$LISTEN_FDS`,
//! `$LISTEN_PID`, `$LISTEN_FDNAMES`) through `listenfd`, matched to `[[listener]]` entries by
//! the names `sd-notify` reads.

use sd_notify::NotifyState;
use std::collections::HashMap;
use std::time::Duration;

/// The `$NOTIFY_SOCKET` endpoint, when systemd (or a test) gave one.
///
/// `sd_notify::notify` reads `$NOTIFY_SOCKET` on every call, so the variable is left set (the
/// `*_and_unset_env` variants are never used): the daemon notifies over its whole life.
#[derive(Debug)]
pub struct Notifier {
    /// The name of an abstract-namespace socket (`@name`), which `sd-notify` 0.5 cannot reach:
    /// it hands `$NOTIFY_SOCKET` to `connect` as a filesystem path.
    abstract_name: Option<String>,
}

impl Notifier {
    /// From `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|t| !t.is_empty())?;
        Some(Notifier {
            abstract_name: target.strip_prefix('@').map(str::to_string),
        })
    }

    /// Sends one message (`READY=1`, `STATUS=...`, several lines at once). Failures are
    /// logged: notifications must never stop the daemon.
    pub fn notify(&self, message: &str) {
        let states: Vec<NotifyState<'_>> = message
            .lines()
            .filter(|line| !line.is_empty())
            .map(state)
            .collect();
        if !states.is_empty() {
            self.send(&states);
        }
    }

    /// `RELOADING=1` with the monotonic timestamp systemd wants alongside it.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(e) => {
                tracing::warn!(error = %e, "sd_notify RELOADING=1 not sent: no monotonic time")
            }
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let sent = match &self.abstract_name {
            None => sd_notify::notify(states),
            Some(name) => send_abstract(name, states),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }
}

/// One line of a message as the crate's state; lines the enum has no variant for go as they are.
fn state(line: &str) -> NotifyState<'_> {
    match line {
        "READY=1" => NotifyState::Ready,
        "RELOADING=1" => NotifyState::Reloading,
        "STOPPING=1" => NotifyState::Stopping,
        "WATCHDOG=1" => NotifyState::Watchdog,
        "WATCHDOG=trigger" => NotifyState::WatchdogTrigger,
        _ => match line.strip_prefix("STATUS=") {
            Some(status) => NotifyState::Status(status),
            None => NotifyState::Custom(line),
        },
    }
}

/// The datagram `sd_notify::notify` would send (one `KEY=value` line per state), to an
/// abstract-namespace socket.
fn send_abstract(name: &str, states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set, non-zero and
/// meant for us (`$WATCHDOG_PID` ours or absent).
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|timeout| !timeout.is_zero())
        .map(|timeout| timeout / 2)
}

/// Listening sockets passed by socket activation, by name (`$LISTEN_FDNAMES`; without names,
/// `listen0`, `listen1`...). Must be called before any thread starts: it clears the variables.
pub fn inherited_listeners() -> std::io::Result<HashMap<String, std::net::TcpListener>> {
    // The names first: listenfd clears `$LISTEN_PID`, without which sd-notify reads none.
    // sd-notify only gives the descriptors as raw fds (adopting one takes `unsafe`, which the
    // crate forbids), so listenfd takes them: it checks each is a TCP socket and owns it.
    let names: Vec<String> = match sd_notify::listen_fds_with_names() {
        // Without `$LISTEN_FDNAMES` sd-notify names every descriptor "unknown".
        Ok(_) if std::env::var_os("LISTEN_FDNAMES").is_none() => Vec::new(),
        Ok(fds) => fds.map(|(_, name)| name).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the socket names passed by systemd");
            Vec::new()
        }
    };
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
