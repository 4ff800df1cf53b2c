//! The embedded receiver as a standalone OTLP endpoint, driven by a raw TCP client the way a
//! foreign exporter would: hand-built protobuf bodies, gzip, garbage, oversized bodies.
#![cfg(feature = "receiver")]

use flate2::{write::GzEncoder, Compression};
use plain_connect::proto::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use plain_connect::proto::common::v1::{any_value, AnyValue, KeyValue};
use plain_connect::proto::resource::v1::Resource;
use plain_connect::proto::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use plain_connect::receiver::{Receiver, ReceiverOptions};
use prost::Message;
use std::io::{Read, Write};
use std::net::TcpStream;

fn post(receiver: &Receiver, path: &str, body: &[u8], gzip: bool) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(receiver.local_addr()).unwrap();
    let encoding = if gzip {
        "Content-Encoding: gzip\r\n"
    } else {
        ""
    };
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body_start = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    (status, response[body_start..].to_vec())
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn foreign_request() -> ExportTraceServiceRequest {
    let trace_id = vec![7u8; 16];
    let mk = |id: u8, parent: Option<u8>, name: &str, start: u64, end: u64| Span {
        trace_id: trace_id.clone(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        ..Default::default()
    };
    let mut failing = mk(
        3,
        Some(1),
        "charge <script>alert(1)</script>",
        1_500_000,
        1_900_000,
    );
    failing.status = Some(Status {
        message: "card declined".into(),
        code: status::StatusCode::Error as i32,
    });
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![string("service.name", "python-checkout")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    mk(1, None, "POST /checkout", 1_000_000, 3_000_000),
                    mk(2, Some(1), "SELECT carts", 1_100_000, 1_400_000),
                    failing,
                ],
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn a_foreign_exporters_request_is_answered_and_shown() {
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let body = foreign_request().encode_to_vec();
    let (status, response) = post(&receiver, "/v1/traces", &body, false);
    assert_eq!(status, 200);
    assert!(ExportTraceServiceResponse::decode(&response[..])
        .unwrap()
        .partial_success
        .is_none());

    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&body).unwrap();
    assert_eq!(
        post(&receiver, "/v1/traces", &gz.finish().unwrap(), true).0,
        200
    );

    let seen = receiver.snapshot();
    assert_eq!(seen.counts.spans, 6);
    assert_eq!(
        text_lines_with(&seen, "SELECT carts"),
        1,
        "a batch delivered twice shows once"
    );
    assert_eq!(seen.counts.requests, 2);
    let mut text = Vec::new();
    seen.render_text(&mut text, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("python-checkout"), "{text}");
    let parent_line = text
        .lines()
        .position(|l| l.starts_with("  POST /checkout"))
        .unwrap();
    assert!(
        text.lines()
            .nth(parent_line + 1)
            .unwrap()
            .starts_with("    "),
        "children indented: {text}"
    );
    assert!(text.contains("✗ charge"), "{text}");
    assert!(text.contains("ERROR: card declined"), "{text}");
    let html = seen.render_html();
    assert!(!html.contains("<script>alert"), "hostile names are escaped");
    assert!(html.contains("&lt;script&gt;"));
}

#[test]
fn garbage_oversized_and_misrouted_requests_are_refused() {
    let options = ReceiverOptions::default()
        .max_body_bytes(1024)
        .max_items(100);
    let receiver = Receiver::with_options("127.0.0.1:0", options).unwrap();
    let (status, body) = post(
        &receiver,
        "/v1/logs",
        b"\xff\xff\xff\xff not protobuf",
        false,
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("not a valid OTLP"));
    assert_eq!(
        post(&receiver, "/v1/traces", &vec![0u8; 4096], false).0,
        413
    );
    assert_eq!(
        post(&receiver, "/v1/traces", b"\x1f\x8b garbage gzip", true).0,
        400
    );
    assert_eq!(post(&receiver, "/v2/everything", b"", false).0, 404);
    // A small gzip body that expands past the cap is refused, not inflated into memory.
    let mut bomb = GzEncoder::new(Vec::new(), Compression::best());
    bomb.write_all(&vec![0u8; 1 << 20]).unwrap();
    assert_eq!(
        post(&receiver, "/v1/traces", &bomb.finish().unwrap(), true).0,
        413
    );
    assert_eq!(receiver.snapshot().counts.rejected_requests, 4);
    receiver.shutdown();
}

fn text_lines_with(seen: &plain_connect::receiver::Received, needle: &str) -> usize {
    let mut text = Vec::new();
    seen.render_text(&mut text, false).unwrap();
    String::from_utf8(text)
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}
