//! weir-server: the HTTP server: the API, authentication and authorization, the
//! listener, TLS, metrics and the configuration. The `weir` command line (weir-cli)
//! runs it.
//!
//! - [`api`]: routes and handlers; errors as problem details.
//! - [`wire`]: JSON shapes of records in and out (the only crate that knows them).
//! - [`config`]: the `weir.toml` file.
//! - [`auth`]: authentication (tokens, JWT, client certificates) and authorization
//!   (the ACL policy plugin).
//!
//! [`run`] takes a bound listener and a shutdown future, so tests bind `127.0.0.1:0`
//! and stop the server themselves.

pub mod api;
pub mod auth;
pub mod config;
pub mod kafka;
pub mod listen;
pub mod telemetry;
pub mod tls;
pub mod wire;

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use std::sync::Arc;
use tokio::net::TcpListener;

use weir_broker::pipeline::PipelineOptions;
use weir_broker::plugin_state::StoredPluginState;
use weir_broker::plugins::WatchOptions;
use weir_broker::plugins::{
    Engine, GrantBounds, HealthPolicy, ProbationPolicy, Registry, Reloader,
};
use weir_broker::{Broker, BrokerOptions, JetStreamLog, Store, StoreOptions};

pub use config::{ClusterConfig, Config};

/// An opened broker and the plugin directory it follows.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The broker.
    pub broker: Broker,
    /// The plugin directory's reloader (deploys and rollbacks go through it).
    pub plugins: Arc<Reloader>,
}

/// One line that names the damaged store and the way out.
fn store_open_error(dir: &std::path::Path, e: weir_broker::StorageError) -> anyhow::Error {
    if e.is_damage() {
        let d = dir.display();
        anyhow::anyhow!(
            "the store in {d} is damaged and was not opened ({e}); take a copy of {d}, then run \
             `weir store verify {d}` to list the damaged ranges and `weir store recover {d}` \
             to truncate them to the last good batch (it reports what is dropped), or restore \
             {d} from a backup"
        )
    } else {
        anyhow::Error::new(e).context(format!("opening the store in {}", dir.display()))
    }
}

/// The log the config names: the embedded store in `data_dir`, or the cluster.
async fn open_log(config: &Config) -> anyhow::Result<Arc<dyn weir_broker::Log>> {
    if let Some(cluster) = &config.cluster {
        let options = cluster.options()?;
        let servers = options.servers.join(",");
        let log = JetStreamLog::open(options).await.map_err(|e| {
            anyhow::Error::new(e).context(format!("opening the cluster log at {servers}"))
        })?;
        return Ok(Arc::new(log));
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = Store::open(
        &config.data_dir,
        StoreOptions {
            cleaner_interval: Duration::from_millis(config.storage.cleaner_interval_ms.max(10)),
            cache_bytes: config.storage.cache_bytes,
            min_free_bytes: config.storage.min_free_bytes,
            ..StoreOptions::default()
        },
    )
    .map_err(|e| store_open_error(&config.data_dir, e))?;
    Ok(Arc::new(store))
}

/// Checks everything in `config` that can refuse it, keys and certificates included,
/// so a bad setting stops the broker before it opens its port or says it serves.
pub fn check(config: &Config) -> anyhow::Result<()> {
    config.validate()?;
    auth::Authenticator::new(&config.auth)?;
    if let Some(t) = &config.tls {
        tls::acceptor(t)?;
    }
    Ok(())
}

/// Opens the log the config names (the embedded store in `config.data_dir`, or the
/// cluster), loads the plugin directory and builds the broker.
pub async fn open_broker(config: &Config) -> anyhow::Result<Opened> {
    std::fs::create_dir_all(&config.plugin_dir)
        .with_context(|| format!("creating plugin dir {}", config.plugin_dir.display()))?;
    let log = open_log(config).await?;
    // Compiled plugin code survives restarts beside the data (wasmtime checks it
    // belongs to this engine before using it).
    let cache = config
        .plugins
        .compile_cache_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("compiled"));
    let engine = Engine::with_compile_cache(&cache)
        .map_err(|e| anyhow::anyhow!("starting the WASM engine: {e}"))?;
    let p = &config.plugins;
    let registry = Arc::new(
        Registry::new(
            engine,
            Arc::new(StoredPluginState::new(log.clone())),
            HealthPolicy {
                max_failures: p.quarantine_failures.max(1),
                window: Duration::from_millis(p.quarantine_window_ms),
                initial_backoff: Duration::from_millis(p.quarantine_backoff_ms),
                max_backoff: Duration::from_millis(
                    p.quarantine_max_backoff_ms.max(p.quarantine_backoff_ms),
                ),
            },
        )
        .with_probation(ProbationPolicy {
            events: p.probation_events,
            max_error_rate: p.rollback_error_rate,
        }),
    );
    // The broker's own files are never grantable: its data, its plugins, and the
    // keys it authenticates with.
    let mut reserved = vec![config.data_dir.as_path(), config.plugin_dir.as_path()];
    if let Some(tls) = &config.tls {
        reserved.extend([tls.cert.as_path(), tls.key.as_path()]);
        reserved.extend(tls.client_ca.as_deref());
    }
    if let Some(jwt) = &config.auth.jwt {
        reserved.extend(jwt.rs256_public_key.as_deref());
        reserved.extend(jwt.es256_public_key.as_deref());
    }
    let bounds = GrantBounds::new(
        &config.connectors.allowed_dirs,
        &config.connectors.allowed_hosts,
        &reserved,
    );
    let plugins = Reloader::new(registry.clone(), &config.plugin_dir, bounds);
    let (loaded, failed) = plugins
        .scan()
        .with_context(|| format!("reading plugin dir {}", config.plugin_dir.display()))?;
    tracing::info!(loaded, failed, plugin_dir = %config.plugin_dir.display(), "plugins loaded");
    let pipelines = PipelineOptions {
        missing_topic: config.pipelines.missing_topic,
        auto_create_partitions: config.pipelines.auto_create_partitions.max(1),
        dead_letter_partitions: config.pipelines.dead_letter_partitions.max(1),
    };
    let broker = Broker::new(
        log,
        BrokerOptions {
            max_record_bytes: config.limits.max_record_bytes,
            session_timeout: Duration::from_millis(config.groups.session_timeout_ms),
            idempotence: config.idempotence.options(),
        },
    )
    .with_plugins(registry, pipelines);
    Ok(Opened { broker, plugins })
}

/// Serves the API on `listener` until `shutdown` resolves, then drains in-flight
/// requests (for at most 5 s) and stops the store with a final flush. Follows the
/// plugin directory meanwhile (unless `[plugins] watch = false`).
pub async fn run(
    listener: TcpListener,
    opened: Opened,
    config: &Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Opened { broker, plugins } = opened;
    let _watch = if config.plugins.watch {
        let options = WatchOptions {
            debounce: Duration::from_millis(config.plugins.reload_debounce_ms),
        };
        Some(
            plugins
                .watch(options)
                .with_context(|| format!("watching plugin dir {}", config.plugin_dir.display()))?,
        )
    } else {
        tracing::info!("plugin directory not watched ([plugins] watch = false)");
        None
    };
    let guard = Arc::new(auth::Guard::new(config, plugins.registry().clone(), &broker).await?);
    let cluster = config.cluster.as_ref().and_then(|c| {
        let addr = listener.local_addr().ok()?;
        weir_broker::cluster::Cluster::new(
            broker.log().clone(),
            &c.node_id(addr.port()),
            &format!("http://{addr}"),
            Duration::from_millis(c.node_timeout_ms),
        )
    });
    // The cluster's deployments first, so connectors start on the versions it serves.
    let coordination = cluster.as_ref().map(|c| {
        tracing::info!(node = c.node(), "joining the cluster's Weir nodes");
        (
            c.start_heartbeat(),
            weir_broker::cluster::agent::follow(c.clone(), plugins.clone()),
        )
    });
    let connectors = weir_connect::Connectors::start(
        broker.clone(),
        plugins.registry().clone(),
        cluster.clone(),
    );
    let processors = weir_processors::Processors::start(
        broker.clone(),
        plugins.registry().clone(),
        cluster.is_some(),
    );
    let mut collectors: Vec<Box<dyn prometheus_client::collector::Collector>> =
        vec![Box::new(api::metrics::PluginMetrics {
            plugins: plugins.registry().clone(),
            connectors: connectors.clone(),
            guard: guard.clone(),
        })];
    collectors.push(Box::new(api::processor_metrics::ProcessorMetrics {
        processors: processors.clone(),
    }));
    if let Some(cluster) = &cluster {
        collectors.push(Box::new(api::metrics::ClusterMetrics {
            cluster: cluster.clone(),
        }));
    }
    let telemetry = Arc::new(telemetry::Telemetry::new(
        Arc::new(telemetry::BrokerMetrics::new(broker.clone())),
        collectors,
    ));
    let state = api::AppState::new(api::Shared {
        telemetry,
        broker: broker.clone(),
        connectors: connectors.clone(),
        processors: processors.clone(),
        replays: Default::default(),
        plugins,
        guard: guard.clone(),
        limits: config.limits,
        cluster: cluster.clone(),
    });
    let app = api::router(state);
    let tls = match &config.tls {
        Some(tls_config) => {
            tracing::info!(
                mtls = tls_config.client_ca.is_some(),
                "serving HTTPS (TLS via rustls)"
            );
            Some(tls::acceptor(tls_config)?)
        }
        None => None,
    };
    let kafka = match &config.kafka {
        Some(k) => Some(kafka::start(k, config, broker.clone(), guard).await?),
        None => None,
    };
    // Only now is everything that can refuse the configuration behind us: the log
    // never says "serving" for a broker that then exits.
    tracing::info!(
        listen = %listener.local_addr()?,
        kafka = kafka.as_ref().map(|k| tracing::field::display(k.addr)),
        log = %match &config.cluster {
            Some(c) => format!("cluster {}", c.servers.join(",")),
            None => format!("embedded {}", config.data_dir.display()),
        },
        plugin_dir = %config.plugin_dir.display(),
        "weir is serving"
    );
    listen::serve(listener, tls, app, config.limits, shutdown).await;
    if let Some(k) = kafka {
        k.stop().await;
    }
    connectors.shutdown().await;
    processors.shutdown().await;
    if let (Some(cluster), Some((heartbeat, agent))) = (&cluster, coordination) {
        agent.abort();
        heartbeat.abort();
        cluster.leave().await;
    }
    broker.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}
