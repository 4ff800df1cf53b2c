//! HTTP server and database client helpers: semantic-convention names, attributes, status, parent
//! extraction and duration histograms, decoded from a loopback receiver.

mod common;

use common::{hex, int_attr, string_attr, TestReceiver};
use plain_connect::instrument::{db, http};
use plain_connect::proto::metrics::v1::metric::Data;
use plain_connect::proto::trace::v1::{span::SpanKind, status::StatusCode};
use plain_connect::{Resource, Settings, Telemetry};
use std::time::Duration;

fn start(receiver: &TestReceiver) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new("instrumentation-tests", "1")).unwrap()
}

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn an_http_request_span_follows_the_conventions() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    {
        let mut request = http::server_request("GET", "/users/42")
            .scheme("https")
            .query("expand=orders")
            .server("api.example.com", 443)
            .client_address("10.1.2.3")
            .user_agent("curl/8.5")
            .traceparent(Some(PARENT), Some("vendor=x"))
            .start();
        {
            let query = db::query("postgresql", "SELECT * FROM users WHERE id = 42")
                .namespace("shop")
                .start();
            query.finish(None::<&str>);
        }
        request.set_route("/users/{id}");
        request.finish(200);
    }
    http::server_request("PURGE", "/cache").start().finish(503);
    http::server_request("POST", "/orders")
        .traceparent(Some("00-garbage"), None)
        .start()
        .finish(201);
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let get = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let request = get("GET /users/{id}");
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(hex(&request.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&request.parent_span_id), "b7ad6b7169203331");
    assert_eq!(request.trace_state, "vendor=x");
    assert_eq!(request.flags & 0x300, 0x300, "parent is remote");
    let a = &request.attributes;
    assert_eq!(
        string_attr(a, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(string_attr(a, "url.path").as_deref(), Some("/users/42"));
    assert_eq!(string_attr(a, "url.scheme").as_deref(), Some("https"));
    assert_eq!(
        string_attr(a, "url.query").as_deref(),
        Some("expand=orders")
    );
    assert_eq!(
        string_attr(a, "server.address").as_deref(),
        Some("api.example.com")
    );
    assert_eq!(int_attr(a, "server.port"), Some(443));
    assert_eq!(
        string_attr(a, "client.address").as_deref(),
        Some("10.1.2.3")
    );
    assert_eq!(
        string_attr(a, "user_agent.original").as_deref(),
        Some("curl/8.5")
    );
    assert_eq!(string_attr(a, "http.route").as_deref(), Some("/users/{id}"));
    assert_eq!(int_attr(a, "http.response.status_code"), Some(200));
    assert!(request.status.is_none(), "2xx leaves the status unset");

    let query = get("SELECT users");
    assert_eq!(query.kind, SpanKind::Client as i32);
    assert_eq!(query.parent_span_id, request.span_id);
    let q = &query.attributes;
    assert_eq!(
        string_attr(q, "db.system.name").as_deref(),
        Some("postgresql")
    );
    assert_eq!(
        string_attr(q, "db.query.text").as_deref(),
        Some("SELECT * FROM users WHERE id = ?")
    );
    assert_eq!(
        string_attr(q, "db.operation.name").as_deref(),
        Some("SELECT")
    );
    assert_eq!(
        string_attr(q, "db.collection.name").as_deref(),
        Some("users")
    );
    assert_eq!(string_attr(q, "db.namespace").as_deref(), Some("shop"));

    let other = get("HTTP");
    assert_eq!(
        string_attr(&other.attributes, "http.request.method").as_deref(),
        Some("_OTHER")
    );
    assert_eq!(
        string_attr(&other.attributes, "http.request.method_original").as_deref(),
        Some("PURGE")
    );
    assert_eq!(
        string_attr(&other.attributes, "error.type").as_deref(),
        Some("503")
    );
    assert_eq!(other.status.clone().unwrap().code, StatusCode::Error as i32);

    let fresh = get("POST");
    assert!(
        fresh.parent_span_id.is_empty(),
        "an invalid traceparent starts a new trace"
    );

    let duration = receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == "http.server.request.duration")
        .expect("duration histogram");
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(h)) = duration.data else {
        panic!("histogram")
    };
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 3);
    assert_eq!(
        h.data_points[0].explicit_bounds,
        plain_connect::metrics::HTTP_SERVER_DURATION_BOUNDS
    );
}

#[test]
fn failed_queries_are_errors_and_durations_count_every_query() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .trace_sample_rate(0.0)
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("db-tests", "1")).unwrap();
    for i in 0..5 {
        let q = db::query("sqlite", "INSERT INTO \"orders\" (id) VALUES (1)").start();
        q.finish(if i == 0 {
            Some("constraint_violation")
        } else {
            None
        });
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.spans().is_empty(), "rate 0: no spans");
    let metric = receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == "db.client.operation.duration")
        .expect("duration histogram");
    let Some(Data::Histogram(h)) = metric.data else {
        panic!("histogram")
    };
    let total: u64 = h.data_points.iter().map(|p| p.count).sum();
    assert_eq!(total, 5, "metrics ignore sampling");
    let failed = h
        .data_points
        .iter()
        .find(|p| string_attr(&p.attributes, "error.type").is_some())
        .unwrap();
    assert_eq!(failed.count, 1);
    assert_eq!(
        string_attr(&failed.attributes, "db.collection.name").as_deref(),
        Some("orders")
    );
    assert_eq!(
        string_attr(&failed.attributes, "db.operation.name").as_deref(),
        Some("INSERT")
    );
}
