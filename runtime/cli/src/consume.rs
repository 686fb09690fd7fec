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
    #[arg(long, conflicts_with = "group")]
    partition: Option<u32>,
    /// Where to start: `earliest`, `latest` or an offset.
    #[arg(long, default_value = "earliest", conflicts_with = "group")]
    from: String,
    /// Consume as a member of this group: its share of the partitions, from the group's
    /// committed offsets, committing what was printed.
    #[arg(long)]
    group: Option<String>,
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
    let client = args.remote.client()?;
    if let Some(group) = &args.group {
        return run_group(&client, &args, group).await;
    }
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

/// Group mode: fetch, print, commit what was printed; leave the group at the end.
async fn run_group(client: &Client, args: &ConsumeArgs, group: &str) -> anyhow::Result<()> {
    let mut member: Option<String> = None;
    let mut printed = 0u64;
    let stdout = std::io::stdout();
    let result = async {
        loop {
            let remaining = args.max.map_or(10_000, |m| (m - printed).min(10_000));
            let wait = if args.follow { 10_000 } else { 0 };
            let mut path = format!(
                "/v1/topics/{}/records?group={group}&max_records={remaining}&timeout_ms={wait}",
                args.topic
            );
            if let Some(m) = &member {
                path.push_str(&format!("&member={m}"));
            }
            let resp = client.get(&path).await?;
            member = resp["member"].as_str().map(str::to_string);
            let records = resp["records"].as_array().cloned().unwrap_or_default();
            let mut commits: Vec<Value> = Vec::new();
            {
                let mut out = stdout.lock();
                for r in &records {
                    writeln!(out, "{r}")?;
                    printed += 1;
                    let (p, o) = (r["partition"].clone(), r["offset"].as_u64().unwrap_or(0));
                    match commits.iter_mut().find(|c| c["partition"] == p) {
                        Some(c) => c["offset"] = (o + 1).into(),
                        None => commits.push(serde_json::json!({ "topic": args.topic, "partition": p, "offset": o + 1 })),
                    }
                }
            }
            if !commits.is_empty() {
                let body = serde_json::json!({ "member": member, "offsets": commits });
                client
                    .post(&format!("/v1/groups/{group}/offsets"), "application/json", body.to_string().into())
                    .await?;
            }
            if args.max.is_some_and(|m| printed >= m) || (records.is_empty() && !args.follow) {
                return Ok::<_, anyhow::Error>(());
            }
        }
    }
    .await;
    if let Some(m) = &member {
        // A clean leave hands the partitions to the other members at once.
        let _ = client
            .delete(&format!("/v1/groups/{group}/members/{m}"))
            .await;
    }
    result
}
