//! The results table: one row per system and workload, with each row's ratio to Weir
//! (over HTTP) in the same durability class, rendered as Markdown.

use std::fmt::Write as _;
use std::time::Duration;

use crate::system::Durability;

/// What was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// `batch` records per publish, `concurrency` publishers each waiting for its ack.
    Publish {
        value_bytes: usize,
        batch: usize,
        concurrency: usize,
    },
    /// Records of `value_bytes` produced asynchronously, batched by the client (a
    /// Kafka producer's `linger.ms`; over HTTP, full batches a few at a time).
    Async { value_bytes: usize },
    /// Read `records` records of `value_bytes` from the start of a stream.
    Consume { value_bytes: usize, records: u64 },
    /// Publish-to-receive latency at a fixed offered rate (records/s).
    Latency { rate: u64 },
}

impl Workload {
    /// Throughput workloads compare records/s; latency workloads compare p99.
    fn compares_latency(self) -> bool {
        matches!(self, Workload::Latency { .. })
    }
}

impl std::fmt::Display for Workload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Workload::Publish {
                value_bytes,
                batch: 1,
                concurrency,
            } => write!(f, "publish {value_bytes} B one by one, {concurrency} conc"),
            Workload::Publish {
                value_bytes,
                batch,
                concurrency,
            } => write!(
                f,
                "publish {value_bytes} B in batches of {batch}, {concurrency} conc"
            ),
            Workload::Async { value_bytes } => write!(
                f,
                "publish {value_bytes} B async, client-batched (Kafka linger {} ms; HTTP {} x {} in flight)",
                crate::kafka::LINGER_MS,
                crate::kafka::IN_FLIGHT,
                crate::kafka::http_batch(value_bytes)
            ),
            Workload::Consume {
                value_bytes,
                records,
            } => write!(
                f,
                "consume {} x {value_bytes} B from the start",
                thousands(records as f64)
            ),
            Workload::Latency { rate } => {
                write!(f, "publish -> receive at {}/s", thousands(rate as f64))
            }
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: Workload,
    pub system: String,
    /// `None` where durability does not apply (reads).
    pub durability: Option<Durability>,
    /// The row the others in its class are compared with.
    pub reference: bool,
    pub records: u64,
    /// Value bytes moved.
    pub bytes: u64,
    pub secs: f64,
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
}

impl Row {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs.max(f64::MIN_POSITIVE)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs.max(f64::MIN_POSITIVE) / 1e6
    }

    /// Sets p50 and p99 from `samples` (any order).
    pub fn with_percentiles(mut self, mut samples: Vec<Duration>) -> Row {
        samples.sort_unstable();
        self.p50 = percentile(&samples, 0.50);
        self.p99 = percentile(&samples, 0.99);
        self
    }
}

/// The `q` quantile of `sorted` samples: the sample at rank `round((n - 1) * q)`.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[rank.min(sorted.len() - 1)])
}

/// This row's figure over its reference's: records/s for throughput, p99 for latency
/// (so above 1 means faster on throughput rows and slower on latency rows).
pub fn ratio(row: &Row, rows: &[Row]) -> Option<f64> {
    let reference = rows
        .iter()
        .find(|r| r.reference && r.workload == row.workload && r.durability == row.durability)?;
    if row.workload.compares_latency() {
        Some(row.p99?.as_secs_f64() / reference.p99?.as_secs_f64().max(f64::MIN_POSITIVE))
    } else {
        Some(row.records_per_sec() / reference.records_per_sec().max(f64::MIN_POSITIVE))
    }
}

/// The table in Markdown, grouped by workload, then durability class, reference first.
pub fn markdown(rows: &[Row]) -> String {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (a.workload, a.durability, !a.reference).cmp(&(b.workload, b.durability, !b.reference))
    });
    let mut out = String::new();
    out.push_str(
        "| workload | system | durability | records/s | MB/s | p50 ms | p99 ms | ratio to Weir |\n",
    );
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|\n");
    for row in sorted {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
        };
        let mb = if row.bytes == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", row.mb_per_sec())
        };
        let ratio = match ratio(row, rows) {
            Some(r) if row.workload.compares_latency() => format!("{r:.2} (p99)"),
            Some(r) => format!("{r:.2}"),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.workload,
            row.system,
            row.durability.map_or("-", Durability::label),
            thousands(row.records_per_sec()),
            mb,
            ms(row.p50),
            ms(row.p99),
            ratio
        );
    }
    out
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, reference: bool, records: u64, p99_ms: u64, w: Workload) -> Row {
        Row {
            workload: w,
            system: system.into(),
            durability: Some(Durability::FsyncPerAck),
            reference,
            records,
            bytes: records * 100,
            secs: 1.0,
            p50: Some(Duration::from_millis(1)),
            p99: Some(Duration::from_millis(p99_ms)),
        }
    }

    #[test]
    fn ratios_are_to_the_reference_of_the_same_workload_and_class() {
        let publish = Workload::Publish {
            value_bytes: 100,
            batch: 1000,
            concurrency: 1,
        };
        let latency = Workload::Latency { rate: 1000 };
        let rows = vec![
            row("peer", false, 250, 4, publish),
            row("weir", true, 500, 2, publish),
            row("peer", false, 1000, 3, latency),
            row("weir", true, 1000, 2, latency),
        ];
        assert_eq!(ratio(&rows[0], &rows), Some(0.5));
        assert_eq!(ratio(&rows[1], &rows), Some(1.0));
        assert_eq!(ratio(&rows[2], &rows), Some(1.5));
        let table = markdown(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6);
        // The reference comes first within its group.
        assert!(lines[2].contains("| weir |") && lines[2].contains("| 1.00 |"));
        assert!(lines[3].contains("| peer |") && lines[3].contains("| 0.50 |"));
        assert!(lines[5].contains("1.50 (p99)"), "{}", lines[5]);
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 0.5), Some(Duration::from_millis(51)));
        assert_eq!(percentile(&v, 0.99), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
