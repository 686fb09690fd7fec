//! `weir plugin deploy|versions|rollback`: plugins on a running server.

use std::path::PathBuf;

use anyhow::Context;
use weir_broker::plugins::PluginFiles;

use super::Client;

/// Deploys a plugin folder (or a crate, built first) with `PUT /v1/plugins/{name}`
/// and `query` (`?reset_state=true`, `?shadow=true`, `?canary_percent=N`, or
/// nothing).
pub(super) async fn deploy(client: &Client, dir: PathBuf, query: &str) -> anyhow::Result<()> {
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
    let form = crate::client::deploy_form(files.manifest_text.clone(), files.component.to_vec());
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

/// `weir plugin replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Plugin name.
    name: String,
    /// A loaded version's hash, or a prefix of it (default: the serving one).
    #[arg(long)]
    version: Option<String>,
    /// The topic read.
    #[arg(long)]
    topic: String,
    /// The topic written (created with the source's partitions if missing).
    #[arg(long, required_unless_present = "diff", conflicts_with = "diff")]
    into: Option<String>,
    /// Write nothing: compare the version's outputs with another version's on the
    /// same events, event by event, and print the differences.
    #[arg(long)]
    diff: bool,
    /// With --diff: the version compared with (hash prefix; default: the serving one).
    #[arg(long, requires = "diff")]
    against: Option<String>,
    /// Start: `earliest` (default), `latest` or an offset in every partition.
    #[arg(long, conflicts_with = "from_time_ms")]
    from: Option<String>,
    /// End (exclusive): `latest` (default), `earliest` or an offset.
    #[arg(long, conflicts_with = "to_time_ms")]
    to: Option<String>,
    /// Start at the first record appended at or after this time (ms since the epoch).
    #[arg(long)]
    from_time_ms: Option<i64>,
    /// End at the first record appended at or after this time.
    #[arg(long)]
    to_time_ms: Option<i64>,
    /// Most records read per second.
    #[arg(long)]
    rate: Option<u64>,
}

/// A position as JSON: a number stays one.
fn position(p: &Option<String>) -> serde_json::Value {
    match p {
        None => serde_json::Value::Null,
        Some(s) => s
            .parse::<u64>()
            .map_or_else(|_| serde_json::json!(s), |n| serde_json::json!(n)),
    }
}

/// Starts a replay and follows it with a progress bar until it is done.
pub(super) async fn replay(client: &Client, a: ReplayArgs) -> anyhow::Result<()> {
    let mut body = serde_json::json!({ "topic": a.topic });
    for (key, value) in [
        ("into", a.into.clone().map(serde_json::Value::from)),
        ("diff", a.diff.then_some(serde_json::Value::Bool(true))),
        ("against", a.against.map(serde_json::Value::from)),
        ("version", a.version.map(serde_json::Value::from)),
        ("from", a.from.is_some().then(|| position(&a.from))),
        ("to", a.to.is_some().then(|| position(&a.to))),
        ("from_time_ms", a.from_time_ms.map(Into::into)),
        ("to_time_ms", a.to_time_ms.map(Into::into)),
        ("max_rate", a.rate.map(Into::into)),
    ] {
        if let Some(v) = value {
            body[key] = v;
        }
    }
    let started = client
        .post(
            &format!("/v1/plugins/{}/replays", a.name),
            "application/json",
            body.to_string().into(),
        )
        .await?;
    let id = started["id"].as_u64().unwrap_or_default();
    eprintln!(
        "replaying {} {} -> {} with {}",
        a.topic,
        started["total"],
        match (&a.into, started["diff"]["against"].as_str()) {
            (Some(into), _) => into.clone(),
            (None, against) => format!("a diff against {}", against.unwrap_or("?")),
        },
        started["version"].as_str().unwrap_or("?")
    );
    let path = format!("/v1/plugins/{}/replays/{id}", a.name);
    let status = loop {
        let s = client.get(&path).await?;
        let (read, total) = (
            s["read"].as_u64().unwrap_or(0),
            s["total"].as_u64().unwrap_or(0),
        );
        let share = if total == 0 {
            1.0
        } else {
            read as f64 / total as f64
        };
        let filled = (share * 30.0).round() as usize;
        eprint!(
            "\r[{}{}] {:>3.0}% {read}/{total} read, {} written, {} failed",
            "=".repeat(filled),
            " ".repeat(30 - filled.min(30)),
            share * 100.0,
            s["written"],
            s["failed"]
        );
        if s["done"] == true {
            eprintln!();
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    if status["diff"].is_object() {
        print_comparison(&status["diff"]);
    }
    match status["error"].as_str() {
        Some(e) if status["failed"] == 0 => anyhow::bail!("the replay stopped: {e}"),
        Some(e) => println!("done; {} events failed (first: {e})", status["failed"]),
        None => println!(
            "done: {} read, {} written",
            status["read"], status["written"]
        ),
    }
    Ok(())
}

/// Prints a shadow's report (stopping it first with `stop`).
pub(super) async fn shadow(client: &Client, name: &str, stop: bool) -> anyhow::Result<()> {
    let path = format!("/v1/plugins/{name}/shadow");
    let r = if stop {
        client.delete_json(&path).await?
    } else {
        client.get(&path).await?
    };
    println!(
        "{} shadowing {name}{} ({}% of batches, up to {}% of a core)",
        r["candidate"].as_str().unwrap_or("?"),
        if stop { ", stopped" } else { "" },
        r["sample_percent"],
        r["max_share_percent"]
    );
    print_comparison(&r);
    Ok(())
}

/// Prints two versions' comparison (a shadow's, a diff replay's).
fn print_comparison(r: &serde_json::Value) {
    println!(
        "events {}: identical {}, different {}, only in old {}, only in new {}",
        r["events"], r["identical"], r["different"], r["only_in_old"], r["only_in_new"]
    );
    println!(
        "errors old {} new {}; ns per event old {} new {}; batches {} compared, {} skipped",
        r["errors"]["old"],
        r["errors"]["new"],
        r["ns_per_event"]["old"],
        r["ns_per_event"]["new"],
        r["batches"],
        r["skipped_batches"]
    );
    for s in r["samples"].as_array().into_iter().flatten() {
        println!(
            "  {}: old {} new {}",
            s["kind"].as_str().unwrap_or("?"),
            s["old"],
            s["new"]
        );
    }
}

/// Prints a canary's figures (promoting or stopping it first).
pub(super) async fn canary(
    client: &Client,
    name: &str,
    promote: bool,
    stop: bool,
) -> anyhow::Result<()> {
    let path = format!("/v1/plugins/{name}/canary");
    let r = match (promote, stop) {
        (true, _) => {
            client
                .post(&format!("{path}/promote"), "application/json", "{}".into())
                .await?
        }
        (_, true) => client.delete_json(&path).await?,
        _ => client.get(&path).await?,
    };
    println!(
        "{} canary of {name} on {}% of keys{}",
        r["candidate"].as_str().unwrap_or("?"),
        r["percent"],
        match r["outcome"].as_str() {
            Some(o) => format!(", {}", o.replace('_', " ")),
            None => String::new(),
        }
    );
    let side = |v: &serde_json::Value| {
        format!(
            "{} events, {} failed ({:.2}%)",
            v["events"],
            v["failed"],
            v["failure_rate"].as_f64().unwrap_or(0.0) * 100.0
        )
    };
    println!("  old: {}", side(&r["old"]));
    println!("  new: {}", side(&r["new"]));
    println!(
        "  judged after {} events of the new version; allowed {} points more failures",
        r["promote_after"], r["max_error_increase"]
    );
    Ok(())
}
