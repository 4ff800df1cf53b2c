//! Spans: started by name, made current while they live, ended explicitly or on drop.

use super::context::{self, SpanContext, FLAG_SAMPLED};
use super::id::{new_span_id, new_trace_id, SpanId, TraceId};
use crate::attributes::{KeyValue, Str, Value};
use crate::core::handoff::{self, Kind};
pub use crate::core::SpanLimits;
use crate::core::{self as state, now_unix_nanos};
use std::marker::PhantomData;

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
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked span.
    pub context: SpanContext,
    /// Attributes.
    pub attributes: Vec<KeyValue>,
}

/// A finished, sampled span as handed to the export pipeline and to span consumers.
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
    pub fn start(mut self) -> Span {
        if !state::is_installed() {
            if self.parent.is_none() {
                return Span::noop();
            }
            return self.start_disabled_under_parent();
        }
        self.start_installed()
    }

    /// With export off, an explicit valid parent (an incoming `traceparent`) becomes current
    /// until the span ends, and the span records nothing. Out of line so that the common
    /// disabled start (no explicit parent) stays a load and a branch.
    #[cold]
    #[inline(never)]
    fn start_disabled_under_parent(&mut self) -> Span {
        match self.parent.take() {
            Some(parent) if parent.is_valid() => {
                let mut span = Span {
                    active: Some(Active {
                        begun: Begun {
                            context: parent,
                            data: None,
                            limits: SpanLimits::default(),
                        },
                        previous: None,
                    }),
                    _not_send: PhantomData,
                };
                if let Some(active) = &mut span.active {
                    active.previous = Some(context::enter(&active.begun.context));
                }
                span
            }
            _ => Span::noop(),
        }
    }

    /// Takes the builder by reference: moving it by value would copy it through memory.
    fn start_installed(&mut self) -> Span {
        let parent = match self.parent.take() {
            Some(explicit) => explicit,
            None => context::current(),
        };
        let name = std::mem::replace(&mut self.name, Str::Static(""));
        // Built where it is returned, then entered in place: a span built aside and moved
        // would be copied through memory right after being written, which stalls the CPU.
        let mut span = Span {
            active: Some(Active {
                begun: begin(name, self.kind, &parent),
                previous: None,
            }),
            _not_send: PhantomData,
        };
        if let Some(active) = &mut span.active {
            active.previous = Some(context::enter(&active.begun.context));
        }
        span
    }
}

/// A span's identity and, when sampled, its record: what [`SpanBuilder::start`] and the
/// `tracing` bridge both start from.
pub(crate) struct Begun {
    pub(crate) context: SpanContext,
    /// Boxed so the handle the app holds and moves stays small; `None` when not recording.
    pub(crate) data: Option<Box<SpanData>>,
    pub(crate) limits: SpanLimits,
}

/// What a span records, shared by [`Span`] and the `tracing` bridge.
impl Begun {
    /// The record and limits when recording.
    fn recording(&mut self) -> Option<(&mut SpanData, SpanLimits)> {
        Some((self.data.as_deref_mut()?, self.limits))
    }

    pub(crate) fn set_attribute(&mut self, kv: KeyValue) {
        if let Some((data, limits)) = self.recording() {
            push_attribute(
                &mut data.attributes,
                &mut data.dropped_attributes,
                limits.max_attributes,
                limits.max_value_chars,
                kv,
            );
        }
    }

    pub(crate) fn update_name(&mut self, name: Str) {
        if let Some((data, _)) = self.recording() {
            data.name = name;
        }
    }

    pub(crate) fn add_event(&mut self, name: Str, attributes: Vec<KeyValue>) {
        if let Some((data, limits)) = self.recording() {
            if data.events.len() >= limits.max_events as usize {
                data.dropped_events = data.dropped_events.saturating_add(1);
                return;
            }
            let mut kept = Vec::with_capacity(attributes.len());
            let mut dropped = 0;
            for kv in attributes {
                push_attribute(
                    &mut kept,
                    &mut dropped,
                    limits.max_attributes_per_event,
                    limits.max_value_chars,
                    kv,
                );
            }
            data.events.push(Event {
                name,
                time_unix_nanos: now_unix_nanos(),
                attributes: kept,
                dropped_attributes: dropped,
            });
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        if let Some((data, _)) = self.recording() {
            data.status.update(status);
        }
    }

    /// Ends the span now and hands its record to the pipeline; later calls do nothing.
    pub(crate) fn end(&mut self) {
        if let Some(mut data) = self.data.take() {
            data.end_unix_nanos = now_unix_nanos().max(data.start_unix_nanos);
            submit(&data);
        }
    }
}

/// Decides sampling and draws ids for a new span under `parent` (invalid = a root). The one
/// place span identity is made. Callers check [`state::is_installed`] first; a pipeline
/// uninstalled in between makes an unsampled span.
#[inline(always)]
pub(crate) fn begin(name: Str, kind: SpanKind, parent: &SpanContext) -> Begun {
    let sampler = state::sampler();
    let parent_valid = parent.is_valid();
    let trace_id = if parent_valid {
        parent.trace_id
    } else {
        new_trace_id()
    };
    let sampled = sampler.should_sample(parent_valid.then(|| parent.is_sampled()), trace_id.0);
    let inherited_flags = if parent_valid { parent.flags } else { 0 };
    let flags = (inherited_flags & !FLAG_SAMPLED) | if sampled { FLAG_SAMPLED } else { 0 };
    let context = SpanContext {
        trace_id,
        span_id: new_span_id(),
        flags,
        is_remote: false,
        trace_state: parent.trace_state.clone(),
    };
    let (data, limits) = if sampled {
        let limits = handoff::with_signal_config(|c| c.span_limits).unwrap_or_default();
        (Some(new_record(name, kind, &context, parent)), limits)
    } else {
        (None, SpanLimits::default())
    };
    Begun {
        context,
        data,
        limits,
    }
}

/// The record of a sampled span, started now. Kept out of line: an unsampled span should not
/// pay for the stack space and copies of a record it never makes.
#[inline(never)]
fn new_record(
    name: Str,
    kind: SpanKind,
    context: &SpanContext,
    parent: &SpanContext,
) -> Box<SpanData> {
    Box::new(SpanData {
        trace_id: context.trace_id,
        span_id: context.span_id,
        parent_span_id: if parent.is_valid() {
            parent.span_id
        } else {
            SpanId::INVALID
        },
        parent_is_remote: parent.is_remote,
        flags: context.flags,
        trace_state: parent.trace_state.clone(),
        name,
        kind,
        start_unix_nanos: now_unix_nanos(),
        end_unix_nanos: 0,
        attributes: Vec::new(),
        dropped_attributes: 0,
        events: Vec::new(),
        dropped_events: 0,
        links: Vec::new(),
        dropped_links: 0,
        status: Status::Unset,
    })
}

/// A started span. Current on its thread until it ends; ends on [`Span::end`] or on drop.
///
/// Every setter is a no-op on a span that is not recording (unsampled or export disabled).
///
/// ```
/// use plain_connect::trace::{self, SpanKind, Status};
/// let mut span = trace::span("charge card").kind(SpanKind::Client).start();
/// span.set_attribute("payment.provider", "acme");
/// span.set_status(Status::error("card declined"));
/// span.end();
/// ```
pub struct Span {
    /// `None` when no pipeline was installed at start: then the span is nothing at all, which
    /// is what keeps the disabled path to a load and a branch.
    active: Option<Active>,
    _not_send: PhantomData<*const ()>,
}

/// A span started under an installed pipeline.
struct Active {
    begun: Begun,
    /// What was current before this span started; `None` once ended.
    previous: Option<context::Saved>,
}

/// What [`Span::context`] returns for a span started with no pipeline installed.
static NO_CONTEXT: SpanContext = SpanContext::none();

impl Span {
    #[inline]
    fn noop() -> Self {
        Span {
            active: None,
            _not_send: PhantomData,
        }
    }

    /// The span's identity and record, when recording.
    fn recording(&mut self) -> Option<&mut Begun> {
        let active = self.active.as_mut()?;
        active.begun.data.is_some().then_some(&mut active.begun)
    }

    /// The span's context (valid even when unsampled, while a pipeline is installed; with
    /// none installed, the explicit parent's, or an invalid context when there was none).
    pub fn context(&self) -> &SpanContext {
        self.active
            .as_ref()
            .map_or(&NO_CONTEXT, |a| &a.begun.context)
    }

    /// Whether attributes, events and status are recorded (sampled and not yet ended).
    pub fn is_recording(&self) -> bool {
        self.active.as_ref().is_some_and(|a| a.begun.data.is_some())
    }

    /// Sets an attribute; an existing key is overwritten. Past the attribute limit new keys are
    /// discarded and counted in `dropped_attributes_count`.
    pub fn set_attribute(&mut self, key: impl Into<Str>, value: impl Into<Value>) {
        if let Some(begun) = self.recording() {
            begun.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Sets several attributes.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        if let Some(begun) = self.recording() {
            for kv in attributes {
                begun.set_attribute(kv);
            }
        }
    }

    /// Renames the span (e.g. once the HTTP route is known).
    pub fn update_name(&mut self, name: impl Into<Str>) {
        if let Some(begun) = self.recording() {
            begun.update_name(name.into());
        }
    }

    /// Adds an event with attributes.
    pub fn add_event(&mut self, name: impl Into<Str>, attributes: Vec<KeyValue>) {
        if let Some(begun) = self.recording() {
            begun.add_event(name.into(), attributes);
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
    pub fn record_exception(&mut self, exception_type: &str, message: &str) {
        if self.is_recording() {
            self.add_event(
                "exception",
                vec![
                    KeyValue::new("exception.type", exception_type.to_owned()),
                    KeyValue::new("exception.message", message.to_owned()),
                ],
            );
        }
    }

    /// Records an error value: an `exception` event whose type is the error's Rust type name.
    pub fn record_error<E: std::error::Error + ?Sized>(&mut self, error: &E) {
        if self.is_recording() {
            self.record_exception(std::any::type_name::<E>(), &error.to_string());
        }
    }

    /// Sets the status. `Ok` is final; `Error` replaces `Unset` or an earlier `Error`.
    pub fn set_status(&mut self, status: Status) {
        if let Some(begun) = self.recording() {
            begun.set_status(status);
        }
    }

    /// Links another span.
    pub fn add_link(&mut self, context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(Begun {
            data: Some(data),
            limits,
            ..
        }) = self.recording()
        {
            if data.links.len() >= limits.max_links as usize || !context.is_valid() {
                data.dropped_links = data.dropped_links.saturating_add(1);
                return;
            }
            data.links.push(Link {
                context,
                attributes,
            });
        }
    }

    /// Ends the span now. Ending twice (or dropping after `end`) does nothing more.
    pub fn end(mut self) {
        self.finish();
    }

    #[inline]
    fn finish(&mut self) {
        if let Some(active) = &mut self.active {
            active.finish();
        }
    }
}

impl Active {
    fn finish(&mut self) {
        if let Some(previous) = &mut self.previous {
            context::leave(self.begun.context.span_id, previous);
            self.previous = None;
        }
        self.begun.end();
    }
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        self.finish();
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

/// Hands a finished span to the installed pipeline, encoded into this thread's buffer (nothing
/// happens when none is installed). The one way a finished span leaves, the `tracing` bridge's
/// included.
pub(crate) fn submit(data: &SpanData) {
    handoff::submit(Kind::Span, |buf| super::encode::span_entry(buf, data));
}

/// The one place attribute limits are applied: unique keys, count limit, value length limit.
pub(crate) fn push_attribute(
    attributes: &mut Vec<KeyValue>,
    dropped: &mut u32,
    max_count: u32,
    max_value_chars: Option<u32>,
    mut kv: KeyValue,
) {
    if let Some(max) = max_value_chars {
        kv.value.truncate(max as usize);
    }
    if let Some(existing) = attributes.iter_mut().find(|a| a.key == kv.key) {
        existing.value = kv.value;
    } else if attributes.len() < max_count as usize {
        attributes.push(kv);
    } else {
        *dropped = dropped.saturating_add(1);
    }
}
