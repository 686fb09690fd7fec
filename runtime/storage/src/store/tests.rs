use super::*;
use crate::batch::{BatchBuilder, EncodedBatch};
use crate::config::TopicConfig;
use crate::writer::Acks;

fn batch_of(values: &[&str]) -> EncodedBatch {
    let mut b = BatchBuilder::default();
    for v in values {
        b.push(1, 0, None, Some(v.as_bytes()), std::iter::empty())
            .unwrap();
    }
    b.finish()
}

/// A store in `dir` with a topic "t" of `partitions` partitions.
fn with_topic(dir: &Path, partitions: u32) -> (Store, Arc<Topic>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    store
        .create_topic("t", TopicConfig::with_partitions(partitions))
        .unwrap();
    let t = store.topic("t").unwrap();
    (store, t)
}

/// A store with topic "t" whose one partition holds three chunks, one record each
/// (separate acknowledged appends are separate rounds): "first", "second", "third".
async fn with_three_chunks(dir: &Path) -> (Store, Arc<Topic>) {
    let (store, t) = with_topic(dir, 1);
    for v in ["first", "second", "third"] {
        store
            .append(&t, vec![(0, batch_of(&[v]))], Acks::All)
            .await
            .unwrap();
    }
    (store, t)
}

/// Runs `f` (an open of the store's files) once they are free: a dropped store's or
/// raw sled's background thread lets go of the file lock a moment after the drop,
/// and `repair` opens and drops sled itself.
fn when_free<T>(mut f: impl FnMut() -> crate::Result<T>) -> crate::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match f() {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// Opens the store once the last handle on its files is released.
fn reopen(dir: &Path) -> crate::Result<Store> {
    when_free(|| Store::open(dir, StoreOptions::default()))
}

/// sled itself on the store's files, for tests that damage them, once free.
fn raw_sled(dir: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(dir) {
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.unwrap(),
        }
    }
}

fn values(r: &ReadResult) -> Vec<(u64, String)> {
    r.records()
        .map(|r| {
            (
                r.offset,
                String::from_utf8(r.value.unwrap().to_vec()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_partition_appends_get_contiguous_offsets_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, t) = with_topic(dir.path(), 2);
        let bases = store
            .append(
                &t,
                vec![(0, batch_of(&["a", "b"])), (1, batch_of(&["c"]))],
                Acks::All,
            )
            .await
            .unwrap();
        assert_eq!(bases, [0, 0]);
        let bases = store
            .append(&t, vec![(0, batch_of(&["d"]))], Acks::None)
            .await
            .unwrap();
        assert_eq!(bases, [2]);
        store.flush().await.unwrap();
        let r = store.read(&t, 0, 1, ReadLimits::default()).unwrap();
        assert_eq!(values(&r), [(1, "b".into()), (2, "d".into())]);
        store.shutdown().await;
    }
    let store = reopen(dir.path()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partition(0).unwrap().high_watermark(), 3);
    assert_eq!(t.partition(1).unwrap().high_watermark(), 1);
    let r = store.read(&t, 1, 0, ReadLimits::default()).unwrap();
    assert_eq!(values(&r), [(0, "c".into())]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_chunks_are_errors_never_short_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_three_chunks(dir.path()).await;
    // Flip one bit in the middle chunk's value bytes.
    let key = keys::data_key(t.id, 0, 1);
    let mut chunk = store.ctx().data.get(key).unwrap().unwrap().to_vec();
    let at = chunk.len() - 2;
    chunk[at] ^= 0x10;
    store.ctx().data.insert(key, chunk).unwrap();
    // Reads that touch it fail; reads past it still work.
    for from in [0, 1] {
        let err = store.read(&t, 0, from, ReadLimits::default()).unwrap_err();
        assert_eq!(err.code(), "storage_corrupt", "{err}");
    }
    let r = store.read(&t, 0, 2, ReadLimits::default()).unwrap();
    assert_eq!(values(&r), [(2, "third".into())]);
    store.shutdown().await;
    drop(store);

    // verify finds it; recover truncates to the last good batch and says so.
    let found = when_free(|| crate::repair::verify(dir.path())).unwrap();
    assert!(!found.is_clean());
    let p = &found.partitions[0];
    assert_eq!((p.good_end, p.stored_end, p.records), (1, 3, 1));
    assert!(p.damage.as_ref().unwrap().contains("CRC mismatch"), "{p:?}");
    let (_, dropped) = when_free(|| crate::repair::recover(dir.path())).unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!((dropped[0].truncated_to, dropped[0].dropped_to), (1, 3));
    assert_eq!(dropped[0].chunks, 2);
    assert!(
        when_free(|| crate::repair::verify(dir.path()))
            .unwrap()
            .is_clean()
    );
    let store = reopen(dir.path()).unwrap();
    let t = store.topic("t").unwrap();
    // Offsets are not reused: [1, 3) is an empty span now.
    assert_eq!(t.partitions[0].high_watermark(), 3);
    let r = store.read(&t, 0, 0, ReadLimits::default()).unwrap();
    assert_eq!(values(&r), [(0, "first".into())]);
    assert_eq!(r.next_offset, 3);
    let base = store
        .append(&t, vec![(0, batch_of(&["again"]))], Acks::All)
        .await
        .unwrap();
    assert_eq!(base, [3]);
    let r = store.read(&t, 0, 1, ReadLimits::default()).unwrap();
    assert_eq!(values(&r), [(3, "again".into())]);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_chunk_is_an_error_never_a_skip() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_three_chunks(dir.path()).await;
    store.ctx().data.remove(keys::data_key(t.id, 0, 1)).unwrap();
    let err = store.read(&t, 0, 0, ReadLimits::default()).unwrap_err();
    assert!(
        err.to_string().contains("offsets [1, 2) are missing"),
        "{err}"
    );
    let err = store.read(&t, 0, 1, ReadLimits::default()).unwrap_err();
    assert_eq!(err.code(), "storage_corrupt");
    store.shutdown().await;
    drop(store);
    let found = when_free(|| crate::repair::verify(dir.path())).unwrap();
    assert_eq!(found.partitions[0].good_end, 1);
    assert!(
        found.partitions[0]
            .damage
            .as_ref()
            .unwrap()
            .contains("missing")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_recovered_short_of_the_checkpoint_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_three_chunks(dir.path()).await;
    store.shutdown().await;
    drop(store);
    // What sled does with a damaged log tail: recover less, silently.
    {
        let db = raw_sled(dir.path());
        let data = db.open_tree("data").unwrap();
        data.remove(keys::data_key(t.id, 0, 2)).unwrap();
        db.flush().unwrap();
    }
    let err = reopen(dir.path()).unwrap_err();
    assert!(err.is_damage());
    assert!(
        err.to_string().contains(
            "topic 't' partition 0 ends at offset 2 but offsets up to 3 were acknowledged"
        ),
        "{err}"
    );
    let (_, dropped) = when_free(|| crate::repair::recover(dir.path())).unwrap();
    assert_eq!((dropped[0].truncated_to, dropped[0].dropped_to), (2, 3));
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.topic("t").unwrap().partitions[0].high_watermark(), 3);
    store.shutdown().await;
}

/// What sled can leave after a write that failed for lack of space and a restart: a
/// round that was never acknowledged, present in part, with a hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_chunks_past_a_gap_are_removed_at_open_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_three_chunks(dir.path()).await;
    store.shutdown().await;
    drop(store);
    {
        let db = raw_sled(dir.path());
        let data = db.open_tree("data").unwrap();
        data.remove(keys::data_key(t.id, 0, 1)).unwrap();
        db.flush().unwrap();
    }
    // Only offset 0 was acknowledged (the checkpoint lags the store by design).
    let mut lagging = Checkpoint::load(dir.path()).unwrap().unwrap();
    lagging.topics.get_mut("t").unwrap().high_watermarks = vec![1];
    lagging.save(dir.path()).unwrap();

    let store = reopen(dir.path()).unwrap();
    let t = store.topic("t").unwrap();
    assert_eq!(t.partitions[0].high_watermark(), 1);
    let r = store.read(&t, 0, 0, ReadLimits::default()).unwrap();
    assert_eq!(values(&r), [(0, "first".to_string())]);
    // New writes take the freed offsets, and nothing of the orphan comes back.
    store
        .append(&t, vec![(0, batch_of(&["again"]))], Acks::All)
        .await
        .unwrap();
    store.shutdown().await;
    drop(store);
    let store = reopen(dir.path()).unwrap();
    let t = store.topic("t").unwrap();
    let r = store.read(&t, 0, 0, ReadLimits::default()).unwrap();
    assert_eq!(
        values(&r),
        [(0, "first".to_string()), (1, "again".to_string())]
    );
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_below_an_acknowledged_offset_refuses_to_open_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_three_chunks(dir.path()).await;
    store.shutdown().await;
    drop(store);
    {
        let db = raw_sled(dir.path());
        db.open_tree("data")
            .unwrap()
            .remove(keys::data_key(t.id, 0, 1))
            .unwrap();
        db.flush().unwrap();
    }
    let err = reopen(dir.path()).unwrap_err();
    assert!(err.is_damage(), "{err}");
    assert!(
        err.to_string()
            .contains("partition 0 ends at offset 1 but offsets up to 3 were acknowledged"),
        "{err}"
    );
    // The chunk past the gap is still there for `weir store recover` to judge.
    let db = raw_sled(dir.path());
    let data = db.open_tree("data").unwrap();
    assert!(data.get(keys::data_key(t.id, 0, 2)).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, t) = with_topic(dir.path(), 1);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .append(&t, vec![(0, batch_of(&["x"]))], Acks::All)
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.stats().snapshot();
    assert_eq!(stats.requests_flushed, 64 * 20);
    assert!(
        stats.flushes < 64 * 20 / 2,
        "{} flushes for {} requests: no group commit",
        stats.flushes,
        64 * 20
    );
    let all = store
        .read(
            &t,
            0,
            0,
            ReadLimits {
                max_records: 10_000,
                max_bytes: usize::MAX,
            },
        )
        .unwrap();
    let offsets: Vec<u64> = all.records().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..64 * 20).collect::<Vec<_>>());
    store.shutdown().await;
}
