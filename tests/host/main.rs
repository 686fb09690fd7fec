//! The plugin host with real components built from source: every shipped plugin and
//! example through the host, every hostile guest stopped with the right error while
//! other plugins keep working, and manifest and component errors.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_host::packed::{self, Writer};
use weir_host::{BatchInfo, Engine, MemoryState, Plugin, PluginError};
use weir_test_artifacts as art;

mod wasi;

/// A plugin folder: `manifest` and the component copied in as `file`.
fn folder(manifest: &str, component: &str, file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), manifest).unwrap();
    std::fs::copy(component, dir.path().join(file)).unwrap();
    dir
}

/// The repository folder's own `plugin.toml`, with the built component beside it.
fn shipped(src_dir: &str, component: &str) -> tempfile::TempDir {
    let manifest = std::fs::read_to_string(Path::new(src_dir).join("plugin.toml")).unwrap();
    let file = manifest
        .lines()
        .find_map(|l| l.strip_prefix("component = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    folder(&manifest, component, &file)
}

fn load(engine: &Engine, dir: &tempfile::TempDir) -> Result<Plugin, PluginError> {
    Plugin::load(engine, dir.path(), Arc::new(MemoryState::default()))
}

fn simple(name: &str, kind: &str, extra: &str) -> String {
    format!("name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"p.wasm\"\n{extra}")
}

fn info() -> BatchInfo {
    BatchInfo {
        topic: "orders".into(),
        partitions: 3,
    }
}

fn json_batch(values: &[&str]) -> Vec<u8> {
    let mut w = Writer::default();
    for v in values {
        w.push(1, packed::FLAG_VALUE_JSON, None, Some(v.as_bytes()), []);
    }
    w.finish()
}

#[test]
fn json_filter_from_its_shipped_manifest() {
    let engine = Engine::new().unwrap();
    let dir = shipped(art::JSON_FILTER_DIR, art::JSON_FILTER);
    let p = load(&engine, &dir).unwrap();
    assert_eq!(p.name(), "json-filter");
    assert_eq!(p.hash().len(), 64);
    let batch = json_batch(&[r#"{"status":"paid"}"#, r#"{"status":"open"}"#, r#"{}"#]);
    assert_eq!(p.filter(&info(), &batch, 3).unwrap(), [true, false, false]);
    // A value that is not JSON is the input's fault, reported as such.
    let mut w = Writer::default();
    w.push(1, 0, None, Some(b"not json"), []);
    let err = p.filter(&info(), &w.finish(), 1).unwrap_err();
    assert_eq!(err.code(), "plugin_bad_input", "{err}");
    // The instance is still good.
    assert_eq!(p.filter(&info(), &batch, 3).unwrap(), [true, false, false]);
}

#[test]
fn redact_masks_fields() {
    let engine = Engine::new().unwrap();
    let p = load(&engine, &shipped(art::REDACT_DIR, art::REDACT)).unwrap();
    let batch = json_batch(&[r#"{"card":{"number":"4111"},"email":"a@b","n":1}"#]);
    let out = p.transform(&info(), &batch, 1).unwrap();
    assert_eq!(out.counts, [1]);
    let events = packed::decode(&out.events).unwrap();
    let v = std::str::from_utf8(events[0].value.unwrap()).unwrap();
    assert_eq!(v, r#"{"card":{"number":"***"},"email":"***","n":1}"#);
}

#[test]
fn header_router_picks_topics() {
    let engine = Engine::new().unwrap();
    let p = load(
        &engine,
        &shipped(art::HEADER_ROUTER_DIR, art::HEADER_ROUTER),
    )
    .unwrap();
    let mut w = Writer::default();
    w.push(1, 0, None, Some(b"1"), [("region", b"eu".as_slice())]);
    w.push(1, 0, None, Some(b"2"), [("region", b"us".as_slice())]);
    w.push(1, 0, None, Some(b"3"), []);
    let routes = p.route(&info(), &w.finish(), 3).unwrap();
    let got: Vec<_> = routes.iter().map(|d| (d.event, d.topic.as_str())).collect();
    assert_eq!(
        got,
        [(0, "orders-eu"), (1, "orders-us"), (2, "orders-other")]
    );
}

#[test]
fn examples_work_through_the_host() {
    let engine = Engine::new().unwrap();
    let hello = folder(
        &simple("hello", "filter", "[config]\nword = \"hi\""),
        art::HELLO_FILTER,
        "p.wasm",
    );
    let p = load(&engine, &hello).unwrap();
    assert_eq!(
        p.filter(&info(), &json_batch(&["\"hi there\"", "\"bye\""]), 2)
            .unwrap(),
        [true, false]
    );

    let shout = folder(
        &simple("shout", "transform", "[config]\ntwice = true"),
        art::SHOUT_TRANSFORM,
        "p.wasm",
    );
    let p = load(&engine, &shout).unwrap();
    let out = p
        .transform(&info(), &json_batch(&["\"hi\"", "\"\""]), 2)
        .unwrap();
    assert_eq!(out.counts, [2, 0]);
    let events = packed::decode(&out.events).unwrap();
    assert_eq!(events[1].value, Some(&b"\"HI\""[..]));
    assert_eq!(events[1].header("shouted"), Some(&b"yes"[..]));

    let router = folder(
        &simple(
            "keys",
            "router",
            "[router]\ndestinations = [\"users-b\"]\n[config]\nprefix = \"users-\"\nfallback = \"users-x\"",
        ),
        art::KEY_ROUTER,
        "p.wasm",
    );
    let p = load(&engine, &router).unwrap();
    let mut w = Writer::default();
    w.push(1, 0, Some(b"Bob"), Some(b"1"), []);
    let routes = p.route(&info(), &w.finish(), 1).unwrap();
    assert_eq!(routes[0].topic, "users-b");
}

/// Every first-party plugin and tutorial ships a `plugin.toml` beside its crate, and
/// each loads as shipped with its component.
#[test]
fn every_shipped_manifest_loads_with_its_component() {
    let engine = Engine::new().unwrap();
    for (dir, component) in [
        (art::JSON_FILTER_DIR, art::JSON_FILTER),
        (art::REDACT_DIR, art::REDACT),
        (art::HEADER_ROUTER_DIR, art::HEADER_ROUTER),
        (art::JSON_SCHEMA_DIR, art::JSON_SCHEMA),
        (art::ACL_RULES_DIR, art::ACL_RULES),
        (art::HELLO_FILTER_DIR, art::HELLO_FILTER),
        (art::SHOUT_TRANSFORM_DIR, art::SHOUT_TRANSFORM),
        (art::KEY_ROUTER_DIR, art::KEY_ROUTER),
        (art::TEAM_ACL_DIR, art::TEAM_ACL),
    ] {
        let p = load(&engine, &shipped(dir, component)).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert!(p.manifest().load_problem().is_none(), "{dir}");
    }
}

/// A component that instantiates more core modules (or tables, or memories) than
/// its `[limits]` allow is refused at load with `plugin_limit`, naming the limit, what
/// it needs and the key that raises it; raising the key loads it.
#[test]
fn a_component_over_its_instance_limit_is_refused_at_load_naming_the_key() {
    let engine = Engine::new().unwrap();
    let needed =
        weir_host::limits::Footprint::of(&std::fs::read(art::HELLO_FILTER).unwrap()).unwrap();
    assert!(needed.instances >= 1, "{needed:?}");
    let tight = folder(
        &simple(
            "hello",
            "filter",
            &format!(
                "[limits]\ninstances = {}\n[config]\nword = \"hi\"",
                needed.instances - 1
            ),
        ),
        art::HELLO_FILTER,
        "p.wasm",
    );
    let err = load(&engine, &tight).unwrap_err();
    assert_eq!(err.code(), "plugin_limit");
    let text = err.to_string();
    assert!(
        text.contains(&format!("needs {} core instances", needed.instances))
            && text.contains(&format!("limit of {}", needed.instances - 1))
            && text.contains("limits.instances"),
        "{text}"
    );
    let enough = folder(
        &simple(
            "hello",
            "filter",
            &format!(
                "[limits]\ninstances = {}\n[config]\nword = \"hi\"",
                needed.instances
            ),
        ),
        art::HELLO_FILTER,
        "p.wasm",
    );
    load(&engine, &enough).unwrap();
}

/// A healthy plugin that must keep answering while a hostile one misbehaves.
fn healthy(engine: &Engine) -> Plugin {
    load(engine, &shipped(art::JSON_FILTER_DIR, art::JSON_FILTER)).unwrap()
}

fn assert_healthy(p: &Plugin) {
    let batch = json_batch(&[r#"{"status":"paid"}"#]);
    assert_eq!(p.filter(&info(), &batch, 1).unwrap(), [true]);
}

#[test]
fn an_endless_loop_times_out_while_others_keep_working() {
    let engine = Engine::new().unwrap();
    let good = Arc::new(healthy(&engine));
    let dir = folder(
        &simple("spin", "filter", "[limits]\ntimeout_ms = 50"),
        art::HOSTILE_LOOP_FOREVER,
        "p.wasm",
    );
    let spin = load(&engine, &dir).unwrap();
    let worker = {
        let good = good.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                assert_healthy(&good);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let err = spin.filter(&info(), &json_batch(&["1"]), 1).unwrap_err();
    assert!(
        matches!(err, PluginError::Timeout { timeout_ms: 50, .. }),
        "{err}"
    );
    assert_eq!(err.code(), "plugin_timeout");
    assert!(err.to_string().contains("spin"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    worker.join().unwrap();
    assert_healthy(&good);
}

#[test]
fn a_memory_bomb_hits_its_cap() {
    let engine = Engine::new().unwrap();
    let good = healthy(&engine);
    let dir = folder(
        &simple(
            "bomb",
            "filter",
            "[limits]\nmemory_mb = 16\ntimeout_ms = 5000",
        ),
        art::HOSTILE_MEMORY_BOMB,
        "p.wasm",
    );
    let bomb = load(&engine, &dir).unwrap();
    let err = bomb.filter(&info(), &json_batch(&["1"]), 1).unwrap_err();
    assert!(
        matches!(err, PluginError::MemoryLimit { limit_mb: 16, .. }),
        "{err}"
    );
    assert_healthy(&good);
}

#[test]
fn deep_recursion_overflows_the_stack_cleanly() {
    let engine = Engine::new().unwrap();
    let good = healthy(&engine);
    let dir = folder(
        &simple("deep", "filter", "[limits]\ntimeout_ms = 5000"),
        art::HOSTILE_DEEP_RECURSION,
        "p.wasm",
    );
    let deep = load(&engine, &dir).unwrap();
    let err = deep.filter(&info(), &json_batch(&["1"]), 1).unwrap_err();
    assert!(matches!(err, PluginError::StackOverflow { .. }), "{err}");
    assert_healthy(&good);
}

#[test]
fn a_trap_discards_only_that_instance() {
    let engine = Engine::new().unwrap();
    let dir = folder(
        &simple("boom", "filter", ""),
        art::HOSTILE_PANIC_ON_BOOM,
        "p.wasm",
    );
    let p = load(&engine, &dir).unwrap();
    let err = p
        .filter(&info(), &json_batch(&["\"boom\""]), 1)
        .unwrap_err();
    assert!(matches!(err, PluginError::Trap { .. }), "{err}");
    // The next call gets a fresh instance and works.
    assert_eq!(
        p.filter(&info(), &json_batch(&["\"fine\""]), 1).unwrap(),
        [true]
    );
}

#[test]
fn load_errors_name_the_file_and_reason() {
    let engine = Engine::new().unwrap();
    let dir = folder(
        &simple("bad-init", "filter", ""),
        art::HOSTILE_INIT_TRAP,
        "p.wasm",
    );
    let err = load(&engine, &dir).unwrap_err();
    assert_eq!(err.code(), "plugin_init_rejected", "{err}");
    assert!(err.to_string().contains("bad-init"), "{err}");

    // A transform declared as a filter.
    let dir = folder(
        &simple("liar", "filter", "[config]\nfields = [\"/a\"]"),
        art::REDACT,
        "p.wasm",
    );
    let err = load(&engine, &dir).unwrap_err();
    assert_eq!(err.code(), "plugin_component_invalid", "{err}");
    assert!(
        err.to_string()
            .contains("does not implement the 'filter' world"),
        "{err}"
    );
    assert!(err.to_string().contains("p.wasm"), "{err}");

    // A config the plugin refuses.
    let dir = folder(
        &simple("jf", "filter", "[config]\npath = \"/a\""),
        art::JSON_FILTER,
        "p.wasm",
    );
    let err = load(&engine, &dir).unwrap_err();
    assert_eq!(err.code(), "plugin_init_rejected");
    assert!(err.to_string().contains("exactly one of"), "{err}");

    // Not a component at all.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), simple("junk", "filter", "")).unwrap();
    std::fs::write(dir.path().join("p.wasm"), b"\0asm garbage").unwrap();
    let err = Plugin::load(&engine, dir.path(), Arc::new(MemoryState::default())).unwrap_err();
    assert!(err.to_string().contains("not a valid component"), "{err}");

    // Manifest problems.
    std::fs::write(
        dir.path().join("plugin.toml"),
        simple("junk", "filter", "colour = 1"),
    )
    .unwrap();
    let err = Plugin::load(&engine, dir.path(), Arc::new(MemoryState::default())).unwrap_err();
    assert_eq!(err.code(), "plugin_manifest_invalid");
    assert!(
        err.to_string().contains("plugin.toml") && err.to_string().contains("unknown field"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("plugin.toml"),
        "name = \"gone\"\nkind = \"filter\"\ncomponent = \"missing.wasm\"",
    )
    .unwrap();
    let err = Plugin::load(&engine, dir.path(), Arc::new(MemoryState::default())).unwrap_err();
    assert!(err.to_string().contains("missing.wasm"), "{err}");
}

#[test]
fn json_schema_passes_valid_events_and_names_violations() {
    let engine = Engine::new().unwrap();
    let p = load(&engine, &shipped(art::JSON_SCHEMA_DIR, art::JSON_SCHEMA)).unwrap();
    let ok = json_batch(&[r#"{"id":"a","amount":3}"#]);
    assert_eq!(p.filter(&info(), &ok, 1).unwrap(), [true]);
    let bad = json_batch(&[r#"{"id":"a","amount":-1}"#]);
    let err = p.filter(&info(), &bad, 1).unwrap_err();
    assert_eq!(err.code(), "plugin_bad_input", "{err}");
    assert!(
        err.to_string().contains("/amount") && err.to_string().contains("minimum"),
        "{err}"
    );
    // A schema with a keyword the plugin does not implement is refused at load.
    let dir = folder(
        &simple("s", "filter", "[config]\nschema = '{\"$ref\": \"#/a\"}'"),
        art::JSON_SCHEMA,
        "p.wasm",
    );
    let err = load(&engine, &dir).unwrap_err();
    assert!(
        err.to_string().contains("unsupported keyword '$ref'"),
        "{err}"
    );
}

/// Activations, probation verdicts and status reads from several threads at once:
/// the slot's locks are always taken in one order, so this finishes.
#[test]
fn versions_swap_while_status_and_calls_run_concurrently() {
    use weir_host::{CallKind, HealthPolicy, Origin, ProbationPolicy, Registry};
    let engine = Engine::new().unwrap();
    let registry = Arc::new(
        Registry::new(
            engine.clone(),
            Arc::new(MemoryState::default()),
            HealthPolicy::default(),
        )
        .with_probation(ProbationPolicy {
            events: 5,
            max_error_rate: 0.5,
        }),
    );
    let dir = folder(
        &simple("hello", "filter", "[config]\nword = \"hi\""),
        art::HELLO_FILTER,
        "p.wasm",
    );
    registry.install(load(&engine, &dir).unwrap());
    let deadline = Instant::now() + Duration::from_secs(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                n += 1;
                let text = simple("hello", "filter", &format!("[config]\nword = \"hi{n}\""));
                std::fs::write(dir.path().join("plugin.toml"), text).unwrap();
                registry.activate(load(&engine, &dir).unwrap(), Origin::File, None);
            }
        });
        s.spawn(|| {
            let batch = json_batch(&["\"hi\""]);
            while Instant::now() < deadline {
                let slot = registry.get("hello").unwrap();
                let p = slot.current().unwrap();
                let _ = slot.filter(&p, CallKind::Batch, &info(), &batch, 1);
            }
        });
        while Instant::now() < deadline {
            let s = registry.get("hello").unwrap().status();
            assert_eq!(s.state, "active");
        }
    });
    let versions = registry.get("hello").unwrap().versions();
    assert!(versions.len() > 2, "{versions:?}");
}

/// A rollback returns to the version its caller checked, or does nothing.
#[test]
fn a_rollback_returns_only_to_the_version_that_was_checked() {
    use weir_host::{HealthPolicy, Origin, PluginError, Registry};
    let engine = Engine::new().unwrap();
    let registry = Registry::new(
        engine.clone(),
        Arc::new(MemoryState::default()),
        HealthPolicy::default(),
    );
    let dir = folder(
        &simple("hello", "filter", "[config]\nword = \"one\""),
        art::HELLO_FILTER,
        "p.wasm",
    );
    registry.install(load(&engine, &dir).unwrap());
    let first = registry.get("hello").unwrap().current().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        simple("hello", "filter", "[config]\nword = \"two\""),
    )
    .unwrap();
    registry.activate(load(&engine, &dir).unwrap(), Origin::File, None);
    let target = registry.rollback_target("hello").unwrap();
    assert_eq!(target.hash(), first.hash());
    let err = registry
        .rollback("hello", Some("0123456789abcdef"), "checked another")
        .unwrap_err();
    assert!(matches!(err, PluginError::ChangedMeanwhile { .. }), "{err}");
    assert_eq!(err.code(), "plugin_changed_meanwhile");
    assert_ne!(
        registry.get("hello").unwrap().current().unwrap().hash(),
        first.hash()
    );
    let back = registry
        .rollback("hello", Some(first.hash()), "checked this one")
        .unwrap();
    assert_eq!(back.hash(), first.hash());
}

#[test]
fn a_source_poll_hands_back_its_state_instead_of_writing_it() {
    let engine = Engine::new().unwrap();
    let state = Arc::new(MemoryState::default());
    let dir = folder(
        &simple(
            "gen",
            "source",
            "[[attach]]\ntopic = \"t\"\n[config]\nrate = 1000\n",
        ),
        art::GENERATOR,
        "p.wasm",
    );
    let p = Plugin::load(&engine, dir.path(), state.clone()).unwrap();
    let poll = |now_ms| {
        p.poll(&weir_host::PollInfo {
            topic: "t".into(),
            partitions: 1,
            max: 100,
            now_ms,
        })
        .unwrap()
    };
    let first = poll(1_000_000);
    let second = poll(1_000_050);
    // Nothing was committed in between, so the second poll starts from the same
    // cursor: what it returns includes the first poll's events again.
    assert!(!first.state.is_empty(), "the cursor comes back staged");
    assert!(weir_host::PluginState::get(&*state, "gen", b"seq").is_none());
    let seqs = |polled: &weir_host::Polled| -> Vec<u64> {
        packed::decode(&polled.events)
            .unwrap()
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(e.value.unwrap()).unwrap();
                v["seq"].as_u64().unwrap()
            })
            .collect()
    };
    assert_eq!(seqs(&first).first(), Some(&0));
    assert_eq!(seqs(&second).first(), Some(&0));
    assert!(second.count >= first.count);
}

#[test]
fn only_connectors_get_the_capability_interfaces() {
    let engine = Engine::new().unwrap();
    // A component that imports `http` and `files`, declared as a filter.
    let dir = folder(
        &simple("sneaky", "filter", ""),
        art::ESCAPE_SOURCE,
        "p.wasm",
    );
    let e = load(&engine, &dir).unwrap_err();
    assert_eq!(e.code(), "plugin_component_invalid", "{e}");
    assert!(e.to_string().contains("does not provide"), "{e}");
    // A sink component declared as a source is the wrong world.
    let dir = folder(
        &simple("confused", "source", "[[attach]]\ntopic = \"t\"\n"),
        art::FILE_SINK,
        "p.wasm",
    );
    let e = load(&engine, &dir).unwrap_err();
    assert!(e.to_string().contains("'source' world"), "{e}");
}
