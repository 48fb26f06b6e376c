//! An HTTP discovery feed on 127.0.0.1: serves a JSON document with an ETag, answers 304 to a
//! matching If-None-Match, and counts both.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The running feed.
pub struct TestFeed {
    /// Its URL.
    pub url: String,
    document: Arc<Mutex<(String, u64)>>,
    /// Full answers (200).
    pub served: Arc<AtomicU64>,
    /// 304 answers.
    pub not_modified: Arc<AtomicU64>,
}

impl TestFeed {
    /// Serves `document` at `/backends.json`.
    pub async fn start(document: &str) -> TestFeed {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new((document.to_string(), 1u64)));
        let (served, not_modified) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (doc, full, same) = (
            Arc::clone(&state),
            Arc::clone(&served),
            Arc::clone(&not_modified),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (doc, full, same) = (Arc::clone(&doc), Arc::clone(&full), Arc::clone(&same));
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let (body, version) = doc.lock().unwrap().clone();
                        let etag = format!("\"v{version}\"");
                        let matches = request
                            .headers()
                            .get("if-none-match")
                            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
                        let response = if matches {
                            same.fetch_add(1, Ordering::SeqCst);
                            Response::builder()
                                .status(StatusCode::NOT_MODIFIED)
                                .header("etag", &etag)
                                .body(Full::new(Bytes::new()))
                                .unwrap()
                        } else {
                            full.fetch_add(1, Ordering::SeqCst);
                            Response::builder()
                                .header("etag", &etag)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap()
                        };
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        TestFeed {
            url: format!("http://{addr}/backends.json"),
            document: state,
            served,
            not_modified,
        }
    }

    /// Replaces the document (and its ETag).
    pub fn set(&self, document: &str) {
        let mut state = self.document.lock().unwrap();
        *state = (document.to_string(), state.1 + 1);
    }
}

/// A feed document listing `backends` with weight 1.
pub fn document(backends: &[SocketAddr]) -> String {
    let entries: Vec<String> = backends
        .iter()
        .map(|a| format!("{{\"address\": \"{a}\"}}"))
        .collect();
    format!("{{\"backends\": [{}]}}", entries.join(", "))
}
