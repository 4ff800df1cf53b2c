//! What happened to every item: the app can read these at any time.
//!
//! For spans and log records, once the pipeline is flushed:
//! `produced = enqueued + dropped_queue_full` and
//! `enqueued = exported + dropped_send_failed + dropped_rejected`. A pipeline has its own
//! counters; a record made while none is installed is not produced into any.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

#[derive(Default, Debug)]
pub(crate) struct SignalCounters {
    pub(crate) enqueued: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) dropped_queue_full: AtomicU64,
    pub(crate) dropped_send_failed: AtomicU64,
    pub(crate) dropped_rejected: AtomicU64,
}

impl SignalCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    fn snapshot(&self) -> SignalCounts {
        SignalCounts {
            enqueued: self.enqueued.load(Relaxed),
            exported: self.exported.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_send_failed: self.dropped_send_failed.load(Relaxed),
            dropped_rejected: self.dropped_rejected.load(Relaxed),
        }
    }
}

#[derive(Default, Debug)]
pub(crate) struct Counters {
    pub(crate) spans: SignalCounters,
    pub(crate) logs: SignalCounters,
    pub(crate) metric_points: SignalCounters,
    pub(crate) requests_sent: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) span_consumer_panics: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            spans: self.spans.snapshot(),
            logs: self.logs.snapshot(),
            metric_points: self.metric_points.snapshot(),
            requests_sent: self.requests_sent.load(Relaxed),
            requests_failed: self.requests_failed.load(Relaxed),
            span_consumer_panics: self.span_consumer_panics.load(Relaxed),
        }
    }
}

/// Item counts for one signal.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignalCounts {
    /// Accepted into the export queue.
    pub enqueued: u64,
    /// Acknowledged by the endpoint.
    pub exported: u64,
    /// Dropped because the queue was full (the app is never made to wait).
    pub dropped_queue_full: u64,
    /// Dropped after the retry budget ran out (network errors, timeouts, 429/502/503/504), or
    /// because the request could not be sent at all (e.g. over the size cap).
    pub dropped_send_failed: u64,
    /// Refused by the endpoint: a non-retryable status (400, 401, 403, 404, 413, 500...) or the
    /// rejected count of a `partial_success` response.
    pub dropped_rejected: u64,
}

impl SignalCounts {
    /// Everything dropped, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_send_failed + self.dropped_rejected
    }
}

/// A point-in-time copy of the pipeline's counters; see [`crate::Telemetry::counters`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Spans.
    pub spans: SignalCounts,
    /// Log records.
    pub logs: SignalCounts,
    /// Metric data points (metrics are aggregated in-process, so `enqueued` counts the points
    /// collected for export).
    pub metric_points: SignalCounts,
    /// HTTP requests that got a response that ended the attempt chain successfully.
    pub requests_sent: u64,
    /// HTTP request attempts that failed (each retry counts).
    pub requests_failed: u64,
    /// Calls of a span consumer that panicked (caught: export went on).
    pub span_consumer_panics: u64,
}

/// Reads a pipeline's counters from anywhere, for as long as it is kept: from another thread
/// (a health endpoint) without a borrow of the [`crate::Telemetry`], and after its shutdown,
/// which consumes it. See [`crate::Telemetry::counters_reader`].
#[derive(Clone, Debug, Default)]
pub struct CountersReader(Option<Arc<Counters>>);

impl CountersReader {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        CountersReader(Some(counters))
    }

    /// What happened to every item so far; all zero for a disabled [`crate::Telemetry`].
    pub fn read(&self) -> CountersSnapshot {
        self.0
            .as_deref()
            .map(Counters::snapshot)
            .unwrap_or_default()
    }
}
