//! Header rewriting, as pure functions over a `HeaderMap`: hop-by-hop removal (RFC 9110
//! §7.6.1), then portero's own `X-Forwarded-*` and `X-Request-Id`. Removal always runs first,
//! so a client cannot make us drop a header we add (`Connection: close, X-Forwarded-For`).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::fmt::Write as _;
use std::net::IpAddr;

/// `X-Forwarded-For`, `-Proto`, `-Host`, `X-Request-Id`, `X-Real-IP`, `Forwarded`.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
#[allow(missing_docs)]
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
#[allow(missing_docs)]
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
#[allow(missing_docs)]
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// How many names `fixed_hop_by_hop` lists.
const FIXED: usize = 7;

/// Headers that describe one connection, never the message (RFC 9110 §7.6.1, plus the
/// non-standard `Keep-Alive` and `Proxy-Connection` that old clients still send).
fn fixed_hop_by_hop() -> [&'static HeaderName; FIXED] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ]
}

/// The protocol a client asked to switch to, when the request is a valid upgrade request
/// (`Connection: upgrade` and an `Upgrade` value) and the protocol is one we tunnel. `h2c`
/// upgrades are refused: they would smuggle HTTP/2 past our HTTP/1 parser.
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    let asks = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"));
    let h2c = upgrade.to_str().map_or(true, |v| {
        v.split(',').any(|p| p.trim().eq_ignore_ascii_case("h2c"))
    });
    (asks && !h2c).then(|| upgrade.clone())
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes every hop-by-hop header: the fixed set and every header named in `Connection`,
/// `TE` included whatever its value. Returns whether that `TE` accepted trailers: HTTP/2 lets
/// exactly `te: trailers` through and gRPC needs it, so the try to an HTTP/2 backend puts it
/// back. When `upgrade` is given, the upgrade is re-announced with exactly
/// `Connection: upgrade` and that protocol.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) -> bool {
    // One pass over the message's few names finds which fixed ones are there; only those are
    // removed (a hashed removal per absent name cost more than the rest of the rewrite).
    // Without a `Connection` field no other name is hop-by-hop.
    let fixed = fixed_hop_by_hop();
    let mut present = [false; FIXED];
    for name in headers.keys() {
        if let Some(i) = fixed.iter().position(|f| *f == name) {
            present[i] = true;
        }
    }
    let te_trailers =
        present.contains(&true) && remove_present_hop_by_hop(headers, &fixed, present);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
    te_trailers
}

/// Removes the fixed names found `present` and those `Connection` names; whether a `TE`
/// among them accepted trailers.
fn remove_present_hop_by_hop(
    headers: &mut HeaderMap,
    fixed: &[&'static HeaderName; FIXED],
    present: [bool; FIXED],
) -> bool {
    // Names in `Connection` that are fixed ones (`keep-alive`, `upgrade`) go below anyway.
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !fixed.iter().any(|f| f.as_str().eq_ignore_ascii_case(t)))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    let te = fixed.iter().position(|f| **f == header::TE);
    let te_trailers =
        te.is_some_and(|i| present[i]) && headers.get_all(header::TE).iter().any(accepts_trailers);
    for (name, _) in fixed.iter().zip(present).filter(|(_, here)| *here) {
        headers.remove(*name);
    }
    te_trailers
}

/// Joins an HTTP/2 request's `cookie` fields into one, separated by `; `: HTTP/2 clients send
/// each cookie as a field of its own ("crumbs", which compress better), and RFC 9113 §8.2.3
/// requires them concatenated before the request goes to an HTTP/1.1 connection, where a
/// server may keep only one Cookie line. Harmless on HTTP/2 backends.
pub fn join_cookie_crumbs(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    if crumbs.nth(1).is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, value);
    }
}

/// Whether a `TE` value lists the `trailers` token (`trailers`, `trailers, deflate;q=0.5`).
fn accepts_trailers(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',')
            .any(|coding| coding.trim().eq_ignore_ascii_case("trailers"))
    })
}

/// What the proxy knows about the hop the request arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Hop<'a> {
    /// The client's address (the TCP peer).
    pub peer: IpAddr,
    /// Whether that peer is a trusted proxy whose forwarding headers we keep.
    pub trusted: bool,
    /// `"http"` or `"https"`.
    pub proto: &'static str,
    /// The Host the client asked for.
    pub host: &'a str,
}

/// The fields portero adds to a request for its backend, and the request's id.
#[derive(Debug)]
pub struct Forwarding {
    /// `X-Forwarded-For`, `-Proto`, `-Host`, and `X-Request-Id` when the client sent none:
    /// none of them left in the request's map. They go beside it rather than into it (a
    /// hashed insert each cost more than the rest of the rewrite): portero's HTTP/1.1
    /// encoder writes them after the request's own fields, and a request for hyper's client
    /// gets them inserted (`upstream::RequestHead::all_headers`).
    pub fields: Vec<(HeaderName, HeaderValue)>,
    /// The client's `X-Request-Id`, or the one made for it.
    pub request_id: HeaderValue,
}

/// The forwarding fields for a request that came over `hop`, with the ones they replace taken
/// out of `headers`. From a trusted proxy the `X-Forwarded-For` chain is
/// kept and the peer appended, and its `-Proto` and `-Host` stay; from anyone else every
/// forwarding field is replaced, so nobody on the internet can claim to be someone else
/// (`Forwarded` and `X-Real-IP` are removed). The request id is the client's when it sent
/// one, otherwise a new one.
pub fn forwarding(headers: &mut HeaderMap, hop: &Hop<'_>) -> Forwarding {
    // One pass over the few fields finds all of them: a hashed lookup per name, almost never
    // sent, cost more.
    let mut xff = String::with_capacity(48);
    let mut sent = Sent::default();
    let mut request_id = None;
    for (name, value) in headers.iter() {
        if name == X_FORWARDED_FOR {
            sent.forwarded_for = true;
            if hop.trusted
                && let Ok(v) = value.to_str()
                && !v.trim().is_empty()
            {
                xff.push_str(v.trim());
                xff.push_str(", ");
            }
        } else if name == X_FORWARDED_PROTO {
            sent.proto = true;
        } else if name == X_FORWARDED_HOST {
            sent.host = true;
        } else if name == header::FORWARDED {
            sent.forwarded = true;
        } else if name == X_REAL_IP {
            sent.real_ip = true;
        } else if name == X_REQUEST_ID && request_id.is_none() {
            request_id = Some(value.clone());
        }
    }
    push_ip(&mut xff, hop.peer);
    let mut fields = Vec::with_capacity(4);
    fields.push((
        X_FORWARDED_FOR.clone(),
        HeaderValue::try_from(xff).expect("an IP list is a valid header value"),
    ));
    if !(hop.trusted && sent.proto) {
        fields.push((
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(hop.proto),
        ));
    }
    if !(hop.trusted && sent.host)
        && let Ok(host) = HeaderValue::from_str(hop.host)
    {
        fields.push((X_FORWARDED_HOST.clone(), host));
    }
    let request_id = request_id.unwrap_or_else(|| {
        let id = new_request_id();
        fields.push((X_REQUEST_ID.clone(), id.clone()));
        id
    });
    sent.remove_replaced(headers, hop.trusted);
    Forwarding { fields, request_id }
}

/// The forwarding fields a request came with.
#[derive(Debug, Default)]
struct Sent {
    forwarded_for: bool,
    proto: bool,
    host: bool,
    forwarded: bool,
    real_ip: bool,
}

impl Sent {
    /// Removes the fields [`forwarding`] replaces, or drops for an untrusted peer: only those
    /// sent, and only when they are.
    fn remove_replaced(&self, headers: &mut HeaderMap, trusted: bool) {
        let gone = [
            (self.forwarded_for, &X_FORWARDED_FOR),
            (self.proto && !trusted, &X_FORWARDED_PROTO),
            (self.host && !trusted, &X_FORWARDED_HOST),
            (self.forwarded && !trusted, &header::FORWARDED),
            (self.real_ip && !trusted, &X_REAL_IP),
        ];
        for (_, name) in gone.into_iter().filter(|(sent, _)| *sent) {
            headers.remove(name);
        }
    }
}

/// Appends `ip` as text. IPv4, the common case, by hand: `Display` goes through the
/// formatter's padding for every octet, which cost more than the rest of the header rewrite.
fn push_ip(out: &mut String, ip: IpAddr) {
    let IpAddr::V4(v4) = ip else {
        let _ = write!(out, "{ip}");
        return;
    };
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
}

/// The client a request is from, for rate limits and route access rules: the peer, or when
/// the peer is a trusted proxy, the nearest address in `X-Forwarded-For` that is not one
/// (nginx's `real_ip_recursive`). An entry that is not an address ends the walk: nothing
/// left of it can be believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let mut client = peer;
    let values: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Ok(ip) = entry.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

/// 128 random bits as 32 hex digits.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bits = fastrand::u128(..);
    // By hand: `format!("{:032x}")` costs several times more, once per request.
    let mut text = [0u8; 32];
    for (i, digit) in text.iter_mut().enumerate() {
        *digit = HEX[(bits >> (124 - 4 * i) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests;
