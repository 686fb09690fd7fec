//! Authorization: asks the ACL policy plugin, caches its answers, fails closed.
//!
//! Decisions are cached per (principal, groups, operation, resource) for
//! `cache_ttl_ms`, and each entry remembers the policy version that made it, so a
//! reloaded policy is asked afresh at once. A policy that is missing, failed to load,
//! is quarantined, traps or times out denies with 503 `policy_unavailable`: never
//! allows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use weir_broker::plugins::{AclRequest, Decision, Registry};

use super::Principal;
use super::operations::Check;

/// Most cached decisions; the cache is emptied when it would grow past this.
const MAX_CACHED: usize = 100_000;

/// The answer to one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// 403, with the policy's reason.
    Deny(String),
    /// 503: the policy could not be asked.
    Unavailable(String),
}

/// (principal, groups, operation, resource kind, resource name).
type Key = (String, Vec<String>, &'static str, &'static str, String);

struct Cached {
    /// `Allow` or `Deny`: refusals for want of a policy are never cached.
    verdict: Verdict,
    version: String,
    at: Instant,
}

fn key(principal: &Principal, c: &Check) -> Key {
    (
        principal.name.clone(),
        principal.groups.clone(),
        c.operation,
        c.kind,
        c.name.clone(),
    )
}

/// Asks the ACL plugin.
pub struct Authorizer {
    registry: Arc<Registry>,
    plugin: Option<String>,
    ttl: Duration,
    cache: DashMap<Key, Cached>,
    denials: AtomicU64,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("plugin", &self.plugin)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Checks against `plugin` (none: every authenticated caller is allowed).
    pub fn new(registry: Arc<Registry>, plugin: Option<String>, ttl: Duration) -> Self {
        Self {
            registry,
            plugin,
            ttl,
            cache: DashMap::new(),
            denials: AtomicU64::new(0),
        }
    }

    /// Requests denied (403) or refused for want of a policy (503) since start.
    pub fn denials(&self) -> u64 {
        self.denials.load(Ordering::Relaxed)
    }

    /// May `principal` pass check `c`, answered without calling the plugin: `None`
    /// when the policy must be asked ([`Authorizer::check`]).
    pub fn check_cached(&self, principal: &Principal, c: &Check) -> Option<Verdict> {
        let verdict = self.lookup(principal, c)?;
        self.note(&verdict, principal, c);
        Some(verdict)
    }

    /// May `principal` pass check `c`? Blocking: it may call the plugin.
    pub fn check(&self, principal: &Principal, c: &Check) -> Verdict {
        let verdict = self.ask(principal, c);
        self.note(&verdict, principal, c);
        verdict
    }

    /// The cached answer, if fresh, without counting or logging a denial: for
    /// deciding what a response shows rather than whether it is given.
    pub fn peek_cached(&self, principal: &Principal, c: &Check) -> Option<Verdict> {
        self.lookup(principal, c)
    }

    /// The answer, without counting or logging a denial. Blocking: it may call the
    /// plugin.
    pub fn ask(&self, principal: &Principal, c: &Check) -> Verdict {
        self.lookup(principal, c)
            .unwrap_or_else(|| self.decide(principal, c))
    }

    /// Counts and logs a refusal.
    fn note(&self, verdict: &Verdict, principal: &Principal, c: &Check) {
        let reason = match verdict {
            Verdict::Allow => return,
            Verdict::Deny(r) | Verdict::Unavailable(r) => r.as_str(),
        };
        self.denials.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            principal = principal.name,
            operation = c.operation,
            resource = format!("{}:{}", c.kind, c.name),
            reason,
            "request denied"
        );
    }

    /// The answer without calling the plugin: allowed when there is no policy, or a
    /// fresh cached decision of the current policy version.
    fn lookup(&self, principal: &Principal, c: &Check) -> Option<Verdict> {
        let Some(plugin_name) = &self.plugin else {
            return Some(Verdict::Allow);
        };
        let version = self.registry.get(plugin_name)?.current()?;
        let cached = self.cache.get(&key(principal, c))?;
        (cached.version == version.hash() && cached.at.elapsed() < self.ttl)
            .then(|| cached.verdict.clone())
    }

    /// Asks the plugin and caches its answer (failures are not cached).
    fn decide(&self, principal: &Principal, c: &Check) -> Verdict {
        let Some(plugin_name) = &self.plugin else {
            return Verdict::Allow;
        };
        let unavailable = |why: String| {
            Verdict::Unavailable(format!(
                "the ACL policy '{plugin_name}' is unavailable: {why}"
            ))
        };
        let Some(slot) = self.registry.get(plugin_name) else {
            return unavailable("no plugin of that name is installed".into());
        };
        let plugin = match slot.current_or_unavailable() {
            Ok(p) => p,
            Err(e) => return unavailable(e.to_string()),
        };
        let request = AclRequest {
            principal: principal.name.clone(),
            groups: principal.groups.clone(),
            operation: c.operation.to_string(),
            resource_kind: c.kind.to_string(),
            resource_name: c.name.clone(),
            headers: Vec::new(),
        };
        let decision = slot.authorize(&plugin, &request);
        let verdict = match decision {
            Ok(Decision::Allow) => Verdict::Allow,
            Ok(Decision::Deny(reason)) => Verdict::Deny(reason),
            Err(e) => return unavailable(e.to_string()),
        };
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(
            key(principal, c),
            Cached {
                verdict: verdict.clone(),
                version: plugin.hash().to_string(),
                at: Instant::now(),
            },
        );
        verdict
    }
}
