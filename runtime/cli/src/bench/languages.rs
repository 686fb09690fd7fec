//! `weir bench languages`: the same plugin written in Rust, Python and JavaScript,
//! side by side. `examples/hello-filter` and its `-py` and `-js` twins (a substring
//! filter) are built from source, then each is measured in the real host: component
//! size, a cold load (compile, link, first instance and `init`), a warm load from the
//! on-disk compile cache in a fresh engine, one more instance with `init`, the cost
//! per event at batch 1000, and the linear memory one pooled instance holds.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use weir_broker::plugins::packed::Writer;
use weir_broker::plugins::{BatchInfo, Engine, MemoryState, Plugin, PluginFiles};

#[derive(Debug, clap::Args)]
pub struct LanguageArgs {
    /// Seconds of filtering per language for the per-event cost.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Events per batch.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

/// One language's figures.
struct Figures {
    component_bytes: usize,
    cold_load: Duration,
    warm_load: Duration,
    instance: Duration,
    per_event: Duration,
    instance_memory: usize,
    /// What the one instance serving the loop holds at its end (garbage-collected
    /// runtimes grow their heap before they collect).
    memory_under_load: usize,
}

pub async fn run(args: LanguageArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || measure_all(&args)).await?
}

fn measure_all(args: &LanguageArgs) -> anyhow::Result<()> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let target = examples.join("../target/wasm-guests");
    let out = tempfile::tempdir()?;
    let batch = batch(args.batch);
    let mut rows = Vec::new();
    for (lang, project) in [
        ("Rust", "hello-filter"),
        ("Python", "hello-filter-py"),
        ("JavaScript", "hello-filter-js"),
    ] {
        eprintln!("building {project}...");
        let folder = crate::plugin::build_in(&examples.join(project), Some(out.path()), &target)
            .with_context(|| format!("building {project}"))?;
        let files = PluginFiles::read(&folder)?;
        eprintln!("measuring {project}...");
        rows.push((lang, measure(files, &batch, args)?));
    }
    println!(
        "| plugin (same substring filter) | component | cold load | warm load (cache) | \
         instance + init | per event (batch {}) | memory per instance (loaded / after the run) |",
        args.batch
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (lang, f) in rows {
        println!(
            "| {lang} | {:.1} MB | {} | {} | {} | {} ns | {:.1} / {:.1} MiB |",
            f.component_bytes as f64 / 1e6,
            ms(f.cold_load),
            ms(f.warm_load),
            ms(f.instance),
            f.per_event.as_nanos(),
            f.instance_memory as f64 / (1 << 20) as f64,
            f.memory_under_load as f64 / (1 << 20) as f64,
        );
    }
    Ok(())
}

fn measure(
    files: PluginFiles,
    (events, n): &(Vec<u8>, usize),
    args: &LanguageArgs,
) -> anyhow::Result<Figures> {
    let cache = tempfile::tempdir()?;
    let state = Arc::new(MemoryState::default());
    let load = |files: PluginFiles| -> anyhow::Result<(Plugin, Duration)> {
        // A fresh engine each time: nothing is reused from memory, only from disk.
        let engine = Engine::with_compile_cache(cache.path())
            .map_err(|e| anyhow::anyhow!("starting the engine: {e}"))?;
        let started = Instant::now();
        let plugin = Plugin::from_files(&engine, files, state.clone())?;
        Ok((plugin, started.elapsed()))
    };
    let component_bytes = files.component.len();
    let (_, cold_load) = load(files.clone())?;
    let (plugin, warm_load) = load(files)?;
    let started = Instant::now();
    let config = serde_json::to_string(&plugin.manifest().config)?;
    let _another = plugin.with_config(&config)?;
    let instance = started.elapsed();
    let (instances, bytes) = plugin.pooled_memory();
    ensure!(instances > 0, "no pooled instance after load");
    let info = BatchInfo {
        topic: "bench".into(),
        partitions: 1,
    };
    let kept = plugin.filter(&info, events, *n)?;
    ensure!(
        kept.iter().filter(|k| **k).count() == n / 2,
        "the filter kept {} of {n}, expected half",
        kept.iter().filter(|k| **k).count()
    );
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let (mut calls, started) = (0u32, Instant::now());
    while Instant::now() < deadline {
        plugin.filter(&info, events, *n)?;
        calls += 1;
    }
    let (_, loaded) = plugin.pooled_memory();
    Ok(Figures {
        component_bytes,
        cold_load,
        warm_load,
        instance,
        per_event: started.elapsed() / (calls * *n as u32),
        instance_memory: bytes / instances,
        memory_under_load: loaded,
    })
}

/// `n` events of 100 B, every other one containing the filter's word.
fn batch(n: usize) -> (Vec<u8>, usize) {
    let mut w = Writer::default();
    for i in 0..n {
        let word = if i % 2 == 0 { "hello" } else { "howdy" };
        let value = format!(
            "{{\"i\":{i:06},\"greeting\":\"{word}\",\"pad\":\"{}\"}}",
            "x".repeat(56)
        );
        w.push(0, 1, None, Some(value.as_bytes()), []);
    }
    (w.finish(), n)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
