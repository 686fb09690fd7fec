//! The cluster as JSON: nodes, a plugin's deployment and how each node serves it, a
//! rollout's answers.

use serde_json::{Value, json};
use weir_broker::cluster::{Cluster, NodeAnswer, NodeView, Rollout};

/// One node as this node sees it.
pub fn node(v: &NodeView) -> Value {
    let r = &v.report;
    json!({
        "node": r.node,
        "url": r.url,
        "live": v.live,
        "silent_ms": v.silent.as_millis() as u64,
        "started_ms": r.started_ms,
        "reported_ms": r.beat_ms,
        "plugins": r.plugins,
        "rejected": r.rejected.iter().map(|(name, no)| (name.clone(), json!({
            "version": no.version,
            "reason": no.reason,
        }))).collect::<serde_json::Map<_, _>>(),
        "connectors": r.connectors,
    })
}

/// `cluster` of `GET /v1/plugins/{name}`: the version the cluster deploys and what
/// every node serves, so an operator watches a rollout converge.
pub fn plugin(cluster: &Cluster, name: &str) -> Value {
    let (deployment, _) = cluster.deployment(name);
    let nodes: Vec<Value> = cluster
        .nodes()
        .iter()
        .map(|v| {
            let r = &v.report;
            json!({
                "node": r.node,
                "live": v.live,
                "serving": r.plugins.get(name),
                "rejected": r.rejected.get(name).map(|no| json!({
                    "version": no.version,
                    "reason": no.reason,
                })),
            })
        })
        .collect();
    let mut v = json!({ "deployed": Value::Null, "nodes": nodes });
    if let Some(d) = deployment {
        v["deployed"] = json!(d.version);
        v["previous"] = json!(d.previous);
        v["deployed_through"] = json!(d.node);
        v["deployed_ms"] = json!(d.at_ms);
        if let Some(refused) = d.rejected {
            v["last_refused"] = json!({
                "version": refused.version,
                "reasons": refused.reasons,
            });
        }
    }
    v
}

/// Each node's answer to a rollout.
pub fn answers(rollout: &Rollout) -> Value {
    rollout
        .nodes
        .iter()
        .map(|(node, a)| {
            let answer = match a {
                NodeAnswer::Serving => json!({ "state": "serving" }),
                NodeAnswer::Refused(why) => json!({ "state": "refused", "reason": why }),
                NodeAnswer::Pending => json!({ "state": "pending" }),
            };
            (node.clone(), answer)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}
