//! Our plain Rust values → OTLP protobuf bytes.
//!
//! Spans and log records, the high-volume signals, are written straight to the wire
//! ([`super::wire`]); metrics, a few points a minute, go through the prost types.

use super::wire::{OneOf, Writer};
use crate::attributes::{KeyValue, Str, Value};
use crate::logs::LogRecordData;
use crate::metrics::{Exemplar, MetricData, MetricPoints, Number, NumberPoint, Temporality};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{self as pc, any_value, AnyValue, ArrayValue, InstrumentationScope};
use crate::proto::metrics::v1 as pm;
use crate::proto::resource::v1::Resource;
use crate::trace::{SpanData, SpanKind, Status};
use prost::Message;

/// `Span.flags` bits: the low 8 are the W3C trace flags; these say whether the parent is remote.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

/// Encodes batches for one service: the resource and scope are built (and encoded) once.
pub(crate) struct Encoder {
    resource: Resource,
    scope: InstrumentationScope,
    encoded_resource: Vec<u8>,
    encoded_scope: Vec<u8>,
}

/// Bytes a span or log record takes on the wire, about: sizes the buffer up front.
const TYPICAL_RECORD_BYTES: usize = 192;

impl Encoder {
    pub(crate) fn new(resource_attributes: &[KeyValue]) -> Self {
        let resource = Resource {
            attributes: resource_attributes.iter().map(key_value).collect(),
            dropped_attributes_count: 0,
            entity_refs: Vec::new(),
        };
        let scope = InstrumentationScope {
            name: env!("CARGO_PKG_NAME").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
        };
        Encoder {
            encoded_resource: resource.encode_to_vec(),
            encoded_scope: scope.encode_to_vec(),
            resource,
            scope,
        }
    }

    /// An `ExportTraceServiceRequest`.
    pub(crate) fn traces(&self, spans: &[SpanData]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256 + spans.len() * TYPICAL_RECORD_BYTES);
        Writer::new(&mut buf).message(1, |resource_spans| {
            resource_spans.encoded_message(1, &self.encoded_resource);
            resource_spans.message(2, |scope_spans| {
                scope_spans.encoded_message(1, &self.encoded_scope);
                for s in spans {
                    scope_spans.message(2, |w| span(w, s));
                }
            });
        });
        buf
    }

    /// An `ExportLogsServiceRequest`. Records are grouped into one `ScopeLogs` per `log`
    /// target, in order of first appearance.
    pub(crate) fn logs(&self, records: &[LogRecordData]) -> Vec<u8> {
        let mut scopes: Vec<&Str> = Vec::new();
        let mut scope_of = Vec::with_capacity(records.len());
        for record in records {
            let index = match scopes.iter().position(|s| **s == record.scope) {
                Some(i) => i,
                None => {
                    scopes.push(&record.scope);
                    scopes.len() - 1
                }
            };
            scope_of.push(index);
        }
        let mut buf = Vec::with_capacity(256 + records.len() * TYPICAL_RECORD_BYTES);
        Writer::new(&mut buf).message(1, |resource_logs| {
            resource_logs.encoded_message(1, &self.encoded_resource);
            for (index, scope) in scopes.iter().enumerate() {
                resource_logs.message(2, |scope_logs| {
                    scope_logs.message(1, |w| w.str(1, scope.as_str()));
                    let in_scope = records.iter().zip(&scope_of).filter(|(_, s)| **s == index);
                    for (record, _) in in_scope {
                        scope_logs.message(2, |w| log_record(w, record));
                    }
                });
            }
        });
        buf
    }

    pub(crate) fn metrics(&self, metrics: &[MetricData]) -> Vec<u8> {
        ExportMetricsServiceRequest {
            resource_metrics: vec![pm::ResourceMetrics {
                resource: Some(self.resource.clone()),
                scope_metrics: vec![pm::ScopeMetrics {
                    scope: Some(self.scope.clone()),
                    metrics: metrics.iter().map(metric).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }
}

fn string(s: &Str) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.to_string())),
    }
}

fn array(values: Vec<AnyValue>) -> any_value::Value {
    any_value::Value::ArrayValue(ArrayValue { values })
}

fn any_value(value: &Value) -> AnyValue {
    use any_value::Value as V;
    let scalar = |v| AnyValue { value: Some(v) };
    let value = match value {
        Value::Str(s) => V::StringValue(s.to_string()),
        Value::Bool(b) => V::BoolValue(*b),
        Value::I64(i) => V::IntValue(*i),
        Value::F64(f) => V::DoubleValue(*f),
        Value::StrArray(v) => array(v.iter().map(string).collect()),
        Value::BoolArray(v) => array(v.iter().map(|b| scalar(V::BoolValue(*b))).collect()),
        Value::I64Array(v) => array(v.iter().map(|i| scalar(V::IntValue(*i))).collect()),
        Value::F64Array(v) => array(v.iter().map(|f| scalar(V::DoubleValue(*f))).collect()),
    };
    AnyValue { value: Some(value) }
}

pub(crate) fn key_value(kv: &KeyValue) -> pc::KeyValue {
    pc::KeyValue {
        key: kv.key.to_string(),
        value: Some(any_value(&kv.value)),
        ..Default::default()
    }
}

fn any_value_wire(w: &mut Writer<'_>, value: &Value) {
    let array = |w: &mut Writer<'_>, members: &mut dyn Iterator<Item = OneOf<'_>>| {
        w.message(5, |array| {
            for member in members {
                array.message(1, |v| v.oneof(member_field(member), member));
            }
        });
    };
    match value {
        Value::Str(s) => w.oneof(1, OneOf::Str(s.as_str())),
        Value::Bool(b) => w.oneof(2, OneOf::Bool(*b)),
        Value::I64(i) => w.oneof(3, OneOf::Int(*i)),
        Value::F64(f) => w.oneof(4, OneOf::Double(*f)),
        Value::StrArray(v) => array(w, &mut v.iter().map(|s| OneOf::Str(s.as_str()))),
        Value::BoolArray(v) => array(w, &mut v.iter().map(|b| OneOf::Bool(*b))),
        Value::I64Array(v) => array(w, &mut v.iter().map(|i| OneOf::Int(*i))),
        Value::F64Array(v) => array(w, &mut v.iter().map(|f| OneOf::Double(*f))),
    }
}

/// The `AnyValue` field number of a scalar member.
fn member_field(member: OneOf<'_>) -> u32 {
    match member {
        OneOf::Str(_) => 1,
        OneOf::Bool(_) => 2,
        OneOf::Int(_) => 3,
        OneOf::Double(_) => 4,
    }
}

/// `KeyValue` fields 1 (key) and 2 (value).
fn key_value_wire(w: &mut Writer<'_>, kv: &KeyValue) {
    w.str(1, kv.key.as_str());
    w.message(2, |v| any_value_wire(v, &kv.value));
}

fn key_values_wire(w: &mut Writer<'_>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        w.message(field, |m| key_value_wire(m, kv));
    }
}

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

/// A `Span`, fields in tag order (as prost writes them).
fn span(w: &mut Writer<'_>, s: &SpanData) {
    w.bytes(1, &s.trace_id.to_bytes());
    w.bytes(2, &s.span_id.to_bytes());
    w.str(3, s.trace_state.as_deref().unwrap_or_default());
    if s.parent_span_id.is_valid() {
        w.bytes(4, &s.parent_span_id.to_bytes());
    }
    w.str(5, s.name.as_str());
    w.uint(6, span_kind(s.kind));
    w.fixed64(7, s.start_unix_nanos);
    w.fixed64(8, s.end_unix_nanos);
    key_values_wire(w, 9, &s.attributes);
    w.uint(10, u64::from(s.dropped_attributes));
    for e in &s.events {
        w.message(11, |m| {
            m.fixed64(1, e.time_unix_nanos);
            m.str(2, e.name.as_str());
            key_values_wire(m, 3, &e.attributes);
            m.uint(4, u64::from(e.dropped_attributes));
        });
    }
    w.uint(12, u64::from(s.dropped_events));
    for l in &s.links {
        w.message(13, |m| {
            m.bytes(1, &l.context.trace_id().to_bytes());
            m.bytes(2, &l.context.span_id().to_bytes());
            m.str(3, l.context.trace_state().unwrap_or_default());
            key_values_wire(m, 4, &l.attributes);
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

/// A `LogRecord`, fields in tag order (as prost writes them).
fn log_record(w: &mut Writer<'_>, r: &LogRecordData) {
    let correlated = r.trace_id.is_valid() && r.span_id.is_valid();
    w.fixed64(1, r.time_unix_nanos);
    w.uint(2, u64::from(r.severity_number));
    w.str(3, r.severity_text);
    w.message(5, |body| body.oneof(1, OneOf::Str(&r.body)));
    for kv in r.all_attributes() {
        w.message(6, |m| key_value_wire(m, &kv));
    }
    w.uint(7, u64::from(r.dropped_attributes));
    if correlated {
        w.fixed32(8, u32::from(r.flags));
        w.bytes(9, &r.trace_id.to_bytes());
        w.bytes(10, &r.span_id.to_bytes());
    }
    w.fixed64(11, r.observed_unix_nanos);
}

fn temporality(t: Temporality) -> i32 {
    match t {
        Temporality::Delta => pm::AggregationTemporality::Delta as i32,
        Temporality::Cumulative => pm::AggregationTemporality::Cumulative as i32,
    }
}

fn exemplars(kept: &[Exemplar]) -> Vec<pm::Exemplar> {
    kept.iter()
        .map(|e| pm::Exemplar {
            filtered_attributes: e.filtered_attributes.iter().map(key_value).collect(),
            time_unix_nano: e.time_unix_nanos,
            span_id: e.span_id.map(|s| s.to_bytes().to_vec()).unwrap_or_default(),
            trace_id: e
                .trace_id
                .map(|t| t.to_bytes().to_vec())
                .unwrap_or_default(),
            value: Some(match e.value {
                Number::I64(i) => pm::exemplar::Value::AsInt(i),
                Number::F64(f) => pm::exemplar::Value::AsDouble(f),
            }),
        })
        .collect()
}

fn number_point(p: &NumberPoint) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: p.attributes.iter().map(key_value).collect(),
        start_time_unix_nano: p.start_unix_nanos,
        time_unix_nano: p.time_unix_nanos,
        exemplars: exemplars(&p.exemplars),
        flags: 0,
        value: Some(match p.value {
            Number::I64(i) => pm::number_data_point::Value::AsInt(i),
            Number::F64(f) => pm::number_data_point::Value::AsDouble(f),
        }),
    }
}

fn metric(m: &MetricData) -> pm::Metric {
    let data = match &m.points {
        MetricPoints::Histogram {
            temporality: t,
            points,
        } => pm::metric::Data::Histogram(pm::Histogram {
            aggregation_temporality: temporality(*t),
            data_points: points
                .iter()
                .map(|p| pm::HistogramDataPoint {
                    attributes: p.attributes.iter().map(key_value).collect(),
                    start_time_unix_nano: p.start_unix_nanos,
                    time_unix_nano: p.time_unix_nanos,
                    count: p.count,
                    sum: Some(p.sum),
                    bucket_counts: p.bucket_counts.clone(),
                    explicit_bounds: p.bounds.to_vec(),
                    exemplars: exemplars(&p.exemplars),
                    flags: 0,
                    min: (p.count > 0).then_some(p.min),
                    max: (p.count > 0).then_some(p.max),
                })
                .collect(),
        }),
        MetricPoints::Sum {
            temporality: t,
            monotonic,
            points,
        } => pm::metric::Data::Sum(pm::Sum {
            data_points: points.iter().map(number_point).collect(),
            aggregation_temporality: temporality(*t),
            is_monotonic: *monotonic,
        }),
        MetricPoints::Gauge(points) => pm::metric::Data::Gauge(pm::Gauge {
            data_points: points.iter().map(number_point).collect(),
        }),
    };
    pm::Metric {
        name: m.name.to_string(),
        description: m.description.to_string(),
        unit: m.unit.to_string(),
        metadata: Vec::new(),
        data: Some(data),
    }
}

#[cfg(test)]
mod tests {
    //! The prost builders this module used before it wrote the wire format itself, kept as
    //! the oracle: the bytes must be exactly what prost writes for the same values.
    use super::*;
    use crate::attributes::Str;
    use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
    use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
    use crate::proto::logs::v1 as pl;
    use crate::proto::trace::v1 as pt;
    use crate::trace::{Event, Link, SpanContext, SpanId, TraceId};

    fn span_kind(kind: SpanKind) -> pt::span::SpanKind {
        match kind {
            SpanKind::Internal => pt::span::SpanKind::Internal,
            SpanKind::Server => pt::span::SpanKind::Server,
            SpanKind::Client => pt::span::SpanKind::Client,
            SpanKind::Producer => pt::span::SpanKind::Producer,
            SpanKind::Consumer => pt::span::SpanKind::Consumer,
        }
    }

    fn status(status: &Status) -> Option<pt::Status> {
        use pt::status::StatusCode;
        match status {
            Status::Unset => None,
            Status::Ok => Some(pt::Status {
                message: String::new(),
                code: StatusCode::Ok as i32,
            }),
            Status::Error(description) => Some(pt::Status {
                message: description.to_string(),
                code: StatusCode::Error as i32,
            }),
        }
    }

    fn span(s: &SpanData) -> pt::Span {
        let remote_bits = SPAN_FLAGS_HAS_IS_REMOTE
            | if s.parent_is_remote {
                SPAN_FLAGS_IS_REMOTE
            } else {
                0
            };
        pt::Span {
            trace_id: s.trace_id.to_bytes().to_vec(),
            span_id: s.span_id.to_bytes().to_vec(),
            trace_state: s.trace_state.as_deref().unwrap_or_default().to_owned(),
            parent_span_id: if s.parent_span_id.is_valid() {
                s.parent_span_id.to_bytes().to_vec()
            } else {
                Vec::new()
            },
            flags: u32::from(s.flags) | remote_bits,
            name: s.name.to_string(),
            kind: span_kind(s.kind) as i32,
            start_time_unix_nano: s.start_unix_nanos,
            end_time_unix_nano: s.end_unix_nanos,
            attributes: s.attributes.iter().map(key_value).collect(),
            dropped_attributes_count: s.dropped_attributes,
            events: s
                .events
                .iter()
                .map(|e| pt::span::Event {
                    time_unix_nano: e.time_unix_nanos,
                    name: e.name.to_string(),
                    attributes: e.attributes.iter().map(key_value).collect(),
                    dropped_attributes_count: e.dropped_attributes,
                })
                .collect(),
            dropped_events_count: s.dropped_events,
            links: s
                .links
                .iter()
                .map(|l| pt::span::Link {
                    trace_id: l.context.trace_id().to_bytes().to_vec(),
                    span_id: l.context.span_id().to_bytes().to_vec(),
                    trace_state: l.context.trace_state().unwrap_or_default().to_owned(),
                    attributes: l.attributes.iter().map(key_value).collect(),
                    dropped_attributes_count: 0,
                    flags: u32::from(l.context.flags())
                        | SPAN_FLAGS_HAS_IS_REMOTE
                        | if l.context.is_remote() {
                            SPAN_FLAGS_IS_REMOTE
                        } else {
                            0
                        },
                })
                .collect(),
            dropped_links_count: s.dropped_links,
            status: status(&s.status),
        }
    }

    fn log_record(r: &LogRecordData) -> pl::LogRecord {
        let correlated = r.trace_id.is_valid() && r.span_id.is_valid();
        pl::LogRecord {
            time_unix_nano: r.time_unix_nanos,
            observed_time_unix_nano: r.observed_unix_nanos,
            severity_number: i32::from(r.severity_number),
            severity_text: r.severity_text.to_owned(),
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(r.body.to_string())),
            }),
            attributes: r.all_attributes().map(|kv| key_value(&kv)).collect(),
            dropped_attributes_count: r.dropped_attributes,
            flags: if correlated { u32::from(r.flags) } else { 0 },
            trace_id: if correlated {
                r.trace_id.to_bytes().to_vec()
            } else {
                Vec::new()
            },
            span_id: if correlated {
                r.span_id.to_bytes().to_vec()
            } else {
                Vec::new()
            },
            event_name: String::new(),
        }
    }

    fn prost_traces(encoder: &Encoder, spans: &[SpanData]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(encoder.resource.clone()),
                scope_spans: vec![pt::ScopeSpans {
                    scope: Some(encoder.scope.clone()),
                    spans: spans.iter().map(span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }

    fn prost_logs(encoder: &Encoder, records: &[LogRecordData]) -> Vec<u8> {
        let mut scopes: Vec<pl::ScopeLogs> = Vec::new();
        for record in records {
            let index = match scopes
                .iter()
                .position(|s| s.scope.as_ref().is_some_and(|sc| sc.name == *record.scope))
            {
                Some(i) => i,
                None => {
                    scopes.push(pl::ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: record.scope.to_string(),
                            ..Default::default()
                        }),
                        log_records: Vec::new(),
                        schema_url: String::new(),
                    });
                    scopes.len() - 1
                }
            };
            scopes[index].log_records.push(log_record(record));
        }
        ExportLogsServiceRequest {
            resource_logs: vec![pl::ResourceLogs {
                resource: Some(encoder.resource.clone()),
                scope_logs: scopes,
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }

    fn every_value() -> Vec<KeyValue> {
        vec![
            KeyValue::new("s", "text"),
            KeyValue::new("empty", ""),
            KeyValue::new("long", "é".repeat(300)),
            KeyValue::new("t", true),
            KeyValue::new("f", false),
            KeyValue::new("zero", 0i64),
            KeyValue::new("neg", -5i64),
            KeyValue::new("min", i64::MIN),
            KeyValue::new("x", 0.0f64),
            KeyValue::new("nan", f64::NAN),
            KeyValue::new("pi", -3.25f64),
            KeyValue::new("ss", Value::StrArray(vec![Str::from("a"), Str::from("")])),
            KeyValue::new("bs", Value::BoolArray(vec![false, true])),
            KeyValue::new("is", Value::I64Array(vec![0, -1, 300])),
            KeyValue::new("fs", Value::F64Array(vec![0.0, 1.5])),
            KeyValue::new("none", Value::I64Array(Vec::new())),
        ]
    }

    fn sample_spans() -> Vec<SpanData> {
        let base = SpanData {
            trace_id: TraceId(0x0af7651916cd43dd8448eb211c80319c),
            span_id: SpanId(0xb7ad6b7169203331),
            parent_span_id: SpanId(0),
            parent_is_remote: false,
            flags: 1,
            trace_state: None,
            name: Str::from("GET /users/{id}"),
            kind: SpanKind::Server,
            start_unix_nanos: 1_700_000_000_000_000_000,
            end_unix_nanos: 1_700_000_000_000_100_000,
            attributes: Vec::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
        };
        let everything = SpanData {
            parent_span_id: SpanId(42),
            parent_is_remote: true,
            trace_state: Some("vendor=opaque".into()),
            name: Str::from("n".repeat(200)),
            kind: SpanKind::Consumer,
            attributes: every_value(),
            dropped_attributes: 3,
            events: vec![
                Event {
                    name: Str::from("exception"),
                    time_unix_nanos: 5,
                    attributes: every_value(),
                    dropped_attributes: 1,
                },
                Event {
                    name: Str::from(""),
                    time_unix_nanos: 0,
                    attributes: Vec::new(),
                    dropped_attributes: 0,
                },
            ],
            dropped_events: 2,
            links: vec![Link {
                context: SpanContext::new_remote(TraceId(9), SpanId(8), 1)
                    .with_trace_state(Some("a=b".into())),
                attributes: vec![KeyValue::new("k", 1i64)],
            }],
            dropped_links: 7,
            status: Status::error("card declined"),
            ..base.clone()
        };
        let mut spans = vec![
            base.clone(),
            everything,
            SpanData {
                status: Status::Ok,
                kind: SpanKind::Internal,
                start_unix_nanos: 0,
                end_unix_nanos: 0,
                ..base.clone()
            },
            SpanData {
                status: Status::error(""),
                kind: SpanKind::Client,
                ..base.clone()
            },
            SpanData {
                kind: SpanKind::Producer,
                ..base.clone()
            },
        ];
        // Enough spans that the outer lengths take three varint bytes.
        for i in 0..300 {
            spans.push(SpanData {
                span_id: SpanId(i + 1),
                attributes: vec![KeyValue::new("i", i as i64)],
                ..base.clone()
            });
        }
        spans
    }

    fn encoder() -> Encoder {
        Encoder::new(&[
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.version", "1.2.3"),
        ])
    }

    #[test]
    fn spans_are_written_exactly_as_prost_writes_them() {
        let encoder = encoder();
        let spans = sample_spans();
        for n in [0, 1, 2, 5, spans.len()] {
            let ours = encoder.traces(&spans[..n]);
            assert_eq!(ours, prost_traces(&encoder, &spans[..n]), "{n} spans");
            let decoded = ExportTraceServiceRequest::decode(&ours[..]).expect("decodes");
            let sent = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(sent.len(), n);
        }
    }

    fn sample_records() -> Vec<LogRecordData> {
        let base = LogRecordData {
            time_unix_nanos: 1_700_000_000_000_000_000,
            observed_unix_nanos: 1_700_000_000_000_000_001,
            severity_number: 9,
            severity_text: "INFO",
            body: "order 42 placed".into(),
            scope: Str::from("shop::orders"),
            code: crate::logs::CodeLocation {
                file: Some(Str::from("src/orders.rs")),
                line: Some(12),
                namespace: Some("shop::orders::inner"),
            },
            attributes: every_value(),
            dropped_attributes: 2,
            trace_id: TraceId(7),
            span_id: SpanId(9),
            flags: 1,
        };
        let mut records = vec![
            base.clone(),
            LogRecordData {
                body: "".into(),
                scope: Str::from("ureq::unit"),
                code: Default::default(),
                attributes: Vec::new(),
                dropped_attributes: 0,
                trace_id: TraceId(0),
                span_id: SpanId(0),
                flags: 1,
                ..base.clone()
            },
            LogRecordData {
                trace_id: TraceId(7),
                span_id: SpanId(0), // half a context is no correlation
                ..base.clone()
            },
        ];
        for i in 0..200 {
            records.push(LogRecordData {
                body: format!("record {i}").into(),
                scope: Str::from(if i % 3 == 0 {
                    "ureq::unit"
                } else {
                    "shop::orders"
                }),
                ..base.clone()
            });
        }
        records
    }

    #[test]
    fn log_records_are_written_exactly_as_prost_writes_them() {
        let encoder = encoder();
        let records = sample_records();
        for n in [0, 1, 2, 3, records.len()] {
            let ours = encoder.logs(&records[..n]);
            assert_eq!(ours, prost_logs(&encoder, &records[..n]), "{n} records");
            let decoded = ExportLogsServiceRequest::decode(&ours[..]).expect("decodes");
            let sent: usize = decoded.resource_logs[0]
                .scope_logs
                .iter()
                .map(|s| s.log_records.len())
                .sum();
            assert_eq!(sent, n);
        }
    }
}
