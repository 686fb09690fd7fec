//! Disk full and I/O errors, on a real size-limited filesystem (a tmpfs the test
//! mounts as root): the free-space floor answers 507 before anything is written and
//! lifts by itself; a write that fails for lack of space is never acknowledged and
//! makes the broker not ready.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, Resp, ServerProcess, TestServer, Tmpfs};

/// A JSON body of `n` records of about 3 KiB each, tagged `tag-<i>`.
fn records_body(tag: &str, n: usize) -> String {
    let value = "x".repeat(3000);
    let records: Vec<Value> = (0..n)
        .map(|i| json!({ "key": format!("{tag}-{i}"), "value": value }))
        .collect();
    json!({ "records": records }).to_string()
}

/// Publishes `n` records of ~3 KiB tagged `tag` to the topic `fill`.
async fn publish_fill(api: &Api, tag: &str, n: usize) -> Resp {
    api.post(
        "/v1/topics/fill/records",
        "application/json",
        records_body(tag, n),
    )
    .await
}

fn free_bytes(dir: &std::path::Path) -> u64 {
    fs2::available_space(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_gets_507_writes_nothing_and_publishing_resumes_once_space_is_freed() {
    const MIB: u64 = 1 << 20;
    let Some(fs) = Tmpfs::mount(96 * MIB) else {
        return;
    };
    // What the operator will delete to free space.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![7u8; 24 << 20]).unwrap();
    let floor = 16 * MIB;
    let data_dir = fs.path().join("data");
    let server = TestServer::start_with(|_, c| {
        c.data_dir = data_dir.clone();
        c.storage.min_free_bytes = floor;
        c.limits.max_request_bytes = 2 << 20;
    })
    .await;
    let api = server.client();
    api.create_topic("fill", json!({ "partitions": 1 })).await;

    // Publish ~300 KiB requests until refused; note when the real free space first
    // fell below the floor.
    let mut acked = 0u64;
    let mut crossed: Option<Instant> = None;
    let refusal = loop {
        let r = publish_fill(&api, &format!("r{acked}"), 100).await;
        if r.status != 200 {
            break r;
        }
        acked += 100;
        if crossed.is_none() && free_bytes(fs.path()) < floor {
            crossed = Some(Instant::now());
        }
        assert!(
            acked < 100_000,
            "never refused; free {}",
            free_bytes(fs.path())
        );
    };
    let refused_at = Instant::now();
    refusal.assert_problem(507, "storage_full");
    assert_eq!(refusal.body["floor_bytes"], floor);
    assert!(refusal.body["free_bytes"].as_u64().unwrap() < floor + (1 << 20));
    let to_507 = crossed.map(|c| refused_at - c);
    eprintln!(
        "disk full: {acked} records acknowledged; 507 came {to_507:?} after the free space \
         fell below the floor (None: refused before it did); free now {} KiB",
        free_bytes(fs.path()) >> 10
    );
    if let Some(t) = to_507 {
        assert!(t < Duration::from_secs(2), "507 came {t:?} after the floor");
    }

    // Nothing of the refused request was written. sled reclaims log segments now and
    // then, so free space hovers around the floor: every further 507 must leave the
    // partition as it was, and anything admitted must be acknowledged whole.
    let (_, hw) = api.offsets("fill", 0).await;
    assert_eq!(hw, acked);
    for i in 0..5 {
        let r = publish_fill(&api, &format!("r{acked}"), 100).await;
        match r.status {
            200 => acked += 100,
            _ => r.assert_problem(507, "storage_full"),
        }
        let (_, hw) = api.offsets("fill", 0).await;
        assert_eq!(hw, acked, "after attempt {i}");
    }
    // The store stays healthy: reads, offset commits, metrics, readiness and the
    // overview all answer.
    let all = api.fetch_all("fill", 0, 0).await;
    assert_eq!(all.len() as u64, acked);
    assert_eq!(all.last().unwrap()["key"], format!("r{}-99", acked - 100));
    let r = api
        .post(
            "/v1/groups/g/offsets",
            "application/json",
            json!({ "offsets": [{ "topic": "fill", "partition": 0, "offset": acked }] })
                .to_string(),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "offset commits use the floor's headroom: {}",
        r.body
    );
    assert_eq!(api.get("/readyz").await.status, 200);
    assert!(api.metrics_text().await.contains("weir_storage_free_bytes"));
    let overview = api.get("/v1/overview").await.body;
    assert!(
        overview["health"]["disk_floor_bytes"] == floor,
        "{overview}"
    );

    // The operator frees space; publishing resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    let freed = Instant::now();
    let resumed = loop {
        let r = publish_fill(&api, "after", 100).await;
        if r.status == 200 {
            break freed.elapsed();
        }
        r.assert_problem(507, "storage_full");
        assert!(freed.elapsed() < Duration::from_secs(10), "did not resume");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!("disk full: publishing resumed {resumed:?} after space was freed");
    let (_, hw) = api.offsets("fill", 0).await;
    assert_eq!(hw, acked + 100);
    assert_eq!(
        api.get("/v1/overview").await.body["health"]["storage_full"],
        false
    );
    server.stop().await;
    drop(fs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_that_fails_for_lack_of_space_is_never_acknowledged_and_the_broker_goes_unready() {
    const MIB: u64 = 1 << 20;
    let Some(fs) = Tmpfs::mount(24 * MIB) else {
        return;
    };
    // No floor: the filesystem fills up under sled and its writes fail.
    let config = fs.path().join("weir.toml");
    std::fs::write(
        &config,
        "[storage]\nmin_free_bytes = 0\n[limits]\nmax_request_bytes = 2097152\n",
    )
    .unwrap();
    let server = ServerProcess::start_args(fs.path(), &["--config", config.to_str().unwrap()]);
    let api = server.client();
    api.create_topic("fill", json!({ "partitions": 1 })).await;
    let mut acked = 0u64;
    let failure = loop {
        let r = publish_fill(&api, &format!("r{acked}"), 100).await;
        if r.status != 200 {
            break r;
        }
        acked += 100;
        assert!(acked < 100_000, "the filesystem never filled");
    };
    assert!(failure.status >= 500, "{} {}", failure.status, failure.body);
    assert_eq!(failure.content_type, "application/problem+json");
    assert_eq!(failure.body["code"], "storage_error", "{}", failure.body);

    // Not ready, with the reason; later publishes are refused, never acknowledged.
    let ready = api.get("/readyz").await;
    ready.assert_problem(503, "not_ready");
    let reason = ready.body["detail"].as_str().unwrap().to_string();
    assert!(
        reason.contains("failed") && reason.contains("No space left"),
        "{reason}"
    );
    for _ in 0..3 {
        let r = publish_fill(&api, "later", 1).await;
        assert_eq!(r.status, 503, "{}", r.body);
    }
    // The log says why.
    let lines = server.log_lines("refusing further writes");
    assert!(!lines.is_empty(), "no log line about the failure");
    eprintln!(
        "I/O error: {acked} records acknowledged before the failure; log: {}",
        lines[0]
    );
    // sled fails every call after an I/O error, reads too: they get 503, never a short
    // or empty answer.
    let r = api.fetch("fill", 0, 0).await;
    assert!(
        r.status == 200 || r.status == 503,
        "{} {}",
        r.status,
        r.body
    );
    server.kill();

    // The operator grows the filesystem and restarts: every acknowledged record is
    // there, in order. (A request that failed may or may not have landed, as with any
    // error answer; acknowledged ones always have.)
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,size=96m"])
        .arg(fs.path())
        .status()
        .unwrap();
    assert!(status.success());
    let server = ServerProcess::start_args(fs.path(), &["--config", config.to_str().unwrap()]);
    let api = server.client();
    assert_eq!(api.get("/readyz").await.status, 200);
    // Part of the failed request may have landed with a hole; recovery removes what is
    // past the hole, so the log reads without gaps.
    for line in server.log_lines("removed unacknowledged chunks") {
        eprintln!("recovery: {line}");
    }
    let all = api.fetch_all("fill", 0, 0).await;
    assert!(all.len() as u64 >= acked, "{} < {acked}", all.len());
    for (i, r) in all.iter().take(acked as usize).enumerate() {
        let want = format!("r{}-{}", i / 100 * 100, i % 100);
        assert_eq!(r["key"], want.as_str());
        assert_eq!(r["offset"], i as u64);
    }
    api.publish("fill", json!([{ "value": "after" }])).await;
    server.kill();
    drop(fs);
}
