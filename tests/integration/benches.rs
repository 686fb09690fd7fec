//! The `weir bench` subcommands, each run briefly (`--quick`) so the commands keep
//! working: the throughput bench, pipelines, reload, connectors, and the comparison
//! with NATS, Redis and Kafka clients.

use crate::cli::{ok, weir};
use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_runs() {
    let server = TestServer::start().await;
    let url = server.url.clone();
    let out = ok(&weir(
        &url,
        &[
            "bench",
            "--url",
            &url,
            "--quick",
            "--batch",
            "1,100",
            "--value-bytes",
            "100",
            "--concurrency",
            "1,4",
        ],
        None,
    )
    .await);
    assert!(out.contains("produce 100 B x 100/req, 4 conc"), "{out}");
    assert!(out.contains("fetch 100 B"), "{out}");
    assert!(out.contains("file append+fsync"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_quick_runs_the_pipeline_cases_in_process() {
    // No --url: the bench starts its own broker, builds the first-party plugins from
    // plugins/ and runs the same requests without plugins, through a chain and
    // through a router.
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &[
            "bench",
            "--quick",
            "--batch",
            "100",
            "--value-bytes",
            "100",
            "--concurrency",
            "1",
            "--pipeline-concurrency",
            "1",
            "--latency-rate",
            "1000",
        ],
        None,
    )
    .await);
    for row in [
        "pipe no plugins, 100 B x 100, 1 conc",
        "pipe json-filter + redact (",
        "pipe router to 4 topics (",
        "plugin time/event: header-router",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reload_quick_swaps_versions_under_load_without_losing_records() {
    // The bench fails (non-zero exit) on any failed publish or lost, duplicated or
    // unmasked record.
    let out = ok(&weir("http://127.0.0.1:9", &["bench", "reload", "--quick"], None).await);
    for row in [
        "new component: total (write → serving)",
        "manifest-only change:   load",
        "| failed publishes",
        "| acknowledged records lost",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_connectors_quick_drains_every_case() {
    // Every case waits for its records (the sinks drain to lag 0, the generator
    // produces them all, every latency record arrives) or the command fails.
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &["bench", "connectors", "--quick"],
        None,
    )
    .await);
    for row in [
        "| file-sink (append + fsync per batch) | 2000 |",
        "| http-sink (POST per batch, loopback) | 2000 |",
        "| generator source (poll + atomic append with cursor) | 2000 |",
        "| http-sink publish-to-delivery latency |",
    ] {
        assert!(out.contains(row), "missing '{row}' in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_compare_quick_measures_every_workload_on_every_system() {
    // Real peers: nats-server and redis-server (installed by tests/install.sh, or by the
    // command itself), each on its own loopback port with a temp data dir.
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("compare.md");
    let out = ok(&weir(
        "http://127.0.0.1:9",
        &[
            "bench",
            "compare",
            "--quick",
            "--out",
            out_file.to_str().unwrap(),
        ],
        None,
    )
    .await);
    let written = std::fs::read_to_string(&out_file).unwrap();
    assert!(out.contains(&written), "the file holds the printed table");
    let systems = [
        "Weir HTTP (acks=all)",
        "Weir in-process (acks=all)",
        "Weir HTTP (acks=none)",
        "Weir in-process (acks=none)",
        "Redis Streams (appendfsync always)",
        "Redis Streams (appendfsync everysec)",
        "NATS JetStream (file)",
    ];
    let mut workloads = vec![
        "publish -> receive at 1,000/s".to_string(),
        "publish -> receive at 10,000/s".to_string(),
    ];
    for bytes in [100, 1024] {
        for how in [
            "one by one, 1 conc",
            "one by one, 64 conc",
            "in batches of 100, 1 conc",
            "in batches of 1000, 1 conc",
        ] {
            workloads.push(format!("publish {bytes} B {how}"));
        }
    }
    for system in systems {
        for workload in &workloads {
            let row = format!("| {workload} | {system} |");
            assert!(written.contains(&row), "missing '{row}' in:\n{written}");
        }
    }
    // Reads are measured once per system (not per fsync setting), and by kcat.
    let consume = "| consume 20,000 x 100 B from the start |";
    assert_eq!(written.matches(consume).count(), 5, "{written}");
    // The Kafka rows: kcat's async producer beside the same workload over HTTP.
    for bytes in [100, 1024] {
        let workload = format!("| publish {bytes} B async, client-batched");
        for system in [
            "Weir HTTP (acks=all)",
            "Weir Kafka (kcat, acks=all, linger 5 ms)",
        ] {
            assert!(
                written
                    .lines()
                    .any(|l| l.starts_with(&workload) && l.contains(&format!("| {system} |"))),
                "missing {system} in {workload}:\n{written}"
            );
        }
    }
    // Every row has a throughput; every Weir HTTP row is its class's reference.
    for line in written
        .lines()
        .filter(|l| l.starts_with("| publish") || l.starts_with("| consume"))
    {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let rate: f64 = cells[4].replace(',', "").parse().unwrap();
        assert!(rate > 0.0, "{line}");
        if cells[2].starts_with("Weir HTTP (") {
            assert!(cells[8].starts_with("1.00"), "{line}");
        }
    }
    // HTTP/2 is measured on the publish workloads.
    for workload in workloads
        .iter()
        .filter(|w| w.starts_with("publish ") && !w.contains("receive"))
    {
        let row = format!("| {workload} | Weir HTTP/2 (acks=all) |");
        assert!(written.contains(&row), "missing '{row}' in:\n{written}");
    }
}
