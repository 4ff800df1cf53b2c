//! The recording core against a real loopback receiver: no loss in any thread shape, a queue
//! bounded in records with exact accounting, pipelines that never take each other's data, and
//! nothing kept after shutdown.

mod common;

use common::proto::metrics::v1::metric::Data;
use common::{Behavior, TestReceiver};
use plain_connect::trace::{self, SpanKind};
use plain_connect::{metrics, KeyValue, Resource, Settings, SettingsBuilder, Telemetry};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

fn start(
    receiver: &TestReceiver,
    tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
) -> Telemetry {
    start_with_env(receiver, tune, &[])
}

/// As `start`, against `hanging` set to accept requests and never answer, each request tried
/// once and given up after `request_timeout`.
fn start_hanging(
    hanging: &TestReceiver,
    request_timeout: Duration,
    tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
) -> Telemetry {
    hanging.set_behavior(Behavior::Hang);
    start(hanging, |b| {
        tune(
            b.request_timeout(request_timeout).retry(
                plain_connect::RetryPolicy::default()
                    .max_attempts(1)
                    .initial_backoff(Duration::from_millis(10))
                    .max_backoff(Duration::from_millis(10))
                    .max_elapsed(Duration::from_millis(10)),
            ),
        )
    })
}

/// As `start`, with OTEL_* variables (read from `env`, not the process's environment).
fn start_with_env(
    receiver: &TestReceiver,
    tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder,
    env: &[(&str, &str)],
) -> Telemetry {
    static BRIDGE: Once = Once::new();
    BRIDGE.call_once(|| plain_connect::logs::install(None).expect("the first logger"));
    let settings = tune(
        Settings::builder()
            .export_url(receiver.endpoint())
            .export_token("test-token")
            .log_level("info"),
    )
    .build()
    .expect("valid settings")
    .with_env_from(|name| {
        Ok(env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string()))
    })
    .expect("valid variables");
    Telemetry::start(settings, Resource::new("core-tests", "1.0.0")).expect("pipeline starts")
}

/// Runs `threads` short-lived threads, each one span and one log record, `tag` in both.
fn short_lived_threads(threads: usize, tag: &'static str) {
    for i in 0..threads {
        std::thread::spawn(move || {
            let mut span = trace::span(tag).start();
            span.set_attribute("i", i as i64);
            log::info!("{tag} {i}");
        })
        .join()
        .unwrap();
    }
}

/// Neither timer fires during the test: nothing leaves unless an exit wakes the exporter, a
/// flush or a shutdown.
const NO_TIMERS: &[(&str, &str)] = &[
    ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ("OTEL_BLRP_SCHEDULE_DELAY", "600000"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
];

#[test]
fn flush_and_shutdown_deliver_the_records_of_threads_that_exited() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    // Far fewer records than one hand-off: the exits wake nothing.
    let telemetry = start_with_env(&receiver, |b| b, NO_TIMERS);
    short_lived_threads(10, "flushed");
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let counts = telemetry.counters();
    assert_eq!(
        (counts.spans.exported, counts.logs.exported),
        (10, 10),
        "{counts:?}"
    );
    short_lived_threads(10, "at-shutdown");
    telemetry.shutdown(Duration::from_secs(10)).unwrap();
    let named = |name: &str| receiver.spans().iter().filter(|s| s.name == name).count();
    assert_eq!((named("flushed"), named("at-shutdown")), (10, 10));
    let logged = |tag: &str| {
        receiver
            .log_records()
            .iter()
            .filter(|r| body(r).starts_with(tag))
            .count()
    };
    assert_eq!((logged("flushed "), logged("at-shutdown ")), (10, 10));
}

#[test]
fn a_burst_of_exits_reaches_the_exporter_without_waiting_for_its_timer() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    // A hand-off and a batch of 10 records: 5 exits wake the exporter, 10 make a batch.
    let telemetry = start_with_env(
        &receiver,
        |b| b.max_queue_size(160).max_export_batch_size(10),
        NO_TIMERS,
    );
    short_lived_threads(40, "burst");
    assert!(
        receiver.wait_for(Duration::from_secs(10), |r| {
            r.spans().iter().filter(|s| s.name == "burst").count() >= 30
        }),
        "the exits never woke the exporter: {:?}",
        telemetry.counters()
    );
    telemetry.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(
        receiver
            .spans()
            .iter()
            .filter(|s| s.name == "burst")
            .count(),
        40
    );
}

fn counter_total(receiver: &TestReceiver, name: &str) -> f64 {
    receiver
        .metrics_named(name)
        .iter()
        .filter_map(|m| match &m.data {
            Some(Data::Sum(sum)) => Some(
                sum.data_points
                    .iter()
                    .map(|p| match p.value {
                        Some(common::proto::metrics::v1::number_data_point::Value::AsInt(i)) => {
                            i as f64
                        }
                        Some(common::proto::metrics::v1::number_data_point::Value::AsDouble(f)) => {
                            f
                        }
                        None => 0.0,
                    })
                    .sum::<f64>(),
            ),
            _ => None,
        })
        .sum()
}

fn body(record: &common::proto::logs::v1::LogRecord) -> String {
    use common::proto::common::v1::any_value::Value;
    match record.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

#[test]
fn three_thousand_short_lived_threads_lose_nothing_behind_a_slow_endpoint() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Delay(
        Duration::from_secs(1),
        Box::new(Behavior::Ok),
    ));
    let telemetry = start(&receiver, |b| b);
    // Thread-per-request: each thread records one span and one log record and exits.
    for wave in 0..30 {
        let threads: Vec<_> = (0..100)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut span = trace::span("request").kind(SpanKind::Server).start();
                    span.set_attribute("n", (wave * 100 + i) as i64);
                    log::info!("handled {}", wave * 100 + i);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    telemetry.flush(Duration::from_secs(30)).unwrap();
    let counts = telemetry.counters();
    assert_eq!(counts.spans.dropped(), 0, "{counts:?}");
    assert_eq!(counts.logs.dropped(), 0, "{counts:?}");
    assert_eq!((counts.spans.exported, counts.logs.exported), (3000, 3000));
    let spans = receiver.spans();
    let ids: HashSet<_> = spans.iter().map(|s| s.span_id.clone()).collect();
    assert_eq!((spans.len(), ids.len()), (3000, 3000));
    let handled = receiver
        .log_records()
        .iter()
        .filter(|r| body(r).starts_with("handled "))
        .count();
    assert_eq!(handled, 3000);
    telemetry.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn eight_flooding_threads_fill_the_queue_and_every_record_is_accounted_for() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    // The first request takes 2 s: meanwhile the queue fills and overflows.
    receiver.script(vec![Behavior::Delay(
        Duration::from_secs(2),
        Box::new(Behavior::Ok),
    )]);
    let queue = 4000;
    let telemetry = start(&receiver, |b| {
        b.max_queue_size(queue).max_export_batch_size(500)
    });
    let per_thread = 4000;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let mut span = trace::span("flood").start();
                    span.set_attribute("t", t as i64);
                    span.set_attribute("i", i as i64);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    telemetry.flush(Duration::from_secs(30)).unwrap();
    let spans = telemetry.counters().spans;
    let produced = 8 * per_thread as u64;
    assert_eq!(
        spans.enqueued + spans.dropped_queue_full,
        produced,
        "{spans:?}"
    );
    assert_eq!(
        spans.enqueued,
        spans.exported + spans.dropped_send_failed + spans.dropped_rejected,
        "{spans:?}"
    );
    assert!(
        spans.dropped_queue_full > 0,
        "the queue overflowed: {spans:?}"
    );
    // Nothing was dropped before the queue was really full: it held at least its bound
    // less one hand-off (a sixteenth of it) before the first drop, plus what left meanwhile.
    assert!(spans.enqueued >= (queue - queue / 16) as u64, "{spans:?}");
    assert_eq!(receiver.spans().len() as u64, spans.exported);
    telemetry.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn a_pipeline_shut_down_while_its_endpoint_hangs_takes_nothing_from_the_next() {
    let _serial = common::serial();
    let hanging = TestReceiver::start();
    let first = start_hanging(&hanging, Duration::from_millis(800), |b| {
        b.metrics_interval(Duration::from_millis(50))
    });
    let old = metrics::counter("core.handoff.old").build().unwrap();
    old.add(1, &[]);
    trace::span("before").start().end();
    // The metrics export at 50 ms is now hanging for its 800 ms request timeout.
    std::thread::sleep(Duration::from_millis(150));
    assert!(
        first.shutdown(Duration::from_millis(200)).is_err(),
        "the endpoint hangs"
    );

    // The old exporter thread is still waiting on its request; a new pipeline starts.
    let receiver = TestReceiver::start();
    let second = start(&receiver, |b| b.metrics_interval(Duration::from_millis(50)));
    let counter = metrics::counter("core.handoff.new").build().unwrap();
    for i in 0..594 {
        counter.add(1, &[KeyValue::new("parity", (i % 2) as i64)]);
        let _span = trace::span("after").start();
        if i % 100 == 0 {
            // Long enough for the old thread's request to time out and for it to run its timers.
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    second.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(counter_total(&receiver, "core.handoff.new"), 594.0);
    assert_eq!(
        receiver
            .spans()
            .iter()
            .filter(|s| s.name == "after")
            .count(),
        594
    );
    assert_eq!(counter_total(&hanging, "core.handoff.new"), 0.0);
    assert!(hanging.spans().iter().all(|s| s.name != "after"));
    let counts = second.counters().spans;
    assert_eq!((counts.exported, counts.dropped()), (594, 0));
    second.shutdown(Duration::from_secs(5)).unwrap();
}

/// A batch size at or above the queue's bound is capped at half of it: the exporter is woken
/// and sends while the queue still has room, so a steady producer loses nothing, with no timer
/// to help.
#[test]
fn a_batch_as_big_as_the_queue_still_leaves_room() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| {
        b.max_queue_size(1000)
            .max_export_batch_size(4096)
            .export_delay(Duration::from_secs(60))
    });
    // 5 000 spans a second: far below what the exporter sends, with room for a slow machine.
    for i in 0..5000 {
        trace::span("steady").start().end();
        if i % 50 == 49 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let spans = telemetry.counters().spans;
    assert_eq!(spans.dropped_queue_full, 0, "{spans:?}");
    assert!(spans.exported >= 3000, "sent before any timer: {spans:?}");
    telemetry.shutdown(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.spans().len(), 5000);
}

/// What a shutdown itself drops is readable after it, when the `Telemetry` is gone: here the
/// spans of a request that hangs past the shutdown's deadline, counted once it times out.
#[test]
fn the_counters_outlive_the_shutdown_that_consumes_the_telemetry() {
    let _serial = common::serial();
    let hanging = TestReceiver::start();
    let telemetry = start_hanging(&hanging, Duration::from_millis(500), |b| b);
    let counters = telemetry.counters_reader();
    for _ in 0..10 {
        trace::span("lost at shutdown").start().end();
    }
    assert!(telemetry.shutdown(Duration::from_millis(100)).is_err());
    let settled = std::time::Instant::now() + Duration::from_secs(5);
    let spans = loop {
        let spans = counters.read().spans;
        if spans.enqueued == spans.exported + spans.dropped() || std::time::Instant::now() > settled
        {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (spans.enqueued, spans.exported, spans.dropped_send_failed),
        (10, 0, 10),
        "{spans:?}"
    );
    assert_eq!(
        Telemetry::disabled().counters_reader().read(),
        Default::default()
    );
}

#[test]
fn recording_after_shutdown_keeps_nothing() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let counter = metrics::counter("core.after_shutdown").build().unwrap();
    let telemetry = start(&receiver, |b| b);
    counter.add(5, &[]);
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(counter_total(&receiver, "core.after_shutdown"), 5.0);

    let rss_before = resident_kib();
    for i in 0..200_000 {
        let mut span = trace::span("ignored").start();
        span.set_attribute("i", i as i64);
        counter.add(1, &[KeyValue::new("i", (i % 1000) as i64)]);
        if i % 10 == 0 {
            log::info!("ignored {i}");
        }
    }
    let grown = resident_kib().saturating_sub(rss_before);
    assert!(
        grown < 4 * 1024,
        "memory grew by {grown} KiB after shutdown"
    );

    // A later pipeline sees none of it.
    let later = TestReceiver::start();
    let telemetry = start(&later, |b| b);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(counter_total(&later, "core.after_shutdown"), 0.0);
    assert!(later.spans().is_empty());
    assert!(later
        .log_records()
        .iter()
        .all(|r| !body(r).starts_with("ignored")));
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

fn resident_kib() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

#[test]
fn a_panicking_span_consumer_is_counted_and_export_goes_on() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b.max_export_batch_size(500));
    telemetry.add_span_consumer(|_: &[trace::SpanData]| panic!("a consumer bug"));
    let seen = Arc::new(AtomicUsize::new(0));
    let names_ok = Arc::new(AtomicUsize::new(0));
    {
        let seen = Arc::clone(&seen);
        let names_ok = Arc::clone(&names_ok);
        telemetry.add_span_consumer(move |spans: &[trace::SpanData]| {
            seen.fetch_add(spans.len(), Ordering::Relaxed);
            let good = spans
                .iter()
                .filter(|s| s.name.as_str() == "work" && s.attributes.len() == 1)
                .count();
            names_ok.fetch_add(good, Ordering::Relaxed);
        });
    }
    for i in 0..2000 {
        let mut span = trace::span("work").start();
        span.set_attribute("i", i as i64);
    }
    telemetry.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.spans().len(), 2000);
    assert_eq!(seen.load(Ordering::Relaxed), 2000);
    assert_eq!(names_ok.load(Ordering::Relaxed), 2000);
    let counts = telemetry.counters();
    assert_eq!(counts.spans.exported, 2000);
    assert!(counts.span_consumer_panics >= 4, "{counts:?}");
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}
