//! The span context and the per-thread "current span".
//!
//! Each thread has one current [`SpanContext`]. Starting a span makes it current until it ends;
//! a context captured with [`current`] can be carried to another thread and attached there, so
//! work on a worker thread nests under the request that spawned it.

use super::id::{SpanId, TraceId};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

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
    /// Whether a tracestate goes with these ids (it is kept apart, in `CURRENT_TRACE_STATE`).
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

/// This thread's current ids, one `Cell` per field: reads and writes are single moves of
/// plain data (no borrow flag, no destructor registration, no struct copied through memory).
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

    fn replace(&self, ids: Ids) -> Ids {
        let previous = self.get();
        self.trace_id.set(ids.trace_id.0);
        self.span_id.set(ids.span_id.0);
        self.flags.set(ids.flags);
        self.is_remote.set(ids.is_remote);
        self.has_trace_state.set(ids.has_trace_state);
        previous
    }
}

thread_local! {
    // The current context is split in two so that starting and ending a span is a few moves:
    // the ids are plain data; the tracestate, which only arrives from upstream `tracestate`
    // headers, lives apart and is touched only when the old or the new context carries one.
    static CURRENT_IDS: CurrentIds = const {
        CurrentIds {
            trace_id: Cell::new(0),
            span_id: Cell::new(0),
            flags: Cell::new(0),
            is_remote: Cell::new(false),
            has_trace_state: Cell::new(false),
        }
    };
    static CURRENT_TRACE_STATE: RefCell<Option<Arc<str>>> = const { RefCell::new(None) };
}

/// The current span's context on this thread (invalid when no span is current).
pub fn current() -> SpanContext {
    let ids = current_ids();
    let trace_state = if ids.has_trace_state {
        // Borrows are tried, never assumed: no code runs while it is borrowed, and if that
        // ever changed, the outcome would be "no tracestate", not a panic in the app.
        CURRENT_TRACE_STATE
            .try_with(|s| s.try_borrow().ok().and_then(|s| s.clone()))
            .ok()
            .flatten()
    } else {
        None
    };
    SpanContext::from_ids(ids, trace_state)
}

/// The current span's ids, without the tracestate (what log correlation needs).
pub(crate) fn current_ids() -> Ids {
    CURRENT_IDS.try_with(CurrentIds::get).unwrap_or_default()
}

/// What was current before a span or guard took over; put back when it ends.
#[derive(Default)]
pub(crate) struct Saved {
    ids: Ids,
    trace_state: Option<Arc<str>>,
}

/// Makes `context` current on this thread, returning what was current.
pub(crate) fn enter(context: &SpanContext) -> Saved {
    let ids = context.ids();
    let previous = CURRENT_IDS.try_with(|c| c.replace(ids)).unwrap_or_default();
    let trace_state = if previous.has_trace_state || ids.has_trace_state {
        swap_trace_state(context.trace_state.clone())
    } else {
        None
    };
    Saved {
        ids: previous,
        trace_state,
    }
}

/// Puts `saved` back if the span `expected_current` is still current; a span ended out of
/// order leaves the newer current span in place rather than clobbering it.
pub(crate) fn leave(expected_current: SpanId, saved: &mut Saved) {
    if current_ids().span_id == expected_current {
        restore(saved);
    }
}

/// Puts `saved` back, whatever is current now. Works in place: the saved state is read where it
/// lies rather than copied out first.
pub(crate) fn restore(saved: &mut Saved) {
    let replaced = CURRENT_IDS
        .try_with(|c| c.replace(saved.ids))
        .unwrap_or_default();
    if replaced.has_trace_state || saved.ids.has_trace_state {
        swap_trace_state(saved.trace_state.take());
    }
}

/// Sets the current tracestate, returning the previous one (`None` during thread teardown).
fn swap_trace_state(new: Option<Arc<str>>) -> Option<Arc<str>> {
    CURRENT_TRACE_STATE
        .try_with(|s| {
            s.try_borrow_mut()
                .map(|mut s| std::mem::replace(&mut *s, new))
                .unwrap_or_default()
        })
        .unwrap_or_default()
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

        leave(SpanId(3), &mut inner_saved);
        assert_eq!(current(), middle);
        leave(SpanId(2), &mut middle_saved);
        assert_eq!(current(), outer);
        drop(outer_guard);
        assert_eq!(current(), SpanContext::none());
    }

    #[test]
    fn leaving_out_of_order_keeps_the_newer_context() {
        let first = context(1, Some("vendor=a"));
        let second = context(2, Some("vendor=b"));
        let mut first_saved = enter(&first);
        let mut second_saved = enter(&second);
        leave(SpanId(1), &mut first_saved); // not current: ignored
        assert_eq!(current(), second);
        leave(SpanId(2), &mut second_saved);
        assert_eq!(current(), first);
        restore(&mut first_saved);
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
