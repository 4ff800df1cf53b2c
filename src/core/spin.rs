//! The lock a metric series or a thread's hand-off slot takes for the few instructions it needs.
//!
//! A general mutex pays two locked instructions per use (taking it and releasing it, the latter
//! a compare-and-swap in case a thread sleeps on it). Here releasing is a plain store: nobody
//! sleeps on this lock, a thread that finds it taken spins briefly and then yields, which is
//! right for a critical section of a dozen instructions that never blocks or allocates. Waiters
//! back off exponentially (the README's performance notes have the measurements).
//!
//! The data it guards are [`Guarded`] numbers: atomics read and written with relaxed ordering
//! (plain moves on x86-64 and ARM) while the lock is held. The lock's acquire and release order
//! them between critical sections; being atomics keeps it all safe code, so touching one without
//! the lock could only lose an update, never be undefined behaviour.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The longest pause, in spin-loop hints, between looks at a taken lock; past it a waiter
/// yields the core to whoever holds the lock.
const LONGEST_BACKOFF: u32 = 64;

#[derive(Debug, Default)]
pub(crate) struct SpinLock(AtomicBool);

/// Holds the lock until dropped.
pub(crate) struct SpinGuard<'a>(&'a AtomicBool);

impl SpinLock {
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_> {
        if self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        SpinGuard(&self.0)
    }

    /// The lock if it is free now: lets a hot path hand the contended case to a cold function
    /// that takes over the whole operation, so the hot one keeps nothing live across a call.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_>> {
        // A guard exists only once the lock is ours: a guard made and dropped on failure
        // would release the holder's lock.
        match self
            .0
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => Some(SpinGuard(&self.0)),
            Err(_) => None,
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut backoff = 1;
        loop {
            // Wait with plain loads (no cache-line ping-pong), backing off exponentially so
            // that waiters do not all pounce at once, then yield to whoever holds the lock.
            while self.0.load(Ordering::Relaxed) {
                if backoff <= LONGEST_BACKOFF {
                    (0..backoff).for_each(|_| std::hint::spin_loop());
                    backoff *= 2;
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .0
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

impl Drop for SpinGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// A number only read and written under a [`SpinLock`].
#[derive(Debug, Default)]
pub(crate) struct Guarded(AtomicU64);

impl Guarded {
    pub(crate) fn new(value: u64) -> Self {
        Guarded(AtomicU64::new(value))
    }

    pub(crate) fn from_f64(value: f64) -> Self {
        Guarded::new(value.to_bits())
    }

    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn get_f64(&self) -> f64 {
        f64::from_bits(self.get())
    }

    #[inline]
    pub(crate) fn set_f64(&self, value: f64) {
        self.set(value.to_bits());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Lost updates are what a lock that fails to exclude produces: with read-then-write
    /// increments from several threads, any overlap shows up as a short total.
    #[test]
    fn excludes_under_contention() {
        let threads = 4;
        let per_thread = 200_000u64;
        let shared = Arc::new((SpinLock::default(), Guarded::new(0), Guarded::from_f64(0.0)));
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    for _ in 0..per_thread {
                        let _guard = shared.0.lock();
                        shared.1.set(shared.1.get() + 1);
                        shared.2.set_f64(shared.2.get_f64() + 0.5);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let _guard = shared.0.lock();
        assert_eq!(shared.1.get(), threads * per_thread);
        assert_eq!(shared.2.get_f64(), (threads * per_thread) as f64 * 0.5);
    }

    #[test]
    fn a_failed_try_lock_leaves_the_holder_holding() {
        let lock = SpinLock::default();
        let held = lock.try_lock();
        assert!(held.is_some());
        assert!(lock.try_lock().is_none());
        assert!(
            lock.0.load(Ordering::Relaxed),
            "still held after a failed try"
        );
        drop(held);
        assert!(lock.try_lock().is_some());
    }

    #[test]
    fn a_released_lock_can_be_taken_again() {
        let lock = SpinLock::default();
        drop(lock.lock());
        let _again = lock.lock();
        assert!(lock.0.load(Ordering::Relaxed));
    }
}
