//! Leases and fences on the library, with two node identities on one real cluster
//! log: a lease is held while its holder reports, taken over only once the holder
//! went silent for the node timeout, and from then on every write under the former
//! holder's fence is refused by JetStream with nothing stored.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use weir_broker::cluster::Cluster;
use weir_broker::{Broker, BrokerOptions, ClusterOptions, JetStreamLog, NewRecord, StorageError};

use super::NatsCluster;
use crate::harness::eventually;

fn record(value: &str) -> NewRecord<'_> {
    NewRecord {
        key: None,
        value: Some(Cow::Borrowed(value.as_bytes())),
        value_is_json: false,
        headers: Vec::new(),
        partition: Some(0),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_moves_only_from_a_silent_holder_and_its_fence_refuses_the_old_one() {
    let nats = NatsCluster::start().await;
    let options = ClusterOptions {
        servers: nats.urls().split(',').map(str::to_string).collect(),
        ..ClusterOptions::default()
    };
    let log: Arc<dyn weir_broker::Log> = Arc::new(JetStreamLog::open(options).await.unwrap());
    let broker = Broker::new(log.clone(), BrokerOptions::default());
    let topic = broker.ensure_topic("f", 1).await.unwrap();
    let timeout = Duration::from_secs(2);
    let a = Cluster::new(log.clone(), "a", "", timeout).unwrap();
    let b = Cluster::new(log.clone(), "b", "", timeout).unwrap();
    let beat_a = a.start_heartbeat();
    let _beat_b = b.start_heartbeat();
    eventually("b sees a", || async { b.is_live("a") }).await;

    let fence_a = a.hold("c").await.unwrap().expect("a free lease is taken");
    assert_eq!(b.hold("c").await.unwrap(), None, "a live holder keeps it");
    assert_eq!(b.holder("c").as_deref(), Some("a"));
    let cursor = (b"cursor".to_vec(), Some(b"1".to_vec()));
    broker
        .publish_fenced(&topic, &[record("first")], vec![cursor], Some(&fence_a))
        .await
        .unwrap();

    // a goes silent: b takes the lease after the timeout, not before.
    beat_a.abort();
    let silent = std::time::Instant::now();
    let fence_b = loop {
        if let Some(f) = b.hold("c").await.unwrap() {
            break f;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        silent.elapsed() >= timeout - Duration::from_millis(1100),
        "taken too early"
    );
    assert_ne!(fence_a, fence_b);

    // Everything a writes under its old fence is refused, and nothing is stored.
    let hw = topic.partition(0).unwrap().high_watermark();
    let cursor = (b"cursor".to_vec(), Some(b"2".to_vec()));
    let late = broker
        .publish_fenced(&topic, &[record("late")], vec![cursor], Some(&fence_a))
        .await;
    assert!(
        matches!(
            late,
            Err(weir_broker::BrokerError::Storage(
                StorageError::VersionConflict(_)
            ))
        ),
        "{late:?}"
    );
    let commit = [("f".to_string(), 0, hw)];
    let late = broker.groups().commit_fenced("g", &commit, &fence_a).await;
    assert!(late.is_err(), "{late:?}");
    assert_eq!(topic.partition(0).unwrap().high_watermark(), hw);
    assert_eq!(log.kv_get(b"cursor").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(broker.groups().committed("g", &topic, 0).unwrap(), None);

    // The new holder writes.
    let cursor = (b"cursor".to_vec(), Some(b"3".to_vec()));
    broker
        .publish_fenced(&topic, &[record("second")], vec![cursor], Some(&fence_b))
        .await
        .unwrap();
    broker
        .groups()
        .commit_fenced("g", &commit, &fence_b)
        .await
        .unwrap();
    assert_eq!(log.kv_get(b"cursor").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(a.hold("c").await.unwrap(), None, "b holds it now");
}
