//! A connector runs on one Weir node at a time, and moves when its node dies: the
//! generator source and a file sink deployed to the cluster run where their lease is
//! held; after `kill -9` of that node another node takes the leases once the dead
//! node has been silent for the node timeout, and both go on from what was committed.
//! A node frozen past the timeout (SIGSTOP) loses its leases the same way, and once
//! woken its writes are refused by the fence. The source's events are stored exactly
//! once, the sink's file holds every record, and pause is cluster-wide.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use super::{NatsCluster, weir_node};
use crate::deploy::deploy;
use crate::harness::{Api, allow_connectors, eventually, eventually_within};

const TOTAL: u64 = 4000;

/// Sends `SIG<name>` to a Weir node.
fn signal(node: &crate::harness::ServerProcess, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(node.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

async fn connector(api: &Api, name: &str) -> Value {
    api.get(&format!("/v1/connectors/{name}")).await.body
}

/// Waits until both connectors run on `node`, as `api` reports them.
async fn both_running_on(api: &Api, node: &str) {
    eventually_within(
        Duration::from_secs(30),
        &format!("both connectors running on {node}"),
        || async {
            for name in ["gen", "archive"] {
                let c = connector(api, name).await;
                if c["node"] != node || c["state"] != "running" {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Every (partition, offset) of topic `gen` the sink wrote to `dir`.
fn written(dir: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for p in 0..2 {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("gen-{p}.ndjson"))) else {
            continue;
        };
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            out.push((
                v["partition"].as_u64().unwrap(),
                v["offset"].as_u64().unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_run_once_and_move_when_their_node_is_killed() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let out = temp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let config = |node: &str| {
        format!(
            "{}\n[cluster]\nnode = \"{node}\"\nnode_timeout_ms = 3000\n",
            allow_connectors(&[&out], &[])
        )
    };
    let node_a = weir_node(&temp.path().join("a"), &nats, &config("a"));
    let a = node_a.client();
    a.create_topic("gen", json!({ "partitions": 2 })).await;
    let source = format!(
        "name = \"gen\"\nkind = \"source\"\ncomponent = \"plugin.wasm\"\n[[attach]]\ntopic = \"gen\"\n\
         [connector]\nbatch_max = 50\npoll_interval_ms = 10\n[config]\nrate = 1000\ntotal = {TOTAL}\n"
    );
    let sink = format!(
        "name = \"archive\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n[[attach]]\ntopic = \"gen\"\n\
         [grants]\ndirs = [\"{0}\"]\n[connector]\npoll_interval_ms = 20\n[config]\ndir = \"{0}\"\n",
        out.display()
    );
    for (name, manifest, component) in [
        ("gen", &source, artifacts::GENERATOR),
        ("archive", &sink, artifacts::FILE_SINK),
    ] {
        let r = deploy(&a, name, manifest, std::fs::read(component).unwrap()).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    eventually("both connectors running on a", || async {
        for name in ["gen", "archive"] {
            let c = connector(&a, name).await;
            if c["node"] != "a" || c["state"] != "running" {
                return false;
            }
        }
        true
    })
    .await;

    // Node b joins: the connectors stay where they run, and b sees where.
    let node_b = weir_node(&temp.path().join("b"), &nats, &config("b"));
    let b = node_b.client();
    eventually("b serves both connectors' plugins", || async {
        connector(&b, "gen").await["node"] == "a" && connector(&b, "archive").await["node"] == "a"
    })
    .await;
    let cluster = b.get("/v1/cluster").await.body;
    let running_on_b = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "b")
        .unwrap()["connectors"]
        .clone();
    assert_eq!(running_on_b, json!({}), "{cluster}");

    // Kill a mid-run: b takes both over.
    eventually("the source part-way", || async {
        a.offsets("gen", 0).await.1 + a.offsets("gen", 1).await.1 > TOTAL / 4
    })
    .await;
    node_a.kill();
    let killed = Instant::now();
    both_running_on(&b, "b").await;
    eprintln!("connector failover after kill -9: {:?}", killed.elapsed());

    // a comes back; then b stops dead (SIGSTOP) past the node timeout: a takes over,
    // and b, woken, finds its writes fenced and hands over.
    let node_a = weir_node(&temp.path().join("a"), &nats, &config("a"));
    let a = node_a.client();
    signal(&node_b, "STOP");
    both_running_on(&a, "a").await;
    signal(&node_b, "CONT");
    eventually("b no longer runs connectors", || async {
        let cluster = a.get("/v1/cluster").await.body;
        cluster["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["node"] == "b" && n["live"] == true && n["connectors"] == json!({}))
    })
    .await;

    // Pause through b is seen by the task wherever it runs; resume goes on.
    let r = b
        .post("/v1/connectors/gen/pause", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    eventually("paused", || async {
        connector(&b, "gen").await["state"] == "paused"
    })
    .await;
    let r = b
        .post("/v1/connectors/gen/resume", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    eventually_within(Duration::from_secs(60), "every event generated", || async {
        b.offsets("gen", 0).await.1 + b.offsets("gen", 1).await.1 >= TOTAL
    })
    .await;
    let mut seqs = Vec::new();
    let mut stored = BTreeSet::new();
    for p in 0..2u32 {
        for r in b.fetch_all("gen", p, 0).await {
            seqs.push(r["value"]["seq"].as_u64().unwrap());
            stored.insert((u64::from(p), r["offset"].as_u64().unwrap()));
        }
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..TOTAL).collect::<Vec<_>>(),
        "each event exactly once"
    );
    eventually_within(Duration::from_secs(60), "the sink caught up", || async {
        connector(&b, "archive").await["lag_records"] == 0
    })
    .await;
    let written: BTreeSet<(u64, u64)> = written(&out).into_iter().collect();
    assert_eq!(
        written, stored,
        "the sink wrote every record (at least once)"
    );
}
