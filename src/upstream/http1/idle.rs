//! A backend's idle keep-alive connections: taken most recently used first (its socket is
//! warm), closed after the idle timeout by a task that runs only while any are idle.

use super::conn::{Conn, Upload};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The idle connections to one backend.
#[derive(Debug)]
pub struct IdleConns {
    idle: Mutex<Vec<Idle>>,
    timeout: Duration,
    /// Whether a task is closing expired idle connections (set under `idle`'s lock).
    reaping: AtomicBool,
}

#[derive(Debug)]
struct Idle {
    conn: Conn,
    since: Instant,
}

impl IdleConns {
    /// None yet; each closes after `timeout` idle.
    pub fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            timeout,
            reaping: AtomicBool::new(false),
        })
    }

    /// The most recently used connection still fit to carry a request.
    pub fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.timeout && entry.conn.is_fit() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Takes back a connection whose response has ended. When the backend answered before
    /// the request's body was all sent, the rest is sent first (bounded by the idle timeout):
    /// only then may the connection carry another request.
    pub fn put(self: &Arc<Self>, conn: Conn, upload: Option<Box<Upload>>) {
        let Some(upload) = upload else {
            self.keep(conn);
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::clone(self);
        runtime.spawn(async move {
            let mut conn = conn;
            let finished = tokio::time::timeout(pool.timeout, upload.finish(&mut conn)).await;
            if finished == Ok(true) {
                pool.keep(conn);
            }
        });
    }

    fn keep(self: &Arc<Self>, mut conn: Conn) {
        conn.park();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(Idle {
            conn,
            since: Instant::now(),
        });
        let start_reaper = !self.reaping.swap(true, Ordering::Relaxed);
        drop(idle);
        if start_reaper && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(reap(Arc::downgrade(self)));
        } else if start_reaper {
            self.reaping.store(false, Ordering::Relaxed);
        }
    }
}

/// Closes connections idle past the timeout (or closed by the backend), until none is left
/// idle or the pool is gone. Holds the pool weakly: a removed backend's connections close
/// with it.
async fn reap(pool: Weak<IdleConns>) {
    loop {
        let Some(timeout) = pool.upgrade().map(|pool| pool.timeout) else {
            return;
        };
        tokio::time::sleep(timeout.max(Duration::from_millis(100)) / 2).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|entry| entry.since.elapsed() < pool.timeout && entry.conn.is_fit());
        if idle.is_empty() {
            pool.reaping.store(false, Ordering::Relaxed);
            return;
        }
    }
}
