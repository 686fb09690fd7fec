//! Plugins: what is loaded and how it is doing, its version history, deploys and
//! rollbacks.
//!
//! - `GET /v1/plugins`, `GET /v1/plugins/{name}`: state (`active`, `quarantined`,
//!   `failed`, `removed`), version, counters, last error, rejected versions.
//! - `GET /v1/plugins/{name}/versions`: the history, newest first.
//! - `PUT /v1/plugins/{name}`: deploy (multipart parts `manifest` and `component`),
//!   checked and loaded like a plugin-directory change, then written there.
//! - `POST /v1/plugins/{name}/rollback`: back to the previous version that served.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use weir_broker::plugins::Outcome;
use weir_broker::plugins::{PluginError, Slot};

use super::AppState;
use super::body::read_limited;
use super::problem::Problem;
use crate::auth::Principal;
use crate::auth::operations::deploy_checks;
use crate::wire::plugins::{history_entry, plugin_status};

/// Largest deploy body (manifest and component together).
const MAX_DEPLOY_BYTES: usize = 64 << 20;

/// `GET /v1/plugins`.
pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let plugins: Vec<Value> = state
        .plugins
        .registry()
        .slots()
        .iter()
        .map(|s| plugin_status(&s.status()))
        .collect();
    Json(json!({ "plugins": plugins }))
}

/// `GET /v1/plugins/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let mut status = match (state.plugins.registry().get(&name), &state.cluster) {
        (Some(slot), _) => plugin_status(&slot.status()),
        // Deployed to the cluster but refused here: the cluster's view still shows.
        (None, Some(c)) if c.deployment(&name).0.is_some() => json!({ "name": name }),
        (None, _) => return Err(not_found(&name)),
    };
    if let Some(cluster) = &state.cluster {
        status["cluster"] = crate::wire::cluster::plugin(cluster, &name);
    }
    if let Some(canary) = state.plugins.registry().get(&name).and_then(|s| s.canary()) {
        status["canary"] = crate::wire::plugins::canary_report(&canary);
    }
    Ok(Json(status))
}

/// `GET /v1/plugins/{name}/versions`.
pub async fn versions(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, Problem> {
    let slot = slot(&state, &name)?;
    Ok(Json(json!({
        "plugin": name,
        "current": slot.current().map(|p| p.hash().to_string()),
        "versions": slot.versions().iter().map(history_entry).collect::<Vec<_>>(),
    })))
}

/// `POST /v1/plugins/{name}/rollback`: the version it returns to may attach to other
/// topics than the current one, so the caller needs what deploying it would need.
pub async fn rollback(
    State(state): State<AppState>,
    Path(name): Path<String>,
    principal: Option<Extension<Principal>>,
) -> Result<Json<Value>, Problem> {
    let slot = slot(&state, &name)?;
    let from = slot.current().map(|p| p.hash().to_string());
    let registry = state.plugins.registry().clone();
    let target = registry.rollback_target(&name).map_err(plugin_problem)?;
    let current = slot.current();
    let checks = deploy_checks(
        target.manifest(),
        current.as_deref().map(|p| p.manifest()),
        state.guard.policy(),
    );
    state.guard.require(principal.as_deref(), checks).await?;
    if let Some(cluster) = &state.cluster {
        return super::cluster::rollback(cluster, &name, &target, from).await;
    }
    let to = {
        let (name, expected) = (name.clone(), target.hash().to_string());
        super::blocking(move || {
            registry.rollback(&name, Some(&expected), "rollback requested through the API")
        })
        .await?
        .map_err(plugin_problem)?
    };
    Ok(Json(json!({
        "plugin": name,
        "rolled_back": from,
        "version": to.hash(),
    })))
}

/// `PUT /v1/plugins/{name}`: a multipart body with a `manifest` part (`plugin.toml`)
/// and a `component` part (the `.wasm` component).
pub async fn deploy(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    principal: Option<Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let shadow = shadow_settings(&query)?;
    let canary = super::canary::settings(&query)?;
    if shadow.is_some() && canary.is_some() {
        return Err(Problem::invalid_request(
            "a deploy is a shadow or a canary, not both",
        ));
    }
    let reset_state = match query.get("reset_state").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Problem::invalid_request(format!(
                "query parameter 'reset_state' must be true or false, got '{other}'"
            )));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a deploy is multipart/form-data with parts 'manifest' (plugin.toml) and 'component' (the .wasm file)",
        )
    })?;
    let bytes = read_limited(
        &headers,
        body,
        MAX_DEPLOY_BYTES,
        state.limits.body_idle_timeout(),
    )
    .await?;
    let (manifest, component) = parts(bytes, boundary).await?;
    let manifest = String::from_utf8(manifest.to_vec())
        .map_err(|_| Problem::invalid_request("the manifest part is not UTF-8 text"))?;
    // A deploy attaches the plugin to topics and writes into others on the deployer's
    // behalf: it needs permission on all of it, not just `plugin-admin` on the name.
    // A manifest that does not parse is refused by the deploy itself, naming why.
    // The checks cover the version it replaces too (its attachments go), and the
    // deploy replaces exactly that version or nothing.
    let origin = format!("PUT /v1/plugins/{name}/plugin.toml");
    let slot = state.plugins.registry().get(&name);
    let replaces = slot.as_ref().and_then(|s| s.current());
    let current = slot.as_ref().and_then(|s| s.manifest());
    if let Ok(parsed) =
        weir_broker::plugins::Manifest::parse(&manifest, std::path::Path::new(&origin))
    {
        let checks = deploy_checks(&parsed, current.as_ref(), state.guard.policy());
        state.guard.require(principal.as_deref(), checks).await?;
        let stored = state.processors.stored_state_version(&name).ok().flatten();
        state_layout_check(&name, &parsed, current.as_ref(), stored, reset_state)?;
    }
    if let Some(settings) = shadow {
        return super::shadow::start(&state, &name, manifest, component.to_vec(), settings).await;
    }
    if let Some(settings) = canary {
        return super::canary::start(&state, &name, manifest, component.to_vec(), settings).await;
    }
    if let Some(cluster) = &state.cluster {
        return super::cluster::deploy(cluster, &name, manifest, component.to_vec(), replaces)
            .await;
    }
    let replaces = replaces.map(|p| p.hash().to_string());
    let reloader = state.plugins.clone();
    let outcome = {
        let name = name.clone();
        super::blocking(move || {
            reloader.deploy(&name, manifest, component.to_vec(), replaces.as_deref())
        })
        .await?
    };
    match outcome {
        Outcome::Activated {
            version, load_time, ..
        } => {
            let mut answer = json!({
                "plugin": name,
                "version": version,
                "outcome": "activated",
                "load_ms": load_time.as_secs_f64() * 1e3,
            });
            if reset_state && state.processors.status(&name).is_some() {
                let offsets = state
                    .processors
                    .reset(&name, weir_processors::ResetTo::Earliest)
                    .await
                    .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.code(), format!("the version is activated but resetting the processor's state failed: {e}")))?;
                answer["state_reset"] = json!(offsets.len());
            }
            Ok((StatusCode::CREATED, Json(answer)))
        }
        Outcome::Unchanged { version, .. } => Ok((
            StatusCode::OK,
            Json(json!({ "plugin": name, "version": version, "outcome": "unchanged" })),
        )),
        Outcome::Rejected {
            error: error @ PluginError::ChangedMeanwhile { .. },
            ..
        } => Err(plugin_problem(error)),
        Outcome::Rejected { error, .. } => Err(rejected_version(&name, &error)),
        Outcome::Removed { .. } | Outcome::Ignored => Err(Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the deploy did not produce a version",
        )),
    }
}

/// `?shadow=true[&sample_percent=N&max_share_percent=N]`: the version shadows the
/// serving one instead of replacing it.
fn shadow_settings(
    query: &std::collections::HashMap<String, String>,
) -> Result<Option<weir_broker::plugins::ShadowSettings>, Problem> {
    let percent = |name: &str, default: u32| -> Result<u32, Problem> {
        match query.get(name) {
            None => Ok(default),
            Some(v) => match super::params::parse_num::<u32>(name, v)? {
                n @ 1..=100 => Ok(n),
                _ => Err(Problem::invalid_request(format!(
                    "query parameter '{name}' must be between 1 and 100"
                ))),
            },
        }
    };
    let defaults = weir_broker::plugins::ShadowSettings::default();
    let settings = weir_broker::plugins::ShadowSettings {
        sample_percent: percent("sample_percent", defaults.sample_percent)?,
        max_share: f64::from(percent(
            "max_share_percent",
            (defaults.max_share * 100.0) as u32,
        )?) / 100.0,
    };
    match query.get("shadow").map(String::as_str) {
        None | Some("false") => Ok(None),
        Some("true") => Ok(Some(settings)),
        Some(other) => Err(Problem::invalid_request(format!(
            "query parameter 'shadow' must be true or false, got '{other}'"
        ))),
    }
}

/// A processor keeps the state its versions read: a version that declares another
/// `state_version` would misread it, so it is refused unless the deploy clears the
/// state too (`reset_state=true`).
fn state_layout_check(
    name: &str,
    next: &weir_broker::plugins::Manifest,
    current: Option<&weir_broker::plugins::Manifest>,
    stored: Option<u32>,
    reset_state: bool,
) -> Result<(), Problem> {
    // The stored state's layout decides; before the processor ever ran, the serving
    // version's.
    let kept = stored.or_else(|| current?.processor.as_ref().map(|p| p.state_version));
    let (Some(next), Some(kept)) = (next.processor.as_ref(), kept) else {
        return Ok(());
    };
    if next.state_version == kept || reset_state {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::CONFLICT,
        "state_version_changed",
        format!(
            "processor '{name}' keeps state written by state_version {}, and this version declares {}: deploy with ?reset_state=true to clear the state and process the inputs again from the earliest offsets",
            kept, next.state_version
        ),
    ))
}

/// A deployed candidate's files (a shadow's, a canary's), checked to name `name`.
pub(super) fn candidate_files(
    name: &str,
    manifest: String,
    component: Vec<u8>,
) -> Result<weir_broker::plugins::PluginFiles, Problem> {
    let origin = format!("PUT /v1/plugins/{name}");
    let files = weir_broker::plugins::PluginFiles::from_bytes(manifest, component, &origin)
        .map_err(plugin_problem)?;
    if files.manifest.name != name {
        return Err(Problem::invalid_request(format!(
            "the manifest names plugin '{}', not '{name}'",
            files.manifest.name
        )));
    }
    Ok(files)
}

/// The `manifest` and `component` parts of a multipart body.
async fn parts(body: Bytes, boundary: String) -> Result<(Bytes, Bytes), Problem> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let (mut manifest, mut component) = (None, None);
    let bad = |e: multer::Error| Problem::invalid_request(format!("malformed multipart body: {e}"));
    while let Some(field) = multipart.next_field().await.map_err(bad)? {
        let slot = match field.name() {
            Some("manifest") => &mut manifest,
            Some("component") => &mut component,
            other => {
                return Err(Problem::invalid_request(format!(
                    "unexpected part {other:?}; a deploy has parts 'manifest' and 'component'"
                )));
            }
        };
        *slot = Some(field.bytes().await.map_err(bad)?);
    }
    match (manifest, component) {
        (Some(m), Some(c)) => Ok((m, c)),
        (None, _) => Err(Problem::invalid_request("the 'manifest' part is missing")),
        (_, None) => Err(Problem::invalid_request("the 'component' part is missing")),
    }
}

fn slot(state: &AppState, name: &str) -> Result<std::sync::Arc<Slot>, Problem> {
    state
        .plugins
        .registry()
        .get(name)
        .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "plugin_not_found",
        format!("no plugin named '{name}' is installed"),
    )
}

/// 422 `plugin_version_rejected`: the version was refused and nothing changed.
pub(super) fn rejected_version(name: &str, error: &PluginError) -> Problem {
    let status = match error {
        PluginError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Problem::new(status, "plugin_version_rejected", error.to_string())
        .with("plugin", name)
        .with("reason_code", error.code())
}

pub(super) fn plugin_problem(e: PluginError) -> Problem {
    let status = match &e {
        PluginError::NoPreviousVersion { .. } | PluginError::ChangedMeanwhile { .. } => {
            StatusCode::CONFLICT
        }
        PluginError::Unavailable { .. } => StatusCode::NOT_FOUND,
        PluginError::WrongKind { .. } | PluginError::Manifest { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Problem::new(status, e.code(), e.to_string())
}
