//! Deploying a plugin version over HTTP (`PUT /v1/plugins/{name}`), as the CLI does:
//! the helper every test that deploys shares.

use crate::harness::Api;

/// Deploys `component` with `manifest_text` as plugin `name`.
pub(crate) async fn deploy(
    api: &Api,
    name: &str,
    manifest_text: &str,
    component: Vec<u8>,
) -> crate::harness::Resp {
    deploy_with(api, name, manifest_text, component, "").await
}

/// [`deploy`] with a query (`?shadow=true`, `?canary_percent=10`, ...).
pub(crate) async fn deploy_with(
    api: &Api,
    name: &str,
    manifest_text: &str,
    component: Vec<u8>,
    query: &str,
) -> crate::harness::Resp {
    let form = reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::text(manifest_text.to_string()).file_name("plugin.toml"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(component).file_name("plugin.wasm"),
        );
    api.send(
        api.http
            .put(format!("{}/v1/plugins/{name}{query}", api.url))
            .multipart(form),
    )
    .await
}
