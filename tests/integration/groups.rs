//! Consumer groups: shared partitions, takeover after the session timeout, durable
//! commits, lag, offset reset, and their errors.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, TestServer, test_config};

/// One group fetch; returns the response body.
pub(crate) async fn poll(api: &Api, topic: &str, group: &str, member: &str, extra: &str) -> Value {
    let r = api
        .get(&format!(
            "/v1/topics/{topic}/records?group={group}&member={member}&max_records=1000{extra}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

pub(crate) fn assignment(body: &Value) -> BTreeSet<u64> {
    body["assignment"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

/// `(partition, offset)` of every record in a group fetch.
fn positions(body: &Value) -> Vec<(u64, u64)> {
    body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["partition"].as_u64().unwrap(),
                r["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn publish_keyed(api: &Api, topic: &str, n: usize) {
    let records: Vec<_> = (0..n)
        .map(|i| json!({ "key": format!("k{i}"), "value": i }))
        .collect();
    api.publish(topic, json!(records)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_four_partitions_and_each_record_goes_to_one() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 4 })).await;
    // Both join before anything is published.
    poll(&api, "t", "g", "a", "").await;
    poll(&api, "t", "g", "b", "").await;
    let a = poll(&api, "t", "g", "a", "").await;
    let b = poll(&api, "t", "g", "b", "").await;
    let (pa, pb) = (assignment(&a), assignment(&b));
    assert_eq!((pa.len(), pb.len()), (2, 2), "{a} {b}");
    assert!(pa.is_disjoint(&pb));
    assert_eq!(a["generation"], b["generation"]);

    publish_keyed(&api, "t", 400).await;
    let mut seen: HashMap<(u64, u64), &str> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 400 {
        assert!(
            Instant::now() < deadline,
            "only {} of 400 delivered",
            seen.len()
        );
        for m in ["a", "b"] {
            let body = poll(
                &api,
                "t",
                "g",
                m,
                "&commit=auto&timeout_ms=100&max_records=37",
            )
            .await;
            let mine = if m == "a" { &pa } else { &pb };
            for (p, o) in positions(&body) {
                assert!(mine.contains(&p), "{m} got partition {p} it does not own");
                assert!(
                    seen.insert((p, o), m).is_none(),
                    "record {p}:{o} delivered twice"
                );
            }
            // Each record carries topic, partition and offset.
            if let Some(r) = body["records"].get(0) {
                assert_eq!(r["topic"], "t");
                assert!(r["value"].is_u64());
            }
        }
    }
    // Nothing more to deliver; the last auto-commit lands with the next poll.
    for m in ["a", "b"] {
        let body = poll(&api, "t", "g", m, "&commit=auto").await;
        assert_eq!(body["records"], json!([]));
    }
    let g = api.get("/v1/groups/g").await.body;
    assert_eq!(g["state"], "stable");
    assert_eq!(g["members"].as_array().unwrap().len(), 2);
    for p in g["partitions"].as_array().unwrap() {
        assert_eq!(p["lag_records"], 0, "{g}");
        assert_eq!(p["committed_offset"], p["high_watermark"], "{g}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_loses_its_partitions_to_the_other_from_committed_offsets() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 4 })).await;
    poll(&api, "t", "g", "a", "").await;
    poll(&api, "t", "g", "b", "").await;
    poll(&api, "t", "g", "a", "").await; // `a` learns its half
    publish_keyed(&api, "t", 200).await;
    // `a` reads its partitions and commits exactly half of each, then goes silent.
    let a = poll(&api, "t", "g", "a", "").await;
    let mut a_commits = Vec::new();
    for p in assignment(&a) {
        let got: Vec<u64> = positions(&a)
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        let half = got.len() as u64 / 2;
        a_commits.push(json!({ "topic": "t", "partition": p, "offset": half }));
    }
    let r = api
        .post(
            "/v1/groups/g/offsets",
            "application/json",
            json!({ "member": "a", "offsets": a_commits }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // `b` keeps polling; after the 1 s session timeout it owns all four partitions.
    let started = Instant::now();
    let taken = loop {
        let b = poll(&api, "t", "g", "b", "&timeout_ms=100").await;
        if assignment(&b).len() == 4 {
            break b;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no takeover: {b}"
        );
    };
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "took over before the session timeout"
    );
    // For a's former partitions, b starts exactly at a's committed offsets.
    let mut first: HashMap<u64, u64> = HashMap::new();
    let mut body = taken;
    loop {
        for (p, o) in positions(&body) {
            first.entry(p).or_insert(o);
        }
        if body["records"].as_array().unwrap().is_empty() {
            break;
        }
        body = poll(&api, "t", "g", "b", "").await;
    }
    for c in &a_commits {
        let p = c["partition"].as_u64().unwrap();
        assert_eq!(
            first.get(&p),
            Some(&c["offset"].as_u64().unwrap()),
            "partition {p}: {first:?}"
        );
    }
    // The stale member's commit is refused.
    let r = api
        .post(
            "/v1/groups/g/offsets",
            "application/json",
            json!({ "member": "a", "offsets": [a_commits[0]] }).to_string(),
        )
        .await;
    r.assert_problem(409, "not_assigned");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survive_a_restart_and_lag_matches_a_hand_count() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 2 })).await;
    for p in 0..2 {
        let records: Vec<_> = (0..10 * (p + 1))
            .map(|i| json!({ "value": i, "partition": p }))
            .collect();
        api.publish("t", json!(records)).await;
    }
    // Commit without a member while the group has none (an admin commit).
    let r = api
        .post(
            "/v1/groups/g/offsets",
            "application/json",
            json!({ "offsets": [
                { "topic": "t", "partition": 0, "offset": 4 },
                { "topic": "t", "partition": 1, "offset": 20 }
            ]})
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    tokio::time::sleep(Duration::from_millis(30)).await;

    let dir = server.dir.clone();
    let temp = server.stop().await;
    let server = TestServer::start_in(&dir, test_config(&dir)).await;
    let api = server.client();
    let g = api.get("/v1/groups/g").await;
    assert_eq!(g.status, 200, "{}", g.body);
    let parts = g.body["partitions"].as_array().unwrap();
    // Partition 0: 10 records, committed 4 → lag 6; partition 1: 20, committed 20 → 0.
    assert_eq!(parts[0]["committed_offset"], 4);
    assert_eq!(parts[0]["lag_records"], 6);
    assert!(parts[0]["lag_ms"].as_u64().unwrap() >= 30, "{}", g.body);
    assert_eq!(parts[1]["committed_offset"], 20);
    assert_eq!(parts[1]["lag_records"], 0);
    assert_eq!(parts[1]["lag_ms"], 0);
    assert_eq!(g.body["state"], "empty");
    let list = api.get("/v1/groups").await.body;
    assert_eq!(list["groups"][0]["group"], "g");
    assert_eq!(list["groups"][0]["lag_records"], 6);

    // A new member resumes at the committed offsets.
    let body = poll(&api, "t", "g", "c", "").await;
    let got = positions(&body);
    assert_eq!(got.len(), 6, "{body}");
    assert!(got.iter().all(|(p, o)| *p == 0 && *o >= 4));
    server.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_delete_timestamps_and_errors() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 1 })).await;
    api.publish("t", json!([{ "value": 0 }, { "value": 1 }, { "value": 2 }]))
        .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = weir_now_ms();
    tokio::time::sleep(Duration::from_millis(20)).await;
    api.publish("t", json!([{ "value": 3 }, { "value": 4 }]))
        .await;

    // Seek by time on a partition fetch.
    let r = api
        .get(&format!(
            "/v1/topics/t/partitions/0/records?timestamp_ms={cut}"
        ))
        .await;
    assert_eq!(r.body["records"][0]["offset"], 3, "{}", r.body);
    let r = api
        .get("/v1/topics/t/partitions/0/records?timestamp_ms=0")
        .await;
    assert_eq!(r.body["records"][0]["offset"], 0);

    // Reset an empty group by timestamp, offset, earliest, latest.
    let reset = |body: Value| {
        let api = api.clone();
        async move {
            api.post(
                "/v1/groups/g/offsets/reset",
                "application/json",
                body.to_string(),
            )
            .await
        }
    };
    let r = reset(json!({ "topic": "t", "timestamp_ms": cut })).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["offsets"][0]["offset"], 3);
    assert_eq!(
        reset(json!({ "topic": "t", "to": "earliest" })).await.body["offsets"][0]["offset"],
        0
    );
    assert_eq!(
        reset(json!({ "topic": "t", "to": "latest" })).await.body["offsets"][0]["offset"],
        5
    );
    assert_eq!(
        reset(json!({ "topic": "t", "offset": 2 })).await.body["offsets"][0]["offset"],
        2
    );
    reset(json!({ "topic": "t", "offset": 9 }))
        .await
        .assert_problem(416, "offset_out_of_range");
    reset(json!({ "topic": "t", "to": "middle" }))
        .await
        .assert_problem(400, "invalid_request");
    reset(json!({ "topic": "nope", "to": "earliest" }))
        .await
        .assert_problem(404, "topic_not_found");
    let body = poll(&api, "t", "g", "m1", "").await;
    assert_eq!(positions(&body), [(0, 2), (0, 3), (0, 4)]);
    // With a live member, reset and delete are refused.
    reset(json!({ "topic": "t", "to": "earliest" }))
        .await
        .assert_problem(409, "group_not_empty");
    api.delete("/v1/groups/g")
        .await
        .assert_problem(409, "group_not_empty");
    // A clean leave empties the group; then it can go.
    assert_eq!(api.delete("/v1/groups/g/members/m1").await.status, 204);
    assert_eq!(api.delete("/v1/groups/g").await.status, 204);
    api.get("/v1/groups/g")
        .await
        .assert_problem(404, "group_not_found");

    // Errors.
    api.get("/v1/topics/t/records?group=bad%20name")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/t/records")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/t/records?group=g&commit=sometimes")
        .await
        .assert_problem(400, "invalid_request");
    api.get("/v1/topics/nope/records?group=g")
        .await
        .assert_problem(404, "topic_not_found");
    let commit = |body: Value| {
        let api = api.clone();
        async move {
            api.post("/v1/groups/g/offsets", "application/json", body.to_string())
                .await
        }
    };
    commit(json!({ "offsets": [{ "topic": "t", "partition": 0, "offset": 99 }] }))
        .await
        .assert_problem(416, "offset_out_of_range");
    commit(json!({ "offsets": [{ "topic": "nope", "partition": 0, "offset": 0 }] }))
        .await
        .assert_problem(404, "topic_not_found");
    commit(json!({ "offsets": [{ "topic": "t", "partition": 3, "offset": 0 }] }))
        .await
        .assert_problem(404, "partition_not_found");
    commit(json!({ "offsets": [{ "topic": "t", "partition": 0 }] }))
        .await
        .assert_problem(400, "invalid_request");
    api.post("/v1/groups/g/offsets", "application/json", "{")
        .await
        .assert_problem(400, "invalid_json");
    let r = api
        .post(
            "/v1/groups/bad%20name/offsets",
            "application/json",
            json!({ "offsets": [] }).to_string(),
        )
        .await;
    r.assert_problem(400, "invalid_request");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_fetch_long_polls_and_latest_skips_history() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("t", json!({ "partitions": 2 })).await;
    api.publish("t", json!([{ "value": "old" }])).await;
    // A new group with auto_offset_reset=latest sees only what comes next.
    let body = poll(&api, "t", "late", "m", "&auto_offset_reset=latest").await;
    assert_eq!(body["records"], json!([]));
    let waiter = {
        let api = api.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (
                poll(&api, "t", "late", "m", "&timeout_ms=10000").await,
                t.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.publish("t", json!([{ "value": "new" }])).await;
    let (body, waited) = waiter.await.unwrap();
    assert_eq!(body["records"][0]["value"], "new", "{body}");
    assert!(waited < Duration::from_secs(5));
    server.stop().await;
}

fn weir_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_keeps_each_topics_positions_apart() {
    let server = TestServer::start().await;
    let api = server.client();
    for t in ["t1", "t2"] {
        api.create_topic(t, json!({ "partitions": 1 })).await;
        api.publish(t, json!([{ "value": 1 }, { "value": 2 }, { "value": 3 }]))
            .await;
    }
    assert_eq!(positions(&poll(&api, "t1", "g", "m", "").await).len(), 3);
    // Auto-committing t2 must not lose what t1's fetch is waiting to commit.
    assert_eq!(
        positions(&poll(&api, "t2", "g", "m", "&commit=auto").await).len(),
        3
    );
    poll(&api, "t1", "g", "m", "&commit=auto").await;
    poll(&api, "t2", "g", "m", "&commit=auto").await;
    let g = api.get("/v1/groups/g").await.body;
    let committed: Vec<_> = g["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["topic"].as_str().unwrap().to_string(),
                p["committed_offset"].clone(),
            )
        })
        .collect();
    assert_eq!(
        committed,
        [("t1".to_string(), json!(3)), ("t2".to_string(), json!(3))],
        "{g}"
    );
    server.stop().await;
}

/// `max_records=0` joins a group (or probes a position) without reading: no records,
/// no position moves, no waiting, on both read paths; `max_bytes` below one record
/// still returns one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_records_zero_reads_and_moves_nothing() {
    let server = TestServer::start().await;
    let api = server.client();
    api.create_topic("z", json!({ "partitions": 1 })).await;
    api.publish("z", json!([{ "value": "first" }, { "value": "second" }]))
        .await;
    let started = Instant::now();
    let join = api
        .get("/v1/topics/z/records?group=zg&member=m1&max_records=0&timeout_ms=5000&commit=auto")
        .await;
    assert_eq!(join.status, 200, "{}", join.body);
    assert_eq!(join.body["records"], json!([]));
    let member = join.body["member"].as_str().unwrap().to_string();
    let probe = api
        .get("/v1/topics/z/partitions/0/records?offset=2&max_records=0&timeout_ms=5000")
        .await;
    assert_eq!(probe.body["records"], json!([]));
    assert!(started.elapsed() < Duration::from_secs(4), "neither waited");
    let probe = api
        .get("/v1/topics/z/partitions/0/records?offset=0&max_records=0")
        .await;
    assert_eq!(probe.body["records"], json!([]));
    assert_eq!(probe.body["next_offset"], 0, "{}", probe.body);
    // The member's next fetch starts at the first record: nothing was skipped.
    let body = poll(&api, "z", "zg", &member, "&max_bytes=1&commit=auto").await;
    let values: Vec<&Value> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["value"])
        .collect();
    assert_eq!(
        values,
        [&json!("first")],
        "one record although over max_bytes"
    );
    server.stop().await;
}
