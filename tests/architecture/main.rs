//! The architecture invariants of `runtime/README.md`, checked against the real
//! dependency graph (`cargo metadata`) and the domain crates' sources, so a change
//! that breaks a wall fails CI instead of waiting for a reviewer to notice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The workspace's crates and, per crate, its normal (non-dev, non-build)
/// dependencies by package name.
struct Graph {
    direct: BTreeMap<String, BTreeSet<String>>,
    root: PathBuf,
}

impl Graph {
    fn load() -> Graph {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked", "--offline"])
            // Only what builds here: other platforms' crates are not downloaded.
            .args(["--filter-platform", "x86_64-unknown-linux-gnu"])
            .current_dir(&root)
            .output()
            .expect("cargo metadata runs");
        assert!(
            out.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
        let names: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        let mut direct = BTreeMap::new();
        for node in meta["resolve"]["nodes"].as_array().unwrap() {
            let normal = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| names[d["pkg"].as_str().unwrap()].to_string())
                .collect();
            direct.insert(names[node["id"].as_str().unwrap()].to_string(), normal);
        }
        Graph { direct, root }
    }

    fn direct(&self, krate: &str) -> &BTreeSet<String> {
        self.direct
            .get(krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace's graph"))
    }

    /// Everything `krate` links, through any path of normal dependencies.
    fn reach(&self, krate: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![krate.to_string()];
        while let Some(k) = todo.pop() {
            for d in self.direct.get(&k).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        seen
    }
}

const CRATES: [&str; 11] = [
    "weir-storage",
    "weir-jetstream",
    "weir-broker",
    "weir-host",
    "weir-connect",
    "weir-processors",
    "weir-kafka",
    "weir-toolchain",
    "weir-server",
    "weir-cli",
    "weir-bench",
];

fn assert_never(graph: &Graph, krate: &str, links: &BTreeSet<String>, never: &[&str], how: &str) {
    let broken: Vec<&&str> = never.iter().filter(|n| links.contains(**n)).collect();
    assert!(
        broken.is_empty(),
        "{krate} must never {how} {broken:?} (runtime/README.md, Invariants); its direct deps: {:?}",
        graph.direct(krate)
    );
}

#[test]
fn storage_knows_no_wasm_or_http() {
    let g = Graph::load();
    let links = g.reach("weir-storage");
    let never = [
        "wasmtime",
        "weir-sdk",
        "weir-host",
        "weir-broker",
        "axum",
        "hyper",
        "reqwest",
        "ureq",
    ];
    assert_never(&g, "weir-storage", &links, &never, "link");
}

#[test]
fn host_knows_no_storage_or_http_server() {
    let g = Graph::load();
    let links = g.reach("weir-host");
    let never = ["sled", "weir-storage", "weir-broker", "axum", "hyper"];
    assert_never(&g, "weir-host", &links, &never, "link");
}

#[test]
fn the_broker_is_the_only_door_to_storage_and_host() {
    let g = Graph::load();
    for krate in CRATES {
        if krate == "weir-broker" {
            continue;
        }
        // The cluster log implements storage's trait: storage is its one door.
        let never: &[&str] = if krate == "weir-jetstream" {
            &["weir-host"]
        } else {
            &["weir-storage", "weir-host"]
        };
        assert_never(&g, krate, g.direct(krate), never, "depend directly on");
    }
    // The broker holds the log as a trait object, never sled or wasmtime itself.
    let never = ["sled", "wasmtime", "axum", "hyper"];
    assert_never(
        &g,
        "weir-broker",
        g.direct("weir-broker"),
        &never,
        "depend directly on",
    );
    let links = g.reach("weir-broker");
    assert_never(&g, "weir-broker", &links, &["axum", "hyper"], "link");
}

#[test]
fn the_cluster_log_is_a_storage_backend_and_nothing_more() {
    let g = Graph::load();
    let links = g.reach("weir-jetstream");
    // sled comes only through storage's types, never used directly.
    assert_never(
        &g,
        "weir-jetstream",
        g.direct("weir-jetstream"),
        &["sled"],
        "depend directly on",
    );
    let never = ["wasmtime", "weir-host", "weir-broker", "axum", "hyper"];
    assert_never(&g, "weir-jetstream", &links, &never, "link");
    // Only the broker chooses a backend (from the server's config).
    for krate in CRATES {
        if krate != "weir-broker" {
            assert_never(
                &g,
                krate,
                g.direct(krate),
                &["weir-jetstream"],
                "depend directly on",
            );
        }
    }
}

#[test]
fn connectors_and_processors_serve_no_http() {
    let g = Graph::load();
    for krate in ["weir-connect", "weir-processors"] {
        let links = g.reach(krate);
        assert_never(&g, krate, &links, &["axum", "hyper", "weir-server"], "link");
    }
}

#[test]
fn the_kafka_listener_is_a_protocol_over_the_broker_and_nothing_more() {
    let g = Graph::load();
    let links = g.reach("weir-kafka");
    // It speaks Kafka to clients and asks the broker; HTTP, and how the server
    // authenticates (tokens, JWTs), stay the server's: it hands in an `Authorizer`,
    // and its TLS as a `Transport`.
    assert_never(
        &g,
        "weir-kafka",
        &links,
        &["axum", "hyper", "weir-server", "reqwest", "jsonwebtoken"],
        "link",
    );
}

#[test]
fn the_server_is_the_http_library_alone() {
    let g = Graph::load();
    let links = g.reach("weir-server");
    let never = [
        "weir-cli",
        "weir-bench",
        "weir-toolchain",
        "clap",
        "reqwest",
        "redis",
    ];
    assert_never(&g, "weir-server", &links, &never, "link");
    // NATS only as the cluster log, behind the broker.
    assert_never(
        &g,
        "weir-server",
        g.direct("weir-server"),
        &["async-nats"],
        "depend directly on",
    );
}

/// Files of the domain crates that may derive `Serialize`, and why: each is a record
/// the crate writes to its own storage, not a request or response body.
const PERSISTED: [(&str, &str); 12] = [
    (
        "runtime/storage/src/config.rs",
        "topic configs in the meta tree",
    ),
    (
        "runtime/storage/src/topic.rs",
        "the topic record in the meta tree",
    ),
    ("runtime/storage/src/checkpoint.rs", "the checkpoint file"),
    (
        "runtime/broker/src/pipeline/spec.rs",
        "pipeline steps in topic state",
    ),
    (
        "runtime/broker/src/groups/roster.rs",
        "group members in the cluster's shared key-value store",
    ),
    (
        "runtime/jetstream/src/view.rs",
        "topic entries in the cluster's stream",
    ),
    (
        "runtime/broker/src/cluster/nodes.rs",
        "node reports in the cluster's shared key-value store",
    ),
    (
        "runtime/broker/src/cluster/lease.rs",
        "lease holders in the cluster's shared key-value store",
    ),
    (
        "runtime/broker/src/cluster/deploy.rs",
        "plugin deployments in the cluster's shared key-value store",
    ),
    (
        "runtime/broker/src/idempotence/note.rs",
        "a request's answer, stored with its records for idempotent retries",
    ),
    (
        "runtime/broker/src/idempotence/keys.rs",
        "an idempotency key's note in the key-value store",
    ),
    (
        "runtime/broker/src/idempotence/sessions.rs",
        "a producer session's note in the key-value store",
    ),
];

#[test]
fn only_the_server_has_wire_types() {
    let g = Graph::load();
    let mut offenders = Vec::new();
    for krate in [
        "storage",
        "jetstream",
        "broker",
        "host",
        "connect",
        "processors",
    ] {
        for file in rust_files(&g.root.join("runtime").join(krate).join("src")) {
            let rel = file
                .strip_prefix(&g.root)
                .unwrap()
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let serializes = text.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("#[derive(") && l.contains("Serialize")
                    || l.starts_with("impl Serialize")
                    || l.starts_with("impl serde::Serialize")
            });
            if serializes && !PERSISTED.iter().any(|(p, _)| *p == rel) {
                offenders.push(rel);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "Serialize outside runtime/server (wire types belong there; map domain types in \
         runtime/server/src/wire/): {offenders:?}"
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}
