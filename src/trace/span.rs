//! Spans: started by name, made current while they live, ended explicitly or on drop.

use super::context::{self, Ids, Packed, Saved, SpanContext, Top, FLAG_RANDOM, FLAG_SAMPLED};
use super::id::{self, SpanId, TraceId};
use super::record::{RecordBox, Recording};
use crate::attributes::{KeyValue, Str, Value};
use crate::core as state;
use crate::core::handoff::{self, Kind};
use crate::core::wire::{cut, OneOf};
pub use crate::core::SpanLimits;
use std::cell::OnceCell;
use std::mem::ManuallyDrop;
use std::sync::Arc;

/// What the span represents (OTLP `Span.SpanKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SpanKind {
    /// An internal operation (the default).
    #[default]
    Internal,
    /// Handling a request from a remote client.
    Server,
    /// A request to a remote service, e.g. a database query.
    Client,
    /// Sending a message to a broker.
    Producer,
    /// Receiving a message from a broker.
    Consumer,
}

/// The span's outcome. `Ok` beats `Error`, which beats `Unset`: once `Ok`, it stays `Ok`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Status {
    /// Not set (the default).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description.
    Error(Str),
}

impl Status {
    /// An error status with a description.
    pub fn error(description: impl Into<Str>) -> Self {
        Status::Error(description.into())
    }

    /// Applies a later status: `Ok` is final; `Error` replaces `Unset` or an earlier `Error`.
    pub(crate) fn update(&mut self, later: Status) {
        match (&*self, &later) {
            (Status::Ok, _) | (_, Status::Unset) => {}
            _ => *self = later,
        }
    }
}

/// A timestamped event inside a span.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Event name, e.g. `exception`.
    pub name: Str,
    /// Unix time in nanoseconds.
    pub time_unix_nanos: u64,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes discarded by the per-event limit.
    pub dropped_attributes: u32,
}

/// A link to another span (e.g. the messages a batch job consumed).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked span.
    pub context: SpanContext,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
}

/// A finished, sampled span as span consumers receive it: read back from the bytes it was
/// exported as.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct SpanData {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// The parent's span id (invalid for a root).
    pub parent_span_id: SpanId,
    /// Whether the parent came from another process.
    pub parent_is_remote: bool,
    /// W3C trace flags.
    pub flags: u8,
    /// The `tracestate` value inherited from the parent.
    pub trace_state: Option<std::sync::Arc<str>>,
    /// Span name.
    pub name: Str,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nanos: u64,
    /// Attributes, unique by key.
    pub attributes: Vec<KeyValue>,
    /// Attributes discarded by the limit.
    pub dropped_attributes: u32,
    /// Events.
    pub events: Vec<Event>,
    /// Events discarded by the limit.
    pub dropped_events: u32,
    /// Links.
    pub links: Vec<Link>,
    /// Links discarded by the limit.
    pub dropped_links: u32,
    /// Status.
    pub status: Status,
}

/// Starts describing a span; see [`crate::trace::span`].
#[must_use = "call .start() to start the span"]
pub struct SpanBuilder {
    name: Str,
    kind: SpanKind,
    parent: Option<SpanContext>,
}

impl SpanBuilder {
    #[inline]
    pub(crate) fn new(name: Str) -> Self {
        SpanBuilder {
            name,
            kind: SpanKind::Internal,
            parent: None,
        }
    }

    /// The span kind (default `Internal`).
    #[inline]
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// An explicit parent instead of the thread's current span, e.g. one extracted from a
    /// `traceparent` header or captured on another thread. An invalid context makes a root span.
    #[inline]
    pub fn parent(mut self, parent: SpanContext) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Starts the span and makes it current on this thread until it ends.
    ///
    /// With no pipeline installed this returns a span that records nothing; given a valid
    /// explicit [`parent`](Self::parent) (an incoming `traceparent`), that span carries the
    /// parent's context and makes it current, so outgoing calls pass the caller's trace on
    /// unchanged, as the OpenTelemetry API's no-op span does. An unsampled span still gets
    /// valid ids (so propagation and log correlation work) but records nothing.
    #[inline(always)]
    #[must_use = "the span ends when dropped: bind it (`let _span = ...start();`) or use `trace::in_span`"]
    pub fn start(self) -> Span {
        if !state::is_installed() {
            if self.parent.is_none() {
                return Span::noop();
            }
            return self.start_disabled_under_parent();
        }
        // The common start, a literal name under the current span, is passed no builder: at a
        // call site that names its span with a literal this test folds away.
        let SpanBuilder { name, kind, parent } = self;
        match (name, parent) {
            (Str::Static(name), None) => start_literal(name, kind),
            (name, parent) => SpanBuilder { name, kind, parent }.start_installed(),
        }
    }

    /// With export off, an explicit valid parent (an incoming `traceparent`) becomes current
    /// until the span ends, and the span records nothing. Out of line so that the common
    /// disabled start (no explicit parent) stays a load and a branch.
    #[cold]
    #[inline(never)]
    fn start_disabled_under_parent(self) -> Span {
        match self.parent {
            Some(parent) if parent.is_valid() => {
                context::receive_remote_ends();
                Span::entered(Packed::of(&parent), parent.trace_state, None)
            }
            _ => Span::noop(),
        }
    }

    /// Any start: under an explicit parent, or the current span with a tracestate, on a deep
    /// stack, with ends posted from other threads to apply, on a thread's first span; sampled.
    /// Takes the builder by value (passed by pointer, no copy) so that none of it is left for
    /// the caller to drop: the caller's disabled and installed paths then join right at the
    /// returned span, and the compiler folds every setter on the disabled span away.
    #[inline(never)]
    fn start_installed(mut self) -> Span {
        let (parent, trace_state) = match self.parent.take() {
            Some(explicit) => {
                context::receive_remote_ends();
                (Packed::of(&explicit), explicit.trace_state)
            }
            None => context::current_packed(),
        };
        let ids = identity(&parent);
        if ids.is_sampled() {
            return start_recording(self.name, self.kind, ids, parent.ids(), trace_state);
        }
        Span::entered(ids, trace_state, None)
    }
}

/// A start with a literal name under the current span. On the common path (no tracestate on
/// the current span, this thread's stack and generator ready) an unsampled span's start calls
/// nothing, so it saves no registers; anything else takes the general path, which decides the
/// same from the same seed, none having been taken here.
#[inline(never)]
fn start_literal(name: &'static str, kind: SpanKind) -> Span {
    if let (Some(top), Some(seed)) = (context::common_top(), id::peek()) {
        let ids = identity_from(&top.ids, seed);
        id::take(seed, draws_for(&top.ids));
        if ids.is_sampled() {
            return start_literal_recording(name, kind, ids, top);
        }
        let entered = context::enter_common(&top, ids, None);
        return Span::new(ids, None, entered, None);
    }
    start_literal_in_general(name, kind)
}

#[inline(never)]
fn start_literal_in_general(name: &'static str, kind: SpanKind) -> Span {
    SpanBuilder::new(Str::Static(name))
        .kind(kind)
        .start_installed()
}

/// The sampled part of a start, out of line so that an unsampled span's start carries none of
/// its code.
#[inline(never)]
fn start_recording(
    name: Str,
    kind: SpanKind,
    ids: Packed,
    parent: Ids,
    trace_state: Option<Arc<str>>,
) -> Span {
    let record = RecordBox::new(None, context::thread_key(), |data| {
        let parent = (parent_span_id(&parent), parent.is_remote);
        data.start_as(name.as_str(), kind, &ids, parent, trace_state.as_deref())
    });
    Span::entered(ids, trace_state, Some(record))
}

/// [`start_recording`] on the common path of [`start_literal`] (no tracestate, the frame
/// `top` free on this thread), with what that path already knows.
#[inline(never)]
fn start_literal_recording(name: &'static str, kind: SpanKind, ids: Packed, top: Top) -> Span {
    // Its own closure, not one shared with `start_recording`: called once, it is inlined.
    let record = RecordBox::new(None, top.thread, |data| {
        data.start_as(name, kind, &ids, top.ids.as_parent(), None)
    });
    let entered = context::enter_common(&top, ids, Some(record.pointer()));
    Span::new(ids, Some(record), entered, None)
}

impl Recording {
    /// [`start`](Self::start) for a span with the ids `ids` (sampled: computed) under the
    /// parent span id and remoteness `parent`.
    #[inline(always)]
    fn start_as(
        &mut self,
        name: &str,
        kind: SpanKind,
        ids: &Packed,
        parent: (SpanId, bool),
        trace_state: Option<&str>,
    ) {
        self.start(
            name,
            kind,
            &ids.computed_ids(),
            parent.0,
            parent.1,
            trace_state,
        );
    }
}

/// A span's identity and, when sampled, its record: what the `tracing` bridge starts from
/// (its spans live in `tracing`'s registry, not in a [`Span`]).
#[cfg(feature = "tracing")]
pub(crate) struct Begun {
    pub(crate) context: SpanContext,
    /// Boxed so the bridge's per-span state stays small; `None` when not recording.
    pub(crate) data: Option<Box<Recording>>,
    pub(crate) limits: SpanLimits,
}

#[cfg(feature = "tracing")]
impl Begun {
    pub(crate) fn set_attribute(&mut self, kv: &KeyValue) {
        if let Some(data) = &mut self.data {
            data.set_attribute(&kv.key, &kv.value, self.limits);
        }
    }

    pub(crate) fn update_name(&mut self, name: Str) {
        if let Some(data) = &mut self.data {
            data.update_name(name.as_str());
        }
    }

    pub(crate) fn add_event(&mut self, name: Str, attributes: Vec<KeyValue>) {
        if let Some(data) = &mut self.data {
            data.add_event(&name, &attributes, self.limits);
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        if let Some(data) = &mut self.data {
            data.set_status(status);
        }
    }

    pub(crate) fn add_link(&mut self, context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(data) = &mut self.data {
            data.add_link(&context, &attributes, self.limits);
        }
    }

    /// Ends the span now and hands its record to the pipeline; later calls do nothing.
    pub(crate) fn end(&mut self) {
        if let Some(mut data) = self.data.take() {
            data.end_now();
        }
    }
}

/// The parent span id a span records: invalid for a root.
#[inline]
fn parent_span_id(parent: &Ids) -> SpanId {
    if parent.is_valid() {
        parent.span_id
    } else {
        SpanId::INVALID
    }
}

/// Decides sampling and draws ids for a new span under `parent` (invalid = a root). Callers
/// check [`state::is_installed`] first; a pipeline uninstalled in between makes an unsampled
/// span.
#[cfg(feature = "tracing")]
#[inline(always)]
pub(crate) fn begin(name: Str, kind: SpanKind, parent: &SpanContext) -> Begun {
    let parent_ids = Packed::of(parent);
    let ids = identity(&parent_ids);
    let context = ids.context(parent.trace_state.clone());
    let (data, limits) = if context.is_sampled() {
        let limits = handoff::span_limits();
        let mut data = Box::new(Recording::empty());
        let parent_ids = parent_ids.ids();
        data.start(
            name.as_str(),
            kind,
            &ids.ids(),
            parent_span_id(&parent_ids),
            parent_ids.is_remote,
            parent.trace_state(),
        );
        (Some(data), limits)
    } else {
        (None, SpanLimits::default())
    };
    Begun {
        context,
        data,
        limits,
    }
}

/// The one place span identity is made: sampling and ids. An unsampled span's ids are left to
/// be computed from their seed when read (see [`Packed`]); the ratio sampler reads a root's
/// trace id only at a rate above 0.
#[inline(always)]
fn identity(parent: &Packed) -> Packed {
    identity_from(parent, id::reserve(draws_for(parent)))
}

/// How many generator outputs a span under `parent` takes for its ids.
#[inline(always)]
fn draws_for(parent: &Packed) -> u64 {
    if parent.is_valid() {
        id::CHILD_DRAWS
    } else {
        id::ROOT_DRAWS
    }
}

/// [`identity`] from the generator `seed` reserved for it: the same identity wherever made.
#[inline(always)]
fn identity_from(parent: &Packed, seed: u64) -> Packed {
    let sampler = state::sampler();
    if parent.is_valid() {
        let trace_id = parent.trace_id();
        let sampled = sampler.should_sample(Some(parent.is_sampled()), trace_id.0);
        let flags = (parent.flags() & !FLAG_SAMPLED) | if sampled { FLAG_SAMPLED } else { 0 };
        Packed::child(trace_id, seed, flags, sampled)
    } else {
        let sampled = sampler.samples_root(|| id::root_trace_id(seed).0);
        let sampled_flag = if sampled { FLAG_SAMPLED } else { 0 };
        Packed::root(seed, FLAG_RANDOM | sampled_flag, sampled)
    }
}

/// A started span. Current on the thread that started it until it ends; ends on [`Span::end`]
/// or on drop, in any order with other spans (a span that ended is never current again).
///
/// `Send`: a span can be handed to another thread (a worker that finishes the request) or kept
/// in shared state, and ended there. It stays the current span of the thread that started it
/// until it ends. Every setter is a no-op on a span that is not recording (unsampled, or
/// export off).
///
/// ```
/// use plain_connect::trace::{self, SpanKind, Status};
/// let mut span = trace::span("charge card").kind(SpanKind::Client).start();
/// span.set_attribute("payment.provider", "acme");
/// span.set_status(Status::error("card declined"));
/// std::thread::spawn(move || span.end()).join().unwrap();
/// ```
pub struct Span {
    /// Its ids (an unsampled span's still to be computed) and flags, as on its frame; invalid
    /// only for the span that is nothing at all (no pipeline installed at start and no explicit
    /// parent given), which keeps the disabled path to a load and a branch.
    ids: Packed,
    /// The record, when sampled.
    record: Option<RecordBox>,
    /// Its frame on the starting thread's stack of current contexts.
    entered: Saved,
    /// The parent's tracestate, carried on. Dropped by [`finish`], like `context`: the span's
    /// drop glue is then nothing, and its drop at the call site one check and a call.
    trace_state: ManuallyDrop<Option<Arc<str>>>,
    /// What [`Span::context`] returns, made from `ids` and `trace_state` on its first call.
    context: ManuallyDrop<OnceCell<SpanContext>>,
}

impl Span {
    #[inline]
    fn noop() -> Self {
        Span {
            ids: Packed::NONE,
            record: None,
            entered: Saved::default(),
            trace_state: ManuallyDrop::new(None),
            context: ManuallyDrop::new(OnceCell::new()),
        }
    }

    /// Entered first, then built where it is returned: a span built in a local and entered
    /// there is copied out whole on return.
    #[inline(always)]
    fn entered(ids: Packed, trace_state: Option<Arc<str>>, record: Option<RecordBox>) -> Span {
        let pointer = record.as_ref().map(RecordBox::pointer);
        let entered = context::enter_ids(ids, trace_state.as_ref(), pointer);
        Span::new(ids, record, entered, trace_state)
    }

    #[inline(always)]
    fn new(
        ids: Packed,
        record: Option<RecordBox>,
        entered: Saved,
        trace_state: Option<Arc<str>>,
    ) -> Span {
        Span {
            ids,
            record,
            entered,
            trace_state: ManuallyDrop::new(trace_state),
            context: ManuallyDrop::new(OnceCell::new()),
        }
    }

    /// The record, when recording: the one check every setter makes first, inline, so that on
    /// a span that is nothing (export off) the setter folds away at the call site.
    #[inline(always)]
    fn record(&mut self) -> Option<&mut RecordBox> {
        self.record.as_mut()
    }

    /// The span's context (valid even when unsampled, while a pipeline is installed; with
    /// none installed, the explicit parent's, or an invalid context when there was none).
    #[inline]
    pub fn context(&self) -> &SpanContext {
        self.context
            .get_or_init(|| self.ids.context((*self.trace_state).clone()))
    }

    /// Whether attributes, events and status are recorded (sampled and not yet ended).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.record.is_some()
    }

    /// Sets an attribute; an existing key is overwritten. Past the attribute limit new keys are
    /// discarded and counted in `dropped_attributes_count`.
    #[inline]
    pub fn set_attribute(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        if let Some(record) = self.record() {
            // The common call, a literal key and a literal string or a number, is passed in
            // registers and leaves nothing to drop: at such a call site the match folds away.
            let (key, value) = (key.into(), value.into());
            let Str::Static(literal) = key else {
                return set_attribute_on(record, key, value);
            };
            // Each of these owns nothing: forgotten, so the call into the drop glue is left out.
            match value {
                Value::Str(Str::Static(text)) => {
                    std::mem::forget(value);
                    set_literal_str(record, literal, text)
                }
                Value::I64(number) => {
                    std::mem::forget(value);
                    set_literal_i64(record, literal, number)
                }
                Value::Bool(b) => {
                    std::mem::forget(value);
                    set_literal_bool(record, literal, b)
                }
                Value::F64(number) => {
                    std::mem::forget(value);
                    set_literal_f64(record, literal, number)
                }
                value => set_attribute_on(record, key, value),
            }
        }
    }

    /// Sets several attributes.
    #[inline]
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(record) = self.record() {
            set_attributes_on(record, attributes.into_iter().collect());
        }
    }

    /// Renames the span (e.g. once the HTTP route is known).
    #[inline]
    pub fn update_name(&mut self, name: impl Into<Str>) {
        if let Some(record) = self.record() {
            update_name_on(record, name.into());
        }
    }

    /// Adds an event with attributes.
    #[inline]
    pub fn add_event(&mut self, name: impl Into<Str>, attributes: Vec<KeyValue>) {
        if let Some(record) = self.record() {
            add_event_on(record, name.into(), attributes);
        }
    }

    /// Records an `exception` event with `exception.type` and `exception.message`
    /// (semantic conventions). The status is left to the caller.
    ///
    /// ```
    /// let mut span = plain_connect::trace::span("parse").start();
    /// if let Err(e) = "x".parse::<u32>() {
    ///     span.record_exception("ParseIntError", &e.to_string());
    /// }
    /// ```
    #[inline]
    pub fn record_exception(&mut self, exception_type: &str, message: &str) {
        if let Some(record) = self.record() {
            add_event_on(
                record,
                "exception".into(),
                exception(Some(exception_type), message),
            );
        }
    }

    /// Records an error value as an `exception` event. The status is left to the caller.
    ///
    /// `exception.type` is the error's Rust type (`core::num::error::ParseIntError`) when the
    /// type is known at the call; for a trait object (`&dyn Error`, `Box<dyn Error>`) the
    /// concrete type is not knowable, so it is left out rather than exported as
    /// `dyn core::error::Error`. `exception.message` is the error's message followed by its
    /// `source()` chain, joined by `": "` (`config invalid: port: invalid digit found in string`).
    #[inline]
    pub fn record_error<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        if let Some(record) = self.record() {
            add_event_on(record, "exception".into(), exception_of(error));
        }
    }

    /// Sets the status. `Ok` is final; `Error` replaces `Unset` or an earlier `Error`.
    #[inline]
    pub fn set_status(&mut self, status: Status) {
        if let Some(record) = self.record() {
            set_status_on(record, status);
        }
    }

    /// Links another span.
    #[inline]
    pub fn add_link(&mut self, context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(record) = self.record() {
            add_link_on(record, context, attributes);
        }
    }

    /// Ends the span now.
    pub fn end(self) {}
}

// The setters' work, out of line: the call sites keep only the not-recording check.

#[inline(never)]
fn set_attribute_on(record: &mut RecordBox, key: Str, value: Value) {
    record.with(|data, limits| data.set_attribute(&key, &value, limits));
    // Nearly every value owns nothing: those skip the call into the drop glue.
    if matches!(
        value,
        Value::Bool(_) | Value::I64(_) | Value::F64(_) | Value::Str(Str::Static(_))
    ) {
        std::mem::forget(value);
    }
}

/// A setter of a literal key and a literal value: the usual case calls nothing; any other
/// (another thread, a value to cut, a key that may be set already, a limit) the general path.
macro_rules! set_literal {
    ($name:ident, $general:ident, $type:ty, $member:ident) => {
        #[inline(never)]
        fn $name(record: &mut RecordBox, key: &'static str, value: $type) {
            if !record.try_set_literal_here(key, OneOf::$member(value)) {
                $general(record, key, value);
            }
        }

        #[cold]
        #[inline(never)]
        fn $general(record: &mut RecordBox, key: &'static str, value: $type) {
            record.with(|data, limits| {
                let member = match OneOf::$member(value) {
                    OneOf::Str(s) => OneOf::Str(cut(s, limits.max_value_chars)),
                    member => member,
                };
                data.set_scalar_attribute(key, member, limits)
            });
        }
    };
}

set_literal!(set_literal_str, set_literal_str_general, &'static str, Str);
set_literal!(set_literal_i64, set_literal_i64_general, i64, Int);
set_literal!(set_literal_bool, set_literal_bool_general, bool, Bool);
set_literal!(set_literal_f64, set_literal_f64_general, f64, Double);

#[inline(never)]
fn set_attributes_on(record: &mut RecordBox, attributes: Vec<KeyValue>) {
    record.with(|data, limits| {
        for kv in &attributes {
            data.set_attribute(&kv.key, &kv.value, limits);
        }
    });
}

#[inline(never)]
fn update_name_on(record: &mut RecordBox, name: Str) {
    record.with(|data, _| data.update_name(name.as_str()));
}

#[inline(never)]
fn add_event_on(record: &mut RecordBox, name: Str, attributes: Vec<KeyValue>) {
    record.with(|data, limits| data.add_event(&name, &attributes, limits));
}

#[inline(never)]
fn set_status_on(record: &mut RecordBox, status: Status) {
    record.with(|data, _| data.set_status(status));
}

#[inline(never)]
fn add_link_on(record: &mut RecordBox, context: SpanContext, attributes: Vec<KeyValue>) {
    record.with(|data, limits| data.add_link(&context, &attributes, limits));
}

/// Ends a span that has a context, and drops what it holds: out of line, so the span's drop
/// stays a check and a call at the call site.
#[inline(never)]
fn finish(span: &mut Span) {
    // The common path, which calls nothing: unsampled, owning nothing, its frame on top here.
    let owns_nothing = span.trace_state.is_none() && span.context.get().is_none();
    if span.record.is_none() && owns_nothing && context::leave_common(&span.entered) {
        return;
    }
    finish_general(span);
}

#[inline(never)]
fn finish_general(span: &mut Span) {
    match span.record.take() {
        None => span.leave(),
        Some(record) => span.finish_recorded(record),
    }
    if span.trace_state.is_some() || span.context.get().is_some() {
        drop_owned(span);
    }
}

/// What few spans own: a tracestate, a context asked for.
#[cold]
#[inline(never)]
fn drop_owned(span: &mut Span) {
    drop(span.trace_state.take());
    drop(span.context.take());
}

impl Span {
    /// Without the record's bytes on the stack, so an unsampled span only leaves its frame.
    #[inline]
    fn leave(&mut self) {
        if self.entered.is_here() {
            context::leave_here(&self.entered);
        } else if self.entered.is_entered() {
            context::leave_from_elsewhere(&self.entered, None);
        }
    }

    /// The end of a span with a record, inline in [`finish_general`]: on the thread that
    /// started it, the frame is left, the span handed off and the record kept for the next one,
    /// in one function.
    #[inline(always)]
    fn finish_recorded(&mut self, record: RecordBox) {
        if self.entered.is_here() {
            context::restore(&mut self.entered);
            // SAFETY: its frame (on this thread) was just left: marked ended, no longer
            // reachable (rule 2 in `record`).
            unsafe { record.end_and_recycle(Recording::end_now) };
        } else {
            self.finish_elsewhere(record);
        }
    }

    /// The end of a span with a record on another thread than the one that started it.
    #[inline(never)]
    fn finish_elsewhere(&mut self, mut record: RecordBox) {
        let data = record.take();
        context::leave_from_elsewhere(&self.entered, Some(record));
        self.entered = Saved::default();
        if let Some(mut data) = data {
            data.end_now();
        }
    }
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if self.ids.is_valid() {
            finish(self);
        }
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Span")
            .field("context", self.context())
            .field("recording", &self.is_recording())
            .finish()
    }
}

/// The `exception` event's attributes for an error value: see [`Span::record_error`].
/// An error's Rust type name, the conventions' "fully qualified type name"; `None` for a trait
/// object (`dyn Error`, `Box<dyn Error>`, `&dyn Error`), whose name says nothing about the error.
pub(crate) fn error_type_name<E: ?Sized>() -> Option<&'static str> {
    let name = std::any::type_name::<E>();
    (!name.contains("dyn ")).then_some(name)
}

pub(crate) fn exception_of<E: std::error::Error + ?Sized>(error: &E) -> Vec<KeyValue> {
    let exception_type = error_type_name::<E>();
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    exception(exception_type, &message)
}

fn exception(exception_type: Option<&str>, message: &str) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(2);
    if let Some(t) = exception_type {
        attributes.push(KeyValue::new("exception.type", t.to_owned()));
    }
    attributes.push(KeyValue::new("exception.message", message.to_owned()));
    attributes
}

/// Whatever span is current on this thread, reached without its handle: for code deep in a
/// request that was not passed the span. Every call is a no-op when the current span is not
/// recording (none current, unsampled, export off, or its handle lives on another thread and
/// it has ended there).
///
/// ```
/// use plain_connect::trace;
/// fn load_user(id: u64) {
///     trace::current_span().set_attribute("user.id", id as i64);
/// }
/// let _request = trace::span("GET /users/{id}").start();
/// load_user(42);
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct CurrentSpan;

impl CurrentSpan {
    fn with<R>(self, f: impl FnOnce(&mut Recording, SpanLimits) -> R) -> Option<R> {
        if !state::is_installed() {
            return None;
        }
        context::with_current_record(f)
    }

    /// The current span's context (invalid when none is current).
    pub fn context(self) -> SpanContext {
        context::current()
    }

    /// Whether the current span records what is set on it.
    pub fn is_recording(self) -> bool {
        self.with(|_, _| ()).is_some()
    }

    /// See [`Span::set_attribute`].
    pub fn set_attribute(self, key: impl Into<Str>, value: impl Into<Value>) {
        if state::is_installed() {
            let (key, value) = (key.into(), value.into());
            self.with(|data, limits| data.set_attribute(&key, &value, limits));
        }
    }

    /// See [`Span::add_event`].
    pub fn add_event(self, name: impl Into<Str>, attributes: Vec<KeyValue>) {
        let name = name.into();
        self.with(|data, limits| data.add_event(&name, &attributes, limits));
    }

    /// See [`Span::set_status`].
    pub fn set_status(self, status: Status) {
        self.with(|data, _| data.set_status(status));
    }

    /// See [`Span::record_error`].
    pub fn record_error<E: std::error::Error + ?Sized>(self, error: &E) {
        if self.is_recording() {
            self.add_event("exception", exception_of(error));
        }
    }
}

/// Hands a finished span to the installed pipeline, encoded into this thread's buffer (nothing
/// happens when none is installed). The one way a finished span leaves, the `tracing` bridge's
/// included.
#[inline]
pub(crate) fn submit(record: &mut Recording, end_unix_nanos: u64) {
    // Completed before the thread's buffer is taken: the hand-off holds it for one copy.
    let entry = super::encode::finish_span(record, end_unix_nanos);
    handoff::submit(Kind::Span, |buf| buf.extend_from_slice(entry));
}

/// Unique keys and a count limit for a list of attributes still to be given to a span or log
/// record (a log record's, the `tracing` bridge's fields before its span starts).
pub(crate) fn push_attribute(
    attributes: &mut Vec<KeyValue>,
    dropped: &mut u32,
    max_count: u32,
    kv: KeyValue,
) {
    if let Some(existing) = attributes.iter_mut().find(|a| a.key == kv.key) {
        existing.value = kv.value;
    } else if attributes.len() < max_count as usize {
        attributes.push(kv);
    } else {
        *dropped = dropped.saturating_add(1);
    }
}
