//! What a request hands its connection across the proxy, which carries nothing of the
//! server's: the request's watch (`server::served::Active`) tells the HTTP/1 loop that the
//! response just given was a 101 to splice. The proxy sees only a response extension
//! ([`Tunnel`]).

use super::Tunnel;
use http::Extensions;
use std::sync::Mutex;

/// One connection's hand-offs.
#[derive(Debug, Default)]
pub struct Handoff {
    /// The backend's side of an upgrade this connection's request got.
    tunnel: Mutex<Option<Tunnel>>,
}

impl Handoff {
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

    /// The tunnel kept from a 101 response, once its head is written.
    pub fn take_tunnel(&self) -> Option<Tunnel> {
        self.tunnel.lock().ok()?.take()
    }
}
