//! The security review's findings, each reproduced against the real `weir` binary with
//! auth on (API tokens, the `acl-rules` policy, an audit topic) and each now refused:
//! the ACL matrix's deploy, router, dead-letter, rollback, pipeline, connector-grant
//! and group cases; policy typos; repeated credentials
//! and CloudEvents attributes; a bad config refused before the broker says it serves.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use weir_test_artifacts as artifacts;

use crate::deploy::deploy;
use crate::harness::{Api, ServerProcess, eventually, install_plugin, token_sha256};

/// Who may do what. `mallory` administers only her own plugins and topics (`padm*`);
/// `victim` owns `secret`; `ops` may deploy connectors named `ops-*`.
const RULES: &str = r#"
[[config.rules]]
effect = "allow"
principals = ["admin"]
operations = ["*"]
resources = ["*"]

[[config.rules]]
effect = "allow"
principals = ["mallory"]
operations = ["plugin-admin", "plugin-read", "plugin-use"]
resources = ["plugin:padm*", "plugin:audit-router"]

[[config.rules]]
effect = "allow"
principals = ["mallory"]
operations = ["produce", "consume", "describe", "topic-admin"]
resources = ["topic:padm*"]

[[config.rules]]
effect = "allow"
principals = ["mallory", "victim"]
operations = ["consume", "commit", "describe", "group-admin"]
resources = ["group:shared-g"]

[[config.rules]]
effect = "allow"
principals = ["victim"]
operations = ["produce", "consume", "describe"]
resources = ["topic:secret"]

[[config.rules]]
effect = "allow"
principals = ["ops"]
operations = ["connector-admin"]
resources = ["cluster:weir"]

[[config.rules]]
effect = "allow"
principals = ["ops"]
operations = ["plugin-admin", "plugin-read"]
resources = ["plugin:ops-*"]

[[config.rules]]
effect = "allow"
principals = ["ops"]
operations = ["produce", "consume", "describe"]
resources = ["topic:ops-*", "group:connector.ops-*"]
"#;

/// A broker with auth on, `allowed` as the only directory connectors may be granted,
/// and `extra` TOML appended to its config.
pub(crate) fn secured(dir: &Path, allowed: &Path, extra: &str) -> ServerProcess {
    install_plugin(
        &dir.join("plugins"),
        "acl-rules",
        "acl",
        artifacts::ACL_RULES,
        RULES,
    );
    let tokens: Vec<String> = ["admin", "mallory", "victim", "ops"]
        .iter()
        .map(|p| {
            format!(
                "{{ principal = \"{p}\", sha256 = \"{}\" }}",
                token_sha256(&format!("{p}-token"))
            )
        })
        .collect();
    let config = format!(
        "[auth]\nenabled = true\ntokens = [{}]\n\
         [acl]\nplugin = \"acl-rules\"\naudit_topic = \"weir.audit\"\n\
         [connectors]\nallowed_dirs = [{:?}]\n{extra}",
        tokens.join(", "),
        allowed.display().to_string()
    );
    ServerProcess::start_configured(dir, &config)
}

fn component(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A header-router manifest named `name`, attached to `attach` (if any), declaring
/// `destinations` and routing every event (no `region` header) to `default`.
fn router(name: &str, attach: Option<&str>, destinations: &[&str], default: &str) -> String {
    let attach = attach.map_or(String::new(), |t| format!("[[attach]]\ntopic = \"{t}\"\n"));
    format!(
        "name = \"{name}\"\nkind = \"router\"\ncomponent = \"plugin.wasm\"\n\
         [router]\ndestinations = {destinations:?}\n\
         [config]\nheader = \"region\"\ndefault = \"{default}\"\n[config.routes]\n{attach}"
    )
}

/// Asserts a 403 naming `operation` on `resource`.
fn forbidden(r: &crate::harness::Resp, operation: &str, resource: &str) {
    r.assert_problem(403, "forbidden");
    assert_eq!(r.body["operation"], operation, "{}", r.body);
    assert_eq!(r.body["resource"], resource, "{}", r.body);
}

async fn values(api: &Api, topic: &str) -> Vec<Value> {
    api.fetch_all(topic, 0, 0)
        .await
        .into_iter()
        .map(|r| r["value"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_needs_permission_on_every_topic_it_attaches_routes_or_dead_letters() {
    let temp = tempfile::tempdir().unwrap();
    let server = secured(temp.path(), temp.path(), "");
    let admin = server.client().with_token("admin-token");
    let mallory = server.client().with_token("mallory-token");
    let victim = server.client().with_token("victim-token");
    for t in ["secret", "padm-in", "padm-out"] {
        admin.create_topic(t, json!({ "partitions": 1 })).await;
    }
    let router_wasm = || component(artifacts::HEADER_ROUTER);

    // Finding 1 as reported: a plugin of her own attached to someone else's topic,
    // a filter (that would drop records) and a router (that would divert them).
    let spy = "name = \"padm-spy\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n\
               [config]\npath = \"/x\"\nequals = \"y\"\n[[attach]]\ntopic = \"secret\"\non_error = \"skip\"\n";
    let r = deploy(&mallory, "padm-spy", spy, component(artifacts::JSON_FILTER)).await;
    forbidden(&r, "topic-admin", "topic:secret");
    let r = deploy(
        &mallory,
        "padm-r",
        &router("padm-r", Some("secret"), &["padm-out"], "padm-out"),
        router_wasm(),
    )
    .await;
    forbidden(&r, "topic-admin", "topic:secret");
    // A router into a topic she may not produce to (the audit topic).
    let r = deploy(
        &mallory,
        "padm-forge",
        &router("padm-forge", Some("padm-in"), &["weir.audit"], "weir.audit"),
        router_wasm(),
    )
    .await;
    forbidden(&r, "produce", "topic:weir.audit");
    // A dead-letter topic she may not produce to.
    let filter = "name = \"padm-f\"\nkind = \"filter\"\ncomponent = \"plugin.wasm\"\n\
                  [config]\npath = \"/x\"\nequals = \"y\"\n\
                  [[attach]]\ntopic = \"padm-in\"\ndead_letter_topic = \"secret\"\n";
    let r = deploy(
        &mallory,
        "padm-f",
        filter,
        component(artifacts::JSON_FILTER),
    )
    .await;
    forbidden(&r, "produce", "topic:secret");
    for name in ["padm-spy", "padm-r", "padm-forge", "padm-f"] {
        assert!(!temp.path().join("plugins").join(name).exists(), "{name}");
    }
    // The victim's records stay where she sends them.
    let r = victim
        .post(
            "/v1/topics/secret/records",
            "application/json",
            json!({ "records": [{ "value": { "card": "4111 1111 1111 1111" } }] }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(values(&victim, "secret").await.len(), 1);
    assert!(values(&mallory, "padm-out").await.is_empty());

    // Within her own topics the same router deploys; a route its manifest does not
    // declare is refused at run time and dead-lettered, never written.
    let r = deploy(
        &mallory,
        "padm-r",
        &router("padm-r", Some("padm-in"), &["padm-out"], "weir.audit"),
        router_wasm(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let audit_before = admin.offsets("weir.audit", 0).await.1;
    let r = mallory
        .post(
            "/v1/topics/padm-in/records",
            "application/json",
            json!({ "records": [{ "value": { "principal": "admin", "outcome": "allowed" } }] })
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["results"][0]["status"], "dead_lettered",
        "{}",
        r.body
    );
    assert_eq!(r.body["results"][0]["error"]["kind"], "route_not_declared");
    let forged = admin
        .fetch_all("weir.audit", 0, audit_before)
        .await
        .into_iter()
        .filter(|r| r["value"]["principal"] == "admin" && r["value"]["outcome"] == "allowed")
        .filter(|r| r["value"]["operation"].is_null())
        .count();
    assert_eq!(forged, 0, "nothing forged into the audit topic");

    // Replacing a version changes every topic either version attaches to: the admin
    // attaches padm-r to `secret`; mallory may neither deploy a version without that
    // attachment (which would silently take the step off `secret`) nor roll back to
    // hers.
    let r = deploy(
        &admin,
        "padm-r",
        &router("padm-r", Some("secret"), &["padm-out"], "padm-out"),
        router_wasm(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let serving = mallory.get("/v1/plugins/padm-r").await.body["version"].clone();
    let r = deploy(
        &mallory,
        "padm-r",
        &router("padm-r", Some("padm-in"), &["padm-out"], "padm-out"),
        router_wasm(),
    )
    .await;
    forbidden(&r, "topic-admin", "topic:secret");
    let r = mallory
        .post("/v1/plugins/padm-r/rollback", "application/json", "")
        .await;
    forbidden(&r, "topic-admin", "topic:secret");
    assert_eq!(
        mallory.get("/v1/plugins/padm-r").await.body["version"],
        serving
    );
    let r = admin
        .post("/v1/plugins/padm-r/rollback", "application/json", "")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A policy decides everything else: deploying one is the cluster's to allow,
    // whatever its name.
    let policy = "name = \"padm-policy\"\nkind = \"acl\"\ncomponent = \"plugin.wasm\"\n\
                  [[config.rules]]\neffect = \"allow\"\nprincipals = [\"*\"]\noperations = [\"*\"]\nresources = [\"*\"]\n";
    let r = deploy(
        &mallory,
        "padm-policy",
        policy,
        component(artifacts::ACL_RULES),
    )
    .await;
    forbidden(&r, "plugin-admin", "cluster:weir");

    // A pipeline step with a router needs produce on what the router may write.
    let r = deploy(
        &admin,
        "audit-router",
        &router("audit-router", None, &["weir.audit"], "weir.audit"),
        router_wasm(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = mallory
        .put_json(
            "/v1/topics/padm-in/pipeline",
            json!([{ "plugin": "audit-router", "on_error": "reject" }]),
        )
        .await;
    forbidden(&r, "produce", "topic:weir.audit");
    // A step approved as a transform cannot start routing later: the admin trusts
    // mallory's padm-t in `secret`'s pipeline; she redeploys it as a router into her
    // own topic (which she may), and `secret`'s records still go nowhere new.
    let t = "name = \"padm-t\"\nkind = \"transform\"\ncomponent = \"plugin.wasm\"\n\
             [config]\nfields = [\"/card\"]\n";
    let r = deploy(&mallory, "padm-t", t, component(artifacts::REDACT)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin
        .put_json(
            "/v1/topics/secret/pipeline",
            json!([{ "plugin": "padm-t", "on_error": "dead_letter" }]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["pipeline"][0]["destinations"], json!([]));
    let r = deploy(
        &mallory,
        "padm-t",
        &router("padm-t", None, &["padm-out"], "padm-out"),
        router_wasm(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = victim
        .post(
            "/v1/topics/secret/records",
            "application/json",
            json!({ "records": [{ "value": { "card": "5500 0000 0000 0004" } }] }).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["results"][0]["error"]["kind"], "route_not_declared");
    assert!(values(&mallory, "padm-out").await.is_empty());

    // The two refusals since are in the audit topic (written in the background).
    eventually(
        "the refused rollback and pipeline in the audit topic",
        || async {
            admin
                .fetch_all("weir.audit", 0, audit_before)
                .await
                .iter()
                .filter(|r| {
                    r["value"]["principal"] == "mallory" && r["value"]["outcome"] == "denied"
                })
                .count()
                >= 2
        },
    )
    .await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_grants_stay_inside_the_operators_bounds() {
    let temp = tempfile::tempdir().unwrap();
    // Connectors may be granted anything under the test's directory, but never the
    // data or plugin directories inside it.
    let inbox = temp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    // An operator's own file deploy is checked against the bounds too.
    install_plugin(
        &temp.path().join("plugins"),
        "ops-root",
        "source",
        artifacts::FILE_SOURCE,
        "[[attach]]\ntopic = \"ops-in\"\n[grants]\ndirs = [\"/\"]\n[config]\ndir = \"/etc\"\n",
    );
    let server = secured(temp.path(), temp.path(), "");
    let admin = server.client().with_token("admin-token");
    let ops = server.client().with_token("ops-token");
    admin
        .create_topic("ops-in", json!({ "partitions": 1 }))
        .await;
    admin
        .create_topic("secret", json!({ "partitions": 1 }))
        .await;
    let status = admin.get("/v1/plugins/ops-root").await.body;
    assert_eq!(status["state"], "failed", "{status}");
    assert!(
        status.to_string().contains("plugin_grant_not_allowed"),
        "{status}"
    );

    let source = |name: &str, topic: &str, dir: &Path| {
        format!(
            "name = \"{name}\"\nkind = \"source\"\ncomponent = \"plugin.wasm\"\n\
             [[attach]]\ntopic = \"{topic}\"\n[grants]\ndirs = [{0:?}]\n[config]\ndir = {0:?}\n",
            dir.display().to_string()
        )
    };
    let wasm = || component(artifacts::FILE_SOURCE);
    // Finding 2 as reported: `/`, the data directory, `/etc`.
    for dir in [
        Path::new("/"),
        &temp.path().join("data"),
        &temp.path().join("plugins"),
        Path::new("/etc"),
    ] {
        let r = deploy(&ops, "ops-read", &source("ops-read", "ops-in", dir), wasm()).await;
        r.assert_problem(422, "plugin_version_rejected");
        assert_eq!(
            r.body["reason_code"], "plugin_grant_not_allowed",
            "{}",
            r.body
        );
        if dir.starts_with(temp.path()) {
            let detail = r.body["detail"].as_str().unwrap();
            assert!(detail.contains("can never be granted"), "{detail}");
        }
    }
    // A host the operator did not allow.
    let http = "name = \"ops-http\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n\
                [[attach]]\ntopic = \"ops-in\"\n[grants]\nhttp = [\"127.0.0.1\"]\n\
                [config]\nurl = \"http://127.0.0.1:9/x\"\n";
    let r = deploy(&ops, "ops-http", http, component(artifacts::HTTP_SINK)).await;
    assert_eq!(
        r.body["reason_code"], "plugin_grant_not_allowed",
        "{}",
        r.body
    );
    // Inside the bounds, but attached to a topic ops may not produce to or consume.
    let r = deploy(
        &ops,
        "ops-read",
        &source("ops-read", "secret", &inbox),
        wasm(),
    )
    .await;
    forbidden(&r, "produce", "topic:secret");
    let sink = format!(
        "name = \"ops-out\"\nkind = \"sink\"\ncomponent = \"plugin.wasm\"\n\
         [[attach]]\ntopic = \"secret\"\n[grants]\ndirs = [{0:?}]\n[config]\ndir = {0:?}\n",
        inbox.display().to_string()
    );
    let r = deploy(&ops, "ops-out", &sink, component(artifacts::FILE_SINK)).await;
    forbidden(&r, "consume", "topic:secret");
    // Inside the bounds, on its own topic: deployed, and it runs.
    std::fs::write(inbox.join("a.ndjson"), "{\"n\":1}\n").unwrap();
    let r = deploy(
        &ops,
        "ops-read",
        &source("ops-read", "ops-in", &inbox),
        wasm(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    eventually("the granted file is read", || async {
        admin.offsets("ops-in", 0).await.1 >= 1
    })
    .await;
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_views_and_deletes_stay_within_the_callers_topics() {
    let temp = tempfile::tempdir().unwrap();
    let server = secured(temp.path(), temp.path(), "");
    let admin = server.client().with_token("admin-token");
    let mallory = server.client().with_token("mallory-token");
    let victim = server.client().with_token("victim-token");
    for t in ["secret", "padm-in"] {
        admin.create_topic(t, json!({ "partitions": 1 })).await;
        admin
            .publish(t, json!([{ "value": 1 }, { "value": 2 }, { "value": 3 }]))
            .await;
    }
    // One group, committed on both topics, each by the principal that may read it.
    for (api, topic) in [(&victim, "secret"), (&mallory, "padm-in")] {
        let r = api
            .post(
                "/v1/groups/shared-g/offsets",
                "application/json",
                json!({ "offsets": [{ "topic": topic, "partition": 0, "offset": 1 }] }).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for path in ["/v1/groups/shared-g", "/v1/groups/shared-g/offsets"] {
        let r = mallory.get(path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let text = r.body.to_string();
        assert!(!text.contains("secret"), "{path}: {text}");
        assert!(text.contains("padm-in"), "{path}: {text}");
        // Someone who may describe both sees both.
        assert!(admin.get(path).await.body.to_string().contains("secret"));
    }
    // Deleting the group would discard the victim's position on `secret`.
    let r = mallory.delete("/v1/groups/shared-g").await;
    forbidden(&r, "consume", "topic:secret");
    let offsets = admin.get("/v1/groups/shared-g/offsets").await.body;
    assert_eq!(offsets["offsets"].as_array().unwrap().len(), 2, "{offsets}");
    assert_eq!(admin.delete("/v1/groups/shared-g").await.status, 204);
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_typos_repeated_credentials_and_ce_attributes_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let server = secured(temp.path(), temp.path(), "");
    let admin = server.client().with_token("admin-token");
    let victim = server.client().with_token("victim-token");
    admin
        .create_topic("secret", json!({ "partitions": 1 }))
        .await;

    // Finding 5: a misspelt operation in a deny rule is refused at load; the serving
    // policy stays.
    let typo = format!(
        "name = \"acl-rules\"\nkind = \"acl\"\ncomponent = \"plugin.wasm\"\n{RULES}\n\
         [[config.rules]]\neffect = \"deny\"\nprincipals = [\"victim\"]\noperations = [\"prodcue\"]\nresources = [\"topic:secret\"]\n"
    );
    let r = deploy(&admin, "acl-rules", &typo, component(artifacts::ACL_RULES)).await;
    r.assert_problem(422, "plugin_version_rejected");
    assert!(
        r.body["detail"]
            .as_str()
            .unwrap()
            .contains("unknown operation 'prodcue'"),
        "{}",
        r.body
    );
    assert_eq!(victim.describe("secret").await["name"], "secret");

    // Finding 6: two credentials are refused, whichever comes first.
    for (first, second) in [
        ("victim-token", "admin-token"),
        ("admin-token", "victim-token"),
    ] {
        let r = victim
            .send(
                reqwest::Client::new()
                    .delete(format!("{}/v1/topics/secret", server.url))
                    .header("authorization", format!("Bearer {first}"))
                    .header("authorization", format!("Bearer {second}")),
            )
            .await;
        r.assert_problem(400, "invalid_request");
    }
    assert_eq!(victim.describe("secret").await["name"], "secret");

    // Finding 7: a repeated or empty CloudEvents attribute.
    let ce = |extra: &[(&str, &str)]| {
        let mut req = victim
            .http
            .post(format!("{}/v1/topics/secret/records", server.url))
            .header("ce-specversion", "1.0")
            .header("ce-source", "/probe")
            .header("ce-type", "probe")
            .header("content-type", "application/json")
            .body("{}");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        req
    };
    let r = victim.send(ce(&[("ce-id", "1"), ("ce-id", "2")])).await;
    r.assert_problem(400, "invalid_request");
    let r = victim.send(ce(&[("ce-id", "1"), ("ce-", "x")])).await;
    r.assert_problem(400, "invalid_request");
    assert_eq!(victim.offsets("secret", 0).await.1, 0, "nothing stored");
    let r = victim.send(ce(&[("ce-id", "1")])).await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A 401 closes its connection: credentials are needed to keep one.
    let addr = server.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/topics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("closed after the 401")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 401"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    server.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_is_refused_before_the_broker_says_it_serves() {
    let temp = tempfile::tempdir().unwrap();
    let path = temp.path().join("weir.toml");
    for (config, why) in [
        (
            "[auth]\nenabled = true\n[auth.jwt]\nalgorithms = [\"HS256\"]\nhs256_secret = \"short\"\n",
            "at least 32 bytes",
        ),
        (
            "[connectors]\nallowed_dirs = [\"relative/dir\"]\n",
            "not an absolute path",
        ),
        (
            "[limits]\nmax_connections = 10\nmax_pending_connections = 10\n",
            "must be below limits.max_connections",
        ),
    ] {
        std::fs::write(&path, config).unwrap();
        let run = tokio::process::Command::new(crate::harness::WEIR)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .arg("--data-dir")
            .arg(temp.path().join("data"))
            .arg("--plugin-dir")
            .arg(temp.path().join("plugins"))
            .kill_on_drop(true)
            .output();
        // A config that is wrongly accepted would serve forever.
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .unwrap_or_else(|_| panic!("weir serve accepted {config}"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}: {stderr}");
        assert!(stderr.contains(why), "{config}: {stderr}");
        assert!(!stderr.contains("weir is serving"), "{config}: {stderr}");
    }
}
