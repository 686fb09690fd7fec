//! A topic's chain, resolved per request from its configured steps and the plugins
//! attached to it, each pinned to the version current at that moment: a request
//! runs on one version of every plugin from start to end.

use std::sync::Arc;

use dashmap::DashMap;
use weir_host::registry::canary::Canary;
use weir_host::{Kind, Plugin, Registry, Slot};
use weir_storage::{Log, Topic};

use super::spec::{OnError, PipelineOptions, StepSpec};
use crate::error::{BrokerError, Result};

/// One step of a resolved chain.
#[derive(Debug, Clone)]
pub struct Step {
    /// The plugin's name.
    pub name: String,
    /// Its slot, if a plugin of that name was ever installed.
    pub slot: Option<Arc<Slot>>,
    /// The version this request runs on; `None` when no version is loaded (every
    /// event then fails with `plugin_unavailable` under the step's policy).
    pub plugin: Option<Arc<Plugin>>,
    /// A canary beside that version: its candidate runs on the keys it takes.
    pub canary: Option<Arc<Canary>>,
    /// The error policy.
    pub on_error: OnError,
    /// Where dead letters of this step go.
    pub dead_letter_topic: String,
    /// For a configured step, the destinations approved when it was configured
    /// (see [`StepSpec::destinations`]); `None` for manifest attachments, whose
    /// declared destinations were checked at deploy.
    pub approved: Option<Vec<String>>,
}

impl Step {
    /// Whether this step may route to `topic`: the version that chose it (the
    /// serving one, or the canary's `candidate`) declares it and, for a configured
    /// step, it was approved.
    pub fn may_route_to(&self, topic: &str, candidate: bool) -> bool {
        let version = match (&self.canary, candidate) {
            (Some(c), true) => Some(&c.plugin),
            _ => self.plugin.as_ref(),
        };
        let declared = version
            .and_then(|p| p.manifest().router.as_ref())
            .is_some_and(|r| r.allows(topic));
        declared
            && self
                .approved
                .as_ref()
                .is_none_or(|a| a.iter().any(|t| t == topic))
    }
}

impl Step {
    /// The plugin's kind, when a version is loaded.
    pub fn kind(&self) -> Option<Kind> {
        self.plugin.as_ref().map(|p| p.kind())
    }
}

/// A topic's resolved chain: filters and transforms in order, then at most one
/// router.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The steps, router last.
    pub steps: Vec<Step>,
    /// `name@hash` of every step's serving version, comma-separated: the lineage
    /// header's value.
    pub lineage: String,
}

impl Chain {
    /// Whether there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether a step runs a canary: outputs then carry their own lineage.
    pub fn has_canary(&self) -> bool {
        self.steps.iter().any(|s| s.canary.is_some())
    }

    /// The lineage of an output on which the steps in `candidates` (bit per step)
    /// ran their canary's candidate.
    pub fn lineage_of(&self, candidates: u64) -> String {
        if candidates == 0 {
            return self.lineage.clone();
        }
        self.steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match &s.canary {
                Some(c) if candidates & (1 << i) != 0 => Some(c.plugin.version_tag()),
                _ => s.plugin.as_ref().map(|p| p.version_tag()),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The canary of `slot` beside `serving`, if one runs beside that very version.
fn canary_beside(slot: Option<&Arc<Slot>>, serving: Option<&Arc<Plugin>>) -> Option<Arc<Canary>> {
    let canary = slot?.canary()?;
    (Some(canary.serving.as_str()) == serving.map(|p| p.hash()) && !canary.decided())
        .then_some(canary)
}

/// The pipelines of all topics: configured steps (kept in the store's key-value
/// tree, per topic id, so a re-created topic starts without them) and the registry.
#[derive(Debug)]
pub struct Pipelines {
    log: Arc<dyn Log>,
    registry: Arc<Registry>,
    options: PipelineOptions,
    configured: DashMap<u32, Arc<Vec<StepSpec>>>,
    /// Chains running at once, at most one per core (see [`Pipelines::run_slot`]).
    running: Arc<tokio::sync::Semaphore>,
}

fn config_key(topic: &Topic) -> Vec<u8> {
    let mut k = b"pipeline/".to_vec();
    k.extend_from_slice(&topic.id().to_be_bytes());
    k
}

impl Pipelines {
    /// Pipelines kept in `log` with the plugins of `registry`.
    pub fn new(log: Arc<dyn Log>, registry: Arc<Registry>, options: PipelineOptions) -> Self {
        Self {
            log,
            registry,
            options,
            configured: DashMap::new(),
            running: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
        }
    }

    /// A permit to run a chain. Chains are CPU-bound: running more at once than
    /// there are cores only interleaves them, and every extra live plugin instance
    /// is another linear memory competing for the caches. Measured on 2 cores with 8
    /// concurrent publishers: json-filter + redact went from 49% to N% of the
    /// no-plugin throughput.
    pub async fn run_slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.running
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The settings.
    pub fn options(&self) -> PipelineOptions {
        self.options
    }

    /// The steps configured for `topic` (not counting manifest attachments).
    pub fn configured(&self, topic: &Topic) -> Result<Arc<Vec<StepSpec>>> {
        if let Some(steps) = self.configured.get(&topic.id()) {
            return Ok(steps.clone());
        }
        let steps = match self.log.kv_get(&config_key(topic))? {
            Some(json) => serde_json::from_slice(&json).map_err(|e| {
                BrokerError::Storage(weir_storage::StorageError::corrupt(format!(
                    "pipeline of topic '{}': {e}",
                    topic.name()
                )))
            })?,
            None => Vec::new(),
        };
        let steps = Arc::new(steps);
        self.configured.insert(topic.id(), steps.clone());
        Ok(steps)
    }

    /// Replaces the configured steps of `topic`, durably. Plugins need not be
    /// installed yet (until they are, their steps apply their error policy).
    pub async fn set_configured(&self, topic: &Topic, steps: Vec<StepSpec>) -> Result<()> {
        for s in &steps {
            if s.plugin.is_empty() {
                return Err(BrokerError::InvalidRequest(
                    "a pipeline step needs a plugin name".into(),
                ));
            }
            if let Some(t) = &s.dead_letter_topic {
                weir_storage::config::validate_topic_name(t)?;
            }
        }
        let kinds: Vec<Option<Kind>> = steps
            .iter()
            .map(|s| {
                self.registry
                    .get(&s.plugin)
                    .and_then(|slot| slot.current())
                    .map(|p| p.kind())
            })
            .collect();
        if let Some(i) = kinds.iter().position(|k| {
            k.is_some_and(|k| !matches!(k, Kind::Filter | Kind::Transform | Kind::Router))
        }) {
            return Err(BrokerError::InvalidRequest(format!(
                "plugin '{}' is not a filter, transform or router",
                steps[i].plugin
            )));
        }
        let routers = kinds.iter().filter(|k| **k == Some(Kind::Router)).count();
        if routers > 1 || (routers == 1 && kinds.last() != Some(&Some(Kind::Router))) {
            return Err(BrokerError::InvalidRequest(
                "a pipeline has at most one router, and it is the last step".into(),
            ));
        }
        let key = config_key(topic);
        let value = if steps.is_empty() {
            None
        } else {
            Some(serde_json::to_vec(&steps).expect("steps serialise"))
        };
        self.log.kv_write(vec![(key, value)]).await?;
        self.configured.insert(topic.id(), Arc::new(steps));
        Ok(())
    }

    /// Forgets the configured steps of a deleted topic.
    pub async fn forget(&self, topic: &Topic) -> Result<()> {
        self.configured.remove(&topic.id());
        self.log.kv_write(vec![(config_key(topic), None)]).await?;
        Ok(())
    }

    /// The chain a request to `topic` runs now: configured steps, then manifest
    /// attachments by plugin name, router moved last. Two routers are an error
    /// (`pipeline_invalid`): which one should decide is not ours to guess.
    pub fn chain(&self, topic: &Topic) -> Result<Chain> {
        let configured = self.configured(topic)?;
        let attached = self.registry.attached(topic.name(), "produce");
        if configured.is_empty() && attached.is_empty() {
            return Ok(Chain::default());
        }
        let default_dlq = format!("{}.dlq", topic.name());
        let mut steps: Vec<Step> = Vec::with_capacity(configured.len() + attached.len());
        for spec in configured.iter() {
            let slot = self.registry.get(&spec.plugin);
            let plugin = slot.as_ref().and_then(|s| s.current());
            steps.push(Step {
                name: spec.plugin.clone(),
                canary: canary_beside(slot.as_ref(), plugin.as_ref()),
                plugin,
                slot,
                on_error: spec.on_error,
                dead_letter_topic: spec
                    .dead_letter_topic
                    .clone()
                    .unwrap_or_else(|| default_dlq.clone()),
                approved: spec.destinations.clone(),
            });
        }
        for (slot, a) in attached {
            if configured.iter().any(|s| s.plugin == slot.name()) {
                continue; // configured explicitly: that step wins
            }
            let plugin = slot.current();
            steps.push(Step {
                name: slot.name().to_string(),
                canary: canary_beside(Some(&slot), plugin.as_ref()),
                plugin,
                slot: Some(slot),
                on_error: OnError::parse(&a.on_error)?,
                dead_letter_topic: a.dead_letter_topic.unwrap_or_else(|| default_dlq.clone()),
                approved: None,
            });
        }
        // Stable: routers go last, the others keep their order.
        steps.sort_by_key(|s| s.kind() == Some(Kind::Router));
        let routers = steps
            .iter()
            .filter(|s| s.kind() == Some(Kind::Router))
            .count();
        if routers > 1 {
            let names: Vec<&str> = steps
                .iter()
                .filter(|s| s.kind() == Some(Kind::Router))
                .map(|s| s.name.as_str())
                .collect();
            return Err(BrokerError::PipelineInvalid(format!(
                "topic '{}' has {routers} routers ({}); a pipeline has at most one",
                topic.name(),
                names.join(", ")
            )));
        }
        // Which steps ran a candidate is a bit per step in a `u64`.
        for s in steps.iter_mut().skip(64) {
            s.canary = None;
        }
        let lineage = steps
            .iter()
            .filter_map(|s| s.plugin.as_ref().map(|p| p.version_tag()))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Chain { steps, lineage })
    }
}
