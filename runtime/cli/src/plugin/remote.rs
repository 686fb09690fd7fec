//! `weir plugin deploy|versions|rollback`: plugins on a running server.

use std::path::PathBuf;

use anyhow::Context;
use weir_broker::plugins::PluginFiles;

use super::Client;

/// Deploys a plugin folder (or a crate, built first) with `PUT /v1/plugins/{name}`
/// (`?reset_state=true` with `reset_state`).
pub(super) async fn deploy(client: &Client, dir: PathBuf, reset_state: bool) -> anyhow::Result<()> {
    let files = tokio::task::spawn_blocking(move || -> anyhow::Result<PluginFiles> {
        let folder = if weir_toolchain::polyglot::Lang::of(&dir).is_some() {
            super::build(&dir, None)?
        } else {
            dir
        };
        Ok(PluginFiles::read(&folder)?)
    })
    .await??;
    let name = files.manifest.name.clone();
    let form = reqwest::multipart::Form::new()
        .part(
            "manifest",
            reqwest::multipart::Part::text(files.manifest_text.clone()).file_name("plugin.toml"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(files.component.to_vec()).file_name("plugin.wasm"),
        );
    let query = if reset_state { "?reset_state=true" } else { "" };
    let body = client
        .put_multipart(&format!("/v1/plugins/{name}{query}"), form)
        .await
        .with_context(|| format!("deploying {name}"))?;
    println!(
        "{name} {} {}",
        body["outcome"].as_str().unwrap_or("?"),
        body["version"].as_str().unwrap_or("?")
    );
    if let Some(n) = body.get("state_reset") {
        println!("  state cleared on {n} input(s); processing again from the earliest offsets");
    }
    // Cluster mode: each node's answer.
    for (node, answer) in body["nodes"].as_object().into_iter().flatten() {
        println!("  {node}: {}", answer["state"].as_str().unwrap_or("?"));
    }
    Ok(())
}

/// Prints the version history, newest first.
pub(super) async fn versions(client: &Client, name: &str) -> anyhow::Result<()> {
    let body = client.get(&format!("/v1/plugins/{name}/versions")).await?;
    println!(
        "{:<14} {:<12} {:<9} {:>10}  REASON",
        "VERSION", "OUTCOME", "ORIGIN", "LOAD_MS"
    );
    for v in body["versions"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {:<12} {:<9} {:>10}  {}",
            v["version"].as_str().map_or("-", |s| &s[..s.len().min(12)]),
            v["outcome"].as_str().unwrap_or("-"),
            v["origin"].as_str().unwrap_or("-"),
            v["load_ms"]
                .as_f64()
                .map_or_else(|| "-".into(), |ms| format!("{ms:.1}")),
            v["reason"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

/// Rolls back and says to what.
pub(super) async fn rollback(client: &Client, name: &str) -> anyhow::Result<()> {
    let body = client
        .post(
            &format!("/v1/plugins/{name}/rollback"),
            "application/json",
            bytes::Bytes::new(),
        )
        .await?;
    println!(
        "{name} rolled back from {} to {}",
        body["rolled_back"].as_str().unwrap_or("?"),
        body["version"].as_str().unwrap_or("?")
    );
    Ok(())
}
