//! What the views say about any exporter's data: cumulative series show their latest value,
//! delta windows add up, every data kind appears with its temporality, span events and links
//! and exemplars are shown, and what was received but not shown is said.
#![cfg(feature = "receiver")]

use plain_connect::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::common::v1::{any_value, AnyValue, KeyValue};
use plain_connect::proto::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data,
    summary_data_point::ValueAtQuantile, AggregationTemporality, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Histogram, HistogramDataPoint, Metric, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use plain_connect::proto::resource::v1::Resource;
use plain_connect::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use plain_connect::receiver::Received;

const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
const DELTA: i32 = AggregationTemporality::Delta as i32;

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![string("service.name", "python-app")],
        ..Default::default()
    })
}

fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn metric(name: &str, data: Data) -> Metric {
    Metric {
        name: name.into(),
        unit: "ms".into(),
        data: Some(data),
        ..Default::default()
    }
}

/// Ten values 1..=10 in buckets (0,5], (5,10], (10,+inf).
fn histogram_point(start: u64, time: u64) -> HistogramDataPoint {
    HistogramDataPoint {
        start_time_unix_nano: start,
        time_unix_nano: time,
        count: 10,
        sum: Some(55.0),
        min: Some(1.0),
        max: Some(10.0),
        explicit_bounds: vec![5.0, 10.0],
        bucket_counts: vec![5, 5, 0],
        ..Default::default()
    }
}

fn histogram(temporality: i32, point: HistogramDataPoint) -> Metric {
    metric(
        "http.server.duration",
        Data::Histogram(Histogram {
            data_points: vec![point],
            aggregation_temporality: temporality,
        }),
    )
}

fn text_of(received: &Received) -> String {
    let mut out = Vec::new();
    received.render_text(&mut out, false).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn a_cumulative_histogram_re_exported_shows_its_latest_value() {
    // The Python SDK re-exports the same cumulative window every interval.
    let requests = (1..=6)
        .map(|i| request(vec![histogram(CUMULATIVE, histogram_point(100, 100 + i))]))
        .collect();
    let text = text_of(&Received::from_requests(vec![], requests, vec![]));
    assert!(text.contains("count=10 sum=55.0000"), "{text}");
    assert!(
        text.contains("cumulative: latest value; latest of 6 windows"),
        "{text}"
    );
    assert!(!text.contains("count=60"), "{text}");
}

#[test]
fn delta_windows_add_up_once_each_and_a_cumulative_restart_is_said() {
    let mut requests: Vec<_> = (0..3)
        .map(|i| {
            request(vec![histogram(
                DELTA,
                histogram_point(100 + i * 10, 110 + i * 10),
            )])
        })
        .collect();
    // The second window again (a retried request): counted once.
    requests.push(request(vec![histogram(DELTA, histogram_point(110, 120))]));
    let text = text_of(&Received::from_requests(vec![], requests, vec![]));
    assert!(text.contains("count=30 sum=165.0000"), "{text}");
    assert!(
        text.contains("delta: windows added up; 3 windows added"),
        "{text}"
    );
    assert!(
        text.contains("1 delta windows received twice (shown once)"),
        "{text}"
    );

    // A cumulative counter whose start time moves: the process restarted.
    let counter = |start: u64, time: u64, value: f64| {
        metric(
            "requests",
            Data::Sum(Sum {
                data_points: vec![plain_connect::proto::metrics::v1::NumberDataPoint {
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    value: Some(
                        plain_connect::proto::metrics::v1::number_data_point::Value::AsDouble(
                            value,
                        ),
                    ),
                    ..Default::default()
                }],
                aggregation_temporality: CUMULATIVE,
                is_monotonic: true,
            }),
        )
    };
    let requests = vec![
        request(vec![counter(100, 200, 40.0)]),
        request(vec![counter(100, 300, 50.0)]),
        request(vec![counter(400, 500, 3.0)]),
        // Arrives late: older than what is shown, so it does not replace it.
        request(vec![counter(100, 350, 55.0)]),
    ];
    let html = Received::from_requests(vec![], requests.clone(), vec![]).render_html();
    let text = text_of(&Received::from_requests(vec![], requests, vec![]));
    let line = text
        .lines()
        .skip_while(|l| !l.starts_with("requests"))
        .nth(1)
        .unwrap();
    assert!(line.trim_start().starts_with("3  [cumulative"), "{text}");
    assert!(line.contains("restarted 1×"), "{line}");
    assert!(
        text.contains("1 points older than the series' latest"),
        "{text}"
    );
    assert!(
        html.contains("<span class=\"kind\">counter</span>"),
        "{html}"
    );
}

#[test]
fn exponential_histograms_and_summaries_are_shown() {
    let exponential = metric(
        "latency",
        Data::ExponentialHistogram(ExponentialHistogram {
            data_points: vec![ExponentialHistogramDataPoint {
                start_time_unix_nano: 1,
                time_unix_nano: 2,
                count: 12,
                sum: Some(30.0),
                scale: 0,
                zero_count: 2,
                // (1,2]: 4, (2,4]: 6
                positive: Some(Buckets {
                    offset: 0,
                    bucket_counts: vec![4, 6],
                }),
                min: Some(0.0),
                max: Some(4.0),
                ..Default::default()
            }],
            aggregation_temporality: DELTA,
        }),
    );
    let summary = metric(
        "rpc.duration",
        Data::Summary(Summary {
            data_points: vec![SummaryDataPoint {
                count: 7,
                sum: 70.0,
                quantile_values: vec![
                    ValueAtQuantile {
                        quantile: 0.5,
                        value: 9.0,
                    },
                    ValueAtQuantile {
                        quantile: 0.99,
                        value: 20.0,
                    },
                ],
                ..Default::default()
            }],
        }),
    );
    let received =
        Received::from_requests(vec![], vec![request(vec![exponential, summary])], vec![]);
    let text = text_of(&received);
    assert!(
        text.contains("latency (ms) exponential histogram"),
        "{text}"
    );
    assert!(text.contains("count=12 sum=30.0000"), "{text}");
    // Rank 6 of 12: 2 zeros, 4 in (1,2]: the end of (1,2].
    assert!(text.contains("p50≈2.0000 ms"), "{text}");
    assert!(text.contains("(2.0000, 4.0000]"), "{text}");
    assert!(text.contains("rpc.duration (ms) summary"), "{text}");
    assert!(
        text.contains("count=7 sum=70.0000 q0.5=9.0000 q0.99=20.0000"),
        "{text}"
    );
    let html = received.render_html();
    assert!(html.contains("exponential histogram</span>") && html.contains("summary</span>"));
}

fn traces() -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: vec![9; 16],
        span_id: vec![1; 8],
        name: "GET /checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_000_000,
        end_time_unix_nano: 9_000_000,
        events: vec![span::Event {
            time_unix_nano: 3_000_000,
            name: "cache.miss".into(),
            attributes: vec![string("key", "cart:42")],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: vec![8; 16],
            span_id: vec![2; 8],
            attributes: vec![string("messaging.operation", "receive")],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![root],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn span_events_links_and_exemplars_are_shown_and_linked() {
    let mut point = histogram_point(1, 2);
    point.exemplars = vec![
        Exemplar {
            time_unix_nano: 2,
            value: Some(exemplar::Value::AsDouble(7.5)),
            trace_id: vec![9; 16],
            span_id: vec![1; 8],
            ..Default::default()
        },
        Exemplar {
            time_unix_nano: 2,
            value: Some(exemplar::Value::AsDouble(3.0)),
            trace_id: vec![7; 16],
            span_id: vec![7; 8],
            ..Default::default()
        },
    ];
    let received = Received::from_requests(
        vec![traces()],
        vec![request(vec![histogram(DELTA, point), Metric::default()])],
        vec![],
    );
    let text = text_of(&received);
    assert!(
        text.contains("event +2.00 ms cache.miss {key=cart:42}"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "link → trace {} span {} messaging.operation=receive",
            "08".repeat(16),
            "02".repeat(8)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "exemplar 7.5 at 00:00:00.000 trace={}",
            "09".repeat(8)
        )),
        "{text}"
    );
    assert!(text.contains("(trace not received)"), "{text}");
    assert!(
        text.contains("1 metrics with no data"),
        "said, not silently dropped: {text}"
    );
    let html = received.render_html();
    let trace = "09".repeat(16);
    assert!(
        html.contains(&format!(
            "<a class=\"mono exemplar\" href=\"?trace={trace}#trace-{trace}\">"
        )),
        "the exemplar links to its waterfall: {html}"
    );
    assert!(html.contains(&format!("id=\"trace-{trace}\"")));
}
