//! Who is calling and what they may do.
//!
//! - [`credentials`]: API tokens, JWT and client certificates → a [`Principal`].
//! - [`operations`]: each route as (operation, resource) checks.
//! - [`acl`]: the ACL policy plugin, cached, failing closed.
//!
//! [`Guard::middleware`] runs on every routed request: 401 with `WWW-Authenticate`
//! for missing or bad credentials, 403 `forbidden` for a principal without
//! permission, 503 `policy_unavailable` when the policy cannot be asked. Admin actions
//! and denials are recorded in the audit topic when one is configured.

pub mod acl;
pub mod credentials;
pub mod operations;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use weir_broker::plugins::Registry;
use weir_broker::{Acks, Broker, NewRecord};

pub use acl::{Authorizer, Verdict};
pub use credentials::{Authenticator, ClientIdentity, Principal, Refusal};
pub use operations::{Check, check};

use crate::api::problem::Problem;
use crate::config::Config;

/// Authentication and authorization for the API.
#[derive(Debug)]
pub struct Guard {
    enabled: bool,
    /// The ACL policy plugin's name (`[acl] plugin`).
    policy: Option<String>,
    protect_metrics: bool,
    authn: Authenticator,
    authz: Authorizer,
    audit: Option<Audit>,
}

impl Guard {
    /// From `[auth]` and `[acl]`; the plugin is looked up in `registry` on each check,
    /// so policy reloads apply at once.
    pub async fn new(
        config: &Config,
        registry: Arc<Registry>,
        broker: &Broker,
    ) -> anyhow::Result<Self> {
        let authn = Authenticator::new(&config.auth)?;
        let authz = Authorizer::new(
            registry,
            config.acl.plugin.clone(),
            Duration::from_millis(config.acl.cache_ttl_ms),
        );
        let audit = match &config.acl.audit_topic {
            Some(topic) if config.auth.enabled => Some(Audit::open(broker, topic).await?),
            _ => None,
        };
        if !config.auth.enabled {
            tracing::warn!(
                "AUTHENTICATION IS OFF: anyone who can reach this port may publish, read, delete topics and deploy plugins. Set [auth] enabled = true for anything but a local trial."
            );
        } else if config.acl.plugin.is_none() {
            tracing::warn!(
                "authentication is on but no ACL policy is set ([acl] plugin): every authenticated caller may do everything"
            );
        } else {
            tracing::info!(
                policy = config.acl.plugin.as_deref(),
                "authentication on; every operation is checked by the ACL policy"
            );
        }
        Ok(Self {
            enabled: config.auth.enabled,
            policy: config.acl.plugin.clone(),
            protect_metrics: config.acl.protect_metrics,
            authn,
            authz,
            audit,
        })
    }

    /// The principal behind credentials, as the middleware finds it: for
    /// listeners other than HTTP's (Kafka's SASL and client certificates).
    pub(crate) fn authenticate(
        &self,
        authorization: Option<&str>,
        client: Option<&ClientIdentity>,
    ) -> Result<Principal, Refusal> {
        self.authn.authenticate(authorization, client)
    }

    /// Whether callers must authenticate (`[auth] enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The ACL policy plugin's name, if one is configured.
    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }

    /// Requests denied since start.
    pub fn denials(&self) -> u64 {
        self.authz.denials()
    }

    /// The middleware: authenticate, check every permission the route needs, then
    /// hand the request on with its [`Principal`] as an extension.
    pub async fn middleware(
        State(guard): State<Arc<Guard>>,
        matched: Option<MatchedPath>,
        params: RawPathParams,
        mut req: Request,
        next: Next,
    ) -> Response {
        let path = matched
            .as_ref()
            .map_or_else(|| req.uri().path().to_string(), |m| m.as_str().to_string());
        let public = path == "/healthz"
            || path == "/readyz"
            || (path == "/metrics" && !guard.protect_metrics);
        if !guard.enabled {
            req.extensions_mut().insert(Principal::anonymous());
            return next.run(req).await;
        }
        if public {
            // Probes need no credentials, so they keep no connection: an idle
            // keep-alive socket would otherwise be a slot held without credentials.
            req.extensions_mut().insert(Principal::anonymous());
            return closing(next.run(req).await);
        }
        // A proxy that appends a header could disagree with us about which of two
        // credentials counts: a repeated one is refused, never picked.
        let mut credentials = req.headers().get_all(header::AUTHORIZATION).iter();
        let authorization = credentials
            .next()
            .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
        if credentials.next().is_some() {
            return closing(
                Problem::invalid_request("the Authorization header is given more than once")
                    .into_response(),
            );
        }
        let principal = match guard
            .authn
            .authenticate(authorization, req.extensions().get::<ClientIdentity>())
        {
            Ok(p) => p,
            Err(refusal) => return unauthorized(&refusal),
        };
        // The handlers read these from the query too: a repeated one could be checked
        // in one spelling and used in another, so repeats are refused.
        let query: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let single = |key: &'static str| -> Result<Option<String>, &'static str> {
            let mut values = query
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone());
            let first = values.next();
            match values.next() {
                Some(_) => Err(key),
                None => Ok(first),
            }
        };
        let (group, filter) = match (single("group"), single("filter")) {
            (Ok(g), Ok(f)) => (g, f),
            (Err(key), _) | (_, Err(key)) => {
                return Problem::invalid_request(format!(
                    "query parameter '{key}' is given more than once"
                ))
                .into_response();
            }
        };
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default()
        };
        let checks = operations::checks(
            req.method(),
            &path,
            param,
            group.as_deref(),
            filter.as_deref(),
        )
        .unwrap_or_default();
        if let Err(p) = guard.require(Some(&principal), checks).await {
            return p.into_response();
        }
        req.extensions_mut().insert(principal);
        next.run(req).await
    }

    /// Checks permissions, all of which must pass: from the middleware, and from
    /// handlers for what only the body names (topics in a commit, a pipeline's
    /// plugins and dead-letter topics). Nothing to check with auth off.
    pub async fn require(
        self: &Arc<Self>,
        principal: Option<&Principal>,
        checks: impl IntoIterator<Item = Check>,
    ) -> Result<(), Problem> {
        if !self.enabled {
            return Ok(());
        }
        let principal = principal.ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "credentials required",
            )
        })?;
        for c in checks {
            // Cached decisions are answered inline; asking the plugin may block (up
            // to its deadline), so that runs on the blocking pool.
            let verdict = match self.authz.check_cached(principal, &c) {
                Some(v) => v,
                None => {
                    let (guard, principal, c) = (self.clone(), principal.clone(), c.clone());
                    tokio::task::spawn_blocking(move || guard.authz.check(&principal, &c))
                        .await
                        .unwrap_or_else(|e| Verdict::Unavailable(e.to_string()))
                }
            };
            self.judge(principal, &c, verdict)?;
        }
        Ok(())
    }

    /// Whether `principal` passes check `c`, for deciding what a response shows (the
    /// topics of a group description): a denial is an answer here, not a refusal, so
    /// it is neither audited nor counted. A policy that cannot be asked still fails
    /// the request (503), never shows more.
    pub async fn permits(
        self: &Arc<Self>,
        principal: Option<&Principal>,
        c: Check,
    ) -> Result<bool, Problem> {
        if !self.enabled {
            return Ok(true);
        }
        let Some(principal) = principal else {
            return Ok(false);
        };
        let verdict = match self.authz.peek_cached(principal, &c) {
            Some(v) => v,
            None => {
                let (guard, principal) = (self.clone(), principal.clone());
                tokio::task::spawn_blocking(move || guard.authz.ask(&principal, &c))
                    .await
                    .unwrap_or_else(|e| Verdict::Unavailable(e.to_string()))
            }
        };
        match verdict {
            Verdict::Allow => Ok(true),
            Verdict::Deny(_) => Ok(false),
            Verdict::Unavailable(reason) => Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "policy_unavailable",
                reason,
            )),
        }
    }

    /// Turns a verdict into the answer, and records it in the audit topic.
    fn judge(&self, principal: &Principal, c: &Check, verdict: Verdict) -> Result<(), Problem> {
        let resource = format!("{}:{}", c.kind, c.name);
        let audit = |outcome: &str, reason: Option<&str>| {
            if let Some(a) = &self.audit {
                a.record(principal, c.operation, &resource, outcome, reason);
            }
        };
        match verdict {
            Verdict::Allow => {
                if operations::is_admin(c.operation) {
                    audit("allowed", None);
                }
                Ok(())
            }
            Verdict::Deny(reason) => {
                audit("denied", Some(&reason));
                Err(Problem::new(StatusCode::FORBIDDEN, "forbidden", reason)
                    .with("principal", principal.name.as_str())
                    .with("operation", c.operation)
                    .with("resource", resource.as_str()))
            }
            Verdict::Unavailable(reason) => {
                audit("unavailable", Some(&reason));
                Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "policy_unavailable",
                    reason,
                ))
            }
        }
    }
}

/// 401 with a `WWW-Authenticate` challenge (RFC 6750).
fn unauthorized(refusal: &Refusal) -> Response {
    let (detail, challenge) = match refusal {
        Refusal::Missing => (
            "credentials required: 'Authorization: Bearer <token>'".to_string(),
            "Bearer realm=\"weir\"".to_string(),
        ),
        Refusal::Invalid(why) => (
            why.clone(),
            format!(
                "Bearer realm=\"weir\", error=\"invalid_token\", error_description=\"{}\"",
                why.replace(['"', '\\'], "'")
            ),
        ),
    };
    let mut resp = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    closing(resp)
}

/// `resp` with `Connection: close`: an answer to a caller without credentials ends
/// its connection, so only authenticated clients keep connections (and the slots
/// they hold; see `listen::admission`).
fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The audit topic: one JSON record per admin action and per denial.
#[derive(Debug)]
struct Audit {
    broker: Broker,
    topic: String,
}

impl Audit {
    async fn open(broker: &Broker, topic: &str) -> anyhow::Result<Self> {
        broker
            .ensure_topic(topic, 1)
            .await
            .map_err(|e| anyhow::anyhow!("creating the audit topic '{topic}': {e}"))?;
        Ok(Self {
            broker: broker.clone(),
            topic: topic.to_string(),
        })
    }

    /// Appends a record in the background; a failure is logged, never shown to the
    /// caller (the request's outcome does not depend on the audit write).
    fn record(
        &self,
        p: &Principal,
        operation: &str,
        resource: &str,
        outcome: &str,
        reason: Option<&str>,
    ) {
        let value = json!({
            "at_ms": weir_broker::now_ms(),
            "principal": p.name,
            "groups": p.groups,
            "operation": operation,
            "resource": resource,
            "outcome": outcome,
            "reason": reason,
        })
        .to_string();
        let (broker, topic, key) = (self.broker.clone(), self.topic.clone(), p.name.clone());
        tokio::spawn(async move {
            let record = NewRecord {
                key: Some(key.as_bytes().into()),
                value: Some(value.as_bytes().into()),
                value_is_json: true,
                headers: Vec::new(),
                partition: None,
            };
            let written = match broker.topic(&topic) {
                Ok(t) => broker.produce(&t, &[record], Acks::All).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::error!(topic, error = %e, "writing the audit record failed");
            }
        });
    }
}
