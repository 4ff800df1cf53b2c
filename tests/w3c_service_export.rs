//! The W3C suite's test service with export on, driven over loopback: the trace continues across
//! it with new span ids, and what its embedded receiver got matches what it sent downstream.
#![cfg(feature = "receiver")]

#[allow(dead_code)]
#[path = "../examples/w3c_service.rs"]
mod w3c_service;

use plain_connect::proto::trace::v1::span::SpanKind;
use plain_connect::receiver::Receiver;
use plain_connect::trace::propagation;
use plain_connect::{Resource, Settings, Telemetry};
use std::sync::mpsc;
use std::time::Duration;

const TRACE: &str = "12345678901234567890123456789012";
const PARENT: &str = "1234567890123456";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `traceparent` and the `tracestate` values one downstream call carried.
type TraceHeaders = (Vec<String>, Vec<String>);

/// A loopback server standing in for the next service: sends each request's trace headers back.
fn downstream() -> (String, mpsc::Receiver<TraceHeaders>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", server.server_addr().to_ip().unwrap());
    let (sender, received) = mpsc::channel();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let values = |name: &str| -> Vec<String> {
                request
                    .headers()
                    .iter()
                    .filter(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                    .map(|h| h.value.to_string())
                    .collect()
            };
            let headers = (values("traceparent"), values("tracestate"));
            let _ = request.respond(tiny_http::Response::from_string("{}"));
            if sender.send(headers).is_err() {
                break;
            }
        }
    });
    (url, received)
}

fn drive(service: &str, downstream: &str, headers: &[(&str, &str)]) {
    let body = format!(r#"[{{"url": "{downstream}", "arguments": []}}]"#);
    let mut request = ureq::http::Request::post(service);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = ureq::run(request.body(body).unwrap()).unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

#[test]
fn the_trace_continues_through_the_service_and_its_export_matches_what_it_sent() {
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("test")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("w3c-service-test", "1")).unwrap();
    let service = w3c_service::Service::start("127.0.0.1:0").unwrap();
    let (downstream, calls) = downstream();
    let next = || calls.recv_timeout(Duration::from_secs(5)).unwrap();

    let incoming = format!("00-{TRACE}-{PARENT}-01");
    drive(
        &service.url(),
        &downstream,
        &[
            ("traceparent", &incoming),
            ("tracestate", "foo=1,foo=2"),
            ("tracestate", "bar@=3"),
        ],
    );
    let (traceparents, tracestates) = next();
    assert_eq!(tracestates, ["foo=1,bar@=3"]);
    let [sent] = traceparents.as_slice() else {
        panic!("one traceparent expected: {traceparents:?}")
    };
    let sent = propagation::extract(sent, None).unwrap();
    assert_eq!(sent.trace_id().to_string(), TRACE);
    assert_ne!(sent.span_id().to_string(), PARENT);
    assert_eq!(sent.flags(), 0x01);

    // Unsampled upstream: a new span id, nothing exported. Two traceparents: a new trace.
    drive(
        &service.url(),
        &downstream,
        &[("traceparent", &format!("00-{TRACE}-{PARENT}-02"))],
    );
    let (unsampled, _) = next();
    let unsampled = propagation::extract(&unsampled[0], None).unwrap();
    assert_eq!(
        (unsampled.trace_id().to_string().as_str(), unsampled.flags()),
        (TRACE, 0x02)
    );
    drive(
        &service.url(),
        &downstream,
        &[("traceparent", &incoming), ("traceparent", &incoming)],
    );
    let (fresh, _) = next();
    let fresh = propagation::extract(&fresh[0], None).unwrap();
    assert_ne!(fresh.trace_id().to_string(), TRACE);

    let record = service.stop();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let received = receiver.snapshot();
    assert_eq!(
        w3c_service::check_export(&record, &received),
        Vec::<String>::new()
    );

    let spans: Vec<_> = received.spans().collect();
    assert_eq!(
        spans.len(),
        4,
        "two sampled requests, each a server and a client span"
    );
    let server = spans
        .iter()
        .find(|s| s.kind == SpanKind::Server as i32 && hex(&s.trace_id) == TRACE)
        .expect("the continued request's server span");
    assert_eq!(hex(&server.parent_span_id), PARENT);
    assert_eq!(server.trace_state, "foo=1,bar@=3");
    let client = spans
        .iter()
        .find(|s| hex(&s.span_id) == sent.span_id().to_string())
        .expect("the client span named by the traceparent sent");
    assert_eq!(client.kind, SpanKind::Client as i32);
    assert_eq!(client.parent_span_id, server.span_id);

    // The check fails when the export does not match: a sampled request whose span never came.
    let mut tampered = record;
    tampered.requests[0].span_id = plain_connect::trace::SpanId::from_bytes([0x5a; 8]);
    assert!(!w3c_service::check_export(&tampered, &received).is_empty());
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}
