//! An https endpoint whose certificate does not verify (self-signed, in tests/fixtures): the
//! export fails and is counted, nothing is sent in clear, and no HTTP byte — token included —
//! reaches the server.
#![cfg(feature = "tls")]

mod common;

use plain_connect::{trace, Resource, Settings, Telemetry};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn a_certificate_that_does_not_verify_fails_and_nothing_leaks() {
    let (url, handshakes, app_bytes) = common::untrusted_tls_server();
    let settings = Settings::builder()
        .export_url(&url)
        .export_token("very-secret")
        // One request to count: the span batch's (no process or health metrics).
        .process_metrics(false)
        .health_metrics(false)
        .retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(20))
                .max_backoff(Duration::from_millis(50))
                .max_elapsed(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tls-test", "1")).unwrap();
    trace::span("over tls").start().end();
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters();
    assert_eq!(c.spans.exported, 0, "{c:?}");
    assert_eq!(
        c.spans.dropped_send_failed, 1,
        "a verification failure is a failed send: {c:?}"
    );
    assert_eq!(
        c.requests_failed, 1,
        "not retried: it will not fix itself ({c:?})"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(
        app_bytes.load(Ordering::SeqCst),
        0,
        "no HTTP byte (or token) reached the server"
    );
}
