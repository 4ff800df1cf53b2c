//! The span context and the per-thread "current span".
//!
//! Each thread has one current [`SpanContext`]. Starting a span makes it current until it ends;
//! a context captured with [`current`] can be carried to another thread and attached there, so
//! work on a worker thread nests under the request that spawned it.

use super::id::{SpanId, TraceId};
use super::record::{RecordBox, SharedRecord};
use parking_lot::Mutex;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// W3C trace flag: the trace is sampled.
pub const FLAG_SAMPLED: u8 = 0x01;

/// What identifies a span across threads and processes: ids, trace flags, tracestate.
///
/// Cheap to clone (the tracestate is shared) and `Send`, so it can travel to worker threads.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpanContext {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: u8,
    pub(crate) is_remote: bool,
    pub(crate) trace_state: Option<Arc<str>>,
}

impl SpanContext {
    /// A context for ids that came from elsewhere, e.g. a parsed `traceparent`.
    pub fn new_remote(trace_id: TraceId, span_id: SpanId, flags: u8) -> Self {
        SpanContext {
            trace_id,
            span_id,
            flags,
            is_remote: true,
            trace_state: None,
        }
    }

    /// The same context carrying a (validated) `tracestate` header value.
    pub fn with_trace_state(mut self, trace_state: Option<Arc<str>>) -> Self {
        self.trace_state = trace_state;
        self
    }

    /// The empty context: no span is current.
    pub const fn none() -> Self {
        SpanContext {
            trace_id: TraceId(0),
            span_id: SpanId(0),
            flags: 0,
            is_remote: false,
            trace_state: None,
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The W3C trace flags (bit 0: sampled; other bits kept as received).
    pub fn flags(&self) -> u8 {
        self.flags
    }
    /// Whether this span is recorded and exported.
    pub fn is_sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }
    /// Whether the context came from another process.
    pub fn is_remote(&self) -> bool {
        self.is_remote
    }
    /// The `tracestate` header value carried along, if any.
    pub fn trace_state(&self) -> Option<&str> {
        self.trace_state.as_deref()
    }
    /// Both ids non-zero.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Makes this context current on this thread until the guard is dropped; spans started
    /// meanwhile become its children.
    ///
    /// ```
    /// let request_context = plain_connect::trace::current();
    /// std::thread::spawn(move || {
    ///     let _guard = request_context.attach();
    ///     // spans started here nest under the request's span
    /// })
    /// .join()
    /// .unwrap();
    /// ```
    pub fn attach(self) -> ContextGuard {
        ContextGuard {
            previous: enter(&self),
            _not_send: PhantomData,
        }
    }
}

/// The plain-data part of a context: what the hot path reads and swaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Ids {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) flags: u8,
    pub(crate) is_remote: bool,
    /// Whether a tracestate goes with these ids (kept in the frame, read only when present).
    pub(crate) has_trace_state: bool,
}

impl Ids {
    /// Both ids non-zero.
    pub(crate) fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }
}

impl SpanContext {
    pub(crate) fn ids(&self) -> Ids {
        Ids {
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
            is_remote: self.is_remote,
            has_trace_state: self.trace_state.is_some(),
        }
    }

    fn from_ids(ids: Ids, trace_state: Option<Arc<str>>) -> Self {
        SpanContext {
            trace_id: ids.trace_id,
            span_id: ids.span_id,
            flags: ids.flags,
            is_remote: ids.is_remote,
            trace_state,
        }
    }
}

/// This thread's current ids, one `Cell` per field: a copy of the top live frame's, so reading
/// them (log correlation, exemplars) is a few plain loads.
struct CurrentIds {
    trace_id: Cell<u128>,
    span_id: Cell<u64>,
    flags: Cell<u8>,
    is_remote: Cell<bool>,
    has_trace_state: Cell<bool>,
}

impl CurrentIds {
    fn get(&self) -> Ids {
        Ids {
            trace_id: TraceId(self.trace_id.get()),
            span_id: SpanId(self.span_id.get()),
            flags: self.flags.get(),
            is_remote: self.is_remote.get(),
            has_trace_state: self.has_trace_state.get(),
        }
    }

    fn set(&self, ids: Ids) {
        self.trace_id.set(ids.trace_id.0);
        self.span_id.set(ids.span_id.0);
        self.flags.set(ids.flags);
        self.is_remote.set(ids.is_remote);
        self.has_trace_state.set(ids.has_trace_state);
    }
}

/// One entered context on a thread's stack.
struct Frame {
    ids: Ids,
    trace_state: Option<Arc<str>>,
    /// The span's record, for code that reaches the current span without its handle.
    record: Option<NonNull<SharedRecord>>,
    /// Ended (its span ended or its guard dropped) while a later frame was still live: popped
    /// as soon as it is on top, never current again.
    ended: bool,
}

/// Ends posted to a thread by spans that were started there and ended elsewhere.
#[derive(Default)]
struct Mailbox {
    state: Mutex<MailboxState>,
}

#[derive(Default)]
struct MailboxState {
    /// Set when the thread's frames are gone: a poster then frees the record itself.
    closed: bool,
    ended: Vec<(Saved, Option<RecordBox>)>,
}

/// The thread's stack of entered contexts: the top live frame is the current context. A span
/// or guard leaves its own frame, whatever the order: a frame left while a later one is live
/// is marked ended and popped once on top, so an ended span never becomes current again.
struct Stack {
    frames: RefCell<Vec<Frame>>,
    /// Unique per thread for the life of the process (0 until first use).
    key: Cell<u64>,
    mailbox: RefCell<Option<Arc<Mailbox>>>,
}

impl Stack {
    fn key(&self) -> u64 {
        if self.key.get() == 0 {
            static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
            let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
            let mailbox = Arc::new(Mailbox::default());
            registry().insert(key, Arc::downgrade(&mailbox));
            *self.mailbox.borrow_mut() = Some(mailbox);
            self.key.set(key);
            let _ = THREAD_KEY.try_with(|k| k.set(key));
        }
        self.key.get()
    }

    /// Marks frame `saved` ended and pops the ended frames from the top; refreshes the ids.
    #[inline]
    fn leave(&self, saved: &Saved) {
        let Ok(mut frames) = self.frames.try_borrow_mut() else {
            return;
        };
        if let Some(frame) = frames.get_mut(saved.depth as usize) {
            if frame.ids.span_id.0 == saved.span_id && !frame.ended {
                frame.ended = true;
                frame.record = None;
            }
        }
        pop_ended(&mut frames);
    }

    /// Applies the ends other threads posted here, freeing their records.
    #[cold]
    fn receive_remote_ends(&self) {
        let mailbox = self.mailbox.borrow().clone();
        let Some(mailbox) = mailbox else { return };
        let ended = std::mem::take(&mut mailbox.state.lock().ended);
        if ended.is_empty() {
            return;
        }
        REMOTE_ENDS.fetch_sub(ended.len(), Ordering::Relaxed);
        for (saved, record) in ended {
            self.leave(&saved);
            if let Some(record) = record {
                // SAFETY: its frame on this thread was just marked ended (or was gone).
                unsafe { record.free() };
            }
        }
    }
}

/// Pops ended frames off the top and makes the new top current.
fn pop_ended(frames: &mut Vec<Frame>) {
    while frames.last().is_some_and(|f| f.ended) {
        frames.pop();
    }
    let top = frames.last().map(|f| f.ids).unwrap_or_default();
    let _ = CURRENT_IDS.try_with(|c| c.set(top));
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mailbox) = self.mailbox.get_mut().take() {
            let mut state = mailbox.state.lock();
            state.closed = true;
            REMOTE_ENDS.fetch_sub(state.ended.len(), Ordering::Relaxed);
            for (_, record) in state.ended.drain(..) {
                if let Some(record) = record {
                    // SAFETY: this thread's frames are being dropped: none can reach it.
                    unsafe { record.free() };
                }
            }
            drop(state);
            registry().remove(&self.key.get());
        }
        let _ = THREAD_KEY.try_with(|k| k.set(0));
        self.frames.get_mut().clear();
    }
}

/// Ends posted to some thread and not yet applied there: while 0 (the common case), no thread
/// looks at its mailbox.
static REMOTE_ENDS: AtomicUsize = AtomicUsize::new(0);

static REGISTRY: Mutex<Option<HashMap<u64, Weak<Mailbox>>>> = parking_lot::const_mutex(None);

fn registry() -> parking_lot::MappedMutexGuard<'static, HashMap<u64, Weak<Mailbox>>> {
    parking_lot::MutexGuard::map(REGISTRY.lock(), |r| r.get_or_insert_with(HashMap::new))
}

thread_local! {
    static CURRENT_IDS: CurrentIds = const {
        CurrentIds {
            trace_id: Cell::new(0),
            span_id: Cell::new(0),
            flags: Cell::new(0),
            is_remote: Cell::new(false),
            has_trace_state: Cell::new(false),
        }
    };
    /// A copy of the stack's key, in a thread-local with no destructor: reading it is one load,
    /// where reaching `STACK` (which has one) first checks its lifetime state. 0 until the stack
    /// is first used and again once it is torn down.
    static THREAD_KEY: Cell<u64> = const { Cell::new(0) };
    static STACK: Stack = const {
        Stack { frames: RefCell::new(Vec::new()), key: Cell::new(0), mailbox: RefCell::new(None) }
    };
}

/// Applies ends posted from other threads, if any were posted anywhere: one relaxed load.
#[inline]
fn receive_remote_ends() {
    if REMOTE_ENDS.load(Ordering::Relaxed) != 0 {
        let _ = STACK.try_with(Stack::receive_remote_ends);
    }
}

/// This thread's key (0 during thread teardown): what a span remembers to know whether it is
/// ended on the thread that started it.
#[inline]
pub(crate) fn thread_key() -> u64 {
    match THREAD_KEY.try_with(Cell::get) {
        Ok(0) | Err(_) => first_thread_key(),
        Ok(key) => key,
    }
}

#[cold]
#[inline(never)]
fn first_thread_key() -> u64 {
    STACK.try_with(Stack::key).unwrap_or(0)
}

/// The current span's context on this thread (invalid when no span is current).
pub fn current() -> SpanContext {
    let ids = current_ids();
    let trace_state = if ids.has_trace_state {
        // Borrows are tried, never assumed: if one were ever held here, the outcome would be
        // "no tracestate", not a panic in the app.
        STACK
            .try_with(|s| {
                s.frames
                    .try_borrow()
                    .ok()
                    .and_then(|f| f.last().and_then(|f| f.trace_state.clone()))
            })
            .ok()
            .flatten()
    } else {
        None
    };
    SpanContext::from_ids(ids, trace_state)
}

/// The current span's ids, without the tracestate (what log correlation needs).
#[inline]
pub(crate) fn current_ids() -> Ids {
    receive_remote_ends();
    CURRENT_IDS.try_with(CurrentIds::get).unwrap_or_default()
}

/// Whether a sampled span is current on this thread: one thread-local read and no call, for
/// the metrics record path's exemplar check (which must not cost a measurement a stack frame).
/// Ends posted from other threads are not applied first; [`current_ids`] does that.
#[inline]
pub(crate) fn sampled_span_current() -> bool {
    CURRENT_IDS
        .try_with(|c| c.flags.get() & FLAG_SAMPLED != 0 && c.span_id.get() != 0)
        .unwrap_or(false)
}

/// Whether the current ids carry the sampled flag: one thread-local byte, the metrics record
/// path's first test (its rare "yes" is confirmed by [`sampled_span_current`]).
#[inline]
pub(crate) fn sampled_flag_current() -> bool {
    CURRENT_IDS
        .try_with(|c| c.flags.get() & FLAG_SAMPLED != 0)
        .unwrap_or(false)
}

/// Which frame a span or guard entered: what it leaves, from whichever thread. Plain data, so
/// a span holding it can move to another thread.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Saved {
    /// The thread whose stack holds the frame (0: nothing was entered).
    thread: u64,
    depth: u32,
    span_id: u64,
}

impl Saved {
    /// Whether the frame is on this thread's stack.
    #[inline]
    pub(crate) fn is_here(&self) -> bool {
        self.thread == thread_key()
    }

    /// Whether a frame was entered and not yet left.
    #[inline]
    pub(crate) fn is_entered(&self) -> bool {
        self.thread != 0
    }
}

/// Makes `context` current on this thread, returning the frame to leave.
#[inline]
pub(crate) fn enter(context: &SpanContext) -> Saved {
    enter_with_record(context, None)
}

/// [`enter`], with the span's record reachable from the frame.
#[inline]
pub(crate) fn enter_with_record(
    context: &SpanContext,
    record: Option<NonNull<SharedRecord>>,
) -> Saved {
    receive_remote_ends();
    let ids = context.ids();
    let thread = thread_key();
    STACK
        .try_with(|stack| {
            let mut frames = stack.frames.try_borrow_mut().ok()?;
            let depth = u32::try_from(frames.len()).ok()?;
            frames.push(Frame {
                ids,
                trace_state: context.trace_state.clone(),
                record,
                ended: false,
            });
            let _ = CURRENT_IDS.try_with(|c| c.set(ids));
            Some(Saved {
                thread,
                depth,
                span_id: ids.span_id.0,
            })
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Leaves the frame `saved` on this thread: the newest live frame left becomes current; a
/// frame left out of order is never current again.
#[inline]
pub(crate) fn restore(saved: &mut Saved) {
    receive_remote_ends();
    if saved.thread != 0 {
        let _ = STACK.try_with(|s| s.leave(saved));
    }
    saved.thread = 0;
}

/// Leaves the frame `saved` from another thread than the one that holds it: posted there,
/// applied there at its next span operation. `record` (the span's, if it had one) is freed
/// there too, once the frame cannot reach it.
pub(crate) fn leave_from_elsewhere(saved: &Saved, record: Option<RecordBox>) {
    let mailbox = registry().get(&saved.thread).and_then(Weak::upgrade);
    let unposted = match mailbox {
        Some(mailbox) => {
            let mut state = mailbox.state.lock();
            if state.closed {
                record
            } else {
                state.ended.push((*saved, record));
                REMOTE_ENDS.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
        None => record,
    };
    if let Some(record) = unposted {
        // SAFETY: the origin thread's frames are gone (mailbox closed or unregistered, both
        // under the locks its teardown takes), so none can reach the record.
        unsafe { record.free() };
    }
}

/// Runs `f` on the record of the span current on this thread, if it is recording.
pub(crate) fn with_current_record<R>(
    f: impl FnOnce(&mut super::span::SpanData, crate::core::SpanLimits) -> R,
) -> Option<R> {
    receive_remote_ends();
    STACK
        .try_with(|stack| {
            let frames = stack.frames.try_borrow().ok()?;
            let pointer = frames.last()?.record?;
            // SAFETY: the top frame is live (ended frames are popped off the top), and a live
            // frame's record is not freed (rule 2 in `record`).
            unsafe { super::record::with_frame_record(pointer, f) }
        })
        .ok()
        .flatten()
}

/// Restores the previous current context when dropped. Not `Send`: it belongs to the thread
/// whose current context it changed.
#[must_use = "the context is current only while the guard lives"]
pub struct ContextGuard {
    previous: Saved,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        restore(&mut self.previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(span_id: u64, trace_state: Option<&str>) -> SpanContext {
        SpanContext::new_remote(TraceId(7), SpanId(span_id), FLAG_SAMPLED)
            .with_trace_state(trace_state.map(Arc::from))
    }

    #[test]
    fn nested_contexts_come_back_whole_with_their_tracestate() {
        let outer = context(1, Some("vendor=a"));
        let middle = context(2, None);
        let inner = context(3, Some("vendor=c"));

        let outer_guard = outer.clone().attach();
        assert_eq!(current(), outer);
        let mut middle_saved = enter(&middle);
        assert_eq!(
            current(),
            middle,
            "a context without tracestate hides the outer one"
        );
        let mut inner_saved = enter(&inner);
        assert_eq!(current(), inner);
        assert_eq!(current_ids(), inner.ids());

        restore(&mut inner_saved);
        assert_eq!(current(), middle);
        restore(&mut middle_saved);
        assert_eq!(current(), outer);
        drop(outer_guard);
        assert_eq!(current(), SpanContext::none());
    }

    #[test]
    fn a_context_left_out_of_order_is_never_current_again() {
        let first = context(1, Some("vendor=a"));
        let second = context(2, Some("vendor=b"));
        let third = context(3, None);
        let mut first_saved = enter(&first);
        let mut second_saved = enter(&second);
        restore(&mut first_saved); // not on top: the newer context stays current
        assert_eq!(current(), second);
        let mut third_saved = enter(&third);
        restore(&mut second_saved);
        assert_eq!(current(), third);
        restore(&mut third_saved); // the ended ones below go with it
        assert_eq!(current(), SpanContext::none());
        restore(&mut first_saved); // twice: nothing more
        assert_eq!(current(), SpanContext::none());
    }

    #[test]
    fn a_frame_left_from_another_thread_is_applied_on_its_own() {
        let outer = context(1, None);
        let moved = context(2, Some("vendor=b"));
        let mut outer_saved = enter(&outer);
        let moved_saved = enter(&moved);
        assert_eq!(current(), moved);
        std::thread::spawn(move || leave_from_elsewhere(&moved_saved, None))
            .join()
            .unwrap();
        assert_eq!(current(), outer, "applied at the next read");
        restore(&mut outer_saved);
        assert_eq!(current(), SpanContext::none());
    }

    #[test]
    fn each_thread_has_its_own_current_context() {
        let _guard = context(1, Some("vendor=a")).attach();
        let seen = std::thread::spawn(current).join().unwrap();
        assert_eq!(seen, SpanContext::none());
        assert_eq!(current().trace_state(), Some("vendor=a"));
    }
}
