//! The span context and the per-thread "current span".
//!
//! Each thread has one current [`SpanContext`]. Starting a span makes it current until it ends;
//! a context captured with [`current`] can be carried to another thread and attached there, so
//! work on a worker thread nests under the request that spawned it.

use super::id::{child_span_id, root_span_id, root_trace_id, SpanId, TraceId};
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
/// W3C trace flag (Level 2): the trace id's right-most 7 bytes are random, as every trace id
/// made here is; kept as received on a continued trace.
pub const FLAG_RANDOM: u8 = 0x02;

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
    /// Whether a tracestate goes with these ids (kept aside, read only when present).
    pub(crate) has_trace_state: bool,
}

impl Ids {
    /// Both ids non-zero.
    pub(crate) fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }
}

impl SpanContext {
    #[cfg(any(test, feature = "tracing"))]
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

/// Frames kept in the thread-local block itself; a deeper stack continues in [`Aside::spill`].
const INLINE_FRAMES: usize = 32;

// A frame's (and a span handle's) `bits`: the W3C trace flags in the low byte, then these.
const REMOTE: u32 = 1 << 8;
/// Its tracestate is kept in [`Aside::trace_states`].
const HAS_TRACE_STATE: u32 = 1 << 9;
/// Left (its span ended or its guard dropped) while a later frame was still live: popped as
/// soon as it is on top, never current again.
const ENDED: u32 = 1 << 10;
/// Both ids non-zero.
const VALID: u32 = 1 << 11;
/// The frame below was left while this one was live (set on inline frames only): leaving this
/// one pops that one too, off the common path.
const ENDED_BELOW: u32 = 1 << 14;
/// The ids are still to be computed from the generator seed kept as the span id (see
/// [`Packed`]): a root's trace and span ids, or (with a given trace id) a child's span id.
const DERIVED_ROOT: u32 = 1 << 12;
const DERIVED_CHILD: u32 = 1 << 13;
const DERIVED: u32 = DERIVED_ROOT | DERIVED_CHILD;

/// A context's plain data as the frame stack and a span handle keep it. The ids of an unsampled
/// span are not computed when it starts: its `tag` is the generator seed they come from (see
/// [`super::id::reserve`]), computed into ids only when something reads them (a child, log
/// correlation, propagation, [`crate::trace::Span::context`]), the same wherever that happens.
/// The `tag` also tells a frame from the one that was at its depth before: a frame is left only
/// by the span or guard that holds its tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Packed {
    /// Unused (0) for a derived root.
    trace_id: u128,
    /// The span id, or the seed of the derived ids.
    tag: u64,
    bits: u32,
}

impl Packed {
    /// No context: what an empty stack is current.
    pub(crate) const NONE: Packed = Packed {
        trace_id: 0,
        tag: 0,
        bits: 0,
    };

    /// A context's ids as given (the tracestate aside).
    #[inline]
    pub(crate) fn of(context: &SpanContext) -> Packed {
        let valid = if context.is_valid() { VALID } else { 0 };
        let remote = if context.is_remote { REMOTE } else { 0 };
        Packed {
            trace_id: context.trace_id.0,
            tag: context.span_id.0,
            bits: u32::from(context.flags) | remote | valid,
        }
    }

    /// A new root span's identity from `seed` (a reserve of [`super::id::ROOT_DRAWS`]): computed now if
    /// `sampled` (the record needs them), else left to whoever reads them.
    #[inline(always)]
    pub(crate) fn root(seed: u64, flags: u8, sampled: bool) -> Packed {
        if sampled {
            Packed {
                trace_id: root_trace_id(seed).0,
                tag: root_span_id(seed).0,
                bits: u32::from(flags) | VALID,
            }
        } else {
            Packed {
                trace_id: 0,
                tag: seed,
                bits: u32::from(flags) | VALID | DERIVED_ROOT,
            }
        }
    }

    /// A new child span's identity in trace `trace_id` from `seed` (a reserve of
    /// [`super::id::CHILD_DRAWS`]), computed now only if `sampled`.
    #[inline(always)]
    pub(crate) fn child(trace_id: TraceId, seed: u64, flags: u8, sampled: bool) -> Packed {
        let (tag, derived) = if sampled {
            (child_span_id(seed).0, 0)
        } else {
            (seed, DERIVED_CHILD)
        };
        Packed {
            trace_id: trace_id.0,
            tag,
            bits: u32::from(flags) | VALID | derived,
        }
    }

    /// Both ids non-zero.
    #[inline]
    pub(crate) fn is_valid(&self) -> bool {
        self.bits & VALID != 0
    }

    /// The W3C trace flags.
    #[inline]
    pub(crate) fn flags(&self) -> u8 {
        self.bits as u8
    }

    #[inline]
    pub(crate) fn is_sampled(&self) -> bool {
        self.bits & u32::from(FLAG_SAMPLED) != 0
    }

    /// The trace id, computed if still derived.
    #[inline]
    pub(crate) fn trace_id(&self) -> TraceId {
        if self.bits & DERIVED_ROOT != 0 {
            root_trace_id(self.tag)
        } else {
            TraceId(self.trace_id)
        }
    }

    /// The span id, computed if still derived.
    #[inline]
    pub(crate) fn span_id(&self) -> SpanId {
        match self.bits & DERIVED {
            0 => SpanId(self.tag),
            DERIVED_ROOT => root_span_id(self.tag),
            _ => child_span_id(self.tag),
        }
    }

    /// [`ids`](Self::ids) for a sampled span's, which are computed when it starts (see
    /// [`root`](Self::root) and [`child`](Self::child)): read as they are, on one test.
    #[inline]
    pub(crate) fn computed_ids(&self) -> Ids {
        if self.bits & DERIVED != 0 {
            return self.ids();
        }
        Ids {
            trace_id: TraceId(self.trace_id),
            span_id: SpanId(self.tag),
            flags: self.bits as u8,
            is_remote: self.bits & REMOTE != 0,
            has_trace_state: self.bits & HAS_TRACE_STATE != 0,
        }
    }

    /// What a child of these ids records of its parent: the parent span id (invalid when
    /// these are no ids: a root) and whether the parent is remote.
    #[inline]
    pub(crate) fn as_parent(&self) -> (SpanId, bool) {
        let span_id = if self.is_valid() {
            self.span_id()
        } else {
            SpanId::INVALID
        };
        (span_id, self.bits & REMOTE != 0)
    }

    /// The ids, computed if still derived (the tracestate bit as the frame has it).
    #[inline]
    pub(crate) fn ids(&self) -> Ids {
        Ids {
            trace_id: self.trace_id(),
            span_id: self.span_id(),
            flags: self.bits as u8,
            is_remote: self.bits & REMOTE != 0,
            has_trace_state: self.bits & HAS_TRACE_STATE != 0,
        }
    }

    /// The context these ids are, with `trace_state`.
    pub(crate) fn context(&self, trace_state: Option<Arc<str>>) -> SpanContext {
        SpanContext::from_ids(self.ids(), trace_state)
    }
}

/// One entered context. Plain data: the tracestate, the one part that owns memory, is kept
/// aside, so the stack needs no destructor.
#[derive(Clone, Copy)]
struct Frame {
    ids: Packed,
    /// The span's record, for code that reaches the current span without its handle.
    record: Option<NonNull<SharedRecord>>,
}

/// This thread's stack of entered contexts: the top frame (`depth - 1`) is the current context.
/// A span or guard leaves its own frame, whatever the order: a frame left while a later one is
/// live is marked [`ENDED`] and popped once on top, so an ended span never becomes current again.
///
/// Nothing here has a destructor, so the thread-local is a fixed place in the thread's TLS
/// block: reaching it computes an address (no lifetime-state check, no destructor to register),
/// and it stays valid while other thread-locals are destroyed. The first [`INLINE_FRAMES`] frames
/// are kept here, one array per field so that each access is one `Cell` load or store.
struct Local {
    /// Unique per thread for the life of the process; 0 until first use, and again once the
    /// thread's [`Aside`] is gone.
    key: Cell<u64>,
    /// The thread's [`Aside`] is gone: nothing is entered any more.
    torn_down: Cell<bool>,
    depth: Cell<u32>,
    trace_ids: [Cell<u128>; INLINE_FRAMES],
    tags: [Cell<u64>; INLINE_FRAMES],
    bits: [Cell<u32>; INLINE_FRAMES],
    records: [Cell<Option<NonNull<SharedRecord>>>; INLINE_FRAMES],
    /// A record kept for this thread's next sampled span (see [`keep_spare`]), here where
    /// reaching it costs no lifetime check and no borrow flag. Freed by the thread's teardown.
    spare: Cell<Option<NonNull<SharedRecord>>>,
}

impl Local {
    #[inline]
    fn write_inline(&self, d: usize, frame: Frame) {
        self.trace_ids[d].set(frame.ids.trace_id);
        self.tags[d].set(frame.ids.tag);
        self.bits[d].set(frame.ids.bits);
        self.records[d].set(frame.record);
    }

    #[inline]
    fn read_inline(&self, d: usize) -> Frame {
        Frame {
            ids: self.read_ids(d),
            record: self.records[d].get(),
        }
    }

    #[inline]
    fn read_ids(&self, d: usize) -> Packed {
        Packed {
            trace_id: self.trace_ids[d].get(),
            tag: self.tags[d].get(),
            bits: self.bits[d].get(),
        }
    }

    /// Frame `d` (below `depth`), wherever it is kept; `None` if the spill cannot be reached.
    fn frame(&self, d: usize) -> Option<Frame> {
        if d < INLINE_FRAMES {
            return Some(self.read_inline(d));
        }
        with_aside(|a| a.spill.get(d - INLINE_FRAMES).copied()).flatten()
    }

    /// The top frame when it is spilled (the stack is deeper than [`INLINE_FRAMES`]).
    #[cold]
    #[inline(never)]
    fn spilled_top(&self) -> Option<Frame> {
        let depth = self.depth.get() as usize;
        self.frame(depth.checked_sub(1)?)
    }

    /// Marks frame `d` ended and forgets its record, and tells the frame above, if inline, that
    /// an ended frame is below it. Returns false if frame `d` could not be reached.
    fn mark_ended(&self, d: usize) -> bool {
        if let Some(above) = self.bits.get(d + 1) {
            above.set(above.get() | ENDED_BELOW);
        }
        if d < INLINE_FRAMES {
            self.bits[d].set(self.bits[d].get() | ENDED);
            self.records[d].set(None);
            return true;
        }
        with_aside(|a| {
            a.spill.get_mut(d - INLINE_FRAMES).map(|f| {
                f.ids.bits |= ENDED;
                f.record = None;
            })
        })
        .flatten()
        .is_some()
    }
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

/// The parts of a thread's stack that own memory, used only off the common path: frames past
/// [`INLINE_FRAMES`], tracestates, the mailbox. Registered (and so given a destructor) when the
/// thread gets its key; its destructor is the thread's teardown.
struct Aside {
    /// `spill[i]` is frame `INLINE_FRAMES + i`; entries at or past the depth are stale.
    spill: Vec<Frame>,
    /// The tracestates of the frames marked [`HAS_TRACE_STATE`], by depth, ascending.
    trace_states: Vec<(u32, Arc<str>)>,
    mailbox: Option<Arc<Mailbox>>,
    key: u64,
}

impl Drop for Aside {
    fn drop(&mut self) {
        // First no frame is reachable and nothing is entered any more, so no frame of this
        // thread can reach a record freed below, or by a poster once the mailbox is closed.
        let spare = LOCAL.with(|l| {
            l.torn_down.set(true);
            l.key.set(0);
            l.depth.set(0);
            l.spare.take()
        });
        if let Some(spare) = spare {
            // SAFETY: kept by `keep_spare`, so owned by the slot alone, which let go of it.
            unsafe { super::record::free_spare(spare) };
        }
        if let Some(mailbox) = self.mailbox.take() {
            let mut state = mailbox.state.lock();
            state.closed = true;
            REMOTE_ENDS.fetch_sub(state.ended.len(), Ordering::Relaxed);
            for (_, record) in state.ended.drain(..) {
                if let Some(record) = record {
                    // SAFETY: this thread's frames are unreachable (depth 0, nothing enters).
                    unsafe { record.free() };
                }
            }
            drop(state);
            registry().remove(&self.key);
        }
    }
}

/// Runs `f` on this thread's [`Aside`]; `None` once it is gone (thread teardown).
fn with_aside<R>(f: impl FnOnce(&mut Aside) -> R) -> Option<R> {
    ASIDE
        .try_with(|a| a.try_borrow_mut().ok().map(|mut a| f(&mut a)))
        .ok()
        .flatten()
}

/// Ends posted to some thread and not yet applied there: while 0 (the common case), no thread
/// looks at its mailbox.
static REMOTE_ENDS: AtomicUsize = AtomicUsize::new(0);

static REGISTRY: Mutex<Option<HashMap<u64, Weak<Mailbox>>>> = parking_lot::const_mutex(None);

fn registry() -> parking_lot::MappedMutexGuard<'static, HashMap<u64, Weak<Mailbox>>> {
    parking_lot::MutexGuard::map(REGISTRY.lock(), |r| r.get_or_insert_with(HashMap::new))
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            key: Cell::new(0),
            torn_down: Cell::new(false),
            depth: Cell::new(0),
            trace_ids: [const { Cell::new(0) }; INLINE_FRAMES],
            tags: [const { Cell::new(0) }; INLINE_FRAMES],
            bits: [const { Cell::new(0) }; INLINE_FRAMES],
            records: [const { Cell::new(None) }; INLINE_FRAMES],
            spare: Cell::new(None),
        }
    };
    static ASIDE: RefCell<Aside> = const {
        RefCell::new(Aside { spill: Vec::new(), trace_states: Vec::new(), mailbox: None, key: 0 })
    };
}

/// Applies ends posted from other threads, if any were posted anywhere: one relaxed load.
#[inline]
pub(crate) fn receive_remote_ends() {
    if REMOTE_ENDS.load(Ordering::Relaxed) != 0 {
        receive_remote_ends_now();
    }
}

/// Applies the ends other threads posted here, freeing their records.
#[cold]
#[inline(never)]
fn receive_remote_ends_now() {
    let Some(mailbox) = with_aside(|a| a.mailbox.clone()).flatten() else {
        return;
    };
    let ended = std::mem::take(&mut mailbox.state.lock().ended);
    if ended.is_empty() {
        return;
    }
    REMOTE_ENDS.fetch_sub(ended.len(), Ordering::Relaxed);
    LOCAL.with(|l| {
        for (saved, record) in ended {
            leave_slow(l, &saved);
            if let Some(record) = record {
                // SAFETY: its frame on this thread was just marked ended, or is gone
                // (`leave_slow`): no frame reaches the record.
                unsafe { record.free() };
            }
        }
    });
}

/// Takes the record kept for this thread's next span, if there is one: it is the caller's
/// now (made by `Box::into_raw`, owned by nobody else).
#[inline]
pub(crate) fn take_spare() -> Option<NonNull<SharedRecord>> {
    LOCAL.with(|l| l.spare.take())
}

/// Keeps `record` (made by `Box::into_raw`, owned by the caller) for this thread's next span,
/// to be freed by the thread's teardown if no span takes it. Gives it back when a record is
/// kept already, or when the thread has no key: before its first key nothing would free it at
/// teardown, and after teardown nothing will.
#[inline]
pub(crate) fn keep_spare(record: NonNull<SharedRecord>) -> Option<NonNull<SharedRecord>> {
    LOCAL.with(|l| {
        if l.key.get() == 0 || l.spare.get().is_some() {
            return Some(record);
        }
        l.spare.set(Some(record));
        None
    })
}

/// This thread's key (0 during thread teardown): what a span remembers to know whether it is
/// ended on the thread that started it.
#[inline]
pub(crate) fn thread_key() -> u64 {
    match thread_key_if_known() {
        0 => first_thread_key(),
        key => key,
    }
}

/// This thread's key, or 0 before its first use (and during its teardown): for a check that
/// takes its general path then.
#[inline(always)]
pub(crate) fn thread_key_if_known() -> u64 {
    LOCAL.with(|l| l.key.get())
}

#[cold]
#[inline(never)]
fn first_thread_key() -> u64 {
    LOCAL.with(|l| {
        if l.torn_down.get() {
            return 0;
        }
        let registered = ASIDE.try_with(|a| {
            let mut a = a.try_borrow_mut().ok()?;
            static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
            let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
            let mailbox = Arc::new(Mailbox::default());
            registry().insert(key, Arc::downgrade(&mailbox));
            a.mailbox = Some(mailbox);
            a.key = key;
            Some(key)
        });
        match registered {
            Ok(Some(key)) => {
                l.key.set(key);
                key
            }
            Ok(None) => 0,
            // Its destructor already ran: the thread is being torn down.
            Err(_) => {
                l.torn_down.set(true);
                0
            }
        }
    })
}

/// The current span's context on this thread (invalid when no span is current).
#[inline]
pub fn current() -> SpanContext {
    let (ids, trace_state) = current_packed();
    ids.context(trace_state)
}

/// The current context as the frame keeps it, and its tracestate: what a span start reads.
/// Applies ends posted from other threads first.
#[inline]
pub(crate) fn current_packed() -> (Packed, Option<Arc<str>>) {
    receive_remote_ends();
    let ids = top_ids();
    let trace_state = if ids.bits & HAS_TRACE_STATE != 0 {
        top_trace_state()
    } else {
        None
    };
    (ids, trace_state)
}

/// The top frame's ids ([`Packed::NONE`] when nothing is entered).
#[inline]
fn top_ids() -> Packed {
    LOCAL.with(|l| {
        // An empty stack wraps to usize::MAX: one comparison picks the common case.
        let top = (l.depth.get() as usize).wrapping_sub(1);
        if top < INLINE_FRAMES {
            l.read_ids(top)
        } else if top == usize::MAX {
            Packed::NONE
        } else {
            l.spilled_top().map_or(Packed::NONE, |f| f.ids)
        }
    })
}

#[cold]
#[inline(never)]
fn top_trace_state() -> Option<Arc<str>> {
    let top = LOCAL.with(|l| l.depth.get()).checked_sub(1)?;
    with_aside(|a| {
        a.trace_states
            .iter()
            .rev()
            .find(|(depth, _)| *depth == top)
            .map(|(_, trace_state)| Arc::clone(trace_state))
    })
    .flatten()
}

/// The current span's ids, without the tracestate (what log correlation needs).
#[inline]
pub(crate) fn current_ids() -> Ids {
    receive_remote_ends();
    top_ids().ids()
}

/// Whether a sampled span is current on this thread: a few thread-local loads and no call in
/// the common case, for the metrics record path's exemplar check. Ends posted from other
/// threads are not applied first; [`current_ids`] does that.
#[inline]
pub(crate) fn sampled_span_current() -> bool {
    let ids = top_ids();
    ids.is_sampled() && ids.is_valid()
}

/// `false` when no sampled span is current, in as few loads as can tell (none entered: one);
/// `true` when one may be, which [`sampled_span_current`] then settles. The metrics record
/// path's first test.
#[inline]
pub(crate) fn sampled_span_maybe_current() -> bool {
    LOCAL.with(|l| match l.depth.get() as usize {
        0 => false,
        depth => l
            .bits
            .get(depth - 1)
            .is_none_or(|bits| bits.get() & u32::from(FLAG_SAMPLED) != 0),
    })
}

/// Which frame a span or guard entered: what it leaves, from whichever thread. Plain data, so
/// a span holding it can move to another thread.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Saved {
    /// The thread whose stack holds the frame (0: nothing was entered).
    thread: u64,
    depth: u32,
    /// The frame's [`Packed`] tag.
    tag: u64,
}

impl Saved {
    /// Whether the frame is on this thread's stack.
    #[inline]
    pub(crate) fn is_here(&self) -> bool {
        // No first-use path: a thread without a key holds no frame.
        self.thread == thread_key_if_known()
    }

    /// Whether a frame was entered and not yet left.
    #[inline]
    pub(crate) fn is_entered(&self) -> bool {
        self.thread != 0
    }
}

/// Where a span starting on the common path goes: the current frame's ids, and the free inline
/// frame above it on a thread with its key.
#[derive(Clone, Copy)]
pub(crate) struct Top {
    pub(crate) ids: Packed,
    depth: u32,
    /// This thread's key.
    pub(crate) thread: u64,
}

/// The current frame for a span start on the common path: no end posted from another thread
/// waiting, this thread's key already made, room for an inline frame, no tracestate on the
/// current one. `None` otherwise, for the general path. Calls nothing, so a span's start on
/// the common path saves no registers.
#[inline(always)]
pub(crate) fn common_top() -> Option<Top> {
    if REMOTE_ENDS.load(Ordering::Relaxed) != 0 {
        return None;
    }
    LOCAL.with(|l| {
        let (thread, depth) = (l.key.get(), l.depth.get());
        if thread == 0 || depth as usize >= INLINE_FRAMES {
            return None;
        }
        let ids = match (depth as usize).checked_sub(1) {
            None => Packed::NONE,
            Some(top) => l.read_ids(top),
        };
        if ids.bits & HAS_TRACE_STATE != 0 {
            return None;
        }
        Some(Top { ids, depth, thread })
    })
}

/// Makes `ids` (no tracestate) current in the frame `top` found free, with its span's record
/// if it has one.
#[inline(always)]
pub(crate) fn enter_common(top: &Top, ids: Packed, record: Option<NonNull<SharedRecord>>) -> Saved {
    LOCAL.with(|l| {
        l.write_inline(top.depth as usize, Frame { ids, record });
        l.depth.set(top.depth + 1);
    });
    Saved {
        thread: top.thread,
        depth: top.depth,
        tag: ids.tag,
    }
}

/// Makes `context` current on this thread, returning the frame to leave.
#[inline]
pub(crate) fn enter(context: &SpanContext) -> Saved {
    receive_remote_ends();
    enter_ids(Packed::of(context), context.trace_state.as_ref(), None)
}

/// Makes `ids` (with `trace_state`) current on this thread, for a span start: the span's
/// record, if any, is reachable from the frame. Its caller applies ends posted from elsewhere
/// first ([`receive_remote_ends`], or [`current_packed`] which does), once per start.
#[inline]
pub(crate) fn enter_ids(
    ids: Packed,
    trace_state: Option<&Arc<str>>,
    record: Option<NonNull<SharedRecord>>,
) -> Saved {
    let thread = thread_key();
    if thread == 0 {
        return Saved::default();
    }
    LOCAL.with(|l| {
        let depth = l.depth.get();
        let d = depth as usize;
        if d < INLINE_FRAMES && trace_state.is_none() {
            l.write_inline(d, Frame { ids, record });
            l.depth.set(depth + 1);
        } else if !enter_aside(l, depth, Frame { ids, record }, trace_state) {
            return Saved::default();
        }
        Saved {
            thread,
            depth,
            tag: ids.tag,
        }
    })
}

/// Pushes a frame that is spilled or has a tracestate. False if it could not be entered.
#[cold]
#[inline(never)]
fn enter_aside(l: &Local, depth: u32, mut frame: Frame, trace_state: Option<&Arc<str>>) -> bool {
    let Some(next) = depth.checked_add(1) else {
        return false;
    };
    if trace_state.is_some() {
        frame.ids.bits |= HAS_TRACE_STATE;
    }
    let d = depth as usize;
    with_aside(|a| {
        if d >= INLINE_FRAMES {
            let below = d - INLINE_FRAMES;
            if a.spill.len() < below {
                return false;
            }
            a.spill.truncate(below);
            a.spill.push(frame);
        } else {
            l.write_inline(d, frame);
        }
        if let Some(trace_state) = trace_state {
            // Entries at or past this depth belong to frames already popped.
            while a.trace_states.last().is_some_and(|(at, _)| *at >= depth) {
                a.trace_states.pop();
            }
            a.trace_states.push((depth, Arc::clone(trace_state)));
        }
        l.depth.set(next);
        true
    })
    .unwrap_or(false)
}

/// Leaves the frame `saved` on this thread: the newest live frame left becomes current; a
/// frame left out of order is never current again.
#[inline]
pub(crate) fn restore(saved: &mut Saved) {
    if saved.is_entered() && saved.is_here() {
        leave_here(saved);
    }
    saved.thread = 0;
}

/// Leaves frame `saved`, known to be on this thread's stack.
#[inline]
pub(crate) fn leave_here(saved: &Saved) {
    LOCAL.with(|l| leave(l, saved));
}

/// Leaves frame `saved` of this thread's stack.
#[inline]
fn leave(l: &Local, saved: &Saved) {
    if !leave_top(l, saved) {
        leave_slow(l, saved);
    }
}

/// Leaves frame `saved` in the common case: the top frame, inline, without a tracestate, with
/// a live frame (or none) below. False, having changed nothing, in any other case.
#[inline(always)]
fn leave_top(l: &Local, saved: &Saved) -> bool {
    let d = saved.depth as usize;
    let left = d + 1 == l.depth.get() as usize
        && d < INLINE_FRAMES
        && l.tags[d].get() == saved.tag
        && l.bits[d].get() & (HAS_TRACE_STATE | ENDED_BELOW) == 0;
    if left {
        l.depth.set(saved.depth);
    }
    left
}

/// [`leave_here`] in the common case (see [`leave_top`]), from any thread: false, having
/// changed nothing, when the frame is not on this thread's stack or not in that case. Calls
/// nothing, so a span's end on the common path saves no registers.
#[inline(always)]
pub(crate) fn leave_common(saved: &Saved) -> bool {
    LOCAL.with(|l| saved.thread == l.key.get() && leave_top(l, saved))
}

/// [`leave`] in general. Afterwards no live frame is the one `saved` entered.
#[cold]
#[inline(never)]
fn leave_slow(l: &Local, saved: &Saved) {
    let d = saved.depth as usize;
    if d >= l.depth.get() as usize {
        return; // popped already
    }
    match l.frame(d) {
        Some(frame) if frame.ids.tag == saved.tag && frame.ids.bits & ENDED == 0 => {}
        Some(_) => return, // another frame: `saved`'s was popped
        None => {
            // Unreachable spill (not expected): cut the stack below it rather than leave it live.
            l.depth.set(saved.depth);
            return;
        }
    }
    if !l.mark_ended(d) {
        l.depth.set(saved.depth);
        return;
    }
    pop_ended(l);
}

/// Pops ended frames off the top, with the tracestates kept for them.
fn pop_ended(l: &Local) {
    let mut depth = l.depth.get();
    let mut had_trace_state = false;
    while let Some(top) = depth.checked_sub(1) {
        match l.frame(top as usize) {
            Some(frame) if frame.ids.bits & ENDED != 0 => {
                had_trace_state |= frame.ids.bits & HAS_TRACE_STATE != 0;
                depth = top;
            }
            Some(_) => break,
            // Unreachable spill (not expected): dropped with the ended frame above it.
            None => depth = top,
        }
    }
    l.depth.set(depth);
    if had_trace_state {
        with_aside(|a| {
            while a.trace_states.last().is_some_and(|(at, _)| *at >= depth) {
                a.trace_states.pop();
            }
        });
    }
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
        // after its teardown made them unreachable), so none can reach the record.
        unsafe { record.free() };
    }
}

/// Runs `f` on the record of the span current on this thread, if it is recording.
pub(crate) fn with_current_record<R>(
    f: impl FnOnce(&mut super::record::Recording, crate::core::SpanLimits) -> R,
) -> Option<R> {
    receive_remote_ends();
    let pointer = LOCAL.with(|l| {
        let top = (l.depth.get() as usize).wrapping_sub(1);
        if top < INLINE_FRAMES {
            l.records[top].get()
        } else if top == usize::MAX {
            None
        } else {
            l.spilled_top()?.record
        }
    })?;
    // SAFETY: the top frame is live (a frame is marked ended, its record forgotten, before its
    // span's record is freed, and ended frames are popped off the top), and a live frame's
    // record is not freed (rule 2 in `record`).
    unsafe { super::record::with_frame_record(pointer, f) }
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

    fn enter_with_record(context: &SpanContext, record: Option<NonNull<SharedRecord>>) -> Saved {
        enter_ids(Packed::of(context), context.trace_state.as_ref(), record)
    }

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

    /// A reference model of the stack: the newest frame not left is current.
    #[test]
    fn any_order_of_ends_at_any_depth_matches_the_model() {
        // Deep enough to spill, with tracestates on some frames, in a fixed pseudo-random order.
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut model: Vec<(SpanContext, Saved, bool)> = Vec::new();
        for step in 0..20_000u64 {
            let live = model.iter().filter(|(_, _, left)| !left).count();
            if live < 3 * INLINE_FRAMES && (live == 0 || next() % 2 == 0) {
                let trace_state = (next() % 3 == 0).then(|| format!("k={step}"));
                let c = context(step + 1, trace_state.as_deref());
                let saved = enter(&c);
                assert!(saved.is_entered());
                model.push((c, saved, false));
            } else {
                let live: Vec<usize> = (0..model.len()).filter(|&i| !model[i].2).collect();
                // Mostly the newest, sometimes any.
                let pick = if next() % 4 == 0 {
                    live[(next() % live.len() as u64) as usize]
                } else {
                    *live.last().unwrap()
                };
                restore(&mut model[pick].1);
                model[pick].2 = true;
                while model.last().is_some_and(|(_, _, left)| *left) {
                    model.pop();
                }
            }
            let expected = model
                .last()
                .map_or_else(SpanContext::none, |(c, _, _)| c.clone());
            assert_eq!(current(), expected, "step {step}");
            assert_eq!(current_ids(), expected.ids(), "step {step}");
        }
        for (_, saved, _) in model.iter_mut().rev() {
            restore(saved);
        }
        assert_eq!(current(), SpanContext::none());
    }

    #[test]
    fn a_recording_frame_reaches_its_record_until_it_is_left_from_anywhere() {
        let limits = crate::core::SpanLimits::default();
        let named = |name: &'static str| {
            RecordBox::new(Some(limits), thread_key(), move |d| d.update_name(name))
        };
        let name = || with_current_record(|d, _| d.name());
        let outer = named("outer");
        let mut outer_saved = enter_with_record(&context(1, None), Some(outer.pointer()));
        let inner = named("inner");
        let inner_saved = enter_with_record(&context(2, None), Some(inner.pointer()));
        assert_eq!(name().as_deref(), Some("inner"));
        let inner = SendRecord(inner);
        std::thread::spawn(move || leave_from_elsewhere(&inner_saved, Some({ inner }.0)))
            .join()
            .unwrap();
        // Applied here before the record is looked up (and freed here).
        assert_eq!(name().as_deref(), Some("outer"));
        restore(&mut outer_saved);
        assert_eq!(name(), None);
        // SAFETY: its frame was just left.
        unsafe { outer.free() };
    }

    struct SendRecord(RecordBox);

    thread_local! {
        static AT_EXIT: AtExit = const { AtExit(Cell::new(None)) };
    }

    /// Runs its closure when the thread's thread-locals are destroyed.
    struct AtExit(Cell<Option<Box<dyn FnOnce()>>>);

    impl Drop for AtExit {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }

    #[test]
    fn spans_entered_and_left_in_other_thread_locals_destructors_are_harmless() {
        let limits = crate::core::SpanLimits::default();
        for register_first in [true, false] {
            let (to_main, from_thread) = std::sync::mpsc::channel::<(bool, Saved, SendRecord)>();
            std::thread::spawn(move || {
                // Destructors run in reverse order of registration: registered before the
                // stack's, this one runs after its teardown; registered after, before it.
                let at_exit = |f: Box<dyn FnOnce()>| AT_EXIT.with(|a| a.0.set(Some(f)));
                let work = move || {
                    let torn_down = thread_key() == 0;
                    let mut kept = enter(&context(1, Some("vendor=a")));
                    let record = RecordBox::new(Some(limits), thread_key(), |_| {});
                    let mut saved = enter_with_record(&context(2, None), Some(record.pointer()));
                    let _ = current();
                    let _ = with_current_record(|_, _| ());
                    restore(&mut saved);
                    // SAFETY: its frame was just left (or never entered, after teardown).
                    unsafe { record.free() };
                    restore(&mut kept);
                    let moved = RecordBox::new(Some(limits), thread_key(), |_| {});
                    let saved = enter_with_record(&context(3, None), Some(moved.pointer()));
                    // Left from the main thread after this thread is gone.
                    let _ = to_main.send((torn_down, saved, SendRecord(moved)));
                };
                if register_first {
                    at_exit(Box::new(work));
                    let _ = thread_key();
                } else {
                    let _ = thread_key();
                    at_exit(Box::new(work));
                }
            })
            .join()
            .unwrap();
            let (torn_down, saved, moved) = from_thread.recv().unwrap();
            assert_eq!(torn_down, register_first);
            leave_from_elsewhere(&saved, Some(moved.0));
        }
    }

    #[test]
    fn an_end_posted_to_a_thread_that_never_comes_back_is_freed_with_it() {
        let limits = crate::core::SpanLimits::default();
        let (to_main, from_thread) = std::sync::mpsc::channel::<(Saved, SendRecord)>();
        let (to_thread, from_main) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let record = RecordBox::new(Some(limits), thread_key(), |_| {});
            let saved = enter_with_record(&context(1, None), Some(record.pointer()));
            to_main.send((saved, SendRecord(record))).unwrap();
            // Ends with its frame live and the end posted, never applied here.
            from_main.recv().unwrap();
        });
        let (saved, record) = from_thread.recv().unwrap();
        leave_from_elsewhere(&saved, Some(record.0));
        to_thread.send(()).unwrap();
        thread.join().unwrap();
    }
}
