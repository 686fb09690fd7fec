use std::sync::Arc;

use weir_storage::{Log, Store, StoreOptions};

use super::*;

/// A store in `dir`, and the store as the log state lives in.
async fn open_store(dir: &std::path::Path) -> (Store, Arc<dyn Log>) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    let log: Arc<dyn Log> = Arc::new(store.clone());
    (store, log)
}

fn pairs(v: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_writes_are_read_back_and_stored_only_when_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, log) = open_store(dir.path()).await;
        let mut state = PartitionState::new(log.clone(), "count", 0);
        assert_eq!(state.get(b"k").unwrap(), None);
        state.put(b"k", b"1");
        assert_eq!(state.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
        // A failed batch: gone.
        state.discard();
        assert_eq!(state.get(b"k").unwrap(), None);

        state.put(b"k", b"2");
        state.put(b"gone", b"x");
        state.delete(b"gone");
        let ops = state.staged_ops();
        assert_eq!(ops.len(), 2);
        // Written while the append runs: the next batch's, not kept with this one.
        state.put(b"next", b"later");
        log.kv_write(ops).await.unwrap();
        state.kept();
        assert!(state.has_staged());
        assert_eq!(state.get(b"next").unwrap().as_deref(), Some(&b"later"[..]));
        state.discard();
        assert_eq!(state.get(b"next").unwrap(), None);
        assert!(!state.has_staged());
        assert_eq!(state.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
        store.shutdown().await;
    }
    // Restored by reading, in a new instance after a restart.
    let (store, log) = open_store(dir.path()).await;
    let mut state = PartitionState::new(log.clone(), "count", 0);
    assert_eq!(state.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(state.get(b"gone").unwrap(), None);
    // Another partition, another processor: other state.
    let mut other_partition = PartitionState::new(log.clone(), "count", 1);
    assert_eq!(other_partition.get(b"k").unwrap(), None);
    let mut other_processor = PartitionState::new(log, "counter", 0);
    assert_eq!(other_processor.get(b"k").unwrap(), None);
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_merges_staged_writes_and_pages_in_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_store(dir.path()).await;
    let mut state = PartitionState::new(log.clone(), "join", 0);
    for (k, v) in [("c/1", "a"), ("c/2", "b"), ("c/3", "c"), ("d/1", "z")] {
        state.put(k.as_bytes(), v.as_bytes());
    }
    log.kv_write(state.staged_ops()).await.unwrap();
    state.kept();
    state.put(b"c/25", b"new");
    state.delete(b"c/3");
    assert_eq!(
        state.scan(b"c/", None, 10).unwrap(),
        pairs(&[("c/1", "a"), ("c/2", "b"), ("c/25", "new")])
    );
    assert_eq!(
        state.scan(b"c/", Some(b"c/1"), 1).unwrap(),
        pairs(&[("c/2", "b")])
    );
    assert_eq!(state.scan(b"c/", Some(b"c/25"), 10).unwrap(), vec![]);
    assert_eq!(state.scan(b"d/", None, 10).unwrap(), pairs(&[("d/1", "z")]));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_deletes_every_key_of_the_partition_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let (store, log) = open_store(dir.path()).await;
    let mut p0 = PartitionState::new(log.clone(), "count", 0);
    let mut p1 = PartitionState::new(log.clone(), "count", 1);
    p0.put(b"a", b"1");
    p0.put(b"b", b"2");
    p1.put(b"a", b"9");
    log.kv_write([p0.staged_ops(), p1.staged_ops()].concat())
        .await
        .unwrap();
    p0.kept();
    p1.kept();
    p0.stage_clear().unwrap();
    assert_eq!(
        p0.get(b"a").unwrap(),
        None,
        "a reset's deletes are read back"
    );
    let clear = p0.staged_ops();
    assert_eq!(clear.len(), 2);
    log.kv_write(clear).await.unwrap();
    p0.kept();
    assert_eq!(p0.get(b"a").unwrap(), None);
    assert_eq!(p0.scan(b"", None, 10).unwrap(), vec![]);
    assert_eq!(p1.get(b"a").unwrap().as_deref(), Some(&b"9"[..]));
    store.shutdown().await;
}
