//! `weir topic create|list|describe|delete`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::Client;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic (no error if an identical one exists).
    #[command(
        after_help = "Examples:\n  weir topic create orders --partitions 3\n  weir topic create users --cleanup-policy compact\n  weir topic create logs --retention-ms 86400000 --retention-bytes 1073741824"
    )]
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, short, default_value_t = 1)]
        partitions: u32,
        /// Delete data older than this (ms); for compacted topics, tombstone lifetime.
        #[arg(long)]
        retention_ms: Option<u64>,
        /// Keep at most this many bytes per partition.
        #[arg(long)]
        retention_bytes: Option<u64>,
        /// `delete` or `compact`.
        #[arg(long, default_value = "delete")]
        cleanup_policy: String,
    },
    /// List topics with their partitions' offsets.
    #[command(after_help = "Examples:\n  weir topic list")]
    List,
    /// Show one topic as JSON.
    #[command(after_help = "Examples:\n  weir topic describe orders")]
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and all its data.
    #[command(after_help = "Examples:\n  weir topic delete orders")]
    Delete {
        /// Topic name.
        name: String,
    },
}

pub async fn run(command: TopicCommand, client: &Client) -> anyhow::Result<()> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            retention_ms,
            retention_bytes,
            cleanup_policy,
        } => {
            let mut config = json!({ "partitions": partitions, "cleanup_policy": cleanup_policy });
            if let Some(ms) = retention_ms {
                config["retention_ms"] = ms.into();
            }
            if let Some(b) = retention_bytes {
                config["retention_bytes"] = b.into();
            }
            let (status, _) = client.put(&format!("/v1/topics/{name}"), &config).await?;
            match status {
                201 => println!("created topic {name} ({partitions} partitions)"),
                _ => println!("topic {name} already exists with this configuration"),
            }
        }
        TopicCommand::List => {
            let all = client.get("/v1/topics").await?;
            println!(
                "{:<32} {:>10} {:>14} {:>12}",
                "TOPIC", "PARTITIONS", "RECORDS", "BYTES"
            );
            for t in all["topics"].as_array().into_iter().flatten() {
                let parts = t["partitions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let records: u64 = parts
                    .iter()
                    .map(|p| num(p, "high_watermark") - num(p, "log_start_offset"))
                    .sum();
                let bytes: u64 = parts.iter().map(|p| num(p, "size_bytes")).sum();
                println!(
                    "{:<32} {:>10} {:>14} {:>12}",
                    t["name"].as_str().unwrap_or("?"),
                    parts.len(),
                    records,
                    bytes
                );
            }
        }
        TopicCommand::Describe { name } => {
            let t = client.get(&format!("/v1/topics/{name}")).await?;
            println!("{}", serde_json::to_string_pretty(&t)?);
        }
        TopicCommand::Delete { name } => {
            client.delete(&format!("/v1/topics/{name}")).await?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}
