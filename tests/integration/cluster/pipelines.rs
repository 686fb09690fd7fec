//! A pipeline's outputs across topics stay all-or-nothing in cluster mode: a router
//! deployed to the cluster sends each request's records to four topics, eight
//! producers publish through two Weir nodes, one node is killed and restarted, and
//! once all is quiet every acknowledged request has each output exactly once, and an
//! unacknowledged one has all of its outputs or none.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde_json::{Value, json};
use weir_test_artifacts as artifacts;

use super::{NatsCluster, weir_node};
use crate::deploy::deploy;
use crate::harness::{Api, eventually};

const REGIONS: [&str; 4] = ["eu", "us", "ap", "zz"];
const TOPICS: [&str; 4] = ["r-eu", "r-us", "r-ap", "r-other"];

/// What happened to each request: acknowledged or not.
type Sent = Arc<Mutex<BTreeMap<String, bool>>>;

async fn produce(
    w: usize,
    side: usize,
    urls: Arc<RwLock<Vec<String>>>,
    sent: Sent,
    stop: Arc<AtomicBool>,
) {
    let http = crate::harness::http_client();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let request = format!("w{w}-{n}");
        let records: Vec<Value> = REGIONS
            .iter()
            .map(|r| json!({ "value": { "id": format!("{request}-{r}") }, "headers": { "region": r } }))
            .collect();
        let url = urls.read().unwrap()[side].clone();
        let answer = http
            .post(format!("{url}/v1/topics/r/records"))
            .header("content-type", "application/json")
            .body(json!({ "records": records }).to_string())
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        let acked = match answer {
            Ok(r) if r.status() == 200 => {
                let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
                body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["status"] == "stored")
            }
            _ => false,
        };
        sent.lock().unwrap().insert(request, acked);
        if !acked {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_outputs_stay_all_or_nothing_when_a_node_is_killed() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let node_a = weir_node(&temp.path().join("a"), &nats, "[cluster]\nnode = \"a\"\n");
    let node_b = weir_node(&temp.path().join("b"), &nats, "[cluster]\nnode = \"b\"\n");
    let (a, b) = (node_a.client(), node_b.client());
    a.create_topic("r", json!({ "partitions": 2 })).await;
    for t in TOPICS {
        a.create_topic(t, json!({ "partitions": 2 })).await;
    }
    let manifest = "name = \"by-region\"\nkind = \"router\"\ncomponent = \"plugin.wasm\"\n\
        [router]\ndestinations = [\"r-eu\", \"r-us\", \"r-ap\", \"r-other\"]\n\
        [config]\nheader = \"region\"\ndefault = \"r-other\"\n\
        [config.routes]\neu = \"r-eu\"\nus = \"r-us\"\nap = \"r-ap\"\n[[attach]]\ntopic = \"r\"\n";
    let r = deploy(
        &a,
        "by-region",
        manifest,
        std::fs::read(artifacts::HEADER_ROUTER).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let urls = Arc::new(RwLock::new(vec![a.url.clone(), b.url.clone()]));
    let sent: Sent = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(produce(w, w % 2, urls.clone(), sent.clone(), stop.clone())))
        .collect();
    let acked = || sent.lock().unwrap().values().filter(|a| **a).count();
    eventually("requests through both nodes", || async { acked() > 100 }).await;
    node_a.kill();
    let before = acked();
    eventually("requests through b alone", || async {
        acked() > before + 50
    })
    .await;
    let node_a = weir_node(&temp.path().join("a"), &nats, "[cluster]\nnode = \"a\"\n");
    urls.write().unwrap()[0] = node_a.url.clone();
    let before = acked();
    eventually("requests through the restarted node", || async {
        acked() > before + 100
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }

    // Quiet: read every output through the restarted node.
    let a: Api = node_a.client();
    let mut outputs: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut stored = Vec::new();
    for t in TOPICS {
        for p in 0..2 {
            for r in a.fetch_all(t, p, 0).await {
                stored.push((t, r["value"]["id"].as_str().unwrap().to_string()));
            }
        }
    }
    for (t, id) in &stored {
        let (request, region) = id.rsplit_once('-').unwrap();
        let expected = TOPICS[REGIONS.iter().position(|r| *r == region).unwrap()];
        assert_eq!(*t, expected, "{id} routed to the wrong topic");
        outputs
            .entry(request.to_string())
            .or_default()
            .push(region_of(region));
    }
    let sent = sent.lock().unwrap().clone();
    let failed = sent.values().filter(|a| !**a).count();
    assert!(failed > 0, "the kill failed some requests");
    for (request, acked) in &sent {
        let mut got = outputs.remove(request).unwrap_or_default();
        got.sort_unstable();
        let all = {
            let mut all: Vec<&str> = REGIONS.to_vec();
            all.sort_unstable();
            all
        };
        if *acked {
            assert_eq!(got, all, "acknowledged {request}: each output exactly once");
        } else {
            assert!(
                got.is_empty() || got == all,
                "unacknowledged {request}: {got:?}"
            );
        }
    }
    assert!(
        outputs.is_empty(),
        "outputs of requests never sent: {outputs:?}"
    );
    drop(node_b);
}

fn region_of(region: &str) -> &'static str {
    REGIONS.into_iter().find(|r| *r == region).unwrap()
}
