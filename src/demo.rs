//! `portero demo`: the embedded default. Three small backends in the same process and a load
//! balancer in front of them, configured through the same TOML loader as a real deployment.

use crate::config::{Config, ConfigError};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// The demo's config, with `{backends}` replaced by the demo backends' addresses.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// Starts `count` demo backends on 127.0.0.1 (ephemeral ports) and returns their addresses.
/// Each answers every request with a line naming itself, so alternation is visible.
pub async fn start_backends(count: usize) -> std::io::Result<Vec<SocketAddr>> {
    let mut addresses = Vec::with_capacity(count);
    for index in 1..=count {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        addresses.push(address);
        tokio::spawn(serve_backend(listener, index));
    }
    Ok(addresses)
}

async fn serve_backend(listener: TcpListener, index: usize) {
    let http = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| async move {
                let text = format!(
                    "hello from demo backend {index} ({} {})\n",
                    request.method(),
                    request.uri().path()
                );
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The demo config for these backend addresses and listen addresses.
pub fn config(
    backends: &[SocketAddr],
    listen: SocketAddr,
    admin: SocketAddr,
) -> Result<Config, ConfigError> {
    let list: Vec<String> = backends.iter().map(|a| format!("\"{a}\"")).collect();
    let text = DEMO_CONFIG
        .replace("{backends}", &list.join(", "))
        .replace("{listen}", &listen.to_string())
        .replace("{admin}", &admin.to_string());
    Config::from_toml(&text, "<demo config>")
}

/// What `portero demo` prints once it is up.
pub fn banner(traffic: SocketAddr, admin: SocketAddr) -> String {
    format!(
        "portero demo: 3 demo backends behind a load balancer\n\
         \n  traffic  http://{traffic}/\n  admin    http://{admin}/status\n\
         \ntry:\n  curl http://{traffic}/            # run it a few times: the backend alternates\n\
         \x20 curl --http2-prior-knowledge http://{traffic}/\n\
         \x20 curl http://{admin}/metrics\n\
         \x20 curl http://{admin}/status\n\
         \nCtrl-C to stop.\n"
    )
}
