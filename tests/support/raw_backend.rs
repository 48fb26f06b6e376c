//! `RawBackend`: a TCP "backend" on 127.0.0.1:0 that speaks HTTP/1.1 by hand, for tests that
//! must see exactly which bytes reached a backend and must misbehave on purpose (garbage
//! heads, truncated bodies, silence). `TestBackend` is a real hyper server and can do neither.
//!
//! It records, per accepted connection, every byte received, how many request heads and how
//! many complete requests (by Content-Length or chunked framing) arrived, and whether and when
//! the peer (portero) closed the connection. Each request head gets the [`Reply`] scripted for
//! it: replies are taken in order across all connections, the last one repeating.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The answer `AfterBody` sends, and a useful default for `Keep`.
pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// What the backend does with one request head.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Sends these exact bytes as soon as the head arrives; keeps the connection open.
    Keep(Vec<u8>),
    /// Sends these exact bytes as soon as the head arrives, then closes the connection
    /// (a head and part of a body makes a truncated response).
    Close(Vec<u8>),
    /// Never answers; keeps reading (and recording) until the peer closes.
    Never,
    /// Waits for the whole request (Content-Length bytes, or chunks up to the last `0` chunk),
    /// then sends [`OK`] and keeps the connection open.
    AfterBody,
}

/// What one connection received.
#[derive(Clone, Debug, Default)]
pub struct ConnRecord {
    /// Every byte received, in order.
    pub bytes: Vec<u8>,
    /// Request heads seen (`\r\n\r\n` found).
    pub heads: usize,
    /// Requests whose body arrived whole, by their own framing.
    pub complete: usize,
    /// When the peer closed it (EOF or reset); `None` while open or when we closed it.
    pub closed_by_peer: Option<Instant>,
    /// Whether we closed it (a `Reply::Close`).
    pub closed_by_us: bool,
}

#[derive(Debug, Default)]
struct State {
    conns: Vec<ConnRecord>,
    /// Request heads seen over all connections: the index of the next scripted reply.
    heads: usize,
}

/// A running raw backend; stops (and drops its connections) when dropped.
pub struct RawBackend {
    /// Its address.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RawBackend {
    /// Starts a backend answering the n-th request head with `script[n]` (the last repeats).
    pub async fn start(script: Vec<Reply>) -> RawBackend {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(
            listener,
            Arc::new(script),
            Arc::clone(&state),
            stop.clone(),
        ));
        RawBackend { addr, state, stop }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.lock().unwrap().conns.len()
    }

    /// Connections the peer has closed so far.
    pub fn closed_by_peer(&self) -> usize {
        let state = self.state.lock().unwrap();
        state
            .conns
            .iter()
            .filter(|c| c.closed_by_peer.is_some())
            .count()
    }

    /// What connection `n` (0-based, in accept order) has received so far.
    pub fn conn(&self, n: usize) -> ConnRecord {
        self.state
            .lock()
            .unwrap()
            .conns
            .get(n)
            .cloned()
            .unwrap_or_default()
    }

    /// The raw bytes connection `n` has received so far.
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        self.conn(n).bytes
    }

    /// Request heads received over all connections.
    pub fn heads(&self) -> usize {
        self.state.lock().unwrap().heads
    }

    /// Complete requests received over all connections.
    pub fn complete(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .conns
            .iter()
            .map(|c| c.complete)
            .sum()
    }

    /// Waits until connection `n` exists and `condition` holds for it; panics after `timeout`.
    pub async fn wait_conn(
        &self,
        n: usize,
        what: &str,
        timeout: Duration,
        condition: impl Fn(&ConnRecord) -> bool,
    ) -> ConnRecord {
        let what = format!("backend connection {n}: {what}");
        super::wait_until(&what, timeout, || {
            self.state
                .lock()
                .unwrap()
                .conns
                .get(n)
                .is_some_and(&condition)
        })
        .await;
        self.conn(n)
    }

    /// Waits until the peer has closed connection `n`; returns when it did.
    pub async fn wait_closed(&self, n: usize, timeout: Duration) -> Instant {
        let record = self
            .wait_conn(n, "closed by portero", timeout, |c| {
                c.closed_by_peer.is_some()
            })
            .await;
        record.closed_by_peer.unwrap()
    }
}

async fn accept_loop(
    listener: TcpListener,
    script: Arc<Vec<Reply>>,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            () = stop.cancelled() => return,
        };
        let index = {
            let mut state = state.lock().unwrap();
            state.conns.push(ConnRecord::default());
            state.conns.len() - 1
        };
        let (state, script, stop) = (Arc::clone(&state), Arc::clone(&script), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = serve(stream, index, state, script) => {},
                () = stop.cancelled() => {},
            }
        });
    }
}

async fn serve(
    mut stream: TcpStream,
    index: usize,
    state: Arc<Mutex<State>>,
    script: Arc<Vec<Reply>>,
) {
    let mut requests = Requests::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                state.lock().unwrap().conns[index].closed_by_peer = Some(Instant::now());
                return;
            }
            Ok(n) => n,
        };
        let (answers, close) = {
            let mut state = state.lock().unwrap();
            state.conns[index].bytes.extend_from_slice(&buf[..n]);
            requests.advance(&mut state, index, &script)
        };
        for answer in answers {
            // The peer may already be gone (it rejected a garbage head): the read says so next.
            if stream.write_all(&answer).await.is_err() {
                break;
            }
        }
        if close {
            state.lock().unwrap().conns[index].closed_by_us = true;
            return;
        }
    }
}

/// Where one connection is in its stream of requests.
#[derive(Default)]
struct Requests {
    /// Where the current request starts in the connection's bytes.
    start: usize,
    /// Once the current request's head is in: where its body starts, and its reply.
    pending: Option<(usize, Reply)>,
}

impl Requests {
    /// Takes every head and complete request that has arrived on connection `index`; what to
    /// send back, and whether to close after it.
    fn advance(
        &mut self,
        state: &mut State,
        index: usize,
        script: &[Reply],
    ) -> (Vec<Vec<u8>>, bool) {
        let (mut answers, mut close) = (Vec::new(), false);
        loop {
            let record = &mut state.conns[index];
            if self.pending.is_none() {
                let Some(head_end) = find(&record.bytes[self.start..], b"\r\n\r\n") else {
                    break;
                };
                let reply = script[state.heads.min(script.len() - 1)].clone();
                state.heads += 1;
                let record = &mut state.conns[index];
                record.heads += 1;
                match &reply {
                    Reply::Keep(bytes) => answers.push(bytes.clone()),
                    Reply::Close(bytes) => {
                        answers.push(bytes.clone());
                        close = true;
                    }
                    Reply::Never | Reply::AfterBody => {}
                }
                self.pending = Some((self.start + head_end + 4, reply));
            }
            let record = &mut state.conns[index];
            let (body_start, reply) = self.pending.clone().expect("set above");
            let head = &record.bytes[self.start..body_start];
            let Some(end) = request_end(head, &record.bytes[body_start..]) else {
                break;
            };
            record.complete += 1;
            if matches!(reply, Reply::AfterBody) {
                answers.push(OK.to_vec());
            }
            self.start = body_start + end;
            self.pending = None;
            if close {
                break;
            }
        }
        (answers, close)
    }
}

/// Where the body that follows `head` ends in `body`, if it has arrived whole. Chunked bodies
/// are parsed chunk by chunk, then the trailer section; a malformed size line never completes.
fn request_end(head: &[u8], body: &[u8]) -> Option<usize> {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
            .map(str::to_string)
    };
    if header("transfer-encoding").is_some_and(|te| te.ends_with("chunked")) {
        let mut at = 0;
        loop {
            let line = find(&body[at..], b"\r\n")?;
            let size = std::str::from_utf8(&body[at..at + line]).ok()?;
            let size = size.split(';').next()?;
            let size = usize::from_str_radix(size, 16).ok()?;
            at += line + 2;
            if size == 0 {
                // The trailer section: none, or fields up to an empty line.
                if body[at..].starts_with(b"\r\n") {
                    return Some(at + 2);
                }
                return find(&body[at..], b"\r\n\r\n").map(|end| at + end + 4);
            }
            at += size + 2;
            if body.len() < at {
                return None;
            }
        }
    }
    let length = header("content-length").map_or(Some(0), |v| v.parse::<usize>().ok())?;
    (body.len() >= length).then_some(length)
}

/// The position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
