//! What each route does, in the ACL's terms: (operation, resource kind, resource
//! name) checks, all of which must pass. Resource names are the decoded path
//! parameters the handlers will use, so what is checked is what is touched.

use axum::http::Method;

/// One permission a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// `produce`, `consume`, `commit`, `describe`, `topic-admin`, `group-admin`,
    /// `plugin-read`, `plugin-admin`, `metrics`.
    pub operation: &'static str,
    /// `topic`, `group`, `plugin` or `cluster`.
    pub kind: &'static str,
    /// The resource's name (`weir` for the cluster).
    pub name: String,
}

/// A check of `operation` on `kind:name`.
pub fn check(operation: &'static str, kind: &'static str, name: &str) -> Check {
    Check {
        operation,
        kind,
        name: name.to_string(),
    }
}

/// The checks for `method` on the route `matched` (axum's path pattern) with its
/// `param`s, and the query's `group` and `filter` (a plugin run for the reader, which
/// needs `plugin-use`). `None`: a route that needs no check.
pub fn checks(
    method: &Method,
    matched: &str,
    param: impl Fn(&str) -> String,
    group: Option<&str>,
    filter: Option<&str>,
) -> Option<Vec<Check>> {
    let cluster = |op| vec![check(op, "cluster", "weir")];
    let topic = |op| check(op, "topic", &param("topic"));
    let group_of = |op| check(op, "group", &param("group"));
    let plugin = |op| vec![check(op, "plugin", &param("name"))];
    let reading = |op| {
        let mut c = vec![topic(op)];
        if let Some(g) = group {
            c.push(check(op, "group", g));
        }
        if let Some(f) = filter {
            c.push(check("plugin-use", "plugin", f));
        }
        c
    };
    let is = |m: &Method| method == m;
    let reads = method == Method::GET || method == Method::HEAD;
    Some(match matched {
        // The console's page is a static shell: its data comes from the API below.
        "/healthz" | "/readyz" | "/openapi.json" | "/ui" => return None,
        "/v1/overview" | "/v1/overview/stream" | "/v1/cluster" => {
            vec![
                check("describe", "cluster", "weir"),
                check("plugin-read", "cluster", "weir"),
            ]
        }
        "/metrics" => cluster("metrics"),
        "/v1/topics" | "/v1/groups" => cluster("describe"),
        "/v1/plugins" | "/v1/connectors" | "/v1/processors" => cluster("plugin-read"),
        "/v1/topics/{topic}" | "/v1/topics/{topic}/pipeline" if reads => {
            vec![topic("describe")]
        }
        "/v1/topics/{topic}" | "/v1/topics/{topic}/pipeline" => vec![topic("topic-admin")],
        "/v1/topics/{topic}/records" if is(&Method::POST) => vec![topic("produce")],
        "/v1/topics/{topic}/records"
        | "/v1/topics/{topic}/events"
        | "/v1/topics/{topic}/partitions/{partition}/records" => reading("consume"),
        "/v1/plugins/{name}"
        | "/v1/plugins/{name}/versions"
        | "/v1/plugins/{name}/replays"
        | "/v1/plugins/{name}/replays/{id}"
            if reads =>
        {
            plugin("plugin-read")
        }
        // A replay also needs consume on its source and produce on its target,
        // checked by the handler.
        "/v1/plugins/{name}/replays" => plugin("plugin-admin"),
        // A shadow's report holds samples of records: plugin-admin, like its deploy.
        "/v1/plugins/{name}/shadow" => plugin("plugin-admin"),
        "/v1/plugins/{name}/canary" if reads => plugin("plugin-read"),
        // Promoting or rolling back changes what serves: like a deploy or rollback.
        "/v1/plugins/{name}/canary" | "/v1/plugins/{name}/canary/promote" => plugin("plugin-admin"),
        "/v1/plugins/{name}" | "/v1/plugins/{name}/rollback" => plugin("plugin-admin"),
        // Connectors are plugins: reading their status is plugin-read, controlling
        // them plugin-admin.
        "/v1/connectors/{name}" if reads => plugin("plugin-read"),
        "/v1/connectors/{name}/{action}" => plugin("plugin-admin"),
        // Processors too; their state holds their inputs' data: plugin-admin.
        "/v1/processors/{name}" if reads => plugin("plugin-read"),
        "/v1/processors/{name}/{action}"
        | "/v1/processors/{name}/state"
        | "/v1/processors/{name}/state/{key}" => plugin("plugin-admin"),
        "/v1/groups/{group}" | "/v1/groups/{group}/offsets" if reads => {
            vec![group_of("describe")]
        }
        "/v1/groups/{group}/offsets" => vec![group_of("commit")],
        "/v1/groups/{group}/members/{member}" => vec![group_of("consume")],
        "/v1/groups/{group}" | "/v1/groups/{group}/offsets/reset" => vec![group_of("group-admin")],
        // A route added without a mapping is refused rather than left open.
        _ => vec![check("unknown", "cluster", matched)],
    })
}

/// What replacing `current` (the version serving now, if any) with `next` — by a
/// deploy or a rollback — needs besides `plugin-admin` on the plugin's name.
/// Everything either version carries is checked, because the change attaches,
/// detaches and writes on the caller's behalf:
///
/// - an ACL policy (either version is one, or `policy` names the plugin):
///   `plugin-admin` on the cluster, since the policy decides everything else;
/// - a connector: `connector-admin` on the cluster (it carries capabilities);
/// - each topic whose pipeline either version joins: `topic-admin` (as configuring
///   the pipeline through `PUT /v1/topics/{t}/pipeline` would): attaching, detaching
///   and replacing a step all change what the topic stores;
/// - each topic a sink reads, and its consumer group: `consume`;
/// - each topic `next` writes (dead letters, a router's declared destinations, a
///   source's output): `produce`.
pub fn deploy_checks(
    next: &weir_broker::plugins::Manifest,
    current: Option<&weir_broker::plugins::Manifest>,
    policy: Option<&str>,
) -> Vec<Check> {
    let reach = next.reach();
    let mut checks = Vec::new();
    let is_policy = |m: &weir_broker::plugins::Manifest| {
        m.kind == weir_broker::plugins::Kind::Acl || policy == Some(m.name.as_str())
    };
    if is_policy(next) || current.is_some_and(is_policy) {
        checks.push(check("plugin-admin", "cluster", "weir"));
    }
    if next.kind.is_connector() {
        checks.push(check("connector-admin", "cluster", "weir"));
    }
    let mut pipelines = reach.pipelines.clone();
    for t in current.map(|m| m.reach().pipelines).unwrap_or_default() {
        if !pipelines.contains(&t) {
            pipelines.push(t);
        }
    }
    checks.extend(pipelines.iter().map(|t| check("topic-admin", "topic", t)));
    checks.extend(reach.consumes.iter().map(|t| check("consume", "topic", t)));
    checks.extend(reach.groups.iter().map(|g| check("consume", "group", g)));
    checks.extend(reach.produces.iter().map(|t| check("produce", "topic", t)));
    checks
}

/// Whether `operation` changes configuration (recorded in the audit topic).
pub fn is_admin(operation: &str) -> bool {
    matches!(
        operation,
        "topic-admin" | "group-admin" | "plugin-admin" | "connector-admin"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_needs_permission_on_everything_its_manifest_carries() {
        let manifest = |text: &str| {
            weir_broker::plugins::Manifest::parse(text, std::path::Path::new("p/plugin.toml"))
                .unwrap()
        };
        let named = |checks: Vec<Check>| -> Vec<String> {
            checks
                .into_iter()
                .map(|c| format!("{} {}:{}", c.operation, c.kind, c.name))
                .collect()
        };
        let router = manifest(
            "name = \"r\"\nkind = \"router\"\ncomponent = \"r.wasm\"\n\
             [router]\ndestinations = [\"out\"]\n[[attach]]\ntopic = \"secret\"\n",
        );
        assert_eq!(
            named(deploy_checks(&router, None, None)),
            [
                "topic-admin topic:secret",
                "produce topic:secret.dlq",
                "produce topic:out"
            ]
        );
        // Replacing a version that joins another topic's pipeline changes it too.
        let elsewhere = manifest(
            "name = \"r\"\nkind = \"router\"\ncomponent = \"r.wasm\"\n\
             [router]\ndestinations = [\"out\"]\n[[attach]]\ntopic = \"mine\"\non_error = \"skip\"\n",
        );
        assert_eq!(
            named(deploy_checks(&elsewhere, Some(&router), None)),
            [
                "topic-admin topic:mine",
                "topic-admin topic:secret",
                "produce topic:out"
            ]
        );
        // The configured policy, whatever its kind, is the cluster's.
        assert_eq!(
            named(deploy_checks(&elsewhere, None, Some("r")))[0],
            "plugin-admin cluster:weir"
        );
        let sink = manifest(
            "name = \"s\"\nkind = \"sink\"\ncomponent = \"s.wasm\"\n[[attach]]\ntopic = \"t\"\n",
        );
        assert_eq!(
            named(deploy_checks(&sink, None, None)),
            [
                "connector-admin cluster:weir",
                "consume topic:t",
                "consume group:connector.s",
                "produce topic:t.dlq"
            ]
        );
    }

    fn ops(method: Method, path: &str, group: Option<&str>) -> Vec<(String, String)> {
        checks(&method, path, |p| format!("<{p}>"), group, None)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.operation.to_string(), format!("{}:{}", c.kind, c.name)))
            .collect()
    }

    #[test]
    fn routes_map_to_operations() {
        let o = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            ops(Method::POST, "/v1/topics/{topic}/records", None),
            [o("produce", "topic:<topic>")]
        );
        assert_eq!(
            ops(Method::GET, "/v1/topics/{topic}/records", Some("g1")),
            [o("consume", "topic:<topic>"), o("consume", "group:g1")]
        );
        assert_eq!(
            ops(Method::POST, "/v1/connectors/{name}/{action}", None),
            [o("plugin-admin", "plugin:<name>")]
        );
        assert_eq!(
            ops(Method::GET, "/v1/connectors/{name}", None),
            [o("plugin-read", "plugin:<name>")]
        );
        assert_eq!(
            ops(Method::PUT, "/v1/topics/{topic}", None),
            [o("topic-admin", "topic:<topic>")]
        );
        assert_eq!(
            ops(Method::GET, "/v1/topics/{topic}", None),
            [o("describe", "topic:<topic>")]
        );
        assert_eq!(
            ops(Method::POST, "/v1/groups/{group}/offsets", None),
            [o("commit", "group:<group>")]
        );
        assert_eq!(
            ops(Method::PUT, "/v1/plugins/{name}", None),
            [o("plugin-admin", "plugin:<name>")]
        );
        assert_eq!(
            ops(Method::GET, "/metrics", None),
            [o("metrics", "cluster:weir")]
        );
        assert!(ops(Method::GET, "/healthz", None).is_empty());
        assert_eq!(ops(Method::GET, "/v1/new-thing", None)[0].0, "unknown");
        assert_eq!(
            ops(Method::HEAD, "/v1/groups/{group}/offsets", None),
            [o("describe", "group:<group>")]
        );
        let with_filter: Vec<_> = checks(
            &Method::GET,
            "/v1/topics/{topic}/events",
            |_| "t".into(),
            None,
            Some("redact"),
        )
        .unwrap();
        assert_eq!(with_filter[1], check("plugin-use", "plugin", "redact"));
    }
}
