//! Our plain Rust values → OTLP protobuf messages → bytes. The only module that builds prost types.

use crate::attributes::{KeyValue, Str, Value};
use crate::logs::LogRecordData;
use crate::metrics::{MetricData, MetricPoints, Number, NumberPoint, Temporality};
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{self as pc, any_value, AnyValue, ArrayValue, InstrumentationScope};
use crate::proto::logs::v1 as pl;
use crate::proto::metrics::v1 as pm;
use crate::proto::resource::v1::Resource;
use crate::proto::trace::v1 as pt;
use crate::trace::{SpanData, SpanKind, Status};
use prost::Message;

/// `Span.flags` bits: the low 8 are the W3C trace flags; these say whether the parent is remote.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

/// Encodes batches for one service: the resource and scope are built once.
pub(crate) struct Encoder {
    resource: Resource,
    scope: InstrumentationScope,
}

impl Encoder {
    pub(crate) fn new(resource_attributes: &[KeyValue]) -> Self {
        Encoder {
            resource: Resource {
                attributes: resource_attributes.iter().map(key_value).collect(),
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            },
            scope: InstrumentationScope {
                name: env!("CARGO_PKG_NAME").to_owned(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                attributes: Vec::new(),
                dropped_attributes_count: 0,
            },
        }
    }

    pub(crate) fn traces(&self, spans: &[SpanData]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![pt::ResourceSpans {
                resource: Some(self.resource.clone()),
                scope_spans: vec![pt::ScopeSpans {
                    scope: Some(self.scope.clone()),
                    spans: spans.iter().map(span).collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
    }

    /// Records are grouped into one `ScopeLogs` per `log` target, in order of first appearance.
    pub(crate) fn logs(&self, records: &[LogRecordData]) -> Vec<u8> {
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
                resource: Some(self.resource.clone()),
                scope_logs: scopes,
                schema_url: String::new(),
            }],
        }
        .encode_to_vec()
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

fn temporality(t: Temporality) -> i32 {
    match t {
        Temporality::Delta => pm::AggregationTemporality::Delta as i32,
        Temporality::Cumulative => pm::AggregationTemporality::Cumulative as i32,
    }
}

fn number_point(p: &NumberPoint) -> pm::NumberDataPoint {
    pm::NumberDataPoint {
        attributes: p.attributes.iter().map(key_value).collect(),
        start_time_unix_nano: p.start_unix_nanos,
        time_unix_nano: p.time_unix_nanos,
        exemplars: Vec::new(),
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
                    exemplars: Vec::new(),
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
