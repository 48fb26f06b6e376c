//! Bodies stream in both directions: 64 MiB up and down through a portero child process
//! whose resident memory is sampled throughout and must stay flat.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use support::backend::{Behavior, CHUNK, TestBackend};
use support::daemon::{Process, config_text};

const SIZE: u64 = 64 * 1024 * 1024;
/// Allowed RSS growth while 64 MiB pass through: the body must never be held whole.
const FLAT: u64 = 16 * 1024 * 1024;

/// Samples a process's RSS every 10 ms until dropped; keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(support::rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self { peak, stop }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

async fn warm_up(process: &Process) -> u64 {
    for _ in 0..3 {
        assert_eq!(support::client::get(process.traffic, "/").await.status, 200);
    }
    support::rss_bytes(process.pid())
}

fn report(what: &str, baseline: u64, peak: u64) {
    let growth = peak.saturating_sub(baseline);
    println!(
        "{what}: portero RSS {} KiB before, {} KiB peak (+{} KiB) for a {} MiB body",
        baseline / 1024,
        peak / 1024,
        growth / 1024,
        SIZE >> 20
    );
    assert!(
        growth < FLAT,
        "{what}: RSS grew by {} KiB, the body was buffered",
        growth / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_download_streams_with_flat_memory() {
    let backend = TestBackend::start("big", Behavior::Download(SIZE)).await;
    let process = Process::spawn(&config_text(&[(backend.addr, 1)], ""));
    let baseline = warm_up(&process).await;
    let sampler = RssSampler::start(process.pid());
    let response = support::client::http1()
        .request(
            Request::get(format!("http://{}/big", process.traffic))
                .body(Default::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, SIZE);
    report("download", baseline, sampler.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_upload_streams_with_flat_memory() {
    let backend = TestBackend::start("sink", Behavior::Sink).await;
    let text = config_text(
        &[(backend.addr, 1)],
        "[limits]\nmax_request_body = \"128MiB\"\n",
    );
    let process = Process::spawn(&text);
    let baseline = warm_up(&process).await;
    let sampler = RssSampler::start(process.pid());
    let chunks = futures_util::stream::iter(
        (0..SIZE / CHUNK.len() as u64)
            .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(&CHUNK)))),
    );
    let body: BoxBody<Bytes, Infallible> = BodyExt::boxed(StreamBody::new(chunks));
    let client: Client<_, BoxBody<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(
            Request::post(format!("http://{}/upload", process.traffic))
                .body(body)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        text,
        SIZE.to_string().as_bytes(),
        "the backend received every byte"
    );
    report("upload", baseline, sampler.peak());
}
