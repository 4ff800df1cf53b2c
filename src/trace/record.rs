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
use std::cell::{RefCell, UnsafeCell};
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

/// Records a thread keeps for its next spans, so a sampled span allocates nothing once the
/// thread is warm (the record and its attribute list are reused, not freed and allocated).
const RECYCLED_PER_THREAD: usize = 32;

thread_local! {
    // Boxes, not records: what is reused is the allocation a handle points to.
    #[allow(clippy::vec_box)]
    static RECYCLED: RefCell<Vec<Box<SharedRecord>>> = const { RefCell::new(Vec::new()) };
}

impl RecordBox {
    /// A record started by `start`, in place: in a recycled record (its data emptied, its lists'
    /// capacity kept) when this thread has one, so the span's data is never moved.
    pub(crate) fn new(limits: SpanLimits, origin: u64, start: impl FnOnce(&mut SpanData)) -> Self {
        let recycled = RECYCLED
            .try_with(|r| r.try_borrow_mut().ok().and_then(|mut r| r.pop()))
            .ok()
            .flatten();
        let mut record = recycled.unwrap_or_else(|| {
            Box::new(SharedRecord {
                lock: AtomicBool::new(false),
                origin,
                limits,
                data: UnsafeCell::new(None),
            })
        });
        record.origin = origin;
        record.limits = limits;
        start(record.data.get_mut().get_or_insert_with(SpanData::empty));
        RecordBox(NonNull::from(Box::leak(record)))
    }

    /// Where the frame of the origin thread keeps it.
    pub(crate) fn pointer(&self) -> NonNull<SharedRecord> {
        self.0
    }

    /// Runs `f` on the record if the span has not ended. Inline: each setter's out-of-line
    /// part is this, and the value it sets is then moved once less.
    #[inline]
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
        // SAFETY: as the caller promises.
        drop(unsafe { self.into_box() });
    }

    /// Ends the span in place with `end` (given its data, unless it already ended), then keeps
    /// the record for this thread's next span, its data emptied (its lists keep their capacity).
    ///
    /// # Safety
    /// No frame may reach it any more (rule 2 of the module doc).
    pub(crate) unsafe fn end_and_recycle(self, end: impl FnOnce(&mut SpanData)) {
        // SAFETY: as the caller promises.
        let mut record = unsafe { self.into_box() };
        let Some(data) = record.data.get_mut() else {
            return;
        };
        end(data);
        data.attributes.clear();
        data.events.clear();
        data.links.clear();
        data.trace_state = None;
        data.name = crate::attributes::Str::Static("");
        let _ = RECYCLED.try_with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                if r.len() < RECYCLED_PER_THREAD {
                    r.push(record);
                }
            }
        });
    }

    /// # Safety
    /// No frame may reach the record any more (rule 2 of the module doc).
    unsafe fn into_box(self) -> Box<SharedRecord> {
        // SAFETY: made by `Box::leak` in `new` and owned by this handle alone (consumed here),
        // so this is the one `Box` for it.
        unsafe { Box::from_raw(self.0.as_ptr()) }
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
