//! `GET /metrics`: Prometheus (OpenMetrics text) exposition. Values are read from
//! the components that own them at scrape time (a collector), so there is no second
//! set of counters to keep in step.
//!
//! Plugins: `weir_plugin_state{plugin,state}` (1 for the current state),
//! `weir_plugin_reloads_total{plugin,result}` (`activated`, `rejected`,
//! `rolled_back`), and calls, events, call time and errors by kind per plugin.
//! While a canary runs: `weir_plugin_canary_percent{plugin,version}` and its events
//! and failed events per version (`weir_plugin_canary_events_total{plugin,version,
//! role}`, role `serving` or `candidate`), the figures it is judged by.
//!
//! Connectors: `weir_connector_state{connector,kind,state}`, records, batches,
//! errors, retries, dead letters and capability refusals (`_total`), and a sink's
//! `weir_connector_lag_records`.
//!
//! Cluster mode: `weir_cluster_node_live{node}` (1 live, 0 silent),
//! `weir_cluster_plugin_version{node,plugin,version}` (what each node serves, so a
//! rollout's convergence shows) and `weir_cluster_connector_node{connector,node}`
//! (where each connector runs).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use weir_broker::plugins::Registry;

use super::AppState;
use crate::telemetry::{Labels, Num};

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    let text = match state.telemetry.encode().await {
        Ok(t) => t,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

/// The plugin registry's, the connectors' and the ACL's figures, read at scrape time.
#[derive(Debug)]
pub struct PluginMetrics {
    /// Loaded plugins.
    pub plugins: Arc<Registry>,
    /// Connectors.
    pub connectors: weir_connect::Connectors,
    /// Authentication and authorization (denials).
    pub guard: Arc<crate::auth::Guard>,
}

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let statuses: Vec<_> = self.plugins.slots().iter().map(|s| s.status()).collect();
        let mut family = |name: &str,
                          help: &str,
                          unit: Option<&prometheus_client::registry::Unit>,
                          kind: MetricType,
                          points: Vec<(Labels<'_>, Num)>| {
            crate::telemetry::family(&mut encoder, name, help, unit, kind, points)
        };
        let per_plugin = |f: &dyn Fn(&weir_broker::plugins::PluginStatus) -> Num| {
            statuses
                .iter()
                .map(|s| (vec![("plugin", s.name.as_str())], f(s)))
                .collect::<Vec<_>>()
        };
        family(
            "weir_plugin_state",
            "1 for the plugin's current state (active, quarantined, failed, removed)",
            None,
            MetricType::Gauge,
            statuses
                .iter()
                .map(|s| {
                    (
                        vec![("plugin", s.name.as_str()), ("state", s.state)],
                        Num::Count(1),
                    )
                })
                .collect(),
        )?;
        family(
            "weir_plugin_info",
            "1 per plugin with its kind and serving version (join on `plugin` for per-version figures)",
            None,
            MetricType::Gauge,
            statuses
                .iter()
                .filter_map(|s| {
                    let kind = s.kind?.as_str();
                    let version = s.version.as_deref()?;
                    Some((
                        vec![
                            ("plugin", s.name.as_str()),
                            ("kind", kind),
                            ("version", version.get(..12).unwrap_or(version)),
                        ],
                        Num::Count(1),
                    ))
                })
                .collect(),
        )?;
        family(
            "weir_plugin_reloads",
            "Plugin version changes by result: activated, rejected, rolled_back",
            None,
            MetricType::Counter,
            statuses
                .iter()
                .flat_map(|s| {
                    [
                        ("activated", s.reloads.activated),
                        ("rejected", s.reloads.rejected),
                        ("rolled_back", s.reloads.rolled_back),
                    ]
                    .map(|(result, n)| {
                        (
                            vec![("plugin", s.name.as_str()), ("result", result)],
                            Num::Count(n),
                        )
                    })
                })
                .collect(),
        )?;
        family(
            "weir_plugin_calls",
            "Calls into the plugin",
            None,
            MetricType::Counter,
            per_plugin(&|s| Num::Count(s.counters.calls)),
        )?;
        family(
            "weir_plugin_events_in",
            "Events handed to the plugin",
            None,
            MetricType::Counter,
            per_plugin(&|s| Num::Count(s.counters.events_in)),
        )?;
        family(
            "weir_plugin_events_out",
            "Events the plugin kept, produced or routed",
            None,
            MetricType::Counter,
            per_plugin(&|s| Num::Count(s.counters.events_out)),
        )?;
        family(
            "weir_plugin_call",
            "Time spent in plugin calls",
            Some(&prometheus_client::registry::Unit::Seconds),
            MetricType::Counter,
            per_plugin(&|s| Num::Real(s.counters.time_ms / 1e3)),
        )?;
        family(
            "weir_plugin_errors",
            "Failed plugin calls by error code",
            None,
            MetricType::Counter,
            statuses
                .iter()
                .flat_map(|s| {
                    s.counters.errors.iter().map(|(kind, n)| {
                        (
                            vec![("plugin", s.name.as_str()), ("kind", kind.as_str())],
                            Num::Count(*n),
                        )
                    })
                })
                .collect(),
        )?;
        let canaries: Vec<_> = self
            .plugins
            .slots()
            .iter()
            .filter_map(|s| Some((s.name().to_string(), s.canary()?)))
            .collect();
        let short = |v: &str| v.get(..12).unwrap_or(v).to_string();
        let tags: Vec<(String, String, String)> = canaries
            .iter()
            .map(|(n, c)| (n.clone(), short(&c.serving), short(c.plugin.hash())))
            .collect();
        family(
            "weir_plugin_canary_percent",
            "Share of keys a canary's candidate version serves, in percent",
            None,
            MetricType::Gauge,
            canaries
                .iter()
                .zip(&tags)
                .map(|((_, c), (n, _, new))| {
                    (
                        vec![("plugin", n.as_str()), ("version", new.as_str())],
                        Num::Count(u64::from(c.settings.percent)),
                    )
                })
                .collect(),
        )?;
        let per_side = |failed: bool| {
            canaries
                .iter()
                .zip(&tags)
                .flat_map(|((_, c), (n, old, new))| {
                    let (serving, candidate) = c.tallies();
                    [("serving", old, serving), ("candidate", new, candidate)].map(
                        |(role, version, t)| {
                            (
                                vec![
                                    ("plugin", n.as_str()),
                                    ("version", version.as_str()),
                                    ("role", role),
                                ],
                                Num::Count(if failed { t.failed } else { t.events }),
                            )
                        },
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            "weir_plugin_canary_events",
            "Events each version handled during the running canary",
            None,
            MetricType::Counter,
            per_side(false),
        )?;
        family(
            "weir_plugin_canary_failed_events",
            "Events each version's step failed on during the running canary",
            None,
            MetricType::Counter,
            per_side(true),
        )?;
        let connectors = self.connectors.list();
        let per_connector = |f: &dyn Fn(&weir_connect::ConnectorStatus) -> Option<u64>| {
            connectors
                .iter()
                .filter_map(|c| {
                    Some((
                        vec![("connector", c.name.as_str()), ("kind", c.kind)],
                        Num::Count(f(c)?),
                    ))
                })
                .collect::<Vec<_>>()
        };
        family(
            "weir_connector_state",
            "1 for the connector's current state (running, paused, stopped, backoff, failed)",
            None,
            MetricType::Gauge,
            connectors
                .iter()
                .map(|c| {
                    (
                        vec![
                            ("connector", c.name.as_str()),
                            ("kind", c.kind),
                            ("state", c.state.as_str()),
                        ],
                        Num::Count(1),
                    )
                })
                .collect(),
        )?;
        for (name, help, f) in [
            (
                "weir_connector_records",
                "Events a source published or a sink delivered",
                (|c| Some(c.records)) as fn(&weir_connect::ConnectorStatus) -> Option<u64>,
            ),
            (
                "weir_connector_batches",
                "Successful polls with events or writes",
                |c| Some(c.batches),
            ),
            ("weir_connector_errors", "Failed polls or writes", |c| {
                Some(c.errors)
            }),
            ("weir_connector_retries", "Attempts after a failure", |c| {
                Some(c.retries)
            }),
            (
                "weir_connector_dead_lettered",
                "Events a sink sent to its dead-letter topic",
                |c| Some(c.dead_lettered),
            ),
            (
                "weir_connector_capability_refusals",
                "Calls refused because they were outside the connector's grants",
                |c| Some(c.capability_refusals),
            ),
        ] {
            family(name, help, None, MetricType::Counter, per_connector(&f))?;
        }
        family(
            "weir_connector_lag_records",
            "Records a sink has not delivered yet, over its partitions",
            None,
            MetricType::Gauge,
            per_connector(&|c| c.lag_records),
        )?;
        family(
            "weir_acl_denials",
            "Requests refused by the ACL policy (403) or for want of one (503)",
            None,
            MetricType::Counter,
            vec![(vec![], Num::Count(self.guard.denials()))],
        )?;
        Ok(())
    }
}

/// The cluster as this node sees it, read at scrape time.
#[derive(Debug)]
pub struct ClusterMetrics {
    /// This node's part in the cluster.
    pub cluster: weir_broker::cluster::Cluster,
}

impl Collector for ClusterMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let nodes = self.cluster.nodes();
        let mut family = |name: &str, help: &str, points: Vec<(Labels<'_>, Num)>| {
            crate::telemetry::family(&mut encoder, name, help, None, MetricType::Gauge, points)
        };
        family(
            "weir_cluster_node_live",
            "1 for a Weir node whose report moved within the node timeout, 0 for a silent one",
            nodes
                .iter()
                .map(|v| {
                    (
                        vec![("node", v.report.node.as_str())],
                        Num::Count(u64::from(v.live)),
                    )
                })
                .collect(),
        )?;
        family(
            "weir_cluster_plugin_version",
            "1 for the version (first 12 hex digits) each node serves of each plugin",
            nodes
                .iter()
                .flat_map(|v| {
                    v.report.plugins.iter().map(|(plugin, version)| {
                        (
                            vec![
                                ("node", v.report.node.as_str()),
                                ("plugin", plugin.as_str()),
                                ("version", &version[..version.len().min(12)]),
                            ],
                            Num::Count(1),
                        )
                    })
                })
                .collect(),
        )?;
        family(
            "weir_cluster_connector_node",
            "1 for the node each connector runs on",
            nodes
                .iter()
                .filter(|v| v.live)
                .flat_map(|v| {
                    v.report.connectors.keys().map(|c| {
                        (
                            vec![("connector", c.as_str()), ("node", v.report.node.as_str())],
                            Num::Count(1),
                        )
                    })
                })
                .collect(),
        )
    }
}
