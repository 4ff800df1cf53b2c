//! Metrics end to end: buckets, delta windows, threads, overflow, invalid values, sampling
//! independence, observable instruments and the periodic push — decoded from a loopback receiver.

mod common;

use common::TestReceiver;
use plain_connect::proto::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, Metric,
};
use plain_connect::{metrics, KeyValue, Resource, Settings, Telemetry};
use std::time::Duration;

fn start(
    receiver: &TestReceiver,
    tune: impl FnOnce(plain_connect::SettingsBuilder) -> plain_connect::SettingsBuilder,
) -> Telemetry {
    let settings = tune(
        Settings::builder()
            .export_url(receiver.endpoint())
            .export_token("t"),
    )
    .build()
    .unwrap();
    Telemetry::start(settings, Resource::new("metric-tests", "1")).unwrap()
}

fn named(receiver: &TestReceiver, name: &str) -> Vec<Metric> {
    receiver
        .metrics()
        .into_iter()
        .filter(|m| m.name == name)
        .collect()
}

fn histogram_points(metric: &Metric) -> Vec<HistogramDataPoint> {
    match metric.data.clone().unwrap() {
        Data::Histogram(h) => {
            assert_eq!(
                h.aggregation_temporality,
                AggregationTemporality::Delta as i32
            );
            h.data_points
        }
        other => panic!("not a histogram: {other:?}"),
    }
}

fn sum_values(metric: &Metric) -> Vec<f64> {
    match metric.data.clone().unwrap() {
        Data::Sum(s) => s
            .data_points
            .iter()
            .map(|p| match p.value.unwrap() {
                number_data_point::Value::AsInt(i) => i as f64,
                number_data_point::Value::AsDouble(f) => f,
            })
            .collect(),
        other => panic!("not a sum: {other:?}"),
    }
}

#[test]
fn histogram_buckets_count_sum_min_max() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let h = metrics::histogram("test.buckets")
        .unit("s")
        .boundaries(vec![0.1, 1.0])
        .build()
        .unwrap();
    let attrs = [KeyValue::new("route", "/a")];
    for v in [0.05, 0.1, 0.100001, 1.0, 3.0] {
        h.record(v, &attrs);
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let metric = &named(&receiver, "test.buckets")[0];
    assert_eq!(metric.unit, "s");
    let p = &histogram_points(metric)[0];
    assert_eq!(p.explicit_bounds, [0.1, 1.0]);
    assert_eq!(p.bucket_counts, [2, 2, 1]);
    assert_eq!(p.count, 5);
    assert!((p.sum.unwrap() - 4.250001).abs() < 1e-9);
    assert_eq!((p.min, p.max), (Some(0.05), Some(3.0)));
    assert_eq!(
        common::string_attr(&p.attributes, "route").as_deref(),
        Some("/a")
    );
}

#[test]
fn each_export_holds_only_what_is_new_with_the_previous_collection_as_start() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let h = metrics::histogram("test.delta").build().unwrap();
    h.record(1.0, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    telemetry.flush(Duration::from_secs(5)).unwrap(); // nothing new: no point
    h.record(2.0, &[]);
    h.record(3.0, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let exports = named(&receiver, "test.delta");
    assert_eq!(exports.len(), 2, "idle windows are not exported");
    let first = &histogram_points(&exports[0])[0];
    let second = &histogram_points(&exports[1])[0];
    assert_eq!((first.count, second.count), (1, 2));
    assert_eq!(second.sum, Some(5.0));
    assert!(
        second.start_time_unix_nano > first.time_unix_nano,
        "window starts after the first export"
    );
    assert!(second.start_time_unix_nano < second.time_unix_nano);
}

#[test]
fn counters_from_eight_threads_add_up_exactly() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let counter = metrics::counter::<u64>("test.threads").build().unwrap();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let counter = counter.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    counter.add(1, &[KeyValue::new("parity", (t % 2) as i64)]);
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let values = sum_values(&named(&receiver, "test.threads")[0]);
    assert_eq!(values.iter().sum::<f64>(), 80_000.0);
    assert_eq!(values, [40_000.0, 40_000.0]);
}

#[test]
fn past_the_cardinality_cap_measurements_go_to_the_overflow_series() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let h = metrics::histogram("test.overflow")
        .cardinality_limit(10)
        .build()
        .unwrap();
    for user in 0..50 {
        h.record(1.0, &[KeyValue::new("user.id", user)]);
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let points = histogram_points(&named(&receiver, "test.overflow")[0]);
    assert_eq!(points.len(), 11);
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 50);
    let overflow = points
        .iter()
        .find(|p| common::attr(&p.attributes, "otel.metric.overflow").is_some())
        .expect("an overflow series");
    assert_eq!(overflow.count, 40);
}

#[test]
fn nan_and_infinities_are_rejected_and_counted() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let h = metrics::histogram("test.nan").build().unwrap();
    h.record(f64::NAN, &[]);
    h.record(f64::INFINITY, &[]);
    h.record(2.0, &[]);
    h.bind(&[]).record(f64::NEG_INFINITY);
    let c = metrics::counter::<f64>("test.negative").build().unwrap();
    c.add(-1.0, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let p = &histogram_points(&named(&receiver, "test.nan")[0])[0];
    assert_eq!((p.count, p.sum), (1, Some(2.0)));
    assert_eq!(h.dropped_invalid(), 3);
    assert!(named(&receiver, "test.negative").is_empty());
    assert!(metrics::invalid_measurements() >= 4);
}

#[test]
fn a_zero_sample_rate_still_exports_every_measurement() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b.trace_sample_rate(0.0));
    let h = metrics::histogram("test.unsampled").build().unwrap();
    for _ in 0..100 {
        let _span = plain_connect::trace::span("not sampled").start();
        h.record(1.0, &[]);
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.spans().is_empty());
    assert_eq!(
        histogram_points(&named(&receiver, "test.unsampled")[0])[0].count,
        100
    );
}

#[test]
fn observable_instruments_and_the_periodic_push() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| {
        b.metrics_interval(Duration::from_millis(200))
    });
    let _gauge = metrics::observable_gauge("test.pool.size", |o| {
        o.observe(4.0, &[KeyValue::new("state", "idle")])
    })
    .build()
    .unwrap();
    let total = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(10));
    let reported = total.clone();
    let _counter = metrics::observable_counter("test.bytes.total", move |o| {
        o.observe(
            reported.load(std::sync::atomic::Ordering::Relaxed) as f64,
            &[],
        )
    })
    .build()
    .unwrap();
    assert!(
        receiver.wait_for(Duration::from_secs(3), |r| !named(r, "test.bytes.total")
            .is_empty()),
        "pushed on the interval without a flush"
    );
    total.store(25, std::sync::atomic::Ordering::Relaxed);
    assert!(
        receiver.wait_for(Duration::from_secs(3), |r| named(r, "test.bytes.total")
            .len()
            >= 2)
    );
    let deltas: Vec<f64> = named(&receiver, "test.bytes.total")
        .iter()
        .flat_map(sum_values)
        .collect();
    assert_eq!(&deltas[..2], [10.0, 15.0], "observed totals become deltas");
    match named(&receiver, "test.pool.size")[0].data.clone().unwrap() {
        Data::Gauge(g) => assert!(
            matches!(g.data_points[0].value, Some(number_data_point::Value::AsDouble(v)) if v == 4.0)
        ),
        other => panic!("not a gauge: {other:?}"),
    }
    drop(telemetry);
}

#[test]
fn bad_instrument_names_are_clear_errors() {
    let e = metrics::histogram("9 lives").build().err().unwrap();
    assert!(e.to_string().contains("\"9 lives\""), "{e}");
    metrics::counter::<u64>("test.kind").build().unwrap();
    let e = metrics::histogram("TEST.KIND").build().err().unwrap();
    assert!(e.to_string().contains("already exists as a counter"), "{e}");
}
