//! The `weir` command line.

mod bench;
mod client;
mod connector;
mod consume;
mod docs;
mod doctor;
mod group;
pub(crate) mod plugin;
mod processor;
mod produce;
mod serve;
mod store;
mod top;
mod topic;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::Client;

/// Weir: a WebAssembly-extensible event bus.
#[derive(Debug, Parser)]
#[command(
    name = "weir",
    version,
    about = "Weir: a WebAssembly-extensible event bus",
    after_help = "Examples:\n  weir serve\n  weir topic create orders --partitions 3\n  echo '{\"item\":\"tea\"}' | weir produce orders\n  weir consume orders --follow\n  weir doctor"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where a client subcommand finds the server.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the Weir server.
    #[arg(
        long,
        env = "WEIR_URL",
        default_value = "http://127.0.0.1:9400",
        global = true
    )]
    pub url: String,
    /// API token sent as `Authorization: Bearer` (when the server has auth on).
    #[arg(long, env = "WEIR_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
}

impl Remote {
    /// A client for this server, with the token if one is set.
    pub fn client(&self) -> anyhow::Result<Client> {
        Client::with_token(&self.url, self.token.as_deref())
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    #[command(
        after_help = "Examples:\n  weir serve\n  weir serve --listen 0.0.0.0:9400 --data-dir /var/lib/weir --plugin-dir /etc/weir/plugins\n  weir serve --config weir.toml --log-format json"
    )]
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    #[command(
        after_help = "Examples:\n  weir topic create orders --partitions 3\n  weir topic create users --cleanup-policy compact\n  weir topic list\n  weir topic describe orders\n  weir topic delete orders"
    )]
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, describe, reset and delete consumer groups.
    #[command(
        after_help = "Examples:\n  weir group list\n  weir group describe billing\n  weir group reset billing --topic orders --to earliest\n  weir group delete billing"
    )]
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, inspect, pause, resume, stop and start source and sink connectors.
    #[command(
        after_help = "Examples:\n  weir connector list\n  weir connector status orders-to-http\n  weir connector pause orders-to-http\n  weir connector resume orders-to-http"
    )]
    Connector {
        #[command(subcommand)]
        command: connector::ConnectorCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, inspect, pause, resume and reset stream processors, and read their state.
    #[command(
        after_help = "Examples:\n  weir processor list\n  weir processor status window-count\n  weir processor reset window-count --to latest\n  weir processor state dedup --prefix seen/"
    )]
    Processor {
        #[command(subcommand)]
        command: processor::ProcessorCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Scaffold, build, test, deploy and roll back WASM plugins.
    #[command(
        after_help = "Examples:\n  weir plugin new shouty --kind transform\n  weir plugin build shouty --out weir-plugins\n  weir plugin test weir-plugins/shouty --input events.ndjson\n  weir plugin deploy weir-plugins/shouty\n  weir plugin watch shouty --plugin-dir weir-plugins\n  weir plugin versions shouty\n  weir plugin rollback shouty"
    )]
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Publish stdin to a topic, one value per line.
    #[command(
        after_help = "Examples:\n  weir produce orders --key customer-7 < orders.ndjson\n  echo '{\"item\":\"tea\"}' | weir produce orders\n  weir produce metrics --acks none --batch 5000 < samples.ndjson"
    )]
    Produce(produce::ProduceArgs),
    /// Print a topic's records as NDJSON.
    #[command(
        after_help = "Examples:\n  weir consume orders\n  weir consume orders --from latest --follow\n  weir consume orders --partition 1 --from 42 -n 10\n  weir consume orders --group billing --follow"
    )]
    Consume(consume::ConsumeArgs),
    /// Measure produce and fetch throughput and latency over HTTP.
    #[command(
        after_help = "Examples:\n  weir bench --seconds 3\n  weir bench --url http://10.0.0.5:9400 --batch 100 --concurrency 8\n  weir bench reload\n  weir bench connectors --records 1000000"
    )]
    Bench(bench::BenchArgs),
    /// A terminal dashboard: topics with rates, group lag, plugins, connectors, health.
    #[command(
        after_help = "Examples:\n  weir top\n  weir top --url http://10.0.0.5:9400 --interval 5\n  weir top --once"
    )]
    Top(top::TopArgs),
    /// Check the data dir, disk space, plugin directory and plugin toolchain; say what to fix.
    Doctor(doctor::DoctorArgs),
    /// Verify a stopped broker's store batch by batch, or truncate damage away.
    #[command(
        after_help = "Examples:\n  weir store verify /var/lib/weir\n  weir store recover /var/lib/weir"
    )]
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  weir completions bash > /etc/bash_completion.d/weir\n  weir completions zsh > ~/.zfunc/_weir"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages for weir and every subcommand.
    #[command(after_help = "Examples:\n  weir man --out /usr/local/share/man/man1")]
    Man(docs::ManArgs),
}

/// `weir serve` options; each overrides the config file.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9400].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory [default: ./weir-data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Plugin directory [default: ./weir-plugins].
    #[arg(long)]
    pub plugin_dir: Option<PathBuf>,
    /// TOML config file (unknown keys are errors).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cluster mode: serve a NATS JetStream cluster's log instead of the embedded
    /// store, e.g. `nats://h1:4222,nats://h2:4222` (the `[cluster]` section's
    /// servers; its other settings keep their values or defaults).
    #[arg(long, value_delimiter = ',', value_name = "URLS")]
    pub cluster: Vec<String>,
    /// Copies of the cluster's stream [default: 3].
    #[arg(long, requires = "cluster")]
    pub cluster_replicas: Option<usize>,
    /// Log filter, e.g. `info` or `weir=debug` (also `RUST_LOG`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
    /// Log lines as human-readable text or as JSON objects (one per line).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How `weir serve` writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

impl Cli {
    /// Runs the chosen subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve::serve(args).await,
            Command::Topic { command, remote } => topic::run(command, &remote.client()?).await,
            Command::Group { command, remote } => group::run(command, &remote.client()?).await,
            Command::Connector { command, remote } => {
                connector::run(command, &remote.client()?).await
            }
            Command::Processor { command, remote } => {
                processor::run(command, &remote.client()?).await
            }
            Command::Plugin { command, remote } => plugin::run(command, &remote).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Top(args) => top::run(args).await,
            Command::Doctor(args) => doctor::run(args),
            Command::Store { command } => store::run(command),
            Command::Completions { shell } => docs::completions(shell),
            Command::Man(args) => docs::man(args),
        }
    }
}
