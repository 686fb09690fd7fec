//! The `weir` command line.

mod bench;
mod client;
mod connector;
mod consume;
mod group;
pub(crate) mod plugin;
mod produce;
mod serve;
mod topic;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use client::Client;

/// Weir: a WebAssembly-extensible event bus.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
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
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, describe, reset and delete consumer groups.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// List, inspect, pause, resume, stop and start source and sink connectors.
    Connector {
        #[command(subcommand)]
        command: connector::ConnectorCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Scaffold, build, test, deploy and roll back WASM plugins.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
        #[command(flatten)]
        remote: Remote,
    },
    /// Publish stdin to a topic, one value per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records as NDJSON.
    Consume(consume::ConsumeArgs),
    /// Measure produce and fetch throughput and latency over HTTP.
    Bench(bench::BenchArgs),
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
    /// Log filter, e.g. `info` or `weir=debug` (also `RUST_LOG`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log: String,
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
            Command::Plugin { command, remote } => plugin::run(command, &remote).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    }
}
