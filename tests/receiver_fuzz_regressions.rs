//! What the receiver fuzz targets check, replayed on inputs they found or were seeded with:
//! the HTTP server through a real socket, and both views over hostile decoded OTLP.
#![cfg(feature = "receiver")]

mod receiver_oracle;

use plain_connect::proto::collector::logs::v1::ExportLogsServiceRequest;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::common::v1::{any_value, AnyValue, KeyValue};
use plain_connect::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use plain_connect::proto::resource::v1::Resource;
use plain_connect::proto::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use plain_connect::receiver::{Receiver, ReceiverOptions};
use receiver_oracle::{check_html, check_http, check_text, decode_all};

const HOSTILE: &str = "</summary></details><script>alert(1)</script><img src=x onerror=alert(1)>\"' onmouseover=\"x\" javascript:alert(1) \x1b]0;t\x07 \u{9b}2J";

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn hostile_strings_in_every_field_stay_text() {
    let span = Span {
        trace_id: HOSTILE.as_bytes().to_vec(),
        span_id: vec![1; 8],
        parent_span_id: vec![1; 8],
        name: HOSTILE.into(),
        attributes: vec![string(HOSTILE, HOSTILE)],
        events: vec![span::Event {
            name: HOSTILE.into(),
            attributes: vec![string(HOSTILE, HOSTILE)],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: HOSTILE.as_bytes().to_vec(),
            span_id: vec![2; 3],
            attributes: vec![string(HOSTILE, HOSTILE)],
            ..Default::default()
        }],
        ..Default::default()
    };
    let resource = Some(Resource {
        attributes: vec![string("service.name", HOSTILE)],
        ..Default::default()
    });
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource.clone(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource,
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    severity_text: HOSTILE.into(),
                    event_name: HOSTILE.into(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(HOSTILE.into())),
                    }),
                    attributes: vec![string(HOSTILE, HOSTILE)],
                    trace_id: HOSTILE.as_bytes().to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let received =
        plain_connect::receiver::Received::from_requests(vec![traces], vec![], vec![logs]);
    check_text(&received);
    check_html(&received);
}

#[test]
fn arbitrary_protobuf_renders_safely() {
    let seeds: [&[u8]; 4] = [
        b"",
        // A ResourceSpans holding a span whose parent is itself.
        b"\x0a\x1c\x12\x1a\x12\x18\x0a\x02\x01\x02\x12\x02\x03\x04\x22\x02\x03\x04\x2a\x04\x1b[2J\x39\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x0a\x06\x12\x04\x12\x02\x0a\x00",
        &[0x0a, 0x80, 0x01],
    ];
    for seed in seeds {
        let received = decode_all(seed);
        check_text(&received);
        check_html(&received);
    }
}

#[test]
fn the_server_answers_any_bytes_and_frees_every_slot() {
    let options = ReceiverOptions::default().max_body_bytes(1 << 20);
    let receiver = Receiver::with_options("127.0.0.1:0", options).unwrap();
    let inputs: [&[u8]; 9] = [
        b"",
        b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /?service=%ff%fe&trace=%zz HTTP/1.1\r\n\r\n",
        b"POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nfffffffffffffffb\r\n",
        b"POST /v1/logs HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\n\x1f\x8b\x08\x00",
        b"POST /v1/metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n\x0a\x01",
        b"HEAD /changes HTTP/1.0\r\n\r\n",
        b"POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx: y\r\n\r\nPOST",
    ];
    for input in inputs {
        check_http(&receiver, input);
    }
    let page = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(receiver.local_addr()).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut page = String::new();
        s.read_to_string(&mut page).unwrap();
        page
    };
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains("Content-Security-Policy: default-src 'none'"),
        "{page}"
    );
    assert_eq!(
        receiver.counts().requests,
        1,
        "the one complete request: an empty chunked body with a trailer"
    );
}
