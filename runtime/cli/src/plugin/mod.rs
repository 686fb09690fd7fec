//! `weir plugin ...`: scaffold, build, try, deploy and roll back plugins.
//!
//! `new` writes a crate that builds as-is anywhere: the SDK and the WIT package are
//! written out from this binary into the crate's `.weir/` folder, so it needs neither
//! this repository nor a registry. `build` turns a crate into a deployable folder
//! (`plugin.toml` plus component). `test` runs a plugin in the real host, with its real
//! limits, over NDJSON records, like Fluvio's `smdk test`. `watch` rebuilds on every
//! source change and deploys into a plugin directory ([`watch`]); `deploy`, `versions`
//! and `rollback` talk to a server ([`remote`]).

mod remote;
mod watch;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use clap::Subcommand;
use weir_broker::NewRecord;
use weir_broker::plugins::packed::{self, FLAG_VALUE_JSON, Writer};
use weir_broker::plugins::{BatchInfo, Engine, Kind, Manifest, MemoryState, Plugin};

use super::{Client, Remote};
use weir_server::wire::produce::{BodyFormat, parse};

// The SDK and WIT sources, embedded so `plugin new` works outside this repository:
// `SDK_FILES`, written by this crate's build script from `sdk/` and `wit/`.
include!(concat!(env!("OUT_DIR"), "/sdk_files.rs"));

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate that builds as-is.
    #[command(
        after_help = "Examples:\n  weir plugin new shouty --kind transform\n  weir plugin new orders-feed --kind source --dir plugins"
    )]
    New {
        /// Plugin (and crate) name.
        name: String,
        /// filter, transform, router, source or sink.
        #[arg(long, default_value = "filter")]
        kind: String,
        /// Folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build a plugin crate into a deployable folder (plugin.toml + component).
    #[command(after_help = "Examples:\n  weir plugin build shouty --out weir-plugins")]
    Build {
        /// The plugin crate.
        #[arg(default_value = ".")]
        crate_dir: PathBuf,
        /// Plugin directory to write `<name>/` into [default: <crate>/target/plugin].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Rebuild a plugin crate on every source change and deploy it into a plugin
    /// directory, which a running broker hot-reloads.
    #[command(
        after_help = "Examples:\n  weir plugin watch shouty --plugin-dir weir-plugins\n  weir plugin watch shouty --check"
    )]
    Watch {
        /// The plugin crate.
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
    #[command(after_help = "Examples:\n  weir plugin deploy weir-plugins/shouty")]
    Deploy {
        /// A deployable plugin folder, or a plugin crate.
        #[arg(default_value = ".")]
        dir: PathBuf,
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
    /// Run a plugin in the real host over NDJSON records and print the result.
    #[command(
        after_help = "Examples:\n  weir plugin test weir-plugins/shouty --input events.ndjson --topic orders"
    )]
    Test {
        /// A deployable plugin folder, or a plugin crate (built first).
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
        PluginCommand::Deploy { dir } => remote::deploy(&remote.client()?, dir).await,
        PluginCommand::Versions { name } => remote::versions(&remote.client()?, &name).await,
        PluginCommand::Rollback { name } => remote::rollback(&remote.client()?, &name).await,
        PluginCommand::New { name, kind, dir } => new(&name, &kind, &dir),
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

fn new(name: &str, kind: &str, parent: &Path) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        bail!("plugin names use letters, digits, '-' and '_'");
    }
    let (source, config) = match kind {
        "filter" => (FILTER_TEMPLATE, "word = \"hello\""),
        "transform" => (TRANSFORM_TEMPLATE, "header = \"seen-by\""),
        "router" => (ROUTER_TEMPLATE, "prefix = \"routed-\""),
        "source" => (SOURCE_TEMPLATE, "count = 100"),
        "sink" => (SINK_TEMPLATE, "prefix = \"got\""),
        other => {
            bail!(
                "--kind {other}: this version scaffolds filter, transform, router, source or sink plugins"
            )
        }
    };
    // Connectors run on their own: they name their topic and get a longer deadline.
    // A router declares every topic it may choose.
    let (timeout_ms, attach) = match kind {
        "source" | "sink" => (30_000, "\n[[attach]]\ntopic = \"events\"\n"),
        "router" => (
            100,
            "\n# Every topic route() may choose (<prefix><topic> of each attached topic);\n\
             # a route to any other topic is refused.\n[router]\ndestinations = [\"routed-events\"]\n",
        ),
        _ => (100, ""),
    };
    let dir = parent.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let crate_name = name.replace('-', "_");
    let files: Vec<(String, String)> = vec![
        (
            "Cargo.toml".into(),
            format!(
                "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
                 [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
                 [dependencies]\nserde = {{ version = \"1\", features = [\"derive\"] }}\n\
                 weir-sdk = {{ path = \".weir/sdk\" }}\n\n\
                 [dev-dependencies]\nserde_json = \"1\"\n\n\
                 # A workspace of its own: plugins build with another toolchain than the broker.\n\
                 [workspace]\n\n\
                 [profile.release]\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\npanic = \"abort\"\nstrip = true\n"
            ),
        ),
        (
            "plugin.toml".into(),
            format!(
                "name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"{crate_name}.wasm\"\n\n\
                 [limits]\ntimeout_ms = {timeout_ms}\nmemory_mb = 64\n{attach}\n[config]\n{config}\n"
            ),
        ),
        ("src/lib.rs".into(), source.to_string()),
        (".gitignore".into(), "/target\n".into()),
    ];
    for (path, text) in files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .chain(SDK_FILES.iter().map(|(p, t)| (*p, *t)))
    {
        let target = if path.starts_with("sdk/") || path.starts_with("wit/") {
            dir.join(".weir").join(path)
        } else {
            dir.join(path)
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    println!(
        "created {kind} plugin {} (build it with `weir plugin build {}`)",
        dir.display(),
        dir.display()
    );
    Ok(())
}

/// Builds the crate and writes `<out>/<name>/` with `plugin.toml` and the component,
/// in the target directory plugins share (see [`weir_toolchain::shared_target_dir`]).
pub(crate) fn build(crate_dir: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let target = weir_toolchain::shared_target_dir().unwrap_or_else(|| crate_dir.join("target"));
    build_in(crate_dir, out, &target)
}

/// [`build`] with cargo's target directory at `target` (several plugins can share
/// one, so the wasm standard library is built once).
pub(crate) fn build_in(
    crate_dir: &Path,
    out: Option<&Path>,
    target: &Path,
) -> anyhow::Result<PathBuf> {
    let manifest = Manifest::load(crate_dir)?;
    let cargo_toml = std::fs::read_to_string(crate_dir.join("Cargo.toml")).with_context(|| {
        format!(
            "{} is not a plugin crate (no Cargo.toml)",
            crate_dir.display()
        )
    })?;
    let crate_name = package_name(&cargo_toml).with_context(|| {
        format!(
            "no [package] name in {}",
            crate_dir.join("Cargo.toml").display()
        )
    })?;
    let built = weir_toolchain::cargo_build(crate_dir, target, &[])?;
    let component = weir_toolchain::componentize(built.module(&crate_name)?)?;
    let out = out.map_or_else(|| crate_dir.join("target/plugin"), Path::to_path_buf);
    let folder = out.join(&manifest.name);
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    // Component first, manifest last, each renamed into place: a broker watching
    // `out` never reads half a file.
    write_replacing(&folder.join(&manifest.component), &component)?;
    write_replacing(
        &folder.join("plugin.toml"),
        &std::fs::read(crate_dir.join("plugin.toml"))?,
    )?;
    Ok(folder)
}

/// Writes `path` through a hidden temporary file renamed over it.
fn write_replacing(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path.file_name().context("a file name")?.to_string_lossy();
    let temp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&temp, bytes).with_context(|| format!("writing {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("writing {}", path.display()))
}

fn package_name(cargo_toml: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(cargo_toml).ok()?;
    doc.get("package")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

/// Loads the plugin in the real host and runs it over the input records.
/// Where `weir plugin test` keeps compiled code between runs: the user's cache
/// folder (`$XDG_CACHE_HOME/weir/compiled`, else `~/.cache/weir/compiled`).
fn compile_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("weir").join("compiled"))
}

fn test(dir: &Path, input: &Path, topic: &str) -> anyhow::Result<()> {
    // A crate is built into a scratch folder: testing leaves nothing behind.
    let scratch = tempfile::tempdir()?;
    let folder = if dir.join("Cargo.toml").exists() {
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

const FILTER_TEMPLATE: &str = r#"//! A Weir filter plugin: keeps the events whose value contains `word`.

use weir_sdk::{Event, Filter, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    word: String,
}

/// The plugin, built once by `init` and used for every event.
pub struct Plugin {
    word: String,
}

impl Filter for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { word: config.word })
    }

    fn keep(&self, event: &Event<'_>) -> Result<bool> {
        Ok(event.value_str().is_some_and(|v| v.contains(&self.word)))
    }
}

weir_sdk::export_filter!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::testing::{run_filter, TestEvent};

    #[test]
    fn keeps_matching_events() {
        let events = [TestEvent::json(serde_json::json!("hello")), TestEvent::json(serde_json::json!("bye"))];
        assert_eq!(run_filter::<Plugin>(serde_json::json!({"word": "hello"}), &events).unwrap(), [true, false]);
    }
}
"#;

const TRANSFORM_TEMPLATE: &str = r#"//! A Weir transform plugin: adds a header to every event.

use weir_sdk::{Event, Output, Result, Transform};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    header: String,
}

/// The plugin.
pub struct Plugin {
    header: String,
}

impl Transform for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { header: config.header })
    }

    fn transform(&self, event: &Event<'_>, out: &mut Output) -> Result<()> {
        let mut headers: Vec<(&str, &[u8])> = event.headers().collect();
        headers.push((self.header.as_str(), b"yes"));
        out.emit(event.key, event.value, event.value_is_json(), headers, event.timestamp_ms);
        Ok(())
    }
}

weir_sdk::export_transform!(Plugin);
"#;

const SOURCE_TEMPLATE: &str = r#"//! A Weir source plugin: publishes `{"n": 0}`, `{"n": 1}`, ... up to `count` events.
//! Its position lives in state and is read at the start of every poll: the broker
//! commits what a poll writes there together with the events it returns.

use weir_sdk::connector::{Emitted, PollInfo, Source};
use weir_sdk::{state, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    count: u64,
}

/// The plugin.
pub struct Plugin {
    count: u64,
}

impl Source for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { count: config.count })
    }

    fn poll(&mut self, info: &PollInfo, out: &mut Emitted) -> Result<()> {
        let next = state::get(b"next")
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        let end = self.count.min(next + u64::from(info.max));
        for n in next..end {
            out.json(None, format!("{{\"n\":{n}}}").as_bytes());
        }
        state::set(b"next", end.to_string().as_bytes());
        Ok(())
    }
}

weir_sdk::export_source!(Plugin);
"#;

const SINK_TEMPLATE: &str = r#"//! A Weir sink plugin: logs every event it is handed, with its offset. A real sink
//! writes to a system granted in plugin.toml (`[grants] http` or `dirs`) through
//! `weir_sdk::connector::http` or `files`.

use weir_sdk::connector::{event_json, Delivery, Sink};
use weir_sdk::{log, Event, Result};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    prefix: String,
}

/// The plugin.
pub struct Plugin {
    prefix: String,
}

impl Sink for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { prefix: config.prefix })
    }

    fn write(&mut self, batch: &Delivery, events: &[Event<'_>]) -> Result<()> {
        for (i, e) in events.iter().enumerate() {
            log::info(&format!("{} {}", self.prefix, event_json(batch, i, e)));
        }
        Ok(())
    }
}

weir_sdk::export_sink!(Plugin);
"#;

const ROUTER_TEMPLATE: &str = r#"//! A Weir router plugin: sends each event to `<prefix><topic>`.

use weir_sdk::{BatchInfo, Event, Result, Router, Routes};

/// The `[config]` table of plugin.toml.
#[derive(serde::Deserialize)]
pub struct Config {
    prefix: String,
}

/// The plugin.
pub struct Plugin {
    prefix: String,
}

impl Router for Plugin {
    type Config = Config;

    fn init(config: Config) -> std::result::Result<Self, String> {
        Ok(Plugin { prefix: config.prefix })
    }

    fn route(&self, _event: &Event<'_>, info: &BatchInfo, routes: &mut Routes) -> Result<()> {
        routes.to(format!("{}{}", self.prefix, info.topic));
        Ok(())
    }
}

weir_sdk::export_router!(Plugin);
"#;
