//! HTTP server and database client helpers: semantic-convention names, attributes, status, parent
//! extraction and duration histograms, decoded from a loopback receiver.

mod common;

use common::proto::metrics::v1::metric::Data;
use common::proto::trace::v1::{span::SpanKind, status::StatusCode};
use common::{hex, int_attr, string_attr, TestReceiver};
use plain_connect::instrument::{db, http};
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

/// The histogram `name` as it arrived: a duration in seconds.
fn duration_histogram(
    receiver: &TestReceiver,
    name: &str,
) -> common::proto::metrics::v1::Histogram {
    let metric = receiver
        .metrics()
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no histogram {name}"));
    assert_eq!(metric.unit, "s", "{name}");
    let Some(Data::Histogram(histogram)) = metric.data else {
        panic!("{name} is not a histogram")
    };
    histogram
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
            query.end_ok();
        }
        request.set_route("/users/{id}");
        request.end(200);
    }
    http::server_request("PURGE", "/cache").start().end(503);
    http::server_request("POST", "/orders")
        .traceparent(Some("00-garbage"), None)
        .start()
        .end(201);
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

    let h = duration_histogram(&receiver, "http.server.request.duration");
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 3);
    assert_eq!(
        h.data_points[0].explicit_bounds,
        plain_connect::metrics::SECONDS_BOUNDS
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
        if i == 0 {
            q.end_error_type("constraint_violation");
        } else {
            q.end_ok();
        }
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.spans().is_empty(), "rate 0: no spans");
    let h = duration_histogram(&receiver, "db.client.operation.duration");
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

/// A one-request-per-connection HTTP server on loopback that serves `requests` requests as
/// server spans, parented by the `traceparent` that arrived, answering 404 for `/missing`.
fn serve_instrumented(requests: usize) -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..requests {
            let (socket, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(socket.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let Some((name, value)) = line.trim_end().split_once(':') else {
                    break;
                };
                headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            };
            let mut parts = request_line.split(' ');
            let method = parts.next().unwrap();
            let target = parts.next().unwrap();
            let path = target.split('?').next().unwrap();
            let request = http::server_request(method, path)
                .traceparent(header("traceparent"), header("tracestate"))
                .start();
            let status = if path == "/missing" { 404 } else { 200 };
            write!(
                &socket,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            .unwrap();
            request.end(status);
        }
    });
    (port, server)
}

#[test]
fn an_http_client_request_follows_the_conventions_across_a_real_hop() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    let (port, server) = serve_instrumented(2);
    let refused_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let checkout = plain_connect::trace::span("checkout").start();
    for url in [
        format!("http://user:pw@127.0.0.1:{port}/ok?page=2&sig=secret"),
        format!("http://127.0.0.1:{port}/missing"),
        format!("http://127.0.0.1:{refused_port}/down"),
    ] {
        let mut request = http::client_request("GET", &url).start();
        // ureq's builder is taken and returned by value: the headers come as owned pairs.
        let mut builder = ureq::get(url.replace("user:pw@", ""));
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        request.set_protocol_version("1.1");
        match builder.call() {
            Ok(response) => request.end(response.status().as_u16()),
            Err(ureq::Error::StatusCode(code)) => request.end(code),
            Err(error) => request.end_error(&error),
        }
    }
    let timed_out = http::client_request("POST", "https://api.example.com/slow").start();
    timed_out.end_error_type("timeout");
    drop(checkout);
    server.join().unwrap();
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let checkout = spans.iter().find(|s| s.name == "checkout").unwrap();
    let clients: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(clients.len(), 4);
    let client_for = |path: &str| {
        *clients
            .iter()
            .find(|s| {
                string_attr(&s.attributes, "url.full")
                    .unwrap()
                    .contains(path)
            })
            .unwrap_or_else(|| panic!("no client span for {path}"))
    };
    let timed_out = client_for("/slow");
    assert_eq!(timed_out.name, "POST");
    assert_eq!(
        string_attr(&timed_out.attributes, "error.type").as_deref(),
        Some("timeout")
    );
    assert_eq!(
        string_attr(&timed_out.attributes, "server.address").as_deref(),
        Some("api.example.com")
    );
    assert_eq!(int_attr(&timed_out.attributes, "server.port"), Some(443));
    assert_eq!(
        timed_out.status.clone().unwrap().code,
        StatusCode::Error as i32
    );
    for client in clients.iter().filter(|c| c.name == "GET") {
        assert_eq!(client.name, "GET");
        assert_eq!(client.parent_span_id, checkout.span_id);
        let a = &client.attributes;
        assert_eq!(
            string_attr(a, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(
            string_attr(a, "server.address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            string_attr(a, "network.protocol.version").as_deref(),
            Some("1.1")
        );
    }

    let ok = client_for("/ok");
    assert_eq!(
        string_attr(&ok.attributes, "url.full").unwrap(),
        format!("http://REDACTED:REDACTED@127.0.0.1:{port}/ok?page=2&sig=REDACTED")
    );
    assert_eq!(
        int_attr(&ok.attributes, "server.port"),
        Some(i64::from(port))
    );
    assert_eq!(
        int_attr(&ok.attributes, "http.response.status_code"),
        Some(200)
    );
    assert!(
        ok.status.is_none(),
        "2xx leaves a client span's status unset"
    );
    assert_eq!(string_attr(&ok.attributes, "error.type"), None);

    let missing = client_for("/missing");
    assert_eq!(
        int_attr(&missing.attributes, "http.response.status_code"),
        Some(404)
    );
    assert_eq!(
        string_attr(&missing.attributes, "error.type").as_deref(),
        Some("404")
    );
    assert_eq!(
        missing.status.clone().unwrap().code,
        StatusCode::Error as i32,
        "4xx is an error on a client span"
    );

    let down = client_for("/down");
    assert_eq!(
        int_attr(&down.attributes, "http.response.status_code"),
        None
    );
    assert_eq!(
        string_attr(&down.attributes, "error.type").as_deref(),
        Some("ureq::error::Error")
    );
    assert_eq!(down.status.clone().unwrap().code, StatusCode::Error as i32);
    assert!(!down.status.clone().unwrap().message.is_empty());

    // The hop: each server span is the child of the client span that called it.
    for (path, client) in [("/ok", ok), ("/missing", missing)] {
        let server = spans
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server as i32
                    && string_attr(&s.attributes, "url.path").as_deref() == Some(path)
            })
            .unwrap_or_else(|| panic!("no server span for {path}"));
        assert_eq!(server.trace_id, client.trace_id);
        assert_eq!(server.parent_span_id, client.span_id);
    }
    let server_missing = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && s.parent_span_id == missing.span_id)
        .unwrap();
    assert!(
        server_missing.status.is_none(),
        "4xx is the client's error, not the server's"
    );

    let h = duration_histogram(&receiver, "http.client.request.duration");
    assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 4);
    for point in &h.data_points {
        assert_eq!(
            point.explicit_bounds,
            plain_connect::metrics::SECONDS_BOUNDS
        );
        assert!(string_attr(&point.attributes, "server.address").is_some());
    }
    let errors: Vec<_> = h
        .data_points
        .iter()
        .filter_map(|p| string_attr(&p.attributes, "error.type"))
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors.contains(&"404".to_owned()));
    assert!(errors.contains(&"timeout".to_owned()));
}

#[test]
fn queries_end_with_their_result_without_type_annotations() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    db::query("sqlite", "SELECT 1").start().end_ok();
    let parsed: Result<u32, std::num::ParseIntError> = "x".parse();
    db::query("sqlite", "SELECT 2").start().end_result(&parsed);
    let boxed: Result<(), Box<dyn std::error::Error>> = Err("disk full".into());
    db::query("sqlite", "SELECT 3").start().end_result(&boxed);
    let fine: Result<(), Box<dyn std::error::Error>> = Ok(());
    db::query("sqlite", "SELECT 4").start().end_result(&fine);
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out");
    db::query("sqlite", "SELECT 5").start().end_error(&io);
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let error = StatusCode::Error as i32;
    let mut outcomes: Vec<_> = receiver
        .spans()
        .iter()
        .map(|s| {
            (
                string_attr(&s.attributes, "error.type"),
                s.status.clone().map(|s| (s.code, s.message)),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            (None, None),
            (None, None),
            (
                Some("_OTHER".to_owned()),
                Some((error, "disk full".to_owned()))
            ),
            (
                Some("core::num::error::ParseIntError".to_owned()),
                Some((error, "invalid digit found in string".to_owned()))
            ),
            (
                Some("std::io::error::Error".to_owned()),
                Some((error, "read timed out".to_owned()))
            ),
        ]
    );
}

#[test]
fn a_request_and_a_query_can_be_read_through_shared_references() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    let request = http::server_request("GET", "/")
        .traceparent(Some(PARENT), None)
        .start();
    let query = db::query("sqlite", "SELECT 1").start();
    let (request_context, query_context) = (request.context().clone(), query.context().clone());
    assert_eq!(
        request_context.trace_id().to_string(),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(query_context.trace_id(), request_context.trace_id());
    query.end_ok();
    request.end(200);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let server = spans.iter().find(|s| s.name == "GET").unwrap();
    assert_eq!(hex(&server.span_id), request_context.span_id().to_string());
}

#[test]
fn helpers_can_be_handed_to_another_thread_and_ended_there() {
    fn assert_send<T: Send>() {}
    assert_send::<http::ServerRequest>();
    assert_send::<http::ClientRequest>();
    assert_send::<db::Query>();

    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    // The dispatcher pattern: the accepting thread starts the request, a worker serves and ends it.
    let mut request = http::server_request("GET", "/jobs/7").start();
    request.set_route("/jobs/{id}");
    let request_context = request.context().clone();
    std::thread::spawn(move || {
        let _attached = request.context().clone().attach();
        let query = db::query("sqlite", "SELECT * FROM jobs WHERE id = ?")
            .parameterized()
            .start();
        query.end_ok();
        request.end(200);
    })
    .join()
    .unwrap();
    // Back on the accepting thread, the request it handed away is not current any more: the
    // next request without a traceparent is a new trace.
    http::server_request("GET", "/health").start().end(200);
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let get = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"))
    };
    let job = get("GET /jobs/{id}");
    assert_eq!(hex(&job.span_id), request_context.span_id().to_string());
    assert_eq!(
        int_attr(&job.attributes, "http.response.status_code"),
        Some(200)
    );
    let query = get("SELECT jobs");
    assert_eq!(query.parent_span_id, job.span_id);
    assert_eq!(query.trace_id, job.trace_id);
    let health = get("GET");
    assert!(health.parent_span_id.is_empty(), "a new root");
    assert_ne!(health.trace_id, job.trace_id);
}
