//! Plain HTTP/1.1 to a backend on portero's own codec (`crate::h1`), in place of hyper's
//! client connection: no task per connection, no channel between the request and its
//! connection. A request takes an idle [`Conn`] (or a new one) and runs its [`exchange`]: the
//! head and body go out through a [`Wire`](crate::h1::Wire) while the response head is read.
//! The response [`Body`] then streams the rest (and any upload still going) and gives the
//! connection back to its [`IdleConns`] when both have ended.

mod body;
mod conn;
mod exchange;
mod idle;

pub use body::{Body, BodyError, Upgraded};
pub(super) use conn::{Conn, Upload, request_framing};
pub(super) use exchange::exchange;
pub(super) use idle::IdleConns;
