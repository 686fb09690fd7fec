//! Cluster mode against real processes: three `nats-server` nodes (the pinned
//! version from `tests/cluster/requirements.txt`, installed into the project's venv
//! by `tests/cluster/nats.sh`), and `weir serve --cluster` nodes as child processes.

mod connectors;
mod failover;
mod fencing;
mod groups;
mod pipelines;
mod plugins;
mod records;
mod refusal;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use crate::harness::ServerProcess;

/// The pinned nats-server, installed once per test run.
pub fn nats_server() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new("bash")
            .arg(root.join("tests/cluster/nats.sh"))
            .arg("install")
            .output()
            .expect("running tests/cluster/nats.sh install");
        assert!(
            out.status.success(),
            "installing nats-server: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
    })
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One NATS server of the cluster.
struct Node {
    name: String,
    client_port: u16,
    monitor_port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// A 3-node JetStream cluster in a temp dir, every node fsyncing before it
/// acknowledges (`sync_interval: always`), as `tests/cluster/nats.sh up` runs it.
pub struct NatsCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl NatsCluster {
    pub async fn start() -> NatsCluster {
        Self::start_with(nats_server(), Some("sync_interval: always")).await
    }

    /// A cluster of `bin`, with JetStream and these options in its block, or without.
    ///
    /// Ports are picked free and then handed to the servers, so another process may
    /// take one in between: a server that exits at start (its port taken) makes the
    /// whole cluster start again on new ports, up to three times.
    pub async fn start_with(bin: &Path, jetstream: Option<&str>) -> NatsCluster {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start(bin, jetstream).await {
                return cluster;
            }
        }
        panic!(
            "three clusters of {} in a row had a server exit or stay unhealthy at start",
            bin.display()
        );
    }

    async fn try_start(bin: &Path, jetstream: Option<&str>) -> Option<NatsCluster> {
        // A name of its own: tests run clusters side by side, and a route that reaches
        // another test's cluster through a reused port is refused by name, not merged.
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let cluster_name = format!(
            "weir-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, r, _)| format!("nats-route://127.0.0.1:{r}"))
            .collect();
        let mut nodes = Vec::new();
        for (i, (client, route, monitor)) in ports.into_iter().enumerate() {
            let name = format!("{cluster_name}-n{i}");
            let store = dir.path().join(&name);
            let js = match jetstream {
                Some(options) => format!(
                    "jetstream {{ store_dir: \"{}\", {options} }}",
                    store.display()
                ),
                None => String::new(),
            };
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     {js}\ncluster {{ name: {cluster_name}, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                    routes.join(", ")
                ),
            )
            .unwrap();
            nodes.push(Node {
                name,
                client_port: client,
                monitor_port: monitor,
                config,
                child: None,
            });
        }
        let mut cluster = NatsCluster { nodes, _dir: dir };
        for i in 0..3 {
            cluster.spawn(bin, i);
        }
        for i in 0..3 {
            if !cluster.wait_healthy(i, jetstream.is_some()).await {
                return None; // dropped: the others are killed
            }
        }
        Some(cluster)
    }

    fn spawn(&mut self, bin: &Path, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::File::create(node.config.with_extension("log")).unwrap();
        node.child = Some(
            Command::new(bin)
                .arg("-c")
                .arg(&node.config)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    /// Waits until node `i` says it is healthy (with JetStream: its meta layer is
    /// current); false if its process exited first or it was not healthy within 60 s
    /// (a cluster on a loaded machine that never formed: the caller starts another).
    async fn wait_healthy(&mut self, i: usize, jetstream: bool) -> bool {
        let url = format!(
            "http://127.0.0.1:{}/healthz{}",
            self.nodes[i].monitor_port,
            if jetstream {
                ""
            } else {
                "?js-enabled-only=true"
            }
        );
        let http = reqwest::Client::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return true;
            }
            let child = self.nodes[i].child.as_mut().expect("node is running");
            if child.try_wait().unwrap().is_some() {
                return false;
            }
            if std::time::Instant::now() >= deadline {
                eprintln!(
                    "nats-server {} was not healthy within 60 s",
                    self.nodes[i].name
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The servers' URLs, comma-separated (for `--cluster`).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Which node leads the stream `name` now.
    pub async fn stream_leader(&self, name: &str) -> usize {
        let http = reqwest::Client::new();
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let url = format!(
                "http://127.0.0.1:{}/jsz?accounts=true&streams=true",
                node.monitor_port
            );
            let Ok(r) = http.get(&url).send().await else {
                continue;
            };
            let jsz: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            for account in jsz["account_details"].as_array().into_iter().flatten() {
                for s in account["stream_detail"].as_array().into_iter().flatten() {
                    if s["name"] == name
                        && let Some(leader) = s["cluster"]["leader"].as_str()
                        && let Some(i) = self.nodes.iter().position(|n| n.name == leader)
                    {
                        return i;
                    }
                }
            }
        }
        panic!("no node knows a leader of stream {name}");
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().expect("node is running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts node `i` again (same config and store) and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(nats_server(), i);
        assert!(
            self.wait_healthy(i, true).await,
            "node {i} exited at restart or was not healthy within 60 s"
        );
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut c) = node.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// `weir serve --cluster` on the cluster, with `config` (TOML, may be empty).
pub fn weir_node(dir: &Path, cluster: &NatsCluster, config: &str) -> ServerProcess {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("weir.toml");
    std::fs::write(&path, config).unwrap();
    ServerProcess::start_args(
        dir,
        &[
            "--cluster",
            &cluster.urls(),
            "--config",
            path.to_str().unwrap(),
        ],
    )
}
