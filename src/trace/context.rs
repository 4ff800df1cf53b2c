//! The span context and the per-thread "current span".
//!
//! Each thread has one current [`SpanContext`]. Starting a span makes it current until it ends;
//! a context captured with [`current`] can be carried to another thread and attached there, so
//! work on a worker thread nests under the request that spawned it.

use super::id::{SpanId, TraceId};
use std::cell::RefCell;
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
            previous: replace_current(self),
            _not_send: PhantomData,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<SpanContext> = const { RefCell::new(SpanContext::none()) };
}

/// The current span's context on this thread (invalid when no span is current).
pub fn current() -> SpanContext {
    // Borrows are tried, never assumed: no code runs while the context is borrowed, and if that
    // ever changed, the outcome would be "no current span", not a panic in the app.
    CURRENT
        .try_with(|c| c.try_borrow().map(|c| c.clone()).unwrap_or_default())
        .unwrap_or_default()
}

/// Sets the current context, returning the previous one.
pub(crate) fn replace_current(new: SpanContext) -> SpanContext {
    CURRENT
        .try_with(|c| {
            c.try_borrow_mut()
                .map(|mut c| std::mem::replace(&mut *c, new))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Restores `previous` if `expected_current` is still current; a span ended out of order
/// leaves the newer current span in place rather than clobbering it.
pub(crate) fn restore_current(expected_current: SpanId, previous: SpanContext) {
    let _ = CURRENT.try_with(|c| {
        if let Ok(mut current) = c.try_borrow_mut() {
            if current.span_id == expected_current {
                *current = previous;
            }
        }
    });
}

/// Restores the previous current context when dropped. Not `Send`: it belongs to the thread
/// whose current context it changed.
#[must_use = "the context is current only while the guard lives"]
pub struct ContextGuard {
    previous: SpanContext,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        replace_current(std::mem::take(&mut self.previous));
    }
}
