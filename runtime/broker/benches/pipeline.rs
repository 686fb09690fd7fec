//! What a pipeline costs per record, without HTTP: 1000 records of 100-byte JSON
//! objects published with `acks=none` (no fsync in the measurement) to a topic
//! without plugins, through a filter that does nothing but look at each event (the
//! pipeline machinery: packing, the blocking-thread hop, one call, planning, the
//! atomic append), and through json-filter + redact.
//!
//! `cargo bench -p weir-broker --bench pipeline`

use std::borrow::Cow;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir_broker::pipeline::PipelineOptions;
use weir_broker::{Acks, Broker, BrokerOptions, NewRecord, Store, StoreOptions, TopicConfig};
use weir_host::{Engine, HealthPolicy, Manifest, MemoryState, Plugin, Registry};
use weir_test_artifacts as art;

fn install(registry: &Registry, name: &str, kind: &str, component: &str, extra: &str) {
    let text = format!("name = \"{name}\"\nkind = \"{kind}\"\ncomponent = \"p.wasm\"\n{extra}");
    let manifest = Manifest::parse(&text, std::path::Path::new("bench/plugin.toml")).unwrap();
    let bytes = std::fs::read(component).unwrap();
    let plugin = Plugin::from_parts(
        registry.engine(),
        manifest,
        &bytes,
        component,
        Arc::new(MemoryState::default()),
    )
    .unwrap();
    registry.install(plugin);
}

fn publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let registry = Arc::new(Registry::new(
        Engine::new().unwrap(),
        Arc::new(MemoryState::default()),
        HealthPolicy::default(),
    ));
    install(
        &registry,
        "noop",
        "filter",
        art::HOSTILE_PANIC_ON_BOOM,
        "[[attach]]\ntopic = \"noop\"",
    );
    install(
        &registry,
        "json-filter",
        "filter",
        art::JSON_FILTER,
        "[config]\npath = \"/status\"\nequals = \"paid\"\n[[attach]]\ntopic = \"chain\"",
    );
    install(
        &registry,
        "redact",
        "transform",
        art::REDACT,
        "[config]\nfields = [\"/card/number\"]\n[[attach]]\ntopic = \"chain\"",
    );
    let broker = Broker::new(Arc::new(store.clone()), BrokerOptions::default())
        .with_plugins(registry, PipelineOptions::default());
    for t in ["plain", "noop", "chain"] {
        store
            .create_topic(t, TopicConfig::with_partitions(4))
            .unwrap();
    }
    let value = br#"{"status":"paid","card":{"number":"4111111111111111"},"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let records: Vec<NewRecord<'_>> = (0..1000)
        .map(|_| NewRecord {
            value: Some(Cow::Borrowed(&value[..])),
            value_is_json: true,
            ..NewRecord::default()
        })
        .collect();
    let mut g = c.benchmark_group("publish_1000x100B");
    g.throughput(Throughput::Elements(1000));
    for t in ["plain", "noop", "chain"] {
        let topic = broker.topic(t).unwrap();
        g.bench_function(t, |b| {
            b.to_async(&rt)
                .iter(|| broker.publish(&topic, &records, Acks::None))
        });
    }
    g.finish();
    rt.block_on(store.shutdown());
}

criterion_group!(benches, publish);
criterion_main!(benches);
