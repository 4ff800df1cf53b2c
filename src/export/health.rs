//! The pipeline's own health, exported with the metrics under the semantic conventions' SDK
//! metric names (`otel.sdk.*`): what each exporter delivered or lost and why, what the queue
//! accepted or dropped, and how full it is. Read from the same [`Counters`] as
//! [`crate::Telemetry::counters`], so the two always agree.
//!
//! Sums are cumulative since the pipeline started: a window whose export fails loses nothing,
//! the next export carries the totals. These points are not counted in the metric-point
//! counters they report (no feedback).

use crate::attributes::KeyValue;
use crate::core::counters::{Counters, SignalCounters};
use crate::metrics::{MetricData, MetricPoints, Number, NumberPoint, Temporality};
use std::sync::atomic::Ordering::Relaxed;

/// One signal's names in the conventions.
struct Names {
    unit: &'static str,
    exported: &'static str,
    exporter: &'static str,
    /// `None` for metric points, which have no processor queue.
    processor: Option<Processor>,
}

struct Processor {
    processed: &'static str,
    queue_size: &'static str,
    queue_capacity: &'static str,
    component: &'static str,
}

const SPANS: Names = Names {
    unit: "{span}",
    exported: "otel.sdk.exporter.span.exported",
    exporter: "otlp_http_span_exporter",
    processor: Some(Processor {
        processed: "otel.sdk.processor.span.processed",
        queue_size: "otel.sdk.processor.span.queue.size",
        queue_capacity: "otel.sdk.processor.span.queue.capacity",
        component: "batching_span_processor",
    }),
};

const LOGS: Names = Names {
    unit: "{log_record}",
    exported: "otel.sdk.exporter.log.exported",
    exporter: "otlp_http_log_exporter",
    processor: Some(Processor {
        processed: "otel.sdk.processor.log.processed",
        queue_size: "otel.sdk.processor.log.queue.size",
        queue_capacity: "otel.sdk.processor.log.queue.capacity",
        component: "batching_log_processor",
    }),
};

const METRIC_POINTS: Names = Names {
    unit: "{data_point}",
    exported: "otel.sdk.exporter.metric_data_point.exported",
    exporter: "otlp_http_metric_exporter",
    processor: None,
};

/// `error.type` values, one per way an item is lost (see `SignalCounts`).
const REJECTED: &str = "rejected";
const SEND_FAILED: &str = "send_failed";
const QUEUE_FULL: &str = "queue_full";

/// One pipeline's health reporting.
pub(crate) struct Health {
    /// The pipeline's start: where the cumulative sums begin.
    started_unix_nanos: u64,
    /// Items the queue holds (spans and log records share it).
    queue_capacity: usize,
}

impl Health {
    pub(crate) fn new(queue_capacity: usize) -> Health {
        Health {
            started_unix_nanos: crate::core::now_unix_nanos(),
            queue_capacity,
        }
    }

    /// The health metrics as of `now`.
    pub(crate) fn collect(&self, counters: &Counters, now: u64) -> Vec<MetricData> {
        collect(counters, self.queue_capacity, self.started_unix_nanos, now)
    }
}

fn collect(counters: &Counters, queue_capacity: usize, start: u64, now: u64) -> Vec<MetricData> {
    let point = |attributes: Vec<KeyValue>, value: u64| NumberPoint {
        attributes,
        start_unix_nanos: start,
        time_unix_nanos: now,
        value: Number::I64(i64::try_from(value).unwrap_or(i64::MAX)),
        exemplars: Vec::new(),
    };
    let component = |kind: &'static str| {
        vec![
            KeyValue::new("otel.component.type", kind),
            KeyValue::new("otel.component.name", format!("{kind}/0")),
        ]
    };
    let with_error = |mut attributes: Vec<KeyValue>, error: &'static str| {
        attributes.push(KeyValue::new("error.type", error));
        attributes
    };
    let sum = |name: &'static str, unit: &'static str, monotonic: bool, points| MetricData {
        name: name.into(),
        description: "".into(),
        unit: unit.into(),
        points: MetricPoints::Sum {
            temporality: Temporality::Cumulative,
            monotonic,
            points,
        },
    };
    let mut metrics = Vec::new();
    for (names, signal) in [
        (&SPANS, &counters.spans),
        (&LOGS, &counters.logs),
        (&METRIC_POINTS, &counters.metric_points),
    ] {
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
        let (exported, rejected, failed) = (
            load(&signal.exported),
            load(&signal.dropped_rejected),
            load(&signal.dropped_send_failed),
        );
        // Success is always reported (a zero says "nothing sent yet"); a cause only once it
        // has happened.
        let exporter = component(names.exporter);
        let mut points = vec![point(exporter.clone(), exported)];
        for (error, count) in [(REJECTED, rejected), (SEND_FAILED, failed)] {
            if count > 0 {
                points.push(point(with_error(exporter.clone(), error), count));
            }
        }
        metrics.push(sum(names.exported, names.unit, true, points));

        let Some(processor) = &names.processor else {
            continue;
        };
        let queue = component(processor.component);
        let enqueued = load(&signal.enqueued);
        let mut points = vec![point(queue.clone(), enqueued)];
        let queue_full = load(&signal.dropped_queue_full);
        if queue_full > 0 {
            points.push(point(with_error(queue.clone(), QUEUE_FULL), queue_full));
        }
        metrics.push(sum(processor.processed, names.unit, true, points));
        metrics.push(sum(
            processor.queue_size,
            names.unit,
            false,
            vec![point(queue.clone(), in_queue(signal))],
        ));
        metrics.push(sum(
            processor.queue_capacity,
            names.unit,
            false,
            vec![point(queue, queue_capacity as u64)],
        ));
    }
    metrics
}

/// Items accepted and not yet exported or dropped: waiting in the queue or in the batch being
/// sent.
fn in_queue(signal: &SignalCounters) -> u64 {
    let settled = signal.exported.load(Relaxed)
        + signal.dropped_send_failed.load(Relaxed)
        + signal.dropped_rejected.load(Relaxed);
    signal.enqueued.load(Relaxed).saturating_sub(settled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_counter_under_its_convention_name() {
        let counters = Counters::default();
        SignalCounters::add(&counters.spans.enqueued, 10);
        SignalCounters::add(&counters.spans.exported, 6);
        SignalCounters::add(&counters.spans.dropped_rejected, 1);
        SignalCounters::add(&counters.spans.dropped_queue_full, 4);
        let metrics = collect(&counters, 512, 1, 2);
        let value = |name: &str, error: Option<&str>| -> Option<i64> {
            let metric = metrics.iter().find(|m| m.name.as_str() == name)?;
            let MetricPoints::Sum { points, .. } = &metric.points else {
                return None;
            };
            points
                .iter()
                .find(|p| {
                    p.attributes
                        .iter()
                        .find(|a| a.key.as_str() == "error.type")
                        .map(|a| a.value.to_display_string())
                        .as_deref()
                        == error
                })
                .map(|p| match p.value {
                    Number::I64(v) => v,
                    Number::F64(v) => v as i64,
                })
        };
        assert_eq!(value("otel.sdk.exporter.span.exported", None), Some(6));
        assert_eq!(
            value("otel.sdk.exporter.span.exported", Some(REJECTED)),
            Some(1)
        );
        assert_eq!(
            value("otel.sdk.exporter.span.exported", Some(SEND_FAILED)),
            None
        );
        assert_eq!(value("otel.sdk.processor.span.processed", None), Some(10));
        assert_eq!(
            value("otel.sdk.processor.span.processed", Some(QUEUE_FULL)),
            Some(4)
        );
        assert_eq!(value("otel.sdk.processor.span.queue.size", None), Some(3));
        assert_eq!(
            value("otel.sdk.processor.log.queue.capacity", None),
            Some(512)
        );
        assert_eq!(
            value("otel.sdk.exporter.metric_data_point.exported", None),
            Some(0)
        );
        assert!(metrics
            .iter()
            .all(|m| m.name.starts_with("otel.sdk.") && !m.unit.is_empty()));
    }
}
