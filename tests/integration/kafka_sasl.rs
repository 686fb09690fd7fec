//! Kafka clients authenticate as HTTP clients do, and the ACL policy decides for
//! them: confluent-kafka (librdkafka) over SASL_SSL with PLAIN (an API token) and
//! OAUTHBEARER (a JWT), against the real `weir` binary with the first-party
//! `acl-rules` policy.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use weir_test_artifacts as artifacts;

use crate::harness::{ServerProcess, install_plugin, token_sha256};
use crate::kafka_clients::clients;
use crate::tls::{pki, write};

const SECRET: &str = "0123456789abcdef0123456789abcdef-kafka";

const RULES: &str = r#"
[[config.rules]]
effect = "allow"
principals = ["alice", "svc-jwt"]
operations = ["produce", "consume"]
resources = ["topic:orders"]

[[config.rules]]
effect = "allow"
principals = ["alice"]
operations = ["consume", "commit", "describe"]
resources = ["group:alice-*"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_and_oauthbearer_over_tls_meet_the_acl_policy() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    install_plugin(&plugins, "acl-rules", "acl", artifacts::ACL_RULES, RULES);
    // The topics, made before authentication is on.
    let open = ServerProcess::start_configured(dir.path(), "[kafka]\nlisten = \"127.0.0.1:0\"\n");
    for t in ["orders", "payroll"] {
        open.client()
            .create_topic(t, json!({ "partitions": 1 }))
            .await;
    }
    open.terminate();

    let pki = pki();
    let certs = tempfile::tempdir().unwrap();
    let cert = write(certs.path(), "server.pem", &pki.server.0);
    let key = write(certs.path(), "server.key", &pki.server.1);
    let ca = write(certs.path(), "ca.pem", &pki.ca_pem);
    let config = format!(
        "[tls]\ncert = {cert:?}\nkey = {key:?}\n\n\
         [auth]\nenabled = true\n\
         [[auth.tokens]]\nprincipal = \"alice\"\nsha256 = \"{}\"\n\
         [auth.jwt]\nalgorithms = [\"HS256\"]\nhs256_secret = \"{SECRET}\"\n\n\
         [acl]\nplugin = \"acl-rules\"\n\n\
         [kafka]\nlisten = \"127.0.0.1:0\"\ntls = true\n",
        token_sha256("alice-token"),
    );
    let server = ServerProcess::start_configured(dir.path(), &config);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "sub": "svc-jwt", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let report = clients(
        "sasl",
        &server,
        &["--ca", ca.to_str().unwrap(), "--jwt", &jwt],
    );
    // PLAIN with alice's token: her topic, and the policy's refusal of another.
    assert_eq!(
        report["plain"],
        json!({ "orders": "ok", "payroll": "TOPIC_AUTHORIZATION_FAILED" }),
        "{report}"
    );
    // Her group reads and commits; a group the policy does not give her is refused.
    assert_eq!(report["own_group"], "orders", "{report}");
    assert_eq!(
        report["other_group"], "GROUP_AUTHORIZATION_FAILED",
        "{report}"
    );
    // OAUTHBEARER: the JWT's subject, under the same rules.
    assert_eq!(
        report["oauthbearer"],
        json!({ "orders": "ok", "payroll": "TOPIC_AUTHORIZATION_FAILED" }),
        "{report}"
    );
    let wrong = report["wrong_password"].as_array().unwrap();
    assert!(wrong.contains(&json!("_AUTHENTICATION")), "{report}");
    assert!(
        !server
            .log_lines("failed to authenticate")
            .iter()
            .any(|l| l.contains("not-a-token")),
        "the log must not show the credential"
    );
}
