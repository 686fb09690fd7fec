//! A small HTTP client of the Weir API for the CLI, turning problem details into
//! readable errors.

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::Value;

/// A client bound to one server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    http2: bool,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:9400`).
    pub fn new(base: &str) -> anyhow::Result<Client> {
        Self::with_token(base, None)
    }

    /// A client that sends `token` as `Authorization: Bearer` on every request.
    pub fn with_token(base: &str, token: Option<&str>) -> anyhow::Result<Client> {
        Self::build(base, token, false)
    }

    /// [`with_token`](Self::with_token) speaking HTTP/2 with prior knowledge (h2c):
    /// every request a stream on one connection.
    pub fn http2(base: &str, token: Option<&str>) -> anyhow::Result<Client> {
        Self::build(base, token, true)
    }

    fn build(base: &str, token: Option<&str>, http2: bool) -> anyhow::Result<Client> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
                .context("the token is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut http = reqwest::Client::builder();
        if http2 {
            http = http.http2_prior_knowledge();
        }
        let http = http
            .pool_max_idle_per_host(256)
            // Below the server's header_read_timeout_ms (10 s), which also closes
            // idle keep-alive connections: never reuse one the server may be closing.
            .pool_idle_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true)
            .default_headers(headers)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
            http2,
        })
    }

    /// A client like this one with a connection pool of its own (a load generator's
    /// task that should not share a pool, and its lock, with the others). Over HTTP/2
    /// the same client: its point is one shared connection.
    pub fn fork(&self) -> anyhow::Result<Client> {
        if self.http2 {
            return Ok(self.clone());
        }
        Self::build(&self.base, self.token.as_deref(), false)
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The underlying reqwest client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `req` → its JSON, or the server's problem as an error.
    async fn json(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req.send().await.with_context(|| self.unreachable())?;
        json_or_problem(resp).await
    }

    /// GET → JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(self.http.get(self.url(path))).await
    }

    /// PUT a JSON body → (status, JSON).
    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let resp = self
            .http
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .with_context(|| self.unreachable())?;
        let status = resp.status().as_u16();
        Ok((status, json_or_problem(resp).await?))
    }

    /// POST raw bytes with a content type → JSON.
    pub async fn post(&self, path: &str, content_type: &str, body: Bytes) -> anyhow::Result<Value> {
        let req = self.http.post(self.url(path));
        self.json(req.header("content-type", content_type).body(body))
            .await
    }

    /// PUT a multipart form → JSON.
    pub async fn put_multipart(
        &self,
        path: &str,
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<Value> {
        self.json(self.http.put(self.url(path)).multipart(form))
            .await
    }

    /// DELETE → the JSON it answers.
    pub async fn delete_json(&self, path: &str) -> anyhow::Result<Value> {
        self.json(self.http.delete(self.url(path))).await
    }

    /// DELETE.
    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        let resp = self
            .http
            .delete(self.url(path))
            .send()
            .await
            .with_context(|| self.unreachable())?;
        if resp.status().is_success() {
            return Ok(());
        }
        json_or_problem(resp).await.map(|_| ())
    }

    fn unreachable(&self) -> String {
        format!(
            "cannot reach the Weir server at {} (is `weir serve` running? set --url)",
            self.base
        )
    }
}

async fn json_or_problem(resp: reqwest::Response) -> anyhow::Result<Value> {
    let status = resp.status();
    let bytes = resp.bytes().await.context("reading the response")?;
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .with_context(|| format!("server sent non-JSON ({status})"))?
    };
    if status.is_success() {
        return Ok(value);
    }
    let code = value["code"].as_str().unwrap_or("error");
    let detail = value["detail"].as_str().unwrap_or("");
    bail!("{code} ({}): {detail}", status.as_u16())
}

/// The multipart body of `PUT /v1/plugins/{name}`: the `manifest` (plugin.toml) and
/// `component` parts.
pub fn deploy_form(manifest: String, component: Vec<u8>) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::text(manifest).file_name("plugin.toml"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("plugin.wasm"),
        )
}
