//! `TestBackend`: a real HTTP/1.1 + h2c server on 127.0.0.1:0 with a chosen behaviour, which
//! records what reached it.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Body = BoxBody<Bytes, Infallible>;

/// 64 KiB of a repeated byte, the unit of generated bodies.
pub static CHUNK: [u8; 65536] = [b'x'; 65536];

/// What the backend does with each request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with its name as the body and `x-backend: NAME`.
    Name,
    /// Like `Name`, after a delay.
    Delay(Duration),
    /// Never answers.
    Hang,
    /// 200 with a streamed body of this many bytes.
    Download(u64),
    /// Reads the whole request body and answers with its length.
    Sink,
    /// Answers this status.
    Status(u16),
    /// Upgrades WebSocket requests and echoes every message.
    WebSocketEcho,
    /// 200 with `count` small chunks, one every `every`: a slow stream.
    Trickle(u32, Duration),
}

/// What the backend saw, and the status its `/healthz` answers.
#[derive(Debug)]
pub struct Seen {
    /// Requests received (health checks not counted).
    pub requests: AtomicU64,
    /// Health checks received.
    pub health_checks: AtomicU64,
    /// The status `/healthz` answers (200 unless a test changes it).
    pub health: AtomicU16,
    /// Headers of every request, in order.
    pub headers: Mutex<Vec<HeaderMap>>,
    /// The request target's authority of every request (HTTP/2's `:authority`), in order.
    pub authorities: Mutex<Vec<Option<String>>>,
}

/// A running backend; stops when dropped.
pub struct TestBackend {
    /// Its address.
    pub addr: SocketAddr,
    /// What reached it.
    pub seen: Arc<Seen>,
    stop: CancellationToken,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TestBackend {
    /// Starts a backend named `name` with `behavior`.
    pub async fn start(name: &str, behavior: Behavior) -> TestBackend {
        Self::start_at("127.0.0.1:0".parse().unwrap(), name, behavior).await
    }

    /// Starts a backend listening on `address` (any loopback address, port 0 for any).
    pub async fn start_at(address: SocketAddr, name: &str, behavior: Behavior) -> TestBackend {
        Self::start_on(
            std::net::TcpListener::bind(address).unwrap(),
            name,
            behavior,
        )
    }

    /// Backends named `{prefix}0`, `{prefix}1`... on 127.0.0.{2,3,...} and one shared port
    /// (as DNS discovery wants: one port, several addresses). Tests run in parallel, so the
    /// port is retried until it is free on every address.
    pub fn on_one_port(prefix: &str, count: u8) -> (u16, Vec<TestBackend>) {
        for _ in 0..100 {
            let port = std::net::TcpListener::bind("127.0.0.2:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let bound: Result<Vec<_>, _> = (0..count)
                .map(|i| std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 2 + i], port))))
                .collect();
            if let Ok(listeners) = bound {
                let backends = listeners
                    .into_iter()
                    .enumerate()
                    .map(|(i, l)| Self::start_on(l, &format!("{prefix}{i}"), Behavior::Name))
                    .collect();
                return (port, backends);
            }
        }
        panic!("no port free on every address");
    }

    /// Starts a backend on an already bound listener.
    pub fn start_on(
        listener: std::net::TcpListener,
        name: &str,
        behavior: Behavior,
    ) -> TestBackend {
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen {
            requests: AtomicU64::new(0),
            health_checks: AtomicU64::new(0),
            health: AtomicU16::new(200),
            headers: Mutex::new(Vec::new()),
            authorities: Mutex::new(Vec::new()),
        });
        let stop = CancellationToken::new();
        let name: Arc<str> = Arc::from(name);
        tokio::spawn(accept_loop(
            listener,
            name,
            behavior,
            Arc::clone(&seen),
            stop.clone(),
        ));
        TestBackend { addr, seen, stop }
    }

    /// A backend answering with its name.
    pub async fn named(name: &str) -> TestBackend {
        Self::start(name, Behavior::Name).await
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.seen.requests.load(Ordering::SeqCst)
    }

    /// Makes `/healthz` answer `status`.
    pub fn set_health(&self, status: u16) {
        self.seen.health.store(status, Ordering::SeqCst);
    }

    /// Health checks received so far.
    pub fn health_checks(&self) -> u64 {
        self.seen.health_checks.load(Ordering::SeqCst)
    }

    /// The authority of the last request's target (`:authority` on HTTP/2).
    pub fn last_authority(&self) -> Option<String> {
        self.seen
            .authorities
            .lock()
            .unwrap()
            .last()
            .cloned()
            .flatten()
    }

    /// Headers of the last request received.
    pub fn last_headers(&self) -> HeaderMap {
        self.seen
            .headers
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    behavior: Behavior,
    seen: Arc<Seen>,
    stop: CancellationToken,
) {
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            () = stop.cancelled() => return,
        };
        let (http, name, behavior, seen, stop) = (
            http.clone(),
            name.clone(),
            behavior.clone(),
            seen.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let (name, behavior, seen) = (name.clone(), behavior.clone(), seen.clone());
                async move { Ok::<_, Infallible>(respond(&name, &behavior, &seen, request).await) }
            });
            let connection = http.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::select! { _ = connection => {}, () = stop.cancelled() => {} }
        });
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into()).map_err(|e| match e {}).boxed()
}

async fn respond(
    name: &str,
    behavior: &Behavior,
    seen: &Seen,
    mut request: Request<Incoming>,
) -> Response<Body> {
    if request.uri().path() == "/healthz" {
        seen.health_checks.fetch_add(1, Ordering::SeqCst);
        let status = seen.health.load(Ordering::SeqCst);
        return Response::builder()
            .status(status)
            .body(full(name.to_string()))
            .unwrap();
    }
    seen.requests.fetch_add(1, Ordering::SeqCst);
    seen.headers.lock().unwrap().push(request.headers().clone());
    seen.authorities
        .lock()
        .unwrap()
        .push(request.uri().authority().map(ToString::to_string));
    let named = |body: Body| {
        Response::builder()
            .header("x-backend", name)
            .body(body)
            .unwrap()
    };
    match behavior {
        Behavior::Name => named(full(name.to_string())),
        Behavior::Delay(d) => {
            tokio::time::sleep(*d).await;
            named(full(name.to_string()))
        }
        Behavior::Hang => std::future::pending().await,
        Behavior::Download(size) => {
            let size = *size;
            let chunks =
                futures_util::stream::iter((0..size).step_by(CHUNK.len()).map(move |offset| {
                    let n = (size - offset).min(CHUNK.len() as u64) as usize;
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK[..n])))
                }));
            named(BodyExt::boxed(StreamBody::new(chunks)))
        }
        Behavior::Trickle(count, every) => {
            let (count, every) = (*count, *every);
            let chunks = futures_util::stream::unfold(0u32, move |sent| async move {
                if sent == count {
                    return None;
                }
                tokio::time::sleep(every).await;
                Some((
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"tick\n"))),
                    sent + 1,
                ))
            });
            named(BodyExt::boxed(StreamBody::new(chunks)))
        }
        Behavior::Sink => {
            let mut body = request.into_body();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => total += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => {
                        return Response::builder()
                            .status(400)
                            .body(full("body error"))
                            .unwrap();
                    }
                }
            }
            named(full(total.to_string()))
        }
        Behavior::Status(code) => Response::builder()
            .status(*code)
            .header("x-backend", name)
            .body(full(name.to_string()))
            .unwrap(),
        Behavior::WebSocketEcho => websocket_echo(&mut request),
    }
}

fn websocket_echo(request: &mut Request<Incoming>) -> Response<Body> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let Some(key) = request.headers().get("sec-websocket-key") else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(full("not websocket"))
            .unwrap();
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if futures_util::SinkExt::send(&mut ws, message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}
