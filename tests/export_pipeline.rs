//! The export pipeline against a real loopback OTLP receiver: delivery, headers, retries,
//! deadlines, drops and exact accounting.

mod common;

use common::{Behavior, TestReceiver};
use plain_connect::trace::{self, SpanKind};
use plain_connect::{Resource, Settings, Telemetry};
use std::time::{Duration, Instant};

fn start(
    receiver: &TestReceiver,
    tune: impl FnOnce(plain_connect::SettingsBuilder) -> plain_connect::SettingsBuilder,
) -> Telemetry {
    let settings = tune(
        Settings::builder()
            .export_url(receiver.endpoint())
            .export_token("test-token"),
    )
    .build()
    .expect("valid settings");
    Telemetry::start(settings, Resource::new("export-tests", "1.2.3")).expect("pipeline starts")
}

fn quick_retries(b: plain_connect::SettingsBuilder) -> plain_connect::SettingsBuilder {
    b.retry(
        plain_connect::RetryPolicy::default()
            .max_attempts(4)
            .initial_backoff(Duration::from_millis(50))
            .max_backoff(Duration::from_secs(5))
            .max_elapsed(Duration::from_secs(10)),
    )
}

fn spans(n: usize) {
    for i in 0..n {
        let mut span = trace::span("work").kind(SpanKind::Internal).start();
        span.set_attribute("i", i as i64);
    }
}

#[test]
fn spans_arrive_with_the_otlp_headers_and_resource() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, |b| b);
    spans(3);
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let got = receiver.spans();
    assert_eq!(got.len(), 3);
    let request = &receiver.requests()[0];
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(request.header("authorization"), Some("Bearer test-token"));
    #[cfg(feature = "gzip")]
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert!(request
        .header("user-agent")
        .unwrap()
        .starts_with("plain-connect/"));
    let resource = receiver.resource_spans()[0].resource.clone().unwrap();
    let attr = |k: &str| common::string_attr(&resource.attributes, k);
    assert_eq!(attr("service.name").as_deref(), Some("export-tests"));
    assert_eq!(attr("service.version").as_deref(), Some("1.2.3"));
    assert_eq!(attr("telemetry.sdk.language").as_deref(), Some("rust"));
    assert_eq!(attr("telemetry.sdk.name").as_deref(), Some("plain-connect"));

    let counts = telemetry.counters().spans;
    assert_eq!(
        (counts.enqueued, counts.exported, counts.dropped()),
        (3, 3, 0)
    );
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_503_then_200_delivers_after_a_retry() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.script(vec![Behavior::Status(503)]);
    let telemetry = start(&receiver, quick_retries);
    spans(2);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    assert_eq!(receiver.request_count("/v1/traces"), 2);
    assert_eq!(receiver.spans().len(), 2);
    let c = telemetry.counters();
    assert_eq!(
        (c.spans.exported, c.spans.dropped(), c.requests_failed),
        (2, 0, 1)
    );
}

#[test]
fn a_429_with_retry_after_waits_that_long() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.script(vec![Behavior::StatusWithRetryAfter(429, "1".into())]);
    let telemetry = start(&receiver, quick_retries);
    spans(1);
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let requests: Vec<_> = (receiver.requests().into_iter())
        .filter(|r| r.path == "/v1/traces")
        .collect();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].received_at - requests[0].received_at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
    assert!(waited < Duration::from_secs(3), "retried after {waited:?}");
    assert_eq!(telemetry.counters().spans.exported, 1);
}

#[test]
fn a_400_is_not_retried_and_is_counted_as_rejected() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Status(400));
    let telemetry = start(&receiver, quick_retries);
    spans(5);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.request_count("/v1/traces"), 1);
    let c = telemetry.counters().spans;
    assert_eq!(
        (c.exported, c.dropped_rejected, c.dropped_send_failed),
        (0, 5, 0)
    );
}

#[test]
fn partial_success_counts_the_rejected_items() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::PartialSuccess {
        rejected: 2,
        message: "two too old".into(),
    });
    let telemetry = start(&receiver, quick_retries);
    spans(5);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.request_count("/v1/traces"), 1);
    let c = telemetry.counters().spans;
    assert_eq!((c.exported, c.dropped_rejected), (3, 2));
}

#[test]
fn an_endpoint_that_is_down_then_up_recovers() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.stop();
    let telemetry = start(&receiver, |b| {
        quick_retries(b).retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(50)
                .initial_backoff(Duration::from_millis(100))
                .max_backoff(Duration::from_millis(200))
                .max_elapsed(Duration::from_secs(20)),
        )
    });
    spans(4);
    std::thread::sleep(Duration::from_millis(300));
    receiver.restart();
    telemetry.flush(Duration::from_secs(15)).unwrap();
    assert_eq!(receiver.spans().len(), 4);
    assert_eq!(telemetry.counters().spans.exported, 4);
}

#[test]
fn shutdown_returns_by_its_deadline_when_the_endpoint_never_answers() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Hang);
    let telemetry = start(&receiver, |b| b);
    spans(10);
    let started = Instant::now();
    let result = telemetry.shutdown(Duration::from_millis(800));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    assert!(result.is_ok() || result == Err(plain_connect::ExportError::Timeout));
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Delay(
        Duration::from_millis(300),
        Box::new(Behavior::Ok),
    ));
    let telemetry = start(&receiver, |b| {
        b.max_queue_size(1024).max_export_batch_size(256)
    });
    let produced = 50_000;
    let started = Instant::now();
    spans(produced);
    let took = started.elapsed();
    telemetry.flush(Duration::from_secs(30)).unwrap();
    let c = telemetry.counters().spans;
    assert!(c.dropped_queue_full > 0, "{c:?}");
    assert_eq!(c.enqueued + c.dropped_queue_full, produced as u64, "{c:?}");
    assert_eq!(c.exported, c.enqueued, "{c:?}");
    assert_eq!(receiver.spans().len() as u64, c.exported);
    // The app thread never waited on the slow endpoint.
    assert!(took < Duration::from_secs(5), "producing took {took:?}");
}

#[test]
fn accounting_is_exact_under_several_producer_threads() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Delay(
        Duration::from_millis(20),
        Box::new(Behavior::Ok),
    ));
    let telemetry = start(&receiver, |b| b.max_queue_size(2048));
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| spans(20_000)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    telemetry.flush(Duration::from_secs(30)).unwrap();
    let c = telemetry.counters().spans;
    assert_eq!(c.enqueued + c.dropped_queue_full, 80_000, "{c:?}");
    assert_eq!(
        c.enqueued,
        c.exported + c.dropped_send_failed + c.dropped_rejected,
        "{c:?}"
    );
    assert_eq!(receiver.spans().len() as u64, c.exported, "{c:?}");
}

#[test]
fn redirects_are_not_followed_and_the_token_stays_home() {
    let _serial = common::serial();
    let elsewhere = TestReceiver::start();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Redirect(format!(
        "{}/v1/traces",
        elsewhere.endpoint()
    )));
    let telemetry = start(&receiver, quick_retries);
    spans(1);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(elsewhere.requests().len(), 0);
    assert_eq!(telemetry.counters().spans.dropped_rejected, 1);
}

#[test]
fn a_second_pipeline_is_refused_naming_the_first() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let _first = start(&receiver, |b| b);
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .build()
        .unwrap();
    let error = Telemetry::start(settings, Resource::new("x", "1")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("already installed"), "{message}");
    assert!(message.contains("export_pipeline.rs"), "{message}");
}

#[test]
fn without_a_token_every_call_is_a_no_op() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    // A URL on this machine needs no token (tests/secrets.rs); one elsewhere does.
    let settings = Settings::builder()
        .export_url(
            receiver
                .endpoint()
                .replace("127.0.0.1", "collector.example"),
        )
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("x", "1")).unwrap();
    assert!(!telemetry.is_active());
    let span = trace::span("nothing").start();
    assert!(!span.is_recording());
    assert!(!span.context().is_valid());
    drop(span);
    telemetry.flush(Duration::from_secs(1)).unwrap();
    assert_eq!(receiver.requests().len(), 0);
}
