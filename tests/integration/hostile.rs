//! Clients that try to tie the server up: slow headers, idle sockets, more
//! connections than the cap. The server closes or refuses them and keeps serving.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{TestServer, eventually};

fn addr(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `s` (a read returns 0 or fails) and returns how long
/// that took, or `None` if it is still open after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_closed_and_others_are_served() {
    let server = TestServer::start_with(|_, c| c.limits.header_read_timeout_ms = 1000).await;
    // 20 clients send half a request and stall; 20 more connect and send nothing.
    let mut stalled = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(addr(&server)).await.unwrap();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    // Meanwhile a well-behaved client is answered at once.
    let started = Instant::now();
    let ok = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1));
    let mut slowest = Duration::ZERO;
    for (i, s) in stalled.iter_mut().enumerate() {
        let took = closed_within(s, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("stalled connection {i} was still open after 5 s"));
        slowest = slowest.max(took);
    }
    // Closed at the deadline (1 s after connecting), not before it.
    assert!(slowest >= Duration::from_millis(500), "{slowest:?}");
    eprintln!("40 stalled connections closed; the last {slowest:?} after the check began");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    let server = TestServer::start_with(|_, c| {
        c.limits.max_connections = 8;
        c.limits.header_read_timeout_ms = 30_000;
    })
    .await;
    // Eight idle connections hold every slot.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr(&server)).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), extra.read_to_end(&mut answer))
        .await
        .expect("the refused connection was closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(
        answer.contains("\"code\":\"too_many_connections\""),
        "{answer}"
    );
    // One slot frees: new clients are served again.
    drop(held.pop());
    let http = reqwest::Client::new();
    let url = format!("{}/healthz", server.url);
    eventually("a freed slot serves a new client", || async {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    drop(held);
    server.stop().await;
}
