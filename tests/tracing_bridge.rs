//! The `tracing` bridge end to end: spans with fields and nesting, events as correlated log
//! records, `log` records and our own spans inside tracing spans — from a loopback receiver.
#![cfg(feature = "tracing")]

mod common;

use common::{hex, int_attr, string_attr, TestReceiver};
use plain_connect::{Resource, Settings, Telemetry};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn tracing_spans_and_events_arrive_as_spans_and_correlated_logs() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let subscriber = tracing_subscriber::registry().with(plain_connect::tracing_bridge::layer());
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!(
            "handle request",
            otel.kind = "server",
            http.route = "/cart",
            items = 3_i64
        );
        request.in_scope(|| {
            tracing::info!(cart.total = 42.5, "cart priced");
            let query = tracing::debug_span!("SELECT carts", db.system.name = "sqlite");
            query.in_scope(|| {
                let _own = plain_connect::trace::span("own span inside").start();
            });
            request.record("items", 4_i64);
        });
        tracing::warn!("outside any span");
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let get = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let request = get("handle request");
    assert_eq!(request.kind, 2, "otel.kind = server");
    assert!(request.parent_span_id.is_empty());
    assert_eq!(
        string_attr(&request.attributes, "http.route").as_deref(),
        Some("/cart")
    );
    assert_eq!(
        int_attr(&request.attributes, "items"),
        Some(4),
        "on_record updates the field"
    );
    assert!(common::attr(&request.attributes, "otel.kind").is_none());
    let query = get("SELECT carts");
    assert_eq!(query.parent_span_id, request.span_id);
    assert_eq!(query.trace_id, request.trace_id);
    let own = get("own span inside");
    assert_eq!(
        own.parent_span_id, query.span_id,
        "our spans nest under entered tracing spans"
    );

    let logs = receiver.log_records();
    assert_eq!(logs.len(), 2);
    let priced = &logs[0];
    assert_eq!(priced.severity_number, 9);
    assert_eq!(hex(&priced.trace_id), hex(&request.trace_id));
    assert_eq!(hex(&priced.span_id), hex(&request.span_id));
    assert!(common::attr(&priced.attributes, "cart.total").is_some());
    let outside = &logs[1];
    assert_eq!(outside.severity_number, 13);
    assert!(outside.trace_id.is_empty());
}
