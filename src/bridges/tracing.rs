//! The `tracing` bridge (feature `tracing`): a [`tracing_subscriber::Layer`] that turns tracing
//! spans into this crate's spans — fields become attributes, the parent comes from the tracing
//! span tree — and tracing events into log records correlated with their span.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! let subscriber = tracing_subscriber::registry().with(plain_connect::tracing_bridge::layer());
//! let _guard = tracing_core::dispatcher::set_default(&subscriber.into());
//! // tracing::info_span!("checkout", cart.items = 3).in_scope(|| tracing::info!("paid"));
//! ```
//!
//! `span.follows_from(&other)` becomes a link to `other`.
//!
//! While a tracing span is entered, it is also this crate's current span on that thread, so
//! `log` records and spans started with [`crate::trace::span`] inside it nest under it.
//!
//! # Special fields
//!
//! The fields tracing-opentelemetry gives a meaning are read the same way, at creation or
//! recorded later, and are not exported as attributes:
//! - `otel.name`: the span's name (the tracing name is a `&'static str`; this one may be built
//!   at run time, e.g. `otel.name = %format!("GET {route}")`).
//! - `otel.kind`: `server`, `client`, `producer`, `consumer` or `internal` (any case).
//! - `otel.status_code`: `ok` or `error` (any case); `otel.status_message` (or
//!   `otel.status_description`) the error's description, and an error status by itself.
//!
//! # Errors
//!
//! An event with an `error` field — what `#[instrument(err)]` emits when the function returns
//! `Err` — records an `exception` event on its span with `exception.message` set to the error's
//! text, and becomes a log record whose body and `exception.message` are that text. When it has
//! no message of its own (the `#[instrument(err)]` form), or whenever an event is at ERROR, the
//! span's status becomes an error with that text.
//!
//! # Levels
//!
//! Events become log records under the same export floor as `log` records (the `log_level`
//! setting, `PLAIN_CONNECT_LOG_LEVEL`). Spans are exported whatever their level, as
//! tracing-opentelemetry does: choose which with tracing-subscriber's own filters, per layer so
//! the console keeps its own — `layer().with_filter(LevelFilter::INFO)`, a `filter::Targets`,
//! or an `EnvFilter` when the app enables tracing-subscriber's `env-filter` feature. A span a
//! filter leaves out is skipped: its children and events nest under the nearest exported span.
//!
//! ```
//! use tracing_subscriber::{filter::LevelFilter, layer::SubscriberExt, Layer};
//! let exported = plain_connect::tracing_bridge::layer().with_filter(LevelFilter::INFO);
//! let subscriber = tracing_subscriber::registry().with(exported);
//! # drop(subscriber);
//! ```
//!
//! # `log` records through tracing
//!
//! tracing-subscriber's `init()` (its default `tracing-log` feature) also makes every `log`
//! record a tracing event. Such an app skips [`crate::logs::install`]: a process has one `log`
//! logger, and `init()` panics when one is already set (`try_init()` returns the error). Those
//! events are exported as the `log` bridge exports records: the record's target is the scope,
//! its file and line are `code.*` attributes, and this crate's own records are never exported.
//! tracing-log does not pass a record's key-values on; the `log` bridge keeps them.
//!
//! The exporter's HTTP client logs the bytes it sends at TRACE, export token included: no
//! tracing subscriber hears the exporter's HTTP exchanges, so an app that turns `log` records
//! into tracing events (tracing-log's `LogTracer`) never prints them, whatever its filters.
//!
//! # Remote parents
//!
//! A span for an incoming request continues the caller's trace with [`SpanExt::set_parent`],
//! called before the span is first entered:
//!
//! ```
//! use plain_connect::{trace::propagation, tracing_bridge::SpanExt};
//! let span = tracing::info_span!("request", otel.kind = "server");
//! if let Some(parent) = propagation::extract("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None) {
//!     span.set_parent(parent);
//! }
//! let _entered = span.enter();
//! ```
//!
//! Attaching the extracted context first ([`crate::trace::SpanContext::attach`]) does the same
//! for every root tracing span created while it is attached.
//!
//! # HTTP and database spans
//!
//! A span with the semantic conventions' fields gets what [`crate::instrument`]'s helpers give,
//! the duration histogram recorded whether or not the trace is sampled:
//! - `otel.kind = "server"` with `http.request.method` and `http.response.status_code` (and
//!   `url.scheme`, `http.route` when known): `http.server.request.duration`; a 5xx response
//!   sets `error.type` and an error status.
//! - `db.system.name`: `db.client.operation.duration`; a `db.query.text` is sanitised (literals
//!   become `?`) and summarised into `db.operation.name`, `db.collection.name` and
//!   `db.query.summary` unless those were given. `error.type` comes from the field, or is
//!   `_OTHER` when the span ends with an error status.
//!
//! Span names stay the tracing names: set `otel.name` to follow the conventions' names.

use super::{is_exported, is_own_target, Bridged, RecordAttributes};
use crate::attributes::{KeyValue, Str, Value};
use crate::instrument::{db, http, sql};
use crate::logs::CodeLocation;
use crate::trace::{self, push_attribute, Begun, SpanContext, SpanKind, Status};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::time::Instant;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, Registry};
use tracing_subscriber::Layer;

/// The layer; add it to a `tracing_subscriber::registry()`.
pub fn layer() -> PlainConnectLayer {
    PlainConnectLayer { _private: () }
}

/// See [`layer`].
pub struct PlainConnectLayer {
    _private: (),
}

/// What tracing-opentelemetry users bring: `tracing::Span` methods reaching the exported span.
pub trait SpanExt {
    /// Makes `parent` (e.g. extracted from an incoming `traceparent`) this span's parent. Call it
    /// before the span is first entered and before its children, events or `follows_from`: from
    /// then on its identity is fixed. With export off nothing is recorded, but while the span is
    /// entered `parent` is current, so outgoing calls carry the caller's trace on unchanged.
    /// Returns false when it had no effect: the span disabled, filtered out of the layer or
    /// already started, an invalid `parent` with export off, or a subscriber not built on
    /// `tracing_subscriber::registry()`.
    fn set_parent(&self, parent: SpanContext) -> bool;

    /// The exported span's context, e.g. to inject a `traceparent` into an outgoing request
    /// made outside the span's scope. Invalid when the span is not bridged.
    fn context(&self) -> SpanContext;
}

impl SpanExt for tracing::Span {
    fn set_parent(&self, parent: SpanContext) -> bool {
        if !crate::core::is_installed() {
            // Export off: nothing is recorded, but the caller's trace is not cut (see `PassThrough`).
            return parent.is_valid()
                && with_extensions(self, |extensions| {
                    extensions.replace(PassThrough(parent));
                })
                .is_some();
        }
        with_extensions(self, |extensions| {
            extensions
                .get_mut::<BridgedSpan>()
                .is_some_and(|bridged| bridged.set_parent(parent))
        })
        .unwrap_or(false)
    }

    fn context(&self) -> SpanContext {
        with_extensions(self, |extensions| {
            if let Some(bridged) = extensions.get_mut::<BridgedSpan>() {
                return bridged.start().context.clone();
            }
            extensions
                .get_mut::<PassThrough>()
                .map(|pass_through| pass_through.0.clone())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }
}

/// Runs `f` on the registry extensions behind a `tracing::Span`.
fn with_extensions<T>(
    span: &tracing::Span,
    f: impl FnOnce(&mut tracing_subscriber::registry::ExtensionsMut<'_>) -> T,
) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let span = registry.span(id)?;
        let mut extensions = span.extensions_mut();
        Some(f(&mut extensions))
    })
    .flatten()
}

/// With export off, the parent given by [`SpanExt::set_parent`]: current while the span is
/// entered, so outgoing calls carry the caller's `traceparent` unchanged, as the OpenTelemetry
/// no-op span does (and as [`crate::trace::SpanBuilder::parent`] does with export off).
struct PassThrough(SpanContext);

/// The special fields (see the module documentation).
const NAME_FIELD: &str = "otel.name";
const KIND_FIELD: &str = "otel.kind";
const STATUS_CODE_FIELD: &str = "otel.status_code";
const STATUS_MESSAGE_FIELDS: [&str; 2] = ["otel.status_message", "otel.status_description"];
/// The field `#[instrument(err)]` and the usual `error = %e` put the error in.
const ERROR_FIELD: &str = "error";

thread_local! {
    /// Contexts replaced by entered tracing spans, restored on exit (entries can nest).
    static ENTERED: RefCell<Vec<trace::Saved>> = const { RefCell::new(Vec::new()) };
    /// The last exported event's message text, cleared: the next one is formatted into its
    /// room rather than into a new allocation grown piece by piece.
    static MESSAGE_ROOM: Cell<String> = const { Cell::new(String::new()) };
    /// The last exported event's attribute list, cleared, for the next one's fields.
    static ATTRIBUTE_ROOM: Cell<Vec<KeyValue>> = const { Cell::new(Vec::new()) };
}

/// An attribute list with room for more than this many is not kept for the next event.
const MAX_KEPT_ATTRIBUTES: usize = 32;

/// A message grown past this is not kept for the next one.
const MAX_KEPT_MESSAGE_BYTES: usize = 1024;

/// An empty string to format an event's message or error into: the room the last one left.
fn message_room() -> String {
    MESSAGE_ROOM.try_with(Cell::take).unwrap_or_default()
}

/// An empty list for an event's attributes: the room the last one left.
fn attribute_room() -> Vec<KeyValue> {
    ATTRIBUTE_ROOM.try_with(Cell::take).unwrap_or_default()
}

/// Keeps the room of an exported event's `list` for the next one's attributes (an event
/// without any took none).
fn keep_attribute_room(mut list: Vec<KeyValue>) {
    if list.capacity() != 0 && list.capacity() <= MAX_KEPT_ATTRIBUTES {
        list.clear();
        let _ = ATTRIBUTE_ROOM.try_with(|room| room.set(list));
    }
}

/// Keeps `text`'s room for the next event's message.
fn keep_message_room(mut text: String) {
    if text.capacity() <= MAX_KEPT_MESSAGE_BYTES {
        text.clear();
        let _ = MESSAGE_ROOM.try_with(|room| room.set(text));
    }
}

/// A tracing span's counterpart, kept in its extensions: the one place this bridge touches the
/// span internals ([`Begun`]).
///
/// The identity is drawn when the span is first used (entered, given a child, an event or a
/// link, asked for its context, closed), not when it is created, so [`SpanExt::set_parent`] can still
/// choose the parent and the sampling decision follows it. Until then fields wait in `pending`.
struct BridgedSpan {
    begun: Option<Begun>,
    parent: SpanContext,
    name: Str,
    kind: SpanKind,
    created_unix_nanos: u64,
    pending: Vec<KeyValue>,
    pending_status: Status,
    /// The text given with `otel.status_message`, for a later `otel.status_code = "error"`.
    status_message: Option<String>,
    failed: bool,
    conventions: Conventions,
}

impl BridgedSpan {
    fn new(name: Str, parent: SpanContext) -> Self {
        BridgedSpan {
            begun: None,
            parent,
            name,
            kind: SpanKind::Internal,
            created_unix_nanos: crate::core::now_unix_nanos(),
            pending: Vec::new(),
            pending_status: Status::Unset,
            status_message: None,
            failed: false,
            conventions: Conventions::default(),
        }
    }

    /// Draws the identity (once) and replays what was recorded before.
    fn start(&mut self) -> &mut Begun {
        let BridgedSpan {
            begun,
            parent,
            name,
            kind,
            created_unix_nanos,
            pending,
            pending_status,
            ..
        } = self;
        begun.get_or_insert_with(|| {
            let mut begun = trace::begin(name.clone(), *kind, parent);
            if let Some(data) = &mut begun.data {
                data.start_unix_nanos = *created_unix_nanos;
            }
            for kv in pending.drain(..) {
                begun.set_attribute(&kv);
            }
            begun.set_status(std::mem::take(pending_status));
            begun
        })
    }

    fn set_parent(&mut self, parent: SpanContext) -> bool {
        if self.begun.is_some() {
            return false;
        }
        self.parent = parent;
        true
    }

    fn set_attribute(&mut self, kv: KeyValue) {
        match &mut self.begun {
            Some(begun) => begun.set_attribute(&kv),
            // Unique keys among a callsite's fields (32 at most in tracing) bound the list; the
            // span's limits apply on replay.
            None => push_attribute(&mut self.pending, &mut 0, u32::MAX, kv),
        }
    }

    fn set_status(&mut self, status: Status) {
        self.failed |= matches!(status, Status::Error(_));
        match &mut self.begun {
            Some(begun) => begun.set_status(status),
            None => self.pending_status.update(status),
        }
    }

    fn rename(&mut self, name: Str) {
        if let Some(begun) = &mut self.begun {
            begun.update_name(name.clone());
        }
        self.name = name;
    }

    fn set_kind(&mut self, kind: SpanKind) {
        if let Some(data) = self.begun.as_mut().and_then(|b| b.data.as_mut()) {
            data.kind = kind;
        }
        self.kind = kind;
    }

    fn add_event(&mut self, name: &'static str, attributes: Vec<KeyValue>) {
        self.start().add_event(Str::Static(name), attributes);
    }

    /// One field of the span, at creation or recorded later.
    fn record(&mut self, name: &'static str, value: Value) {
        match name {
            NAME_FIELD => self.rename(value.to_display_string().into()),
            KIND_FIELD => {
                if let Some(kind) = parse_kind(&value.to_display_string()) {
                    self.set_kind(kind);
                }
            }
            STATUS_CODE_FIELD => match value.to_display_string().to_ascii_lowercase().as_str() {
                "ok" => self.set_status(Status::Ok),
                "error" => {
                    let message = self.status_message.clone().unwrap_or_default();
                    self.set_status(Status::error(message));
                }
                _ => {}
            },
            _ if STATUS_MESSAGE_FIELDS.contains(&name) => {
                let message = value.to_display_string();
                self.status_message = Some(message.clone());
                self.set_status(Status::error(message));
            }
            _ => {
                self.conventions.capture(name, &value);
                self.set_attribute(KeyValue::new(Str::Static(name), value));
            }
        }
    }

    /// Ends the span: what its conventional fields call for, then the record to the pipeline.
    fn end(mut self) {
        self.start();
        let conventions = std::mem::take(&mut self.conventions);
        let elapsed_secs = conventions.started.map(|s| s.elapsed().as_secs_f64());
        if let (Some(system), Some(elapsed_secs)) = (conventions.db_system, elapsed_secs) {
            let mut operation = conventions.db_operation;
            let mut collection = conventions.db_collection;
            if let Some(text) = conventions.db_query_text {
                let summary = sql::summarize(&text);
                for kv in db::summary_attributes(&summary) {
                    let given = match kv.key.as_str() {
                        "db.operation.name" => operation.is_some(),
                        "db.collection.name" => collection.is_some(),
                        _ => conventions.db_summary_given,
                    };
                    if !given {
                        self.set_attribute(kv);
                    }
                }
                self.set_attribute(KeyValue::new("db.query.text", sql::sanitize(&text)));
                operation = operation.or(summary.operation);
                collection = collection.or(summary.collection);
            }
            let error_type = conventions
                .error_type
                .clone()
                .map(Str::from)
                .or_else(|| self.failed.then_some(Str::Static("_OTHER")));
            db::record_duration(
                elapsed_secs,
                system.into(),
                operation,
                collection,
                conventions.db_namespace,
                error_type,
            );
        }
        let server = self.kind == SpanKind::Server;
        if let (true, Some(method), Some(status_code), Some(elapsed_secs)) = (
            server,
            conventions.http_method,
            conventions.http_status_code,
            elapsed_secs,
        ) {
            let method = Str::Static(http::normalise_method(&method).unwrap_or("_OTHER"));
            let scheme = conventions
                .url_scheme
                .map_or(Str::Static("http"), Str::from);
            let failed = http::record_finished(
                elapsed_secs,
                method,
                scheme,
                conventions.http_route,
                status_code,
            );
            if let Some((error_type, status)) = failed {
                if conventions.error_type.is_none() {
                    self.set_attribute(KeyValue::new("error.type", error_type));
                }
                self.set_status(status);
            }
        }
        self.start().end();
    }
}

fn parse_kind(text: &str) -> Option<SpanKind> {
    Some(match text.to_ascii_lowercase().as_str() {
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        "internal" => SpanKind::Internal,
        _ => return None,
    })
}

/// The semantic-convention fields the helpers' histograms need, kept whether or not the span is
/// sampled (the histograms count every request).
#[derive(Default)]
struct Conventions {
    /// When the first such field arrived: the operation's start.
    started: Option<Instant>,
    http_method: Option<String>,
    http_route: Option<String>,
    http_status_code: Option<u16>,
    url_scheme: Option<String>,
    db_system: Option<String>,
    db_operation: Option<String>,
    db_collection: Option<String>,
    db_namespace: Option<String>,
    db_query_text: Option<String>,
    db_summary_given: bool,
    error_type: Option<String>,
}

impl Conventions {
    fn capture(&mut self, name: &str, value: &Value) {
        if !(name.starts_with("http.")
            || name.starts_with("db.")
            || name == "url.scheme"
            || name == "error.type")
        {
            return;
        }
        let text = || Some(value.to_display_string());
        match name {
            "http.request.method" => self.http_method = text(),
            "http.route" => self.http_route = text(),
            "http.response.status_code" => {
                self.http_status_code = match value {
                    Value::I64(code) => u16::try_from(*code).ok(),
                    other => other.to_display_string().parse().ok(),
                }
            }
            "url.scheme" => self.url_scheme = text(),
            "db.system.name" | "db.system" => self.db_system = text(),
            "db.operation.name" => self.db_operation = text(),
            "db.collection.name" => self.db_collection = text(),
            "db.namespace" => self.db_namespace = text(),
            "db.query.text" => self.db_query_text = text(),
            "db.query.summary" => self.db_summary_given = true,
            "error.type" => self.error_type = text(),
            _ => return,
        }
        self.started.get_or_insert_with(Instant::now);
    }
}

/// Hands each field, typed, to a closure: a span's to its [`BridgedSpan`] (an event's are
/// visited by its [`EventFields`], typed the same way).
struct Fields<F: FnMut(&'static str, Value)>(F);

impl<F: FnMut(&'static str, Value)> Visit for Fields<F> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        (self.0)(field.name(), Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        (self.0)(field.name(), Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        (self.0)(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        (self.0)(field.name(), Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        (self.0)(field.name(), Value::from(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        (self.0)(field.name(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        (self.0)(field.name(), Value::from(format!("{value:?}")));
    }
}

/// An event's fields: `message` is the body, `error` the error's text, the rest attributes.
#[derive(Default)]
struct EventFields {
    attributes: RecordAttributes,
    message: Option<String>,
    error: Option<String>,
    /// Where a `log` record turned into this event came from, when it is one.
    log_origin: Option<LogOrigin>,
}

/// What tracing-log's `LogTracer` (installed by tracing-subscriber's `init()`) puts in the
/// fields of the event it makes from a `log` record, whose own metadata only says `log`: the
/// record's target, module, file and line. Read back, so the record is exported as the `log`
/// bridge would export it (its target as the scope, `code.*` attributes) and this crate's own
/// records are recognised by their real target.
#[derive(Default)]
struct LogOrigin {
    target: Option<String>,
    module: Option<String>,
    file: Option<String>,
    line: Option<u32>,
}

/// The fields `LogTracer` names with the record's metadata.
const LOG_TARGET_FIELD: &str = "log.target";

impl LogOrigin {
    /// Whether the event was made by `LogTracer` from a `log` record: its callsites have the
    /// target `log` and carry the record's target as a field.
    fn of(metadata: &tracing_core::Metadata<'_>) -> Option<LogOrigin> {
        (metadata.target() == "log" && metadata.fields().field(LOG_TARGET_FIELD).is_some())
            .then(LogOrigin::default)
    }

    /// Takes `name` when it is one of the record's metadata fields.
    fn take(&mut self, name: &str, value: &Value) -> bool {
        let text = || Some(value.to_display_string());
        match name {
            LOG_TARGET_FIELD => self.target = text(),
            "log.module_path" => self.module = text(),
            "log.file" => self.file = text(),
            "log.line" => {
                self.line = match value {
                    Value::I64(line) => u32::try_from(*line).ok(),
                    _ => None,
                }
            }
            _ => return false,
        }
        true
    }
}

impl LogOrigin {
    /// The record's target as the scope and its code location, as the `log` bridge exports
    /// them; a module other than the target (a run-time text here) goes with the attributes.
    fn scope_and_code(self, attributes: &mut RecordAttributes) -> (Str, CodeLocation) {
        let target = self.target.unwrap_or_default();
        if let Some(module) = self.module.filter(|module| *module != target) {
            attributes.push("code.namespace", Value::from(module));
        }
        let code = CodeLocation {
            file: self.file.map(Str::from),
            line: self.line,
            namespace: None,
        };
        (Str::from(target), code)
    }
}

impl EventFields {
    /// Where the field `name` goes when it is kept as text: the message or the error (no
    /// `log` record's metadata field has either name).
    fn text_of(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "message" => Some(&mut self.message),
            ERROR_FIELD => Some(&mut self.error),
            _ => None,
        }
    }

    fn push(&mut self, name: &'static str, value: Value) {
        if let Some(origin) = &mut self.log_origin {
            if origin.take(name, &value) {
                return;
            }
        }
        if let Some(text) = self.text_of(name) {
            *text = Some(value.to_display_string());
            return;
        }
        if self.attributes.list.capacity() == 0 {
            self.attributes.list = attribute_room();
        }
        self.attributes.push(Str::Static(name), value)
    }
}

/// An event's fields as they are visited. The message and the error are kept as the text they
/// are formatted to, with no attribute value made of them first; every other field goes through
/// [`EventFields::push`], typed as [`Fields`] types it.
impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field.name(), Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field.name(), Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field.name(), Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match self.text_of(field.name()) {
            Some(text) => *text = Some(value.to_owned()),
            None => self.push(field.name(), Value::from(value.to_owned())),
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match self.text_of(field.name()) {
            Some(text) => *text = Some(value.to_string()),
            None => self.push(field.name(), Value::from(value.to_string())),
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match self.text_of(field.name()) {
            Some(text) => {
                let mut room = message_room();
                let _ = write!(room, "{value:?}");
                *text = Some(room);
            }
            None => self.push(field.name(), Value::from(format!("{value:?}"))),
        }
    }
}

fn log_level(level: &Level) -> log::Level {
    match *level {
        Level::TRACE => log::Level::Trace,
        Level::DEBUG => log::Level::Debug,
        Level::INFO => log::Level::Info,
        Level::WARN => log::Level::Warn,
        _ => log::Level::Error,
    }
}

impl<S> Layer<S> for PlainConnectLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !crate::core::is_installed() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent = if attributes.is_root() {
            SpanContext::none()
        } else {
            // The nearest bridged ancestor: spans created before the pipeline was installed,
            // or left out by this layer's filter, are skipped.
            span.scope()
                .skip(1)
                .find_map(|ancestor| {
                    let mut extensions = ancestor.extensions_mut();
                    let bridged = extensions.get_mut::<BridgedSpan>()?;
                    Some(bridged.start().context.clone())
                })
                .unwrap_or_else(trace::current)
        };
        let mut bridged = BridgedSpan::new(Str::Static(attributes.metadata().name()), parent);
        attributes.record(&mut Fields(|name, value| bridged.record(name, value)));
        span.extensions_mut().insert(bridged);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(bridged) = extensions.get_mut::<BridgedSpan>() {
            values.record(&mut Fields(|name, value| bridged.record(name, value)));
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(followed) = ctx.span(follows) else {
            return;
        };
        let linked = followed
            .extensions_mut()
            .get_mut::<BridgedSpan>()
            .map(|bridged| bridged.start().context.clone());
        let (Some(linked), Some(span)) = (linked, ctx.span(id)) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(bridged) = extensions.get_mut::<BridgedSpan>() {
            bridged.start().add_link(linked, Vec::new());
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let entered = match extensions.get_mut::<BridgedSpan>() {
            Some(bridged) => Some(trace::enter(&bridged.start().context)),
            None => extensions
                .get_mut::<PassThrough>()
                .map(|pass_through| trace::enter(&pass_through.0)),
        };
        if let Some(previous) = entered {
            let _ = ENTERED.try_with(|stack| stack.borrow_mut().push(previous));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let extensions = span.extensions();
        let entered =
            extensions.get::<BridgedSpan>().is_some() || extensions.get::<PassThrough>().is_some();
        drop(extensions);
        if entered {
            if let Ok(Some(mut previous)) = ENTERED.try_with(|stack| stack.borrow_mut().pop()) {
                trace::restore(&mut previous);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let removed = span.extensions_mut().remove::<BridgedSpan>();
        if let Some(bridged) = removed {
            bridged.end();
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let level = log_level(metadata.level());
        let target = metadata.target();
        let exported = is_exported(level, target, crate::core::log_floor());
        // Not exported, an event matters only to its span's status: at ERROR or with an error.
        let marks_span =
            level == log::Level::Error || metadata.fields().field(ERROR_FIELD).is_some();
        if !exported && !marks_span {
            return;
        }
        let span = ctx.event_span(event);
        let mut extensions = span.as_ref().map(|span| span.extensions_mut());
        let bridged = extensions
            .as_mut()
            .and_then(|extensions| extensions.get_mut::<BridgedSpan>());
        if !exported && bridged.is_none() {
            return;
        }
        let mut fields = EventFields {
            log_origin: LogOrigin::of(metadata),
            ..EventFields::default()
        };
        event.record(&mut fields);
        let origin = fields.log_origin.take();
        let record_target = origin.as_ref().and_then(|o| o.target.as_deref());
        // A `log` record is this crate's own (never exported) by the target it was logged with.
        let exported = exported && !record_target.is_some_and(is_own_target);
        let error_text = fields.error.take();
        let context = match bridged {
            Some(bridged) => {
                if let Some(error) = &error_text {
                    bridged.add_event(
                        "exception",
                        vec![KeyValue::new("exception.message", error.clone())],
                    );
                }
                if level == log::Level::Error || (error_text.is_some() && fields.message.is_none())
                {
                    let description = error_text.clone().or_else(|| fields.message.clone());
                    bridged.set_status(Status::error(description.unwrap_or_default()));
                }
                bridged.start().context.ids()
            }
            None => trace::current_ids(),
        };
        drop(extensions);
        if !exported {
            return;
        }
        if let Some(error) = &error_text {
            fields
                .attributes
                .push("exception.message", Value::from(error.clone()));
        }
        let body = fields.message.or(error_text).unwrap_or_default();
        let (scope, code, site) = match origin {
            Some(origin) => {
                let (scope, code) = origin.scope_and_code(&mut fields.attributes);
                (scope, code, None)
            }
            None => (
                Str::Static(target),
                CodeLocation {
                    file: metadata.file().map(Str::Static),
                    line: metadata.line(),
                    namespace: metadata.module_path().filter(|module| *module != target),
                },
                Some(std::ptr::from_ref(metadata).addr()),
            ),
        };
        let record = Bridged {
            level,
            body: Cow::Owned(body),
            scope,
            code,
            attributes: fields.attributes,
            site,
        };
        record.submit(context);
        let Bridged {
            body, attributes, ..
        } = record;
        if let Cow::Owned(body) = body {
            keep_message_room(body);
        }
        keep_attribute_room(attributes.list);
    }
}
