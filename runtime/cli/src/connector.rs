//! `weir connector list|status|pause|resume|stop|start`.

use bytes::Bytes;
use clap::Subcommand;
use serde_json::Value;

use super::Client;

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Every source and sink with its state, records, errors and lag.
    #[command(after_help = "Examples:\n  weir connector list")]
    List,
    /// One connector in full: settings, counters, last error.
    #[command(after_help = "Examples:\n  weir connector status orders-to-http")]
    Status {
        /// Connector (plugin) name.
        name: String,
    },
    /// Pause at the next batch boundary; kept across restarts.
    #[command(after_help = "Examples:\n  weir connector pause orders-to-http")]
    Pause {
        /// Connector (plugin) name.
        name: String,
    },
    /// Resume a paused connector, or retry one that failed with on_failure = "pause".
    #[command(after_help = "Examples:\n  weir connector resume orders-to-http")]
    Resume {
        /// Connector (plugin) name.
        name: String,
    },
    /// Stop; `start` begins again from the committed position.
    #[command(after_help = "Examples:\n  weir connector stop orders-to-http")]
    Stop {
        /// Connector (plugin) name.
        name: String,
    },
    /// Start a stopped connector.
    #[command(after_help = "Examples:\n  weir connector start orders-to-http")]
    Start {
        /// Connector (plugin) name.
        name: String,
    },
}

pub async fn run(command: ConnectorCommand, client: &Client) -> anyhow::Result<()> {
    let (name, action) = match command {
        ConnectorCommand::List => {
            let all = client.get("/v1/connectors").await?;
            println!(
                "{:<24} {:<6} {:<9} {:>12} {:>8} {:>8} {:>8}  TOPICS",
                "CONNECTOR", "KIND", "STATE", "RECORDS", "ERRORS", "DLQ", "LAG"
            );
            for c in all["connectors"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<6} {:<9} {:>12} {:>8} {:>8} {:>8}  {}",
                    text(&c["name"]),
                    text(&c["kind"]),
                    text(&c["state"]),
                    c["records"],
                    c["errors"],
                    c["dead_lettered"],
                    c.get("lag_records").map_or("-".into(), Value::to_string),
                    topics(c)
                );
            }
            return Ok(());
        }
        ConnectorCommand::Status { name } => {
            let c = client.get(&format!("/v1/connectors/{name}")).await?;
            print_status(&c);
            return Ok(());
        }
        ConnectorCommand::Pause { name } => (name, "pause"),
        ConnectorCommand::Resume { name } => (name, "resume"),
        ConnectorCommand::Stop { name } => (name, "stop"),
        ConnectorCommand::Start { name } => (name, "start"),
    };
    let c = client
        .post(
            &format!("/v1/connectors/{name}/{action}"),
            "application/json",
            Bytes::new(),
        )
        .await?;
    println!(
        "{name}: {} (asked: {})",
        text(&c["state"]),
        text(&c["desired"])
    );
    Ok(())
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn topics(c: &Value) -> String {
    c["topics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn print_status(c: &Value) {
    println!("connector  {} ({})", text(&c["name"]), text(&c["kind"]));
    println!(
        "state      {} (asked: {})",
        text(&c["state"]),
        text(&c["desired"])
    );
    println!("version    {}", text(&c["version"]));
    println!("topics     {}", topics(c));
    if let Some(g) = c.get("group") {
        println!("group      {} (lag {})", text(g), c["lag_records"]);
    }
    println!(
        "records    {}  batches {}  errors {}  retries {}  dead-lettered {}  refused calls {}",
        c["records"],
        c["batches"],
        c["errors"],
        c["retries"],
        c["dead_lettered"],
        c["capability_refusals"]
    );
    if let Some(e) = c.get("last_error") {
        println!("last error {}", text(&e["message"]));
    }
    println!("settings   {}", c["settings"]);
}
