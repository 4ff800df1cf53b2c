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
pub mod propagation;
mod span;

pub use context::{current, ContextGuard, SpanContext, FLAG_SAMPLED};
pub(crate) use context::{current_ids, Ids};
#[cfg(feature = "tracing")]
pub(crate) use context::{enter, restore, Saved};
pub(crate) use encode::decode_spans;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use encode::span_entry;
pub(crate) use id::random_u64;
pub use id::{new_span_id, new_trace_id, SpanId, TraceId};
pub(crate) use span::push_attribute;
#[cfg(feature = "tracing")]
pub(crate) use span::{begin, Begun};
pub use span::{Event, Link, Span, SpanBuilder, SpanData, SpanKind, SpanLimits, Status};

/// Describes a new span; `.start()` starts it as a child of the current span.
pub fn span(name: impl Into<crate::attributes::Str>) -> SpanBuilder {
    SpanBuilder::new(name.into())
}
