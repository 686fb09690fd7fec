//! `weir serve`: configuration, logging, the listener, signals.

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use super::{LogFormat, ServeArgs};
use weir_server::Config;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Logging first, so every later step can report.
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    // Config: file (if any), then flags on top.
    let mut config = match &args.config {
        Some(path) => Config::read(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(dir) = args.plugin_dir {
        config.plugin_dir = dir;
    }
    if !args.cluster.is_empty() {
        let mut cluster = config
            .cluster
            .take()
            .unwrap_or_else(|| weir_server::ClusterConfig::with_servers(Vec::new()));
        cluster.servers = args.cluster;
        if let Some(replicas) = args.cluster_replicas {
            cluster.replicas = replicas;
        }
        config.cluster = Some(cluster);
    }
    if let Some(path) = &args.config {
        config
            .validate()
            .with_context(|| format!("config {}", path.display()))?;
    }
    weir_server::check(&config)?;
    // Storage before the listener: we only accept connections once we can serve them.
    // `run` says "serving" only once credentials, TLS and the policy are set up too.
    let opened = weir_server::open_broker(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    weir_server::run(listener, opened, &config, shutdown_signal()).await
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received; draining");
}
