//! `weir bench reload`: hot reload under measurement, against an in-process broker
//! that watches a temporary plugin directory holding `redact` (built from source).
//!
//! 1. Write-to-serving: a new version is renamed into the folder and the time until
//!    the registry serves it is taken, split into detection (debounce and the
//!    stable-content check) and load (compile, link, type-check, init, swap). Two
//!    kinds of version: a new component (the original with a custom section added, so
//!    it must be compiled) and a manifest-only change (compiled code is reused).
//! 2. Soak: producers publish numbered records over HTTP through the plugin while
//!    versions are replaced back to back; afterwards every acknowledged record must be
//!    stored exactly once, masked, and no publish may have failed. A violation is an
//!    error (exit status 1), so the smoke test keeps the claim honest.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use weir_broker::plugins::{PluginFiles, Registry};

use super::{Client, InProcess};
use crate::produce::percentile_ms;

/// `weir bench reload` options.
#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    /// Write-to-serving trials.
    #[arg(long, default_value_t = 20)]
    trials: usize,
    /// Consecutive reloads under load in the soak.
    #[arg(long, default_value_t = 100)]
    reloads: usize,
    /// Concurrent producers during the soak.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Records per publish request.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Where the first-party plugins' sources are (default: this repository's
    /// `plugins/`).
    #[arg(long)]
    plugins_src: Option<PathBuf>,
    /// A few trials and reloads only (for smoke tests).
    #[arg(long)]
    quick: bool,
}

const TOPIC: &str = "bench-reload";
const PARTITIONS: u32 = 4;

fn manifest(mask: &str) -> String {
    format!(
        "name = \"redact\"\nkind = \"transform\"\ncomponent = \"redact.wasm\"\n\
         [config]\nfields = [\"/secret\"]\nmask = \"{mask}\"\n\
         [[attach]]\ntopic = \"{TOPIC}\"\non_error = \"reject\"\n"
    )
}

pub(super) async fn run(args: ReloadArgs) -> anyhow::Result<()> {
    let (trials, reloads) = if args.quick {
        (3, 5)
    } else {
        (args.trials, args.reloads)
    };
    let plugin_dir = tempfile::tempdir()?;
    let folder = build_redact(args.plugins_src.as_deref(), plugin_dir.path())?;
    write_manifest(&folder, &manifest("m0"))?;
    let component = std::fs::read(folder.join("redact.wasm"))?;
    let server = InProcess::start(plugin_dir.path()).await?;
    let result = match server.broker.pipelines() {
        Some(p) => {
            let bench = Bench {
                folder,
                component,
                registry: p.registry().clone(),
            };
            measure(&server, &bench, trials, reloads, &args).await
        }
        None => Err(anyhow::anyhow!("the broker runs without plugins")),
    };
    server.stop().await;
    result
}

/// The plugin folder and what versions are made from.
struct Bench {
    folder: PathBuf,
    /// The built component; new components are it plus a custom section.
    component: Vec<u8>,
    registry: Arc<Registry>,
}

/// What changes in a new version.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Change {
    /// A component never seen before (compiled).
    Component,
    /// Only the manifest (the compiled component is reused).
    Manifest,
}

async fn measure(
    server: &InProcess,
    bench: &Bench,
    trials: usize,
    reloads: usize,
    args: &ReloadArgs,
) -> anyhow::Result<()> {
    let client = Client::new(&server.url)?;
    client
        .put(
            &format!("/v1/topics/{TOPIC}"),
            &json!({ "partitions": PARTITIONS }),
        )
        .await?;
    ensure!(
        bench
            .registry
            .get("redact")
            .and_then(|s| s.current())
            .is_some(),
        "redact did not load"
    );
    println!(
        "weir bench reload: redact ({} KiB component), {trials} write-to-serving trials per kind, {reloads} reloads under load\n",
        bench.component.len() >> 10
    );
    println!(
        "| {:<58} | {:>8} | {:>8} | {:>8} |",
        "write to serving", "p50 ms", "p99 ms", "max ms"
    );
    println!("|{:-<60}|{:->10}|{:->10}|{:->10}|", "", "", "", "");
    let mut n = 0;
    for (kind, change) in [
        ("new component", Change::Component),
        ("manifest-only change", Change::Manifest),
    ] {
        let (mut total, mut load, mut detect) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..trials {
            n += 1;
            let (t, l) = swap(bench, change, n).await?;
            total.push(t);
            load.push(l);
            detect.push(t.saturating_sub(l));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (name, mut d) in [
            (format!("{kind}: total (write → serving)"), total),
            (format!("{kind}:   load (compile, link, init, swap)"), load),
            (
                format!("{kind}:   detection (debounce 200 ms + look)"),
                detect,
            ),
        ] {
            d.sort();
            println!(
                "| {:<58} | {:>8.1} | {:>8.1} | {:>8.1} |",
                name,
                percentile_ms(&d, 0.5),
                percentile_ms(&d, 0.99),
                d.last().map_or(0.0, |x| x.as_secs_f64() * 1e3)
            );
        }
    }
    println!();
    soak(&client, bench, reloads, n, args).await
}

/// Writes version `n` and waits until it serves: (total, load time).
async fn swap(bench: &Bench, change: Change, n: usize) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    if change == Change::Component {
        write_replacing(
            &bench.folder.join("redact.wasm"),
            &with_custom_section(&bench.component, n),
        )?;
    }
    write_manifest(&bench.folder, &manifest(&format!("v{n}")))?;
    let version = PluginFiles::read(&bench.folder)?.version();
    let slot = bench
        .registry
        .get("redact")
        .context("redact is not loaded")?;
    while slot.current().is_none_or(|p| p.hash() != version) {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("version {} did not serve within 30 s", &version[..12]);
        }
        if let Some(r) = slot
            .status()
            .rejected_versions
            .iter()
            .find(|r| r.version == version)
        {
            bail!("version rejected: {:?}", r.reason);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let total = started.elapsed();
    let load = slot
        .versions()
        .first()
        .and_then(|e| e.load_ms)
        .map_or(Duration::ZERO, |ms| Duration::from_secs_f64(ms / 1e3));
    Ok((total, load))
}

#[derive(Default)]
struct Produced {
    acked: Vec<u64>,
    requests: u64,
    failures: Vec<String>,
}

/// Back-to-back reloads, alternating new components and manifest-only changes,
/// under publish load.
async fn soak(
    client: &Client,
    bench: &Bench,
    reloads: usize,
    first: usize,
    args: &ReloadArgs,
) -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..args.concurrency as u64 {
        let (client, stop, batch) = (client.clone(), stop.clone(), args.batch as u64);
        producers.push(tokio::spawn(async move {
            let mut out = Produced::default();
            let url = client.url(&format!("/v1/topics/{TOPIC}/records"));
            while !stop.load(Ordering::Relaxed) {
                let first = (p << 40) | (out.requests * batch);
                let records: Vec<Value> = (0..batch)
                    .map(|i| json!({ "value": { "seq": first + i, "secret": "s3cret", "pad": "0123456789012345678901234567890123456789" } }))
                    .collect();
                out.requests += 1;
                let resp = client
                    .http()
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({ "records": records }).to_string())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => {
                        let bytes = r.bytes().await.unwrap_or_default();
                        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        let results = body["results"].as_array().map_or(0, Vec::len) as u64;
                        if results == batch {
                            out.acked.extend(first..first + batch);
                        } else {
                            out.failures.push(format!("unexpected answer: {body}"));
                        }
                    }
                    Ok(r) => out.failures.push(format!("{}: {}", r.status(), r.text().await.unwrap_or_default())),
                    Err(e) => out.failures.push(e.to_string()),
                }
            }
            out
        }));
    }
    let started = Instant::now();
    let mut reload_times = Vec::with_capacity(reloads);
    let mut reload_error = None;
    for i in 0..reloads {
        let change = if i % 2 == 0 {
            Change::Component
        } else {
            Change::Manifest
        };
        match swap(bench, change, first + 1 + i).await {
            Ok((t, _)) => reload_times.push(t),
            Err(e) => {
                reload_error = Some(e);
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut produced = Produced::default();
    for p in producers {
        let out = p.await?;
        produced.acked.extend(out.acked);
        produced.requests += out.requests;
        produced.failures.extend(out.failures);
    }
    if let Some(e) = reload_error {
        return Err(e.context("a reload did not complete"));
    }

    // Every acknowledged record stored exactly once, and masked by some version.
    let (mut stored, mut unmasked) = (Vec::new(), 0u64);
    for p in 0..PARTITIONS {
        let mut offset = 0u64;
        loop {
            let v: Value = client
                .get(&format!("/v1/topics/{TOPIC}/partitions/{p}/records?offset={offset}&max_records=10000&max_bytes=16777216"))
                .await?;
            let records = v["records"].as_array().cloned().unwrap_or_default();
            for r in &records {
                stored.push(
                    r["value"]["seq"]
                        .as_u64()
                        .context("a stored record without seq")?,
                );
                if r["value"]["secret"] == "s3cret" {
                    unmasked += 1;
                }
            }
            let next = v["next_offset"].as_u64().unwrap_or(offset);
            if records.is_empty() || next >= v["high_watermark"].as_u64().unwrap_or(0) {
                break;
            }
            offset = next;
        }
    }
    let unique: HashSet<u64> = stored.iter().copied().collect();
    let duplicates = stored.len() - unique.len();
    let lost = produced
        .acked
        .iter()
        .filter(|s| !unique.contains(s))
        .count();
    reload_times.sort();
    println!("| {:<52} | {:>12} |", "soak", "");
    println!("|{:-<54}|{:->14}|", "", "");
    for (name, value) in [
        (
            "reloads (new version serving each time)",
            reload_times.len().to_string(),
        ),
        ("duration s", format!("{:.1}", elapsed.as_secs_f64())),
        (
            "reload p50 / p99 ms",
            format!(
                "{:.0} / {:.0}",
                percentile_ms(&reload_times, 0.5),
                percentile_ms(&reload_times, 0.99)
            ),
        ),
        ("publish requests", produced.requests.to_string()),
        ("records acknowledged", produced.acked.len().to_string()),
        (
            "records/s during reloads",
            format!("{:.0}", produced.acked.len() as f64 / elapsed.as_secs_f64()),
        ),
        ("failed publishes", produced.failures.len().to_string()),
        ("acknowledged records lost", lost.to_string()),
        ("records stored twice", duplicates.to_string()),
        ("records not masked", unmasked.to_string()),
    ] {
        println!("| {name:<52} | {value:>12} |");
    }
    if let Some(f) = produced.failures.first() {
        bail!(
            "{} publishes failed during reloads; first: {f}",
            produced.failures.len()
        );
    }
    ensure!(
        lost == 0 && duplicates == 0 && unmasked == 0,
        "records lost, duplicated or unmasked during reloads"
    );
    ensure!(
        stored.len() == produced.acked.len(),
        "stored {} records but {} were acknowledged",
        stored.len(),
        produced.acked.len()
    );
    Ok(())
}

/// Builds `redact` from source into `plugin_dir`.
fn build_redact(src: Option<&Path>, plugin_dir: &Path) -> anyhow::Result<PathBuf> {
    let src = src.map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins"),
        Path::to_path_buf,
    );
    ensure!(
        src.join("redact/Cargo.toml").is_file(),
        "no plugin sources in {} (use --plugins-src)",
        src.display()
    );
    weir_toolchain::check()?;
    eprintln!("building plugin redact...");
    crate::plugin::build_in(
        &src.join("redact"),
        Some(plugin_dir),
        &src.join("../target/wasm-guests"),
    )
    .context("building redact")
}

/// Renames a new `plugin.toml` into `folder`, as a deploy tool would.
fn write_manifest(folder: &Path, text: &str) -> anyhow::Result<()> {
    write_replacing(&folder.join("plugin.toml"), text.as_bytes())
}

fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temp = path.with_extension("new");
    std::fs::write(&temp, bytes)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// `component` with a custom section (`weir-bench`, payload `n`) appended: a valid
/// component with new bytes, so it is compiled afresh.
fn with_custom_section(component: &[u8], n: usize) -> Vec<u8> {
    let name = b"weir-bench";
    let mut section = Vec::new();
    leb128(&mut section, name.len());
    section.extend_from_slice(name);
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    leb128(&mut out, section.len());
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
