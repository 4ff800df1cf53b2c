//! Timestamps: Unix nanoseconds read from a monotonic clock plus an offset to wall time.
//!
//! A monotonic clock keeps a span's duration true when the wall clock is stepped while the span
//! runs. The offset is re-taken on the exporter thread at every span export tick ([`resync`]),
//! so a stepped wall clock shows in timestamps within one export interval.
//!
//! The monotonic clock is the CPU's time-stamp counter where it ticks at a constant rate in all
//! power states (x86-64 with `constant_tsc` and `nonstop_tsc`): one instruction and a
//! multiply-shift per read, where `Instant::now()` goes through the vDSO's own conversion and its
//! sequence lock. The tick rate is measured against `Instant` on first use (a short spin) and
//! refined at every [`resync`] over the whole time since, each refinement continuing from the
//! converted value it replaces, so the converted time never goes back or jumps; a remaining gap
//! to `Instant` is slewed away within bounds. Elsewhere, or when a measurement looks wrong, the
//! clock is `Instant` itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The instant the offset is measured from, taken on first use.
static ANCHOR: OnceLock<Instant> = OnceLock::new();
/// Wall-clock Unix nanoseconds at [`ANCHOR`], as of the last [`resync`].
static UNIX_AT_ANCHOR: AtomicU64 = AtomicU64::new(0);

/// Wall-clock time in Unix nanoseconds (0 if the clock is before 1970).
#[inline]
pub(crate) fn now_unix_nanos() -> u64 {
    let since_anchor = monotonic_nanos();
    UNIX_AT_ANCHOR
        .load(Ordering::Relaxed)
        .saturating_add(since_anchor)
}

/// Nanoseconds since [`ANCHOR`].
#[inline]
fn monotonic_nanos() -> u64 {
    monotonic_nanos_by(&tsc::CLOCK)
}

#[inline]
fn monotonic_nanos_by(clock: &tsc::Clock) -> u64 {
    match clock.now() {
        Some(nanos) => nanos,
        None => instant_nanos(clock),
    }
}

/// [`monotonic_nanos`] from `Instant`: the fallback, and the first call (which calibrates).
#[cold]
#[inline(never)]
fn instant_nanos(clock: &tsc::Clock) -> u64 {
    let anchor = anchor();
    // The first call has just calibrated the counter: from now on it is the clock.
    clock.now().unwrap_or_else(|| as_nanos(anchor.elapsed()))
}

/// Re-measures the offset between the monotonic clock and wall time, and refines the
/// counter's tick rate (exporter thread).
pub(crate) fn resync() {
    let anchor = anchor();
    UNIX_AT_ANCHOR.store(offset_at(anchor), Ordering::Relaxed);
    tsc::CLOCK.refine(anchor);
}

fn anchor() -> &'static Instant {
    ANCHOR.get_or_init(|| {
        let anchor = Instant::now();
        // Stored before the anchor is published: every reader sees it.
        UNIX_AT_ANCHOR.store(offset_at(&anchor), Ordering::Relaxed);
        if tsc::invariant() {
            tsc::CLOCK.calibrate(&anchor);
        }
        anchor
    })
}

/// Wall time at `anchor`: now, minus the time since `anchor`.
fn offset_at(anchor: &Instant) -> u64 {
    system_unix_nanos().saturating_sub(as_nanos(anchor.elapsed()))
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, as_nanos)
}

fn as_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// No counter to use: the clock is `Instant`.
#[cfg(not(target_arch = "x86_64"))]
mod tsc {
    use std::time::Instant;

    pub(super) static CLOCK: Clock = Clock;

    pub(super) struct Clock;

    impl Clock {
        #[cfg(test)]
        pub(super) const fn new() -> Clock {
            Clock
        }
        #[inline]
        pub(super) fn now(&self) -> Option<u64> {
            None
        }
        pub(super) fn calibrate(&self, _: &Instant) {}
        pub(super) fn refine(&self, _: &Instant) {}
    }

    pub(super) fn invariant() -> bool {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod tsc {
    //! The time-stamp counter converted to nanoseconds since the anchor.

    use super::as_nanos;
    use parking_lot::Mutex;
    use std::io::{BufRead, BufReader};
    use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    /// The process's counter clock.
    pub(super) static CLOCK: Clock = Clock::new();

    /// Fractional bits of [`Slot::mult`]: nanoseconds per tick times 2^32, exact to a
    /// nanosecond per few seconds, and the product with any tick count fits in 128 bits.
    const SHIFT: u32 = 32;
    /// The first-use calibration spins until its rate is this exact (the readings' widths
    /// over the ticks between them), which the first refinement (seconds later, over seconds)
    /// takes to 10^-8 ...
    const FIRST_ERROR: f64 = 1e-4;
    /// ... or for at most this long, where reading `Instant` is slow (an emulator) ...
    const LONGEST_FIRST: Duration = Duration::from_millis(50);
    /// ... and then uses the counter only if the rate is this exact.
    const FIRST_ERROR_ACCEPTED: f64 = 2e-3;
    /// A reading of the counter and `Instant` side by side is used only if no wider than this
    /// (ticks between the two counter reads around it, a millisecond at the fastest plausible
    /// rate): wider means the thread was interrupted.
    const WIDEST_PAIR: u64 = 20_000_000;
    /// Most a refinement bends the rate to close a gap to `Instant`: durations measured while it
    /// slews are off by at most this fraction.
    const MOST_SLEW: f64 = 1e-3;
    /// A gap to `Instant` this wide means the counter is not what the flags said (a migrated
    /// virtual machine, a broken counter): the clock goes back to `Instant` for good.
    const BROKEN_GAP_NANOS: f64 = 20e6;

    /// Whether the counter ticks at one rate in all states (the kernel's flags for it) and
    /// agrees across processors (the kernel still offers it as a clock source, which it stops
    /// doing once it finds the processors' counters apart). Read once.
    pub(super) fn invariant() -> bool {
        // Miri cannot run `rdtsc`: the `Instant` path there, so the unsafe code elsewhere can be
        // checked under it.
        if cfg!(miri) {
            return false;
        }
        let Ok(cpuinfo) = std::fs::File::open("/proc/cpuinfo") else {
            return false;
        };
        let sources = std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/available_clocksource",
        )
        .ok();
        invariant_from(BufReader::new(cpuinfo), sources.as_deref())
    }

    fn invariant_from(cpuinfo: impl BufRead, clock_sources: Option<&str>) -> bool {
        if clock_sources.is_some_and(|s| !s.split_whitespace().any(|s| s == "tsc")) {
            return false;
        }
        for line in cpuinfo.lines().map_while(Result::ok) {
            if let Some((name, flags)) = line.split_once(':') {
                if name.trim() == "flags" {
                    let mut constant = false;
                    let mut nonstop = false;
                    for flag in flags.split_whitespace() {
                        constant |= flag == "constant_tsc";
                        nonstop |= flag == "nonstop_tsc";
                    }
                    return constant && nonstop;
                }
            }
        }
        false
    }

    #[inline]
    fn read_counter() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor (it is in the base instruction set
        // the target assumes), reads a register and touches no memory; `_rdtsc` is an `unsafe
        // fn` only because intrinsics are. A counter that ticks unevenly would be wrong, never
        // unsound, and `invariant` keeps such counters out.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    /// One published conversion: `mono0 + (ticks - tsc0) * mult / 2^SHIFT`. `mult == 0`: the
    /// counter is not used.
    #[derive(Debug)]
    struct Slot {
        /// Even when the fields are whole, odd while they are written.
        seq: AtomicU64,
        tsc0: AtomicU64,
        mono0: AtomicU64,
        mult: AtomicU64,
    }

    impl Slot {
        const fn new() -> Slot {
            Slot {
                seq: AtomicU64::new(0),
                tsc0: AtomicU64::new(0),
                mono0: AtomicU64::new(0),
                mult: AtomicU64::new(0),
            }
        }
    }

    /// A conversion as written and read.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Conversion {
        tsc0: u64,
        mono0: u64,
        mult: u64,
    }

    impl Conversion {
        /// Nanoseconds at `ticks`; ticks before `tsc0` (a counter read reordered before the
        /// slot's, by a few cycles) count as `tsc0`, so a new conversion never reads below
        /// where it starts.
        /// Nanoseconds stay far below 2^64 (584 years), so the sum and the narrowing are exact.
        #[inline]
        fn at(self, ticks: u64) -> u64 {
            let elapsed = u128::from(ticks.saturating_sub(self.tsc0)) * u128::from(self.mult);
            self.mono0.wrapping_add((elapsed >> SHIFT) as u64)
        }
    }

    /// What only the thread calibrating or refining touches.
    #[derive(Debug)]
    struct Calibration {
        /// The first reading: refinements measure the rate over all the time since.
        origin: Pair,
        /// The last refinement's reading.
        last: Pair,
        broken: bool,
    }

    /// The counter and `Instant` read side by side.
    #[derive(Clone, Copy, Debug)]
    struct Pair {
        ticks: u64,
        nanos: u64,
        /// Ticks between the counter reads around `Instant`: how far `ticks` may be off.
        width: u64,
    }

    /// The counter clock: two slots, one published. A writer fills the other and then
    /// publishes it, so a reader never waits for a writer; it retries only if two publications
    /// pass while it reads one slot.
    #[derive(Debug)]
    pub(super) struct Clock {
        slots: [Slot; 2],
        /// The published slot; [`UNPUBLISHED`] until the first calibration.
        current: AtomicUsize,
        calibration: Mutex<Option<Calibration>>,
    }

    const UNPUBLISHED: usize = usize::MAX;

    impl Clock {
        pub(super) const fn new() -> Clock {
            Clock {
                slots: [const { Slot::new() }, const { Slot::new() }],
                current: AtomicUsize::new(UNPUBLISHED),
                calibration: parking_lot::const_mutex(None),
            }
        }

        /// Nanoseconds since the anchor by the counter; `None` when it is not used (not
        /// calibrated yet, not invariant, or found broken).
        #[inline]
        pub(super) fn now(&self) -> Option<u64> {
            loop {
                let slot = self.slots.get(self.current.load(Ordering::Acquire))?;
                // A sequence lock: the fields are whole if the count is even and unchanged
                // around reading them (and the counter, which then belongs to this conversion).
                let seq = slot.seq.load(Ordering::Acquire);
                let conversion = Conversion {
                    tsc0: slot.tsc0.load(Ordering::Relaxed),
                    mono0: slot.mono0.load(Ordering::Relaxed),
                    mult: slot.mult.load(Ordering::Relaxed),
                };
                let ticks = read_counter();
                fence(Ordering::Acquire);
                if seq & 1 == 0 && slot.seq.load(Ordering::Relaxed) == seq {
                    return (conversion.mult != 0).then(|| conversion.at(ticks));
                }
            }
        }

        /// The published conversion (`None` before the first).
        fn conversion(&self) -> Option<Conversion> {
            let slot = self.slots.get(self.current.load(Ordering::Acquire))?;
            Some(Conversion {
                tsc0: slot.tsc0.load(Ordering::Relaxed),
                mono0: slot.mono0.load(Ordering::Relaxed),
                mult: slot.mult.load(Ordering::Relaxed),
            })
        }

        /// Fills the unpublished slot and publishes it. Writers hold `calibration`.
        fn publish(&self, conversion: Conversion) {
            let next = match self.current.load(Ordering::Relaxed) {
                0 => 1,
                _ => 0,
            };
            let slot = &self.slots[next];
            let seq = slot.seq.load(Ordering::Relaxed);
            slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
            fence(Ordering::Release);
            slot.tsc0.store(conversion.tsc0, Ordering::Relaxed);
            slot.mono0.store(conversion.mono0, Ordering::Relaxed);
            slot.mult.store(conversion.mult, Ordering::Relaxed);
            slot.seq.store(seq.wrapping_add(2), Ordering::Release);
            self.current.store(next, Ordering::Release);
        }

        /// The first calibration: two readings far enough apart for [`FIRST_ERROR`]. Leaves
        /// the clock on `Instant` if the readings are disturbed or the rate implausible.
        pub(super) fn calibrate(&self, anchor: &Instant) {
            let mut calibration = self.calibration.lock();
            if calibration.is_some() {
                return;
            }
            let Some(first) = pair(anchor) else {
                return;
            };
            let started = Instant::now();
            let second = loop {
                let until = Instant::now() + Duration::from_micros(100);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                let Some(second) = pair(anchor) else {
                    return;
                };
                let error = (first.width + second.width) as f64
                    / 2.0
                    / second.ticks.saturating_sub(first.ticks).max(1) as f64;
                if error <= FIRST_ERROR {
                    break second;
                }
                if started.elapsed() >= LONGEST_FIRST {
                    if error <= FIRST_ERROR_ACCEPTED {
                        break second;
                    }
                    return;
                }
            };
            let Some(ticks_per_nano) = rate(first, second) else {
                return;
            };
            self.publish(Conversion {
                tsc0: second.ticks,
                mono0: second.nanos,
                mult: mult(ticks_per_nano),
            });
            *calibration = Some(Calibration {
                origin: first,
                last: second,
                broken: false,
            });
        }

        /// Refines the rate over all the time since the first reading, continuing from the
        /// value the published conversion gives now, and slews a gap to `Instant` away over
        /// about one refinement interval (bounded by [`MOST_SLEW`]).
        pub(super) fn refine(&self, anchor: &Instant) {
            let mut guard = self.calibration.lock();
            let Some(calibration) = guard.as_mut() else {
                return;
            };
            if calibration.broken {
                return;
            }
            let (Some(now), Some(published)) = (pair(anchor), self.conversion()) else {
                return;
            };
            let Some(ticks_per_nano) = rate(calibration.origin, now) else {
                return;
            };
            let converted = published.at(now.ticks);
            // Positive: the counter clock is ahead of `Instant`.
            let gap = converted as f64 - now.nanos as f64;
            if gap.abs() > BROKEN_GAP_NANOS {
                calibration.broken = true;
                self.publish(Conversion {
                    mult: 0,
                    ..published
                });
                return;
            }
            let interval = (now.nanos.saturating_sub(calibration.last.nanos) as f64).max(1e8);
            let slew = (gap / interval).clamp(-MOST_SLEW, MOST_SLEW);
            self.publish(Conversion {
                tsc0: now.ticks,
                mono0: converted,
                mult: mult(ticks_per_nano / (1.0 - slew)),
            });
            calibration.last = now;
        }
    }

    /// Nanoseconds per tick times 2^SHIFT.
    fn mult(ticks_per_nano: f64) -> u64 {
        ((1u64 << SHIFT) as f64 / ticks_per_nano).round() as u64
    }

    /// Ticks per nanosecond between two readings, if plausible (a counter of 50 MHz to 20 GHz).
    fn rate(from: Pair, to: Pair) -> Option<f64> {
        let ticks = to.ticks.checked_sub(from.ticks)? as f64;
        let nanos = to.nanos.checked_sub(from.nanos)? as f64;
        let rate = ticks / nanos;
        (nanos > 0.0 && (0.05..20.0).contains(&rate)).then_some(rate)
    }

    /// The counter and `Instant` read side by side: the narrowest of a few tries, the counter
    /// taken halfway between its reads around `Instant`. `None` if every try was interrupted.
    fn pair(anchor: &Instant) -> Option<Pair> {
        (0..5)
            .filter_map(|_| {
                let before = read_counter();
                let nanos = as_nanos(anchor.elapsed());
                let after = read_counter();
                let width = after.checked_sub(before)?;
                (width <= WIDEST_PAIR).then_some(Pair {
                    ticks: before + width / 2,
                    nanos,
                    width,
                })
            })
            .min_by_key(|pair| pair.width)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::atomic::AtomicBool;

        fn calibrated() -> Option<(&'static Clock, &'static Instant)> {
            if !invariant() {
                eprintln!("no invariant counter here: nothing to test");
                return None;
            }
            let clock: &'static Clock = Box::leak(Box::new(Clock::new()));
            let anchor: &'static Instant = Box::leak(Box::new(Instant::now()));
            clock.calibrate(anchor);
            Some((clock, anchor))
        }

        #[test]
        fn tracks_instant_within_a_few_microseconds_after_refinement() {
            let Some((clock, anchor)) = calibrated() else {
                return;
            };
            std::thread::sleep(Duration::from_millis(50));
            clock.refine(anchor);
            for _ in 0..1000 {
                let before = as_nanos(anchor.elapsed());
                let counter = clock.now().expect("calibrated");
                let after = as_nanos(anchor.elapsed());
                // Within the calibration's error over 50 ms (a 10^-4 rate error is 5 µs) and
                // the reading's own spread.
                assert!(
                    counter + 200_000 >= before && counter <= after + 200_000,
                    "{before} {counter} {after}"
                );
            }
        }

        /// Readers on this thread see the clock only go forward while another thread refines
        /// it as fast as it can, with gaps to slew and rates that change.
        #[test]
        fn never_goes_back_while_another_thread_refines() {
            let Some((clock, anchor)) = calibrated() else {
                return;
            };
            // A gap to slew: the counter clock 5 ms ahead, so refinements slow it down as
            // much as they may.
            let published = clock.conversion().unwrap();
            clock.publish(Conversion {
                mono0: published.mono0 + 5_000_000,
                ..published
            });
            let stop = AtomicBool::new(false);
            let mut previous = clock.now().expect("calibrated");
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        clock.refine(anchor);
                        std::thread::yield_now();
                    }
                });
                // Stops the refiner however this thread leaves, a failed assertion included.
                struct Stop<'a>(&'a AtomicBool);
                impl Drop for Stop<'_> {
                    fn drop(&mut self) {
                        self.0.store(true, Ordering::Relaxed);
                    }
                }
                let _stop = Stop(&stop);
                for _ in 0..2_000_000 {
                    let now = clock.now().expect("calibrated");
                    assert!(now >= previous, "{now} after {previous}");
                    previous = now;
                }
            });
        }

        #[test]
        fn a_refinement_continues_from_the_converted_value() {
            let Some((clock, anchor)) = calibrated() else {
                return;
            };
            for _ in 0..20 {
                let before = clock.conversion().unwrap();
                std::thread::sleep(Duration::from_millis(1));
                clock.refine(anchor);
                let after = clock.conversion().unwrap();
                assert!(after.tsc0 > before.tsc0);
                assert_eq!(after.mono0, before.at(after.tsc0), "no jump");
            }
            let conversion = Conversion {
                tsc0: 1_000,
                mono0: 5_000,
                mult: mult(2.5),
            };
            // 2.5 ticks per ns: 2500 ticks later, 1000 ns later (to the nanosecond).
            assert!(conversion.at(3_500).abs_diff(6_000) <= 1);
            // Ticks read just before the conversion's start count as its start.
            assert_eq!(conversion.at(900), 5_000);
        }

        #[test]
        fn a_broken_counter_hands_over_to_instant_for_good() {
            let Some((clock, anchor)) = calibrated() else {
                return;
            };
            // As if the counter had jumped: the published conversion is a second ahead.
            let published = clock.conversion().unwrap();
            clock.publish(Conversion {
                mono0: published.mono0 + 1_000_000_000,
                ..published
            });
            clock.refine(anchor);
            assert_eq!(clock.now(), None);
            clock.refine(anchor);
            assert_eq!(clock.now(), None, "stays off");
        }

        #[test]
        fn an_implausible_rate_is_refused() {
            let at = |ticks, nanos| Pair {
                ticks,
                nanos,
                width: 0,
            };
            assert_eq!(rate(at(0, 0), at(2_600, 1_000)), Some(2.6));
            assert_eq!(rate(at(0, 0), at(1, 1_000)), None, "1 MHz");
            assert_eq!(rate(at(5, 0), at(1, 1_000)), None, "backwards");
            assert_eq!(rate(at(0, 0), at(100, 0)), None, "no time");
        }

        #[test]
        fn the_counter_is_used_only_with_both_flags_and_as_a_kernel_clock_source() {
            let cpuinfo = |flags: &str| {
                format!("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu {flags} sse2\n\nprocessor\t: 1\n")
            };
            let both = cpuinfo("constant_tsc nonstop_tsc");
            assert!(invariant_from(both.as_bytes(), Some("tsc kvm-clock \n")));
            assert!(invariant_from(both.as_bytes(), None));
            assert!(!invariant_from(both.as_bytes(), Some("kvm-clock hpet\n")));
            assert!(!invariant_from(cpuinfo("constant_tsc").as_bytes(), None));
            assert!(!invariant_from(cpuinfo("nonstop_tsc").as_bytes(), None));
            assert!(!invariant_from("".as_bytes(), None));
        }

        #[test]
        fn an_uncalibrated_clock_is_not_used() {
            assert_eq!(Clock::new().now(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One test: the offset is process-wide, and tests run in parallel.
    #[test]
    fn follows_the_wall_clock_never_goes_back_and_resync_takes_up_a_step() {
        let mut previous = now_unix_nanos();
        for i in 0..10_000 {
            if i % 1000 == 0 {
                let gap = now_unix_nanos().abs_diff(system_unix_nanos());
                assert!(gap < 5_000_000, "{gap} ns from the wall clock");
            }
            let now = now_unix_nanos();
            assert!(now >= previous);
            previous = now;
        }

        // As if the wall clock had been stepped a second forward since the last resync.
        UNIX_AT_ANCHOR.store(offset_at(anchor()) - 1_000_000_000, Ordering::Relaxed);
        assert!(system_unix_nanos() - now_unix_nanos() > 900_000_000);
        resync();
        assert!(now_unix_nanos().abs_diff(system_unix_nanos()) < 5_000_000);
    }

    /// The `Instant` path, which every host without an invariant counter takes: a clock that
    /// gives no reading (never calibrated here) hands over to it.
    #[test]
    fn without_the_counter_the_clock_is_instant_since_the_anchor() {
        let unused = tsc::Clock::new();
        assert_eq!(unused.now(), None);
        let anchor = anchor();
        let mut previous = 0;
        for _ in 0..1000 {
            let before = as_nanos(anchor.elapsed());
            let fallback = monotonic_nanos_by(&unused);
            let after = as_nanos(anchor.elapsed());
            assert!((before..=after).contains(&fallback));
            assert!(fallback >= previous);
            previous = fallback;
        }
    }
}
