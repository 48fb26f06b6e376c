use super::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
    let mut h = V2_SIGNATURE.to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    h.extend_from_slice(addresses);
    h
}

fn v2_tcp4() -> Vec<u8> {
    // 203.0.113.7:51000 -> 10.0.0.1:443
    let mut a = vec![203, 0, 113, 7, 10, 0, 0, 1];
    a.extend_from_slice(&51000u16.to_be_bytes());
    a.extend_from_slice(&443u16.to_be_bytes());
    v2(0x1, 0x11, &a)
}

#[test]
fn both_versions_name_the_client() {
    let v1 = b"PROXY TCP4 198.51.100.22 10.0.0.1 35646 80\r\nGET / HTTP/1.1\r\n";
    assert_eq!(
        parse(v1),
        Parsed::Complete(ProxyHeader {
            len: 44,
            source: Some("198.51.100.22:35646".parse().unwrap())
        })
    );
    let v1_6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n";
    assert!(
        matches!(parse(v1_6), Parsed::Complete(ProxyHeader { source: Some(s), .. }) if s.to_string() == "[2001:db8::1]:4000")
    );
    let h = v2_tcp4();
    assert_eq!(
        parse(&h),
        Parsed::Complete(ProxyHeader {
            len: 28,
            source: Some("203.0.113.7:51000".parse().unwrap())
        })
    );
}

#[test]
fn local_and_unknown_mean_the_peer_itself() {
    assert!(matches!(
        parse(b"PROXY UNKNOWN\r\n"),
        Parsed::Complete(ProxyHeader { source: None, .. })
    ));
    assert!(matches!(
        parse(&v2(0x0, 0x00, &[])),
        Parsed::Complete(ProxyHeader {
            source: None,
            len: 16
        })
    ));
}

#[test]
fn partial_and_bad_headers() {
    assert_eq!(parse(b"PROXY TCP4 198.51"), Parsed::Incomplete);
    assert_eq!(parse(&v2_tcp4()[..20]), Parsed::Incomplete);
    assert_eq!(parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 "), Parsed::Incomplete);
    assert_eq!(
        parse(b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r"),
        Parsed::Incomplete
    );
    // A bare LF does not end a line: the header is the same however it is split.
    let unknown = b"PROXY UNKNOWN \n\r\n";
    assert!(matches!(
        parse(unknown),
        Parsed::Complete(ProxyHeader { len: 17, .. })
    ));
    for cut in 0..unknown.len() {
        assert_eq!(parse(&unknown[..cut]), Parsed::Incomplete, "{cut}");
    }
    assert!(matches!(
        parse(b"PROXY TCP9 x y 1 2\r\n"),
        Parsed::Invalid(_)
    ));
    assert!(matches!(
        parse(b"GET / HTTP/1.1\r\n\r\n"),
        Parsed::Invalid(_)
    ));
    assert!(looks_like_proxy(b"PROXY TCP9"));
    assert!(!looks_like_proxy(b"GET / HT"));
}

/// A header written in pieces, with the request right behind it: exactly the header is read.
#[tokio::test]
async fn read_takes_the_header_and_nothing_more() {
    for pieces in [
        vec![v2_tcp4()],
        {
            let h = v2_tcp4();
            vec![h[..5].to_vec(), h[5..17].to_vec(), h[17..].to_vec()]
        },
        vec![b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2".to_vec(), b"\r\n".to_vec()],
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut client = TcpStream::connect(addr).await.unwrap();
            for piece in pieces {
                client.write_all(&piece).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client.write_all(b"GET /").await.unwrap();
            client
        });
        let (mut server, _) = listener.accept().await.unwrap();
        let header = read(&mut server).await.unwrap();
        assert!(header.source.is_some());
        let _client = writer.await.unwrap();
        let mut rest = [0u8; 5];
        server.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET /");
    }
}

#[tokio::test]
async fn a_trusted_peer_without_a_header_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let (mut server, _) = listener.accept().await.unwrap();
    assert!(matches!(
        read(&mut server).await,
        Err(ProxyHeaderError::Missing)
    ));
}
