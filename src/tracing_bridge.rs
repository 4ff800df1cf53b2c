//! The `tracing` bridge (feature `tracing`): a [`tracing_subscriber::Layer`] that turns tracing
//! spans into this crate's spans — fields become attributes, the parent comes from the tracing
//! span tree — and tracing events into log records correlated with the current span.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//! let subscriber = tracing_subscriber::registry().with(plain_connect::tracing_bridge::layer());
//! let _guard = tracing_core::dispatcher::set_default(&subscriber.into());
//! // tracing::info_span!("checkout", cart.items = 3).in_scope(|| tracing::info!("paid"));
//! ```
//!
//! While a tracing span is entered, it is also this crate's current span on that thread, so
//! `log` records and spans started with [`crate::trace::span`] inside it nest under it.

use crate::attributes::{KeyValue, Str, Value};
use crate::logs::{CodeLocation, LogRecordData};
use crate::trace::{self, push_attribute, Begun, SpanKind};
use std::cell::RefCell;
use std::fmt;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The layer; add it to a `tracing_subscriber::registry()`.
pub fn layer() -> PlainConnectLayer {
    PlainConnectLayer { _private: () }
}

/// See [`layer`].
pub struct PlainConnectLayer {
    _private: (),
}

/// What the layer keeps in each tracing span's extensions.
struct Bridged {
    begun: Begun,
}

thread_local! {
    /// Contexts replaced by entered tracing spans, restored on exit (entries can nest).
    static ENTERED: RefCell<Vec<trace::Saved>> = const { RefCell::new(Vec::new()) };
}

/// Collects fields as typed attributes; `message` becomes the body for events.
struct Fields<'a> {
    attributes: &'a mut Vec<KeyValue>,
    dropped: &'a mut u32,
    max_count: u32,
    max_chars: Option<u32>,
    message: Option<String>,
}

impl Fields<'_> {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(value.to_display_string());
            return;
        }
        let kv = KeyValue::new(Str::Static(field.name()), value);
        push_attribute(
            self.attributes,
            self.dropped,
            self.max_count,
            self.max_chars,
            kv,
        );
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::from(value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::from(format!("{value:?}")));
    }
}

fn severity(level: &Level) -> (u8, &'static str, log::Level) {
    match *level {
        Level::TRACE => (1, "TRACE", log::Level::Trace),
        Level::DEBUG => (5, "DEBUG", log::Level::Debug),
        Level::INFO => (9, "INFO", log::Level::Info),
        Level::WARN => (13, "WARN", log::Level::Warn),
        _ => (17, "ERROR", log::Level::Error),
    }
}

fn kind_of(attributes: &Attributes<'_>) -> SpanKind {
    // `otel.kind = "server"` is the convention tracing-opentelemetry users already write.
    struct KindField(Option<SpanKind>);
    impl Visit for KindField {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "otel.kind" {
                self.0 = match value.to_ascii_lowercase().as_str() {
                    "server" => Some(SpanKind::Server),
                    "client" => Some(SpanKind::Client),
                    "producer" => Some(SpanKind::Producer),
                    "consumer" => Some(SpanKind::Consumer),
                    _ => Some(SpanKind::Internal),
                };
            }
        }
        fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
    }
    let mut kind = KindField(None);
    attributes.record(&mut kind);
    kind.0.unwrap_or_default()
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
        let parent = span
            .parent()
            .and_then(|p| {
                p.extensions()
                    .get::<Bridged>()
                    .map(|b| b.begun.context.clone())
            })
            .unwrap_or_else(trace::current);
        let name = Str::Static(attributes.metadata().name());
        let mut begun = trace::begin(name, kind_of(attributes), &parent);
        if let Some(data) = &mut begun.data {
            let mut fields = Fields {
                attributes: &mut data.attributes,
                dropped: &mut data.dropped_attributes,
                max_count: begun.limits.max_attributes,
                max_chars: begun.limits.max_value_chars,
                message: None,
            };
            attributes.record(&mut fields);
            data.attributes.retain(|kv| kv.key.as_str() != "otel.kind");
        }
        span.extensions_mut().insert(Bridged { begun });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        let limits = bridged.begun.limits;
        if let Some(data) = &mut bridged.begun.data {
            let mut fields = Fields {
                attributes: &mut data.attributes,
                dropped: &mut data.dropped_attributes,
                max_count: limits.max_attributes,
                max_chars: limits.max_value_chars,
                message: None,
            };
            values.record(&mut fields);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let context = span
            .extensions()
            .get::<Bridged>()
            .map(|b| b.begun.context.clone());
        if let Some(context) = context {
            let previous = trace::enter(&context);
            let _ = ENTERED.try_with(|stack| stack.borrow_mut().push(previous));
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let bridged = span.extensions().get::<Bridged>().is_some();
        if bridged {
            if let Ok(Some(mut previous)) = ENTERED.try_with(|stack| stack.borrow_mut().pop()) {
                trace::restore(&mut previous);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let removed = span.extensions_mut().remove::<Bridged>();
        let Some(bridged) = removed else { return };
        if let Some(mut data) = bridged.begun.data {
            data.end_unix_nanos = crate::core::now_unix_nanos().max(data.start_unix_nanos);
            trace::submit(&data);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let (severity_number, severity_text, level) = severity(metadata.level());
        let Some(floor) = crate::core::log_floor() else {
            return;
        };
        let target = metadata.target();
        let own = target
            .strip_prefix("plain_connect")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"));
        if level > floor || own || crate::core::is_exporter_thread() {
            return;
        }
        let context = ctx
            .event_span(event)
            .and_then(|s| {
                s.extensions()
                    .get::<Bridged>()
                    .map(|b| b.begun.context.clone())
            })
            .unwrap_or_else(trace::current);
        let mut attributes = Vec::new();
        let mut dropped = 0;
        let mut fields = Fields {
            attributes: &mut attributes,
            dropped: &mut dropped,
            max_count: 128,
            max_chars: None,
            message: None,
        };
        event.record(&mut fields);
        let body = fields.message.take().unwrap_or_default();
        let now = crate::core::now_unix_nanos();
        let correlated = context.is_valid();
        crate::logs::submit(&LogRecordData {
            time_unix_nanos: now,
            observed_unix_nanos: now,
            severity_number,
            severity_text,
            body: body.into(),
            scope: Str::Static(target),
            code: CodeLocation {
                file: metadata.file().map(Str::Static),
                line: metadata.line(),
                namespace: None,
            },
            attributes,
            dropped_attributes: dropped,
            trace_id: if correlated {
                context.trace_id()
            } else {
                Default::default()
            },
            span_id: if correlated {
                context.span_id()
            } else {
                Default::default()
            },
            flags: if correlated { context.flags() } else { 0 },
        });
    }
}
