//! What authentication and authorization cost per request, without HTTP or disk:
//! checking an API token among 100 configured ones, a cached ACL decision, and a
//! decision the `acl-rules` policy (built from source) has to make.
//!
//! `cargo bench -p weir-server --bench auth`

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use sha2::{Digest, Sha256};
use weir_broker::plugins::{Engine, HealthPolicy, Manifest, MemoryState, Plugin, Registry};
use weir_server::auth::{Authenticator, Authorizer, Principal, Verdict, check};
use weir_server::config::{AuthConfig, TokenConfig};
use weir_test_artifacts as art;

const RULES: &str = r#"
[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["produce", "consume"]
resources = ["topic:orders*"]

[[config.rules]]
effect = "deny"
groups = ["interns"]
operations = ["*"]
resources = ["topic:orders-secret"]
"#;

fn auth(c: &mut Criterion) {
    let tokens = (0..100)
        .map(|i| TokenConfig {
            principal: format!("p{i}"),
            sha256: Sha256::digest(format!("token-{i}").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            groups: vec![],
        })
        .collect();
    let authn = Authenticator::new(&AuthConfig {
        enabled: true,
        tokens,
        jwt: None,
    })
    .unwrap();
    c.bench_function("authenticate an API token among 100", |b| {
        b.iter(|| authn.authenticate(Some("Bearer token-57"), None).unwrap())
    });

    let registry = Arc::new(Registry::new(
        Engine::new().unwrap(),
        Arc::new(MemoryState::default()),
        HealthPolicy::default(),
    ));
    let text = format!("name = \"acl-rules\"\nkind = \"acl\"\ncomponent = \"p.wasm\"\n{RULES}");
    let manifest = Manifest::parse(&text, std::path::Path::new("bench/plugin.toml")).unwrap();
    let bytes = std::fs::read(art::ACL_RULES).unwrap();
    registry.install(
        Plugin::from_parts(
            registry.engine(),
            manifest,
            &bytes,
            art::ACL_RULES,
            Arc::new(MemoryState::default()),
        )
        .unwrap(),
    );
    let authz = Authorizer::new(
        registry,
        Some("acl-rules".into()),
        Duration::from_secs(3600),
    );
    let alice = Principal {
        name: "alice".into(),
        groups: vec!["team-a".into()],
        expires_at: None,
    };
    let orders = check("produce", "topic", "orders");
    assert_eq!(authz.check(&alice, &orders), Verdict::Allow);
    c.bench_function("ACL decision from the cache", |b| {
        b.iter(|| authz.check_cached(&alice, &orders).unwrap())
    });
    let mut n = 0u64;
    c.bench_function("ACL decision by the acl-rules plugin (cache miss)", |b| {
        b.iter(|| {
            n += 1;
            authz.check(&alice, &check("produce", "topic", &format!("orders-{n}")))
        })
    });
}

criterion_group!(benches, auth);
criterion_main!(benches);
