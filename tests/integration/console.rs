//! The web console in a real headless browser (Debian's chromium, driven over the
//! DevTools protocol): the page loads against a running broker, a record published
//! by the test shows up in the live tail, and the counters move.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::harness::TestServer;

/// A headless chromium with its DevTools endpoint.
struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium is needed for the console test (tests/install.sh installs Debian's chromium)");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let ws = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium did not report its DevTools address");
        let port = ws
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Browser {
            child,
            port,
            _profile: profile,
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page, driven with DevTools commands.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn open(browser: &Browser) -> Page {
        let list = reqwest::get(format!("http://127.0.0.1:{}/json/list", browser.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let targets: Vec<Value> = serde_json::from_str(&list).unwrap();
        let page = targets
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Page { ws, next_id: 1 }
    }

    /// Sends a command and returns its result (events in between are skipped).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
                .await
                .expect("DevTools answered")
                .unwrap()
                .unwrap();
            if let Message::Text(text) = frame {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["id"] == id {
                    assert!(v.get("error").is_none(), "{method}: {v}");
                    return v["result"].clone();
                }
            }
        }
    }

    /// The page's text inside the element with `id`.
    async fn text(&mut self, id: &str) -> String {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": format!("document.getElementById('{id}')?.innerText ?? ''"), "returnByValue": true }),
            )
            .await;
        r["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits until the element's text satisfies `ok`.
    async fn wait_text(&mut self, id: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text(id).await;
            if ok(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "#{id} never showed {what}; it shows:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_published_records_and_moving_counters() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("ui-orders", json!({ "partitions": 2 }))
        .await;
    api.publish(
        "ui-orders",
        json!([{ "key": "old", "value": "before the page" }]),
    )
    .await;
    let browser = Browser::start();
    let mut page = Page::open(&browser).await;
    page.call("Page.enable", json!({})).await;
    page.call(
        "Page.navigate",
        json!({ "url": format!("{}/ui#tail=ui-orders", server.url) }),
    )
    .await;
    let topics = page
        .wait_text("topics", "the topic", |t| t.contains("ui-orders"))
        .await;
    assert!(topics.contains("ui-orders\t2\t1"), "{topics}");
    page.wait_text("health", "storage ready", |t| t.contains("ready"))
        .await;
    page.wait_text("status", "a live stream", |t| t.starts_with("live"))
        .await;
    // Give the tail's stream (from=latest) a moment to open, then publish.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.publish(
        "ui-orders",
        json!([{ "key": "k-42", "value": { "item": "tea from the test" }, "headers": { "region": "eu" } }]),
    )
    .await;
    let tail = page
        .wait_text("tail-list", "the published record", |t| {
            t.contains("tea from the test")
        })
        .await;
    assert!(tail.contains("k-42") && tail.contains("region"), "{tail}");
    assert!(
        !tail.contains("before the page"),
        "the tail starts at the end: {tail}"
    );
    page.wait_text("topics", "the record count to move", |t| {
        t.contains("ui-orders\t2\t2")
    })
    .await;
    // The tail's filter: a key that does not match hides new records.
    page.call(
        "Runtime.evaluate",
        json!({ "expression": "document.getElementById('tail-filter').value = 'key=nomatch'" }),
    )
    .await;
    api.publish(
        "ui-orders",
        json!([{ "key": "other", "value": "filtered out" }]),
    )
    .await;
    page.wait_text("tail-count", "the third record seen", |t| {
        t.starts_with("2 seen")
    })
    .await;
    assert!(!page.text("tail-list").await.contains("filtered out"));
    server.stop().await;
}
