//! Aggregated metric data as handed to the export pipeline at each collection.

use crate::attributes::{KeyValue, Str};
use crate::trace::{SpanId, TraceId};
use std::sync::Arc;

/// A measurement kept beside a data point, with the span that was current when it was made.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Exemplar {
    /// When it was measured, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// The measured value.
    pub value: Number,
    /// The current span's trace (`None` when no span was current, with the `always_on` filter).
    pub trace_id: Option<TraceId>,
    /// The current span.
    pub span_id: Option<SpanId>,
    /// The measurement's attributes that the point does not carry; this crate has no views that
    /// drop attributes, so it is empty.
    pub filtered_attributes: Vec<KeyValue>,
}

/// How points relate to earlier exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Temporality {
    /// Each point holds only what was recorded since the previous collection.
    Delta,
    /// Each point holds everything since the instrument was created.
    Cumulative,
}

/// A number recorded by a counter or gauge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    /// Integer.
    I64(i64),
    /// Float.
    F64(f64),
}

/// A histogram data point for one attribute set.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    /// The attribute set.
    pub attributes: Vec<KeyValue>,
    /// Start of the window, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End of the window (collection time), Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// Measurements.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
    /// Explicit upper-inclusive bucket bounds.
    pub bounds: Arc<[f64]>,
    /// `bounds.len() + 1` counts.
    pub bucket_counts: Vec<u64>,
    /// At most one measurement per bucket, made while a sampled span was current.
    pub exemplars: Vec<Exemplar>,
}

/// A counter or gauge data point for one attribute set.
#[derive(Clone, Debug, PartialEq)]
pub struct NumberPoint {
    /// The attribute set.
    pub attributes: Vec<KeyValue>,
    /// Start of the window, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// Collection time, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// The value.
    pub value: Number,
    /// A few measurements of the window, made while a sampled span was current.
    pub exemplars: Vec<Exemplar>,
}

/// The points of one instrument.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricPoints {
    /// Histogram points.
    Histogram {
        /// Delta or cumulative.
        temporality: Temporality,
        /// One per attribute set.
        points: Vec<HistogramPoint>,
    },
    /// Counter / up-down counter points.
    Sum {
        /// Delta or cumulative.
        temporality: Temporality,
        /// Counters are monotonic; up-down counters are not.
        monotonic: bool,
        /// One per attribute set.
        points: Vec<NumberPoint>,
    },
    /// Gauge points.
    Gauge(Vec<NumberPoint>),
}

impl MetricPoints {
    /// How many data points.
    pub fn len(&self) -> usize {
        match self {
            MetricPoints::Histogram { points, .. } => points.len(),
            MetricPoints::Sum { points, .. } => points.len(),
            MetricPoints::Gauge(points) => points.len(),
        }
    }

    /// No data points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One instrument's collected data.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricData {
    /// Instrument name.
    pub name: Str,
    /// Description.
    pub description: Str,
    /// Unit (UCUM, e.g. `s`).
    pub unit: Str,
    /// The points.
    pub points: MetricPoints,
}
