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
        let connected = Instant::now();
        if i % 2 == 0 {
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .unwrap();
        }
        stalled.push((s, connected));
    }
    // Meanwhile a well-behaved client is answered.
    let ok = server
        .http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut slowest = Duration::ZERO;
    for (i, (s, connected)) in stalled.iter_mut().enumerate() {
        closed_within(s, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("stalled connection {i} was still open after 10 s"));
        let open_for = connected.elapsed();
        // Closed at the deadline (1 s after connecting), not before it.
        assert!(open_for >= Duration::from_millis(900), "{i}: {open_for:?}");
        slowest = slowest.max(open_for);
    }
    eprintln!("40 stalled connections closed; the longest was open {slowest:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_503_and_the_cap_frees_up() {
    let server = TestServer::start_with(|_, c| {
        c.limits.max_connections = 8;
        c.limits.header_read_timeout_ms = 30_000;
    })
    .await;
    // Eight keep-alive connections, each answered once, hold every slot.
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr(&server)).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
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
    let http = crate::harness::http_client();
    let url = format!("{}/healthz", server.url);
    eventually("a freed slot serves a new client", || async {
        http.get(&url).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    drop(held);
    server.stop().await;
}

/// One malformed request: method, path, content type, body.
struct Bad {
    method: &'static str,
    path: String,
    content_type: &'static str,
    body: Vec<u8>,
}

fn bad(
    method: &'static str,
    path: &str,
    content_type: &'static str,
    body: impl Into<Vec<u8>>,
) -> Bad {
    Bad {
        method,
        path: path.to_string(),
        content_type,
        body: body.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_of_every_kind_gets_a_4xx_problem_never_a_5xx() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", serde_json::json!({ "partitions": 2 }))
        .await;
    let publish = "/v1/topics/t/records";
    // 30,000 levels: deep enough to overflow a recursive parser, small enough (60 KB)
    // to pass the test's 64 KiB body limit and reach the parser.
    let deep = format!("{}1{}", "[".repeat(30_000), "]".repeat(30_000));
    let deep_value = format!(r#"{{"records":[{{"value":{deep}}}]}}"#);
    let cases = vec![
        // Bodies.
        bad(
            "POST",
            publish,
            "application/json",
            b"{\"records\":[{\"value\":\"\xff\xfe\"}]}".to_vec(),
        ),
        bad(
            "POST",
            publish,
            "application/json",
            b"\xff\xfe\xfd".to_vec(),
        ),
        bad("POST", publish, "application/json", deep_value.clone()),
        bad("POST", publish, "application/json", deep.clone()),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"partition":18446744073709551616,"value":1}]}"#,
        ),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"partition":-1,"value":1}]}"#,
        ),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"value":1,"value":2}]}"#,
        ),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[],"records":[]}"#,
        ),
        bad("POST", publish, "application/json", r#"{"records":{}}"#),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"key":{"a":1},"value":1}]}"#,
        ),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"value_base64":"%%%"}]}"#,
        ),
        bad(
            "POST",
            publish,
            "application/json",
            r#"{"records":[{"headers":{"a":1},"value":1}]}"#,
        ),
        bad("POST", publish, "application/json", ""),
        bad("POST", publish, "application/json", "null"),
        bad(
            "POST",
            publish,
            "application/x-ndjson",
            "{\"value\":1}\n{oops\n",
        ),
        bad("POST", publish, "application/x-ndjson", b"\xff\n".to_vec()),
        bad("POST", publish, "text/plain", "hello"),
        bad("POST", publish, "application/xml", "<a/>"),
        bad("POST", publish, "", "{}"),
        bad(
            "POST",
            publish,
            "application/cloudevents+json",
            r#"{"specversion":"1.0"}"#,
        ),
        bad(
            "POST",
            publish,
            "application/cloudevents+json",
            r#"{"specversion":"9.9","id":"1","source":"s","type":"t"}"#,
        ),
        bad(
            "POST",
            publish,
            "application/cloudevents+json",
            r#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#,
        ),
        bad(
            "POST",
            publish,
            "application/cloudevents-batch+json",
            r#"[{"specversion":"1.0"}]"#,
        ),
        bad(
            "POST",
            publish,
            "application/cloudevents-batch+json",
            r#"{"not":"an array"}"#,
        ),
        bad(
            "PUT",
            "/v1/topics/u",
            "application/json",
            r#"{"partitions":0}"#,
        ),
        bad(
            "PUT",
            "/v1/topics/u",
            "application/json",
            r#"{"partitions":4294967296}"#,
        ),
        bad(
            "PUT",
            "/v1/topics/u",
            "application/json",
            r#"{"partitions":"two"}"#,
        ),
        bad("PUT", "/v1/topics/u", "application/json", deep.clone()),
        bad(
            "PUT",
            "/v1/topics/%ff%fe",
            "application/json",
            r#"{"partitions":1}"#,
        ),
        bad(
            "PUT",
            "/v1/topics/t/pipeline",
            "application/json",
            r#"[{"plugin":""}]"#,
        ),
        bad(
            "POST",
            "/v1/groups/g/offsets",
            "application/json",
            r#"{"offsets":[{"topic":"t","partition":0,"offset":-5}]}"#,
        ),
        bad(
            "POST",
            "/v1/groups/g/offsets",
            "application/json",
            r#"{"offsets":"x"}"#,
        ),
        bad(
            "POST",
            "/v1/groups/g/offsets/reset",
            "application/json",
            r#"{"topic":"t","to":"yesterday"}"#,
        ),
        // Query values.
        bad("GET", "/v1/topics/t/partitions/0/records?offset=-1", "", ""),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?offset=99999999999999999999999",
            "",
            "",
        ),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?offset=abc",
            "",
            "",
        ),
        bad("GET", "/v1/topics/t/partitions/0/records?offset=5", "", ""),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?max_records=-3",
            "",
            "",
        ),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?max_bytes=1e99",
            "",
            "",
        ),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?timeout_ms=99999999999999999999",
            "",
            "",
        ),
        bad(
            "GET",
            "/v1/topics/t/partitions/0/records?timestamp_ms=-99999999999999999999",
            "",
            "",
        ),
        bad("GET", "/v1/topics/t/partitions/99/records", "", ""),
        bad("GET", "/v1/topics/t/partitions/4294967296/records", "", ""),
        bad("GET", "/v1/topics/t/partitions/x/records", "", ""),
        bad("GET", "/v1/topics/t/events?from=0:abc", "", ""),
        bad("GET", "/v1/topics/t/events?from=nowhere", "", ""),
        bad("GET", "/v1/topics/t/records?group=", "", ""),
        bad(
            "GET",
            "/v1/topics/t/records?group=g&commit=sometimes",
            "",
            "",
        ),
        bad(
            "GET",
            "/v1/topics/t/records?group=g&auto_offset_reset=middle",
            "",
            "",
        ),
        bad(
            "POST",
            "/v1/topics/t/records?acks=maybe",
            "application/json",
            r#"{"records":[{"value":1}]}"#,
        ),
        bad("GET", "/v1/overview/stream?interval_ms=abc", "", ""),
        bad("GET", "/v1/nonsense", "", ""),
        bad("GET", "/v1/topics/nope", "", ""),
    ];
    let http = crate::harness::http_client();
    let mut failures = Vec::new();
    for case in &cases {
        let url = format!("{}{}", server.url, case.path);
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut req = http.request(method, &url).body(case.body.clone());
        if !case.content_type.is_empty() {
            req = req.header("content-type", case.content_type);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await.unwrap();
        let problem = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .filter(|v| v["code"].is_string() && v["status"] == status);
        if !(400..500).contains(&status)
            || content_type != "application/problem+json"
            || problem.is_none()
        {
            failures.push(format!(
                "{} {} ({}): {status} {content_type} {}",
                case.method,
                case.path,
                case.content_type,
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not a 4xx problem:\n{}",
        failures.join("\n")
    );
    // Nothing was stored, and the server still answers.
    let t = api.get("/v1/topics/t").await;
    assert_eq!(t.status, 200);
    for p in t.body["partitions"].as_array().unwrap() {
        assert_eq!(p["high_watermark"], 0, "{}", t.body);
    }
    // A number beyond f64 is still JSON: values are stored as the exact text sent
    // (no rounding through floats), and served back the same.
    let huge = "123456789012345678901234567890e999999";
    let body = format!(r#"{{"records":[{{"value":{huge},"partition":0}}]}}"#);
    let resp = api.post(publish, "application/json", body).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let fetched = http
        .get(format!("{}/v1/topics/t/partitions/0/records", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(fetched.contains(&format!(r#""value":{huge}"#)), "{fetched}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_writes_nothing() {
    let server = TestServer::start_with(|_, c| c.limits.body_idle_timeout_ms = 500).await;
    let api = server.client();
    api.create_topic("t", serde_json::json!({ "partitions": 1 }))
        .await;
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    s.write_all(
        b"POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"records\":[",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // The server answers and closes the connection (the body was not read to its end).
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    let t = api.get("/v1/topics/t").await;
    assert_eq!(t.body["partitions"][0]["high_watermark"], 0);
    server.stop().await;
}

/// An early answer (a 413 from `Content-Length`, before the body is read) reaches a
/// client that writes its whole body before reading, as Python's urllib does: the
/// server drains the body (a lingering close) instead of resetting the connection.
/// A client that keeps trickling is still closed within the lingering bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_answers_reach_clients_that_send_their_whole_body_first() {
    let server = TestServer::start().await;
    server
        .client()
        .create_topic("t", serde_json::json!({ "partitions": 1 }))
        .await;
    // A real client: urllib posting 8 MiB against the test's 64 KiB limit.
    let script = format!(
        "import urllib.request, urllib.error\n\
         req = urllib.request.Request('{}/v1/topics/t/records', data=b'x' * (8 << 20), \
         headers={{'content-type': 'application/json'}}, method='POST')\n\
         try:\n    urllib.request.urlopen(req, timeout=20)\n    print('accepted')\n\
         except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n",
        server.url
    );
    let out = tokio::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .await
        .expect("python3 runs (tests/install.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.starts_with("413") && stdout.contains("payload_too_large"),
        "stdout: {stdout}\nstderr: {stderr}"
    );

    // A client that announces a huge body and trickles it forever.
    let mut s = TcpStream::connect(addr(&server)).await.unwrap();
    s.write_all(
        b"POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000000\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let trickle = async {
        loop {
            if s.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(15), trickle).await;
    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(10),
        "a trickling client was held {held:?}"
    );
    server.stop().await;
}
