//! What one connection's layers in the server hand each other across hyper, which sits
//! between them and carries nothing of theirs: the head scan under hyper (`server::conn_io`)
//! tells the service above it what the raw head of the next request had, and the request's
//! watch (`server::served::Active`) tells the HTTP/1 loop that the response just given was a
//! 101 to splice. The proxy sees neither: the first reaches it as a request extension
//! ([`RawHead`]), the second leaves it as a response extension ([`Tunnel`]).

use super::{RawHead, Tunnel};
use http::{Extensions, Request};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// One connection's hand-offs.
#[derive(Debug, Default)]
pub struct Handoff {
    /// The HTTP/1 head being read had a Content-Length line (see `head_scan`).
    content_length: AtomicBool,
    /// The backend's side of an upgrade this connection's request got.
    tunnel: Mutex<Option<Tunnel>>,
}

impl Handoff {
    /// What the head scan found in the request head being read.
    pub fn head_scanned(&self, content_length: bool) {
        self.content_length.store(content_length, Ordering::Release);
    }

    /// Gives the scan's finding to the request hyper has parsed from that head. Nothing is
    /// added to a request whose head had no Content-Length (the common GET), so those pay no
    /// extensions map.
    pub fn give_to_request<B>(&self, request: &mut Request<B>) {
        if self.content_length.swap(false, Ordering::AcqRel) {
            request.extensions_mut().insert(RawHead {
                content_length: true,
            });
        }
    }

    /// Keeps the tunnel a response carries in its `extensions`, if it carries one; whether
    /// it did.
    pub fn keep_tunnel(&self, extensions: &mut Extensions) -> bool {
        let Some(tunnel) = extensions.remove::<Tunnel>() else {
            return false;
        };
        if let Ok(mut slot) = self.tunnel.lock() {
            *slot = Some(tunnel);
        }
        true
    }

    /// The tunnel kept from a 101 response, once hyper has handed the socket back.
    pub fn take_tunnel(&self) -> Option<Tunnel> {
        self.tunnel.lock().ok()?.take()
    }
}
