//! Authentication and authorization end to end: API tokens and JWTs, the first-party
//! `acl-rules` policy over a matrix of principals, operations and look-alike resource
//! names, policy hot reload, and a failing policy failing closed.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use weir_server::Config;
use weir_server::config::{JwtConfig, TokenConfig};
use weir_test_artifacts as artifacts;

use crate::harness::{Api, Resp, TestServer, install_plugin, token_sha256 as sha};

/// A client that sends `token` with every request.
fn as_(server: &TestServer, token: &str) -> Api {
    server.client().with_token(token)
}

const RULES: &str = r#"
[[config.rules]]
effect = "allow"
principals = ["admin"]
operations = ["*"]
resources = ["*"]

[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["produce", "consume"]
resources = ["topic:orders*"]

[[config.rules]]
effect = "allow"
groups = ["readers"]
operations = ["consume", "describe"]
resources = ["topic:orders*"]

[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["commit"]
resources = ["group:alice-*"]

[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["topic-admin"]
resources = ["topic:orders-eu"]

[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["plugin-use"]
resources = ["plugin:acl-rules"]

[[config.rules]]
effect = "deny"
groups = ["interns"]
operations = ["*"]
resources = ["topic:orders-secret"]
"#;

/// alice; bob (readers, interns); admin.
fn secure(config: &mut Config, plugin: &str) {
    config.auth.enabled = true;
    config.auth.tokens = vec![
        TokenConfig {
            principal: "alice".into(),
            sha256: sha("alice-token"),
            groups: vec![],
        },
        TokenConfig {
            principal: "bob".into(),
            sha256: sha("bob-token"),
            groups: vec!["readers".into(), "interns".into()],
        },
        TokenConfig {
            principal: "admin".into(),
            sha256: sha("admin-token"),
            groups: vec![],
        },
    ];
    config.acl.plugin = Some(plugin.into());
    config.acl.audit_topic = Some("weir.audit".into());
}

/// What the rules above allow: the model the server is checked against.
fn expected(principal: &str, operation: &str, topic: &str) -> bool {
    let orders = topic.starts_with("orders");
    match principal {
        "admin" => true,
        "alice" => {
            orders && matches!(operation, "produce" | "consume")
                || topic == "orders-eu" && operation == "topic-admin"
        }
        "bob" => orders && topic != "orders-secret" && matches!(operation, "consume" | "describe"),
        _ => false,
    }
}

async fn attempt(api: &Api, operation: &str, path_topic: &str) -> Resp {
    match operation {
        "produce" => {
            api.post(
                &format!("/v1/topics/{path_topic}/records"),
                "application/json",
                json!({ "records": [{ "value": "x" }] }).to_string(),
            )
            .await
        }
        "consume" => {
            api.get(&format!("/v1/topics/{path_topic}/partitions/0/records"))
                .await
        }
        "describe" => api.get(&format!("/v1/topics/{path_topic}")).await,
        "topic-admin" => {
            api.put_json(&format!("/v1/topics/{path_topic}/pipeline"), json!([]))
                .await
        }
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_of_principals_operations_and_look_alike_names_has_no_unexpected_allow() {
    let server = TestServer::start_with(|plugins, c| {
        install_plugin(plugins, "acl-rules", "acl", artifacts::ACL_RULES, RULES);
        secure(c, "acl-rules");
    })
    .await;
    let admin = as_(&server, "admin-token");
    let topics = [
        "orders",
        "orders-eu",
        "orders-secret",
        "Orders",
        "order",
        "other",
    ];
    for t in topics {
        admin.create_topic(t, json!({ "partitions": 1 })).await;
    }
    // Each path spelling with the topic name it decodes to.
    let spellings: Vec<(String, String)> = topics
        .iter()
        .map(|t| (t.to_string(), t.to_string()))
        .chain([
            ("%6Frders".to_string(), "orders".to_string()), // percent-encoded 'o'
            ("%4Frders".to_string(), "Orders".to_string()), // percent-encoded 'O'
            ("%D0%BErders".to_string(), "\u{43e}rders".to_string()), // Cyrillic о
            ("orders%20".to_string(), "orders ".to_string()),
            ("ORDERS".to_string(), "ORDERS".to_string()),
        ])
        .collect();
    let mut unexpected_allows = Vec::new();
    let mut unexpected_denials = Vec::new();
    let mut checked = 0;
    for principal in ["alice", "bob", "admin"] {
        let api = as_(&server, &format!("{principal}-token"));
        for operation in ["produce", "consume", "describe", "topic-admin"] {
            for (path, topic) in &spellings {
                let r = attempt(&api, operation, path).await;
                checked += 1;
                let allowed = r.status != 403;
                if r.status == 403 {
                    assert_eq!(r.body["code"], "forbidden");
                    assert_eq!(r.body["principal"], principal);
                    assert_eq!(r.body["operation"], operation);
                }
                let want = expected(principal, operation, topic);
                if allowed && !want {
                    unexpected_allows.push(format!(
                        "{principal} {operation} {path}: {} {}",
                        r.status, r.body
                    ));
                }
                if !allowed && want {
                    unexpected_denials.push(format!("{principal} {operation} {path}: {}", r.body));
                }
            }
        }
    }
    assert!(checked >= 120, "{checked}");
    assert!(
        unexpected_allows.is_empty(),
        "unexpected allows: {unexpected_allows:#?}"
    );
    assert!(
        unexpected_denials.is_empty(),
        "unexpected denials: {unexpected_denials:#?}"
    );

    // Groups, plugins, metrics and the cluster listing are checked too.
    let alice = as_(&server, "alice-token");
    alice
        .get("/v1/topics")
        .await
        .assert_problem(403, "forbidden");
    alice
        .get("/v1/plugins")
        .await
        .assert_problem(403, "forbidden");
    alice
        .get("/v1/groups/g1")
        .await
        .assert_problem(403, "forbidden");
    let r = alice
        .post("/v1/plugins/acl-rules/rollback", "application/json", "")
        .await;
    r.assert_problem(403, "forbidden");
    let m = alice
        .http
        .get(format!("{}/metrics", alice.url))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 403);
    // A group fetch needs the group too: alice may consume orders but not group g1.
    alice
        .get("/v1/topics/orders/records?group=g1")
        .await
        .assert_problem(403, "forbidden");
    // What only the query or the body names is checked too.
    alice
        .get("/v1/topics/orders/records?group=alice-g&group=victim")
        .await
        .assert_problem(400, "invalid_request");
    let r = alice
        .get("/v1/topics/orders/partitions/0/records?filter=redact")
        .await;
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["operation"], "plugin-use");
    let commit =
        |topic: &str| json!({ "offsets": [{ "topic": topic, "partition": 0, "offset": 0 }] });
    let r = alice
        .post(
            "/v1/groups/alice-g/offsets",
            "application/json",
            commit("other").to_string(),
        )
        .await;
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["resource"], "topic:other");
    let r = alice
        .post(
            "/v1/groups/alice-g/offsets",
            "application/json",
            commit("orders").to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let step = |dlq: &str| json!([{ "plugin": "acl-rules", "on_error": "dead_letter", "dead_letter_topic": dlq }]);
    let r = alice
        .put_json("/v1/topics/orders-eu/pipeline", step("other"))
        .await;
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["resource"], "topic:other");
    let r = alice
        .put_json(
            "/v1/topics/orders-eu/pipeline",
            json!([{ "plugin": "redact", "on_error": "skip" }]),
        )
        .await;
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["resource"], "plugin:redact");
    // Health stays open.
    let anon = server.client();
    assert_eq!(anon.get("/healthz").await.status, 200);

    // Denials and admin actions are in the audit topic.
    let audit = admin.fetch_all("weir.audit", 0, 0).await;
    assert!(audit.iter().any(|r| r["value"]["outcome"] == "denied"
        && r["value"]["principal"] == "bob"
        && r["value"]["resource"] == "topic:orders-secret"));
    assert!(audit.iter().any(|r| r["value"]["outcome"] == "allowed"
        && r["value"]["operation"] == "topic-admin"
        && r["value"]["principal"] == "admin"));
    server.stop().await;
}

/// A JWT signed with HMAC-SHA256 by hand (header and claims as given), so tests can
/// forge the tokens a library would refuse to make.
fn hs256(header: Value, claims: Value, secret: &[u8]) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(signing_input.as_bytes());
    format!(
        "{signing_input}.{}",
        b64.encode(mac.finalize().into_bytes())
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hs256";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_credential_gets_401_with_a_challenge() {
    let es_key = rcgen::KeyPair::generate().unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let es_pub = dir.path().join("es256.pem");
    std::fs::write(&es_pub, es_key.public_key_pem()).unwrap();
    let es_pub2 = es_pub.clone();
    let server = TestServer::start_with(move |_, c| {
        c.auth.enabled = true;
        c.auth.tokens = vec![TokenConfig {
            principal: "alice".into(),
            sha256: sha("alice-token"),
            groups: vec![],
        }];
        c.auth.jwt = Some(JwtConfig {
            algorithms: vec!["ES256".into(), "HS256".into()],
            hs256_secret: Some(String::from_utf8(SECRET.to_vec()).unwrap()),
            rs256_public_key: None,
            es256_public_key: Some(es_pub2),
            issuer: Some("https://idp.test".into()),
            audience: Some("weir".into()),
            principal_claim: "sub".into(),
            groups_claim: "groups".into(),
            leeway_s: 0,
        });
    })
    .await;
    let good_claims = json!({ "sub": "carol", "groups": ["g"], "iss": "https://idp.test", "aud": "weir", "exp": now() + 600 });
    let es = |claims: &Value, key: &rcgen::KeyPair| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
            claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap()
    };
    // Good credentials pass (no ACL policy: authenticated callers may do everything).
    for token in [
        "alice-token".to_string(),
        es(&good_claims, &es_key),
        hs256(
            json!({ "alg": "HS256", "typ": "JWT" }),
            good_claims.clone(),
            SECRET,
        ),
    ] {
        let r = as_(&server, &token).get("/v1/topics").await;
        assert_eq!(r.status, 200, "{token}: {}", r.body);
    }

    // An event stream ends when its JWT expires.
    let short = hs256(
        json!({ "alg": "HS256" }),
        json!({ "sub": "carol", "iss": "https://idp.test", "aud": "weir", "exp": now() + 3 }),
        SECRET,
    );
    let carol = as_(&server, &short);
    carol
        .create_topic("ticks", json!({ "partitions": 1 }))
        .await;
    let mut sse = crate::harness::SseClient::open(&carol, "/v1/topics/ticks/events", None).await;
    let started = Instant::now();
    assert!(sse.next(Duration::from_secs(15)).await.is_none());
    let lived = started.elapsed();
    assert!(
        lived < Duration::from_secs(8),
        "the stream outlived its token: {lived:?}"
    );

    let claims = |patch: Value| {
        let mut c = good_claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no credentials", None),
        ("unknown token", Some("Bearer nope".into())),
        ("token of another case", Some("Bearer Alice-token".into())),
        ("basic auth", Some("Basic YWxpY2U6cHc=".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage JWT", Some("Bearer a.b.c".into())),
        (
            "alg none",
            Some(format!("Bearer {}.", {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                format!(
                    "{}.{}",
                    b64.encode(r#"{"alg":"none","typ":"JWT"}"#),
                    b64.encode(good_claims.to_string())
                )
            })),
        ),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                es(&claims(json!({ "exp": now() - 60 })), &es_key)
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs256(
                    json!({ "alg": "HS256" }),
                    json!({ "sub": "carol", "iss": "https://idp.test", "aud": "weir" }),
                    SECRET
                )
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                es(&claims(json!({ "aud": "other" })), &es_key)
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                es(&claims(json!({ "iss": "https://evil.test" })), &es_key)
            )),
        ),
        (
            "signed by another key",
            Some(format!("Bearer {}", es(&good_claims, &other_key))),
        ),
        (
            "HS256 with the wrong secret",
            Some(format!(
                "Bearer {}",
                hs256(
                    json!({ "alg": "HS256" }),
                    good_claims.clone(),
                    b"another-secret-another-secret-xx"
                )
            )),
        ),
        // Algorithm confusion: an HMAC token keyed with the public key's bytes.
        (
            "HS256 keyed with the ES256 public key",
            Some(format!(
                "Bearer {}",
                hs256(
                    json!({ "alg": "HS256" }),
                    good_claims.clone(),
                    es_key.public_key_pem().as_bytes()
                )
            )),
        ),
        (
            "RS256 (not accepted)",
            Some(format!(
                "Bearer {}",
                hs256(json!({ "alg": "RS256" }), good_claims.clone(), SECRET)
            )),
        ),
        (
            "no subject",
            Some(format!(
                "Bearer {}",
                es(&claims(json!({ "sub": "" })), &es_key)
            )),
        ),
    ];
    for (what, header) in bad {
        let mut req = server.http.get(format!("{}/v1/topics", server.url));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .unwrap_or_else(|| panic!("{what}: no WWW-Authenticate"))
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"weir\""),
            "{what}: {challenge}"
        );
        if header.is_some() {
            assert!(challenge.contains("invalid_token"), "{what}: {challenge}");
        }
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["code"], "unauthorized", "{what}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_changes_the_decision_at_once() {
    let server = TestServer::start_with(|plugins, c| {
        install_plugin(plugins, "acl-rules", "acl", artifacts::ACL_RULES, RULES);
        secure(c, "acl-rules");
        c.acl.cache_ttl_ms = 600_000; // a reload must not wait for the cache
    })
    .await;
    let admin = as_(&server, "admin-token");
    admin
        .create_topic("payments", json!({ "partitions": 1 }))
        .await;
    let alice = as_(&server, "alice-token");
    attempt(&alice, "produce", "payments")
        .await
        .assert_problem(403, "forbidden");
    let manifest = server.dir.join("plugins/acl-rules/plugin.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[[config.rules]]\neffect = \"allow\"\nprincipals = [\"alice\"]\noperations = [\"produce\"]\nresources = [\"topic:payments\"]\n"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = attempt(&alice, "produce", "payments").await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(Instant::now() < deadline, "the new policy never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_missing_policy_fails_closed() {
    let server = TestServer::start_with(|plugins, c| {
        install_plugin(
            plugins,
            "hostile-acl",
            "acl",
            artifacts::HOSTILE_ACL,
            "[limits]\ntimeout_ms = 50",
        );
        secure(c, "hostile-acl");
    })
    .await;
    let admin = as_(&server, "admin-token");
    admin.create_topic("fine", json!({ "partitions": 1 })).await;
    assert_eq!(attempt(&admin, "produce", "fine").await.status, 200);
    // The policy traps on group "trap" and loops on group "loop".
    for g in ["trap", "loop"] {
        let r = admin.get(&format!("/v1/groups/{g}")).await;
        r.assert_problem(503, "policy_unavailable");
        assert!(
            r.body["detail"].as_str().unwrap().contains("hostile-acl"),
            "{}",
            r.body
        );
    }
    // Others keep being served.
    assert_eq!(attempt(&admin, "consume", "fine").await.status, 200);

    server.stop().await;

    // A policy whose component is not an ACL fails to load: everything is refused.
    let server = TestServer::start_with(|plugins, c| {
        install_plugin(plugins, "hostile-acl", "acl", artifacts::HELLO_FILTER, "");
        secure(c, "hostile-acl");
    })
    .await;
    let admin = as_(&server, "admin-token");
    admin
        .get("/v1/topics")
        .await
        .assert_problem(503, "policy_unavailable");
    server.stop().await;
    // A policy that is not installed at all.
    let server = TestServer::start_with(|_, c| secure(c, "acl-rules")).await;
    as_(&server, "admin-token")
        .get("/v1/topics")
        .await
        .assert_problem(503, "policy_unavailable");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sends_its_token() {
    let server = TestServer::start_with(|_, c| {
        c.auth.enabled = true;
        c.auth.tokens = vec![TokenConfig {
            principal: "ops".into(),
            sha256: sha("ops-token"),
            groups: vec![],
        }];
    })
    .await;
    let run = |args: Vec<String>| {
        let url = server.url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::harness::WEIR)
                .args(&args)
                .env("WEIR_URL", url)
                .env_remove("WEIR_TOKEN")
                .output()
                .unwrap()
        })
    };
    let out = run(vec!["topic".into(), "list".into()]).await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unauthorized (401)"), "{err}");
    let out = run(vec![
        "topic".into(),
        "list".into(),
        "--token".into(),
        "ops-token".into(),
    ])
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploying_a_connector_needs_connector_admin() {
    let rules = format!(
        "{RULES}\n[[config.rules]]\neffect = \"allow\"\nprincipals = [\"alice\"]\noperations = [\"plugin-admin\"]\nresources = [\"plugin:alice-*\"]\n"
    );
    let out = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(|plugins, c| {
        install_plugin(plugins, "acl-rules", "acl", artifacts::ACL_RULES, &rules);
        secure(c, "acl-rules");
        c.connectors.allowed_dirs = vec![out.path().to_path_buf()];
    })
    .await;
    let (alice, admin) = (as_(&server, "alice-token"), as_(&server, "admin-token"));
    let filter = "name = \"alice-f\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n[config]\nword = \"x\"\n";
    let bytes = |path: &str| std::fs::read(path).unwrap();
    let r = crate::deploy::deploy(&alice, "alice-f", filter, bytes(artifacts::HELLO_FILTER)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A sink reaches files, hosts and topics on its own: plugin-admin on its name is
    // not enough.
    let sink = "name = \"alice-sink\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n\
                [[attach]]\ntopic = \"orders-secret\"\n[grants]\ndirs = [\"/\"]\n[config]\ndir = \"/\"\n";
    let r = crate::deploy::deploy(&alice, "alice-sink", sink, bytes(artifacts::FILE_SINK)).await;
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["operation"], "connector-admin");
    assert!(!server.dir.join("plugins/alice-sink").exists());
    let sink = format!(
        "name = \"alice-sink\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n\
         [[attach]]\ntopic = \"orders\"\n[grants]\ndirs = [\"{0}\"]\n[config]\ndir = \"{0}\"\n",
        out.path().display()
    );
    let r = crate::deploy::deploy(&admin, "alice-sink", &sink, bytes(artifacts::FILE_SINK)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    server.stop().await;
}
