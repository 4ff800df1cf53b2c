//! What arrived, decoded, bounded: the oldest requests are evicted past a cap, and counted.

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Counts of what the receiver accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests answered 200.
    pub requests: u64,
    /// Requests answered 400 (undecodable).
    pub rejected_requests: u64,
    /// Spans received.
    pub spans: u64,
    /// Metric data points received.
    pub data_points: u64,
    /// Log records received.
    pub log_records: u64,
    /// Decoded protobuf bytes received.
    pub bytes: u64,
    /// Requests dropped from memory to stay under the cap (still counted above).
    pub evicted_requests: u64,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) traces: VecDeque<ExportTraceServiceRequest>,
    pub(crate) metrics: VecDeque<ExportMetricsServiceRequest>,
    pub(crate) logs: VecDeque<ExportLogsServiceRequest>,
    pub(crate) counts: Counts,
    kept_items: usize,
}

pub(crate) struct Store {
    inner: Mutex<Inner>,
    max_items: usize,
}

fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

fn point_count(r: &ExportMetricsServiceRequest) -> usize {
    use crate::proto::metrics::v1::metric::Data;
    r.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

fn log_count(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

impl Store {
    pub(crate) fn new(max_items: usize) -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            max_items: max_items.max(1),
        }
    }

    fn evict(&self, inner: &mut Inner) {
        while inner.kept_items > self.max_items {
            let freed = if let Some(r) = inner.traces.pop_front() {
                span_count(&r)
            } else if let Some(r) = inner.logs.pop_front() {
                log_count(&r)
            } else if let Some(r) = inner.metrics.pop_front() {
                point_count(&r)
            } else {
                break;
            };
            inner.kept_items = inner.kept_items.saturating_sub(freed.max(1));
            inner.counts.evicted_requests += 1;
        }
    }

    pub(crate) fn add_traces(&self, request: ExportTraceServiceRequest, bytes: usize) {
        let n = span_count(&request);
        let mut inner = self.inner.lock();
        inner.counts.requests += 1;
        inner.counts.spans += n as u64;
        inner.counts.bytes += bytes as u64;
        inner.kept_items += n.max(1);
        inner.traces.push_back(request);
        self.evict(&mut inner);
    }

    pub(crate) fn add_metrics(&self, request: ExportMetricsServiceRequest, bytes: usize) {
        let n = point_count(&request);
        let mut inner = self.inner.lock();
        inner.counts.requests += 1;
        inner.counts.data_points += n as u64;
        inner.counts.bytes += bytes as u64;
        inner.kept_items += n.max(1);
        inner.metrics.push_back(request);
        self.evict(&mut inner);
    }

    pub(crate) fn add_logs(&self, request: ExportLogsServiceRequest, bytes: usize) {
        let n = log_count(&request);
        let mut inner = self.inner.lock();
        inner.counts.requests += 1;
        inner.counts.log_records += n as u64;
        inner.counts.bytes += bytes as u64;
        inner.kept_items += n.max(1);
        inner.logs.push_back(request);
        self.evict(&mut inner);
    }

    pub(crate) fn count_rejected(&self) {
        self.inner.lock().counts.rejected_requests += 1;
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self.inner.lock())
    }
}
