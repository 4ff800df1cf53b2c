//! The public instruments: created once by name from a process-wide registry, recorded from any
//! thread, collected by the exporter.

use super::aggregate::{Aggregation, Aggregator, Series};
use super::buckets::Buckets;
use super::data::{MetricData, MetricPoints, Number, NumberPoint, Temporality};
use super::exemplar::Mode;
use super::name::{validate_boundaries, validate_name, validate_unit, MetricsError};
use crate::attributes::{KeyValue, Str};
use parking_lot::{Mutex, RwLock};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// OpenTelemetry's default explicit bucket bounds.
pub const DEFAULT_BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];
/// The semantic conventions' advice for durations in seconds (`http.server.request.duration`
/// among others): the default boundaries of a histogram whose unit is `s`.
pub const SECONDS_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Semantic-conventions bounds (seconds) for `db.client.operation.duration`.
pub const DB_CLIENT_DURATION_BOUNDS: [f64; 9] =
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];
/// Attribute sets per instrument before measurements go to the overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;

/// Measurements rejected (NaN, infinities, negative counter increments), all instruments.
static INVALID: AtomicU64 = AtomicU64::new(0);

/// The default boundaries for a histogram of `unit`: the semantic conventions' duration advice
/// scaled to the time unit (`s`, `ms`, `us`, `ns`), else OpenTelemetry's defaults.
pub fn default_boundaries(unit: &str) -> Vec<f64> {
    let scale = match unit {
        "s" => 1.0,
        "ms" => 1e3,
        "us" => 1e6,
        "ns" => 1e9,
        _ => return DEFAULT_BOUNDS.to_vec(),
    };
    SECONDS_BOUNDS
        .iter()
        .map(|b| (b * scale * 1e6).round() / 1e6)
        .collect()
}

/// Measurements rejected so far across all instruments: NaN, ±infinity, or a negative
/// increment on a monotonic counter. They never reach a sum.
pub fn invalid_measurements() -> u64 {
    INVALID.load(Ordering::Relaxed)
}

type Callback = Box<dyn Fn(&mut Observer) + Send + Sync>;

enum Source {
    Aggregated(Aggregator),
    Observed {
        kind: ObservedKind,
        callback: Callback,
        /// Previous cumulative totals per attribute set, for observable counters' deltas.
        previous: Mutex<Vec<(Vec<KeyValue>, f64)>>,
        created_unix_nanos: u64,
        last_collection_unix_nanos: AtomicU64,
        cardinality_limit: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ObservedKind {
    Gauge,
    Counter,
    UpDownCounter,
}

struct Instrument {
    name: Str,
    description: Str,
    unit: Str,
    kind: &'static str,
    source: Source,
}

impl Instrument {
    fn aggregator(&self) -> &Aggregator {
        match &self.source {
            Source::Aggregated(a) => a,
            Source::Observed { .. } => unreachable!("only aggregated instruments record"),
        }
    }

    fn record(&self, value: f64, int_value: i64, attributes: &[KeyValue], monotonic: bool) {
        let mode = Mode::current();
        if !mode.is_on() {
            return;
        }
        let aggregator = self.aggregator();
        if !value.is_finite() || (monotonic && value < 0.0) {
            aggregator.dropped_invalid.fetch_add(1, Ordering::Relaxed);
            INVALID.fetch_add(1, Ordering::Relaxed);
            return;
        }
        aggregator.record(value, int_value, attributes, mode);
    }

    fn collect(&self, now: u64) -> Option<MetricData> {
        let points = match &self.source {
            Source::Aggregated(a) => a.collect(now),
            Source::Observed {
                kind,
                callback,
                previous,
                created_unix_nanos,
                last_collection_unix_nanos,
                cardinality_limit,
            } => {
                let start_of_window = last_collection_unix_nanos.swap(now, Ordering::Relaxed);
                let mut observer = Observer::default();
                callback(&mut observer);
                observer.cap(*cardinality_limit, *kind == ObservedKind::Gauge);
                let point = |attributes: Vec<KeyValue>, value: f64, start: u64| NumberPoint {
                    attributes,
                    start_unix_nanos: start,
                    time_unix_nanos: now,
                    value: Number::F64(value),
                    exemplars: Vec::new(),
                };
                match kind {
                    ObservedKind::Gauge => MetricPoints::Gauge(
                        observer
                            .observations
                            .into_iter()
                            .map(|(a, v)| point(a, v, start_of_window))
                            .collect(),
                    ),
                    ObservedKind::UpDownCounter => MetricPoints::Sum {
                        temporality: Temporality::Cumulative,
                        monotonic: false,
                        points: observer
                            .observations
                            .into_iter()
                            .map(|(a, v)| point(a, v, *created_unix_nanos))
                            .collect(),
                    },
                    ObservedKind::Counter => {
                        let mut previous = previous.lock();
                        let mut points = Vec::new();
                        for (attributes, total) in observer.observations {
                            let before = previous.iter_mut().find(|(a, _)| *a == attributes);
                            let delta = match before {
                                Some((_, last)) => {
                                    let delta = (total - *last).max(0.0);
                                    *last = total;
                                    delta
                                }
                                None => {
                                    previous.push((attributes.clone(), total));
                                    total
                                }
                            };
                            points.push(point(attributes, delta, start_of_window));
                        }
                        MetricPoints::Sum {
                            temporality: Temporality::Delta,
                            monotonic: true,
                            points,
                        }
                    }
                }
            }
        };
        (!points.is_empty()).then(|| MetricData {
            name: self.name.clone(),
            description: self.description.clone(),
            unit: self.unit.clone(),
            points,
        })
    }
}

static REGISTRY: RwLock<Vec<Arc<Instrument>>> = parking_lot::const_rwlock(Vec::new());

/// Everything recorded since the previous collection (the exporter thread calls this).
pub(crate) fn collect(now_unix_nanos: u64) -> Vec<MetricData> {
    let instruments: Vec<Arc<Instrument>> = REGISTRY.read().clone();
    instruments
        .iter()
        .filter_map(|i| i.collect(now_unix_nanos))
        .collect()
}

fn register(
    name: &Str,
    kind: &'static str,
    make: impl FnOnce() -> Result<Instrument, MetricsError>,
) -> Result<Arc<Instrument>, MetricsError> {
    validate_name(name)?;
    let mut registry = REGISTRY.write();
    if let Some(existing) = registry.iter().find(|i| i.name.eq_ignore_ascii_case(name)) {
        return if existing.kind == kind {
            Ok(Arc::clone(existing))
        } else {
            Err(MetricsError::KindConflict {
                name: name.to_string(),
                existing: existing.kind,
                requested: kind,
            })
        };
    }
    let instrument = Arc::new(make()?);
    registry.push(Arc::clone(&instrument));
    Ok(instrument)
}

/// Values a histogram or counter accepts.
pub trait Measure: Copy + Send + Sync + 'static {
    #[doc(hidden)]
    fn as_f64(self) -> f64;
    #[doc(hidden)]
    fn as_i64(self) -> i64;
    #[doc(hidden)]
    const INTEGER: bool;
}

impl Measure for f64 {
    fn as_f64(self) -> f64 {
        self
    }
    fn as_i64(self) -> i64 {
        self as i64
    }
    const INTEGER: bool = false;
}

impl Measure for u64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn as_i64(self) -> i64 {
        i64::try_from(self).unwrap_or(i64::MAX)
    }
    const INTEGER: bool = true;
}

impl Measure for i64 {
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn as_i64(self) -> i64 {
        self
    }
    const INTEGER: bool = true;
}

/// Describes an instrument; `.build()` creates it (or returns the existing one of that name).
#[must_use = "call .build()"]
pub struct InstrumentBuilder<I> {
    name: Str,
    unit: Str,
    description: Str,
    boundaries: Option<Vec<f64>>,
    cardinality_limit: usize,
    _instrument: PhantomData<I>,
}

impl<I> InstrumentBuilder<I> {
    fn new(name: Str) -> Self {
        InstrumentBuilder {
            name,
            unit: Str::Static(""),
            description: Str::Static(""),
            boundaries: None,
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            _instrument: PhantomData,
        }
    }
    /// The unit (UCUM), e.g. `s` or `By`.
    pub fn unit(mut self, unit: impl Into<Str>) -> Self {
        self.unit = unit.into();
        self
    }
    /// A description.
    pub fn description(mut self, description: impl Into<Str>) -> Self {
        self.description = description.into();
        self
    }
    /// Attribute sets kept before measurements go to the `otel.metric.overflow` series.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit.max(1);
        self
    }

    fn aggregated(
        self,
        kind: &'static str,
        aggregation: Aggregation,
    ) -> Result<Arc<Instrument>, MetricsError> {
        let name = self.name.clone();
        register(&name, kind, || {
            validate_unit(&self.name, &self.unit)?;
            Ok(Instrument {
                name: self.name,
                description: self.description,
                unit: self.unit,
                kind,
                source: Source::Aggregated(Aggregator::new(
                    aggregation,
                    self.cardinality_limit,
                    crate::core::now_unix_nanos(),
                )),
            })
        })
    }

    fn observed(
        self,
        kind: &'static str,
        observed: ObservedKind,
        callback: Callback,
    ) -> Result<Arc<Instrument>, MetricsError> {
        let name = self.name.clone();
        register(&name, kind, || {
            validate_unit(&self.name, &self.unit)?;
            let now = crate::core::now_unix_nanos();
            Ok(Instrument {
                name: self.name,
                description: self.description,
                unit: self.unit,
                kind,
                source: Source::Observed {
                    kind: observed,
                    callback,
                    previous: Mutex::new(Vec::new()),
                    created_unix_nanos: now,
                    last_collection_unix_nanos: AtomicU64::new(now),
                    cardinality_limit: self.cardinality_limit,
                },
            })
        })
    }
}

/// A histogram of `T` (f64 or u64) values.
///
/// ```
/// use plain_connect::{metrics, KeyValue};
/// let latency = metrics::histogram("checkout.latency")
///     .unit("s")
///     .boundaries(vec![0.01, 0.1, 1.0])
///     .build()
///     .unwrap();
/// latency.record(0.042, &[KeyValue::new("payment.provider", "acme")]);
/// let bound = latency.bind(&[KeyValue::new("payment.provider", "acme")]);
/// bound.record(0.050);
/// ```
pub struct Histogram<T> {
    instrument: Arc<Instrument>,
    buckets: Arc<Buckets>,
    _value: PhantomData<T>,
}

impl<T> Clone for Histogram<T> {
    fn clone(&self) -> Self {
        Histogram {
            instrument: Arc::clone(&self.instrument),
            buckets: Arc::clone(&self.buckets),
            _value: PhantomData,
        }
    }
}

impl<T: Measure> InstrumentBuilder<Histogram<T>> {
    /// Explicit bucket upper bounds (finite, strictly increasing). Without them the unit
    /// decides ([`default_boundaries`]): `s` gets the semantic conventions' duration bounds
    /// 0.005 … 10, `ms` the same in milliseconds (5 … 10 000), `us` and `ns` likewise; any
    /// other unit OpenTelemetry's defaults 0, 5, 10 … 10 000.
    pub fn boundaries(mut self, bounds: Vec<f64>) -> Self {
        self.boundaries = Some(bounds);
        self
    }
    /// Creates the histogram.
    pub fn build(mut self) -> Result<Histogram<T>, MetricsError> {
        let bounds = self
            .boundaries
            .take()
            .unwrap_or_else(|| default_boundaries(&self.unit));
        validate_boundaries(&self.name, &bounds)?;
        let name = self.name.clone();
        let instrument = self.aggregated(
            "histogram",
            Aggregation::Histogram {
                buckets: Arc::new(Buckets::new(Arc::from(bounds))),
                integer: T::INTEGER,
            },
        )?;
        // The registered instrument's (an earlier one of this name keeps its boundaries).
        let buckets = match &instrument.source {
            Source::Aggregated(a) => a.buckets().cloned(),
            Source::Observed { .. } => None,
        };
        let buckets = buckets.ok_or_else(|| MetricsError::KindConflict {
            name: name.to_string(),
            existing: instrument.kind,
            requested: "histogram",
        })?;
        Ok(Histogram {
            instrument,
            buckets,
            _value: PhantomData,
        })
    }
}

impl<T: Measure> Histogram<T> {
    /// Records a value for an attribute set. NaN and infinities are rejected and counted.
    pub fn record(&self, value: T, attributes: &[KeyValue]) {
        self.instrument
            .record(value.as_f64(), value.as_i64(), attributes, false);
    }
    /// Resolves the attribute set once, for hot paths.
    pub fn bind(&self, attributes: &[KeyValue]) -> BoundHistogram<T> {
        BoundHistogram {
            series: self.instrument.aggregator().bind(attributes),
            buckets: Arc::clone(&self.buckets),
            instrument: Arc::clone(&self.instrument),
            _value: PhantomData,
        }
    }
    /// Measurements this instrument rejected (NaN, infinities).
    pub fn dropped_invalid(&self) -> u64 {
        self.instrument
            .aggregator()
            .dropped_invalid
            .load(Ordering::Relaxed)
    }
}

/// A histogram with its attribute set resolved: a record is a table look-up for the bucket and
/// four stores under a short lock.
pub struct BoundHistogram<T> {
    series: Arc<Series>,
    buckets: Arc<Buckets>,
    instrument: Arc<Instrument>,
    _value: PhantomData<T>,
}

impl<T: Measure> BoundHistogram<T> {
    /// Records a value. NaN and infinities are rejected and counted.
    #[inline]
    pub fn record(&self, value: T) {
        // One test for the common case (recording on, no exemplar wanted, a value the bucket
        // table answers for, the lock free); everything else is sorted out of line.
        if Mode::current().plain() && self.series.try_record_bound(value.as_f64(), &self.buckets) {
            return;
        }
        self.record_slowly(value);
    }

    #[cold]
    #[inline(never)]
    fn record_slowly(&self, value: T) {
        let mode = Mode::current();
        if !mode.is_on() {
            return;
        }
        let v = value.as_f64();
        if !v.is_finite() {
            let aggregator = self.instrument.aggregator();
            aggregator.dropped_invalid.fetch_add(1, Ordering::Relaxed);
            INVALID.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if mode.wants_exemplar() {
            self.series
                .record_bound_with_exemplar(v, value.as_i64(), &self.buckets);
        } else {
            self.series.record_bound(v, &self.buckets);
        }
    }
}

/// Another handle to the same series, e.g. one per request thread.
impl<T> Clone for BoundHistogram<T> {
    fn clone(&self) -> Self {
        self.series.bind_again();
        BoundHistogram {
            series: Arc::clone(&self.series),
            buckets: Arc::clone(&self.buckets),
            instrument: Arc::clone(&self.instrument),
            _value: PhantomData,
        }
    }
}

impl<T> Drop for BoundHistogram<T> {
    fn drop(&mut self) {
        self.series.unbind();
    }
}

/// A sum: monotonic [`Counter`] (delta) or [`UpDownCounter`] (cumulative).
macro_rules! sum_instrument {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $monotonic:expr) => {
        $(#[$doc])*
        pub struct $name<T> {
            instrument: Arc<Instrument>,
            _value: PhantomData<T>,
        }

        impl<T> Clone for $name<T> {
            fn clone(&self) -> Self {
                $name { instrument: Arc::clone(&self.instrument), _value: PhantomData }
            }
        }

        impl<T: Measure> InstrumentBuilder<$name<T>> {
            /// Creates the instrument.
            pub fn build(self) -> Result<$name<T>, MetricsError> {
                let instrument = self.aggregated(
                    $kind,
                    Aggregation::Sum { monotonic: $monotonic, integer: T::INTEGER },
                )?;
                Ok($name { instrument, _value: PhantomData })
            }
        }

        impl<T: Measure> $name<T> {
            /// Adds `value` for an attribute set.
            pub fn add(&self, value: T, attributes: &[KeyValue]) {
                self.instrument.record(value.as_f64(), value.as_i64(), attributes, $monotonic);
            }
            /// Measurements this instrument rejected (NaN, infinities, negative increments of a
            /// monotonic counter).
            pub fn dropped_invalid(&self) -> u64 {
                self.instrument.aggregator().dropped_invalid.load(Ordering::Relaxed)
            }
        }
    };
}

sum_instrument!(
    /// A monotonic counter (delta temporality). A [`counter`] counts `u64`, so it cannot be
    /// given a negative increment; an [`f64_counter`] drops a negative (or NaN, infinite)
    /// increment and counts it in [`Counter::dropped_invalid`] and [`invalid_measurements`].
    ///
    /// ```
    /// let orders = plain_connect::metrics::counter("shop.orders").build().unwrap();
    /// orders.add(1, &[]);
    /// let revenue = plain_connect::metrics::f64_counter("shop.revenue").unit("EUR").build().unwrap();
    /// revenue.add(19.99, &[]);
    /// ```
    ///
    /// ```compile_fail
    /// let orders = plain_connect::metrics::counter("shop.orders").build().unwrap();
    /// orders.add(-1, &[]); // a u64 counter takes no negative increment
    /// ```
    Counter,
    "counter",
    true
);
sum_instrument!(
    /// A sum that goes up and down (cumulative temporality), e.g. items in a queue: `i64` from
    /// [`up_down_counter`], `f64` from [`f64_up_down_counter`].
    ///
    /// ```
    /// let queued = plain_connect::metrics::up_down_counter("jobs.queued").build().unwrap();
    /// queued.add(3, &[]);
    /// queued.add(-1, &[]);
    /// ```
    UpDownCounter,
    "up-down counter",
    false
);

/// Receives values from an observable instrument's callback at collection time.
#[derive(Default)]
pub struct Observer {
    observations: Vec<(Vec<KeyValue>, f64)>,
}

impl Observer {
    /// Past `limit` attribute sets, the rest go to one `otel.metric.overflow=true` set, as for
    /// recorded instruments: summed, or for a gauge the last value.
    fn cap(&mut self, limit: usize, last_value: bool) {
        if self.observations.len() <= limit {
            return;
        }
        let rest = self.observations.split_off(limit);
        let overflow = rest.iter().fold(
            0.0,
            |total, (_, value)| {
                if last_value {
                    *value
                } else {
                    total + value
                }
            },
        );
        self.observations
            .push((vec![KeyValue::new("otel.metric.overflow", true)], overflow));
    }

    /// Reports a value for an attribute set; NaN and infinities are ignored and counted.
    pub fn observe(&mut self, value: f64, attributes: &[KeyValue]) {
        if value.is_finite() {
            self.observations.push((attributes.to_vec(), value));
        } else {
            INVALID.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An observable instrument; it lives as long as the process (callbacks run on the exporter).
pub struct Observable {
    _instrument: Arc<Instrument>,
}

/// Which observable instrument a builder makes.
pub struct ObservableGauge;
/// See [`ObservableGauge`].
pub struct ObservableCounter;
/// See [`ObservableGauge`].
pub struct ObservableUpDownCounter;

/// Describes an observable instrument; `.build()` registers its callback.
#[must_use = "call .build()"]
pub struct ObservableBuilder<K> {
    builder: InstrumentBuilder<K>,
    callback: Callback,
}

impl<K> ObservableBuilder<K> {
    /// The unit.
    pub fn unit(mut self, unit: impl Into<Str>) -> Self {
        self.builder = self.builder.unit(unit);
        self
    }
    /// A description.
    pub fn description(mut self, description: impl Into<Str>) -> Self {
        self.builder = self.builder.description(description);
        self
    }
    /// Attribute sets reported per collection before the rest go to the
    /// `otel.metric.overflow` series (default 2000).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.builder = self.builder.cardinality_limit(limit);
        self
    }
}

macro_rules! observable_build {
    ($marker:ident, $kind:literal, $observed:expr) => {
        impl ObservableBuilder<$marker> {
            /// Registers the instrument and its callback.
            pub fn build(self) -> Result<Observable, MetricsError> {
                let instrument = self.builder.observed($kind, $observed, self.callback)?;
                Ok(Observable {
                    _instrument: instrument,
                })
            }
        }
    };
}

observable_build!(ObservableGauge, "observable gauge", ObservedKind::Gauge);
observable_build!(
    ObservableCounter,
    "observable counter",
    ObservedKind::Counter
);
observable_build!(
    ObservableUpDownCounter,
    "observable up-down counter",
    ObservedKind::UpDownCounter
);

/// A histogram of f64 values (e.g. durations in seconds).
pub fn histogram(name: impl Into<Str>) -> InstrumentBuilder<Histogram<f64>> {
    InstrumentBuilder::new(name.into())
}

/// A histogram of u64 values (e.g. sizes in bytes).
pub fn u64_histogram(name: impl Into<Str>) -> InstrumentBuilder<Histogram<u64>> {
    InstrumentBuilder::new(name.into())
}

/// A monotonic counter of `u64` (e.g. requests, bytes sent).
pub fn counter(name: impl Into<Str>) -> InstrumentBuilder<Counter<u64>> {
    InstrumentBuilder::new(name.into())
}

/// A monotonic counter of `f64` (e.g. an amount of money); negative increments are dropped
/// and counted.
pub fn f64_counter(name: impl Into<Str>) -> InstrumentBuilder<Counter<f64>> {
    InstrumentBuilder::new(name.into())
}

/// An up-down counter of `i64` (e.g. items in a queue).
pub fn up_down_counter(name: impl Into<Str>) -> InstrumentBuilder<UpDownCounter<i64>> {
    InstrumentBuilder::new(name.into())
}

/// An up-down counter of `f64`.
pub fn f64_up_down_counter(name: impl Into<Str>) -> InstrumentBuilder<UpDownCounter<f64>> {
    InstrumentBuilder::new(name.into())
}

/// A gauge read by `callback` at each collection (e.g. a pool's size).
///
/// ```
/// let _pool = plain_connect::metrics::observable_gauge("db.client.connection.count", |o| {
///     o.observe(4.0, &[plain_connect::KeyValue::new("db.client.connection.state", "idle")])
/// })
/// .build()
/// .unwrap();
/// ```
pub fn observable_gauge(
    name: impl Into<Str>,
    callback: impl Fn(&mut Observer) + Send + Sync + 'static,
) -> ObservableBuilder<ObservableGauge> {
    ObservableBuilder {
        builder: InstrumentBuilder::new(name.into()),
        callback: Box::new(callback),
    }
}

/// A counter whose running total `callback` reports at each collection; exported as deltas.
pub fn observable_counter(
    name: impl Into<Str>,
    callback: impl Fn(&mut Observer) + Send + Sync + 'static,
) -> ObservableBuilder<ObservableCounter> {
    ObservableBuilder {
        builder: InstrumentBuilder::new(name.into()),
        callback: Box::new(callback),
    }
}

/// An up-down total that `callback` reports at each collection (cumulative).
pub fn observable_up_down_counter(
    name: impl Into<Str>,
    callback: impl Fn(&mut Observer) + Send + Sync + 'static,
) -> ObservableBuilder<ObservableUpDownCounter> {
    ObservableBuilder {
        builder: InstrumentBuilder::new(name.into()),
        callback: Box::new(callback),
    }
}
