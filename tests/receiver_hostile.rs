//! The receiver against hostile bytes on its port and hostile content in valid OTLP: every
//! attack of the hostile-input table, each one asserting the receiver still answers a real
//! exporter afterwards, and that memory, slots and the terminal stay safe.
#![cfg(feature = "receiver")]

use plain_connect::proto::collector::logs::v1::ExportLogsServiceRequest;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use plain_connect::proto::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use plain_connect::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use plain_connect::receiver::{Receiver, ReceiverOptions};
use prost::Message;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Sends raw bytes, half-closes, returns the status of the first response (0 if none).
fn raw(receiver: &Receiver, bytes: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(receiver.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    status_of(&response)
}

fn status_of(response: &[u8]) -> u16 {
    String::from_utf8_lossy(response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn post(receiver: &Receiver, path: &str, body: &[u8]) -> u16 {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw(receiver, &request)
}

/// A real exporter's request: one span.
fn one_span(name: &str) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: name.bytes().chain([0; 8]).take(8).collect(),
                    name: name.into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Tests that allocate a lot, and the one that measures memory, take turns.
fn memory_heavy() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_chunk_size_that_overflows_is_refused_and_frees_its_slot() {
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let attack = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\nfffffffffffffffb\r\n";
    // More than the slot count: a leaked slot per attack would lock everyone out.
    for _ in 0..80 {
        let status = raw(&receiver, attack);
        assert!(status == 413 || status == 400, "status {status}");
    }
    let absurd = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffffffff\r\n";
    assert_eq!(raw(&receiver, absurd), 400);
    wait_until("slots to be freed", || receiver.connections().open == 0);
    assert_eq!(post(&receiver, "/v1/traces", &one_span("real")), 200);
}

#[test]
fn declared_sizes_are_not_allocated_before_the_bytes_arrive() {
    let _turn = memory_heavy();
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let before = rss_kib();
    let mut held = Vec::new();
    for i in 0..63 {
        let mut s = TcpStream::connect(receiver.local_addr()).unwrap();
        let head = if i % 2 == 0 {
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffff\r\n"
                .to_owned()
        } else {
            "POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 16000000\r\n\r\n".to_owned()
        };
        s.write_all(head.as_bytes()).unwrap();
        held.push(s);
    }
    wait_until("63 connections", || receiver.connections().open == 63);
    std::thread::sleep(Duration::from_millis(100));
    let grown_mib = rss_kib().saturating_sub(before) / 1024;
    // Each connection holds a 64 KiB read buffer at most: 63 of them are ~4 MiB, not 1 GiB.
    assert!(
        grown_mib < 48,
        "RSS grew {grown_mib} MiB for 63 declared 16 MB bodies"
    );
    assert_eq!(post(&receiver, "/v1/traces", &one_span("real")), 200);
    drop(held);
}

#[test]
fn idle_and_trickling_connections_never_lock_out_an_exporter() {
    let options = ReceiverOptions::default().max_connections(8);
    let receiver = Receiver::with_options("127.0.0.1:0", options).unwrap();
    // Twice the slots: silent sockets, and sockets trickling a request head.
    let mut held = Vec::new();
    for i in 0..16 {
        let mut s = TcpStream::connect(receiver.local_addr()).unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /v1/traces HTTP/1.1\r\nHo").unwrap();
        }
        held.push(s);
    }
    wait_until("the slots to fill", || receiver.connections().open == 8);
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(post(&receiver, "/v1/traces", &one_span("real")), 200);
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let plain_connect::receiver::Connections {
        open, preempted, ..
    } = receiver.connections();
    assert!(open <= 8, "{open} open");
    assert!(preempted >= 8, "{preempted} preempted");
    drop(held);

    // Peers that ask and never read: each answer blocks once the socket buffers are full.
    let pipelined = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(4000);
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(receiver.local_addr()).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(&pipelined);
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(post(&receiver, "/v1/traces", &one_span("real")), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    drop(held);
}

#[test]
fn slowloris_heads_and_bodies_are_cut_off_at_their_deadline() {
    let options = ReceiverOptions::default().request_timeout(Duration::from_millis(600));
    let receiver = Receiver::with_options("127.0.0.1:0", options).unwrap();
    let trickled_body = [b'x'; 60];
    for (at_once, trickled) in [
        (
            &b""[..],
            &b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"[..],
        ),
        (
            &b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"[..],
            &trickled_body[..],
        ),
    ] {
        let mut s = TcpStream::connect(receiver.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        s.write_all(at_once).unwrap();
        // A byte every 20 ms keeps each read alive; the deadline covers the whole head or body.
        for b in trickled {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        assert_eq!(
            status_of(&response),
            408,
            "{:?}",
            String::from_utf8_lossy(&response)
        );
        assert!(started.elapsed() < Duration::from_secs(4));
    }
    assert_eq!(post(&receiver, "/v1/traces", &one_span("real")), 200);
}

#[test]
fn malformed_framing_is_refused_with_the_right_status() {
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let cases: [(&[u8], u16); 7] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /v1/traces HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /v1/traces HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (b"POST /v1/traces HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /v1/traces HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /v1/traces HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}", 415),
        (b"POST /v1/traces HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413),
    ];
    for (bytes, status) in cases {
        assert_eq!(
            raw(&receiver, bytes),
            status,
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    let mut huge_head = b"GET / HTTP/1.1\r\n".to_vec();
    huge_head.extend(std::iter::repeat_n(b'a', 70 * 1024));
    assert_eq!(raw(&receiver, &huge_head), 431);
    // A chunked body, a 100-continue and two pipelined requests on one connection are fine.
    let body = one_span("chunked");
    let mut chunked = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\nX-Trailer: y\r\n\r\n");
    chunked.extend_from_slice(b"GET /changes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut s = TcpStream::connect(receiver.local_addr()).unwrap();
    s.write_all(&chunked).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 100 Continue"), "{response}");
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
    assert_eq!(receiver.counts().spans, 1);
}

fn nested(depth: usize, leaf: String) -> AnyValue {
    let mut value = AnyValue {
        value: Some(any_value::Value::StringValue(leaf)),
    };
    for _ in 0..depth {
        value = AnyValue {
            value: Some(any_value::Value::ArrayValue(ArrayValue {
                values: vec![value],
            })),
        };
    }
    value
}

fn logs(bodies: Vec<AnyValue>, attributes: Vec<KeyValue>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: bodies
                    .into_iter()
                    .map(|body| LogRecord {
                        body: Some(body),
                        attributes: attributes.clone(),
                        severity_text: "INFO\x1b]0;pwned\x07".into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[test]
fn huge_and_deeply_nested_values_are_cut_in_both_views() {
    let _turn = memory_heavy();
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let request = logs(vec![nested(48, "x".repeat(8 << 20))], Vec::new());
    assert_eq!(post(&receiver, "/v1/logs", &request.encode_to_vec()), 200);
    let seen = receiver.snapshot();
    let started = Instant::now();
    let mut text = Vec::new();
    seen.render_text(&mut text, false).unwrap();
    let html = seen.render_html();
    assert!(started.elapsed() < Duration::from_secs(2));
    let text = String::from_utf8(text).unwrap();
    assert!(text.len() < 64 * 1024, "text view is {} bytes", text.len());
    assert!(html.len() < 64 * 1024, "page is {} bytes", html.len());
    assert!(text.contains("[…nested deeper]"), "{text}");
    let shallow = logs(vec![nested(2, "y".repeat(1 << 20))], Vec::new());
    let seen = plain_connect::receiver::Received::from_requests(vec![], vec![], vec![shallow]);
    let mut text = Vec::new();
    seen.render_text(&mut text, false).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("yyyy…[cut]"),
        "a long string is cut with a marker"
    );
    assert!(text.len() < 16 * 1024);
}

#[test]
fn the_store_is_bounded_in_bytes_and_counts_what_it_evicted() {
    let _turn = memory_heavy();
    let options = ReceiverOptions::default().max_kept_bytes(4 << 20);
    let receiver = Receiver::with_options("127.0.0.1:0", options).unwrap();
    let big = logs(vec![nested(0, "z".repeat(1 << 20))], Vec::new()).encode_to_vec();
    for _ in 0..10 {
        assert_eq!(post(&receiver, "/v1/logs", &big), 200);
    }
    let plain_connect::receiver::KeptNow { items, bytes, .. } = receiver.kept();
    assert!(bytes <= 4 << 20, "{bytes} bytes kept");
    assert_eq!(items, 3, "three 1 MiB records fit in 4 MiB");
    assert_eq!(receiver.counts().evicted_requests, 7);
    assert_eq!(
        receiver.counts().log_records,
        10,
        "evicted records are still counted"
    );
    let mut text = Vec::new();
    receiver.snapshot().render_text(&mut text, false).unwrap();
    assert!(String::from_utf8(text)
        .unwrap()
        .contains("7 requests evicted to stay under the memory caps"));
}

#[test]
fn no_control_character_reaches_the_terminal() {
    let hostile = "\x1b[2J\x1b]0;owned\x07\u{9b}31m\u{202e}evil\r\x08\x00";
    let string = |k: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(hostile.into())),
        }),
        ..Default::default()
    };
    let mut span = Span {
        trace_id: vec![2; 16],
        span_id: vec![3; 8],
        name: hostile.into(),
        attributes: vec![string("http.route"), string(hostile)],
        start_time_unix_nano: 1,
        end_time_unix_nano: 5,
        ..Default::default()
    };
    span.events
        .push(plain_connect::proto::trace::v1::span::Event {
            name: hostile.into(),
            attributes: vec![string("k")],
            ..Default::default()
        });
    span.status = Some(plain_connect::proto::trace::v1::Status {
        message: hostile.into(),
        code: 2,
    });
    let traces = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(plain_connect::proto::resource::v1::Resource {
                attributes: vec![string("service.name")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let seen = plain_connect::receiver::Received::from_requests(
        vec![traces],
        vec![],
        vec![logs(vec![nested(1, hostile.into())], vec![string(hostile)])],
    );
    for color in [false, true] {
        let mut out = Vec::new();
        seen.render_text(&mut out, color).unwrap();
        let mut text = String::from_utf8(out).unwrap();
        for colour in ["\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"] {
            text = text.replace(colour, "");
        }
        let bad: Vec<char> = text
            .chars()
            .filter(|&c| (c.is_control() && c != '\n') || ('\u{202a}'..='\u{202e}').contains(&c))
            .collect();
        assert!(bad.is_empty(), "color={color}: {bad:?} in\n{text}");
        assert!(text.contains("\\x1b]0;owned\\x07"), "shown, made visible");
    }
}
