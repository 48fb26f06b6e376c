//! The JSON feed format (`{"backends": [{"address": "10.0.0.5:8080", "weight": 1}]}`), read
//! from a polled URL (with ETag / If-None-Match) or a watched file. A document that does not
//! parse, or names an address twice, is rejected whole.

use super::Found;
use crate::backend::BackendSpec;
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Largest feed document.
const MAX_DOCUMENT: usize = 4 * 1024 * 1024;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// Not the feed format.
    #[error("invalid feed document: {0}")]
    Document(String),
    /// A DNS lookup failed.
    #[error("dns: {0}")]
    Dns(String),
    /// The HTTP request failed or answered something else than 200 or 304.
    #[error("http: {0}")]
    Http(String),
    /// The file could not be read.
    #[error("file: {0}")]
    File(#[from] std::io::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    backends: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    address: String,
    #[serde(default = "one")]
    weight: u32,
}

fn one() -> u32 {
    1
}

/// Parses a feed document into a complete set.
pub fn parse_feed(bytes: &[u8]) -> Result<Vec<BackendSpec>, FeedError> {
    let document: Document =
        serde_json::from_slice(bytes).map_err(|e| FeedError::Document(e.to_string()))?;
    let mut seen = BTreeSet::new();
    document
        .backends
        .into_iter()
        .map(|entry| {
            let address: SocketAddr = entry.address.parse().map_err(|_| {
                FeedError::Document(format!("`{}` is not an ip:port address", entry.address))
            })?;
            if entry.weight == 0 {
                return Err(FeedError::Document(format!("{address} has weight 0")));
            }
            if !seen.insert(address) {
                return Err(FeedError::Document(format!("{address} is listed twice")));
            }
            Ok(BackendSpec::new(address, entry.weight))
        })
        .collect()
}

/// A document polled over HTTP.
pub struct HttpFeed {
    client: Client<HttpConnector, Empty<Bytes>>,
    url: Uri,
    etag: Option<HeaderValue>,
    timeout: Duration,
}

impl HttpFeed {
    /// A feed of `url`; each read gives up after `refresh` (at most 10 s).
    pub fn new(url: Uri, refresh: Duration) -> Self {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Self {
            client,
            url,
            etag: None,
            timeout: refresh.min(Duration::from_secs(10)),
        }
    }

    /// One GET, conditional on the last ETag.
    pub async fn read(&mut self) -> Result<Found, FeedError> {
        let mut request = Request::get(self.url.clone());
        if let Some(etag) = &self.etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
        }
        let request = request
            .body(Empty::new())
            .map_err(|e| FeedError::Http(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FeedError::Http(e.to_string()))?;
            let status = response.status();
            let etag = response.headers().get(header::ETAG).cloned();
            let body = Limited::new(response.into_body(), MAX_DOCUMENT)
                .collect()
                .await
                .map_err(|e| FeedError::Http(e.to_string()))?
                .to_bytes();
            Ok::<_, FeedError>((status, etag, body))
        };
        let (status, etag, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| FeedError::Http("timed out".into()))??;
        match status {
            StatusCode::NOT_MODIFIED => Ok(Found::Unchanged),
            StatusCode::OK => {
                let specs = parse_feed(&body)?;
                // Remembered only once the document proved good.
                self.etag = etag;
                Ok(Found::Set(specs, None))
            }
            other => Err(FeedError::Http(format!("answered {other}"))),
        }
    }
}

/// A document in a file, re-read every refresh.
pub struct FileFeed {
    path: PathBuf,
    last: Option<Vec<u8>>,
}

impl FileFeed {
    /// A feed of the file at `path`.
    pub fn new(path: PathBuf) -> Self {
        Self { path, last: None }
    }

    /// Reads the file; unchanged bytes are not parsed again.
    pub async fn read(&mut self) -> Result<Found, FeedError> {
        let bytes = tokio::fs::read(&self.path).await?;
        if self.last.as_ref() == Some(&bytes) {
            return Ok(Found::Unchanged);
        }
        let specs = parse_feed(&bytes)?;
        self.last = Some(bytes);
        Ok(Found::Set(specs, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_accepted_whole_or_not_at_all() {
        let specs = parse_feed(br#"{"backends": [{"address": "10.0.0.5:8080"}, {"address": "[::1]:80", "weight": 3}]}"#).unwrap();
        assert_eq!(
            specs,
            vec![
                BackendSpec::new("10.0.0.5:8080".parse().unwrap(), 1),
                BackendSpec::new("[::1]:80".parse().unwrap(), 3)
            ]
        );
        assert_eq!(parse_feed(br#"{"backends": []}"#).unwrap(), vec![]);
        for bad in [
            &br#"{"backends": [{"address": "10.0.0.5"}]}"#[..],
            br#"{"backends": [{"address": "a:1", "weight": 1}]}"#,
            br#"{"backends": [{"address": "10.0.0.5:1", "weight": 0}]}"#,
            br#"{"backends": [{"address": "10.0.0.5:1"}, {"address": "10.0.0.5:1"}]}"#,
            br#"{"backends": [{"address": "10.0.0.5:1", "zone": "a"}]}"#,
            br#"{"servers": []}"#,
            b"not json",
        ] {
            assert!(parse_feed(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
