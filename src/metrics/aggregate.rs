//! In-process aggregation: one instrument's attribute sets (series), each with its own small
//! spin lock, found by an order-independent hash of the borrowed attributes (no allocation for a
//! set already seen) or, for sets of literals, by where those literals live; capped in number,
//! and drained into delta data points at each collection.

use super::buckets::Buckets;
use super::data::{HistogramPoint, MetricPoints, Number, NumberPoint, Temporality};
use super::exemplar::{Mode, Offer, Reservoir, SUM_RESERVOIR_SIZE};
use crate::attributes::{KeyValue, Str, Value};
use crate::core::spin::{Guarded, SpinLock};
use parking_lot::RwLock;
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What an instrument aggregates.
#[derive(Debug)]
pub(crate) enum Aggregation {
    /// Explicit-bucket histogram, delta; `integer` for exemplar values.
    Histogram {
        buckets: Arc<Buckets>,
        integer: bool,
    },
    /// Sum: monotonic counters are delta, up-down counters cumulative.
    Sum { monotonic: bool, integer: bool },
}

/// The numbers of one series between collections, changed only under the series lock. One
/// shape for both aggregations, so that recording into a histogram matches on nothing: a
/// histogram uses `buckets` (its count is their sum), `sum`, `min` and `max`; a sum uses `int`
/// and `sum`.
#[derive(Debug)]
struct Cells {
    sum: Guarded,
    min: Guarded,
    max: Guarded,
    int: Guarded,
    buckets: Box<[Guarded]>,
}

impl Cells {
    fn new(buckets: usize) -> Cells {
        Cells {
            sum: Guarded::from_f64(0.0),
            min: Guarded::from_f64(f64::INFINITY),
            max: Guarded::from_f64(f64::NEG_INFINITY),
            int: Guarded::new(0),
            buckets: (0..buckets).map(|_| Guarded::new(0)).collect(),
        }
    }

    /// A histogram measurement of a finite value into `bucket` (one of this series' `buckets`);
    /// the caller holds the lock.
    #[inline]
    fn add_to_histogram(&self, value: f64, bucket: &Guarded) {
        bucket.set(bucket.get().wrapping_add(1));
        self.sum.set_f64(self.sum.get_f64() + value);
        // A window's extremes settle after a few measurements: mostly a load and a compare.
        if value < self.min.get_f64() {
            self.min.set_f64(value);
        }
        if value > self.max.get_f64() {
            self.max.set_f64(value);
        }
    }

    fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |total, b| total.wrapping_add(b.get()))
    }
}

#[derive(Debug)]
pub(crate) struct Series {
    lock: SpinLock,
    cells: Cells,
    /// Whether a sum was recorded since the last collection (1) or not (0); a histogram's
    /// count says it.
    dirty: Guarded,
    attributes: Vec<KeyValue>,
    /// 1 once the series is freed from its instrument: a thread still remembering it must look
    /// the set up again, so nothing lands where no collection will read it.
    retired: Guarded,
    /// Collections in a row with nothing recorded; idle series are freed.
    idle_collections: AtomicU64,
    /// Live bound handles on this series; a bound series is never freed.
    bound_handles: AtomicU64,
    exemplars: Reservoir,
}

impl Series {
    fn new(attributes: Vec<KeyValue>, aggregation: &Aggregation) -> Self {
        let buckets = match aggregation {
            Aggregation::Histogram { buckets, .. } => buckets.len(),
            Aggregation::Sum { .. } => 0,
        };
        Series {
            attributes,
            lock: SpinLock::default(),
            cells: Cells::new(buckets),
            dirty: Guarded::new(0),
            retired: Guarded::new(0),
            idle_collections: AtomicU64::new(0),
            bound_handles: AtomicU64::new(0),
            exemplars: Reservoir::default(),
        }
    }

    /// One more bound handle holds this series: a copy of a handle that already holds it, so
    /// the series cannot be being freed (that needs no handle left).
    pub(crate) fn bind_again(&self) {
        self.bound_handles.fetch_add(1, Ordering::Relaxed);
    }

    /// A bound handle stops holding this series.
    pub(crate) fn unbind(&self) {
        self.bound_handles.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a finite value (the caller has checked). `false`, recording nothing, when the
    /// series was freed meanwhile. `buckets`: the histogram's, `None` for a sum.
    /// `exemplar`: the measurement may be kept as an exemplar ([`Mode::wants_exemplar`]); that
    /// path is out of line, so the common one is exactly the measurement and one branch.
    #[must_use]
    #[inline]
    pub(crate) fn record(
        &self,
        value: f64,
        int_value: i64,
        buckets: Option<&Buckets>,
        exemplar: bool,
    ) -> bool {
        let bucket = buckets.map(|b| b.index(value));
        if exemplar {
            return self.record_with_exemplar(value, int_value, bucket, true);
        }
        let _locked = self.lock.lock();
        if self.retired.get() != 0 {
            return false;
        }
        self.add(value, int_value, bucket);
        true
    }

    /// Records into a histogram through a bound handle, whose series is never freed (no check
    /// needed), when that is quick: a value the bucket table answers for (non-negative, finite,
    /// not in a crowded entry) and the lock free. `false`, recording nothing, otherwise: the
    /// caller then goes to a cold path that sorts out everything, so this one keeps nothing
    /// live across a call (no registers to save) and its critical section is four stores.
    #[inline]
    #[must_use]
    pub(crate) fn try_record_bound(&self, value: f64, buckets: &Buckets) -> bool {
        let Some(bucket) = self.cells.buckets.get(buckets.quick_index(value)) else {
            return false;
        };
        let Some(_locked) = self.lock.try_lock() else {
            return false;
        };
        self.cells.add_to_histogram(value, bucket);
        true
    }

    /// Records a finite value into a histogram through a bound handle, whatever it is.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_bound(&self, value: f64, buckets: &Buckets) {
        let bucket = buckets.index(value);
        let _locked = self.lock.lock();
        self.add(value, 0, Some(bucket));
    }

    /// [`Series::record_bound`] for a measurement that may become an exemplar.
    #[cold]
    #[inline(never)]
    pub(crate) fn record_bound_with_exemplar(&self, value: f64, int_value: i64, buckets: &Buckets) {
        let bucket = buckets.index(value);
        let _ = self.record_with_exemplar(value, int_value, Some(bucket), false);
    }

    /// [`Series::record`] for a measurement that may become an exemplar: the current span's
    /// ids and the time are read before the lock is taken.
    #[cold]
    #[inline(never)]
    fn record_with_exemplar(
        &self,
        value: f64,
        int_value: i64,
        bucket: Option<usize>,
        may_be_retired: bool,
    ) -> bool {
        let offer = Offer::capture();
        let _locked = self.lock.lock();
        if may_be_retired && self.retired.get() != 0 {
            return false;
        }
        self.add(value, int_value, bucket);
        match bucket {
            Some(index) => self.exemplars.offer(
                self.cells.buckets.len(),
                Some(index),
                value,
                int_value,
                &offer,
            ),
            None => self
                .exemplars
                .offer(SUM_RESERVOIR_SIZE, None, value, int_value, &offer),
        }
        true
    }

    /// The measurement itself, into a histogram's `bucket` or, with none, a sum; the caller
    /// holds the lock.
    #[inline]
    fn add(&self, value: f64, int_value: i64, bucket: Option<usize>) {
        match bucket {
            Some(bucket) => {
                if let Some(bucket) = self.cells.buckets.get(bucket) {
                    self.cells.add_to_histogram(value, bucket);
                }
            }
            None => {
                self.dirty.set(1);
                let cells = &self.cells;
                cells
                    .int
                    .set((cells.int.get() as i64).wrapping_add(int_value) as u64);
                cells.sum.set_f64(cells.sum.get_f64() + value);
            }
        }
    }
}

/// Hash of one attribute; sets hash to the wrapping sum of their members, so order is irrelevant.
fn attribute_hash(kv: &KeyValue) -> u64 {
    let mut h = FxHasher::default();
    h.write(kv.key.as_bytes());
    h.write_u8(0xff);
    match &kv.value {
        Value::Str(s) => h.write(s.as_bytes()),
        Value::Bool(b) => h.write_u8(u8::from(*b) + 2),
        Value::I64(i) => h.write_u64(*i as u64),
        Value::F64(f) => h.write_u64(f.to_bits() ^ 0x5555),
        Value::StrArray(v) => v.iter().for_each(|s| h.write(s.as_bytes())),
        Value::BoolArray(v) => v.iter().for_each(|b| h.write_u8(u8::from(*b))),
        Value::I64Array(v) => v.iter().for_each(|i| h.write_u64(*i as u64)),
        Value::F64Array(v) => v.iter().for_each(|f| h.write_u64(f.to_bits())),
    }
    h.finish()
}

fn set_hash(attributes: &[KeyValue]) -> u64 {
    attributes.iter().fold(attributes.len() as u64, |acc, kv| {
        acc.wrapping_add(attribute_hash(kv))
    })
}

/// Hashes where an attribute set's strings live instead of what they say: a few multiplications
/// instead of reading every byte. `None` unless every key and string value is a `'static`
/// literal, so the hint never grows with strings made at run time.
fn address_hash(attributes: &[KeyValue]) -> Option<u64> {
    fn place(s: &'static str) -> u64 {
        (s.as_ptr().addr() as u64) ^ (s.len() as u64).rotate_right(16)
    }
    // The multiplications do not depend on each other, only the cheap rotate-and-xor chain
    // does, so the CPU overlaps them.
    let mut h = attributes.len() as u64;
    for kv in attributes {
        let Str::Static(key) = kv.key else {
            return None;
        };
        let value = match &kv.value {
            Value::Str(Str::Static(s)) => place(s),
            Value::Bool(b) => u64::from(*b),
            Value::I64(i) => *i as u64,
            Value::F64(f) => f.to_bits(),
            _ => return None,
        };
        h = h.rotate_left(23)
            ^ place(key).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ value.wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    Some(h)
}

/// Same set of key/values, whatever the order (keys are unique within a set). Callers usually
/// pass the same attributes in the same order, which the first comparison settles.
fn same_set(stored: &[KeyValue], given: &[KeyValue]) -> bool {
    stored.len() == given.len()
        && (stored == given || given.iter().all(|kv| stored.iter().any(|s| s == kv)))
}

/// A small, fast, non-cryptographic hasher (the rustc "Fx" mix); attribute sets come from the
/// app, not from an attacker choosing collisions, and the cardinality cap bounds the damage.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.write_u64(u64::from_le_bytes(word.try_into().expect("8-byte chunk")));
        }
        let tail = words.remainder();
        if !tail.is_empty() {
            let mut word = [0u8; 8];
            word[..tail.len()].copy_from_slice(tail);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, b: u8) {
        self.write_u64(u64::from(b));
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The map's keys are already hashes.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type ByHash<T> = HashMap<u64, T, BuildHasherDefault<IdentityHasher>>;

/// One instrument's series, found by content.
#[derive(Debug, Default)]
struct SeriesIndex {
    /// Keyed by [`set_hash`]; a list because different sets may share a hash.
    by_content: ByHash<Vec<Arc<Series>>>,
}

/// Entries in each thread's memory of recently used series.
const RECENT_SLOTS: usize = 16;

/// Where a thread last found a set of literals, by [`address_hash`].
struct Recent {
    aggregator: u64,
    address: u64,
    series: Arc<Series>,
}

thread_local! {
    /// Each thread remembers where it last found the literal attribute sets it records, so an
    /// unbound record of such a set takes no shared lock: the series' own lock is its one
    /// locked instruction. Direct-mapped and small (a few series per thread at most stay
    /// alive because of it); a hint, always confirmed by comparing contents.
    static RECENT: RefCell<[Option<Recent>; RECENT_SLOTS]> =
        const { RefCell::new([const { None }; RECENT_SLOTS]) };
}

fn recent_slot(aggregator: u64, address: u64) -> usize {
    let mixed = (address ^ aggregator.rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 60) as usize % RECENT_SLOTS
}

/// Ids for aggregators, so a thread's memory never confuses two instruments.
static NEXT_AGGREGATOR_ID: AtomicU64 = AtomicU64::new(1);

impl SeriesIndex {
    fn find(&self, hash: u64, attributes: &[KeyValue]) -> Option<&Arc<Series>> {
        self.by_content
            .get(&hash)
            .and_then(|list| list.iter().find(|s| same_set(&s.attributes, attributes)))
    }
}

/// Free a series after this many collections with nothing recorded (unless a bound handle holds it).
const IDLE_COLLECTIONS_BEFORE_FREE: u64 = 3;

/// One instrument's series.
#[derive(Debug)]
pub(crate) struct Aggregator {
    id: u64,
    pub(crate) aggregation: Aggregation,
    series: RwLock<SeriesIndex>,
    series_count: AtomicU64,
    cardinality_limit: usize,
    overflow: Arc<Series>,
    created_unix_nanos: u64,
    last_collection_unix_nanos: AtomicU64,
    pub(crate) dropped_invalid: AtomicU64,
}

impl Aggregator {
    pub(crate) fn new(aggregation: Aggregation, cardinality_limit: usize, now: u64) -> Self {
        let overflow = Arc::new(Series::new(
            vec![KeyValue::new("otel.metric.overflow", true)],
            &aggregation,
        ));
        Aggregator {
            id: NEXT_AGGREGATOR_ID.fetch_add(1, Ordering::Relaxed),
            aggregation,
            series: RwLock::new(SeriesIndex::default()),
            series_count: AtomicU64::new(0),
            cardinality_limit: cardinality_limit.max(1),
            overflow,
            created_unix_nanos: now,
            last_collection_unix_nanos: AtomicU64::new(now),
            dropped_invalid: AtomicU64::new(0),
        }
    }

    pub(crate) fn buckets(&self) -> Option<&Arc<Buckets>> {
        match &self.aggregation {
            Aggregation::Histogram { buckets, .. } => Some(buckets),
            Aggregation::Sum { .. } => None,
        }
    }

    /// The series for `attributes`: found without allocating when seen before; created (within
    /// the cardinality limit) otherwise; the overflow series beyond it.
    pub(crate) fn series(&self, attributes: &[KeyValue]) -> Arc<Series> {
        let hash = set_hash(attributes);
        if let Some(found) = self.series.read().find(hash, attributes) {
            return Arc::clone(found);
        }
        let mut index = self.series.write();
        if let Some(found) = index.find(hash, attributes) {
            return Arc::clone(found);
        }
        if self.series_count.load(Ordering::Relaxed) as usize >= self.cardinality_limit {
            return Arc::clone(&self.overflow);
        }
        // Kept in the order first seen, which is how callers usually pass them again.
        let owned = attributes.to_vec();
        let series = Arc::new(Series::new(owned, &self.aggregation));
        index
            .by_content
            .entry(hash)
            .or_default()
            .push(Arc::clone(&series));
        self.series_count.fetch_add(1, Ordering::Relaxed);
        series
    }

    /// The series for a bound handle: held until [`Series::unbind`], never freed meanwhile.
    pub(crate) fn bind(&self, attributes: &[KeyValue]) -> Arc<Series> {
        loop {
            let series = self.series(attributes);
            // Counted under the series lock, which is where freeing decides, so a series
            // being freed this very moment is never handed out.
            let locked = series.lock.lock();
            if series.retired.get() == 0 {
                series.bound_handles.fetch_add(1, Ordering::Relaxed);
                drop(locked);
                return series;
            }
        }
    }

    /// Records into the series for `attributes` (hot path for unbound instruments).
    pub(crate) fn record(&self, value: f64, int_value: i64, attributes: &[KeyValue], mode: Mode) {
        // Checked here rather than by the caller: reading a thread-local costs a function its
        // argument registers, which this one saves anyway.
        let exemplar = mode.wants_exemplar();
        let address = address_hash(attributes);
        if let Some(address) = address {
            let slot = recent_slot(self.id, address);
            let recorded = RECENT.try_with(|recent| {
                let recent = recent.try_borrow().ok()?;
                let entry = recent[slot].as_ref()?;
                let hit = entry.aggregator == self.id
                    && entry.address == address
                    && same_set(&entry.series.attributes, attributes);
                (hit && entry.series.record(
                    value,
                    int_value,
                    self.buckets().map(|b| &**b),
                    exemplar,
                ))
                .then_some(())
            });
            if let Ok(Some(())) = recorded {
                return;
            }
        }
        loop {
            let series = self.series(attributes);
            if series.record(value, int_value, self.buckets().map(|b| &**b), exemplar) {
                if let Some(address) = address {
                    self.remember(address, series);
                }
                return;
            }
            // Freed between the look-up and the record: look it up again (it is re-created).
        }
    }

    /// Remembers on this thread where the set at `address` was found.
    fn remember(&self, address: u64, series: Arc<Series>) {
        if Arc::ptr_eq(&series, &self.overflow) {
            return;
        }
        let slot = recent_slot(self.id, address);
        let _ = RECENT.try_with(|recent| {
            if let Ok(mut recent) = recent.try_borrow_mut() {
                recent[slot] = Some(Recent {
                    aggregator: self.id,
                    address,
                    series,
                });
            }
        });
    }

    /// Drains what was recorded since the last collection into data points.
    pub(crate) fn collect(&self, now: u64) -> MetricPoints {
        let previous = self.last_collection_unix_nanos.swap(now, Ordering::Relaxed);
        let cumulative = matches!(
            self.aggregation,
            Aggregation::Sum {
                monotonic: false,
                ..
            }
        );
        let start = if cumulative {
            self.created_unix_nanos
        } else {
            previous
        };
        let integer = matches!(
            self.aggregation,
            Aggregation::Sum { integer: true, .. } | Aggregation::Histogram { integer: true, .. }
        );
        let buckets = self.buckets();
        let mut histogram_points = Vec::new();
        let mut number_points = Vec::new();
        // Emits the series' point when it has one. With `may_free`, an idle series (nothing
        // recorded for a while, no bound handle) is retired instead, under the same lock hold,
        // so no measurement can land in it afterwards. Returns whether it was retired.
        let mut emit = |series: &Series, may_free: bool| {
            let _locked = series.lock.lock();
            let cells = &series.cells;
            let count = cells.count();
            let recorded = match buckets {
                Some(_) => count != 0,
                None => series.dirty.get() != 0,
            };
            let idle = if recorded {
                series.idle_collections.store(0, Ordering::Relaxed);
                0
            } else {
                series.idle_collections.fetch_add(1, Ordering::Relaxed) + 1
            };
            if may_free
                && idle >= IDLE_COLLECTIONS_BEFORE_FREE
                && series.bound_handles.load(Ordering::Relaxed) == 0
            {
                series.retired.set(1);
                return true;
            }
            // A cumulative series keeps `dirty` once recorded: it is exported from then on, and
            // not before (the overflow series exists from the start but is exported only once
            // the cardinality cap has really sent a measurement there).
            if !recorded {
                return false;
            }
            if !cumulative {
                series.dirty.set(0);
            }
            match buckets {
                Some(buckets) => {
                    histogram_points.push(HistogramPoint {
                        attributes: series.attributes.clone(),
                        start_unix_nanos: start,
                        time_unix_nanos: now,
                        count,
                        sum: cells.sum.get_f64(),
                        min: cells.min.get_f64(),
                        max: cells.max.get_f64(),
                        bounds: Arc::clone(buckets.bounds()),
                        bucket_counts: cells.buckets.iter().map(Guarded::get).collect(),
                        exemplars: series.exemplars.drain(integer),
                    });
                    cells.sum.set_f64(0.0);
                    cells.min.set_f64(f64::INFINITY);
                    cells.max.set_f64(f64::NEG_INFINITY);
                    cells.buckets.iter().for_each(|b| b.set(0));
                }
                None => {
                    number_points.push(NumberPoint {
                        attributes: series.attributes.clone(),
                        start_unix_nanos: start,
                        time_unix_nanos: now,
                        value: if integer {
                            Number::I64(cells.int.get() as i64)
                        } else {
                            Number::F64(cells.sum.get_f64())
                        },
                        exemplars: series.exemplars.drain(integer),
                    });
                    if !cumulative {
                        cells.int.set(0);
                        cells.sum.set_f64(0.0);
                    }
                }
            }
            false
        };
        {
            let mut index = self.series.write();
            let mut freed = 0;
            index.by_content.retain(|_, list| {
                list.retain(|series| {
                    // Only delta series are freed: a cumulative sum must keep its total.
                    let retired = emit(series, !cumulative);
                    freed += usize::from(retired);
                    !retired
                });
                !list.is_empty()
            });
            self.series_count.fetch_sub(freed as u64, Ordering::Relaxed);
        }
        emit(&self.overflow, false);
        match &self.aggregation {
            Aggregation::Histogram { .. } => MetricPoints::Histogram {
                temporality: Temporality::Delta,
                points: histogram_points,
            },
            Aggregation::Sum { monotonic, .. } => MetricPoints::Sum {
                temporality: if cumulative {
                    Temporality::Cumulative
                } else {
                    Temporality::Delta
                },
                monotonic: *monotonic,
                points: number_points,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64]) -> Aggregator {
        Aggregator::new(
            Aggregation::Histogram {
                buckets: Arc::new(Buckets::new(Arc::from(bounds))),
                integer: false,
            },
            2000,
            1,
        )
    }

    fn points(m: MetricPoints) -> Vec<HistogramPoint> {
        match m {
            MetricPoints::Histogram { points, .. } => points,
            other => panic!("not a histogram: {other:?}"),
        }
    }

    #[test]
    fn buckets_are_upper_inclusive() {
        let h = histogram(&[0.0, 5.0, 10.0]);
        for v in [-1.0, 0.0, 0.000_001, 5.0, 5.000_001, 10.0, 10.5, 1e9] {
            h.record(v, 0, &[], Mode::current());
        }
        let p = &points(h.collect(10))[0];
        assert_eq!(p.bucket_counts, [2, 2, 2, 2]);
        assert_eq!(p.count, 8);
        assert_eq!((p.min, p.max), (-1.0, 1e9));
        assert_eq!(
            p.sum,
            -1.0 + 0.000_001 + 5.0 + 5.000_001 + 10.0 + 10.5 + 1e9
        );
    }

    #[test]
    fn delta_windows_hold_only_new_data() {
        let h = histogram(&[1.0]);
        h.record(0.5, 0, &[KeyValue::new("k", "v")], Mode::current());
        let first = points(h.collect(100));
        assert_eq!(
            (
                first[0].start_unix_nanos,
                first[0].time_unix_nanos,
                first[0].count
            ),
            (1, 100, 1)
        );
        assert!(
            points(h.collect(200)).is_empty(),
            "nothing new, nothing exported"
        );
        h.record(2.0, 0, &[KeyValue::new("k", "v")], Mode::current());
        let third = points(h.collect(300));
        assert_eq!(
            (third[0].start_unix_nanos, third[0].count, third[0].sum),
            (200, 1, 2.0)
        );
    }

    #[test]
    fn attribute_order_does_not_matter() {
        let h = histogram(&[1.0]);
        h.record(
            1.0,
            0,
            &[KeyValue::new("a", 1), KeyValue::new("b", "x")],
            Mode::current(),
        );
        h.record(
            1.0,
            0,
            &[KeyValue::new("b", "x"), KeyValue::new("a", 1)],
            Mode::current(),
        );
        h.record(
            1.0,
            0,
            &[KeyValue::new("b", "y"), KeyValue::new("a", 1)],
            Mode::current(),
        );
        let mut counts: Vec<u64> = points(h.collect(5)).iter().map(|p| p.count).collect();
        counts.sort();
        assert_eq!(counts, [1, 2]);
    }

    #[test]
    fn past_the_cardinality_limit_everything_lands_in_the_overflow_series() {
        let h = Aggregator::new(
            Aggregation::Histogram {
                buckets: Arc::new(Buckets::new(Arc::from([1.0].as_slice()))),
                integer: false,
            },
            3,
            0,
        );
        for i in 0..10 {
            h.record(1.0, 0, &[KeyValue::new("user", i)], Mode::current());
        }
        let p = points(h.collect(5));
        assert_eq!(p.len(), 4);
        assert_eq!(
            p.iter().map(|p| p.count).sum::<u64>(),
            10,
            "every measurement lands once"
        );
        let overflow = p
            .iter()
            .find(|p| p.attributes == [KeyValue::new("otel.metric.overflow", true)])
            .unwrap();
        assert_eq!(overflow.count, 7);
    }

    #[test]
    fn idle_series_are_freed_and_memory_stays_bounded() {
        let h = histogram(&[1.0]);
        h.record(1.0, 0, &[KeyValue::new("k", 1)], Mode::current());
        for t in 1..=5 {
            h.collect(t);
        }
        assert_eq!(h.series_count.load(Ordering::Relaxed), 0);
        let index = h.series.read();
        assert!(index.by_content.is_empty());
    }

    #[test]
    fn the_address_hint_never_merges_different_sets() {
        let h = histogram(&[1.0]);
        // Same key literal, values whose hint words coincide (1 and true), and the same text
        // built at run time: three sets, one of them seen twice.
        for _ in 0..3 {
            h.record(0.5, 0, &[KeyValue::new("k", 1)], Mode::current());
            h.record(0.5, 0, &[KeyValue::new("k", true)], Mode::current());
            h.record(0.5, 0, &[KeyValue::new("k", "v")], Mode::current());
            h.record(
                0.5,
                0,
                &[KeyValue::new("k", String::from("v"))],
                Mode::current(),
            );
        }
        let mut counts: Vec<(String, u64)> = points(h.collect(2))
            .iter()
            .map(|p| (format!("{:?}", p.attributes[0].value), p.count))
            .collect();
        counts.sort();
        assert_eq!(
            counts,
            [
                ("Bool(true)".to_string(), 3),
                ("I64(1)".to_string(), 3),
                ("Str(Static(\"v\"))".to_string(), 6)
            ]
        );
    }

    fn total_count(m: MetricPoints) -> u64 {
        points(m).iter().map(|p| p.count).sum()
    }

    #[test]
    fn a_thread_remembering_a_freed_series_records_into_a_new_one() {
        let h = histogram(&[1.0]);
        let set = [KeyValue::new("route", "/a")];
        h.record(0.5, 0, &set, Mode::current()); // remembered by this thread
        assert_eq!(total_count(h.collect(2)), 1);
        for t in 3..=6 {
            h.collect(t); // idle: freed
        }
        assert_eq!(h.series_count.load(Ordering::Relaxed), 0);
        h.record(0.5, 0, &set, Mode::current());
        h.record(0.5, 0, &set, Mode::current());
        assert_eq!(
            total_count(h.collect(7)),
            2,
            "nothing lands in the freed series"
        );
        assert_eq!(h.series_count.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_bound_series_outlives_idle_collections_and_is_freed_after_unbinding() {
        let h = histogram(&[1.0]);
        let set = [KeyValue::new("route", "/b")];
        let bound = h.bind(&set);
        for t in 2..=6 {
            h.collect(t);
        }
        bound.record_bound(0.5, h.buckets().unwrap());
        assert!(bound.try_record_bound(0.5, h.buckets().unwrap()));
        assert_eq!(total_count(h.collect(7)), 2);
        bound.unbind();
        drop(bound);
        for t in 8..=11 {
            h.collect(t);
        }
        assert_eq!(h.series_count.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_copied_bound_handle_keeps_the_series_until_the_last_copy_goes() {
        let h = histogram(&[1.0]);
        let set = [KeyValue::new("route", "/c")];
        let first = h.bind(&set);
        first.bind_again(); // what `BoundHistogram::clone` does
        let copy = Arc::clone(&first);
        first.unbind();
        drop(first);
        for t in 2..=6 {
            h.collect(t);
        }
        assert!(copy.try_record_bound(0.5, h.buckets().unwrap()));
        assert_eq!(
            total_count(h.collect(7)),
            1,
            "the copy still holds the series"
        );
        copy.unbind();
        drop(copy);
        for t in 8..=11 {
            h.collect(t);
        }
        assert_eq!(
            h.series_count.load(Ordering::Relaxed),
            0,
            "freed after the last"
        );
    }

    /// Threads recording in bursts while collections free idle series between the bursts:
    /// every measurement is collected exactly once.
    #[test]
    fn no_measurement_is_lost_while_series_are_freed_under_load() {
        let h = Arc::new(histogram(&[1.0]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let recorders: Vec<_> = (0..2)
            .map(|thread| {
                let (h, stop) = (Arc::clone(&h), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let sets = [
                        [KeyValue::new("route", "/a")],
                        [KeyValue::new("route", "/b")],
                        [KeyValue::new("route", "/c")],
                    ];
                    let mut recorded = 0u64;
                    let mut round = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        // A burst on one set, then a pause long enough for it to go idle.
                        for _ in 0..200 {
                            h.record(0.5, 0, &sets[(round + thread) % 3], Mode::current());
                            recorded += 1;
                        }
                        round += 1;
                        std::thread::yield_now();
                    }
                    recorded
                })
            })
            .collect();
        let mut collected = 0;
        for t in 2..3000 {
            collected += total_count(h.collect(t));
        }
        stop.store(true, Ordering::Relaxed);
        let recorded: u64 = recorders.into_iter().map(|r| r.join().unwrap()).sum();
        collected += total_count(h.collect(3000));
        assert_eq!(collected, recorded);
    }
}
