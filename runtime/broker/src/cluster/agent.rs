//! Each node's side of a deployment: make the registry serve what the cluster
//! deploys, through the same load, check and activation as a local reload, and say
//! in the node's report what serves and what was refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Cluster, Rejection};
use crate::error::BrokerError;
use crate::plugins::{HistoryOrigin, Outcome, Reloader};
use weir_storage::StorageError;

/// How often the deployments are compared with the registry: a scan of a few keys
/// in this node's in-memory view, cheap enough to keep a rollout's wait short.
const EVERY: Duration = Duration::from_millis(25);

/// How long a node keeps retrying to read a deployed version's files while the
/// replicated log is unavailable before it refuses the version.
const GIVE_UP_AFTER: Duration = Duration::from_secs(120);

/// Retries of one deployment whose files could not be read yet.
struct Retrying {
    deployment: u64,
    since: Instant,
    next: Instant,
    backoff: Duration,
}

impl Retrying {
    fn new(deployment: u64, now: Instant) -> Self {
        Retrying {
            deployment,
            since: now,
            next: now,
            backoff: Duration::from_millis(100),
        }
    }

    /// Whether to read again now; notes the try (100 ms, doubling to 5 s).
    fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.backoff;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(5));
        true
    }
}

/// Follows the cluster's deployments until the returned task is aborted.
pub fn follow(cluster: Cluster, reloader: Arc<Reloader>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Per plugin, the deployment (key version) last tried, so a version this node
        // refused is not tried again until the deployment changes.
        let mut tried: HashMap<String, u64> = HashMap::new();
        let mut retrying: HashMap<String, Retrying> = HashMap::new();
        loop {
            for (name, deployment, generation) in cluster.deployments() {
                reloader.claim(&name, deployment.version.clone());
                let serving = reloader
                    .registry()
                    .get(&name)
                    .and_then(|s| s.current())
                    .map(|p| p.hash().to_string());
                let Some(version) = deployment.version else {
                    // A first rollout taken back: detach the refused version where
                    // it serves, never a node-local version of the name.
                    let refused = deployment.rejected.as_ref().map(|r| &r.version);
                    if serving.is_some() && serving.as_ref() == refused {
                        reloader.detach(&name);
                    }
                    continue;
                };
                if serving.as_deref() == Some(version.as_str())
                    || tried.get(&name) == Some(&generation)
                {
                    continue;
                }
                let now = Instant::now();
                let retry = retrying
                    .entry(name.clone())
                    .and_modify(|r| {
                        if r.deployment != generation {
                            *r = Retrying::new(generation, now);
                        }
                    })
                    .or_insert_with(|| Retrying::new(generation, now));
                if !retry.due(now) {
                    continue;
                }
                let refusal = match apply(&cluster, &reloader, &name, &version, serving).await {
                    Applied::Later(why) if now.duration_since(retry.since) < GIVE_UP_AFTER => {
                        // Not an answer yet: the rollout sees this node pending, and
                        // it reads again after a backoff.
                        tracing::debug!(plugin = %name, reason = %why, "reading a deployed version failed for now; retrying");
                        continue;
                    }
                    Applied::Later(why) => Some(format!(
                        "its files could not be read for {} s: {why}",
                        GIVE_UP_AFTER.as_secs()
                    )),
                    Applied::Served => None,
                    Applied::Refused(reason) => Some(reason),
                };
                retrying.remove(&name);
                tried.insert(name.clone(), generation);
                cluster.update_report(|r| match refusal {
                    Some(reason) => {
                        r.rejected.insert(
                            name.clone(),
                            Rejection {
                                version: version.clone(),
                                reason,
                                deployment: generation,
                            },
                        );
                    }
                    None => {
                        r.rejected.remove(&name);
                    }
                });
            }
            let serving: std::collections::BTreeMap<String, String> = reloader
                .registry()
                .slots()
                .iter()
                .filter_map(|s| Some((s.name().to_string(), s.current()?.hash().to_string())))
                .collect();
            cluster.update_report(|r| r.plugins = serving);
            tokio::time::sleep(EVERY).await;
        }
    })
}

/// What became of a deployed version on this node.
enum Applied {
    Served,
    /// This node will not serve it, and why.
    Refused(String),
    /// Its files could not be read for now (the replicated log is electing a leader
    /// or just started): no answer yet, try again.
    Later(String),
}

/// Loads and activates `version` of `name`.
async fn apply(
    cluster: &Cluster,
    reloader: &Arc<Reloader>,
    name: &str,
    version: &str,
    serving: Option<String>,
) -> Applied {
    let (manifest, component) = match cluster.fetch_version(name, version).await {
        Ok(files) => files,
        Err(e @ BrokerError::Storage(StorageError::Unavailable(_))) => {
            return Applied::Later(e.to_string());
        }
        Err(e) => return Applied::Refused(e.to_string()),
    };
    let (r, n) = (reloader.clone(), name.to_string());
    let outcome = tokio::task::spawn_blocking(move || {
        r.deploy_from(
            HistoryOrigin::Cluster,
            &n,
            manifest,
            component,
            serving.as_deref(),
        )
    })
    .await;
    match outcome {
        Ok(Outcome::Activated { .. } | Outcome::Unchanged { .. }) => Applied::Served,
        Ok(Outcome::Rejected { error, .. }) => Applied::Refused(error.to_string()),
        Ok(other) => Applied::Refused(format!("unexpected outcome {other:?}")),
        Err(e) => Applied::Refused(format!("loading did not finish: {e}")),
    }
}
