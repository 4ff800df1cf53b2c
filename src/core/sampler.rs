//! Parent-based trace-id-ratio sampling, bit-compatible with the official OpenTelemetry SDKs.
//!
//! A root span is sampled iff `(low 64 bits of the trace id, big-endian) >> 1 < rate · 2^63`, the
//! rule the Go and Rust SDKs use (Python's `low64 < rate · 2^64` decides identically up to one
//! rounding step), so a trace crossing services in several languages is kept or dropped as one.
//! A child follows its parent's sampled flag, whether the parent is local or remote.

/// The sampling rule installed with the pipeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sampler {
    upper_bound: u64,
    /// `false` for `OTEL_TRACES_SAMPLER=always_on|always_off|traceidratio`: the rate decides
    /// even under a parent.
    parent_based: bool,
}

impl Sampler {
    /// `rate` is clamped into 0.0..=1.0 (settings validate it before it gets here).
    pub(crate) fn ratio(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        Sampler {
            upper_bound: (rate * (1u64 << 63) as f64) as u64,
            parent_based: true,
        }
    }

    /// The same rate, applied to every span whatever its parent decided.
    pub(crate) fn ignoring_parent(mut self) -> Self {
        self.parent_based = false;
        self
    }

    /// The rule as two plain words, so the installed one can live in atomics.
    pub(crate) fn to_parts(self) -> (u64, bool) {
        (self.upper_bound, self.parent_based)
    }

    /// The rule from [`Sampler::to_parts`].
    pub(crate) fn from_parts(upper_bound: u64, parent_based: bool) -> Self {
        Sampler {
            upper_bound,
            parent_based,
        }
    }

    /// The decision for a root span with this trace id.
    pub(crate) fn samples_trace(&self, trace_id: u128) -> bool {
        let low = trace_id as u64;
        (low >> 1) < self.upper_bound
    }

    /// The decision for a root span whose trace id `trace_id` gives, asked for only when the
    /// rate is above 0: at rate 0 an unsampled root never computes its ids.
    #[inline(always)]
    pub(crate) fn samples_root(&self, trace_id: impl FnOnce() -> u128) -> bool {
        self.upper_bound != 0 && self.samples_trace(trace_id())
    }

    /// The decision for a new span: `parent_sampled` is the valid parent's sampled flag, `None`
    /// for a root.
    pub(crate) fn should_sample(&self, parent_sampled: Option<bool>, trace_id: u128) -> bool {
        match parent_sampled {
            Some(sampled) if self.parent_based => sampled,
            _ => self.samples_trace(trace_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{new_trace_id, TraceId};

    /// The reference algorithm, written the way the official Rust SDK writes it.
    fn reference(rate: f64, trace_id: [u8; 16]) -> bool {
        let bound = (rate.clamp(0.0, 1.0) * (1u64 << 63) as f64) as u64;
        let low = u64::from_be_bytes(trace_id[8..16].try_into().unwrap());
        (low >> 1) < bound
    }

    #[test]
    fn fixed_vectors_match_the_reference() {
        let cases: &[(&str, f64, bool)] = &[
            ("00000000000000000000000000000000", 0.0, false),
            ("00000000000000000000000000000001", 0.000001, true),
            ("0af7651916cd43dd8448eb211c80319c", 0.5, false), // low 0x8448.. >> 1 = 0x4224.. ≥ 2^62
            ("0af7651916cd43dd3448eb211c80319c", 0.5, true),
            ("ffffffffffffffff7fffffffffffffff", 0.5, true),
            ("ffffffffffffffff8000000000000000", 0.5, false),
            ("ffffffffffffffffffffffffffffffff", 1.0, true),
            ("4bf92f3577b34da6a3ce929d0e0e4736", 0.1, false),
            ("4bf92f3577b34da60ce929d0e0e47360", 0.1, true),
        ];
        for (hex, rate, expected) in cases {
            let id = TraceId(u128::from_str_radix(hex, 16).unwrap());
            let ours = Sampler::ratio(*rate).samples_trace(id.0);
            assert_eq!(ours, reference(*rate, id.to_bytes()), "{hex} @ {rate}");
            assert_eq!(ours, *expected, "{hex} @ {rate}");
        }
    }

    #[test]
    fn random_ids_match_the_reference_and_the_ratio() {
        let sampler = Sampler::ratio(0.1);
        let n = 200_000;
        let mut kept = 0;
        for _ in 0..n {
            let id = new_trace_id();
            let ours = sampler.samples_trace(id.0);
            assert_eq!(ours, reference(0.1, id.to_bytes()));
            kept += usize::from(ours);
        }
        // Binomial(200k, 0.1): sd ≈ 134; 6 sd either side.
        assert!((19_200..=20_800).contains(&kept), "kept {kept} of {n}");
    }

    #[test]
    fn higher_rates_sample_a_superset() {
        let low = Sampler::ratio(0.2);
        let high = Sampler::ratio(0.6);
        for _ in 0..10_000 {
            let id = new_trace_id();
            assert!(!low.samples_trace(id.0) || high.samples_trace(id.0));
        }
    }

    #[test]
    fn children_follow_the_parent_whatever_the_rate() {
        let id = new_trace_id().0;
        assert!(Sampler::ratio(0.0).should_sample(Some(true), id));
        assert!(!Sampler::ratio(1.0).should_sample(Some(false), id));
        assert!(Sampler::ratio(1.0).should_sample(None, id));
        assert!(!Sampler::ratio(0.0).should_sample(None, id));
        assert!(!Sampler::ratio(0.0)
            .ignoring_parent()
            .should_sample(Some(true), id));
        assert!(!Sampler::ratio(0.0).samples_root(|| unreachable!("rate 0 reads no id")));
        assert!(Sampler::ratio(1.0).samples_root(|| id));
    }
}
