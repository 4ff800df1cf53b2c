//! A finished span → OTLP `Span` bytes (at hand-off, on the recording thread), and back again
//! for in-process span consumers (on the exporter thread, only while one is registered).

use super::context::SpanContext;
use super::id::{SpanId, TraceId};
use super::span::{Event, Link, SpanData, SpanKind, Status};
use crate::attributes::{KeyValue, Str, Value};
use crate::core::wire::{key_values, Writer};
use crate::proto::common::v1::{any_value, AnyValue};
use crate::proto::trace::v1 as pt;
use prost::Message;

/// `Span.flags` bits: the low 8 are the W3C trace flags; these say whether the parent is remote.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

/// The field of `ScopeSpans` that holds its spans.
pub(crate) const SCOPE_SPANS_SPAN_FIELD: u32 = 2;

/// `Span.kind` (`SpanKind` enum numbers).
fn span_kind(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `Span.flags` and `Link.flags`: the W3C flags plus whether the parent (or linked) span is remote.
fn remote_flags(flags: u8, is_remote: bool) -> u32 {
    u32::from(flags) | SPAN_FLAGS_HAS_IS_REMOTE | if is_remote { SPAN_FLAGS_IS_REMOTE } else { 0 }
}

/// Appends `s` as one `ScopeSpans.spans` entry (tag, length, `Span`), as prost writes it.
pub(crate) fn span_entry(buf: &mut Vec<u8>, s: &SpanData) {
    // A rough lower bound of the span's length (fixed fields about 70 bytes, an attribute at
    // least 16, an event 32): from 128 bytes its length takes two. A wrong guess costs a shift.
    let lower_bound = 70 + s.name.as_str().len() + 16 * s.attributes.len() + 32 * s.events.len();
    let length_bytes = if lower_bound >= 0x80 { 2 } else { 1 };
    Writer::new(buf).message_sized(SCOPE_SPANS_SPAN_FIELD, length_bytes, |w| span(w, s));
}

/// A `Span`, fields in tag order (as prost writes them).
fn span(w: &mut Writer<'_>, s: &SpanData) {
    // Fields 1 and 2, both always 16 and 8 bytes: written in one go.
    let mut ids = [0u8; 28];
    ids[0] = 1 << 3 | 2;
    ids[1] = 16;
    ids[2..18].copy_from_slice(&s.trace_id.to_bytes());
    ids[18] = 2 << 3 | 2;
    ids[19] = 8;
    ids[20..].copy_from_slice(&s.span_id.to_bytes());
    w.raw(&ids);
    w.str(3, s.trace_state.as_deref().unwrap_or_default());
    if s.parent_span_id.is_valid() {
        w.bytes(4, &s.parent_span_id.to_bytes());
    }
    w.str(5, s.name.as_str());
    w.uint(6, span_kind(s.kind));
    w.fixed64(7, s.start_unix_nanos);
    w.fixed64(8, s.end_unix_nanos);
    key_values(w, 9, &s.attributes);
    w.uint(10, u64::from(s.dropped_attributes));
    for e in &s.events {
        w.message(11, |m| {
            m.fixed64(1, e.time_unix_nanos);
            m.str(2, e.name.as_str());
            key_values(m, 3, &e.attributes);
            m.uint(4, u64::from(e.dropped_attributes));
        });
    }
    w.uint(12, u64::from(s.dropped_events));
    for l in &s.links {
        w.message(13, |m| {
            m.bytes(1, &l.context.trace_id().to_bytes());
            m.bytes(2, &l.context.span_id().to_bytes());
            m.str(3, l.context.trace_state().unwrap_or_default());
            key_values(m, 4, &l.attributes);
            m.fixed32(6, remote_flags(l.context.flags(), l.context.is_remote()));
        });
    }
    w.uint(14, u64::from(s.dropped_links));
    // `Status`: message (2), then code (3: 1 ok, 2 error).
    match &s.status {
        Status::Unset => {}
        Status::Ok => w.message(15, |m| m.uint(3, 1)),
        Status::Error(description) => w.message(15, |m| {
            m.str(2, description.as_str());
            m.uint(3, 2);
        }),
    }
    w.fixed32(16, remote_flags(s.flags, s.parent_is_remote));
}

/// The spans back from the `Span` message bodies [`span_entry`] wrote. A body that does not
/// decode (never ours) is skipped.
pub(crate) fn decode_spans<'b>(bodies: impl Iterator<Item = &'b [u8]>) -> Vec<SpanData> {
    bodies
        .filter_map(|body| pt::Span::decode(body).ok())
        .map(from_proto)
        .collect()
}

fn trace_id(bytes: &[u8]) -> TraceId {
    bytes
        .try_into()
        .map_or(TraceId::INVALID, TraceId::from_bytes)
}

fn span_id(bytes: &[u8]) -> SpanId {
    bytes.try_into().map_or(SpanId::INVALID, SpanId::from_bytes)
}

fn trace_state(s: String) -> Option<std::sync::Arc<str>> {
    (!s.is_empty()).then(|| s.into())
}

fn from_proto(s: pt::Span) -> SpanData {
    SpanData {
        trace_id: trace_id(&s.trace_id),
        span_id: span_id(&s.span_id),
        parent_span_id: span_id(&s.parent_span_id),
        parent_is_remote: s.flags & SPAN_FLAGS_IS_REMOTE != 0,
        flags: s.flags as u8,
        trace_state: trace_state(s.trace_state),
        name: Str::from(s.name),
        kind: match s.kind {
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Internal,
        },
        start_unix_nanos: s.start_time_unix_nano,
        end_unix_nanos: s.end_time_unix_nano,
        attributes: key_values_from_proto(s.attributes),
        dropped_attributes: s.dropped_attributes_count,
        events: s
            .events
            .into_iter()
            .map(|e| Event {
                name: Str::from(e.name),
                time_unix_nanos: e.time_unix_nano,
                attributes: key_values_from_proto(e.attributes),
                dropped_attributes: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events: s.dropped_events_count,
        links: s
            .links
            .into_iter()
            .map(|l| Link {
                context: SpanContext {
                    trace_id: trace_id(&l.trace_id),
                    span_id: span_id(&l.span_id),
                    flags: l.flags as u8,
                    is_remote: l.flags & SPAN_FLAGS_IS_REMOTE != 0,
                    trace_state: trace_state(l.trace_state),
                },
                attributes: key_values_from_proto(l.attributes),
            })
            .collect(),
        dropped_links: s.dropped_links_count,
        status: match s.status {
            Some(pt::Status { code: 1, .. }) => Status::Ok,
            Some(pt::Status { code: 2, message }) => Status::Error(Str::from(message)),
            _ => Status::Unset,
        },
    }
}

fn key_values_from_proto(attributes: Vec<crate::proto::common::v1::KeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|kv| KeyValue::new(kv.key, value_from_proto(kv.value)))
        .collect()
}

/// The value as we would have recorded it; an empty or unknown `AnyValue` becomes `""`.
fn value_from_proto(value: Option<AnyValue>) -> Value {
    use any_value::Value as V;
    let scalars = |values: Vec<AnyValue>| values.into_iter().filter_map(|v| v.value);
    match value.and_then(|v| v.value) {
        Some(V::StringValue(s)) => Value::Str(Str::from(s)),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::I64(i),
        Some(V::DoubleValue(f)) => Value::F64(f),
        Some(V::ArrayValue(array)) => {
            let members: Vec<V> = scalars(array.values).collect();
            match members.first() {
                Some(V::BoolValue(_)) => Value::BoolArray(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::BoolValue(b) => Some(b),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(V::IntValue(_)) => Value::I64Array(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::IntValue(i) => Some(i),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(V::DoubleValue(_)) => Value::F64Array(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::DoubleValue(f) => Some(f),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Value::StrArray(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::StringValue(s) => Some(Str::from(s)),
                            _ => None,
                        })
                        .collect(),
                ),
            }
        }
        _ => Value::Str(Str::Static("")),
    }
}
