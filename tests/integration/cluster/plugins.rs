//! A plugin deployed through one Weir node serves on every node: the version goes
//! into the cluster's plugin store, each node loads it through the same checks as a
//! local reload, a version any node refuses is taken back everywhere, and a rollback
//! through any node rolls every node back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use super::{NatsCluster, weir_node};
use crate::deploy::deploy;
use crate::harness::{Api, eventually};

/// The redact transform on topic `t`, masking `field`.
fn masker(field: &str) -> String {
    format!(
        "name = \"masker\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n\
         [config]\nfields = [\"/{field}\"]\nmask = \"{field}-masked\"\n[[attach]]\ntopic = \"t\"\n"
    )
}

/// The version `node` serves of `masker`, as its own API says.
async fn serving(api: &Api) -> Option<String> {
    let r = api.get("/v1/plugins/masker").await;
    r.body["version"].as_str().map(str::to_string)
}

/// Single requests of three records through `api` until `stop`; keeps what was
/// acknowledged as (request, value) → (partition, offset).
async fn produce(
    api: Api,
    w: usize,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, u64, u64)>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let records: Vec<Value> = (0..3)
            .map(|i| json!({ "value": { "id": format!("w{w}-{n}-{i}"), "a": "x", "b": "y" } }))
            .collect();
        let r = api
            .post(
                "/v1/topics/t/records",
                "application/json",
                json!({ "records": records }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let mut acked = acked.lock().unwrap();
        for (i, result) in r.body["results"].as_array().unwrap().iter().enumerate() {
            let o = &result["outputs"][0];
            acked.push((
                format!("w{w}-{n}-{i}"),
                o["partition"].as_u64().unwrap(),
                o["offset"].as_u64().unwrap(),
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_through_one_node_serves_on_every_node_and_a_refused_one_on_none() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    // Only node a lets connectors write to `out`.
    let out = temp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let config_a = format!(
        "{}\n[cluster]\nnode = \"a\"\n",
        crate::harness::allow_connectors(&[&out], &[])
    );
    let node_a = weir_node(&temp.path().join("a"), &nats, &config_a);
    let node_b = weir_node(&temp.path().join("b"), &nats, "[cluster]\nnode = \"b\"\n");
    let (a, b) = (node_a.client(), node_b.client());
    a.create_topic("t", json!({ "partitions": 2 })).await;
    eventually("both nodes in the cluster", || async {
        let nodes = a.get("/v1/cluster").await.body["nodes"].clone();
        nodes.as_array().is_some_and(|n| n.len() == 2)
    })
    .await;
    let component = std::fs::read(artifacts::REDACT).unwrap();

    // v1 through A: every live node answers before the deploy does.
    let r = deploy(&a, "masker", &masker("a"), component.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v1 = r.body["version"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["nodes"],
        json!({ "a": { "state": "serving" }, "b": { "state": "serving" } })
    );
    assert_eq!(serving(&b).await.as_deref(), Some(v1.as_str()));
    let cluster = b.get("/v1/plugins/masker").await.body["cluster"].clone();
    assert_eq!(cluster["deployed"], json!(v1), "{cluster}");
    assert_eq!(cluster["deployed_through"], "a");

    // v2 through A while four producers publish through B: B switches at a request
    // boundary and every acknowledged record was made by exactly one version.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(produce(b.clone(), w, stop.clone(), acked.clone())))
        .collect();
    eventually("records before the deploy", || async {
        acked.lock().unwrap().len() > 60
    })
    .await;
    let r = deploy(&a, "masker", &masker("b"), component.clone()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v2 = r.body["version"].as_str().unwrap().to_string();
    let after = acked.lock().unwrap().len();
    eventually("records after the deploy", || async {
        acked.lock().unwrap().len() > after + 60
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    let mut stored: BTreeMap<(u64, u64), Value> = BTreeMap::new();
    for p in 0..2 {
        for r in a.fetch_all("t", p, 0).await {
            stored.insert((u64::from(p), r["offset"].as_u64().unwrap()), r);
        }
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(stored.len(), acked.len(), "stored != acknowledged");
    let mut versions_of_request: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (id, p, o) in &acked {
        let r = &stored[&(*p, *o)];
        assert_eq!(r["value"]["id"], json!(id));
        let lineage = r["headers"]["weir-lineage"].as_str().unwrap();
        let tag = lineage.strip_prefix("masker@").unwrap();
        let (made_by_v1, made_by_v2) = (v1.starts_with(tag), v2.starts_with(tag));
        assert!(made_by_v1 ^ made_by_v2, "{lineage} is neither version");
        let expected = if made_by_v1 {
            json!({ "id": id, "a": "a-masked", "b": "y" })
        } else {
            json!({ "id": id, "a": "x", "b": "b-masked" })
        };
        assert_eq!(
            r["value"], expected,
            "the lineage names the version that ran"
        );
        seen.insert(made_by_v1);
        let request = id.rsplit_once('-').unwrap().0.to_string();
        versions_of_request
            .entry(request)
            .or_default()
            .insert(tag.to_string());
    }
    assert_eq!(seen.len(), 2, "records from both versions");
    assert!(
        versions_of_request.values().all(|v| v.len() == 1),
        "a request is served by one version"
    );

    // A version no node can load is refused by each, and taken back: v2 serves on.
    let r = deploy(&a, "masker", &masker("a"), b"not a component".to_vec()).await;
    r.assert_problem(422, "plugin_version_rejected");
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains("a: ") && detail.contains("b: "), "{detail}");
    for node in [&a, &b] {
        assert_eq!(serving(node).await.as_deref(), Some(v2.as_str()));
        let cluster = node.get("/v1/plugins/masker").await.body["cluster"].clone();
        assert_eq!(cluster["deployed"], json!(v2), "{cluster}");
        let reasons = &cluster["last_refused"]["reasons"];
        assert!(
            reasons["a"].is_string() && reasons["b"].is_string(),
            "{cluster}"
        );
    }

    // A version only one node refuses (b does not allow its grant) is taken back on
    // the node that took it too: a first deploy leaves no node serving it.
    let sink = format!(
        "name = \"archive\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n[[attach]]\ntopic = \"t\"\n\
         [grants]\ndirs = [\"{0}\"]\n[config]\ndir = \"{0}\"\n",
        out.display()
    );
    let r = deploy(
        &a,
        "archive",
        &sink,
        std::fs::read(artifacts::FILE_SINK).unwrap(),
    )
    .await;
    r.assert_problem(422, "plugin_version_rejected");
    assert_eq!(r.body["nodes"]["a"]["state"], "serving", "{}", r.body);
    assert_eq!(r.body["nodes"]["b"]["state"], "refused", "{}", r.body);
    let reason = r.body["nodes"]["b"]["reason"].as_str().unwrap();
    assert!(reason.contains("allowed_dirs"), "{reason}");
    eventually("a no longer serves archive", || async {
        a.get("/v1/plugins/archive").await.body["version"].is_null()
    })
    .await;
    let cluster = b.get("/v1/plugins/archive").await.body["cluster"].clone();
    assert_eq!(cluster["deployed"], Value::Null, "{cluster}");
    assert!(
        cluster["last_refused"]["reasons"]["b"].is_string(),
        "{cluster}"
    );

    // A rollback through B rolls every node back to v1.
    let r = b
        .post("/v1/plugins/masker/rollback", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], json!(v1));
    for node in [&a, &b] {
        assert_eq!(serving(node).await.as_deref(), Some(v1.as_str()));
    }

    // Metrics and the overview show what every node serves.
    let metrics = b.metrics_text().await;
    for node in ["a", "b"] {
        let line = format!(
            "weir_cluster_plugin_version{{node=\"{node}\",plugin=\"masker\",version=\"{}\"}} 1",
            &v1[..12]
        );
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
        assert!(metrics.contains(&format!("weir_cluster_node_live{{node=\"{node}\"}} 1")));
    }
    let overview = a.get("/v1/overview").await.body;
    assert_eq!(overview["cluster"]["node"], "a");
    assert_eq!(overview["cluster"]["nodes"].as_array().unwrap().len(), 2);

    // A node's plugin directory cannot serve another version of a cluster plugin.
    let folder = temp.path().join("b/plugins/masker");
    std::fs::write(folder.join("plugin.toml"), masker("b")).unwrap();
    eventually("the local change refused", || async {
        let status = b.get("/v1/plugins/masker").await.body;
        status["rejected_versions"]
            .to_string()
            .contains("deployed to the cluster")
    })
    .await;
    assert_eq!(serving(&b).await.as_deref(), Some(v1.as_str()));
}
