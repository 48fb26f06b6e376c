//! The key a `consistent_hash` pool places a request by: the client's IP, a header or a cookie.

use crate::balance::{client_ip_key, key_hash};
use crate::config::HashKey;
use http::HeaderMap;
use http::header::COOKIE;
use std::net::IpAddr;

/// The key's hash, or `None` when the request does not carry it (the pool then spreads it).
pub fn key(key: &HashKey, headers: &HeaderMap, client: IpAddr) -> Option<u64> {
    match key {
        HashKey::ClientIp => Some(client_ip_key(client)),
        HashKey::Header(name) => headers.get(name).map(|v| key_hash(v.as_bytes())),
        HashKey::Cookie(name) => cookie(headers, name).map(key_hash),
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (k == name.as_bytes()).then_some(&v[1..])
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn keys_come_from_ip_header_or_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", HeaderValue::from_static("alice"));
        headers.append(
            COOKIE,
            HeaderValue::from_static("theme=dark; session=abc123"),
        );
        headers.append(COOKIE, HeaderValue::from_static("other=1"));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            key(&HashKey::ClientIp, &headers, ip),
            key(&HashKey::ClientIp, &HeaderMap::new(), ip)
        );
        assert_eq!(
            key(&HashKey::Header("x-user".parse().unwrap()), &headers, ip),
            Some(key_hash(b"alice"))
        );
        assert_eq!(
            key(&HashKey::Cookie("session".into()), &headers, ip),
            Some(key_hash(b"abc123"))
        );
        assert_eq!(
            key(&HashKey::Cookie("other".into()), &headers, ip),
            Some(key_hash(b"1"))
        );
        assert_eq!(key(&HashKey::Cookie("sess".into()), &headers, ip), None);
        assert_eq!(
            key(&HashKey::Header("x-none".parse().unwrap()), &headers, ip),
            None
        );
    }
}
