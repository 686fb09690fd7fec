//! `weir plugin ...`: scaffold, build, try, deploy and roll back plugins.
//!
//! `new` scaffolds a project that builds as-is anywhere, in Rust, Python or
//! JavaScript ([`new`]). `build` turns a project into a deployable folder
//! (`plugin.toml` plus component, [`build`]). `test` runs a plugin in the real host,
//! with its real limits, over NDJSON records, like Fluvio's `smdk test`. `watch`
//! rebuilds on every source change and deploys into a plugin directory ([`watch`]);
//! `deploy`, `versions` and `rollback` talk to a server ([`remote`]).

mod build;
mod new;
mod remote;
mod watch;

pub(crate) use build::{build, build_in};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use clap::Subcommand;
use weir_broker::NewRecord;
use weir_broker::plugins::packed::{self, FLAG_VALUE_JSON, Writer};
use weir_broker::plugins::{BatchInfo, Engine, Kind, MemoryState, Plugin};

use super::{Client, Remote};
use weir_server::wire::produce::{BodyFormat, parse};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin project (Rust, Python or JavaScript) that builds as-is.
    #[command(
        after_help = "Examples:\n  weir plugin new shouty --kind transform\n  weir plugin new picky --lang python\n  weir plugin new tagger --lang js --kind transform\n  weir plugin new orders-feed --kind source --dir plugins"
    )]
    New {
        /// Plugin (and project) name.
        name: String,
        /// filter, transform, router; in Rust also source or sink.
        #[arg(long, default_value = "filter")]
        kind: String,
        /// rust, python or js.
        #[arg(long, default_value = "rust")]
        lang: String,
        /// Folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin project (a Rust crate, app.py or app.js) into a deployable folder
    /// (plugin.toml + component).
    #[command(after_help = "Examples:\n  weir plugin build shouty --out weir-plugins")]
    Build {
        /// The plugin project.
        #[arg(default_value = ".")]
        crate_dir: PathBuf,
        /// Plugin directory to write `<name>/` into [default: <crate>/target/plugin].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rebuild a plugin project on every source change and deploy it into a plugin
    /// directory, which a running broker hot-reloads.
    #[command(
        after_help = "Examples:\n  weir plugin watch shouty --plugin-dir weir-plugins\n  weir plugin watch shouty --check"
    )]
    Watch {
        /// The plugin project.
        #[arg(default_value = ".")]
        crate_dir: PathBuf,
        /// The broker's plugin directory.
        #[arg(long, default_value = "weir-plugins")]
        plugin_dir: PathBuf,
        /// Also ask the server at --url whether each build is serving or was refused.
        #[arg(long)]
        check: bool,
    },
    /// Deploy a plugin folder (or crate, built first) to a server over HTTP.
    #[command(
        after_help = "Examples:\n  weir plugin deploy weir-plugins/shouty\n  weir plugin deploy examples/window-count --reset-state\n  weir plugin deploy plugins/redact --canary 10"
    )]
    Deploy {
        /// A deployable plugin folder, or a plugin project (built first).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// A processor whose new version declares another `state_version`: clear its
        /// state and process its inputs again from the earliest offsets.
        #[arg(long)]
        reset_state: bool,
        /// Run the version beside the serving one (a filter or transform), its outputs
        /// compared and dropped, instead of replacing it; see `weir plugin shadow`.
        #[arg(long, conflicts_with = "reset_state")]
        shadow: bool,
        /// With --shadow: the share of batches compared, in percent.
        #[arg(long, requires = "shadow", value_parser = clap::value_parser!(u32).range(1..=100))]
        sample_percent: Option<u32>,
        /// Serve this percent of the keys on the version, beside the serving one,
        /// then promote or roll it back by its failure rate; see `weir plugin canary`.
        #[arg(long, conflicts_with_all = ["reset_state", "shadow"], value_parser = clap::value_parser!(u32).range(1..=99))]
        canary: Option<u32>,
        /// With --canary: events the new version handles before it is judged.
        #[arg(long, requires = "canary")]
        promote_after: Option<u64>,
        /// With --canary: how many percentage points its failure rate may exceed the
        /// serving version's and still be promoted.
        #[arg(long, requires = "canary")]
        max_error_increase: Option<f64>,
    },
    /// A canary's figures (events and failures of each version), or `--promote` it
    /// now, or `--stop` it (roll it back).
    #[command(
        after_help = "Examples:\n  weir plugin canary redact\n  weir plugin canary redact --promote\n  weir plugin canary redact --stop\n  weir plugin deploy plugins/redact --canary 10 --promote-after 50000"
    )]
    Canary {
        /// Plugin name.
        name: String,
        /// Promote the new version now: it serves every key.
        #[arg(long, conflicts_with = "stop")]
        promote: bool,
        /// Roll the canary back now: the serving version takes every key back.
        #[arg(long)]
        stop: bool,
    },
    /// A shadow's comparison with the serving version, or `--stop` it.
    #[command(
        after_help = "Examples:\n  weir plugin shadow redact\n  weir plugin shadow redact --stop\n  weir plugin deploy plugins/redact --shadow --sample-percent 10"
    )]
    Shadow {
        /// Plugin name.
        name: String,
        /// Stop shadowing (prints the final report).
        #[arg(long)]
        stop: bool,
    },
    /// A plugin's version history on a server.
    #[command(after_help = "Examples:\n  weir plugin versions shouty")]
    Versions {
        /// Plugin name.
        name: String,
    },
    /// Return a plugin to the version that served before the current one.
    #[command(after_help = "Examples:\n  weir plugin rollback shouty")]
    Rollback {
        /// Plugin name.
        name: String,
    },
    /// Replay a stored range of a topic through a loaded version of a filter or
    /// transform into another topic, beside the serving path; shows progress.
    #[command(
        after_help = "Examples:\n  weir plugin replay json-filter --version 3f2a9c --topic orders --into orders-v1\n  weir plugin replay redact --topic orders --from 1000 --to 2000 --into sample --rate 5000\n  weir plugin replay redact --topic orders --from-time-ms 1764720000000 --into today"
    )]
    Replay(remote::ReplayArgs),
    /// Run a plugin in the real host over NDJSON records and print the result.
    #[command(
        after_help = "Examples:\n  weir plugin test weir-plugins/shouty --input events.ndjson --topic orders"
    )]
    Test {
        /// A deployable plugin folder, or a plugin project (built first).
        dir: PathBuf,
        /// NDJSON records, one per line, shaped like the produce API's records.
        #[arg(long)]
        input: PathBuf,
        /// Topic name the plugin is told.
        #[arg(long, default_value = "test")]
        topic: String,
    },
}

pub async fn run(command: PluginCommand, remote: &Remote) -> anyhow::Result<()> {
    match command {
        PluginCommand::Watch {
            crate_dir,
            plugin_dir,
            check,
        } => {
            let client = check.then(|| remote.client()).transpose()?;
            watch::run(&crate_dir, &plugin_dir, client).await
        }
        PluginCommand::Deploy {
            dir,
            reset_state,
            shadow,
            sample_percent,
            canary,
            promote_after,
            max_error_increase,
        } => {
            let mut query = match (reset_state, shadow, sample_percent, canary) {
                (true, ..) => "?reset_state=true".to_string(),
                (_, true, Some(p), _) => format!("?shadow=true&sample_percent={p}"),
                (_, true, None, _) => "?shadow=true".to_string(),
                (.., Some(p)) => format!("?canary_percent={p}"),
                _ => String::new(),
            };
            if let Some(n) = promote_after {
                query.push_str(&format!("&promote_after={n}"));
            }
            if let Some(p) = max_error_increase {
                query.push_str(&format!("&max_error_increase={p}"));
            }
            remote::deploy(&remote.client()?, dir, &query).await
        }
        PluginCommand::Canary {
            name,
            promote,
            stop,
        } => remote::canary(&remote.client()?, &name, promote, stop).await,
        PluginCommand::Shadow { name, stop } => {
            remote::shadow(&remote.client()?, &name, stop).await
        }
        PluginCommand::Versions { name } => remote::versions(&remote.client()?, &name).await,
        PluginCommand::Replay(args) => remote::replay(&remote.client()?, args).await,
        PluginCommand::Rollback { name } => remote::rollback(&remote.client()?, &name).await,
        PluginCommand::New {
            name,
            kind,
            lang,
            dir,
        } => new::new(&name, &kind, &lang, &dir),
        PluginCommand::Build { crate_dir, out } => {
            let folder =
                tokio::task::spawn_blocking(move || build(&crate_dir, out.as_deref())).await??;
            println!("built {}", folder.display());
            Ok(())
        }
        PluginCommand::Test { dir, input, topic } => {
            tokio::task::spawn_blocking(move || test(&dir, &input, &topic)).await?
        }
    }
}

/// Where `weir plugin test` keeps compiled code between runs: the user's cache
/// folder (`$XDG_CACHE_HOME/weir/compiled`, else `~/.cache/weir/compiled`).
fn compile_cache_dir() -> Option<std::path::PathBuf> {
    Some(weir_toolchain::user_cache_dir()?.join("compiled"))
}

/// Loads the plugin in the real host and runs it over the input records.
fn test(dir: &Path, input: &Path, topic: &str) -> anyhow::Result<()> {
    // A crate is built into a scratch folder: testing leaves nothing behind.
    let scratch = tempfile::tempdir()?;
    let folder = if weir_toolchain::polyglot::Lang::of(dir).is_some() {
        build(dir, Some(scratch.path()))?
    } else {
        dir.to_path_buf()
    };
    let engine = match compile_cache_dir() {
        Some(dir) => Engine::with_compile_cache(&dir),
        None => Engine::new(),
    }
    .map_err(|e| anyhow::anyhow!("starting the WASM engine: {e}"))?;
    let plugin = Plugin::load(&engine, &folder, Arc::new(MemoryState::default()))?;
    let text = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let headers = HeaderMap::new();
    let records: Vec<NewRecord<'_>> = parse(BodyFormat::Ndjson, &headers, &text)
        .map_err(|p| anyhow::anyhow!("{}: {}", input.display(), p.detail()))?;
    let mut w = Writer::default();
    for r in &records {
        w.push(
            weir_broker::now_ms(),
            if r.value_is_json { FLAG_VALUE_JSON } else { 0 },
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(n, v)| (n.as_ref(), v.as_ref())),
        );
    }
    let batch = w.finish();
    let info = BatchInfo {
        topic: topic.to_string(),
        partitions: 1,
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match plugin.kind() {
        Kind::Filter => {
            let keep = plugin.filter(&info, &batch, records.len())?;
            let events = packed::decode(&batch)?;
            let mut kept = 0;
            for (e, k) in events.iter().zip(keep) {
                if k {
                    kept += 1;
                    writeln!(out, "{}", event_json(e))?;
                }
            }
            eprintln!("{kept} of {} records kept", records.len());
        }
        Kind::Transform => {
            let t = plugin.transform(&info, &batch, records.len())?;
            let events = packed::decode(&t.events)?;
            for e in &events {
                writeln!(out, "{}", event_json(e))?;
            }
            eprintln!("{} records in, {} out", records.len(), events.len());
        }
        Kind::Router => {
            for d in plugin.route(&info, &batch, records.len())? {
                let key = d.key.as_deref().map(String::from_utf8_lossy);
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "event": d.event, "topic": d.topic, "key": key })
                )?;
            }
        }
        other => bail!(
            "'{}' plugins cannot be tested with this command yet",
            other.as_str()
        ),
    }
    Ok(())
}

fn event_json(e: &packed::Event<'_>) -> serde_json::Value {
    let value = match (e.value, e.value_is_json()) {
        (Some(v), true) => serde_json::from_slice(v).unwrap_or(serde_json::Value::Null),
        (Some(v), false) => serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
        (None, _) => serde_json::Value::Null,
    };
    let headers: serde_json::Map<String, serde_json::Value> = e
        .headers()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v).into_owned().into(),
            )
        })
        .collect();
    serde_json::json!({ "key": e.key_str(), "value": value, "headers": headers })
}
