//! The demo, run small and checked through what its embedded receiver decoded and shows.
#![cfg(feature = "receiver")]

mod common;

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

use common::{string_attr, TestReceiver};

use plain_connect::proto::common::v1::any_value;
use plain_connect::proto::metrics::v1::metric::Data;
use std::collections::HashMap;

#[test]
fn the_demo_shows_nested_spans_errors_histograms_and_correlated_logs() {
    let _serial = common::serial();
    assert!(
        !plain_connect::Settings::from_env()
            .unwrap()
            .is_export_active(),
        "unset the export variables (PLAIN_CONNECT_EXPORT_*, OTEL_EXPORTER_OTLP_*) to run this test"
    );
    let outcome = demo::run(demo::DemoConfig {
        requests: 9,
        workers: 3,
        print: false,
        html: None,
        serve: false,
    })
    .expect("demo runs");
    let received = outcome.received.expect("the embedded receiver was used");
    let spans: Vec<_> = received.spans().cloned().collect();

    // Every request is a SERVER root with its queries as children in the same trace.
    let servers: Vec<_> = spans
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(servers.len(), 9);
    let by_id: HashMap<_, _> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| !s.parent_span_id.is_empty())
        .collect();
    assert_eq!(clients.len() as u64, outcome.queries);
    for child in &clients {
        let parent = by_id.get(&child.parent_span_id).expect("parent arrived");
        assert_eq!(parent.trace_id, child.trace_id);
        assert!(
            parent.parent_span_id.is_empty(),
            "queries nest directly under the request"
        );
    }
    // The failing request: an error status with an exception event.
    let failed: Vec<_> = servers
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].events.iter().any(|e| e.name == "exception"));

    // The DB histogram counts every query.
    let db_count: u64 = received
        .metrics()
        .filter(|m| m.name == "db.client.operation.duration")
        .filter_map(|m| match &m.data {
            Some(Data::Histogram(h)) => Some(h.data_points.iter().map(|p| p.count).sum::<u64>()),
            _ => None,
        })
        .sum();
    assert_eq!(db_count, outcome.queries);

    // Every log record inside a request carries that request's trace id.
    let request_traces: Vec<_> = servers.iter().map(|s| s.trace_id.clone()).collect();
    let records: Vec<_> = received.log_records().collect();
    assert!(records.len() >= 9);
    for record in &records {
        assert!(
            request_traces.contains(&record.trace_id),
            "log {:?} is not in a request",
            record.body
        );
    }

    // The view says so too.
    let mut text = Vec::new();
    received.render_text(&mut text, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("✗ POST /orders"), "{text}");
    assert!(
        text.contains("exception InventoryError: stock went negative"),
        "{text}"
    );
    assert!(
        text.contains("    SELECT users"),
        "child spans are indented under their request"
    );
    assert!(
        text.contains("p95≈"),
        "histograms show estimated percentiles"
    );
    let html = received.render_html();
    assert!(html.starts_with("<!doctype html>") && html.contains("POST /orders"));
    assert!(!html.contains("<script"));
    let body = |r: &&plain_connect::proto::logs::v1::LogRecord| match r
        .body
        .as_ref()
        .and_then(|b| b.value.as_ref())
    {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    };
    assert!(records
        .iter()
        .any(|r| body(r) == "order rejected: inventory update failed"));
}

/// A user with a collector sets the standard variables: the demo exports there, not to its
/// embedded receiver, and says where it sent what.
#[test]
fn the_demo_exports_where_the_standard_variables_say_and_tells_where_it_sent_what() {
    let _serial = common::serial();
    let collector = TestReceiver::start();
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()),
        ("OTEL_SERVICE_NAME", "checkout".to_owned()),
    ];
    for (name, value) in &vars {
        std::env::set_var(name, value);
    }
    let outcome = demo::run(demo::DemoConfig {
        requests: 6,
        workers: 2,
        print: false,
        html: None,
        serve: false,
    });
    for (name, _) in &vars {
        std::env::remove_var(name);
    }
    let outcome = outcome.expect("demo runs");
    assert!(
        outcome.received.is_none(),
        "the embedded receiver was not used"
    );

    let spans = collector.spans();
    assert_eq!(spans.len() as u64, 6 + outcome.queries);
    let c = &outcome.counters;
    assert_eq!(c.spans.exported, spans.len() as u64, "{c:?}");
    assert_eq!(
        c.logs.exported,
        collector.log_records().len() as u64,
        "{c:?}"
    );
    assert!(c.metric_points.exported > 0, "{c:?}");
    for resource in collector.resource_spans() {
        let attributes = resource.resource.unwrap().attributes;
        assert_eq!(
            string_attr(&attributes, "service.name").as_deref(),
            Some("checkout")
        );
    }
    let summary = &outcome.summary;
    assert!(
        summary.contains(&format!("sent to {}", collector.endpoint())),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "spans          {:>6} exported, 0 dropped",
            c.spans.exported
        )),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("log records    {:>6} exported", c.logs.exported))
            && summary.contains(&format!("{}/v1/logs", collector.endpoint())),
        "{summary}"
    );
}
