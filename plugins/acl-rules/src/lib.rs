//! acl-rules: Weir's first-party ACL policy. Rules from the plugin's config allow or
//! deny operations to principals or groups on resources named exactly, by prefix or
//! by glob. A matching `deny` beats any `allow`; what no rule allows is denied.
//!
//! Matching is exact and case-sensitive on the names the broker uses (after URL
//! decoding): `topic:Orders` is not `topic:orders`, and `topic:orders-eu` does not
//! match `topic:orders` unless the pattern says `topic:orders*`.

use serde::Deserialize;
use weir_sdk::{Acl, AclRequest, Decision};

/// Every operation the broker asks about: a rule naming another is a typo, and a
/// misspelt `deny` that silently denies nothing is refused at load instead.
const OPERATIONS: [&str; 11] = [
    "produce",
    "consume",
    "commit",
    "describe",
    "topic-admin",
    "group-admin",
    "plugin-read",
    "plugin-use",
    "plugin-admin",
    "connector-admin",
    "metrics",
];

/// Every resource kind the broker asks about.
const KINDS: [&str; 4] = ["topic", "group", "plugin", "cluster"];

/// The plugin's `[config]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    rules: Vec<Rule>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    effect: Effect,
    /// Principals it applies to (`*`: everyone authenticated).
    #[serde(default)]
    principals: Vec<String>,
    /// Groups it applies to (a caller in any of them).
    #[serde(default)]
    groups: Vec<String>,
    /// Operations (`*`: all).
    operations: Vec<String>,
    /// Resources as `kind:name`, where the name may end in `*` (prefix) or contain
    /// `*` and `?` (glob); `*` alone is every resource.
    resources: Vec<String>,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Permit.
    Allow,
    /// Refuse, whatever else allows it.
    Deny,
}

/// The policy.
pub struct AclRules {
    rules: Vec<Rule>,
}

impl Acl for AclRules {
    type Config = Config;

    fn init(config: Config) -> Result<Self, String> {
        for (i, r) in config.rules.iter().enumerate() {
            if r.principals.is_empty() && r.groups.is_empty() {
                return Err(format!(
                    "rule {i}: name principals or groups (\"*\" for everyone)"
                ));
            }
            if r.operations.is_empty() || r.resources.is_empty() {
                return Err(format!(
                    "rule {i}: operations and resources must not be empty"
                ));
            }
            if let Some(op) = r
                .operations
                .iter()
                .find(|o| *o != "*" && !OPERATIONS.contains(&o.as_str()))
            {
                return Err(format!(
                    "rule {i}: unknown operation '{op}' (one of {}, or \"*\")",
                    OPERATIONS.join(", ")
                ));
            }
            for res in &r.resources {
                let kind = res.split_once(':').map(|(k, _)| k);
                if res != "*" && !kind.is_some_and(|k| KINDS.contains(&k)) {
                    return Err(format!(
                        "rule {i}: resource '{res}' must be 'kind:name' with a kind of {} (e.g. topic:orders*), or '*'",
                        KINDS.join(", ")
                    ));
                }
            }
        }
        Ok(AclRules {
            rules: config.rules,
        })
    }

    fn authorize(&self, request: &AclRequest) -> Decision {
        let resource = request.resource();
        let mut allowed = false;
        for rule in self.rules.iter().filter(|r| r.applies(request, &resource)) {
            match rule.effect {
                Effect::Deny => {
                    return Decision::Deny(format!(
                        "a deny rule forbids {} to {} {resource}",
                        request.principal, request.operation
                    ))
                }
                Effect::Allow => allowed = true,
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "no rule allows {} to {} {resource}",
                request.principal, request.operation
            ))
        }
    }
}

impl Rule {
    fn applies(&self, r: &AclRequest, resource: &str) -> bool {
        let who = self
            .principals
            .iter()
            .any(|p| p == "*" || *p == r.principal)
            || self.groups.iter().any(|g| r.groups.contains(g));
        who && self
            .operations
            .iter()
            .any(|o| o == "*" || *o == r.operation)
            && self
                .resources
                .iter()
                .any(|p| p == "*" || glob(p.as_bytes(), resource.as_bytes()))
    }
}

/// `*` matches any run of bytes (also empty), `?` one byte; everything else itself.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        // A `*` in the pattern is a wildcard even where the text has a `*` too.
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

weir_sdk::export_acl!(AclRules);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use weir_sdk::testing::run_acl;

    fn req(principal: &str, groups: &[&str], op: &str, resource: &str) -> AclRequest {
        let (kind, name) = resource.split_once(':').unwrap();
        AclRequest {
            principal: principal.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            operation: op.into(),
            resource_kind: kind.into(),
            resource_name: name.into(),
            headers: vec![],
        }
    }

    #[test]
    fn deny_beats_allow_and_the_default_is_deny() {
        let config = json!({ "rules": [
            { "effect": "allow", "principals": ["alice"], "operations": ["produce", "consume"], "resources": ["topic:orders*"] },
            { "effect": "deny", "groups": ["interns"], "operations": ["*"], "resources": ["topic:orders-secret"] },
        ]});
        let ask =
            |r: AclRequest| run_acl::<AclRules>(config.clone(), &r).unwrap() == Decision::Allow;
        assert!(ask(req("alice", &[], "produce", "topic:orders")));
        assert!(ask(req("alice", &[], "consume", "topic:orders-eu")));
        assert!(!ask(req(
            "alice",
            &["interns"],
            "consume",
            "topic:orders-secret"
        )));
        assert!(!ask(req("alice", &[], "topic-admin", "topic:orders")));
        assert!(!ask(req("bob", &[], "produce", "topic:orders")));
        // Look-alikes do not match.
        assert!(!ask(req("Alice", &[], "produce", "topic:orders")));
        assert!(!ask(req("alice", &[], "produce", "topic:Orders")));
        assert!(!ask(req("alice", &[], "produce", "topic:order")));
        assert!(!ask(req("alice", &[], "produce", "group:orders")));
        assert!(!ask(req("alice", &[], "produce", "topic:\u{043e}rders"))); // Cyrillic o
    }

    #[test]
    fn globs() {
        assert!(glob(b"topic:orders*", b"topic:orders"));
        assert!(glob(b"topic:orders*", b"topic:orders.eu"));
        assert!(glob(b"topic:*.dlq", b"topic:orders.dlq"));
        assert!(!glob(b"topic:*.dlq", b"topic:orders.dlqx"));
        assert!(glob(b"topic:o?ders", b"topic:orders"));
        assert!(!glob(b"topic:orders", b"topic:orders2"));
        assert!(glob(b"*", b"anything"));
        assert!(glob(b"topic:a*b", b"topic:a*xb"));
    }

    #[test]
    fn bad_rules_are_refused_at_init() {
        let bad =
            json!({ "rules": [{ "effect": "allow", "operations": ["*"], "resources": ["*"] }] });
        assert!(run_acl::<AclRules>(bad, &req("a", &[], "produce", "topic:x")).is_err());
        let bad = json!({ "rules": [{ "effect": "deny", "principals": ["a"], "operations": ["prodcue"], "resources": ["topic:x"] }] });
        let e = AclRules::init(serde_json::from_value(bad).unwrap())
            .err()
            .unwrap();
        assert!(e.contains("unknown operation 'prodcue'"), "{e}");
        let bad = json!({ "rules": [{ "effect": "deny", "principals": ["a"], "operations": ["*"], "resources": ["topics:x"] }] });
        assert!(AclRules::init(serde_json::from_value(bad).unwrap()).is_err());
        let bad = json!({ "rules": [{ "effect": "allow", "principals": ["a"], "operations": ["*"], "resources": ["orders"] }] });
        assert!(run_acl::<AclRules>(bad, &req("a", &[], "produce", "topic:x")).is_err());
    }
}
