//! team-acl: a policy the rule list of `acl-rules` cannot express. Each team owns the
//! topics and consumer groups named after it: a caller in group `payments` may
//! produce, consume, commit, describe and administer `topic:payments.*` and
//! `group:payments.*`, and nothing of any other team. The rule is written once for
//! every team, present and future, instead of one rule per team.

use serde::Deserialize;
use weir_sdk::{Acl, AclRequest, Decision};

/// The plugin's `[config]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Members of this group may do everything.
    admin_group: String,
}

/// The policy.
pub struct TeamAcl {
    admin_group: String,
}

/// What a team may do on its own resources.
const TEAM_OPERATIONS: [&str; 5] = ["produce", "consume", "commit", "describe", "topic-admin"];

impl Acl for TeamAcl {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        if config.admin_group.is_empty() {
            return Err("admin_group must not be empty".into());
        }
        Ok(TeamAcl {
            admin_group: config.admin_group,
        })
    }

    fn authorize(&self, r: &AclRequest) -> Decision {
        if r.groups.iter().any(|g| *g == self.admin_group) {
            return Decision::Allow;
        }
        let owned = matches!(r.resource_kind.as_str(), "topic" | "group")
            && r.groups.iter().any(|team| {
                r.resource_name
                    .strip_prefix(team.as_str())
                    .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1)
            });
        if owned && TEAM_OPERATIONS.contains(&r.operation.as_str()) {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "{} may only {} resources named after their teams ({})",
                r.principal,
                r.operation,
                r.groups
                    .iter()
                    .map(|g| format!("{g}.*"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

weir_sdk::export_acl!(TeamAcl);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::run_acl;

    fn ask(groups: &[&str], op: &str, kind: &str, name: &str) -> bool {
        let r = AclRequest {
            principal: "p".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            operation: op.into(),
            resource_kind: kind.into(),
            resource_name: name.into(),
            headers: vec![],
        };
        run_acl::<TeamAcl>(json!({ "admin_group": "platform" }), &r).unwrap() == Decision::Allow
    }

    #[test]
    fn teams_own_their_prefix_only() {
        assert!(ask(&["payments"], "produce", "topic", "payments.in"));
        assert!(ask(&["payments"], "commit", "group", "payments.workers"));
        assert!(!ask(&["payments"], "produce", "topic", "payments"));
        assert!(!ask(&["payments"], "produce", "topic", "paymentsx.in"));
        assert!(!ask(&["payments"], "produce", "topic", "orders.in"));
        assert!(!ask(&["payments"], "plugin-admin", "plugin", "payments.x"));
        assert!(ask(&["platform"], "plugin-admin", "plugin", "redact"));
        assert!(!ask(&[], "consume", "topic", "payments.in"));
    }
}
