//! gRPC through portero with a real gRPC stack on both ends: grpcio's server
//! (`tests/peers/grpc_server.py`) behind an h2c pool, grpcio's client
//! (`tests/peers/grpc_client.py`) in front. The four call kinds with their messages, initial
//! and trailing metadata; a non-OK status passing through unchanged; `grpc-timeout` honoured,
//! by the backend and by portero itself; the calls portero cannot forward answered the gRPC
//! way (HTTP 200, `grpc-status`); and the gRPC cell of the peer matrix: a hung server ejected
//! by the health checks and recovered.
//!
//! Cells of the matrix are named `peer_backend_grpcio_*` (grpcio as the backend) and
//! `peer_client_grpcio_*` (grpcio as the client; most tests are both).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/mod.rs"]
mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};
use support::backend::{Behavior, TestBackend};
use support::client;
use support::daemon::{config_text, start, traffic};
use support::external::{External, peer_file, peers_python};
use support::pki::{Ca, https_config};
use support::status::{state, wait_for_state};

mod answered;
mod calls;
mod deadlines;
mod health;

/// A grpcio server on 127.0.0.1 (`port` 0: any); `None` (a loud skip) without the peers venv.
fn grpc_server(port: u16) -> Option<(External, SocketAddr)> {
    let mut command = Command::new(peers_python()?);
    command
        .arg(peer_file("grpc_server.py"))
        .arg(port.to_string());
    Some(External::spawn_listening(command))
}

/// A config of one h2c pool over `backends`, with `pool_keys` in `[pool.app]` and `tables`
/// after it.
fn h2c_config(backends: &[SocketAddr], pool_keys: &str, tables: &str) -> String {
    let weighted: Vec<(SocketAddr, u32)> = backends.iter().map(|a| (*a, 1)).collect();
    config_text(&weighted, tables).replace(
        "[pool.app]\n",
        &format!("[pool.app]\nprotocol = \"h2c\"\n{pool_keys}"),
    )
}

/// Runs grpcio's client against `target` with `cases` (see grpc_client.py); one JSON object
/// per case, in order.
async fn calls(target: SocketAddr, cases: &[&str]) -> Vec<Value> {
    run_client(&[target.to_string()], cases).await
}

/// Runs grpc_client.py with `args` (the target, after `--tls CA NAME` for TLS) and `cases`.
async fn run_client(args: &[String], cases: &[&str]) -> Vec<Value> {
    let python = peers_python().expect("a test that started a server has the venv");
    let mut command = Command::new(python);
    command
        .arg(peer_file("grpc_client.py"))
        .args(args)
        .args(cases);
    let cases = cases.len();
    tokio::task::spawn_blocking(move || {
        let mut client = External::spawn(command);
        // Every call is bounded at 20 s by the client itself.
        let code = client.wait(Duration::from_secs(20 * cases as u64 + 10));
        assert_eq!(code, Some(0), "grpc_client.py failed: {}", client.output());
        // The reader thread may still hold the last lines after the exit.
        support::wait_until_blocking("the client's output", Duration::from_secs(5), || {
            client.stdout.lock().unwrap().len() >= cases
        });
        let lines = client.stdout.lock().unwrap().clone();
        lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    })
    .await
    .unwrap()
}

/// One call.
async fn call(target: SocketAddr, case: &str) -> Value {
    calls(target, &[case]).await.remove(0)
}

/// The value of metadata `key` in `field` ("initial" or "trailing") of a call's result.
fn metadata<'a>(result: &'a Value, field: &str, key: &str) -> Option<&'a str> {
    result[field]
        .as_array()?
        .iter()
        .find(|pair| pair[0] == key)
        .and_then(|pair| pair[1].as_str())
}

fn assert_ok(result: &Value) {
    assert_eq!(result["code"], "OK", "{result}");
}

fn messages(result: &Value) -> Vec<&str> {
    result["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect()
}

fn grpc_request(addr: SocketAddr, path: &str) -> http::request::Builder {
    Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
}

/// A gRPC length-prefixed message (uncompressed).
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(message);
    Bytes::from(frame)
}

/// A trailers-only response: HTTP 200, `content-type: application/grpc`, the status and
/// message in the head, and the stream ended there (no DATA, no separate trailers).
async fn assert_trailers_only(
    response: http::Response<hyper::body::Incoming>,
    code: &str,
    message: &str,
) {
    use http_body::Body as _;
    assert_eq!(response.status(), 200, "{response:?}");
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/grpc", "{response:?}");
    assert_eq!(headers["grpc-status"], code, "{response:?}");
    assert_eq!(headers["grpc-message"], message, "{response:?}");
    assert!(response.body().is_end_stream(), "END_STREAM on the HEADERS");
    let body = response.into_body().collect().await.unwrap();
    assert!(body.trailers().is_none());
    assert!(body.to_bytes().is_empty());
}
