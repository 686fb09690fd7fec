//! Test harness: real servers on real loopback sockets with real sled files in temp
//! dirs, either in-process (`weir_server::run`) or as the `weir` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use weir_server::Config;

/// The `weir` binary built by this test build.
pub const WEIR: &str = env!("CARGO_BIN_EXE_weir");

/// Polls `cond` every 50 ms for up to 10 s.
pub async fn eventually<F, Fut>(what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(Duration::from_secs(10), what, cond).await;
}

/// Polls `cond` every 50 ms for up to `limit`.
pub async fn eventually_within<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !cond().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A broker running inside the test process.
pub struct TestServer {
    pub url: String,
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub http: reqwest::Client,
}

impl TestServer {
    /// A fresh server with test-sized limits and a fast cleaner.
    pub async fn start() -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut s = Self::start_in(&dir, test_config(&dir)).await;
        s._temp = Some(temp);
        s
    }

    /// A server in a fresh temp dir, after `setup` installed plugins into its plugin
    /// dir and adjusted its config.
    pub async fn start_with(setup: impl FnOnce(&Path, &mut Config)) -> TestServer {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let mut config = test_config(&dir);
        std::fs::create_dir_all(&config.plugin_dir).unwrap();
        setup(&config.plugin_dir.clone(), &mut config);
        let mut s = Self::start_in(&dir, config).await;
        s._temp = Some(temp);
        s
    }

    /// A server on an existing directory (for restarts).
    pub async fn start_in(dir: &Path, config: Config) -> TestServer {
        // A previous server in this process may still be letting go of the store's
        // file lock (a connection task finishing after the graceful shutdown).
        let mut tries = 0;
        let opened = loop {
            match weir_server::open_broker(&config).await {
                Ok(b) => break b,
                Err(e) if tries < 100 && format!("{e:#}").contains("could not acquire lock") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("opening the broker: {e:#}"),
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            weir_server::run(listener, opened, &config, async {
                let _ = stopped.await;
            })
            .await
        });
        TestServer {
            url,
            dir: dir.to_path_buf(),
            _temp: None,
            stop: Some(stop),
            task: Some(task),
            http: crate::harness::http_client(),
        }
    }

    /// Stops the server cleanly (final flush) and waits for it.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
        self._temp.take()
    }

    pub fn client(&self) -> Api {
        Api {
            url: self.url.clone(),
            http: self.http.clone(),
        }
    }
}

/// Test-sized limits: 64 KiB bodies, 4 KiB records, a cleaner every 50 ms, a 1 s group
/// session timeout.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config {
        data_dir: dir.join("data"),
        plugin_dir: dir.join("plugins"),
        ..Config::default()
    };
    c.limits.max_request_bytes = 64 << 10;
    c.limits.max_record_bytes = 4 << 10;
    c.storage.cleaner_interval_ms = 50;
    c.groups.session_timeout_ms = 1000;
    c
}

/// The `[connectors]` section of weir.toml that lets connectors reach `dirs` and
/// `hosts` (nothing is allowed by default).
pub fn allow_connectors(dirs: &[&Path], hosts: &[&str]) -> String {
    format!(
        "[connectors]\nallowed_dirs = {:?}\nallowed_hosts = {:?}\n",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>(),
        hosts
    )
}

/// Installs plugin folder `<plugins>/<name>/`: a copy of `component` and a
/// `plugin.toml` of `kind` with `extra` TOML (limits, config, attachments) appended.
pub fn install_plugin(plugins: &Path, name: &str, kind: &str, component: &str, extra: &str) {
    let dir = plugins.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(component, dir.join("plugin.wasm")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!("name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"plugin.wasm\"\n{extra}\n"),
    )
    .unwrap();
}

/// A thin JSON client over one server.
#[derive(Clone)]
pub struct Api {
    pub url: String,
    pub http: reqwest::Client,
}

/// Status and parsed body of a response.
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Resp {
    /// Asserts a problem+json error with `code`.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

impl Api {
    /// A client of the same server that sends `Authorization: Bearer <token>` with
    /// every request.
    pub fn with_token(&self, token: &str) -> Api {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        Api {
            url: self.url.clone(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("non-JSON body ({e}): {bytes:?}"))
        };
        Resp {
            status,
            content_type,
            body,
        }
    }

    /// `GET /metrics` as text (OpenMetrics, not JSON).
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.http.get(format!("{}{path}", self.url)))
            .await
    }

    pub async fn put_json(&self, path: &str, body: Value) -> Resp {
        self.send(
            self.http
                .put(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }

    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Resp {
        self.send(
            self.http
                .post(format!("{}{path}", self.url))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.http.delete(format!("{}{path}", self.url)))
            .await
    }

    /// Creates a topic, asserting 201.
    pub async fn create_topic(&self, name: &str, config: Value) {
        let r = self.put_json(&format!("/v1/topics/{name}"), config).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }

    /// Publishes JSON records, asserting 200; returns the offsets array.
    pub async fn publish(&self, topic: &str, records: Value) -> Vec<Value> {
        let r = self
            .post(
                &format!("/v1/topics/{topic}/records"),
                "application/json",
                json!({ "records": records }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["offsets"].as_array().unwrap().clone()
    }

    /// Publishes JSON records through the topic's pipeline, asserting 200; each
    /// record's result.
    pub async fn publish_results(&self, topic: &str, records: Vec<Value>) -> Vec<Value> {
        let r = self
            .post(
                &format!("/v1/topics/{topic}/records"),
                "application/json",
                json!({ "records": records }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["results"].as_array().unwrap().clone()
    }

    /// Fetches a partition from `offset` (no waiting).
    pub async fn fetch(&self, topic: &str, partition: u32, offset: u64) -> Resp {
        self.get(&format!(
            "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&max_records=10000"
        ))
        .await
    }

    /// All records of a partition from `offset`, following `next_offset`.
    pub async fn fetch_all(&self, topic: &str, partition: u32, mut offset: u64) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let r = self.fetch(topic, partition, offset).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let records = r.body["records"].as_array().unwrap();
            out.extend(records.iter().cloned());
            let next = r.body["next_offset"].as_u64().unwrap();
            if records.is_empty() || next >= r.body["high_watermark"].as_u64().unwrap() {
                return out;
            }
            offset = next;
        }
    }

    /// The topic description.
    pub async fn describe(&self, topic: &str) -> Value {
        let r = self.get(&format!("/v1/topics/{topic}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// `(log_start_offset, high_watermark)` of a partition.
    pub async fn offsets(&self, topic: &str, partition: usize) -> (u64, u64) {
        let d = self.describe(topic).await;
        let p = &d["partitions"][partition];
        (
            p["log_start_offset"].as_u64().unwrap(),
            p["high_watermark"].as_u64().unwrap(),
        )
    }
}

/// The `weir serve` binary as a child process.
pub struct ServerProcess {
    pub child: Child,
    pub url: String,
    /// Every line the server logged so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `weir serve` on a free port with `dir` as data dir; waits until it serves.
    pub fn start(dir: &Path) -> ServerProcess {
        Self::start_args(dir, &[])
    }

    /// [`start`](Self::start) with `config` (TOML) written to `<dir>/weir.toml`.
    pub fn start_configured(dir: &Path, config: &str) -> ServerProcess {
        let path = dir.join("weir.toml");
        std::fs::write(&path, config).unwrap();
        Self::start_args(dir, &["--config", path.to_str().unwrap()])
    }

    /// [`start`](Self::start) with more command-line arguments (`--config FILE`).
    pub fn start_args(dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(WEIR)
            .args(["serve", "--listen", "127.0.0.1:0", "--log", "info"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--plugin-dir")
            .arg(dir.join("plugins"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Kept before the address is handed on: a caller reading the log
                // (the Kafka address on the same line) must find the line.
                let addr = line
                    .split("listen=")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or("").to_string());
                lines.lock().unwrap().push(line);
                if let Some(addr) = addr
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(addr);
                }
            }
        });
        // Generous: a first start compiles its plugins (a Python component takes ~7 s on
        // two idle cores) before it listens.
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(180)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "weir serve did not report its address; it logged:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        ServerProcess {
            child,
            url: format!("http://{addr}"),
            log,
        }
    }

    /// The Kafka listener's address (`[kafka] listen`), as the serving line logged it.
    pub fn kafka_addr(&self) -> String {
        self.log_lines("weir is serving")
            .iter()
            .find_map(|l| l.split("kafka=").nth(1))
            .and_then(|a| a.split_whitespace().next())
            .unwrap_or_else(|| {
                panic!(
                    "the server logged no Kafka listener ([kafka] listen); it logged:\n{}",
                    self.log.lock().unwrap().join("\n")
                )
            })
            .to_string()
    }

    /// The log lines that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    pub fn client(&self) -> Api {
        Api {
            url: self.url.clone(),
            http: crate::harness::http_client(),
        }
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

/// A failed assertion must not leave a broker running.
impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// A minimal SSE client over a reqwest byte stream.
pub struct SseClient {
    resp: reqwest::Response,
    buf: String,
}

impl SseClient {
    /// Opens `path` with an optional `Last-Event-ID`.
    pub async fn open(api: &Api, path: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = api
            .http
            .get(format!("{}{path}", api.url))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"),
            "{:?}",
            resp.headers()
        );
        SseClient {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (comments skipped), or None after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut e = SseEvent {
                    event: "message".into(),
                    ..SseEvent::default()
                };
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        e.id = Some(v.trim_start().to_string());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        e.event = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.trim_start().to_string());
                    }
                }
                if data.is_empty() && e.id.is_none() {
                    continue; // a keep-alive comment
                }
                e.data = data.join("\n");
                return Some(e);
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next `record` event.
    pub async fn next_record(&mut self, timeout: Duration) -> Option<SseEvent> {
        loop {
            let e = self.next(timeout).await?;
            if e.event == "record" {
                return Some(e);
            }
        }
    }
}

/// A client like the CLI's: idle connections are let go before the server's header
/// deadline (which also closes idle keep-alive connections) would close them.
/// The hex SHA-256 of an API token, as `[auth] tokens` stores it.
pub fn token_sha256(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A size-limited tmpfs mounted on a fresh temp dir for one test, unmounted on drop.
/// Mounting needs root: `None` (and a note on stderr) otherwise, so a developer
/// without root can still run the suite; CI runs as root and runs these tests.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size_bytes: u64) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED: mounting a size-limited tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_bytes}"),
                "weir-test",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        if !status.success() {
            eprintln!("SKIPPED: mount -t tmpfs failed (a container without CAP_SYS_ADMIN?)");
            return None;
        }
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}
