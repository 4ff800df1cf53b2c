//! Exemplars: a few of the measurements behind a data point, each with the trace and span that
//! were current when it was made, so that a histogram's slow bucket links to a request that
//! landed there.
//!
//! Reservoirs follow the OpenTelemetry metrics SDK: an explicit-bucket histogram keeps the last
//! measurement of each bucket (one cell per bucket); sums keep a uniform sample of
//! [`SUM_RESERVOIR_SIZE`] measurements per collection window (reservoir sampling). The cells are
//! numbers guarded by the series lock, allocated on the series' first exemplar, so a series that
//! never sees a sampled span costs no memory for them and the record path with no span current
//! costs one thread-local read.

use super::data::{Exemplar, Number};
use crate::core::spin::Guarded;
use crate::settings::ExemplarFilter;
use crate::trace::{SpanId, TraceId, FLAG_SAMPLED};

use std::sync::OnceLock;

/// Measurements a sum's reservoir keeps per window: a small fixed reservoir, enough to link a
/// counter's window to a few of the traces behind it.
pub(crate) const SUM_RESERVOIR_SIZE: usize = 4;

/// What the record path does, in one process-wide byte (kept by `core`, set while a pipeline
/// is installed) read once per measurement: nothing (no pipeline), aggregate only, or aggregate
/// and offer exemplars.
const OFF: u8 = 0;
const NO_EXEMPLARS: u8 = 1;
const TRACE_BASED: u8 = 2;
const ALWAYS_ON: u8 = 3;

/// The recording mode an installed pipeline with this exemplar filter sets.
pub(crate) fn recording_mode(filter: ExemplarFilter) -> u8 {
    match filter {
        ExemplarFilter::AlwaysOff => NO_EXEMPLARS,
        ExemplarFilter::AlwaysOn => ALWAYS_ON,
        _ => TRACE_BASED,
    }
}

/// The recording mode; [`Mode::is_on`] is the disabled fast path.
#[derive(Clone, Copy)]
pub(crate) struct Mode(u8);

impl Mode {
    #[inline]
    pub(crate) fn current() -> Mode {
        Mode(crate::core::metrics_mode())
    }

    #[inline]
    pub(crate) fn is_on(self) -> bool {
        self.0 != OFF
    }

    /// Recording is on and a measurement made now cannot become an exemplar: the common case,
    /// under the default filter a thread-local load or two (a "maybe" is settled by
    /// [`Mode::wants_exemplar`] out of line).
    #[inline]
    pub(crate) fn plain(self) -> bool {
        if self.0 == TRACE_BASED {
            return !crate::trace::sampled_span_maybe_current();
        }
        self.0 == NO_EXEMPLARS
    }

    /// Whether a measurement made now may be kept as an exemplar: with no span current under
    /// `trace_based`, one thread-local read and a branch.
    #[inline]
    pub(crate) fn wants_exemplar(self) -> bool {
        // The default filter first: one comparison before the thread-local read.
        if self.0 == TRACE_BASED {
            return crate::trace::sampled_span_current();
        }
        self.0 == ALWAYS_ON
    }
}

/// A measurement's context, offered to its series' reservoir.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offer {
    time_unix_nanos: u64,
    trace_id: u128,
    span_id: u64,
}

impl Offer {
    /// The current sampled span's ids (none under `always_on` without one) and the time.
    pub(crate) fn capture() -> Offer {
        let ids = crate::trace::current_ids();
        let sampled = ids.flags & FLAG_SAMPLED != 0 && ids.span_id.is_valid();
        let (trace_id, span_id) = if sampled {
            (ids.trace_id.0, ids.span_id.0)
        } else {
            (0, 0)
        };
        Offer {
            time_unix_nanos: crate::core::now_unix_nanos().max(1),
            trace_id,
            span_id,
        }
    }
}

/// One kept measurement; `time == 0` means empty.
#[derive(Debug, Default)]
struct Cell {
    time: Guarded,
    float: Guarded,
    int: Guarded,
    trace_high: Guarded,
    trace_low: Guarded,
    span: Guarded,
}

/// A series' exemplars between collections; read and written only under the series lock.
#[derive(Debug, Default)]
pub(crate) struct Reservoir {
    cells: OnceLock<Box<[Cell]>>,
    /// Measurements offered this window (the sum reservoir's sampling weight).
    offered: Guarded,
}

impl Reservoir {
    /// Keeps the measurement in `bucket` (histograms: always, replacing the bucket's last one)
    /// or, with `bucket` `None`, as a uniform sample among the window's offers (sums).
    #[cold]
    pub(crate) fn offer(
        &self,
        cell_count: usize,
        bucket: Option<usize>,
        value: f64,
        int_value: i64,
        offer: &Offer,
    ) {
        let cells = self
            .cells
            .get_or_init(|| (0..cell_count.max(1)).map(|_| Cell::default()).collect());
        let index = match bucket {
            Some(bucket) => bucket,
            None => {
                let seen = self.offered.get();
                self.offered.set(seen.wrapping_add(1));
                if seen < cells.len() as u64 {
                    seen as usize
                } else {
                    // Kept with probability size / (seen + 1), replacing a random cell.
                    let pick = crate::trace::random_u64() % (seen + 1);
                    if pick >= cells.len() as u64 {
                        return;
                    }
                    pick as usize
                }
            }
        };
        let Some(cell) = cells.get(index) else {
            return;
        };
        cell.time.set(offer.time_unix_nanos);
        cell.float.set_f64(value);
        cell.int.set(int_value as u64);
        cell.trace_high.set((offer.trace_id >> 64) as u64);
        cell.trace_low.set(offer.trace_id as u64);
        cell.span.set(offer.span_id);
    }

    /// The window's exemplars, oldest first, emptying the reservoir for the next window.
    pub(crate) fn drain(&self, integer: bool) -> Vec<Exemplar> {
        self.offered.set(0);
        let Some(cells) = self.cells.get() else {
            return Vec::new();
        };
        let mut kept: Vec<Exemplar> = cells
            .iter()
            .filter(|cell| cell.time.get() != 0)
            .map(|cell| {
                let trace =
                    (u128::from(cell.trace_high.get()) << 64) | u128::from(cell.trace_low.get());
                let exemplar = Exemplar {
                    time_unix_nanos: cell.time.get(),
                    value: if integer {
                        Number::I64(cell.int.get() as i64)
                    } else {
                        Number::F64(cell.float.get_f64())
                    },
                    trace_id: Some(TraceId(trace)).filter(|t| t.is_valid()),
                    span_id: Some(SpanId(cell.span.get())).filter(|s| s.is_valid()),
                    filtered_attributes: Vec::new(),
                };
                cell.time.set(0);
                exemplar
            })
            .collect();
        kept.sort_by_key(|e| e.time_unix_nanos);
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(span: u64) -> Offer {
        Offer {
            time_unix_nanos: span,
            trace_id: u128::from(span) << 64 | 7,
            span_id: span,
        }
    }

    #[test]
    fn a_bucket_keeps_its_last_measurement_and_a_drain_empties_the_reservoir() {
        let reservoir = Reservoir::default();
        reservoir.offer(3, Some(1), 0.5, 0, &offer(1));
        reservoir.offer(3, Some(1), 0.7, 0, &offer(2));
        reservoir.offer(3, Some(2), 9.0, 0, &offer(3));
        let kept = reservoir.drain(false);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].value, Number::F64(0.7));
        assert_eq!(kept[0].span_id, Some(SpanId(2)));
        assert_eq!(kept[0].trace_id, Some(TraceId(2u128 << 64 | 7)));
        assert_eq!(kept[1].value, Number::F64(9.0));
        assert!(reservoir.drain(false).is_empty());
    }

    #[test]
    fn a_sum_reservoir_samples_uniformly_within_its_size() {
        // Over many windows of 40 offers, each offer is kept with probability 4/40.
        let mut kept_first_half = 0;
        let windows = 2000;
        for _ in 0..windows {
            let reservoir = Reservoir::default();
            for i in 1..=40u64 {
                reservoir.offer(SUM_RESERVOIR_SIZE, None, i as f64, i as i64, &offer(i));
            }
            let kept = reservoir.drain(true);
            assert_eq!(kept.len(), SUM_RESERVOIR_SIZE);
            kept_first_half += kept
                .iter()
                .filter(|e| matches!(e.value, Number::I64(v) if v <= 20))
                .count();
        }
        let share = kept_first_half as f64 / (windows * SUM_RESERVOIR_SIZE) as f64;
        assert!((0.45..0.55).contains(&share), "first half kept {share}");
    }
}
