//! The HTTP API v1. Handlers are thin: parse the wire format, call the broker, write the
//! wire format. Errors are RFC 9457 problem details ([`problem`]).

pub mod body;
mod canary;
mod cluster;
mod connectors;
mod events;
mod groups;
pub mod metrics;
mod openapi;
mod overview;
mod params;
mod plugins;
pub mod problem;
pub(crate) mod processor_metrics;
mod processors;
mod records;
mod replays;
mod shadow;
mod topics;
mod trace;
mod ui;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use weir_broker::Broker;

use crate::config::Limits;
use problem::Problem;

/// What every handler shares: one `Arc`, because axum clones the state with the
/// route for every request (a field-by-field clone and drop per request showed in the
/// single-record publish profile).
#[derive(Debug, Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    /// The state every handler sees.
    pub fn new(shared: Shared) -> Self {
        Self(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The broker.
    pub broker: Broker,
    /// The plugin directory (deploys, rollbacks, status).
    pub plugins: std::sync::Arc<weir_broker::plugins::Reloader>,
    /// Metrics.
    pub telemetry: crate::telemetry::SharedTelemetry,
    /// Source and sink connectors.
    pub connectors: weir_connect::Connectors,
    /// Stream processors.
    pub processors: weir_processors::Processors,
    /// Replays of stored ranges through plugin versions.
    pub replays: std::sync::Arc<weir_broker::replay::Replays>,
    /// Authentication and authorization.
    pub guard: std::sync::Arc<crate::auth::Guard>,
    /// HTTP limits.
    pub limits: Limits,
    /// Cluster mode: this node's part (nodes, deployments, leases).
    pub cluster: Option<weir_broker::cluster::Cluster>,
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let guard = state.guard.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::scrape))
        .route("/openapi.json", get(openapi::serve))
        .route("/ui", get(ui::page))
        .route("/v1/overview", get(overview::get))
        .route("/v1/cluster", get(cluster::get))
        .route("/v1/overview/stream", get(overview::stream))
        .route("/v1/topics", get(topics::list))
        .route(
            "/v1/topics/{topic}",
            put(topics::create).get(topics::get).delete(topics::delete),
        )
        .route(
            "/v1/topics/{topic}/records",
            post(records::produce).get(groups::fetch),
        )
        .route("/v1/topics/{topic}/events", get(events::stream))
        .route(
            "/v1/topics/{topic}/pipeline",
            get(topics::get_pipeline).put(topics::put_pipeline),
        )
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/plugins/{name}", get(plugins::get).put(plugins::deploy))
        .route("/v1/plugins/{name}/versions", get(plugins::versions))
        .route("/v1/plugins/{name}/rollback", post(plugins::rollback))
        .route(
            "/v1/plugins/{name}/replays",
            post(replays::start).get(replays::list),
        )
        .route("/v1/plugins/{name}/replays/{id}", get(replays::get))
        .route(
            "/v1/plugins/{name}/shadow",
            get(shadow::get).delete(shadow::stop),
        )
        .route(
            "/v1/plugins/{name}/canary",
            get(canary::get).delete(canary::stop),
        )
        .route("/v1/plugins/{name}/canary/promote", post(canary::promote))
        .route("/v1/connectors", get(connectors::list))
        .route("/v1/connectors/{name}", get(connectors::get))
        .route("/v1/connectors/{name}/{action}", post(connectors::control))
        .route("/v1/processors", get(processors::list))
        .route("/v1/processors/{name}", get(processors::get))
        .route("/v1/processors/{name}/state", get(processors::state_scan))
        .route(
            "/v1/processors/{name}/state/{key}",
            get(processors::state_key),
        )
        .route("/v1/processors/{name}/{action}", post(processors::control))
        .route("/v1/groups", get(groups::list))
        .route(
            "/v1/groups/{group}",
            get(groups::get).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/offsets",
            get(groups::offsets).post(groups::commit),
        )
        .route("/v1/groups/{group}/offsets/reset", post(groups::reset))
        .route("/v1/groups/{group}/members/{member}", delete(groups::leave))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(records::fetch),
        )
        // Then names in the path that could not exist are refused.
        .route_layer(axum::middleware::from_fn(params::check_path_names))
        // Every matched route is authenticated and authorized first.
        .route_layer(axum::middleware::from_fn_with_state(
            guard,
            crate::auth::Guard::middleware,
        ))
        // Outermost, so refusals are counted too.
        .route_layer(axum::middleware::from_fn_with_state(
            state.telemetry.clone(),
            count_request,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Bodies are read by `body::read_limited` with the configured limit.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(
            problem::from_plain_rejection,
        ))
        // A bug (or a dependency's reaction to damaged data) in one request answers
        // 500 problem+json; the connection and every other request carry on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_problem,
        ))
        .with_state(state)
}

fn panic_problem(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let msg = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("no message");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        format!("the request failed on an internal error ({msg}); the broker keeps serving"),
    )
    .into_response()
}

/// Counts a routed request by its route pattern (not its path: bounded labels).
async fn count_request(
    axum::extract::State(telemetry): axum::extract::State<crate::telemetry::SharedTelemetry>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // The matched pattern is an `Arc<str>` inside: cloning it allocates nothing.
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    telemetry.http(
        route.as_ref().map_or("unmatched", |m| m.as_str()),
        &method,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// A 200 with a JSON body written by hand.
/// Runs `f` on the blocking pool (it compiles, writes files or waits on storage);
/// a panic in it answers 500 `internal_error`.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, problem::Problem> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        problem::Problem::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })
}

pub(crate) fn json_response(body: Vec<u8>) -> axum::response::Response {
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> axum::response::Response {
    match state.broker.health().failure {
        None => Json(json!({ "status": "ready" })).into_response(),
        Some(reason) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", reason).into_response()
        }
    }
}

async fn not_found(req: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}
