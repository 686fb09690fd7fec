//! Plugin call costs, with real components built from source: instantiation, and the
//! per-event cost of a filter that reads every value and a transform that rewrites
//! every value, at batch sizes 1, 100 and 1000 with 100-byte values. Throughput is in
//! events, so criterion reports time per event directly.
//!
//! `cargo bench -p weir-host --bench calls`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir_host::packed::{FLAG_VALUE_JSON, Writer};
use weir_host::{BatchInfo, Engine, Manifest, MemoryState, Plugin};
use weir_test_artifacts as art;

fn plugin(engine: &Engine, kind: &str, component: &str, config: &str) -> Plugin {
    let text =
        format!("name = \"bench\"\nkind = \"{kind}\"\ncomponent = \"p.wasm\"\n[config]\n{config}");
    let manifest = Manifest::parse(&text, std::path::Path::new("bench/plugin.toml")).unwrap();
    let bytes = std::fs::read(component).unwrap();
    Plugin::from_parts(
        engine,
        manifest,
        &bytes,
        component,
        Arc::new(MemoryState::default()),
    )
    .unwrap()
}

fn batch(n: usize) -> Vec<u8> {
    // A 100-byte JSON string value; every tenth one contains the word the filter keeps.
    let mut w = Writer::with_capacity(n * 128);
    for i in 0..n {
        let word = if i % 10 == 0 { "hello" } else { "xxxxx" };
        let value = format!("\"{word}{}\"", "y".repeat(100 - 2 - word.len()));
        w.push(
            1_700_000_000_000,
            FLAG_VALUE_JSON,
            None,
            Some(value.as_bytes()),
            [],
        );
    }
    w.finish()
}

fn info() -> BatchInfo {
    BatchInfo {
        topic: "bench".into(),
        partitions: 1,
    }
}

fn instantiate(c: &mut Criterion) {
    let engine = Engine::new().unwrap();
    let bytes = std::fs::read(art::HELLO_FILTER).unwrap();
    let mut g = c.benchmark_group("load");
    g.sample_size(20);
    g.bench_function("compile+link+init hello-filter", |b| {
        b.iter(|| {
            let m = Manifest::parse(
                "name = \"b\"\nkind = \"filter\"\ncomponent = \"p.wasm\"\n[config]\nword = \"hello\"",
                std::path::Path::new("p"),
            )
            .unwrap();
            Plugin::from_parts(&engine, m, &bytes, "p.wasm", Arc::new(MemoryState::default())).unwrap()
        })
    });
    g.finish();
}

/// Per-event cost of `call` on batches of 1, 100 and 1000 events made by `batch`.
fn per_event(
    c: &mut Criterion,
    group: &str,
    p: &Plugin,
    batch: impl Fn(usize) -> Vec<u8>,
    call: impl Fn(&Plugin, &[u8], usize),
) {
    let mut g = c.benchmark_group(group);
    for n in [1usize, 100, 1000] {
        let events = batch(n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("100B", n), &n, |b, &n| {
            b.iter(|| call(p, &events, n))
        });
    }
    g.finish();
}

fn filter_call(p: &Plugin, events: &[u8], n: usize) {
    p.filter(&info(), events, n).unwrap();
}

fn transform_call(p: &Plugin, events: &[u8], n: usize) {
    p.transform(&info(), events, n).unwrap();
}

/// Binary 100-byte values: `shout` passes them through untouched.
fn binary_batch(n: usize) -> Vec<u8> {
    let mut w = Writer::with_capacity(n * 128);
    for _ in 0..n {
        w.push(1_700_000_000_000, 0, None, Some(&[0xff; 100]), []);
    }
    w.finish()
}

fn calls(c: &mut Criterion) {
    let engine = Engine::new().unwrap();
    // The ABI's own cost: a filter that only looks at whether each event has a value.
    let noop = plugin(&engine, "filter", art::HOSTILE_PANIC_ON_BOOM, "");
    per_event(c, "abi_per_event", &noop, batch, filter_call);
    // A filter that reads every value.
    let hello = plugin(&engine, "filter", art::HELLO_FILTER, "word = \"hello\"");
    per_event(c, "filter_per_event", &hello, batch, filter_call);
    // The transform ABI's own cost: decode, re-encode and both copies.
    let shout = plugin(&engine, "transform", art::SHOUT_TRANSFORM, "");
    per_event(
        c,
        "transform_abi_per_event",
        &shout,
        binary_batch,
        transform_call,
    );
    // A transform that rewrites every value.
    per_event(c, "transform_per_event", &shout, batch, transform_call);
    // The first-party JSON plugins on 100-byte JSON objects (the pipeline bench's
    // records): a scan for one field, and a scan plus an in-place mask.
    let json_filter = plugin(
        &engine,
        "filter",
        art::JSON_FILTER,
        "path = \"/status\"\nequals = \"paid\"",
    );
    per_event(
        c,
        "json_filter_per_event",
        &json_filter,
        object_batch,
        filter_call,
    );
    let redact = plugin(
        &engine,
        "transform",
        art::REDACT,
        "fields = [\"/card/number\"]",
    );
    per_event(c, "redact_per_event", &redact, object_batch, transform_call);
}

/// 100-byte JSON objects with a field to filter on and one to redact.
fn object_batch(n: usize) -> Vec<u8> {
    let mut w = Writer::with_capacity(n * 128);
    let fixed = r#"{"status":"paid","card":{"number":"4111111111111111"},"pad":""}"#.len();
    let value = format!(
        r#"{{"status":"paid","card":{{"number":"4111111111111111"}},"pad":"{}"}}"#,
        "x".repeat(100 - fixed)
    );
    for _ in 0..n {
        w.push(
            1_700_000_000_000,
            FLAG_VALUE_JSON,
            None,
            Some(value.as_bytes()),
            [],
        );
    }
    w.finish()
}

criterion_group!(benches, instantiate, calls);
criterion_main!(benches);
