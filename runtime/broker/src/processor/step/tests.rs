use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use weir_storage::{ReadLimits, Store, StoreOptions, TopicConfig};

use super::*;
use crate::processor::lease::Generations;
use crate::{BrokerOptions, NewRecord};

/// Counts events per key and window; event times are the values.
#[derive(Default)]
struct CountPerWindow {
    /// Emit to a topic that does not exist (a failing step).
    fail: bool,
    /// Return no event times (a broken plugin).
    lose_times: bool,
}

fn count_key(key: &[u8], w: Window) -> Vec<u8> {
    let mut k = w.start_ms.to_be_bytes().to_vec();
    k.extend_from_slice(key);
    k
}

fn number(bytes: Option<Vec<u8>>) -> u64 {
    bytes.map_or(0, |b| String::from_utf8(b).unwrap().parse().unwrap())
}

impl Logic for CountPerWindow {
    fn event_times(&mut self, events: &[RecordView<'_>]) -> LogicResult<Vec<Option<i64>>> {
        if self.lose_times {
            return Ok(Vec::new());
        }
        Ok(events
            .iter()
            .map(|r| std::str::from_utf8(r.value?).ok()?.parse().ok())
            .collect())
    }

    fn process(
        &mut self,
        batch: &Batch<'_>,
        events: &[InputEvent<'_>],
        _out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        let state = batch.keyed;
        for e in events {
            let key = e.record.key.unwrap_or_default();
            for w in &e.windows {
                // Sessions this event joined: their counts move to its window.
                let mut n = 1;
                for m in &e.merged {
                    let old = count_key(key, *m);
                    n += number(state.get(&old).map_err(|e| e.to_string())?);
                    state.delete(&old);
                }
                let k = count_key(key, *w);
                n += number(state.get(&k).map_err(|e| e.to_string())?);
                state.put(&k, n.to_string().as_bytes());
            }
        }
        Ok(())
    }

    fn close(
        &mut self,
        batch: &Batch<'_>,
        closed: &[(Vec<u8>, Window)],
        out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        let state = batch.keyed;
        for (key, w) in closed {
            let k = count_key(key, *w);
            let n = number(state.get(&k).map_err(|e| e.to_string())?);
            state.delete(&k);
            out.push(Output {
                topic: if self.fail {
                    "missing".into()
                } else {
                    "counts".into()
                },
                key: Some(key.clone()),
                value: Some(n.to_string().into_bytes()),
                window: Some(*w),
                ..Output::default()
            });
        }
        Ok(())
    }
}

/// A step's report without skipped records.
fn expected(records: usize, late: usize, closed: usize, emitted: usize) -> StepReport {
    StepReport {
        records,
        late,
        closed,
        emitted,
        fired: 0,
        skipped: 0,
    }
}

fn timing() -> Timing {
    Timing {
        windows: Some(WindowKind::Tumbling { size_ms: 10 }),
        allowed_lateness_ms: 0,
        late: LatePolicy::Topic("late".into()),
    }
}

const ALL: ReadLimits = ReadLimits {
    max_records: 10_000,
    max_bytes: usize::MAX,
};

async fn publish(broker: &Broker, events: &[(&str, i64)]) {
    let values: Vec<String> = events.iter().map(|(_, t)| t.to_string()).collect();
    let records: Vec<NewRecord<'_>> = events
        .iter()
        .zip(&values)
        .map(|((k, _), v)| NewRecord {
            key: Some(Cow::Borrowed(k.as_bytes())),
            value: Some(Cow::Borrowed(v.as_bytes())),
            ..NewRecord::default()
        })
        .collect();
    let topic = broker.topic("in").unwrap();
    broker.produce(&topic, &records, Acks::All).await.unwrap();
}

/// `(key, value, window start header)` of every record in `topic`.
fn stored(store: &Store, topic: &str) -> Vec<(String, String, Option<String>)> {
    let t = store.topic(topic).unwrap();
    let read = store.read(&t, 0, 0, ALL).unwrap();
    read.records()
        .map(|r| {
            let text =
                |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
            let start = r
                .headers()
                .find(|(n, _)| *n == "weir-window-start" || *n == "weir-late")
                .map(|(_, v)| text(Some(v)));
            (text(r.key), text(r.value), start)
        })
        .collect()
}

/// Processor `name`'s run on partition 0 of `input`.
fn restore(
    broker: &Broker,
    name: &str,
    input: Arc<Topic>,
    timing: Timing,
    lease: Lease,
) -> PartitionRun {
    let keyed = Keyed::restore(broker.log().clone(), name, 0).unwrap();
    PartitionRun::restore(broker, name, (input, 0), keyed, timing, lease).unwrap()
}

async fn lease(broker: &Broker, name: &str) -> Lease {
    Generations::default().next(broker, name).await.unwrap()
}

fn open_broker(dir: &std::path::Path) -> (Store, Broker) {
    let store = Store::open(dir, StoreOptions::default()).unwrap();
    for name in ["in", "counts", "late"] {
        store
            .create_topic(name, TopicConfig::with_partitions(1))
            .unwrap();
    }
    let broker = Broker::new(Arc::new(store.clone()), BrokerOptions::default());
    (store, broker)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_close_once_late_events_go_to_the_policy_and_a_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut logic = CountPerWindow::default();
    {
        let (store, broker) = open_broker(dir.path());
        publish(
            &broker,
            &[("a", 1), ("b", 2), ("a", 5), ("a", 12), ("b", 3), ("a", 25)],
        )
        .await;
        let input = broker.topic("in").unwrap();
        let mut run = restore(
            &broker,
            "count",
            input,
            timing(),
            lease(&broker, "count").await,
        );
        let report = run
            .step(&broker, &mut logic, ALL, Duration::ZERO)
            .await
            .unwrap();
        // b@3 came after a@12 moved the watermark past [0, 10): late.
        assert_eq!(report, expected(6, 1, 3, 4));
        assert_eq!(run.next_offset(), 6);
        assert_eq!(run.progress().1, 1, "[20, 30) of a is open");
        assert_eq!(
            stored(&store, "counts"),
            vec![
                ("a".into(), "2".into(), Some("0".into())),
                ("b".into(), "1".into(), Some("0".into())),
                ("a".into(), "1".into(), Some("10".into())),
            ]
        );
        assert_eq!(
            stored(&store, "late"),
            vec![("b".into(), "3".into(), Some("true".into()))]
        );
        // Nothing more to read: an empty step stores nothing.
        let idle = run
            .step(&broker, &mut logic, ALL, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(idle, StepReport::default());
        store.shutdown().await;
    }
    // After a restart: the offset, the watermark, the open window and its count are
    // read back, not recomputed from the input.
    let (store, broker) = open_broker(dir.path());
    let input = broker.topic("in").unwrap();
    let mut run = restore(
        &broker,
        "count",
        input,
        timing(),
        lease(&broker, "count").await,
    );
    assert_eq!(run.next_offset(), 6);
    assert_eq!(run.progress().0.max_ms, Some(25));
    assert_eq!(run.progress().1, 1);
    publish(&broker, &[("a", 27), ("c", 40)]).await;
    let report = run
        .step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report, expected(2, 0, 1, 1));
    let counts = stored(&store, "counts");
    assert_eq!(
        counts.last(),
        Some(&("a".into(), "2".into(), Some("20".into())))
    );
    assert_eq!(counts.len(), 4, "every window emitted once");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_changes_nothing_and_runs_again_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = open_broker(dir.path());
    publish(&broker, &[("a", 1), ("a", 2), ("a", 15)]).await;
    let input = broker.topic("in").unwrap();
    let mut run = restore(
        &broker,
        "count",
        input.clone(),
        timing(),
        lease(&broker, "count").await,
    );
    let failed = run
        .step(
            &broker,
            &mut CountPerWindow {
                fail: true,
                ..CountPerWindow::default()
            },
            ALL,
            Duration::ZERO,
        )
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(run.next_offset(), 0);
    assert_eq!(run.progress().0.max_ms, None);
    assert!(
        broker
            .groups()
            .committed("processor.count", &input, 0)
            .unwrap()
            .is_none()
    );
    assert!(stored(&store, "counts").is_empty());

    let report = run
        .step(&broker, &mut CountPerWindow::default(), ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report, expected(3, 0, 1, 1));
    assert_eq!(
        stored(&store, "counts"),
        vec![("a".into(), "2".into(), Some("0".into()))]
    );
    let committed = broker
        .groups()
        .committed("processor.count", &input, 0)
        .unwrap();
    assert_eq!(committed.map(|(o, _)| o), Some(3));
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_merge_across_steps_and_close_once_with_every_event_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = open_broker(dir.path());
    let sessions = Timing {
        windows: Some(WindowKind::Session { gap_ms: 10 }),
        // [0, 10) stays open until the watermark reaches 15.
        allowed_lateness_ms: 5,
        late: LatePolicy::Drop,
    };
    let input = broker.topic("in").unwrap();
    let mut run = restore(
        &broker,
        "sessions",
        input,
        sessions,
        lease(&broker, "sessions").await,
    );
    let mut logic = CountPerWindow::default();
    // Two sessions of a, [0, 10) and [12, 22) ...
    publish(&broker, &[("a", 0), ("a", 12)]).await;
    run.step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(run.progress().1, 2);
    // ... bridged by an event at 9 into one, [0, 22), which closes at 27.
    publish(&broker, &[("a", 9), ("b", 30)]).await;
    let report = run
        .step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.closed, 1);
    assert_eq!(
        stored(&store, "counts"),
        vec![("a".into(), "3".into(), Some("0".into()))]
    );
    // a@5 now belongs to a closed session: late, dropped.
    publish(&broker, &[("a", 5)]).await;
    let report = run
        .step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!((report.late, report.emitted), (1, 0));
    store.shutdown().await;
}

/// Every window result of `events` processed in steps of at most `per_step` records.
async fn results_in_steps(
    windows: WindowKind,
    events: &[(&str, i64)],
    per_step: usize,
) -> Vec<(String, String, Option<String>)> {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = open_broker(dir.path());
    publish(&broker, events).await;
    let timing = Timing {
        windows: Some(windows),
        allowed_lateness_ms: 2,
        late: LatePolicy::Topic("late".into()),
    };
    let input = broker.topic("in").unwrap();
    let mut run = restore(&broker, "p", input, timing, lease(&broker, "p").await);
    let limits = ReadLimits {
        max_records: per_step,
        max_bytes: usize::MAX,
    };
    let mut logic = CountPerWindow::default();
    while run.next_offset() < events.len() as u64 {
        run.step(&broker, &mut logic, limits, Duration::ZERO)
            .await
            .unwrap();
    }
    let mut results = stored(&store, "counts");
    results.extend(stored(&store, "late"));
    store.shutdown().await;
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_do_not_depend_on_where_steps_split_the_input() {
    let events = [
        ("a", 0),
        ("b", 10),
        ("a", 8),
        ("a", 14),
        ("b", 3),
        ("c", 25),
        ("a", 19),
        ("b", 40),
        ("a", 31),
        ("c", 60),
    ];
    for windows in [
        WindowKind::Tumbling { size_ms: 10 },
        WindowKind::Hopping {
            size_ms: 10,
            advance_ms: 5,
        },
        WindowKind::Session { gap_ms: 10 },
    ] {
        let whole = results_in_steps(windows, &events, 10_000).await;
        let one_by_one = results_in_steps(windows, &events, 1).await;
        assert!(!whole.is_empty());
        let sorted = |mut v: Vec<(String, String, Option<String>)>| {
            v.sort();
            v
        };
        assert_eq!(sorted(whole), sorted(one_by_one), "{windows:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logic_that_loses_event_times_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = open_broker(dir.path());
    publish(&broker, &[("a", 1)]).await;
    let input = broker.topic("in").unwrap();
    let mut run = restore(&broker, "p", input, timing(), lease(&broker, "p").await);
    let mut broken = CountPerWindow {
        lose_times: true,
        ..CountPerWindow::default()
    };
    assert!(
        run.step(&broker, &mut broken, ALL, Duration::ZERO)
            .await
            .is_err()
    );
    assert_eq!(run.next_offset(), 0, "nothing skipped");
    store.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_replaced_by_a_newer_generation_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, broker) = open_broker(dir.path());
    publish(&broker, &[("a", 1), ("a", 12)]).await;
    let input = broker.topic("in").unwrap();
    let generations = Generations::default();
    let first = generations.next(&broker, "count").await.unwrap();
    let mut old = restore(&broker, "count", input.clone(), timing(), first);
    let second = generations.next(&broker, "count").await.unwrap();
    assert_eq!(second.generation(), 2);
    let mut new = restore(&broker, "count", input, timing(), second);
    let mut logic = CountPerWindow::default();
    let refused = old
        .step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "processor_fenced");
    assert!(stored(&store, "counts").is_empty());
    assert_eq!(old.next_offset(), 0);
    let report = new
        .step(&broker, &mut logic, ALL, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report, expected(2, 0, 1, 1));
    assert_eq!(
        stored(&store, "counts").len(),
        1,
        "one commit of the window"
    );
    // Generations only grow across restarts.
    let after = Generations::default().next(&broker, "count").await.unwrap();
    assert_eq!(after.generation(), 3);
    store.shutdown().await;
}

/// Sets a timer 100 ms ahead per key; when it fires, emits the key to `counts`.
struct Timeout;

impl Logic for Timeout {
    fn process(
        &mut self,
        batch: &Batch<'_>,
        events: &[InputEvent<'_>],
        _out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        for e in events {
            let key = e.record.key.unwrap_or_default();
            batch.keyed.set_timer(key, batch.now_ms + 100);
        }
        Ok(())
    }

    fn close(
        &mut self,
        _batch: &Batch<'_>,
        _closed: &[(Vec<u8>, Window)],
        _out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        Ok(())
    }

    fn fire(
        &mut self,
        _batch: &Batch<'_>,
        keys: &[Vec<u8>],
        out: &mut Vec<Output>,
    ) -> LogicResult<()> {
        out.extend(keys.iter().map(|k| Output {
            topic: "counts".into(),
            key: Some(k.clone()),
            value: Some(b"timeout".to_vec()),
            ..Output::default()
        }));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timers_fire_once_when_due_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let untimed = Timing {
        windows: None,
        allowed_lateness_ms: 0,
        late: LatePolicy::Drop,
    };
    {
        let (store, broker) = open_broker(dir.path());
        publish(&broker, &[("a", 1), ("b", 2), ("a", 3)]).await;
        let input = broker.topic("in").unwrap();
        let lease = lease(&broker, "t").await;
        let mut run = restore(&broker, "t", input, untimed.clone(), lease);
        let report = run
            .step(&broker, &mut Timeout, ALL, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!((report.records, report.fired), (3, 0));
        assert_eq!(run.keyed().timers(), 2, "one timer per key");
        store.shutdown().await;
    }
    let (store, broker) = open_broker(dir.path());
    let input = broker.topic("in").unwrap();
    let lease = lease(&broker, "t").await;
    let mut run = restore(&broker, "t", input, untimed, lease);
    assert!(run.next_timer().is_some(), "the timers were restored");
    // No records: the step waits until the timers are due (not the whole minute).
    let mut fired = 0;
    while fired < 2 {
        let report = run
            .step(&broker, &mut Timeout, ALL, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(report.records, 0);
        fired += report.fired;
    }
    assert_eq!(fired, 2);
    assert_eq!(run.keyed().timers(), 0);
    let timeouts: Vec<String> = stored(&store, "counts").into_iter().map(|r| r.0).collect();
    assert_eq!(timeouts, vec!["a", "b"]);
    store.shutdown().await;
}
