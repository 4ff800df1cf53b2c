//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`; not a public API).

pub use crate::instrument::sql::{sanitize, summarize};

/// `00-<trace id>-<span id>-<flags>` for a context, as sent.
pub fn format_traceparent(context: &crate::trace::SpanContext) -> String {
    crate::trace::propagation::format_traceparent(context)
}

/// `tracestate` header values combined and validated, as extraction does.
pub fn parse_tracestate<'a>(
    headers: impl IntoIterator<Item = &'a str>,
) -> Option<std::sync::Arc<str>> {
    crate::trace::propagation::parse_tracestate(headers)
}

use crate::attributes::{KeyValue, Str, Value};
use crate::core::wire::OneOf;
use crate::export::{encode::Encoder, transport, Signal};
use crate::trace::{Event, SpanData, SpanId, SpanKind, Status, TraceId};

/// Classifies an endpoint's response the way the exporter does; returns a description.
pub fn classify_response(
    signal: u8,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
) -> String {
    let signal = match signal % 3 {
        0 => Signal::Traces,
        1 => Signal::Metrics,
        _ => Signal::Logs,
    };
    let retry_after = retry_after
        .and_then(|v| crate::export::retry::parse_retry_after(v, std::time::SystemTime::now()));
    let response = transport::Response {
        status,
        retry_after,
        content_type: None,
        body: Ok(body.to_vec()),
    };
    format!(
        "{:?}",
        transport::classify(signal, response, &Default::default())
    )
}

/// Builds a span from arbitrary parts, encodes it as the exporter would, and returns the bytes.
pub fn encode_span(
    name: &str,
    attribute_keys: &[&str],
    text: &str,
    number: i64,
    float: f64,
) -> Vec<u8> {
    let attributes = attribute_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let value = match i % 4 {
                0 => Value::from(text.to_owned()),
                1 => Value::I64(number),
                2 => Value::F64(float),
                _ => Value::StrArray(vec![Str::from(text.to_owned()); i % 5]),
            };
            KeyValue::new(k.to_string(), value)
        })
        .collect();
    let span = SpanData {
        trace_id: TraceId(number as u128 | 1),
        span_id: SpanId(number as u64 | 1),
        parent_span_id: SpanId(0),
        parent_is_remote: false,
        flags: 1,
        trace_state: None,
        name: Str::from(name.to_owned()),
        kind: SpanKind::Server,
        start_unix_nanos: number as u64,
        end_unix_nanos: (number as u64).saturating_add(1),
        attributes,
        dropped_attributes: 0,
        events: vec![Event {
            name: Str::from(text.to_owned()),
            time_unix_nanos: 1,
            attributes: Vec::new(),
            dropped_attributes: 0,
        }],
        dropped_events: 0,
        links: Vec::new(),
        dropped_links: 0,
        status: Status::Error(Str::from(text.to_owned())),
    };
    // As at hand-off: the span encoded on its own (its literals kept as literals), then as the
    // exporter writes it, in its request.
    let literals = [
        (
            LITERAL_KEYS[0],
            OneOf::Str(LITERAL_TEXTS[number.unsigned_abs() as usize % 3]),
        ),
        (LITERAL_KEYS[1], OneOf::Int(number)),
        (LITERAL_KEYS[2], OneOf::Double(float)),
        (LITERAL_KEYS[3], OneOf::Bool(number % 2 == 0)),
    ];
    let mut record = Vec::new();
    crate::trace::span_entry(&mut record, &span, &literals);
    let entry = crate::trace::exported_spans(&record);
    Encoder::new(&[KeyValue::new("service.name", "fuzz")]).traces(&entry)
}

/// The keys of the literal attributes [`encode_span`] adds after the others, in order: each with
/// a character no key split from the fuzz input holds, so none of those replaces one. Their
/// values: one of three texts (by `number`), `number`, `float`, whether `number` is even.
pub const LITERAL_KEYS: [&str; 4] = ["\u{1}text", "\u{1}int", "\u{1}float", "\u{1}bool"];
const LITERAL_TEXTS: [&str; 3] = ["", "GET", "é ✓ 𝄞"];
