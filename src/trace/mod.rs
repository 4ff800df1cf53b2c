//! Traces: spans, the current-span context, sampling and W3C propagation.
//!
//! ```
//! use plain_connect::trace::{self, SpanKind};
//! let mut request = trace::span("GET /users/{id}").kind(SpanKind::Server).start();
//! request.set_attribute("http.route", "/users/{id}");
//! {
//!     let _query = trace::span("SELECT users").kind(SpanKind::Client).start(); // a child
//! }
//! request.end();
//! ```

mod context;
mod encode;
mod id;
mod literal;
pub mod propagation;
mod record;
mod span;

pub use context::{current, ContextGuard, SpanContext, FLAG_RANDOM, FLAG_SAMPLED};
pub(crate) use context::{current_ids, sampled_span_current, sampled_span_maybe_current, Ids};
#[cfg(feature = "tracing")]
pub(crate) use context::{enter, restore, Saved};
#[cfg(feature = "fuzzing")]
pub(crate) use encode::exported_spans;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use encode::span_entry;
pub(crate) use encode::{decode_spans, next_span_record};
#[cfg(test)]
pub(crate) use id::new_trace_id;
pub(crate) use id::random_u64;
pub use id::{SpanId, TraceId};
#[cfg(feature = "tracing")]
pub(crate) use span::{begin, Begun};
pub(crate) use span::{error_type_name, push_attribute};
pub use span::{
    CurrentSpan, Event, Link, Span, SpanBuilder, SpanData, SpanKind, SpanLimits, Status,
};

/// The span current on this thread, for code that was not handed it: see [`CurrentSpan`].
pub fn current_span() -> CurrentSpan {
    CurrentSpan
}

/// Runs `f` inside a new span named `name` (a child of the current span), ended when `f`
/// returns or panics. Code inside reaches it with [`current_span`].
///
/// ```
/// use plain_connect::trace;
/// let total = trace::in_span("sum", || {
///     trace::current_span().set_attribute("items", 3i64);
///     1 + 2
/// });
/// assert_eq!(total, 3);
/// ```
pub fn in_span<R>(name: impl Into<crate::attributes::Str>, f: impl FnOnce() -> R) -> R {
    let _span = span(name).start();
    f()
}

/// Describes a new span; `.start()` starts it as a child of the current span.
pub fn span(name: impl Into<crate::attributes::Str>) -> SpanBuilder {
    SpanBuilder::new(name.into())
}
