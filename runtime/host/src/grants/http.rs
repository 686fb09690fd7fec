//! `http.send`: outbound HTTP to granted hosts only.

use std::time::Duration;

use super::Capabilities;

/// Default timeout of one request.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body handed to a plugin.
const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// A request as the plugin sends it.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub timeout: Option<Duration>,
}

/// A response as the plugin receives it.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A blocking client (connector calls already run on blocking threads) with no
/// redirects and no proxy from the environment: a request goes to the host it
/// names, which is the host that was checked.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
}

impl Client {
    pub(crate) fn new() -> Self {
        let agent = ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(DEFAULT_TIMEOUT))
            .build()
            .into();
        Self { agent }
    }
}

impl Capabilities {
    /// Sends `req` if its host is granted; `deadline` caps the timeout (the call's
    /// own deadline, so a slow server cannot hold a plugin call past it).
    pub(crate) fn send(&self, req: Request, deadline: Duration) -> Result<Response, String> {
        if !(req.url.starts_with("http://") || req.url.starts_with("https://")) {
            return Err(self.refuse(format!(
                "'{}': only http and https URLs can be granted",
                req.url
            )));
        }
        let uri: ureq::http::Uri = req
            .url
            .parse()
            .map_err(|e| format!("invalid url '{}': {e}", req.url))?;
        let scheme = uri.scheme_str().unwrap_or("");
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        if !self.host_granted(&host, port) {
            return Err(self.refuse(format!(
                "{host}:{port} is not in the plugin's [grants] http ({})",
                if self.hosts.is_empty() {
                    "nothing granted".to_string()
                } else {
                    self.hosts.join(", ")
                }
            )));
        }
        if req.method.eq_ignore_ascii_case("CONNECT") {
            return Err(self.refuse("the CONNECT method (a tunnel) cannot be granted".into()));
        }
        if let Some((name, _)) = req
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            // The Host header must name the host that was checked, not another
            // virtual host behind the same address.
            return Err(self.refuse(format!("setting the '{name}' header is not allowed")));
        }
        // Errors name the URL without any userinfo in it.
        let shown = format!(
            "{scheme}://{host}:{port}{}",
            uri.path_and_query().map_or("", |p| p.as_str())
        );
        let mut builder = ureq::http::Request::builder()
            .method(req.method.as_str())
            .uri(uri);
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let request = builder
            .body(req.body)
            .map_err(|e| format!("invalid request: {e}"))?;
        let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT).min(deadline);
        let request = self
            .client
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        let response = self
            .client
            .agent
            .run(request)
            .map_err(|e| format!("{} {shown}: {e}", req.method))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
            .collect();
        let body = response
            .into_body()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| format!("{} {shown}: reading the response: {e}", req.method))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// `host` or `host:port` grants; a bare host grants every port.
    fn host_granted(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.hosts.iter().any(|g| {
            let (gh, gp) = super::split_host(g);
            gh == host && gp.is_none_or(|p| p == port)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Grants;

    #[test]
    fn only_granted_hosts_and_ports_pass() {
        let caps = Capabilities::new(
            "p",
            &Grants {
                http: vec!["127.0.0.1:8080".into(), "Example.com".into()],
                dirs: vec![],
            },
        );
        assert!(caps.host_granted("127.0.0.1", 8080));
        assert!(!caps.host_granted("127.0.0.1", 8081));
        assert!(caps.host_granted("example.com", 443));
        assert!(!caps.host_granted("example.com.evil.net", 443));
        assert!(!caps.host_granted("localhost", 8080));
        let refused = |url: &str| {
            caps.send(
                Request {
                    method: "GET".into(),
                    url: url.into(),
                    headers: vec![],
                    body: vec![],
                    timeout: None,
                },
                Duration::from_secs(1),
            )
            .unwrap_err()
        };
        assert!(refused("http://127.0.0.1:9/x").starts_with("capability_denied"));
        assert!(refused("file:///etc/passwd").starts_with("capability_denied"));
        assert!(refused("http://user@10.0.0.1:8080/").starts_with("capability_denied"));
        let with = |method: &str, headers: Vec<(String, String)>| {
            caps.send(
                Request {
                    method: method.into(),
                    url: "http://127.0.0.1:8080/".into(),
                    headers,
                    body: vec![],
                    timeout: None,
                },
                Duration::from_secs(1),
            )
            .unwrap_err()
        };
        assert!(with("CONNECT", vec![]).starts_with("capability_denied"));
        let e = with("GET", vec![("HOST".into(), "admin.internal".into())]);
        assert!(e.starts_with("capability_denied"), "{e}");
        assert_eq!(caps.refused(), 5);
    }
}
