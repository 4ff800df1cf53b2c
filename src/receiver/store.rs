//! What arrived, decoded, bounded in items and in bytes: the oldest requests are evicted past
//! either cap, and counted.

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Counts of what the receiver accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counts {
    /// Requests answered 200.
    pub requests: u64,
    /// Requests refused (undecodable, too large, malformed, unsupported).
    pub rejected_requests: u64,
    /// Spans received.
    pub spans: u64,
    /// Metric data points received.
    pub data_points: u64,
    /// Log records received.
    pub log_records: u64,
    /// Decoded protobuf bytes received.
    pub bytes: u64,
    /// Requests dropped from memory to stay under the caps (still counted above).
    pub evicted_requests: u64,
}

/// A request as kept: what it cost against the caps travels with it.
pub(crate) struct Kept<T> {
    pub(crate) request: T,
    items: usize,
    bytes: usize,
}

#[derive(Default)]
pub(crate) struct Inner {
    pub(crate) traces: VecDeque<Kept<ExportTraceServiceRequest>>,
    pub(crate) metrics: VecDeque<Kept<ExportMetricsServiceRequest>>,
    pub(crate) logs: VecDeque<Kept<ExportLogsServiceRequest>>,
    pub(crate) counts: Counts,
    kept_items: usize,
    kept_bytes: usize,
    /// Arrival order of the kept requests, to evict the oldest of any signal first.
    order: VecDeque<Signal>,
}

#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

pub(crate) struct Store {
    inner: Mutex<Inner>,
    max_items: usize,
    max_bytes: usize,
}

pub(crate) fn span_count(r: &ExportTraceServiceRequest) -> usize {
    r.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

pub(crate) fn point_count(r: &ExportMetricsServiceRequest) -> usize {
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

pub(crate) fn log_count(r: &ExportLogsServiceRequest) -> usize {
    r.resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

impl Inner {
    pub(crate) fn traces(&self) -> impl Iterator<Item = &ExportTraceServiceRequest> + Clone {
        self.traces.iter().map(|k| &k.request)
    }

    pub(crate) fn metrics(&self) -> impl Iterator<Item = &ExportMetricsServiceRequest> + Clone {
        self.metrics.iter().map(|k| &k.request)
    }

    pub(crate) fn logs(&self) -> impl Iterator<Item = &ExportLogsServiceRequest> + Clone {
        self.logs.iter().map(|k| &k.request)
    }

    fn evict_oldest(&mut self) -> bool {
        let Some(signal) = self.order.pop_front() else {
            return false;
        };
        let (items, bytes) = match signal {
            Signal::Traces => self.traces.pop_front().map(|k| (k.items, k.bytes)),
            Signal::Metrics => self.metrics.pop_front().map(|k| (k.items, k.bytes)),
            Signal::Logs => self.logs.pop_front().map(|k| (k.items, k.bytes)),
        }
        .unwrap_or((0, 0));
        self.kept_items -= items;
        self.kept_bytes -= bytes;
        self.counts.evicted_requests += 1;
        true
    }
}

impl Store {
    /// `max_bytes` counts decoded protobuf bytes; the newest request is always kept.
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> Self {
        Store {
            inner: Mutex::new(Inner::default()),
            max_items: max_items.max(1),
            max_bytes,
        }
    }

    fn keep<T>(
        &self,
        request: T,
        items: usize,
        bytes: usize,
        signal: Signal,
        queue: impl FnOnce(&mut Inner) -> &mut VecDeque<Kept<T>>,
        count: impl FnOnce(&mut Counts, u64),
    ) {
        // An empty request still costs an entry, so a flood of them is bounded too.
        let cost = items.max(1);
        let mut inner = self.inner.lock();
        while !inner.order.is_empty()
            && (inner.kept_items + cost > self.max_items
                || inner.kept_bytes + bytes > self.max_bytes)
        {
            inner.evict_oldest();
        }
        inner.counts.requests += 1;
        inner.counts.bytes += bytes as u64;
        count(&mut inner.counts, items as u64);
        inner.kept_items += cost;
        inner.kept_bytes += bytes;
        inner.order.push_back(signal);
        queue(&mut inner).push_back(Kept {
            request,
            items: cost,
            bytes,
        });
    }

    pub(crate) fn add_traces(&self, request: ExportTraceServiceRequest, bytes: usize) {
        let n = span_count(&request);
        self.keep(
            request,
            n,
            bytes,
            Signal::Traces,
            |i| &mut i.traces,
            |c, n| c.spans += n,
        );
    }

    pub(crate) fn add_metrics(&self, request: ExportMetricsServiceRequest, bytes: usize) {
        let n = point_count(&request);
        self.keep(
            request,
            n,
            bytes,
            Signal::Metrics,
            |i| &mut i.metrics,
            |c, n| c.data_points += n,
        );
    }

    pub(crate) fn add_logs(&self, request: ExportLogsServiceRequest, bytes: usize) {
        let n = log_count(&request);
        self.keep(
            request,
            n,
            bytes,
            Signal::Logs,
            |i| &mut i.logs,
            |c, n| c.log_records += n,
        );
    }

    pub(crate) fn count_rejected(&self) {
        self.inner.lock().counts.rejected_requests += 1;
    }

    /// Grows whenever something was accepted or refused: the live page polls it.
    pub(crate) fn changes(&self) -> u64 {
        let counts = self.inner.lock().counts;
        counts.requests + counts.rejected_requests
    }

    pub(crate) fn counts(&self) -> Counts {
        self.inner.lock().counts
    }

    /// Kept items and bytes, for tests of the caps.
    pub(crate) fn kept(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.kept_items, inner.kept_bytes)
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&Inner) -> R) -> R {
        f(&self.inner.lock())
    }
}
