//! `weir bench compare`: Weir beside NATS JetStream and Redis Streams, and its Kafka
//! listener driven by kcat, in one run (the
//! harness is the `weir-bench` crate; this starts the Weir under test and prints).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use weir_bench::compare::{Options, Peer};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Run every workload briefly (0.2 s per cell, 20,000 records to consume).
    #[arg(long)]
    quick: bool,
    /// Seconds per publish and latency cell.
    #[arg(long)]
    seconds: Option<f64>,
    /// Records to consume from the start of a stream.
    #[arg(long)]
    consume_records: Option<u64>,
    /// Peers to compare with (installed from Debian's packages if missing).
    #[arg(long, value_delimiter = ',', default_value = "nats,redis")]
    peers: Vec<Peer>,
    /// Where to write the Markdown table as well.
    #[arg(long, default_value = "weir-bench-compare.md")]
    out: PathBuf,
}

pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let mut options = if args.quick {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(s) = args.seconds {
        anyhow::ensure!(s > 0.0, "--seconds must be positive");
        options.duration = Duration::from_secs_f64(s);
    }
    if let Some(n) = args.consume_records {
        options.consume_records = n.max(1);
    }
    options.peers = args.peers;
    let plugins = tempfile::tempdir()?;
    // The in-process rows measure this broker; the HTTP rows a `weir serve` of its
    // own, so the load generator and the broker do not share a process.
    let server = super::InProcess::start(plugins.path()).await?;
    let child_dir = tempfile::tempdir()?;
    // With a Kafka listener, for the Kafka rows (kcat).
    let config = child_dir.path().join("weir.toml");
    std::fs::write(&config, "[kafka]\nlisten = \"127.0.0.1:0\"\n")?;
    let child =
        super::child::spawn_serve(child_dir.path(), &["--config".as_ref(), config.as_os_str()])?;
    eprintln!(
        "weir bench compare: {:?} per cell; Weir at {} (a separate process, data in a temp dir)",
        options.duration, child.url
    );
    let weir = weir_bench::WeirUnderTest {
        url: child.url.clone(),
        kafka: child.kafka.clone(),
        broker: server.broker.clone(),
    };
    let report = weir_bench::run(&options, &weir).await;
    drop(child);
    server.stop().await;
    let table = report?.markdown();
    println!("\n{table}");
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, &table).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("written to {}", args.out.display());
    Ok(())
}
