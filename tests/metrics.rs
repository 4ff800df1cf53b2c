//! Metrics end to end: buckets, delta windows, threads, overflow, invalid values, sampling
//! independence, observable instruments and the periodic push — decoded from a loopback receiver.

mod common;

use common::proto::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, HistogramDataPoint, Metric,
};
use common::TestReceiver;
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
    let metric = &receiver.metrics_named("test.buckets")[0];
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
    let exports = receiver.metrics_named("test.delta");
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
    let counter = metrics::counter("test.threads").build().unwrap();
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
    let values = sum_values(&receiver.metrics_named("test.threads")[0]);
    assert_eq!(values.iter().sum::<f64>(), 80_000.0);
    assert_eq!(values, [40_000.0, 40_000.0]);
}

/// Eight threads record through one bound handle while the exporter collects windows: every
/// measurement lands in exactly one window, and within each window count, buckets, sum, min and
/// max describe the same measurements (each bucket receives one value only, so the sum follows
/// from the bucket counts). The values take both the table's quick path and the slow one
/// (negative values, values above the last bound).
#[test]
fn a_bound_histogram_from_eight_threads_is_exact_in_every_window() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let bounds: Vec<f64> = (0..8).map(f64::from).collect();
    // Bucket i holds exactly the value VALUES[i].
    const VALUES: [f64; 9] = [-3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1000.0];
    let h = metrics::histogram("test.bound.threads")
        .boundaries(bounds)
        .build()
        .unwrap();
    let bound = h.bind(&[KeyValue::new("route", "/r")]);
    let rounds = 100_000;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let recorders: Vec<_> = (0..8)
            .map(|t| {
                let bound = &bound;
                scope.spawn(move || {
                    for i in 0..rounds {
                        bound.record(VALUES[(i + t) % VALUES.len()]);
                    }
                })
            })
            .collect();
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                telemetry.flush(Duration::from_secs(5)).unwrap();
            }
        });
        recorders.into_iter().for_each(|r| r.join().unwrap());
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let mut totals = [0u64; 9];
    let exports = receiver.metrics_named("test.bound.threads");
    for metric in &exports {
        for p in histogram_points(metric) {
            assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
            let sum: f64 = p
                .bucket_counts
                .iter()
                .zip(VALUES)
                .map(|(n, v)| *n as f64 * v)
                .sum();
            assert_eq!(p.sum, Some(sum), "sum and buckets from the same window");
            let first = p.bucket_counts.iter().position(|n| *n > 0).unwrap();
            let last = p.bucket_counts.iter().rposition(|n| *n > 0).unwrap();
            assert_eq!((p.min, p.max), (Some(VALUES[first]), Some(VALUES[last])));
            totals
                .iter_mut()
                .zip(&p.bucket_counts)
                .for_each(|(t, n)| *t += n);
        }
    }
    let mut expected = [0u64; 9];
    for t in 0..8 {
        for i in 0..rounds {
            expected[(i + t) % VALUES.len()] += 1;
        }
    }
    assert_eq!(totals, expected, "every measurement in exactly one window");
    assert!(exports.len() > 1, "several windows while recording");
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
    let points = histogram_points(&receiver.metrics_named("test.overflow")[0]);
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
    let c = metrics::f64_counter("test.negative").build().unwrap();
    c.add(-1.0, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let p = &histogram_points(&receiver.metrics_named("test.nan")[0])[0];
    assert_eq!((p.count, p.sum), (1, Some(2.0)));
    assert_eq!(h.dropped_invalid(), 3);
    assert!(receiver.metrics_named("test.negative").is_empty());
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
        histogram_points(&receiver.metrics_named("test.unsampled")[0])[0].count,
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
        receiver.wait_for(Duration::from_secs(3), |r| !r
            .metrics_named("test.bytes.total")
            .is_empty()),
        "pushed on the interval without a flush"
    );
    total.store(25, std::sync::atomic::Ordering::Relaxed);
    assert!(receiver.wait_for(Duration::from_secs(3), |r| r
        .metrics_named("test.bytes.total")
        .len()
        >= 2));
    let deltas: Vec<f64> = receiver
        .metrics_named("test.bytes.total")
        .iter()
        .flat_map(sum_values)
        .collect();
    assert_eq!(&deltas[..2], [10.0, 15.0], "observed totals become deltas");
    match receiver.metrics_named("test.pool.size")[0]
        .data
        .clone()
        .unwrap()
    {
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
    metrics::counter("test.kind").build().unwrap();
    let e = metrics::histogram("TEST.KIND").build().err().unwrap();
    assert!(e.to_string().contains("already exists as a counter"), "{e}");
}

fn exemplars_of(metric: &Metric) -> Vec<common::proto::metrics::v1::Exemplar> {
    match metric.data.clone().unwrap() {
        Data::Histogram(h) => h
            .data_points
            .into_iter()
            .flat_map(|p| p.exemplars)
            .collect(),
        Data::Sum(s) => s
            .data_points
            .into_iter()
            .flat_map(|p| p.exemplars)
            .collect(),
        Data::Gauge(g) => g
            .data_points
            .into_iter()
            .flat_map(|p| p.exemplars)
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn exemplar_double(e: &common::proto::metrics::v1::Exemplar) -> f64 {
    use common::proto::metrics::v1::exemplar::Value;
    match e.value.unwrap() {
        Value::AsDouble(v) => v,
        Value::AsInt(i) => i as f64,
    }
}

#[test]
fn measurements_under_a_sampled_span_carry_its_ids_as_exemplars() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let h = metrics::histogram("test.exemplar.latency")
        .unit("s")
        .build()
        .unwrap();
    let bound = metrics::histogram("test.exemplar.bound")
        .build()
        .unwrap()
        .bind(&[KeyValue::new("route", "/b")]);
    let c = metrics::counter("test.exemplar.orders").build().unwrap();
    let (fast, slow) = {
        let span = plain_connect::trace::span("fast request").start();
        let ids = plain_connect::trace::current();
        h.record(0.003, &[]);
        bound.record(7.0);
        c.add(2, &[]);
        drop(span);
        let fast = ids;
        let _span = plain_connect::trace::span("slow request").start();
        h.record(4.2, &[]);
        (fast, plain_connect::trace::current())
    };
    h.record(4.0, &[]); // no span current: counted, no exemplar
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let metric = &receiver.metrics_named("test.exemplar.latency")[0];
    let point = &histogram_points(metric)[0];
    assert_eq!(point.count, 3);
    let exemplars = &point.exemplars;
    assert_eq!(
        exemplars.len(),
        2,
        "one per bucket that saw a sampled measurement"
    );
    let by_value = |v: f64| exemplars.iter().find(|e| exemplar_double(e) == v).unwrap();
    assert_eq!(by_value(0.003).trace_id, fast.trace_id().to_bytes());
    assert_eq!(by_value(0.003).span_id, fast.span_id().to_bytes());
    assert_eq!(by_value(4.2).span_id, slow.span_id().to_bytes());
    assert!(by_value(4.2).time_unix_nano >= by_value(0.003).time_unix_nano);
    assert!(by_value(4.2).time_unix_nano <= point.time_unix_nano);
    assert!(by_value(0.003).filtered_attributes.is_empty());

    let bound_exemplars = exemplars_of(&receiver.metrics_named("test.exemplar.bound")[0]);
    assert_eq!(bound_exemplars.len(), 1);
    assert_eq!(bound_exemplars[0].span_id, fast.span_id().to_bytes());
    let counter_exemplars = exemplars_of(&receiver.metrics_named("test.exemplar.orders")[0]);
    assert_eq!(counter_exemplars.len(), 1);
    assert_eq!(
        counter_exemplars[0].value,
        Some(common::proto::metrics::v1::exemplar::Value::AsInt(2))
    );
    assert_eq!(counter_exemplars[0].trace_id, fast.trace_id().to_bytes());

    // The exported spans are the ones the exemplars point at.
    let spans = receiver.spans();
    assert!(spans
        .iter()
        .any(|s| s.span_id == slow.span_id().to_bytes() && s.name == "slow request"));
    drop(telemetry);
}

#[test]
fn unsampled_spans_give_no_exemplars_and_the_filter_decides() {
    let _serial = common::serial();
    let h = metrics::histogram("test.exemplar.filter").build().unwrap();
    let record_in_span_and_outside = || {
        let _span = plain_connect::trace::span("work").start();
        h.record(1.0, &[]);
        drop(_span);
        h.record(7.0, &[]); // another bucket
    };
    let exported = |tune: fn(plain_connect::SettingsBuilder) -> plain_connect::SettingsBuilder| {
        let receiver = TestReceiver::start();
        let telemetry = start(&receiver, tune);
        record_in_span_and_outside();
        telemetry.flush(Duration::from_secs(5)).unwrap();
        drop(telemetry);
        let metric = &receiver.metrics_named("test.exemplar.filter")[0];
        assert_eq!(histogram_points(metric)[0].count, 2);
        exemplars_of(metric)
    };
    assert!(
        exported(|b| b.trace_sample_rate(0.0)).is_empty(),
        "an unsampled span gives no exemplar"
    );
    assert!(
        exported(|b| b.exemplar_filter(metrics::ExemplarFilter::AlwaysOff)).is_empty(),
        "always_off"
    );
    let trace_based = exported(|b| b);
    assert_eq!(trace_based.len(), 1, "only the measurement under the span");
    assert_eq!(exemplar_double(&trace_based[0]), 1.0);
    let always_on = exported(|b| {
        b.trace_sample_rate(0.0)
            .exemplar_filter(metrics::ExemplarFilter::AlwaysOn)
    });
    assert_eq!(always_on.len(), 2, "every measurement is eligible");
    assert!(
        always_on
            .iter()
            .all(|e| e.trace_id.is_empty() && e.span_id.is_empty()),
        "no sampled span: no ids"
    );
}

#[test]
fn the_exemplar_filter_comes_from_otel_metrics_exemplar_filter() {
    let from = |value: &'static str| {
        plain_connect::Settings::default()
            .with_env_from(move |name| {
                Ok((name == "OTEL_METRICS_EXEMPLAR_FILTER").then(|| value.to_owned()))
            })
            .unwrap()
    };
    assert_eq!(
        from("always_off").exemplar_filter(),
        metrics::ExemplarFilter::AlwaysOff
    );
    assert_eq!(
        from("ALWAYS_ON").exemplar_filter(),
        metrics::ExemplarFilter::AlwaysOn
    );
    let bad = from("sometimes");
    assert_eq!(bad.exemplar_filter(), metrics::ExemplarFilter::TraceBased);
    assert!(bad.warnings()[0].contains("OTEL_METRICS_EXEMPLAR_FILTER"));
}

/// Seven export windows as a collector saw them: counter and histogram recorded in windows 1–3
/// and 7, idle in 4–6; up-down counter and observable instruments throughout, each with one
/// attribute set. No overflow series may appear: the cap is never reached.
#[test]
fn no_overflow_series_unless_the_cap_is_reached_over_windows_with_idle_ones_between() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let attrs = [KeyValue::new("route", "/checkout")];
    let counter = metrics::counter("test.windows.counter").build().unwrap();
    let histogram = metrics::histogram("test.windows.histogram")
        .build()
        .unwrap();
    let up_down = metrics::up_down_counter("test.windows.updown")
        .build()
        .unwrap();
    let _gauge = metrics::observable_gauge("test.windows.gauge", |o| {
        o.observe(1.0, &[KeyValue::new("route", "/checkout")])
    })
    .build()
    .unwrap();
    let _observed_total = metrics::observable_counter("test.windows.total", |o| {
        o.observe(5.0, &[KeyValue::new("route", "/checkout")])
    })
    .build()
    .unwrap();
    let _observed_level = metrics::observable_up_down_counter("test.windows.level", |o| {
        o.observe(3.0, &[KeyValue::new("route", "/checkout")])
    })
    .build()
    .unwrap();
    for window in 1..=7 {
        if !(4..=6).contains(&window) {
            counter.add(1, &attrs);
            histogram.record(0.5, &attrs);
        }
        up_down.add(1, &attrs);
        telemetry.flush(Duration::from_secs(5)).unwrap();
    }
    let overflowing: Vec<String> = receiver
        .metrics()
        .iter()
        .filter(|m| m.name.starts_with("test.windows."))
        .filter(|m| {
            let attrs: Vec<Vec<common::proto::common::v1::KeyValue>> = match m.data.clone().unwrap()
            {
                Data::Histogram(h) => h.data_points.into_iter().map(|p| p.attributes).collect(),
                Data::Sum(s) => s.data_points.into_iter().map(|p| p.attributes).collect(),
                Data::Gauge(g) => g.data_points.into_iter().map(|p| p.attributes).collect(),
                _ => Vec::new(),
            };
            attrs
                .iter()
                .any(|a| common::attr(a, "otel.metric.overflow").is_some())
        })
        .map(|m| m.name.clone())
        .collect();
    assert!(overflowing.is_empty(), "overflow series in {overflowing:?}");
    let windows = |name: &str| receiver.metrics_named(name).len();
    assert_eq!(
        windows("test.windows.counter"),
        4,
        "idle windows export nothing"
    );
    assert_eq!(windows("test.windows.histogram"), 4);
    assert_eq!(windows("test.windows.updown"), 7);
    let totals: Vec<f64> = receiver
        .metrics_named("test.windows.updown")
        .iter()
        .flat_map(sum_values)
        .collect();
    assert_eq!(
        totals,
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        "one cumulative series"
    );
    assert_eq!(windows("test.windows.gauge"), 7);
    assert_eq!(windows("test.windows.level"), 7);

    // Reaching the cap makes the overflow series appear, and only then.
    let capped = metrics::up_down_counter("test.windows.capped")
        .cardinality_limit(2)
        .build()
        .unwrap();
    capped.add(1, &[KeyValue::new("k", 1)]);
    capped.add(1, &[KeyValue::new("k", 2)]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let points = |r: &TestReceiver| {
        r.metrics_named("test.windows.capped")
            .last()
            .map(sum_values)
    };
    assert_eq!(
        points(&receiver).unwrap().len(),
        2,
        "at the cap, no overflow yet"
    );
    capped.add(5, &[KeyValue::new("k", 3)]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let last = points(&receiver).unwrap();
    assert_eq!(
        last.len(),
        3,
        "past the cap: the overflow series, kept cumulative"
    );
    assert_eq!(last.iter().sum::<f64>(), 7.0);
}

#[test]
fn a_histogram_in_seconds_or_milliseconds_gets_duration_boundaries() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    let seconds = metrics::histogram("test.unit.seconds")
        .unit("s")
        .build()
        .unwrap();
    let millis = metrics::u64_histogram("test.unit.millis")
        .unit("ms")
        .build()
        .unwrap();
    let bytes = metrics::u64_histogram("test.unit.bytes")
        .unit("By")
        .build()
        .unwrap();
    seconds.record(0.0004, &[]);
    seconds.record(0.02, &[]);
    millis.record(20, &[]);
    bytes.record(20, &[]);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let s = &histogram_points(&receiver.metrics_named("test.unit.seconds")[0])[0];
    assert_eq!(s.explicit_bounds, metrics::SECONDS_BOUNDS);
    assert_eq!(
        &s.bucket_counts[..4],
        [1, 0, 1, 0],
        "sub-millisecond values have a bucket"
    );
    let ms = &histogram_points(&receiver.metrics_named("test.unit.millis")[0])[0];
    assert_eq!(
        ms.explicit_bounds,
        [
            5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
            7500.0, 10000.0
        ]
    );
    let by = &histogram_points(&receiver.metrics_named("test.unit.bytes")[0])[0];
    assert_eq!(by.explicit_bounds, metrics::DEFAULT_BOUNDS);
}
