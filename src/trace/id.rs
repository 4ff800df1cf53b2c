//! Trace and span ids: random, never all-zero, from a per-thread generator.

use rand::TryRngCore;
use std::cell::Cell;
use std::fmt;

/// A 16-byte trace id. Never all-zero when generated here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub u128);

/// An 8-byte span id. Never all-zero when generated here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub u64);

impl TraceId {
    /// The all-zero, invalid id.
    pub const INVALID: TraceId = TraceId(0);
    /// The id as the 16 big-endian bytes OTLP and W3C use.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    /// From 16 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        TraceId(u128::from_be_bytes(bytes))
    }
    /// False for the all-zero id.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }
}

impl SpanId {
    /// The all-zero, invalid id.
    pub const INVALID: SpanId = SpanId(0);
    /// The id as the 8 big-endian bytes OTLP and W3C use.
    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    /// From 8 big-endian bytes.
    pub fn from_bytes(bytes: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(bytes))
    }
    /// False for the all-zero id.
    pub fn is_valid(self) -> bool {
        self.0 != 0
    }
}

/// Lowercase hex, as in `traceparent`.
impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}
/// Lowercase hex, as in `traceparent`.
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

thread_local! {
    /// This thread's generator state; 0 until first use, then seeded from the OS.
    static RNG_STATE: Cell<u64> = const { Cell::new(0) };
}

/// The generator's Weyl step: each output advances the state by this much.
const WEYL: u64 = 0xa076_1d64_78bd_642f;

/// A random number from this thread's generator: wyrand (a 64-bit counter with a Weyl step,
/// mixed by one 128-bit multiplication), seeded once per thread from the OS. Its output is
/// uniform in every bit, which the ratio sampler relies on, and it costs a few instructions;
/// ids need uniqueness and uniformity, not secrecy.
pub(crate) fn random_u64() -> u64 {
    output(reserve(1), 0)
}

/// Takes the next `draws` outputs of this thread's generator without computing them: returns
/// the state they follow (never 0), from which [`output`] computes any of them, on any thread.
/// A span whose ids nobody reads (an unsampled one) never pays for the mixing.
#[inline(always)]
pub(crate) fn reserve(draws: u64) -> u64 {
    let s = peek().unwrap_or_else(seed);
    take(s, draws);
    s
}

/// The seed the next [`reserve`] will return, taking nothing (`None` while the generator is
/// still to be seeded): a span start's common path decides with it, and only then takes it
/// with [`take`]. Calls nothing.
#[inline(always)]
pub(crate) fn peek() -> Option<u64> {
    Some(RNG_STATE.with(Cell::get)).filter(|&s| s != 0)
}

/// Takes the `draws` outputs that follow `seed`, which [`peek`] returned.
#[inline(always)]
pub(crate) fn take(seed: u64, draws: u64) {
    RNG_STATE.with(|state| state.set(seed.wrapping_add(draws.wrapping_mul(WEYL))));
}

/// Output `i` (from 0) of those [`reserve`] returned `seed` for: one wyrand mix of the state.
#[inline(always)]
fn output(seed: u64, i: u64) -> u64 {
    let state = seed.wrapping_add((i + 1).wrapping_mul(WEYL));
    let product = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
    ((product >> 64) as u64) ^ (product as u64)
}

/// A non-zero seed from the OS generator.
#[cold]
#[inline(never)]
fn seed() -> u64 {
    loop {
        let s = rand::rngs::OsRng
            .try_next_u64()
            .unwrap_or_else(|_| fallback_seed());
        if s != 0 {
            return s;
        }
    }
}

/// Without an OS generator (it does not fail on the platforms we build for): time, thread and
/// address mixed, still distinct per thread.
fn fallback_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// How many outputs a root span's ids take, and a child's.
pub(crate) const ROOT_DRAWS: u64 = 3;
pub(crate) const CHILD_DRAWS: u64 = 1;

/// The trace id of a root span from `seed` (a [`reserve`] of [`ROOT_DRAWS`]): outputs 0 and 1.
/// The all-zero id (one chance in 2^128) becomes 1, so the same seed always gives the same id.
#[inline(always)]
pub(crate) fn root_trace_id(seed: u64) -> TraceId {
    let id = (u128::from(output(seed, 0)) << 64) | u128::from(output(seed, 1));
    TraceId(if id == 0 { 1 } else { id })
}

/// The span id of a root span from `seed`: output 2.
#[inline(always)]
pub(crate) fn root_span_id(seed: u64) -> SpanId {
    non_zero_span_id(output(seed, 2))
}

/// The span id of a child span from `seed` (a [`reserve`] of [`CHILD_DRAWS`]).
#[inline(always)]
pub(crate) fn child_span_id(seed: u64) -> SpanId {
    non_zero_span_id(output(seed, 0))
}

/// Zero (one chance in 2^64) becomes 1: a seed always gives the same, valid, id.
#[inline(always)]
fn non_zero_span_id(id: u64) -> SpanId {
    SpanId(if id == 0 { 1 } else { id })
}

/// A new random trace id (never zero).
#[cfg(test)]
pub fn new_trace_id() -> TraceId {
    root_trace_id(reserve(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(child_span_id(reserve(CHILD_DRAWS))));
            assert!(new_trace_id().is_valid());
        }
    }

    #[test]
    fn hex_and_bytes_round_trip() {
        let id = TraceId(0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(id.to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(TraceId::from_bytes(id.to_bytes()), id);
        let s = SpanId(0x00f067aa0ba902b7);
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert_eq!(SpanId::from_bytes(s.to_bytes()), s);
    }

    #[test]
    fn every_bit_is_set_about_half_the_time() {
        let draws = 20_000;
        let mut ones = [0u32; 64];
        for _ in 0..draws {
            let x = random_u64();
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += ((x >> bit) & 1) as u32;
            }
        }
        for (bit, count) in ones.iter().enumerate() {
            // 20 000 fair coin flips: 10 000 ± 400 is over 5.6 standard deviations.
            assert!((9_600..=10_400).contains(count), "bit {bit}: {count}");
        }
    }

    #[test]
    fn root_ids_are_valid_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let seed = reserve(ROOT_DRAWS);
            let (trace, span) = (root_trace_id(seed), root_span_id(seed));
            assert!(trace.is_valid() && span.is_valid());
            assert!(seen.insert(trace.0));
            assert_ne!(trace.0 as u64, span.0, "three draws, not two");
        }
    }

    #[test]
    fn ids_from_a_seed_are_the_generator_outputs_wherever_computed() {
        let seed = reserve(ROOT_DRAWS);
        let next = reserve(1);
        assert_eq!(
            next,
            seed.wrapping_add(ROOT_DRAWS.wrapping_mul(WEYL)),
            "no overlap"
        );
        let (trace, span) = (root_trace_id(seed), root_span_id(seed));
        let elsewhere = std::thread::spawn(move || (root_trace_id(seed), root_span_id(seed)))
            .join()
            .unwrap();
        assert_eq!((trace, span), elsewhere);
        assert_eq!(trace.0 as u64, output(seed, 1));
        assert_eq!(output(seed, ROOT_DRAWS), output(next, 0));
    }

    #[test]
    fn threads_draw_different_ids() {
        let a = std::thread::spawn(new_trace_id).join().unwrap();
        let b = std::thread::spawn(new_trace_id).join().unwrap();
        assert_ne!(a, b);
    }
}
