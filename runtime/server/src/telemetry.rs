//! What `GET /metrics` shows, in one prometheus-client registry built at start-up.
//!
//! Two kinds of figures:
//! - **Live** metrics updated on the request path (records and bytes in and out per
//!   topic, produce latency by acks, publish-to-delivery latency, HTTP requests by
//!   route and status): counters and histograms behind relaxed atomics. Their
//!   handles are cached by topic and by route, so a request looks them up by `&str`
//!   and allocates nothing (label values are built once, on first use).
//! - **Read at scrape time** from the components that own them (a collector), so
//!   there is no second set of counters to keep in step: partitions, consumer group
//!   lag, flushes, storage space, plugins, connectors, ACL denials.
//!
//! Names follow Prometheus conventions: `weir_` prefix, base units (seconds, bytes),
//! `_total` on counters.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use dashmap::DashMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use weir_broker::HistogramSnapshot;
use weir_broker::{Acks, Broker, ReadResult};

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AcksLabels {
    acks: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The broker's metrics.
pub struct Telemetry {
    registry: Registry,
    /// Figures read at scrape time that need the broker asynchronously first.
    broker: Arc<BrokerMetrics>,
    records_in: Family<TopicLabels, Counter>,
    bytes_in: Family<TopicLabels, Counter>,
    records_out: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    produce_seconds: Family<AcksLabels, Histogram, fn() -> Histogram>,
    delivery_seconds: Histogram,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Handles into the families above, so the request path finds them without
    /// building label values.
    topics: DashMap<String, TopicCounters>,
    routes: DashMap<String, RouteMetrics>,
    produce_all: Histogram,
    produce_none: Histogram,
}

/// One topic's request-path counters.
struct TopicCounters {
    records_in: Counter,
    bytes_in: Counter,
    records_out: Counter,
    bytes_out: Counter,
}

/// One route's request-path metrics.
struct RouteMetrics {
    seconds: Histogram,
    requests: DashMap<(Method, u16), Counter>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

impl Telemetry {
    /// Registers every metric; `broker` and `collectors` supply the figures read at
    /// scrape time.
    pub fn new(broker: Arc<BrokerMetrics>, collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SharedBrokerMetrics(broker.clone())));
        let produce_seconds: Family<AcksLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        let produce = |acks: &str| {
            produce_seconds
                .get_or_create(&AcksLabels { acks: acks.into() })
                .clone()
        };
        let (produce_all, produce_none) = (produce("all"), produce("none"));
        let t = Telemetry {
            broker,
            records_in: Family::default(),
            bytes_in: Family::default(),
            records_out: Family::default(),
            bytes_out: Family::default(),
            produce_seconds,
            delivery_seconds: latency_histogram(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_histogram),
            topics: DashMap::new(),
            routes: DashMap::new(),
            produce_all,
            produce_none,
            registry: Registry::default(),
        };
        registry.register(
            "weir_records_in",
            "Records accepted by publish requests, per topic",
            t.records_in.clone(),
        );
        registry.register_with_unit(
            "weir_in",
            "Bytes of keys, values and headers accepted, per topic",
            Unit::Bytes,
            t.bytes_in.clone(),
        );
        registry.register(
            "weir_records_out",
            "Records delivered to readers (fetch, group fetch, SSE), per topic",
            t.records_out.clone(),
        );
        registry.register_with_unit(
            "weir_out",
            "Bytes of keys and values delivered to readers, per topic",
            Unit::Bytes,
            t.bytes_out.clone(),
        );
        registry.register_with_unit(
            "weir_produce_duration",
            "Publish request latency (parse, pipeline, append, and for acks=all the fsync), by acks",
            Unit::Seconds,
            t.produce_seconds.clone(),
        );
        registry.register_with_unit(
            "weir_delivery_latency",
            "Publish to delivery: from a record's append time to a reader receiving it (replays include the record's age)",
            Unit::Seconds,
            t.delivery_seconds.clone(),
        );
        registry.register(
            "weir_http_requests",
            "HTTP requests by route, method and status",
            t.http_requests.clone(),
        );
        registry.register_with_unit(
            "weir_http_request_duration",
            "Time to the response head, by route",
            Unit::Seconds,
            t.http_seconds.clone(),
        );
        for c in collectors {
            registry.register_collector(c);
        }
        Telemetry { registry, ..t }
    }

    /// The exposition text (OpenMetrics), with the broker's figures read now.
    pub async fn encode(&self) -> Result<String, std::fmt::Error> {
        self.broker.refresh().await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// A publish of `records` records of `bytes` bytes to `topic` was answered.
    pub fn produced(&self, topic: &str, records: usize, bytes: usize, acks: Acks, took: Duration) {
        let t = self.topic(topic);
        t.records_in.inc_by(records as u64);
        t.bytes_in.inc_by(bytes as u64);
        match acks {
            Acks::All => &self.produce_all,
            Acks::None => &self.produce_none,
        }
        .observe(took.as_secs_f64());
    }

    /// `read` of `topic` is being delivered to a reader.
    pub fn delivered(&self, topic: &str, read: &ReadResult) {
        if read.count == 0 {
            return;
        }
        let now = weir_broker::now_ms();
        let mut bytes = 0u64;
        for r in read.records() {
            bytes += (r.key.map_or(0, <[u8]>::len) + r.value.map_or(0, <[u8]>::len)) as u64;
            self.delivery_seconds
                .observe((now - r.timestamp_ms).max(0) as f64 / 1e3);
        }
        let t = self.topic(topic);
        t.records_out.inc_by(read.count as u64);
        t.bytes_out.inc_by(bytes);
    }

    /// An HTTP request on `route` was answered with `status` after `took`.
    pub fn http(&self, route: &str, method: &Method, status: u16, took: Duration) {
        let route_metrics = match self.routes.get(route) {
            Some(found) => found,
            None => self
                .routes
                .entry(route.to_string())
                .or_insert_with(|| RouteMetrics {
                    seconds: self
                        .http_seconds
                        .get_or_create(&RouteLabels {
                            route: route.to_string(),
                        })
                        .clone(),
                    requests: DashMap::new(),
                })
                .downgrade(),
        };
        route_metrics.seconds.observe(took.as_secs_f64());
        let key = (method.clone(), status);
        if let Some(counter) = route_metrics.requests.get(&key) {
            counter.inc();
            return;
        }
        let counter = self
            .http_requests
            .get_or_create(&HttpLabels {
                route: route.to_string(),
                method: method.as_str().to_string(),
                status,
            })
            .clone();
        counter.inc();
        route_metrics.requests.insert(key, counter);
    }

    /// `topic`'s counters, created on its first request.
    fn topic(&self, topic: &str) -> dashmap::mapref::one::Ref<'_, String, TopicCounters> {
        if let Some(found) = self.topics.get(topic) {
            return found;
        }
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicCounters {
                records_in: self.records_in.get_or_create(&labels).clone(),
                bytes_in: self.bytes_in.get_or_create(&labels).clone(),
                records_out: self.records_out.get_or_create(&labels).clone(),
                bytes_out: self.bytes_out.get_or_create(&labels).clone(),
            })
            .downgrade()
    }
}

/// A histogram read from elsewhere (the storage's flush figures).
#[derive(Debug)]
struct ConstHistogram(HistogramSnapshot);

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<Vec<(String, String)>>(
            self.0.sum,
            self.0.count,
            &self.0.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Label values of one sample.
pub(crate) type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A sample's value: counts print as integers, durations as decimals.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    Count(u64),
    Real(f64),
}

/// Writes one metric family of constant samples.
pub(crate) fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    points: Vec<(Labels<'_>, Num)>,
) -> Result<(), std::fmt::Error> {
    let encode = |point: MetricEncoder<'_>, value: Num| match (kind, value) {
        (MetricType::Counter, Num::Count(n)) => ConstCounter::new(n).encode(point),
        (MetricType::Counter, Num::Real(x)) => ConstCounter::new(x).encode(point),
        (_, Num::Count(n)) => ConstGauge::new(n as i64).encode(point),
        (_, Num::Real(x)) => ConstGauge::new(x).encode(point),
    };
    let mut metric = encoder.encode_descriptor(name, help, unit, kind)?;
    match points.as_slice() {
        // A single figure without labels prints as `name value`, not `name{} value`.
        [(labels, value)] if labels.is_empty() => encode(metric, *value),
        _ => {
            for (labels, value) in points {
                encode(metric.encode_family(&labels)?, value)?;
            }
            Ok(())
        }
    }
}

/// The broker's state at scrape time: partitions, group lag, flushes, storage space.
#[derive(Debug)]
pub struct BrokerMetrics {
    broker: Broker,
    /// Every group as described at the last [`refresh`](Self::refresh): describing
    /// one may read the log, which the synchronous encoder cannot wait for.
    groups: parking_lot::Mutex<Vec<weir_broker::groups::GroupInfo>>,
}

impl BrokerMetrics {
    /// Figures of `broker`.
    pub fn new(broker: Broker) -> Self {
        Self {
            broker,
            groups: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// Reads what the next encoding shows and cannot read itself.
    async fn refresh(&self) {
        let mut groups = Vec::new();
        for name in self.broker.groups().list().unwrap_or_default() {
            if let Ok(g) = self.broker.groups().describe(&name).await {
                groups.push(g);
            }
        }
        *self.groups.lock() = groups;
    }
}

/// [`BrokerMetrics`] as the registry's collector, shared with [`Telemetry`].
#[derive(Debug)]
struct SharedBrokerMetrics(Arc<BrokerMetrics>);

impl Collector for SharedBrokerMetrics {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }
}

impl BrokerMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let topics = self.broker.topics();
        let mut hw = Vec::new();
        let mut start = Vec::new();
        let mut size = Vec::new();
        let numbers: Vec<Vec<String>> = topics
            .iter()
            .map(|t| (0..t.partition_count()).map(|p| p.to_string()).collect())
            .collect();
        let mut used = 0u64;
        for (t, names) in topics.iter().zip(&numbers) {
            for (p, name) in names.iter().enumerate() {
                let Ok(part) = t.partition(p as u32) else {
                    continue;
                };
                let labels = vec![("topic", t.name()), ("partition", name.as_str())];
                hw.push((labels.clone(), Num::Count(part.high_watermark())));
                start.push((labels.clone(), Num::Count(part.log_start_offset())));
                let bytes = part.size_bytes();
                used += bytes;
                size.push((labels, Num::Count(bytes)));
            }
        }
        family(
            &mut encoder,
            "weir_partition_high_watermark",
            "Next offset to be written (records below it are durable and readable)",
            None,
            MetricType::Gauge,
            hw,
        )?;
        family(
            &mut encoder,
            "weir_partition_log_start_offset",
            "First offset still stored (retention moves it)",
            None,
            MetricType::Gauge,
            start,
        )?;
        family(
            &mut encoder,
            "weir_partition_size",
            "Bytes of stored batches",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            size,
        )?;
        let groups = self.groups.lock().clone();
        let partition_names: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                g.partitions
                    .iter()
                    .map(|p| p.partition.to_string())
                    .collect()
            })
            .collect();
        let mut lag = Vec::new();
        let mut lag_seconds = Vec::new();
        for (g, names) in groups.iter().zip(&partition_names) {
            for (p, name) in g.partitions.iter().zip(names) {
                let labels = vec![
                    ("group", g.group.as_str()),
                    ("topic", p.topic.as_str()),
                    ("partition", name.as_str()),
                ];
                lag.push((labels.clone(), Num::Count(p.lag_records)));
                lag_seconds.push((labels, Num::Real(p.lag_ms as f64 / 1e3)));
            }
        }
        family(
            &mut encoder,
            "weir_group_lag_records",
            "Records a consumer group has not consumed yet",
            None,
            MetricType::Gauge,
            lag,
        )?;
        family(
            &mut encoder,
            "weir_group_lag",
            "Age of the oldest record a consumer group has not consumed yet",
            Some(&Unit::Seconds),
            MetricType::Gauge,
            lag_seconds,
        )?;
        let stats = self.broker.stats();
        for (name, help, unit, snapshot) in [
            (
                "weir_flush_duration",
                "Flushes that made appends durable (sled flush + fsync), by duration",
                Some(&Unit::Seconds),
                stats.flush_duration.snapshot(1e-9),
            ),
            (
                "weir_flush_records",
                "Records made durable per flush (group commit)",
                None,
                stats.flush_records.snapshot(1.0),
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, unit, MetricType::Histogram)?;
            ConstHistogram(snapshot).encode(metric)?;
        }
        family(
            &mut encoder,
            "weir_storage_used",
            "Bytes of stored batches over all partitions",
            Some(&Unit::Bytes),
            MetricType::Gauge,
            vec![(vec![], Num::Count(used))],
        )?;
        let dedup = self.broker.idempotence_stats();
        for (name, help, kind, n) in [
            (
                "weir_idempotency_keys",
                "Idempotency keys remembered now (bounded by [idempotence] max_keys)",
                MetricType::Gauge,
                dedup.keys as u64,
            ),
            (
                "weir_idempotency_keys_evicted",
                "Idempotency keys forgotten before their window ended, to stay under max_keys",
                MetricType::Counter,
                dedup.keys_evicted,
            ),
            (
                "weir_producer_sessions",
                "Producer sessions (producer id and partition) known now",
                MetricType::Gauge,
                dedup.sessions as u64,
            ),
        ] {
            family(
                &mut encoder,
                name,
                help,
                None,
                kind,
                vec![(vec![], Num::Count(n))],
            )?;
        }
        if let Some(free) = self.broker.health().free_bytes {
            family(
                &mut encoder,
                "weir_storage_free",
                "Bytes free on the data directory's file system",
                Some(&Unit::Bytes),
                MetricType::Gauge,
                vec![(vec![], Num::Count(free))],
            )?;
        }
        Ok(())
    }
}

/// Shared by the handlers.
pub type SharedTelemetry = Arc<Telemetry>;
