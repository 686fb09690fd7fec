//! Each node's side of a deployment: make the registry serve what the cluster
//! deploys, through the same load, check and activation as a local reload, and say
//! in the node's report what serves and what was refused.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{Cluster, Rejection};
use crate::error::BrokerError;
use crate::plugins::{HistoryOrigin, Outcome, Reloader};
use weir_storage::StorageError;

/// How often the deployments are compared with the registry: a scan of a few keys
/// in this node's in-memory view, cheap enough to keep a rollout's wait short.
const EVERY: Duration = Duration::from_millis(25);

/// Follows the cluster's deployments until the returned task is aborted.
pub fn follow(cluster: Cluster, reloader: Arc<Reloader>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Per plugin, the deployment (key version) last tried, so a version this node
        // refused is not tried again until the deployment changes.
        let mut tried: HashMap<String, u64> = HashMap::new();
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
                let refusal = match apply(&cluster, &reloader, &name, &version, serving).await {
                    Applied::Later(why) => {
                        // Not an answer: the rollout sees this node pending and the
                        // next round tries again.
                        tracing::debug!(plugin = %name, reason = %why, "fetching a deployed version failed for now; retrying");
                        continue;
                    }
                    Applied::Served => None,
                    Applied::Refused(reason) => Some(reason),
                };
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
