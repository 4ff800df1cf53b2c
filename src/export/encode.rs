//! OTLP export requests: the records the app threads encoded, wrapped in the resource and
//! scope; metrics, a few points a minute, through the prost types.

use crate::attributes::{KeyValue, Str, Value};
use crate::core::wire::{varint_len, Writer};
use crate::metrics::{Exemplar, MetricData, MetricPoints, Number, NumberPoint, Temporality};
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::common::v1::{self as pc, any_value, AnyValue, ArrayValue, InstrumentationScope};
use crate::proto::metrics::v1 as pm;
use crate::proto::resource::v1::Resource;
use prost::Message;

/// Encodes requests for one service: the resource and scope are built (and encoded) once.
pub(crate) struct Encoder {
    resource: Resource,
    scope: InstrumentationScope,
    encoded_resource: Vec<u8>,
    encoded_scope: Vec<u8>,
}

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

    /// An `ExportTraceServiceRequest` around spans already encoded as `ScopeSpans.spans`
    /// entries, back to back (as the exporter writes a batch's records out).
    pub(crate) fn traces(&self, entries: &[u8]) -> Vec<u8> {
        let scope_spans = field_len(self.encoded_scope.len()) + entries.len();
        let resource_spans = field_len(self.encoded_resource.len()) + field_len(scope_spans);
        let mut buf = Vec::with_capacity(field_len(resource_spans));
        Writer::new(&mut buf).message_sized(1, length_len(resource_spans), |resource_spans| {
            resource_spans.encoded_message(1, &self.encoded_resource);
            resource_spans.message_sized(2, length_len(scope_spans), |scope_spans| {
                scope_spans.encoded_message(1, &self.encoded_scope);
                scope_spans.raw(entries);
            });
        });
        buf
    }

    /// An `ExportLogsServiceRequest` around records already encoded, each with its scope name
    /// (`logs::frame`). Records are grouped into one `ScopeLogs` per scope, in order of
    /// first appearance.
    pub(crate) fn logs(&self, records: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut scopes: Vec<&[u8]> = Vec::new();
        let mut scope_of = Vec::with_capacity(records.len());
        for (scope, _) in records {
            let index = match scopes.iter().position(|s| s == scope) {
                Some(i) => i,
                None => {
                    scopes.push(scope);
                    scopes.len() - 1
                }
            };
            scope_of.push(index);
        }
        // Each ScopeLogs: its scope (a name, left out when empty) and its records.
        let mut scope_lens: Vec<usize> = scopes
            .iter()
            .map(|name| {
                field_len(if name.is_empty() {
                    0
                } else {
                    field_len(name.len())
                })
            })
            .collect();
        for ((_, record), scope) in records.iter().zip(&scope_of) {
            scope_lens[*scope] += record.len();
        }
        let resource_logs = field_len(self.encoded_resource.len())
            + scope_lens.iter().map(|len| field_len(*len)).sum::<usize>();
        let mut buf = Vec::with_capacity(field_len(resource_logs));
        Writer::new(&mut buf).message_sized(1, length_len(resource_logs), |resource_logs| {
            resource_logs.encoded_message(1, &self.encoded_resource);
            for (index, scope) in scopes.iter().enumerate() {
                resource_logs.message_sized(2, length_len(scope_lens[index]), |scope_logs| {
                    scope_logs.message(1, |w| w.bytes(1, scope));
                    let in_scope = records.iter().zip(&scope_of).filter(|(_, s)| **s == index);
                    for ((_, record), _) in in_scope {
                        scope_logs.raw(record);
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

/// Bytes a length-delimited field with a `len`-byte body takes (field numbers under 16).
fn field_len(len: usize) -> usize {
    1 + length_len(len) + len
}

/// Bytes the varint length of a `len`-byte body takes: written in place, a request's body is
/// never shifted to make room for its length.
fn length_len(len: usize) -> usize {
    varint_len(len as u64)
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
    use crate::core::wire::next_field;
    use crate::logs::LogRecordData;
    use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
    use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
    use crate::proto::logs::v1 as pl;
    use crate::proto::trace::v1 as pt;
    use crate::trace::{Event, Link, SpanContext, SpanData, SpanId, SpanKind, Status, TraceId};

    const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
    const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

    fn ours_traces(encoder: &Encoder, spans: &[SpanData]) -> Vec<u8> {
        let mut buf = Vec::new();
        for s in spans {
            crate::trace::span_entry(&mut buf, s, &[]);
        }
        encoder.traces(&buf)
    }

    fn ours_logs(encoder: &Encoder, records: &[LogRecordData]) -> Vec<u8> {
        let mut buf = Vec::new();
        for r in records {
            crate::logs::log_frame(&mut buf, r);
        }
        let mut at = 0;
        let frames: Vec<(&[u8], &[u8])> = std::iter::from_fn(|| {
            let (_, scope) = next_field(&buf, &mut at)?;
            let (record, _) = next_field(&buf, &mut at)?;
            Some((scope, record))
        })
        .collect();
        encoder.logs(&frames)
    }

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
            let ours = ours_traces(&encoder, &spans[..n]);
            assert_eq!(ours, prost_traces(&encoder, &spans[..n]), "{n} spans");
            let decoded = ExportTraceServiceRequest::decode(&ours[..]).expect("decodes");
            let sent = &decoded.resource_spans[0].scope_spans[0].spans;
            assert_eq!(sent.len(), n);
        }
        // Lengths of one to four varint bytes, each written in place.
        let many: Vec<SpanData> = spans.iter().cycle().take(25_000).cloned().collect();
        let ours = ours_traces(&encoder, &many);
        assert!(ours.len() > 1 << 21, "{} bytes", ours.len());
        assert_eq!(ours, prost_traces(&encoder, &many));
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
            let ours = ours_logs(&encoder, &records[..n]);
            assert_eq!(ours, prost_logs(&encoder, &records[..n]), "{n} records");
            let decoded = ExportLogsServiceRequest::decode(&ours[..]).expect("decodes");
            let sent: usize = decoded.resource_logs[0]
                .scope_logs
                .iter()
                .map(|s| s.log_records.len())
                .sum();
            assert_eq!(sent, n);
        }
        let many: Vec<LogRecordData> = records.iter().cycle().take(5000).cloned().collect();
        let ours = ours_logs(&encoder, &many);
        assert!(ours.len() > 1 << 21, "{} bytes", ours.len());
        assert_eq!(ours, prost_logs(&encoder, &many));
    }
}
