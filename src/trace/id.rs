//! Trace and span ids: random, never all-zero, from a per-thread generator.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
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
    // Seeded once per thread from the OS; Xoshiro256++ is fast and its output is not
    // predictable from ids seen on the wire without many observations, which is all ids need.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A random number from this thread's generator.
pub(crate) fn random_u64() -> u64 {
    RNG.try_with(|rng| rng.borrow_mut().next_u64())
        // During thread teardown the generator may be gone; fall back to a fresh one.
        .unwrap_or_else(|_| SmallRng::from_os_rng().next_u64())
}

/// A new random trace id (never zero).
pub fn new_trace_id() -> TraceId {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return TraceId(id);
        }
    }
}

/// A new random span id (never zero).
pub fn new_span_id() -> SpanId {
    loop {
        let id = random_u64();
        if id != 0 {
            return SpanId(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_valid() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(new_span_id()));
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
    fn threads_draw_different_ids() {
        let a = std::thread::spawn(new_trace_id).join().unwrap();
        let b = std::thread::spawn(new_trace_id).join().unwrap();
        assert_ne!(a, b);
    }
}
