//! Finding a measurement's histogram bucket with one table look-up and one comparison.
//!
//! The bits of a non-negative double, read as an integer, sort like the numbers. Cutting that
//! integer line into ranges of `2^shift`, with `shift` the largest that puts neighbouring bounds
//! into different ranges, each range holds at most one bound: a value's range says how many
//! bounds lie below it, and a comparison with the one bound that may share its range settles the
//! rest. For the usual boundary lists (a few bounds, each a factor of 1.3 or more from the next)
//! the ranges are binades or halves of them and the table has a few dozen entries. Lists whose
//! table would be larger get a coarser one, whose crowded entries (more than one bound in a
//! range) send the value to a binary search, as do negative values, which durations and sizes
//! never are.

use std::sync::Arc;

/// Entries a table may have; a list needing more gets a coarser table with crowded entries.
const MOST_ENTRIES: u64 = 256;

/// The bits of `+inf`: below them are exactly the non-negative finite doubles, `+0.0` included
/// and `-0.0` not.
const INFINITY_BITS: u64 = 0x7ff0_0000_0000_0000;

/// [`Entry::below`] of a crowded entry: far past any bucket, so [`Buckets::quick_index`] answers
/// "not here" with no test of its own.
const CROWDED: usize = usize::MAX / 2;

/// An integer that orders finite doubles as `<` does, for the binary search. Bounds are keyed as
/// `b + 0.0` (never `-0.0`, which would sort below `0.0`).
fn order_key(value: f64) -> u64 {
    let bits = value.to_bits();
    // Negative: all bits flipped (larger magnitudes sort lower); positive: the sign bit set.
    bits ^ ((((bits as i64) >> 63) as u64) | 1 << 63)
}

/// One range of the bits of non-negative values.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// The bits of the first bound not below the range, `u64::MAX` if none.
    bits: u64,
    /// Bounds below the range, or [`CROWDED`].
    below: usize,
}

/// A histogram's boundaries and the table that finds a value's bucket among them.
#[derive(Debug)]
pub(crate) struct Buckets {
    bounds: Arc<[f64]>,
    shift: u32,
    /// The range of entry 0, which also takes every lower one.
    low: u64,
    entries: Box<[Entry]>,
    /// A copy of the last entry, which also takes every higher range.
    top: Entry,
    /// The bounds' [`order_key`]s, for the binary search.
    keys: Box<[u64]>,
}

impl Buckets {
    /// The table for `bounds`, which must be finite and strictly increasing (the builder checks).
    pub(crate) fn new(bounds: Arc<[f64]>) -> Buckets {
        let keys: Box<[u64]> = bounds.iter().map(|b| order_key(b + 0.0)).collect();
        let negative = bounds.iter().filter(|b| **b < 0.0).count();
        let bits: Vec<u64> = bounds[negative..]
            .iter()
            .map(|b| (b + 0.0).to_bits())
            .collect();
        // The highest bit in which neighbours differ: with ranges no wider, they never share one.
        let separating = bits
            .windows(2)
            .map(|w| 63 - (w[0] ^ w[1]).leading_zeros())
            .min()
            .unwrap_or(63);
        let mut shift = separating;
        let (low, high) = loop {
            let (low, high) = span(&bits, shift);
            if high - low < MOST_ENTRIES || shift == 63 {
                break (low, high);
            }
            shift += 1;
        };
        let entries: Box<[Entry]> = (low..=high)
            .map(|range| {
                // Entry 0 and the last also take every range below and above them.
                let start = if range == low { 0 } else { range << shift };
                let end = if range == high {
                    u64::MAX
                } else {
                    (range + 1) << shift
                };
                let below = bits.partition_point(|b| *b < start);
                let within = bits[below..].iter().take_while(|b| **b < end).count();
                Entry {
                    bits: bits.get(below).copied().unwrap_or(u64::MAX),
                    below: if within > 1 {
                        CROWDED
                    } else {
                        negative + below
                    },
                }
            })
            .collect();
        let top = *entries.last().expect("low..=high is never empty");
        Buckets {
            bounds,
            shift,
            low,
            entries,
            top,
            keys,
        }
    }

    /// The upper bounds, as exported.
    pub(crate) fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// Buckets: one more than bounds.
    pub(crate) fn len(&self) -> usize {
        self.bounds.len() + 1
    }

    /// The bucket of a finite `value`: the number of bounds below it (buckets are
    /// upper-inclusive).
    pub(crate) fn index(&self, value: f64) -> usize {
        let quick = self.quick_index(value);
        if quick < self.len() {
            return quick;
        }
        let key = order_key(value + 0.0);
        self.keys.partition_point(|k| *k < key)
    }

    /// [`Buckets::index`] for a non-negative finite `value` whose table entry answers alone;
    /// for any other value (negative, `-0.0`, not finite, crowded) an index past the last bucket,
    /// which the caller's bounds check sends to [`Buckets::index`].
    #[inline]
    pub(crate) fn quick_index(&self, value: f64) -> usize {
        let bits = value.to_bits();
        if bits >= INFINITY_BITS {
            return usize::MAX;
        }
        let range = (bits >> self.shift).saturating_sub(self.low);
        let entry = usize::try_from(range)
            .ok()
            .and_then(|i| self.entries.get(i))
            .unwrap_or(&self.top);
        entry.below + usize::from(entry.bits < bits)
    }
}

/// The ranges entry 0 and the last entry stand for: every range up to the one below the second
/// bound's holds only the first bound, every range from the one above the last-but-one bound's
/// holds only the last.
fn span(bits: &[u64], shift: u32) -> (u64, u64) {
    let n = bits.len();
    if n < 2 {
        return (0, 0);
    }
    let low = (bits[1] >> shift).saturating_sub(1);
    let high = ((bits[n - 2] >> shift) + 1).max(low + 1);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bounds: &[f64], values: impl IntoIterator<Item = f64>) -> Buckets {
        let buckets = Buckets::new(Arc::from(bounds));
        for value in values {
            let expected = bounds.partition_point(|b| *b < value);
            assert_eq!(
                buckets.index(value),
                expected,
                "bounds {bounds:?} value {value:e}"
            );
            let quick = buckets.quick_index(value);
            assert!(
                quick == expected || quick > bounds.len(),
                "bounds {bounds:?} value {value:e}: quick {quick}"
            );
        }
        for not_finite in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -f64::NAN] {
            assert!(buckets.quick_index(not_finite) > bounds.len());
        }
        buckets
    }

    /// Each bound, its neighbours one ulp away, both zeros, midpoints, extremes.
    fn probes(bounds: &[f64]) -> Vec<f64> {
        let mut values = vec![
            0.0,
            -0.0,
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            1.0,
            -1.0,
        ];
        for (i, b) in bounds.iter().enumerate() {
            values.extend([*b, next_up(*b), next_down(*b), b * 2.0, b / 2.0, -b]);
            if let Some(next) = bounds.get(i + 1) {
                values.push((b + next) / 2.0);
            }
        }
        values
    }

    fn next_up(v: f64) -> f64 {
        f64::from_bits(order_key_inverse(order_key(v) + 1))
    }
    fn next_down(v: f64) -> f64 {
        f64::from_bits(order_key_inverse(order_key(v) - 1))
    }
    fn order_key_inverse(key: u64) -> u64 {
        if key >> 63 == 1 {
            key ^ 1 << 63
        } else {
            !key
        }
    }

    #[test]
    fn agrees_with_a_binary_search_on_the_shipped_and_unusual_lists() {
        let lists: Vec<Vec<f64>> = vec![
            vec![],
            vec![0.0],
            vec![-0.0],
            vec![-0.0, 1.0],
            vec![-1.0, 0.0],
            vec![1.0, 2.0],
            vec![-1e300, 1e300],
            crate::metrics::DEFAULT_BOUNDS.to_vec(),
            crate::metrics::SECONDS_BOUNDS.to_vec(),
            crate::metrics::DB_CLIENT_DURATION_BOUNDS.to_vec(),
            crate::metrics::default_boundaries("ms"),
            crate::metrics::default_boundaries("ns"),
            // Close neighbours far from the others: a coarse table with crowded entries.
            vec![1.0, 1.000_000_000_1, 1e10, 1e20, 1e30],
            vec![-5.0, -1.0, -0.5, 0.0, 0.5, 1.0, 5.0],
            (0..100).map(|i| i as f64 * 0.5).collect(),
            (0..300).map(|i| (i as f64 - 150.0) * 1.7).collect(),
        ];
        for bounds in &lists {
            let buckets = check(bounds, probes(bounds));
            assert!(buckets.entries.len() as u64 <= MOST_ENTRIES);
        }
        let crowded = Buckets::new(Arc::from(lists[12].as_slice()));
        assert!(crowded.entries.iter().any(|e| e.below == CROWDED));
    }

    #[test]
    fn the_shipped_lists_get_small_tables_with_no_crowded_entry() {
        for bounds in [
            crate::metrics::DEFAULT_BOUNDS.to_vec(),
            crate::metrics::SECONDS_BOUNDS.to_vec(),
            crate::metrics::DB_CLIENT_DURATION_BOUNDS.to_vec(),
            crate::metrics::default_boundaries("ms"),
            crate::metrics::default_boundaries("us"),
            crate::metrics::default_boundaries("ns"),
        ] {
            let buckets = Buckets::new(Arc::from(bounds.as_slice()));
            assert!(buckets.entries.len() <= 64, "{bounds:?}");
            assert!(
                buckets.entries.iter().all(|e| e.below != CROWDED),
                "{bounds:?}"
            );
            for value in probes(&bounds).into_iter().filter(|v| *v >= 0.0) {
                let expected = bounds.partition_point(|b| *b < value);
                if value.to_bits() != (-0.0f64).to_bits() {
                    assert_eq!(buckets.quick_index(value), expected, "{value:e}");
                }
            }
        }
    }

    #[test]
    fn agrees_with_a_binary_search_on_random_lists_and_values() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let len = (next() % 20) as usize;
            let scale = [1e-6, 1.0, 1e3, 1e12][(next() % 4) as usize];
            let mut bounds: Vec<f64> = (0..len)
                .map(|_| ((next() % 20_001) as f64 - 10_000.0) * scale / 1000.0)
                .collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let mut values = probes(&bounds);
            values.extend((0..200).map(|_| ((next() % 40_001) as f64 - 20_000.0) * scale / 1000.0));
            check(&bounds, values);
        }
    }
}
