//! Pre-authentication connection floods against the real `weir` binary with auth
//! on: sockets that never send, or send without credentials, must not lock an
//! authenticated client out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpSocket;

use crate::harness::{Api, eventually};
use crate::security::secured;

/// What a flood saw: connections answered 503, and connections closed unanswered
/// (evicted, past the first-request deadline, or refused beyond the refusals in
/// flight).
#[derive(Default)]
struct Flooded {
    refused: AtomicUsize,
    closed: AtomicUsize,
}

impl Flooded {
    fn turned_away(&self) -> usize {
        self.refused.load(Ordering::Relaxed) + self.closed.load(Ordering::Relaxed)
    }
}

/// `count` idle connections from `from`, each opened again `reconnect` after the
/// server closes it, as an attacker holding slots would; the task ends when aborted.
fn flood(
    from: &'static str,
    to: SocketAddr,
    count: usize,
    reconnect: Duration,
    seen: Arc<Flooded>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..count {
            let seen = seen.clone();
            set.spawn(async move {
                loop {
                    let socket = TcpSocket::new_v4().unwrap();
                    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
                    if let Ok(mut s) = socket.connect(to).await {
                        // Held until the server closes it.
                        let mut answer = Vec::new();
                        let _ = s.read_to_end(&mut answer).await;
                        let counter = if answer.starts_with(b"HTTP/1.1 503") {
                            &seen.refused
                        } else {
                            &seen.closed
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(reconnect).await;
                }
            });
        }
        while set.join_next().await.is_some() {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_floods_do_not_lock_out_an_authenticated_client() {
    let temp = tempfile::tempdir().unwrap();
    // The review's flood (1,100 idle connections against a cap of 1,024), at a third
    // of the scale so the test's own file descriptors stay well within any limit.
    let server = secured(
        temp.path(),
        temp.path(),
        "[limits]\nmax_connections = 340\nmax_connections_per_address = 100\n\
         max_pending_connections = 100\nfirst_request_timeout_ms = 3000\n",
    );
    let to: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let admin = server.client().with_token("admin-token");
    admin
        .create_topic("served", json!({ "partitions": 1 }))
        .await;
    // A keep-alive client connected before the flood, and one that connects anew for
    // every request (so it must be admitted while the flood goes on).
    let kept = admin.clone();
    let fresh = Api {
        url: server.url.clone(),
        http: reqwest::Client::builder()
            .default_headers(
                [(
                    reqwest::header::AUTHORIZATION,
                    "Bearer admin-token".parse().unwrap(),
                )]
                .into_iter()
                .collect(),
            )
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
    };
    let served = |api: Api| async move {
        let r = api
            .post(
                "/v1/topics/served/records",
                "application/json",
                json!({ "records": [{ "value": "ok" }] }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    };
    served(kept.clone()).await;

    // One address, 1.1x the total cap, reconnecting soon after each refusal: in
    // force once the server has turned a few hundred away.
    let one_seen = Arc::new(Flooded::default());
    let one = flood(
        "127.0.0.2",
        to,
        374,
        Duration::from_millis(200),
        one_seen.clone(),
    );
    eventually("the flood from one address turned away", || async {
        one_seen.turned_away() >= 300
    })
    .await;
    for _ in 0..20 {
        served(kept.clone()).await;
        served(fresh.clone()).await;
    }
    one.abort();

    // Five more addresses, 500 idle connections reconnecting every second: more than
    // may wait at once, so they evict each other.
    let many_seen = Arc::new(Flooded::default());
    let many: Vec<_> = [
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
        "127.0.0.7",
    ]
    .into_iter()
    .map(|from| flood(from, to, 100, Duration::from_secs(1), many_seen.clone()))
    .collect();
    eventually("the flood from many addresses evicting itself", || async {
        many_seen.closed.load(Ordering::Relaxed) >= 200
    })
    .await;
    for _ in 0..20 {
        served(kept.clone()).await;
        served(fresh.clone()).await;
    }
    // A probe without credentials keeps no connection either.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.8:0".parse().unwrap()).unwrap();
    let mut probe = socket.connect(to).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), probe.read_to_end(&mut answer))
        .await
        .expect("the probe's connection is closed after its answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    for f in many {
        f.abort();
    }
    assert_eq!(admin.offsets("served", 0).await.1, 81);
    server.terminate();
}
