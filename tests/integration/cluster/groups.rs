//! A consumer group with members on two Weir nodes: one owner per partition across
//! the nodes, commits checked against the shared membership wherever they arrive,
//! and takeover from the committed offsets when a member's node dies.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{NatsCluster, weir_node};
use crate::groups::assignment;
use crate::harness::{Api, eventually};

const CONFIG: &str = "[groups]\nsession_timeout_ms = 2000\n";

/// One fetch of topic `t` as `member` of `group`.
async fn poll(api: &Api, group: &str, member: &str, extra: &str) -> Value {
    crate::groups::poll(api, "t", group, member, extra).await
}

/// Offsets of the records of each partition in a group fetch.
fn offsets(body: &Value) -> HashMap<u64, Vec<u64>> {
    let mut out: HashMap<u64, Vec<u64>> = HashMap::new();
    for r in body["records"].as_array().unwrap() {
        out.entry(r["partition"].as_u64().unwrap())
            .or_default()
            .push(r["offset"].as_u64().unwrap());
    }
    out
}

async fn commit(api: &Api, member: &str, offsets: &[Value]) -> crate::harness::Resp {
    api.post(
        "/v1/groups/g/offsets",
        "application/json",
        json!({ "member": member, "offsets": offsets }).to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_split_over_two_nodes_commits_and_fails_over() {
    let nats = NatsCluster::start().await;
    let temp = tempfile::tempdir().unwrap();
    let node_a = weir_node(&temp.path().join("a"), &nats, CONFIG);
    let node_b = weir_node(&temp.path().join("b"), &nats, CONFIG);
    let (api_a, api_b) = (node_a.client(), node_b.client());
    api_a.create_topic("t", json!({ "partitions": 4 })).await;
    eventually("node B to see the topic", || {
        let b = api_b.clone();
        async move { b.get("/v1/topics/t").await.status == 200 }
    })
    .await;

    // Member a talks to node A, member b to node B. Each node reads the shared
    // roster from its own view of the store, which may trail the other node's write
    // by a moment: a member learns a new assignment on a later poll, so each polls
    // until both hold the same generation, as clients do.
    poll(&api_a, "g", "a", "").await;
    poll(&api_b, "g", "b", "").await;
    let settled = std::sync::Arc::new(std::sync::Mutex::new((Value::Null, Value::Null)));
    eventually(
        "both members to hold the same generation's assignment",
        || {
            let (api_a, api_b, settled) = (api_a.clone(), api_b.clone(), settled.clone());
            async move {
                let a = poll(&api_a, "g", "a", "").await;
                let b = poll(&api_b, "g", "b", "").await;
                let same = a["generation"] == b["generation"]
                    && assignment(&a).len() + assignment(&b).len() == 4;
                *settled.lock().unwrap() = (a, b);
                same
            }
        },
    )
    .await;
    let (a, b) = settled.lock().unwrap().clone();
    let (pa, pb) = (assignment(&a), assignment(&b));
    assert_eq!((pa.len(), pb.len()), (2, 2), "{a} {b}");
    assert!(pa.is_disjoint(&pb));
    assert_eq!(a["generation"], b["generation"]);

    let records: Vec<_> = (0..200)
        .map(|i| json!({ "key": format!("k{i}"), "value": i }))
        .collect();
    api_a.publish("t", json!(records)).await;

    // a reads its partitions and commits the middle of each, through node B.
    let a = poll(&api_a, "g", "a", "&timeout_ms=5000").await;
    let got = offsets(&a);
    let mut a_commits = Vec::new();
    for p in &pa {
        let mine = &got[p];
        a_commits.push(json!({ "topic": "t", "partition": p, "offset": mine[mine.len() / 2] }));
    }
    let r = commit(&api_b, "a", &a_commits).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // A member may not commit another's partitions, whichever node it asks.
    let p_of_b = *pb.iter().next().unwrap();
    let foreign = [json!({ "topic": "t", "partition": p_of_b, "offset": 0 })];
    commit(&api_a, "a", &foreign)
        .await
        .assert_problem(409, "not_assigned");
    commit(&api_b, "a", &foreign)
        .await
        .assert_problem(409, "not_assigned");

    // a's node dies. b keeps polling node B; once a's session has run out, b owns
    // all four partitions.
    tokio::task::spawn_blocking(move || node_a.kill())
        .await
        .unwrap();
    let started = Instant::now();
    let taken = loop {
        let b = poll(&api_b, "g", "b", "&timeout_ms=200").await;
        if assignment(&b).len() == 4 {
            break b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no takeover: {b}"
        );
    };
    // b starts a's former partitions exactly at a's committed offsets.
    let mut first: HashMap<u64, u64> = HashMap::new();
    let mut body = taken;
    loop {
        for (p, o) in offsets(&body) {
            first.entry(p).or_insert(o[0]);
        }
        if body["records"].as_array().unwrap().is_empty() {
            break;
        }
        body = poll(&api_b, "g", "b", "&commit=auto").await;
    }
    for c in &a_commits {
        let p = c["partition"].as_u64().unwrap();
        assert_eq!(
            first.get(&p),
            Some(&c["offset"].as_u64().unwrap()),
            "partition {p}: {first:?}"
        );
    }
    // The stale member's commit is refused, on the surviving node and on a new one.
    commit(&api_b, "a", &a_commits[..1])
        .await
        .assert_problem(409, "not_assigned");
    let node_a = weir_node(&temp.path().join("a"), &nats, CONFIG);
    commit(&node_a.client(), "a", &a_commits[..1])
        .await
        .assert_problem(409, "not_assigned");

    // Both nodes describe the same group: one member, everything consumed.
    poll(&api_b, "g", "b", "&commit=auto").await;
    for api in [node_a.client(), api_b.clone()] {
        let g = api.get("/v1/groups/g").await;
        assert_eq!(g.status, 200, "{}", g.body);
        let members: Vec<&str> = g.body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["member"].as_str().unwrap())
            .collect();
        assert_eq!(members, ["b"], "{}", g.body);
        for p in g.body["partitions"].as_array().unwrap() {
            assert_eq!(p["lag_records"], 0, "{}", g.body);
            assert_eq!(p["owner"], "b", "{}", g.body);
        }
    }
}
