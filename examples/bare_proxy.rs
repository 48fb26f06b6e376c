//! The least a reverse proxy built on hyper can do per request, to measure what hyper itself
//! costs (`benches/instructions.py --bare`): the floor under portero's request path for as
//! long as both of its HTTP/1 sides are hyper's.
//!
//! Each client connection gets one upstream connection of its own (hyper's
//! `client::conn::http1`, driven in a task as portero's pool drives it), to the backends in
//! turn; every request goes to it unchanged but for its URI. No admission, routing, header
//! rewrite, retries, timeouts, health checks or metrics: not a balancer, a measuring stick.
//!
//! ```sh
//! cargo run --release --example bare_proxy -- 127.0.0.1:8080 127.0.0.1:9001 127.0.0.1:9002
//! ```

use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

type Body = BoxBody<Bytes, hyper::Error>;

// portero's allocator, so the comparison is of the request path alone.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bare_proxy LISTEN BACKEND [BACKEND...]";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let backends: Vec<SocketAddr> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if backends.is_empty() {
        return Err(usage.into());
    }
    // The same runtime as portero's: multi-threaded, one worker per cpu it may use.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, backends))
}

async fn serve(
    listen: SocketAddr,
    backends: Vec<SocketAddr>,
) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(listen).await?;
    for turn in 0.. {
        let (client, _) = listener.accept().await?;
        let backend = backends[turn % backends.len()];
        tokio::spawn(async move {
            if let Err(error) = proxy_connection(client, backend).await {
                eprintln!("bare_proxy: {error}");
            }
        });
    }
    Ok(())
}

async fn proxy_connection(
    client: TcpStream,
    backend: SocketAddr,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(backend).await?;
    upstream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(connection);
    // A tokio mutex: the next request must wait, across an await, for the connection to be
    // ready again. Uncontended, since hyper serves a connection's requests one at a time.
    let sender = Arc::new(Mutex::new(sender));
    let service = service_fn(move |request| forward(Arc::clone(&sender), request));
    hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(client), service)
        .await?;
    Ok(())
}

async fn forward(
    sender: Arc<Mutex<SendRequest<Incoming>>>,
    request: Request<Incoming>,
) -> Result<Response<Body>, hyper::Error> {
    let (mut parts, body) = request.into_parts();
    parts.uri = match parts.uri.path_and_query() {
        Some(path) => path.as_str().parse().unwrap_or_default(),
        None => http::Uri::from_static("/"),
    };
    let response = {
        let mut sender = sender.lock().await;
        if sender.ready().await.is_err() {
            return Ok(bad_gateway());
        }
        sender.send_request(Request::from_parts(parts, body))
    };
    Ok(match response.await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => bad_gateway(),
    })
}

fn bad_gateway() -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}
