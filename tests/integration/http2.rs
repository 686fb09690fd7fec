//! HTTP/2 beside HTTP/1.1 on the same listener: h2c with prior knowledge (curl and a
//! Rust client), ALPN `h2` over TLS, and many concurrent streams on one connection.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use weir_server::config::TlsConfig;

use crate::harness::TestServer;
use crate::tls::{pki, write};

/// `curl --http2-prior-knowledge ARGS`: (HTTP version, status, body).
async fn curl_h2(args: &[&str]) -> (String, u16, String) {
    let out = tokio::process::Command::new("curl")
        .args([
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .await
        .expect("curl is installed (tests/install.sh)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let (version, status) = tail.split_once(' ').unwrap();
    (
        version.to_string(),
        status.parse().unwrap(),
        body.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_publishes_fetches_and_streams_over_h2c() {
    let server = TestServer::start().await;
    let url = &server.url;
    let (v, status, _) = curl_h2(&[
        "-X",
        "PUT",
        &format!("{url}/v1/topics/t"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"partitions":1}"#,
    ])
    .await;
    assert_eq!((v.as_str(), status), ("2", 201));
    let (v, status, body) = curl_h2(&[
        "-X",
        "POST",
        &format!("{url}/v1/topics/t/records"),
        "-H",
        "content-type: application/json",
        "-d",
        r#"{"records":[{"value":"a"},{"value":"b"}]}"#,
    ])
    .await;
    assert_eq!((v.as_str(), status), ("2", 200), "{body}");
    let (v, status, body) =
        curl_h2(&[&format!("{url}/v1/topics/t/partitions/0/records?offset=0")]).await;
    assert_eq!((v.as_str(), status), ("2", 200));
    let fetched: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fetched["records"][1]["value"], "b");
    // SSE: the stream stays open; curl stops after its time limit with what it got.
    let (_, _, body) = curl_h2(&[
        "--max-time",
        "2",
        "-N",
        &format!("{url}/v1/topics/t/events?from=earliest"),
    ])
    .await;
    assert!(
        body.contains("id: 0:0") && body.contains("id: 0:1") && body.contains(r#""value":"b""#),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_publishes_share_one_http2_connection() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 4 })).await;
    // One connection: reqwest multiplexes every request over it with prior knowledge.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let publishes = (0..500).map(|i| {
        let (h2, url) = (h2.clone(), server.url.clone());
        async move {
            let r = h2
                .post(format!("{url}/v1/topics/t/records"))
                .header("content-type", "application/json")
                .body(json!({ "records": [{ "key": format!("k{i}"), "value": i }] }).to_string())
                .send()
                .await
                .unwrap();
            (r.version(), r.status().as_u16())
        }
    });
    let answers = futures_util::future::join_all(publishes).await;
    assert!(
        answers
            .iter()
            .all(|a| *a == (reqwest::Version::HTTP_2, 200)),
        "{:?}",
        answers
            .iter()
            .find(|a| **a != (reqwest::Version::HTTP_2, 200))
    );
    let mut stored = 0;
    for p in 0..4 {
        stored += api.fetch_all("t", p, 0).await.len();
    }
    assert_eq!(stored, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_that_offer_h2_get_http2() {
    let pki = pki();
    let certs = tempfile::tempdir().unwrap();
    let tls = TlsConfig {
        cert: write(certs.path(), "server.pem", &pki.server.0),
        key: write(certs.path(), "server.key", &pki.server.1),
        client_ca: None,
        require_client_cert: false,
    };
    let server = TestServer::start_with(move |_, c| c.tls = Some(tls)).await;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("PUT")
        .uri("https://127.0.0.1/v1/topics/secure")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(r#"{"partitions":1}"#)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 201);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let created: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(created["name"], "secure");
}
