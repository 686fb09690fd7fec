//! Cluster mode's side of the plugin API, and the cluster itself.
//!
//! - `GET /v1/cluster`: every node, live or silent, with the plugin versions it
//!   serves, what it refused and the connectors it runs.
//! - A deploy or rollback through any node stores the version for all nodes and
//!   waits (up to 30 s) for each live node to serve or refuse it. A version any node
//!   refused is taken back everywhere and answered with 422, naming each node's
//!   reason; nodes still loading when the wait ends are answered as `pending` (202).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use weir_broker::BrokerError;
use weir_broker::cluster::{Cluster, NodeAnswer, Rollout};
use weir_broker::plugins::PluginFiles;

use super::AppState;
use super::problem::Problem;
use crate::wire::cluster::answers;

/// How long a deploy waits for every live node's answer.
const ROLLOUT_WAIT: Duration = Duration::from_secs(30);

/// `GET /v1/cluster`.
pub async fn get(State(state): State<AppState>) -> Result<Json<Value>, Problem> {
    let cluster = state.cluster.as_ref().ok_or_else(not_clustered)?;
    Ok(Json(json!({
        "node": cluster.node(),
        "node_timeout_ms": cluster.node_timeout().as_millis() as u64,
        "nodes": cluster.nodes().iter().map(crate::wire::cluster::node).collect::<Vec<_>>(),
    })))
}

fn not_clustered() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not_clustered",
        "this broker runs on its embedded store, not in cluster mode",
    )
}

/// Deploys a version to every node (the deploy's permissions were checked).
/// `serving` is this node's current version of the plugin, if any.
pub(super) async fn deploy(
    cluster: &Cluster,
    name: &str,
    manifest: String,
    component: Vec<u8>,
    serving: Option<std::sync::Arc<weir_broker::plugins::Plugin>>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let replaces = serving.as_ref().map(|p| p.hash().to_string());
    let origin = format!("PUT /v1/plugins/{name}");
    let files = PluginFiles::from_bytes(manifest.clone(), Vec::new(), &origin)
        .map_err(|e| super::plugins::rejected_version(name, &e))?;
    if files.manifest.name != name {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin_version_rejected",
            format!(
                "the manifest names plugin '{}', not '{name}'",
                files.manifest.name
            ),
        ));
    }
    let version = PluginFiles::from_bytes(manifest.clone(), component.clone(), &origin)
        .map_err(|e| super::plugins::rejected_version(name, &e))?
        .version();
    if cluster
        .deployment(name)
        .0
        .and_then(|d| d.version)
        .as_deref()
        == Some(version.as_str())
    {
        return Ok((
            StatusCode::OK,
            Json(json!({ "plugin": name, "version": version, "outcome": "unchanged" })),
        ));
    }
    cluster
        .store_version(name, &version, &manifest, &component)
        .await
        .map_err(broker_problem)?;
    // The first cluster deploy of a node-local plugin: the version it replaces is
    // stored too, so a refused rollout can return every node to it.
    if cluster.deployment(name).0.is_none()
        && let Some(files) = serving.as_ref().and_then(|p| p.files())
    {
        cluster
            .store_version(
                name,
                &files.version(),
                &files.manifest_text,
                &files.component,
            )
            .await
            .map_err(broker_problem)?;
    }
    let rollout = cluster
        .roll_out(name, &version, replaces.as_deref(), ROLLOUT_WAIT)
        .await
        .map_err(broker_problem)?;
    answer(name, rollout, StatusCode::CREATED, "activated")
}

/// Rolls every node back to the version before the current one.
pub(super) async fn rollback(
    cluster: &Cluster,
    name: &str,
    target: &weir_broker::plugins::Plugin,
    current: Option<String>,
) -> Result<Json<Value>, Problem> {
    let files = target.files().ok_or_else(|| {
        Problem::new(
            StatusCode::CONFLICT,
            "no_previous_version",
            format!("the version plugin '{name}' would return to has no files to share"),
        )
    })?;
    cluster
        .store_version(name, target.hash(), &files.manifest_text, &files.component)
        .await
        .map_err(broker_problem)?;
    let rollout = cluster
        .roll_out(name, target.hash(), current.as_deref(), ROLLOUT_WAIT)
        .await
        .map_err(broker_problem)?;
    let (_, Json(mut body)) = answer(name, rollout, StatusCode::OK, "rolled_back")?;
    body["rolled_back"] = json!(current);
    Ok(Json(body))
}

/// The answer to a rollout: 201/200 when every live node serves it, 202 while some
/// still load, 422 when a node refused it (and it was taken back everywhere).
fn answer(
    name: &str,
    rollout: Rollout,
    done: StatusCode,
    outcome: &str,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let nodes = answers(&rollout);
    if rollout.taken_back {
        let reasons: Vec<String> = rollout
            .nodes
            .iter()
            .filter_map(|(node, a)| match a {
                NodeAnswer::Refused(why) => Some(format!("{node}: {why}")),
                _ => None,
            })
            .collect();
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "plugin_version_rejected",
            format!(
                "version {} of plugin '{name}' was refused, so no node serves it: {}",
                &rollout.version[..12],
                reasons.join("; ")
            ),
        )
        .with("plugin", name)
        .with("nodes", nodes));
    }
    let pending = rollout.nodes.values().any(|a| *a == NodeAnswer::Pending);
    let (status, outcome) = if pending {
        (StatusCode::ACCEPTED, "rolling_out")
    } else {
        (done, outcome)
    };
    Ok((
        status,
        Json(json!({
            "plugin": name,
            "version": rollout.version,
            "outcome": outcome,
            "rollout_ms": rollout.took.as_secs_f64() * 1e3,
            "nodes": nodes,
        })),
    ))
}

fn broker_problem(e: BrokerError) -> Problem {
    match e {
        BrokerError::Plugin(p) => super::plugins::plugin_problem(p),
        other => Problem::from(other),
    }
}
