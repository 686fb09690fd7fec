//! A NATS cluster cluster mode cannot run on is refused at start, with one line that
//! says why: servers older than 2.12.1 (no deduplicated atomic batch publish), or without JetStream.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::{NatsCluster, nats_server};
use crate::harness::WEIR;

/// Runs `weir serve --cluster` against `cluster`; returns its exit and stderr.
fn serve_against(cluster: &NatsCluster) -> (bool, String) {
    let temp = tempfile::tempdir().unwrap();
    let mut child = Command::new(WEIR)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cluster",
            &cluster.urls(),
        ])
        .arg("--data-dir")
        .arg(temp.path().join("data"))
        .arg("--plugin-dir")
        .arg(temp.path().join("plugins"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal is quick; a node that serves would run until killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a node against `cluster` and checks it is refused with one line that
/// says `why`.
async fn assert_refused(cluster: NatsCluster, why: &str) {
    let (ok, stderr) = tokio::task::spawn_blocking(move || serve_against(&cluster))
        .await
        .unwrap();
    assert!(!ok, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(why), "{stderr}");
    assert!(!stderr.contains("weir is serving"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_without_jetstream_is_refused_with_one_line() {
    let nats = NatsCluster::start_with(nats_server(), None).await;
    assert_refused(nats, "JetStream").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_older_than_2_12_is_refused_with_one_line() {
    // Debian's nats-server (2.9 on bookworm, 2.10 on trixie), which tests/install.sh
    // installs for the benchmark comparison.
    let old = Path::new("/usr/sbin/nats-server");
    let version = Command::new(old).arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    assert!(
        ["v2.9.", "v2.10.", "v2.11."]
            .iter()
            .any(|v| version.contains(v)),
        "not an old server: {version}"
    );
    // It knows no `sync_interval`.
    let nats = NatsCluster::start_with(old, Some("")).await;
    assert_refused(nats, "needs 2.12.1 or newer").await;
}
