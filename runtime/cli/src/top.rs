//! `weir top`: a terminal dashboard of the console's figures, from `GET /v1/overview`
//! once a second: topics with records/s, consumer groups with lag, plugins with
//! calls/s and errors, connectors, health.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::{Client, Remote};

/// `weir top` options.
#[derive(Debug, clap::Args)]
pub struct TopArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Print one frame (rates need two samples: it waits one interval) and exit.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    remote: Remote,
}

pub async fn run(args: TopArgs) -> anyhow::Result<()> {
    let client = args.remote.client()?;
    let interval = Duration::from_secs_f64(args.interval.max(0.2));
    let mut previous = client.get("/v1/overview").await?;
    loop {
        tokio::time::sleep(interval).await;
        let now = client.get("/v1/overview").await?;
        let frame = render(&client, &previous, &now);
        if args.once {
            print!("{frame}");
            return Ok(());
        }
        // Clear the screen and draw from the top.
        print!("\x1b[2J\x1b[H{frame}");
        previous = now;
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn written(topic: &Value) -> u64 {
    topic["partitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| u(&p["high_watermark"]))
        .sum()
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|x| x[key] == name)
}

/// One screen.
fn render(client: &Client, prev: &Value, now: &Value) -> String {
    let dt = ((u(&now["at_ms"]).saturating_sub(u(&prev["at_ms"]))) as f64 / 1e3).max(1e-3);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / dt;
    let mut out = String::new();
    let h = &now["health"];
    let _ = writeln!(
        out,
        "weir top — {}   storage {}   disk free {}   records written {}",
        client.url(""),
        if h["ready"] == true {
            "ready"
        } else {
            "NOT READY"
        },
        h["disk_free_bytes"]
            .as_u64()
            .map_or("-".into(), |b| format!(
                "{:.1} GiB",
                b as f64 / (1u64 << 30) as f64
            )),
        u(&h["records_written"]),
    );
    let _ = writeln!(
        out,
        "\n{:<32} {:>10} {:>12} {:>12}",
        "TOPIC", "PARTITIONS", "RECORDS", "RECORDS/S"
    );
    for t in now["topics"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        let before = find(&prev["topics"], "name", name).map_or(written(t), written);
        let stored: u64 = t["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| u(&p["high_watermark"]) - u(&p["log_start_offset"]))
            .sum();
        let _ = writeln!(
            out,
            "{:<32} {:>10} {:>12} {:>12.1}",
            name,
            t["partitions"].as_array().map_or(0, Vec::len),
            stored,
            rate(written(t), before)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<32} {:>8} {:>12}  PARTITIONS (LAG)",
        "GROUP", "MEMBERS", "LAG"
    );
    for g in now["groups"].as_array().into_iter().flatten() {
        let parts: Vec<String> = g["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}/{}:{}",
                    p["topic"].as_str().unwrap_or("?"),
                    p["partition"],
                    u(&p["lag_records"])
                )
            })
            .collect();
        let lag: u64 = g["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| u(&p["lag_records"]))
            .sum();
        let _ = writeln!(
            out,
            "{:<32} {:>8} {:>12}  {}",
            g["group"].as_str().unwrap_or("?"),
            g["members"].as_array().map_or(0, Vec::len),
            lag,
            parts.join(" ")
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:<12} {:<13} {:>9} {:>8}  LAST ERROR",
        "PLUGIN", "STATE", "VERSION", "CALLS/S", "ERRORS"
    );
    for p in now["plugins"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or("?");
        let calls = u(&p["counters"]["calls"]);
        let before =
            find(&prev["plugins"], "name", name).map_or(calls, |b| u(&b["counters"]["calls"]));
        let errors: u64 = p["counters"]["errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, n)| u(n))
            .sum();
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<13} {:>9.1} {:>8}  {}",
            name,
            p["state"].as_str().unwrap_or("?"),
            p["version"]
                .as_str()
                .map_or("-", |v| v.get(..12).unwrap_or(v)),
            rate(calls, before),
            errors,
            p["last_error"]["message"].as_str().unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:<6} {:<9} {:>12} {:>8} {:>8}",
        "CONNECTOR", "KIND", "STATE", "RECORDS", "ERRORS", "LAG"
    );
    for c in now["connectors"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<24} {:<6} {:<9} {:>12} {:>8} {:>8}",
            c["name"].as_str().unwrap_or("?"),
            c["kind"].as_str().unwrap_or("?"),
            c["state"].as_str().unwrap_or("?"),
            u(&c["records"]),
            u(&c["errors"]),
            c["lag_records"]
                .as_u64()
                .map_or("-".into(), |l| l.to_string())
        );
    }
    out
}
