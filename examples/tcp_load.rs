//! Both ends of the tcp listener benchmark (`benches/tcp_compare.py`): a backend, and a load
//! generator that drives it through a balancer.
//!
//! ```sh
//! tcp_load serve 127.0.0.1:7000
//! tcp_load down 127.0.0.1:6000 64 8     # 64 sessions, 8 s: the backend streams, the client reads
//! tcp_load up 127.0.0.1:6000 64 8       # the client streams, the backend reads
//! tcp_load new 127.0.0.1:6000 64 8      # 64 loops of connect, 16 bytes each way, close
//! ```
//!
//! The backend reads a session's first byte: `D` streams zeros until the client closes, `U`
//! reads and discards until it closes, `E` echoes 16 bytes and closes. The load side prints
//! one JSON line: bytes per second (`down`, `up`) or sessions per second (`new`), with the
//! errors seen. New sessions come from source addresses 127.0.0.2 and up, so the ephemeral
//! ports of one address pair do not run out.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const CHUNK: usize = 64 * 1024;
/// Source addresses new sessions spread over (127.0.0.2 ..).
const SOURCES: u8 = 32;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", listen] => runtime.block_on(serve(parse(listen))),
        [mode @ ("down" | "up" | "new"), target, sessions, seconds] => {
            let sessions = sessions.parse().expect("a session count");
            let seconds = seconds.parse().expect("seconds");
            runtime.block_on(load(mode, parse(target), sessions, seconds));
            Ok(())
        }
        _ => Err("usage: tcp_load serve ADDR | tcp_load down|up|new ADDR SESSIONS SECONDS".into()),
    };
    if let Err(error) = result {
        eprintln!("tcp_load: {error}");
        std::process::exit(2);
    }
}

fn parse(address: &str) -> SocketAddr {
    address.parse().expect("an ip:port")
}

async fn serve(listen: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(listen).await.map_err(|e| e.to_string())?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(session(stream));
    }
}

async fn session(mut stream: TcpStream) {
    let mut first = [0u8; 1];
    if stream.read_exact(&mut first).await.is_err() {
        return;
    }
    let mut buffer = vec![0u8; CHUNK];
    match first[0] {
        b'D' => while stream.write_all(&buffer).await.is_ok() {},
        b'U' => while matches!(stream.read(&mut buffer).await, Ok(1..)) {},
        _ => {
            let mut rest = [0u8; 15];
            if stream.read_exact(&mut rest).await.is_ok() {
                let _ = stream.write_all(&first).await;
                let _ = stream.write_all(&rest).await;
            }
        }
    }
}

async fn load(mode: &str, target: SocketAddr, sessions: usize, seconds: u64) {
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for index in 0..sessions {
        let (done, errors) = (Arc::clone(&done), Arc::clone(&errors));
        let mode = mode.to_string();
        tasks.push(tokio::spawn(async move {
            match mode.as_str() {
                "new" => new_sessions(target, index, until, &done, &errors).await,
                _ => bulk(&mode, target, until, &done, &errors).await,
            }
        }));
    }
    let started = Instant::now();
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = done.load(Ordering::Relaxed) as f64;
    let key = if mode == "new" {
        "sessions_per_s"
    } else {
        "bytes_per_s"
    };
    println!(
        "{{\"{key}\": {:.1}, \"errors\": {}}}",
        total / elapsed,
        errors.load(Ordering::Relaxed)
    );
}

/// One session streaming one way until `until`; `done` counts the bytes.
async fn bulk(
    mode: &str,
    target: SocketAddr,
    until: Instant,
    done: &AtomicU64,
    errors: &AtomicU64,
) {
    let Ok(mut stream) = TcpStream::connect(target).await else {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let first = if mode == "down" { b"D" } else { b"U" };
    if stream.write_all(first).await.is_err() {
        errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut buffer = vec![0u8; CHUNK];
    while Instant::now() < until {
        let moved = if mode == "down" {
            stream.read(&mut buffer).await
        } else {
            stream.write(&buffer).await
        };
        match moved {
            Ok(n @ 1..) => {
                done.fetch_add(n as u64, Ordering::Relaxed);
            }
            _ => {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Sessions one after the other until `until`: connect, 16 bytes each way, close.
async fn new_sessions(
    target: SocketAddr,
    index: usize,
    until: Instant,
    done: &AtomicU64,
    errors: &AtomicU64,
) {
    let source = IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + (index % usize::from(SOURCES)) as u8,
    ));
    while Instant::now() < until {
        match one_session(target, source).await {
            Ok(()) => done.fetch_add(1, Ordering::Relaxed),
            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}

async fn one_session(target: SocketAddr, source: IpAddr) -> std::io::Result<()> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    stream.write_all(b"E123456789abcdef").await?;
    let mut answer = [0u8; 16];
    stream.read_exact(&mut answer).await?;
    Ok(())
}
