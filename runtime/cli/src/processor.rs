//! `weir processor list|status|pause|resume|reset|state`.

use bytes::Bytes;
use clap::Subcommand;
use serde_json::Value;

use super::Client;

#[derive(Debug, Subcommand)]
pub enum ProcessorCommand {
    /// Every processor with its state, generation, records, lag and watermark.
    #[command(after_help = "Examples:\n  weir processor list")]
    List,
    /// One processor in full: each input partition's progress, counters, last error.
    #[command(after_help = "Examples:\n  weir processor status window-count")]
    Status {
        /// Processor (plugin) name.
        name: String,
    },
    /// Pause at the next batch; kept across restarts.
    #[command(after_help = "Examples:\n  weir processor pause window-count")]
    Pause {
        /// Processor (plugin) name.
        name: String,
    },
    /// Resume a paused processor.
    #[command(after_help = "Examples:\n  weir processor resume window-count")]
    Resume {
        /// Processor (plugin) name.
        name: String,
    },
    /// Clear the state and move every input partition to `--to`, in one append;
    /// the processor starts again from there.
    #[command(
        after_help = "Examples:\n  weir processor reset window-count\n  weir processor reset window-count --to latest"
    )]
    Reset {
        /// Processor (plugin) name.
        name: String,
        /// `earliest`, `latest` or an offset.
        #[arg(long, default_value = "earliest")]
        to: String,
    },
    /// Committed state: one key on each partition that has it, or a page of keys
    /// by prefix.
    #[command(
        after_help = "Examples:\n  weir processor state dedup --key seen/42\n  weir processor state window-count --limit 20"
    )]
    State {
        /// Processor (plugin) name.
        name: String,
        /// One key (UTF-8).
        #[arg(long, conflicts_with = "prefix")]
        key: Option<String>,
        /// Keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Most entries.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

pub async fn run(command: ProcessorCommand, client: &Client) -> anyhow::Result<()> {
    let (name, action) = match command {
        ProcessorCommand::List => {
            let all = client.get("/v1/processors").await?;
            println!(
                "{:<24} {:<9} {:>4} {:>12} {:>8} {:>8} {:>8} {:>15}  INPUTS",
                "PROCESSOR", "STATE", "GEN", "RECORDS", "ERRORS", "DLQ", "LAG", "WATERMARK"
            );
            for p in all["processors"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<9} {:>4} {:>12} {:>8} {:>8} {:>8} {:>15}  {}",
                    text(&p["name"]),
                    text(&p["state"]),
                    p["generation"],
                    p["counters"]["records"],
                    p["counters"]["errors"],
                    p["counters"]["dead_lettered"],
                    p["lag_records"],
                    p["watermark_ms"],
                    list(&p["inputs"])
                );
            }
            return Ok(());
        }
        ProcessorCommand::Status { name } => {
            let p = client.get(&format!("/v1/processors/{name}")).await?;
            print_status(&p);
            return Ok(());
        }
        ProcessorCommand::State {
            name,
            key,
            prefix,
            limit,
        } => {
            let path = match key {
                Some(k) => format!("/v1/processors/{name}/state/{}", encode(&k)),
                None => match prefix.filter(|p| !p.is_empty()) {
                    Some(p) => format!(
                        "/v1/processors/{name}/state?prefix={}&limit={limit}",
                        encode(&p)
                    ),
                    None => format!("/v1/processors/{name}/state?limit={limit}"),
                },
            };
            let r = client.get(&path).await?;
            for e in r["entries"].as_array().into_iter().flatten() {
                let shown = |name: &str| match e.get(name) {
                    Some(v) => text(v).to_string(),
                    None => format!("base64:{}", text(&e[format!("{name}_base64")])),
                };
                println!(
                    "{:>4}  {}  {}",
                    e["partition"],
                    shown("key"),
                    shown("value")
                );
            }
            return Ok(());
        }
        ProcessorCommand::Reset { name, to } => {
            let r = client
                .post(
                    &format!("/v1/processors/{name}/reset?to={}", encode(&to)),
                    "application/json",
                    Bytes::new(),
                )
                .await?;
            for o in r["reset"].as_array().into_iter().flatten() {
                println!("{} {}: {}", text(&o["topic"]), o["partition"], o["offset"]);
            }
            return Ok(());
        }
        ProcessorCommand::Pause { name } => (name, "pause"),
        ProcessorCommand::Resume { name } => (name, "resume"),
    };
    let p = client
        .post(
            &format!("/v1/processors/{name}/{action}"),
            "application/json",
            Bytes::new(),
        )
        .await?;
    println!(
        "{name}: {} (asked: {})",
        text(&p["state"]),
        text(&p["desired"])
    );
    Ok(())
}

/// Percent-encodes a path or query component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            // '.' too: a key `.` or `..` must not read as a path segment.
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn list(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_status(p: &Value) {
    println!("processor  {}", text(&p["name"]));
    println!(
        "state      {} (asked: {}), generation {}",
        text(&p["state"]),
        text(&p["desired"]),
        p["generation"]
    );
    println!(
        "version    {} (state_version {})",
        text(&p["version"]),
        p["state_version"]
    );
    println!("inputs     {}", list(&p["inputs"]));
    println!("outputs    {}", list(&p["outputs"]));
    println!(
        "group      {} (lag {})",
        text(&p["group"]),
        p["lag_records"]
    );
    println!(
        "windows    {} open, watermark {}; timers {}",
        p["windows_open"], p["watermark_ms"], p["timers"]
    );
    if let Some(counters) = p["counters"].as_object() {
        let shown: Vec<String> = counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("counters   {}", shown.join(", "));
    }
    for part in p["partitions"].as_array().into_iter().flatten() {
        println!(
            "  {}/{}: next offset {}, watermark {}, windows {}, timers {}",
            text(&part["topic"]),
            part["partition"],
            part["next_offset"],
            part["watermark_ms"],
            part["windows_open"],
            part["timers"]
        );
    }
    if let Some(e) = p.get("last_error") {
        println!("last error {} (at {})", text(&e["message"]), e["at_ms"]);
    }
}
