//! `weir consume <topic>`: print records as NDJSON, one partition or all of them.

use std::io::Write;

use anyhow::bail;
use serde_json::Value;

use super::{Client, Remote};

#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// Where to start: `earliest`, `latest` or an offset.
    #[arg(long, default_value = "earliest")]
    from: String,
    /// Keep waiting for new records instead of stopping at the end.
    #[arg(long, short)]
    follow: bool,
    /// Stop after this many records.
    #[arg(short = 'n', long = "max")]
    max: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.remote.url)?;
    let topic = client.get(&format!("/v1/topics/{}", args.topic)).await?;
    let parts = topic["partitions"].as_array().map(Vec::len).unwrap_or(0) as u32;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= parts => bail!(
            "topic '{}' has {parts} partitions; there is no partition {p}",
            args.topic
        ),
        Some(p) => vec![p],
        None => (0..parts).collect(),
    };
    let mut next: Vec<String> = vec![args.from.clone(); partitions.len()];
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    loop {
        let mut got_any = false;
        for (i, &p) in partitions.iter().enumerate() {
            let remaining = args.max.map_or(10_000, |m| (m - printed).min(10_000));
            // Long-poll only when following one partition; with several, poll briefly.
            let wait = if args.follow {
                if partitions.len() == 1 { 30_000 } else { 200 }
            } else {
                0
            };
            let resp = client
                .get(&format!(
                    "/v1/topics/{}/partitions/{p}/records?offset={}&max_records={remaining}&timeout_ms={wait}",
                    args.topic, next[i]
                ))
                .await?;
            let mut out = stdout.lock();
            for r in resp["records"].as_array().into_iter().flatten() {
                let mut r = r.clone();
                if let Value::Object(map) = &mut r {
                    map.insert("partition".into(), p.into());
                }
                writeln!(out, "{r}")?;
                printed += 1;
                got_any = true;
                if args.max.is_some_and(|m| printed >= m) {
                    return Ok(());
                }
            }
            if let Some(n) = resp["next_offset"].as_u64() {
                next[i] = n.to_string();
            }
        }
        if !got_any && !args.follow {
            return Ok(());
        }
    }
}
