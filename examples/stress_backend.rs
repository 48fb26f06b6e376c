//! A backend of limited capacity for the stress scenario (`benches/stress.py`).
//!
//! It models one node of an application tier: every request takes one of `--workers` slots for
//! `--service-ms` milliseconds, then answers `200` with a short line naming the node. So a node
//! serves about `workers * 1000 / service_ms` requests per second, and past that requests queue
//! for a slot and latency climbs: adding nodes behind the balancer is what brings it back down.
//! `GET /healthz` answers at once, outside the slots, so a saturated node still passes portero's
//! active health checks (as a real node whose liveness endpoint skips the work queue would).
//!
//! ```sh
//! cargo run --release --example stress_backend -- --listen 127.0.0.1:9001 --workers 16 --service-ms 20
//! ```

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// What the command line asks for.
struct Args {
    listen: SocketAddr,
    workers: usize,
    service: Duration,
    name: String,
}

const USAGE: &str =
    "usage: stress_backend --listen ADDR [--workers N (16)] [--service-ms M (20)] [--name NAME]";

fn parse_args() -> Result<Args, String> {
    let mut listen = None;
    let mut workers = 16;
    let mut service_ms = 20;
    let mut name = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--workers" => workers = value.parse().map_err(|e| format!("--workers: {e}"))?,
            "--service-ms" => {
                service_ms = value.parse().map_err(|e| format!("--service-ms: {e}"))?
            }
            "--name" => name = Some(value),
            _ => return Err(format!("unknown argument {flag}")),
        }
    }
    let listen: SocketAddr = listen.ok_or("--listen is required")?;
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(Args {
        listen,
        workers,
        service: Duration::from_millis(service_ms),
        name: name.unwrap_or_else(|| listen.to_string()),
    })
}

/// One request: health checks at once, everything else after a worker slot and the service time.
async fn handle(
    request: Request<Incoming>,
    slots: Arc<Semaphore>,
    service: Duration,
    body: Bytes,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() == "/healthz" {
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))));
    }
    // The semaphore is never closed, so acquiring can only fail if that changes.
    let Ok(_slot) = slots.acquire().await else {
        let mut refused = Response::new(Full::new(Bytes::from_static(b"closed\n")));
        *refused.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(refused);
    };
    tokio::time::sleep(service).await;
    Ok(Response::new(Full::new(body)))
}

// One thread is plenty: the work is a timer, and the scenario runs several nodes on two cores.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("stress_backend: {problem}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("stress_backend: cannot bind {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let slots = Arc::new(Semaphore::new(args.workers));
    let body = Bytes::from(format!("{}\n", args.name));
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                eprintln!("stress_backend: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (http, slots, body, service) =
            (http.clone(), slots.clone(), body.clone(), args.service);
        tokio::spawn(async move {
            let service =
                service_fn(move |request| handle(request, slots.clone(), service, body.clone()));
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
