//! The record of a sampled span, reachable from two places: the [`Span`](super::Span) handle
//! (which may move to another thread, it is `Send`), and the current-span frame of the thread
//! that started it (so deep code can set an attribute on whatever span is current).
//!
//! Why this is not an `Arc<Mutex<SpanData>>`: that costs two locked instructions per access
//! plus two per span for the reference count, about 50 ns on a span with three attributes on
//! our host, a third of a sampled span. Here the common case, the handle used on the thread
//! that started the span, takes no lock at all (one thread-local read decides it), and only
//! access from elsewhere takes a one-instruction spin lock.
//!
//! The rules that make it sound:
//! 1. Only two parties ever reach the record: the handle (one owner, wherever it is) and the
//!    origin thread's frame. Code on the origin thread with the handle in hand cannot run
//!    concurrently with code on the origin thread using the frame, so the handle skips the lock
//!    there; every other access (the handle on another thread, any access through the frame)
//!    takes the lock.
//! 2. The record is freed only after its frame can no longer reach it: by the handle on the
//!    origin thread after its frame is marked ended, or by the origin thread itself when it
//!    processes the end posted to it by another thread (or by that other thread if the origin
//!    thread's frames are already gone). See `context::leave_from_elsewhere`.

use super::span::SpanData;
use crate::core::SpanLimits;
use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) struct SharedRecord {
    lock: AtomicBool,
    /// The thread key (`context::thread_key`) of the thread that started the span.
    origin: u64,
    limits: SpanLimits,
    /// `None` once the span has ended.
    data: UnsafeCell<Option<SpanData>>,
}

/// Held while the record is touched off its origin thread or through the frame.
struct Locked<'a>(&'a AtomicBool);

impl SharedRecord {
    fn lock(&self) -> Locked<'_> {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Contention needs the handle on one thread and deep code on the origin thread
            // touching the same span at the same instant: rare, and a few instructions long.
            std::thread::yield_now();
        }
        Locked(&self.lock)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The handle's owning pointer to a record.
pub(crate) struct RecordBox(NonNull<SharedRecord>);

// SAFETY: the record's data is only touched under the rules in the module doc: from a thread
// other than the origin thread only under the lock; the other fields are immutable or atomic.
unsafe impl Send for RecordBox {}

impl RecordBox {
    pub(crate) fn new(data: SpanData, limits: SpanLimits, origin: u64) -> Self {
        let record = Box::new(SharedRecord {
            lock: AtomicBool::new(false),
            origin,
            limits,
            data: UnsafeCell::new(Some(data)),
        });
        RecordBox(NonNull::from(Box::leak(record)))
    }

    /// Where the frame of the origin thread keeps it.
    pub(crate) fn pointer(&self) -> NonNull<SharedRecord> {
        self.0
    }

    /// Runs `f` on the record if the span has not ended.
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut SpanData, SpanLimits) -> R) -> Option<R> {
        // SAFETY: alive until `free` (which takes `self`); shared fields are immutable/atomic.
        let record = unsafe { self.0.as_ref() };
        let _locked = (record.origin != super::context::thread_key()).then(|| record.lock());
        // SAFETY: rule 1: on the origin thread nobody else can touch it now (the frame is only
        // used by code on this thread, which is not running); elsewhere we hold the lock.
        let data = unsafe { &mut *record.data.get() };
        data.as_mut().map(|d| f(d, record.limits))
    }

    /// Ends the span: takes its data out (later accesses, through the frame too, see it ended).
    pub(crate) fn take(&mut self) -> Option<SpanData> {
        // SAFETY: as in `with`.
        let record = unsafe { self.0.as_ref() };
        let _locked = (record.origin != super::context::thread_key()).then(|| record.lock());
        // SAFETY: as in `with`.
        unsafe { &mut *record.data.get() }.take()
    }

    /// Frees the record.
    ///
    /// # Safety
    /// No frame may reach it any more (rule 2 of the module doc).
    pub(crate) unsafe fn free(self) {
        // SAFETY: made by `Box::leak` in `new`, freed once (this consumes the only handle).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Runs `f` on the record a frame points to, if its span has not ended.
///
/// # Safety
/// The record must not have been freed: the frame that holds `pointer` is not marked ended
/// (rule 2 of the module doc).
pub(crate) unsafe fn with_frame_record<R>(
    pointer: NonNull<SharedRecord>,
    f: impl FnOnce(&mut SpanData, SpanLimits) -> R,
) -> Option<R> {
    // SAFETY: alive, per the caller.
    let record = unsafe { pointer.as_ref() };
    let _locked = record.lock();
    // SAFETY: under the lock; the handle on the origin thread, which skips the lock, is not
    // running while this code (on the origin thread) is.
    let data = unsafe { &mut *record.data.get() };
    data.as_mut().map(|d| f(d, record.limits))
}
