//! The plugin side of `weir bench cluster`: how long a version deployed through one
//! node takes to serve on another, and how long a connector takes to move when its
//! node is killed (`kill -9` of a `weir serve --cluster` child process).

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_broker::plugins::PluginFiles;

use super::{Client, Row};

/// The redact transform's manifest for deploy `i` (each a new version).
fn redact_manifest(i: usize) -> String {
    format!(
        "name = \"bench-deploy\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n\
         [config]\nfields = [\"/f{i}\"]\n"
    )
}

/// `deploys` versions through `a`, each timed from the PUT until `b` serves it.
pub(super) async fn deploy_latency(
    a: &Client,
    b: &Client,
    component: &[u8],
    deploys: usize,
) -> anyhow::Result<Row> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(deploys);
    for i in 0..deploys {
        let manifest = redact_manifest(i);
        let version =
            PluginFiles::from_bytes(manifest.clone(), component.to_vec(), "bench")?.version();
        let t = Instant::now();
        let put = a.put_multipart(
            "/v1/plugins/bench-deploy",
            crate::client::deploy_form(manifest, component.to_vec()),
        );
        tokio::pin!(put);
        let mut answered = None;
        loop {
            tokio::select! {
                r = &mut put, if answered.is_none() => answered = Some(r?),
                () = tokio::time::sleep(Duration::from_millis(2)) => {}
            }
            let status = b.get("/v1/plugins/bench-deploy").await.ok();
            if status.as_ref().and_then(|s| s["version"].as_str()) == Some(version.as_str()) {
                latencies.push(t.elapsed());
                break;
            }
            anyhow::ensure!(
                t.elapsed() < Duration::from_secs(60),
                "deploy {i} never served on B"
            );
        }
        if answered.is_none() {
            put.await?;
        }
    }
    Ok(Row {
        name: format!("cluster: deploy on A -> serving on B ({deploys})"),
        records: deploys as u64,
        bytes: 0,
        secs: started.elapsed().as_secs_f64(),
        latencies,
    })
}

/// A `weir serve --cluster` child process, killed when dropped.
struct Node {
    child: super::child::ChildBroker,
    client: Client,
}

fn spawn_node(dir: &Path, urls: &str, node: &str) -> anyhow::Result<Node> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("weir.toml");
    // Their own prefix: the in-process nodes of the run must not take the leases.
    std::fs::write(
        &config,
        format!("[cluster]\nnode = \"{node}\"\nprefix = \"failover\"\n"),
    )?;
    let child = super::child::spawn_serve(
        dir,
        &[
            "--cluster".as_ref(),
            urls.as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    )?;
    let client = Client::new(&child.url)?;
    Ok(Node { child, client })
}

/// Waits until `client` says connector `gen` runs on `node`; the time it took.
async fn until_running_on(client: &Client, node: &str) -> anyhow::Result<Duration> {
    let t = Instant::now();
    loop {
        let c: Value = match client.get("/v1/connectors/gen").await {
            Ok(c) => c,
            Err(e) => Value::String(e.to_string()),
        };
        if c["node"] == node && c["state"] == "running" {
            return Ok(t.elapsed());
        }
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "gen never ran on {node}; last seen: {c}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The generator source runs on one of two child nodes; its node is killed
/// `kills` times (restarted in between), each timed until the other node runs it.
pub(super) async fn connector_failover(
    urls: &[String],
    generator: &[u8],
    kills: usize,
) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir()?;
    let urls = urls.join(",");
    let names = ["fa", "fb"];
    let mut nodes = vec![
        spawn_node(&dir.path().join(names[0]), &urls, names[0])?,
        spawn_node(&dir.path().join(names[1]), &urls, names[1])?,
    ];
    let (status, _) = nodes[0]
        .client
        .put(
            "/v1/topics/bench-gen",
            &serde_json::json!({ "partitions": 1 }),
        )
        .await?;
    anyhow::ensure!(status == 201 || status == 200, "creating bench-gen failed");
    let manifest = "name = \"gen\"\nkind = \"source\"\ncomponent = \"plugin.wasm\"\n\
        [[attach]]\ntopic = \"bench-gen\"\n[connector]\npoll_interval_ms = 50\n[config]\nrate = 100\n";
    nodes[0]
        .client
        .put_multipart(
            "/v1/plugins/gen",
            crate::client::deploy_form(manifest.into(), generator.to_vec()),
        )
        .await?;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut on = if until_running_on(&nodes[0].client, "fa").await.is_ok() {
        0
    } else {
        1
    };
    for _ in 0..kills {
        until_running_on(&nodes[1 - on].client, names[on]).await?;
        nodes[on].child.child.kill()?;
        nodes[on].child.child.wait()?;
        let moved = until_running_on(&nodes[1 - on].client, names[1 - on]).await?;
        latencies.push(moved);
        nodes[on] = spawn_node(&dir.path().join(names[on]), &urls, names[on])?;
        on = 1 - on;
    }
    drop(nodes);
    Ok(Row {
        name: format!("cluster: connector moved after kill -9 ({kills})"),
        records: kills as u64,
        bytes: 0,
        secs: started.elapsed().as_secs_f64(),
        latencies,
    })
}
