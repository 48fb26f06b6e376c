//! The accept loop of one listener. A permit is taken before `accept`, so the daemon never
//! holds more client sockets than its ceiling. At the ceiling, one newcomer is accepted and
//! held (the rest stay in the kernel backlog), the longest-idle connection is asked to close
//! to make room for it, and then, by `admission.at_limit`: `queue` serves the newcomer as soon
//! as a slot frees; `reject` answers it a pre-built 503 on a short-lived task.
//!
//! Holding that one newcomer costs one socket per listener beyond the ceiling; it is what lets
//! portero know that someone is waiting (a listening socket cannot be asked "is anyone in
//! your backlog" without accepting, and readiness alone goes stale).

use super::listener::ListenerCtx;
use super::{ServerCtx, refuse, session};
use crate::admission::Permit;
use crate::config::AtLimit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Rejections being written at once; past this a rejected connection is just closed, so a
/// flood at the ceiling cannot grow into a flood of tasks.
const MAX_REJECTING: usize = 256;

/// How often a held newcomer looks again for an idle connection to reclaim.
const RECLAIM_RETRY: Duration = Duration::from_millis(250);

/// One listener's accept loop and what it needs.
struct Acceptor {
    listener: TcpListener,
    name: Arc<str>,
    listener_ctx: Arc<ListenerCtx>,
    ctx: Arc<ServerCtx>,
    stop: CancellationToken,
    rejecting: Arc<Semaphore>,
}

/// Accepts connections on `listener` until `stop` is cancelled.
pub async fn run(
    listener: TcpListener,
    listener_ctx: Arc<ListenerCtx>,
    ctx: Arc<ServerCtx>,
    stop: CancellationToken,
) {
    let acceptor = Acceptor {
        listener,
        name: Arc::clone(&listener_ctx.name),
        listener_ctx,
        ctx,
        stop,
        rejecting: Arc::new(Semaphore::new(MAX_REJECTING)),
    };
    acceptor.run().await;
}

impl Acceptor {
    async fn run(&self) {
        let mut backoff = Duration::from_millis(5);
        loop {
            let permit = match self.ctx.admission.try_acquire() {
                Some(permit) => permit,
                None => match self.at_ceiling().await {
                    Some(Admitted::Slot(permit)) => permit,
                    Some(Admitted::Newcomer(permit, stream, peer)) => {
                        self.serve(stream, peer, permit);
                        continue;
                    }
                    None => return,
                },
            };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                // A live resize may have lowered the ceiling under this reserved slot.
                () = self.ctx.admission.resized() => continue,
                () = self.stop.cancelled() => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff = Duration::from_millis(5);
                    self.serve(stream, peer, permit);
                }
                Err(e) if is_per_connection(&e) => {}
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: wait for connections to close, never spin or exit.
                    let every = Duration::from_secs(10);
                    if let Some(suppressed) = crate::log_limit::keyed("accept", &self.name, every) {
                        tracing::warn!(listener = %self.name, error = %e, backoff = ?backoff, suppressed, "accept failed; backing off");
                    }
                    drop::<Permit>(permit);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn serve(&self, stream: TcpStream, peer: SocketAddr, permit: Permit) {
        let _ = stream.set_nodelay(true);
        // The kernel would otherwise queue up to `net.ipv4.tcp_wmem`'s maximum (4 MiB by
        // default) of a response for a client that reads slowly, and portero's writes would
        // not wait on it until that is full: bounded here, the rest waits in the backend's
        // socket, and `min_send_rate` sees the client's pace.
        let buffer = self.ctx.settings.load().stream_buffer;
        let _ = socket2::SockRef::from(&stream).set_tcp_notsent_lowat(buffer);
        self.ctx
            .metrics
            .connections
            .accepted
            .with_label_values(&[&self.name])
            .inc();
        let task = session::serve(Box::new(session::Accepted {
            stream,
            peer,
            permit,
            listener: Arc::clone(&self.listener_ctx),
            ctx: Arc::clone(&self.ctx),
        }));
        self.ctx.connections.spawn(task);
    }

    /// At the ceiling: wait for a slot, or for a newcomer to hold (queue) or turn away
    /// (reject). `None` when stopped.
    async fn at_ceiling(&self) -> Option<Admitted> {
        let admission = &self.ctx.admission;
        loop {
            let (stream, peer) = tokio::select! {
                // A slot freed before anyone arrived: accept normally.
                permit = admission.acquire() => return Some(Admitted::Slot(permit)),
                accepted = self.listener.accept() => match accepted {
                    Ok(newcomer) => newcomer,
                    Err(_) => continue,
                },
                () = self.stop.cancelled() => return None,
            };
            self.ctx.reclaim_idle();
            if self.ctx.settings.load().at_limit == AtLimit::Reject {
                self.ctx
                    .metrics
                    .connections
                    .rejected
                    .with_label_values(&[&self.name, "limit"])
                    .inc();
                // A TLS or tcp client cannot read a plain 503: it is just closed.
                if self.listener_ctx.settings.load().answers_plain_http() {
                    reject(stream, &self.rejecting);
                }
                continue;
            }
            loop {
                tokio::select! {
                    permit = admission.acquire() => return Some(Admitted::Newcomer(permit, stream, peer)),
                    () = tokio::time::sleep(RECLAIM_RETRY) => { self.ctx.reclaim_idle(); }
                    () = self.stop.cancelled() => return None,
                }
            }
        }
    }
}

/// How the wait at the ceiling ended.
enum Admitted {
    /// A slot, and nobody in hand yet.
    Slot(Permit),
    /// A slot for the newcomer held while waiting.
    Newcomer(Permit, TcpStream, SocketAddr),
}

/// Errors that concern one connection only (it died in the backlog): just accept the next.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    )
}

/// Answers 503 and closes, on a task of its own, within [`MAX_REJECTING`].
fn reject(stream: TcpStream, rejecting: &Arc<Semaphore>) {
    let Ok(slot) = Arc::clone(rejecting).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        refuse::answer(stream, refuse::AT_LIMIT).await;
        drop(slot);
    });
}
