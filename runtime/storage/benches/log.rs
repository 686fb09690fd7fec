//! Storage benches: append (encode + write + flush) and read, swept over batch sizes,
//! with throughput in records.
//!
//! `cargo bench -p weir-storage --bench log`

use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use weir_storage::{Acks, BatchBuilder, ReadLimits, Store, StoreOptions, Topic, TopicConfig};

fn batch(records: usize, value: &[u8]) -> weir_storage::EncodedBatch {
    let mut b = BatchBuilder::with_capacity(records * (value.len() + 32));
    for _ in 0..records {
        b.push(1_700_000_000_000, 0, None, Some(value), std::iter::empty())
            .unwrap();
    }
    b.finish()
}

/// `records` split into batches of about 6 KiB, as the broker splits a request.
fn batches(records: usize, value: &[u8]) -> Vec<(u32, weir_storage::EncodedBatch)> {
    let per_batch = (6 << 10) / (value.len() + 32);
    (0..records)
        .step_by(per_batch)
        .map(|start| (0, batch(per_batch.min(records - start), value)))
        .collect()
}

fn open() -> (
    tempfile::TempDir,
    Store,
    Arc<Topic>,
    tokio::runtime::Runtime,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    store
        .create_topic("bench", TopicConfig::with_partitions(1))
        .unwrap();
    let topic = store.topic("bench").unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    (dir, store, topic, rt)
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let value = vec![b'x'; 100];
    for n in [1usize, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("100B", n), &n, |b, &n| {
            b.iter(|| batch(n, &value).seal(0))
        });
    }
    g.finish();
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_acks_all");
    g.sample_size(20);
    let (_dir, store, topic, rt) = open();
    let value = vec![b'x'; 100];
    for n in [1usize, 100, 1000] {
        let encoded = batches(n, &value);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("100B", n), &n, |b, _| {
            b.iter(|| {
                rt.block_on(store.append(&topic, encoded.clone(), Acks::All))
                    .unwrap()
            })
        });
    }
    g.finish();
    rt.block_on(store.shutdown());
}

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read");
    let (_dir, store, topic, rt) = open();
    let value = vec![b'x'; 100];
    for _ in 0..100 {
        rt.block_on(store.append(&topic, batches(1000, &value), Acks::All))
            .unwrap();
    }
    for n in [100usize, 1000, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        let limits = ReadLimits {
            max_records: n,
            max_bytes: usize::MAX,
        };
        g.bench_with_input(BenchmarkId::new("100B", n), &n, |b, _| {
            b.iter(|| {
                let r = store.read(&topic, 0, 50_500, limits).unwrap();
                r.records()
                    .map(|r| r.value.map_or(0, <[u8]>::len))
                    .sum::<usize>()
            })
        });
    }
    g.finish();
    rt.block_on(store.shutdown());
}

criterion_group!(benches, encode, append, read);
criterion_main!(benches);
