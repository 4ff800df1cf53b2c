//! Faults, overload and hostile responses: for each, the app thread is not held up, shutdown keeps
//! its deadline, every item is accounted for, memory stays bounded, and export resumes after.

mod common;

use common::{Behavior, TestReceiver};
use plain_connect::trace;
use plain_connect::SignalCounts;
use plain_connect::{metrics, KeyValue, Resource, Settings, SettingsBuilder, Telemetry};
use std::time::{Duration, Instant};

fn quick_retries() -> plain_connect::RetryPolicy {
    plain_connect::RetryPolicy::default()
        .max_attempts(3)
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(200))
        .max_elapsed(Duration::from_secs(3))
}

fn start_at(url: &str, tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder) -> Telemetry {
    let settings = tune(
        Settings::builder()
            .export_url(url)
            .export_token("secret-token")
            .retry(quick_retries())
            // The scripted answers are for trace requests: no metrics request in between.
            .process_metrics(false)
            .health_metrics(false),
    )
    .build()
    .unwrap();
    Telemetry::start(settings, Resource::new("fault-tests", "1")).unwrap()
}

fn spans(n: usize) {
    for i in 0..n {
        let mut span = trace::span("work").start();
        span.set_attribute("i", i as i64);
    }
}

/// The fastest of five rounds of `n` spans, in ns per span.
fn app_cost(n: usize) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            spans(n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn settled(c: &SignalCounts, produced: u64) {
    assert_eq!(c.enqueued + c.dropped_queue_full, produced, "{c:?}");
    assert_eq!(
        c.enqueued,
        c.exported + c.dropped_send_failed + c.dropped_rejected,
        "{c:?}"
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

#[test]
fn a_slow_drip_endpoint_costs_the_app_nothing_and_shutdown_keeps_its_deadline() {
    let _serial = common::serial();
    let healthy = TestReceiver::start();
    let telemetry = start_at(&healthy.endpoint(), |b| b);
    let healthy_cost = app_cost(20_000);
    telemetry.shutdown(Duration::from_secs(10)).unwrap();

    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::SlowDrip);
    let telemetry = start_at(&receiver.endpoint(), |b| {
        b.export_delay(Duration::from_millis(50))
    });
    std::thread::sleep(Duration::from_millis(100));
    let faulted_cost = app_cost(20_000);
    assert!(
        faulted_cost < healthy_cost * 2.0 + 200.0,
        "app-thread cost {faulted_cost:.0} ns/span against a slow endpoint vs {healthy_cost:.0} healthy"
    );
    let started = Instant::now();
    let _ = telemetry.shutdown(Duration::from_millis(700));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "shutdown took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_reset_mid_request_is_retried_and_delivered() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.script(vec![Behavior::ResetMidRequest]);
    let telemetry = start_at(&receiver.endpoint(), |b| b);
    spans(10);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters().spans;
    assert_eq!(c.exported, 10, "{c:?}");
    assert_eq!(receiver.spans().len(), 10);
    settled(&c, 10);
}

#[test]
fn garbage_and_huge_response_bodies_are_bounded_and_accounted() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.script(vec![
        Behavior::GarbageBody,
        Behavior::HugeBody(5 * 1024 * 1024),
    ]);
    let telemetry = start_at(&receiver.endpoint(), |b| b);
    spans(3);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    spans(4);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters().spans;
    // 200 + undecodable body: the status says accepted. 200 + 5 MiB body: over the 4 MiB cap,
    // a failed send (not retried, as the OTLP spec says).
    assert_eq!((c.exported, c.dropped_send_failed), (3, 4), "{c:?}");
    settled(&c, 7);
    spans(2);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(telemetry.counters().spans.exported, 5, "export resumes");
}

#[test]
fn retry_after_garbage_dates_and_huge_values_are_handled() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let in_one_second = {
        // An HTTP date about one second ahead.
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 2;
        http_date(secs)
    };
    receiver.script(vec![
        Behavior::StatusWithRetryAfter(503, "soon-ish".into()),
        Behavior::StatusWithRetryAfter(429, in_one_second),
        Behavior::StatusWithRetryAfter(429, "99999999999".into()),
    ]);
    let telemetry = start_at(&receiver.endpoint(), |b| {
        b.retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(4)
                .initial_backoff(Duration::from_millis(20))
                .max_backoff(Duration::from_secs(5))
                .max_elapsed(Duration::from_secs(4)),
        )
    });
    spans(1);
    let started = Instant::now();
    let result = telemetry.flush(Duration::from_secs(6));
    let took = started.elapsed();
    let requests = receiver.requests();
    // garbage → ordinary backoff; the date → waits until then; the huge value → capped by the
    // policy's max backoff and the retry budget, so the batch is dropped, never waited on for years.
    assert!(requests.len() >= 3, "{} requests", requests.len());
    assert!(requests[2].received_at - requests[1].received_at >= Duration::from_millis(900));
    assert!(took < Duration::from_secs(7), "flush took {took:?}");
    result.unwrap();
    let c = telemetry.counters().spans;
    assert_eq!((c.exported, c.dropped_send_failed), (0, 1), "{c:?}");
    assert_eq!(
        requests.len(),
        3,
        "the huge Retry-After ended the retries instead of a 5 s wait"
    );
}

fn http_date(unix: u64) -> String {
    let days = unix / 86_400;
    let (h, m, s) = ((unix / 3600) % 24, (unix / 60) % 60, unix % 60);
    // Civil from days (H. Hinnant).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let month_name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][month as usize - 1];
    format!("{weekday}, {d:02} {month_name} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[test]
fn https_to_an_endpoint_that_does_not_speak_tls_fails_and_never_falls_back_to_plain_text() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let url = receiver.endpoint().replace("http://", "https://");
    let telemetry = start_at(&url, |b| b);
    spans(2);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters().spans;
    assert_eq!(c.exported, 0, "{c:?}");
    assert_eq!(c.dropped_send_failed + c.dropped_rejected, 2, "{c:?}");
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.header("authorization").is_none()),
        "the token never crossed in clear"
    );
}

#[test]
fn eight_producers_flooding_a_slow_endpoint_are_accounted_exactly_with_flat_memory() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Delay(
        Duration::from_millis(50),
        Box::new(Behavior::Ok),
    ));
    let telemetry = start_at(&receiver.endpoint(), |b| {
        b.max_queue_size(8192)
            .export_delay(Duration::from_millis(100))
    });
    let histogram = metrics::histogram("fault.flood").build().unwrap();
    let flood = |seconds: f64| {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let workers: Vec<_> = (0..8)
            .map(|t| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    let mut spans_made = 0u64;
                    while Instant::now() < deadline {
                        for _ in 0..100 {
                            trace::span("flood").start().end();
                            histogram.record(1.0, &[KeyValue::new("thread", t as i64)]);
                        }
                        spans_made += 100;
                    }
                    spans_made
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
    };
    let mut produced = flood(0.5); // warm-up
    let warm_rss = rss_kib();
    produced += flood(1.5);
    let after_rss = rss_kib();
    telemetry.flush(Duration::from_secs(30)).unwrap();
    let c = telemetry.counters().spans;
    settled(&c, produced);
    assert!(
        c.dropped_queue_full > 0,
        "the slow endpoint forced drops: {c:?}"
    );
    assert_eq!(receiver.spans().len() as u64, c.exported);
    assert!(
        after_rss < warm_rss + 64 * 1024,
        "RSS grew from {warm_rss} KiB to {after_rss} KiB under a sustained flood"
    );
}
