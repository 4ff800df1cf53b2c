//! The pipeline's own health, exported as the semantic conventions' `otel.sdk.*` metrics: after
//! a flush with injected failures, what arrived at the loopback receiver matches
//! `telemetry.counters()` exactly, and the health points are never counted in themselves.

mod common;

use common::proto::metrics::v1::{metric::Data, number_data_point, AggregationTemporality};
use common::{Behavior, TestReceiver};
use plain_connect::{metrics, trace, Resource, Settings, Telemetry};
use std::collections::BTreeMap;
use std::time::Duration;

fn start(receiver: &TestReceiver, health_metrics: bool) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .process_metrics(false)
        .health_metrics(health_metrics)
        .retry(plain_connect::RetryPolicy::default().max_attempts(1))
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new("health-tests", "1")).unwrap()
}

/// `(metric name, error.type)` → value, from the last metrics request the receiver accepted.
fn last_health(receiver: &TestReceiver) -> BTreeMap<(String, String), i64> {
    let body = receiver
        .requests()
        .into_iter()
        .rfind(|r| r.path == "/v1/metrics" && r.status_sent == 200)
        .expect("a metrics request")
        .decoded_body;
    let mut health = BTreeMap::new();
    for metric in common::decode_metrics(&body)
        .resource_metrics
        .into_iter()
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .filter(|m| m.name.starts_with("otel.sdk."))
    {
        let Some(Data::Sum(sum)) = metric.data else {
            panic!("{} is not a sum", metric.name);
        };
        assert_eq!(
            sum.aggregation_temporality,
            AggregationTemporality::Cumulative as i32,
            "{}",
            metric.name
        );
        assert_eq!(
            sum.is_monotonic,
            !metric.name.contains(".queue."),
            "{}",
            metric.name
        );
        for point in sum.data_points {
            assert!(
                common::string_attr(&point.attributes, "otel.component.type").is_some(),
                "{}",
                metric.name
            );
            let error = common::string_attr(&point.attributes, "error.type").unwrap_or_default();
            let Some(number_data_point::Value::AsInt(value)) = point.value else {
                panic!("{}: not an integer", metric.name);
            };
            health.insert((metric.name.clone(), error), value);
        }
    }
    health
}

#[test]
fn health_metrics_match_the_counters_after_injected_failures() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, true);
    let orders = metrics::counter("test.health.orders").build().unwrap();

    // Refused by the endpoint (400): rejected.
    receiver.script(vec![Behavior::Status(400)]);
    for _ in 0..2 {
        trace::span("refused").start().end();
    }
    orders.add(1, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    // Unavailable with no retry left (503, one attempt): send failed.
    receiver.script(vec![Behavior::Status(503)]);
    for _ in 0..3 {
        trace::span("lost").start().end();
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    // Delivered; the metrics request of this flush fails (400), losing its app points.
    receiver.script(vec![Behavior::Ok, Behavior::Status(400)]);
    for _ in 0..4 {
        trace::span("delivered").start().end();
    }
    orders.add(1, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    // One more flush: only health points travel, and they change no counter.
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let counts = telemetry.counters();
    assert_eq!(
        (
            counts.spans.exported,
            counts.spans.dropped_rejected,
            counts.spans.dropped_send_failed
        ),
        (4, 2, 3),
        "the injected failures happened: {counts:?}"
    );
    assert_eq!(counts.metric_points.dropped_rejected, 1, "{counts:?}");
    let health = last_health(&receiver);
    let get = |name: &str, error: &str| {
        health
            .get(&(name.to_owned(), error.to_owned()))
            .copied()
            .unwrap_or(0) as u64
    };
    for (prefix, signal, unit) in [("span", counts.spans, "span"), ("log", counts.logs, "log")] {
        let exported = format!("otel.sdk.exporter.{prefix}.exported");
        let processed = format!("otel.sdk.processor.{prefix}.processed");
        assert_eq!(get(&exported, ""), signal.exported, "{unit}");
        assert_eq!(
            get(&exported, "rejected"),
            signal.dropped_rejected,
            "{unit}"
        );
        assert_eq!(
            get(&exported, "send_failed"),
            signal.dropped_send_failed,
            "{unit}"
        );
        assert_eq!(get(&processed, ""), signal.enqueued, "{unit}");
        assert_eq!(
            get(&processed, "queue_full"),
            signal.dropped_queue_full,
            "{unit}"
        );
        assert_eq!(
            get(&format!("otel.sdk.processor.{prefix}.queue.size"), ""),
            0,
            "{unit}"
        );
        assert!(get(&format!("otel.sdk.processor.{prefix}.queue.capacity"), "") >= 1);
    }
    let points = counts.metric_points;
    let exported = "otel.sdk.exporter.metric_data_point.exported";
    assert_eq!(get(exported, ""), points.exported);
    assert_eq!(get(exported, "rejected"), points.dropped_rejected);
    assert_eq!(get(exported, "send_failed"), points.dropped_send_failed);
    assert_eq!(
        points.exported, 1,
        "one app point delivered; health points are not counted"
    );
    assert_eq!(points.enqueued, 2);

    let names: Vec<_> = health.keys().map(|(n, _)| n.as_str()).collect();
    for name in [
        "otel.sdk.exporter.span.exported",
        "otel.sdk.processor.span.processed",
        "otel.sdk.processor.span.queue.size",
        "otel.sdk.processor.span.queue.capacity",
        "otel.sdk.exporter.log.exported",
        "otel.sdk.processor.log.queue.size",
        "otel.sdk.exporter.metric_data_point.exported",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    drop(telemetry);
}

#[test]
fn the_setting_turns_them_off() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, false);
    metrics::counter("test.health.off")
        .build()
        .unwrap()
        .add(1, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    drop(telemetry);
    let names: Vec<String> = receiver.metrics().into_iter().map(|m| m.name).collect();
    assert_eq!(
        names,
        ["test.health.off"],
        "no health metrics, no empty requests"
    );
    assert_eq!(receiver.request_count("/v1/metrics"), 1);
    let off = Settings::default()
        .with_env_from(|name| {
            Ok((name == "PLAIN_CONNECT_HEALTH_METRICS").then(|| "false".to_owned()))
        })
        .unwrap();
    assert!(!off.health_metrics());
    assert!(Settings::default().health_metrics(), "on by default");
}
