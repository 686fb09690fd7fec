//! The plugin version the cluster serves, per name.
//!
//! A deploy through any node stores the version's files as a blob named by its
//! content hash, then sets the name's [`Deployment`] with compare-and-set. Every
//! node's [`agent`](super::agent) loads it through the same path as a local reload
//! and says in its report whether it serves it or refused it. [`Cluster::roll_out`]
//! waits for every live node's answer: a version any node refused is taken back on
//! all of them (the deployment returns to the version before), so a rollout is never
//! left half done without an error saying where and why.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir_storage::StorageError;

use super::Cluster;
use crate::{BrokerError, Result};

const PREFIX: &str = "cluster/plugin/";

/// How often a rollout looks at the nodes' answers.
const POLL: Duration = Duration::from_millis(50);

/// The version a name serves on the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The version's content hash (`None`: not deployed; nodes detach it).
    pub version: Option<String>,
    /// The version it replaced, where a refused rollout returns.
    pub previous: Option<String>,
    /// The node the deploy came through.
    pub node: String,
    /// When (that node's clock).
    pub at_ms: i64,
    /// Why the last rollout of another version was taken back, per node.
    #[serde(default)]
    pub rejected: Option<Refused>,
}

/// A rollout that some node refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// The refused version.
    pub version: String,
    /// Each refusing node's reason.
    pub reasons: BTreeMap<String, String>,
}

/// One node's answer to a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAnswer {
    /// It serves the version.
    Serving,
    /// It refused it, and why.
    Refused(String),
    /// It had not answered when the rollout stopped waiting.
    Pending,
}

/// How a rollout went, node by node.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The version rolled out.
    pub version: String,
    /// Each live node's answer, by node id.
    pub nodes: BTreeMap<String, NodeAnswer>,
    /// Whether it was taken back because a node refused it.
    pub taken_back: bool,
    /// From setting the deployment to the last answer.
    pub took: Duration,
}

fn key(name: &str) -> Vec<u8> {
    format!("{PREFIX}{name}").into_bytes()
}

/// The blob holding version `version` of plugin `name`.
fn blob_name(name: &str, version: &str) -> String {
    format!("{name}/{version}")
}

/// A version's files as one blob: the manifest's length (4 bytes, big-endian), the
/// manifest, the component.
fn pack(manifest: &str, component: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + manifest.len() + component.len());
    bytes.extend_from_slice(&(manifest.len() as u32).to_be_bytes());
    bytes.extend_from_slice(manifest.as_bytes());
    bytes.extend_from_slice(component);
    bytes
}

fn unpack(bytes: &[u8]) -> Option<(String, Vec<u8>)> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let manifest = String::from_utf8(bytes.get(4..4 + len)?.to_vec()).ok()?;
    Some((manifest, bytes[4 + len..].to_vec()))
}

impl Cluster {
    /// Plugin `name`'s deployment and its version in the key-values (0: none).
    pub fn deployment(&self, name: &str) -> (Option<Deployment>, u64) {
        let (value, version) = self.kv().get_versioned(&key(name));
        (value.and_then(|v| serde_json::from_slice(&v).ok()), version)
    }

    /// Every deployment with its key's version, by plugin name.
    pub fn deployments(&self) -> Vec<(String, Deployment, u64)> {
        self.inner
            .log
            .kv_scan(PREFIX.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| {
                let name = String::from_utf8(k[PREFIX.len()..].to_vec()).ok()?;
                let (_, version) = self.kv().get_versioned(&k);
                Some((name, serde_json::from_slice(&v).ok()?, version))
            })
            .collect()
    }

    /// Stores a version's files where every node can fetch them.
    pub async fn store_version(
        &self,
        name: &str,
        version: &str,
        manifest: &str,
        component: &[u8],
    ) -> Result<()> {
        self.blobs()
            .put(&blob_name(name, version), pack(manifest, component))
            .await?;
        Ok(())
    }

    /// A stored version's manifest text and component.
    pub async fn fetch_version(&self, name: &str, version: &str) -> Result<(String, Vec<u8>)> {
        let bytes = self
            .blobs()
            .get(&blob_name(name, version))
            .await?
            .ok_or_else(|| {
                // Stored before it was deployed: missing is damage, not a wait.
                BrokerError::Internal(format!(
                    "version {} of plugin '{name}' is not in the cluster's plugin store",
                    short(version)
                ))
            })?;
        unpack(&bytes).map(Ok).unwrap_or_else(|| {
            Err(BrokerError::Internal(format!(
                "version {} of plugin '{name}' is damaged in the cluster's plugin store",
                short(version)
            )))
        })
    }

    /// Makes `version` (already stored) the one plugin `name` serves on every node,
    /// if the deployment still names `replaces` (`None`: no cluster deployment yet),
    /// then waits up to `wait` for every live node's answer. A version any node
    /// refused is taken back everywhere.
    pub async fn roll_out(
        &self,
        name: &str,
        version: &str,
        replaces: Option<&str>,
        wait: Duration,
    ) -> Result<Rollout> {
        let (current, kv_version) = self.deployment(name);
        let current_version = current.as_ref().and_then(|d| d.version.clone());
        if current.is_some() && current_version.as_deref() != replaces {
            return Err(BrokerError::Plugin(
                crate::plugins::PluginError::ChangedMeanwhile {
                    plugin: name.to_string(),
                    expected: replaces.unwrap_or("none").to_string(),
                    found: current_version.unwrap_or_else(|| "none".to_string()),
                },
            ));
        }
        let deployment = Deployment {
            version: Some(version.to_string()),
            previous: current_version.or_else(|| replaces.map(str::to_string)),
            node: self.node().to_string(),
            at_ms: weir_storage::now_ms(),
            rejected: None,
        };
        let started = Instant::now();
        let set = self.set_deployment(name, kv_version, &deployment).await?;
        let nodes = self.answers(name, version, set, started + wait).await;
        let refused: BTreeMap<String, String> = nodes
            .iter()
            .filter_map(|(node, a)| match a {
                NodeAnswer::Refused(why) => Some((node.clone(), why.clone())),
                _ => None,
            })
            .collect();
        let took = started.elapsed();
        if refused.is_empty() {
            return Ok(Rollout {
                version: version.to_string(),
                nodes,
                taken_back: false,
                took,
            });
        }
        tracing::warn!(
            plugin = name,
            version = short(version),
            ?refused,
            "a node refused the version; taking it back on every node"
        );
        let (_, kv_version) = self.deployment(name);
        let back = Deployment {
            version: deployment.previous.clone(),
            previous: None,
            node: self.node().to_string(),
            at_ms: weir_storage::now_ms(),
            rejected: Some(Refused {
                version: version.to_string(),
                reasons: refused,
            }),
        };
        let set = self.set_deployment(name, kv_version, &back).await?;
        if let Some(previous) = &back.version {
            self.answers(name, previous, set, Instant::now() + wait)
                .await;
        }
        Ok(Rollout {
            version: version.to_string(),
            nodes,
            taken_back: true,
            took,
        })
    }

    /// Writes a deployment if its key is still at `kv_version`; returns its new
    /// version (the one nodes' refusals name).
    async fn set_deployment(&self, name: &str, kv_version: u64, d: &Deployment) -> Result<u64> {
        let key = key(name);
        let value = serde_json::to_vec(d).expect("deployments serialise");
        match self
            .kv()
            .write_if(&key, kv_version, vec![(key.clone(), Some(value))])
            .await
        {
            Ok(version) => Ok(version),
            Err(StorageError::VersionConflict(_)) => Err(BrokerError::Plugin(
                crate::plugins::PluginError::ChangedMeanwhile {
                    plugin: name.to_string(),
                    expected: d.previous.clone().unwrap_or_else(|| "none".into()),
                    found: "another deploy through another node".to_string(),
                },
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Each live node's answer to version `version` of `name` as deployment
    /// `deployment` (its key's version), waiting until all answered or `deadline`.
    async fn answers(
        &self,
        name: &str,
        version: &str,
        deployment: u64,
        deadline: Instant,
    ) -> BTreeMap<String, NodeAnswer> {
        loop {
            let answers: BTreeMap<String, NodeAnswer> = self
                .nodes()
                .into_iter()
                .filter(|v| v.live)
                .map(|v| {
                    let r = &v.report;
                    let answer = if r.plugins.get(name).map(String::as_str) == Some(version) {
                        NodeAnswer::Serving
                    } else if let Some(no) = r
                        .rejected
                        .get(name)
                        .filter(|no| no.version == version && no.deployment == deployment)
                    {
                        NodeAnswer::Refused(no.reason.clone())
                    } else {
                        NodeAnswer::Pending
                    };
                    (r.node.clone(), answer)
                })
                .collect();
            let pending = answers.values().any(|a| *a == NodeAnswer::Pending);
            if !pending || Instant::now() >= deadline {
                return answers;
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// A version hash as people read it.
pub(crate) fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_packed_version_unpacks_to_its_files() {
        let packed = super::pack("name = \"x\"\n", b"\0asm");
        assert_eq!(
            super::unpack(&packed),
            Some(("name = \"x\"\n".to_string(), b"\0asm".to_vec()))
        );
        assert_eq!(super::unpack(&[0, 0, 0, 9, b'a']), None);
    }
}
