//! `weir bench cluster`: cluster mode beside the embedded store in one run.
//!
//! Starts a local 3-node NATS JetStream cluster (R3, `sync_interval: always`: every
//! server fsyncs before it acknowledges), two Weir nodes on it and one embedded
//! broker, all in this process except the NATS servers, and runs the same workloads
//! on each. Last, it kills the stream's leader under a steady single-record load and
//! reports the longest wait for an acknowledgement: the time to resume.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use serde_json::json;

use super::latency::sse_latency_across;
use super::{Client, How, InProcess, Row, batch_body, fetch_all, publish_cell};

#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// Seconds per cell.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Run every cell briefly (for smoke tests).
    #[arg(long)]
    quick: bool,
    /// The nats-server binary (2.12 or newer); default: the project's pinned one in
    /// `.venv/bin` (`tests/cluster/nats.sh install`), else `nats-server` on PATH.
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// Partitions of the benchmark topics.
    #[arg(long, default_value_t = 4)]
    partitions: u32,
}

/// Three NATS servers in a temporary directory.
struct LocalNats {
    children: Vec<Child>,
    monitor_ports: Vec<u16>,
    urls: Vec<String>,
    bin: PathBuf,
    configs: Vec<PathBuf>,
    _dir: tempfile::TempDir,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LocalNats {
    async fn start(bin: PathBuf) -> anyhow::Result<LocalNats> {
        let dir = tempfile::tempdir()?;
        let mut ports = Vec::new();
        for _ in 0..3 {
            ports.push((free_port()?, free_port()?, free_port()?));
        }
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, r, _)| format!("nats-route://127.0.0.1:{r}"))
            .collect();
        let mut nats = LocalNats {
            children: Vec::new(),
            monitor_ports: ports.iter().map(|p| p.2).collect(),
            urls: ports
                .iter()
                .map(|p| format!("nats://127.0.0.1:{}", p.0))
                .collect(),
            bin,
            configs: Vec::new(),
            _dir: tempfile::tempdir()?,
        };
        for (i, (client, route, monitor)) in ports.iter().enumerate() {
            let config = dir.path().join(format!("n{i}.conf"));
            std::fs::write(
                &config,
                format!(
                    "server_name: n{i}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
                     jetstream {{ store_dir: \"{}\", sync_interval: always }}\n\
                     cluster {{ name: weir, listen: 127.0.0.1:{route}, routes: [{}] }}\n",
                    dir.path().join(format!("n{i}")).display(),
                    routes.join(", ")
                ),
            )?;
            nats.configs.push(config);
            nats.children.push(nats.spawn(i)?);
        }
        nats._dir = dir;
        for i in 0..3 {
            nats.wait_healthy(i).await?;
        }
        Ok(nats)
    }

    fn spawn(&self, i: usize) -> anyhow::Result<Child> {
        Command::new(&self.bin)
            .arg("-c")
            .arg(&self.configs[i])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))
    }

    async fn wait_healthy(&self, i: usize) -> anyhow::Result<()> {
        let url = format!("http://127.0.0.1:{}/healthz", self.monitor_ports[i]);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "nats-server n{i} did not get healthy"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Index of the server leading `stream`.
    async fn leader(&self, stream: &str) -> anyhow::Result<usize> {
        let http = reqwest::Client::new();
        for port in &self.monitor_ports {
            let url = format!("http://127.0.0.1:{port}/jsz?accounts=true&streams=true");
            let Ok(r) = http.get(&url).send().await else {
                continue;
            };
            let jsz: serde_json::Value = serde_json::from_slice(&r.bytes().await?)?;
            for account in jsz["account_details"].as_array().into_iter().flatten() {
                for s in account["stream_detail"].as_array().into_iter().flatten() {
                    if s["name"] == stream
                        && let Some(name) = s["cluster"]["leader"].as_str()
                        && let Some(i) = name.strip_prefix('n').and_then(|n| n.parse().ok())
                    {
                        return Ok(i);
                    }
                }
            }
        }
        anyhow::bail!("no server knows the leader of {stream}")
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn default_nats_server() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/nats-server");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("nats-server")
    }
}

/// Copies the plugin folders of `from` into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&target)?;
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Waits until `client`'s node knows `topic` (another node created it).
pub(super) async fn wait_for_topic(client: &Client, topic: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client
            .http()
            .get(client.url(&format!("/v1/topics/{topic}")))
            .send()
            .await?;
        if resp.status().is_success() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{topic} did not reach every node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(clients: &[Client], topic: &str, partitions: u32) -> anyhow::Result<()> {
    let (status, _) = clients[0]
        .put(
            &format!("/v1/topics/{topic}"),
            &json!({ "partitions": partitions }),
        )
        .await?;
    anyhow::ensure!(status == 201 || status == 200, "creating {topic} failed");
    for c in clients {
        wait_for_topic(c, topic).await?;
    }
    Ok(())
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let seconds = if args.quick { 0.3 } else { args.seconds };
    let nats = LocalNats::start(args.nats_server.unwrap_or_else(default_nats_server)).await?;
    let plugins = tempfile::tempdir()?;
    // json-filter, redact and header-router for the pipeline cells, in every node's
    // own plugin directory (a deploy writes into it).
    let with_plugins = super::pipeline::build_plugins(None, plugins.path())?;
    let embedded = InProcess::start(plugins.path()).await?;
    let node_dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let mut nodes = Vec::new();
    for dir in &node_dirs {
        copy_dir(plugins.path(), dir.path())?;
        let mut config = weir_server::Config {
            plugin_dir: dir.path().to_path_buf(),
            ..weir_server::Config::default()
        };
        config.cluster = Some(weir_server::ClusterConfig::with_servers(nats.urls.clone()));
        nodes.push(InProcess::start_configured(config).await?);
    }
    let e = Client::new(&embedded.url)?;
    let (a, b) = (Client::new(&nodes[0].url)?, Client::new(&nodes[1].url)?);
    println!(
        "weir bench cluster: embedded (sled) vs cluster mode (NATS JetStream {} nodes, R3, \
         fsync before ack; two Weir nodes), {seconds} s per cell, acks=all\n",
        nats.urls.len()
    );
    Row::print_header();
    let setups: [(&str, Vec<Client>); 3] = [
        ("embedded", vec![e.clone()]),
        ("cluster, 1 node", vec![a.clone()]),
        ("cluster, 2 nodes", vec![a.clone(), b.clone()]),
    ];
    let mut n = 0;
    for value_bytes in [100usize, 1024] {
        for concurrency in [1usize, 8] {
            for (label, clients) in &setups {
                n += 1;
                let topic = format!("bench-{n}");
                create(clients, &topic, args.partitions).await?;
                let body = Bytes::from(batch_body(value_bytes, 1000));
                let mut row = publish_cell(
                    clients,
                    &topic,
                    body,
                    1000,
                    concurrency,
                    seconds,
                    How::default(),
                )
                .await?;
                row.name = format!("{label}: {value_bytes} B x 1000/req, {concurrency} conc");
                row.bytes = row.records * value_bytes as u64;
                row.print();
            }
        }
    }
    for (label, clients) in &setups {
        n += 1;
        let topic = format!("bench-{n}");
        create(clients, &topic, args.partitions).await?;
        let body = Bytes::from(batch_body(100, 1));
        let server = if *label == "embedded" {
            &embedded
        } else {
            &nodes[0]
        };
        let before = server.broker.write_stats();
        let mut row = publish_cell(clients, &topic, body, 1, 64, seconds, How::default()).await?;
        row.name = format!("{label}: single 100 B records, 64 conc");
        row.bytes = row.records * 100;
        row.print();
        // How many requests shared a flush (an fsync, or one atomic batch) on node A.
        super::print_write_path(before, server.broker.write_stats());
    }
    // Consume what the 1 KiB, 8-producer cells wrote.
    for (label, client, topic) in [("embedded", &e, "bench-10"), ("cluster", &b, "bench-11")] {
        let mut row = fetch_all(client, topic, 1024, args.partitions).await?;
        row.name = format!("{label}: {}", row.name);
        row.print();
    }
    let mut row = sse_latency_across(&e, &e, 1000, seconds.max(1.0)).await?;
    row.name = format!("embedded: {}", row.name);
    row.print();
    let mut row = sse_latency_across(&b, &a, 1000, seconds.max(1.0)).await?;
    row.name = format!("cluster, A->B: {}", row.name);
    row.print();
    if with_plugins {
        for (label, client, server) in [("embedded: ", &e, &embedded), ("cluster: ", &a, &nodes[0])]
        {
            super::pipeline::cells(
                label,
                client,
                100,
                1000,
                8,
                args.partitions,
                seconds,
                &server.broker,
            )
            .await?;
        }
        let redact = weir_broker::plugins::PluginFiles::read(&plugins.path().join("redact"))?;
        let deploys = if args.quick { 3 } else { 20 };
        super::cluster_plugins::deploy_latency(&a, &b, &redact.component, deploys)
            .await?
            .print();
        let generator = super::pipeline::build_one("generator")?;
        let kills = if args.quick { 1 } else { 3 };
        super::cluster_plugins::connector_failover(&nats.urls, &generator, kills)
            .await?
            .print();
    }
    resume_after_leader_kill(nats, &a, seconds).await?.print();
    for node in nodes {
        node.stop().await;
    }
    embedded.stop().await;
    Ok(())
}

/// One producer publishes single records back to back through `client`; the
/// stream's leader is killed (SIGKILL) partway. The row's p99 column is the longest
/// wait for an acknowledgement: how long appends stalled before serving resumed.
async fn resume_after_leader_kill(
    mut nats: LocalNats,
    client: &Client,
    seconds: f64,
) -> anyhow::Result<Row> {
    let topic = "bench-failover";
    create(std::slice::from_ref(client), topic, 1).await?;
    let url = client.url(&format!("/v1/topics/{topic}/records"));
    let body = Bytes::from(batch_body(100, 1));
    let started = Instant::now();
    let kill_at = started + Duration::from_secs_f64(seconds.max(1.0));
    let stop_at = kill_at + Duration::from_secs(15);
    let mut killed = None;
    let (mut records, mut longest) = (0u64, Duration::ZERO);
    let mut latencies = Vec::new();
    while Instant::now() < stop_at {
        if killed.is_none() && Instant::now() >= kill_at {
            let i = nats.leader("WEIR_LOG").await?;
            nats.children[i].kill()?;
            nats.children[i].wait()?;
            killed = Some(i);
        }
        let t = Instant::now();
        let resp = client
            .http()
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        let status = resp.status();
        let _ = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "a publish failed with {status} during failover"
        );
        let took = t.elapsed();
        longest = longest.max(took);
        latencies.push(took);
        records += 1;
    }
    if let Some(i) = killed {
        nats.children[i] = nats.spawn(i)?;
    }
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    Ok(Row {
        name: format!(
            "cluster: leader killed; longest ack wait {:.1} s (p50 {:.1} ms)",
            longest.as_secs_f64(),
            p50.as_secs_f64() * 1e3
        ),
        records,
        bytes: 0,
        secs: started.elapsed().as_secs_f64(),
        latencies,
    })
}
