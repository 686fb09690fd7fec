//! `weir group list|describe|reset|delete`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Client;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List groups with their members and total lag.
    #[command(after_help = "Examples:\n  weir group list")]
    List,
    /// Members, and per partition: committed offset, high watermark, lag, owner.
    #[command(after_help = "Examples:\n  weir group describe billing")]
    Describe {
        /// Group name.
        group: String,
    },
    /// Move a group's committed offsets (the group must have no live members).
    #[command(
        after_help = "Examples:\n  weir group reset billing --topic orders --to earliest\n  weir group reset billing --topic orders --to 1200 --partition 0\n  weir group reset billing --topic orders --timestamp-ms 1767225600000"
    )]
    Reset {
        /// Group name.
        group: String,
        /// Topic whose offsets move.
        #[arg(long)]
        topic: String,
        /// `earliest`, `latest` or an offset.
        #[arg(long, conflicts_with = "timestamp_ms")]
        to: Option<String>,
        /// The first record at or after this time (ms since the epoch).
        #[arg(long)]
        timestamp_ms: Option<i64>,
        /// Only these partitions (repeatable); default all.
        #[arg(long = "partition")]
        partitions: Vec<u32>,
    },
    /// Delete a group's committed offsets (the group must have no live members).
    #[command(after_help = "Examples:\n  weir group delete billing")]
    Delete {
        /// Group name.
        group: String,
    },
}

pub async fn run(command: GroupCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        GroupCommand::List => {
            let all = client.get("/v1/groups").await?;
            println!("{:<32} {:>8} {:>12}  TOPICS", "GROUP", "MEMBERS", "LAG");
            for g in all["groups"].as_array().into_iter().flatten() {
                let topics: Vec<&str> = g["topics"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<32} {:>8} {:>12}  {}",
                    g["group"].as_str().unwrap_or("?"),
                    g["members"],
                    g["lag_records"],
                    topics.join(",")
                );
            }
        }
        GroupCommand::Describe { group } => {
            let g = client.get(&format!("/v1/groups/{group}")).await?;
            println!(
                "group {group}: {} (generation {})",
                g["state"].as_str().unwrap_or("?"),
                g["generation"]
            );
            for m in g["members"].as_array().into_iter().flatten() {
                println!(
                    "  member {} (idle {} ms): {}",
                    m["member"].as_str().unwrap_or("?"),
                    m["idle_ms"],
                    m["assignments"]
                );
            }
            println!(
                "{:<24} {:>9} {:>12} {:>12} {:>10} {:>10}  OWNER",
                "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "LAG_MS"
            );
            for p in g["partitions"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:>9} {:>12} {:>12} {:>10} {:>10}  {}",
                    p["topic"].as_str().unwrap_or("?"),
                    p["partition"],
                    show(&p["committed_offset"]),
                    p["high_watermark"],
                    p["lag_records"],
                    p["lag_ms"],
                    p["owner"].as_str().unwrap_or("-")
                );
            }
        }
        GroupCommand::Reset {
            group,
            topic,
            to,
            timestamp_ms,
            partitions,
        } => {
            let mut body = json!({ "topic": topic });
            match (to.as_deref(), timestamp_ms) {
                (Some(w @ ("earliest" | "latest")), None) => body["to"] = w.into(),
                (Some(n), None) => {
                    let offset: u64 = n.parse().map_err(|_| {
                        anyhow::anyhow!("--to takes earliest, latest or an offset, not '{n}'")
                    })?;
                    body["offset"] = offset.into();
                }
                (None, Some(ts)) => body["timestamp_ms"] = ts.into(),
                _ => anyhow::bail!("give --to earliest|latest|<offset> or --timestamp-ms"),
            }
            if !partitions.is_empty() {
                body["partitions"] = json!(partitions);
            }
            let r = client
                .post(
                    &format!("/v1/groups/{group}/offsets/reset"),
                    "application/json",
                    body.to_string().into(),
                )
                .await?;
            for o in r["offsets"].as_array().into_iter().flatten() {
                println!(
                    "{} partition {} -> offset {}",
                    o["topic"].as_str().unwrap_or("?"),
                    o["partition"],
                    o["offset"]
                );
            }
        }
        GroupCommand::Delete { group } => {
            client.delete(&format!("/v1/groups/{group}")).await?;
            println!("deleted group {group}");
        }
    }
    Ok(())
}

fn show(v: &Value) -> String {
    if v.is_null() {
        "-".into()
    } else {
        v.to_string()
    }
}
