//! Processors in `GET /metrics`, read from their status at scrape time:
//! `weir_processor_state{processor,state}`, `weir_processor_generation`, the counters
//! (`weir_processor_records_total`, `_emitted_total`, `_late_total`,
//! `_windows_closed_total`, `_timers_fired_total`, `_errors_total`,
//! `_dead_lettered_total`, `_skipped_total`), and the gauges
//! `weir_processor_lag_records`, `weir_processor_windows_open`,
//! `weir_processor_timers` and `weir_processor_watermark_ms` (the lowest over its
//! input partitions: how far event time has got).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;

use crate::telemetry::{Labels, Num};

/// The processors' figures.
#[derive(Debug)]
pub struct ProcessorMetrics {
    /// The processor runtime.
    pub processors: weir_processors::Processors,
}

impl Collector for ProcessorMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let all = self.processors.list();
        let mut family =
            |name: &str, help: &str, kind: MetricType, points: Vec<(Labels<'_>, Num)>| {
                crate::telemetry::family(&mut encoder, name, help, None, kind, points)
            };
        let each = |f: &dyn Fn(&weir_processors::ProcessorStatus) -> Option<u64>| {
            all.iter()
                .filter_map(|p| Some((vec![("processor", p.name.as_str())], Num::Count(f(p)?))))
                .collect::<Vec<_>>()
        };
        family(
            "weir_processor_state",
            "1 for the processor's current state (starting, running, paused, backoff, failed)",
            MetricType::Gauge,
            all.iter()
                .map(|p| {
                    (
                        vec![("processor", p.name.as_str()), ("state", p.state.as_str())],
                        Num::Count(1),
                    )
                })
                .collect(),
        )?;
        for counter in [
            "records",
            "emitted",
            "late",
            "windows_closed",
            "timers_fired",
            "errors",
            "dead_lettered",
            "skipped",
        ] {
            family(
                &format!("weir_processor_{counter}"),
                &format!(
                    "The processor's {} since the broker started",
                    counter.replace('_', " ")
                ),
                MetricType::Counter,
                each(&|p| p.counters.get(counter).copied()),
            )?;
        }
        for (name, help, f) in [
            (
                "weir_processor_generation",
                "The generation its tasks commit under",
                (|p| Some(p.generation)) as fn(&weir_processors::ProcessorStatus) -> Option<u64>,
            ),
            (
                "weir_processor_lag_records",
                "Records of its inputs not processed yet",
                |p| p.lag_records,
            ),
            ("weir_processor_windows_open", "Windows open", |p| {
                Some(p.windows_open as u64)
            }),
            ("weir_processor_timers", "Timers set", |p| {
                Some(p.timers as u64)
            }),
            (
                "weir_processor_watermark_ms",
                "The lowest watermark over its input partitions (ms since the epoch)",
                |p| p.watermark_ms.and_then(|w| u64::try_from(w).ok()),
            ),
        ] {
            family(name, help, MetricType::Gauge, each(&f))?;
        }
        Ok(())
    }
}
