//! A DNS server on 127.0.0.1 for discovery tests: answers A and SRV queries from a table the
//! test changes, or SERVFAIL / NXDOMAIN on demand, and counts the queries it gets.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{Name, RData, Record};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// How a name is answered.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A records with this TTL (seconds).
    A(Vec<Ipv4Addr>, u32),
    /// SRV records (priority, weight, port, target) with this TTL.
    Srv(Vec<(u16, u16, u16, String)>, u32),
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN.
    NxDomain,
}

/// The running server; stops when dropped.
pub struct TestDns {
    /// Its address (give it as `nameserver`).
    pub addr: SocketAddr,
    answers: Arc<Mutex<HashMap<String, Answer>>>,
    queries: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl TestDns {
    /// Starts a server with no names.
    pub async fn start() -> TestDns {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let answers: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let queries = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let (table, count, halt) = (Arc::clone(&answers), Arc::clone(&queries), stop.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, from) = tokio::select! {
                    received = socket.recv_from(&mut buf) => match received { Ok(r) => r, Err(_) => continue },
                    () = halt.cancelled() => return,
                };
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let response = respond(&query, &table.lock().unwrap());
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        TestDns {
            addr,
            answers,
            queries,
            stop,
        }
    }

    /// Sets how `name` is answered.
    pub fn set(&self, name: &str, answer: Answer) {
        self.answers.lock().unwrap().insert(key(name), answer);
    }

    /// Queries received so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }
}

fn respond(query: &Message, table: &HashMap<String, Answer>) -> Message {
    let mut response = Message::new();
    response.set_id(query.id());
    response.set_message_type(MessageType::Response);
    response.set_op_code(query.op_code());
    response.set_recursion_desired(query.recursion_desired());
    response.set_recursion_available(true);
    response.set_authoritative(true);
    response.add_queries(query.queries().to_vec());
    let Some(question) = query.queries().first() else {
        response.set_response_code(ResponseCode::FormErr);
        return response;
    };
    let name = question.name().clone();
    match table.get(&key(&name.to_string())) {
        None | Some(Answer::NxDomain) => {
            response.set_response_code(ResponseCode::NXDomain);
        }
        Some(Answer::ServFail) => {
            response.set_response_code(ResponseCode::ServFail);
        }
        Some(Answer::A(ips, ttl)) => {
            if question.query_type() == hickory_proto::rr::RecordType::A {
                for ip in ips {
                    response.add_answer(Record::from_rdata(name.clone(), *ttl, RData::A(A(*ip))));
                }
            }
        }
        Some(Answer::Srv(records, ttl)) => {
            for (priority, weight, port, target) in records {
                let target = Name::from_ascii(format!("{target}.")).unwrap();
                let srv = SRV::new(*priority, *weight, *port, target);
                response.add_answer(Record::from_rdata(name.clone(), *ttl, RData::SRV(srv)));
            }
        }
    }
    response
}
