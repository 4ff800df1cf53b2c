//! Standard OTEL_* configuration end to end: a collector endpoint with no Plain token, custom
//! headers, service name and resource attributes, and a sampler that ignores the parent.

mod common;

use common::{string_attr, TestReceiver};
use plain_connect::{trace, Resource, Settings, Telemetry};
use std::collections::HashMap;
use std::time::Duration;

fn settings_from(vars: &[(&str, String)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Settings::default()
        .with_env_from(move |name| Ok(map.get(name).cloned()))
        .unwrap()
}

#[test]
fn an_otel_configured_collector_gets_everything_without_the_plain_token() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = settings_from(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-honeycomb-team=abc%3D".into(),
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-dataset=traces".into(),
        ),
        ("OTEL_SERVICE_NAME", "checkout".into()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=staging".into(),
        ),
    ]);
    assert!(settings.is_export_active());
    let telemetry = Telemetry::start(settings, Resource::new("from-cargo", "1.0.0")).unwrap();
    trace::span("hello").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let request = &receiver.requests()[0];
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("x-honeycomb-team"), Some("abc="));
    assert_eq!(request.header("x-dataset"), Some("traces"));
    let resource = receiver.resource_spans()[0].resource.clone().unwrap();
    assert_eq!(
        string_attr(&resource.attributes, "service.name").as_deref(),
        Some("checkout")
    );
    assert_eq!(
        string_attr(&resource.attributes, "service.version").as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        string_attr(&resource.attributes, "deployment.environment.name").as_deref(),
        Some("staging")
    );
}

#[test]
fn per_signal_endpoints_are_used_as_given_and_sdk_disabled_wins() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = settings_from(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/custom/spans", receiver.endpoint()),
        ),
        ("OTEL_TRACES_SAMPLER", "always_off".into()),
    ]);
    let telemetry = Telemetry::start(settings, Resource::new("x", "1")).unwrap();
    let remote = trace::SpanContext::new_remote(
        trace::TraceId::from_bytes([0x4b; 16]),
        trace::SpanId::from_bytes([0x0f; 8]),
        1,
    );
    let span = trace::span("dropped despite a sampled parent")
        .parent(remote)
        .start();
    assert!(!span.is_recording(), "always_off ignores the parent");
    drop(span);
    telemetry.shutdown(Duration::from_secs(5)).unwrap();

    let settings = settings_from(&[
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/custom/spans", receiver.endpoint()),
        ),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on".into()),
    ]);
    let telemetry = Telemetry::start(settings, Resource::new("x", "1")).unwrap();
    trace::span("kept").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(receiver.request_count("/custom/spans"), 1);
    telemetry.shutdown(Duration::from_secs(5)).unwrap();

    let disabled = settings_from(&[
        ("OTEL_SDK_DISABLED", "true".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint()),
        ("PLAIN_CONNECT_EXPORT_TOKEN", "t".into()),
    ]);
    assert!(!Telemetry::start(disabled, Resource::new("x", "1"))
        .unwrap()
        .is_active());
}
