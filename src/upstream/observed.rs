//! A connector, for portero's own HTTP/1.1 pool and hyper-util's client alike, that measures
//! what neither shows: how long each connect to a backend takes
//! (`portero_upstream_connect_seconds{pool}`) and how many connections to it are open, pooled
//! or busy (read at scrape time into `portero_upstream_connections`).

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use prometheus::Histogram;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::net::TcpStream;
use tower_service::Service;

/// `HttpConnector`, observed.
#[derive(Clone, Debug)]
pub struct ObservedConnector {
    inner: HttpConnector,
    connect_seconds: Option<Histogram>,
    open: Arc<AtomicI64>,
    /// Where every connection goes, whatever the request's URI names (see [`Self::fixed_to`]).
    fixed: Option<http::Uri>,
    /// `TCP_NOTSENT_LOWAT` for every connection (0 = the kernel's).
    notsent_lowat: u32,
}

impl ObservedConnector {
    /// Wraps `inner`; connections are counted in `open`.
    pub fn new(
        inner: HttpConnector,
        connect_seconds: Option<Histogram>,
        open: Arc<AtomicI64>,
    ) -> Self {
        Self {
            inner,
            connect_seconds,
            open,
            fixed: None,
            notsent_lowat: 0,
        }
    }

    /// Connects to `target` for every request. hyper-util's client takes `:authority` (and
    /// its pool key) from the request's URI, which must name the site the client asked for,
    /// not the backend's address; the backend is where the connection goes.
    pub fn fixed_to(mut self, target: http::Uri) -> Self {
        self.fixed = Some(target);
        self
    }

    /// Bounds the unsent bytes each connection's kernel queue holds for a backend that reads
    /// slowly (an upload): past them portero's writes wait, and so does the client.
    pub fn notsent_lowat(mut self, bytes: u32) -> Self {
        self.notsent_lowat = bytes;
        self
    }
}

impl Service<http::Uri> for ObservedConnector {
    type Response = ObservedIo;
    type Error = <HttpConnector as Service<http::Uri>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ObservedIo, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connecting = self.inner.call(self.fixed.clone().unwrap_or(uri));
        let (histogram, open) = (self.connect_seconds.clone(), Arc::clone(&self.open));
        let lowat = self.notsent_lowat;
        Box::pin(async move {
            let started = Instant::now();
            let io = connecting.await?;
            if lowat > 0 {
                let _ = socket2::SockRef::from(io.inner()).set_tcp_notsent_lowat(lowat);
            }
            if let Some(histogram) = histogram {
                histogram.observe(started.elapsed().as_secs_f64());
            }
            open.fetch_add(1, Ordering::Relaxed);
            Ok(ObservedIo {
                io,
                open: Open(open),
            })
        })
    }
}

/// A backend connection, counted while it lives.
pub struct ObservedIo {
    io: TokioIo<TcpStream>,
    open: Open,
}

impl ObservedIo {
    /// The socket, and what counts it open until it is dropped.
    pub fn into_parts(self) -> (TcpStream, Open) {
        (self.io.into_inner(), self.open)
    }
}

/// One count in a backend's open connections, taken back when dropped.
#[derive(Debug)]
pub struct Open(Arc<AtomicI64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Connection for ObservedIo {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl Read for ObservedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl Write for ObservedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
