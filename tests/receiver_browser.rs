//! The live view in a real browser: headless Chromium opens the receiver's `/`, fed with what
//! the demo exported, and the test reads the DOM a person would see — the trace list, an open
//! waterfall, a histogram with percentiles and exemplars, logs joined to their trace — and checks
//! that data arriving after the page loaded appears without a reload.
//!
//! Needs `chromium` (`.ci/setup` installs it).
#![cfg(feature = "receiver")]

#[allow(dead_code)]
#[path = "../examples/demo.rs"]
mod demo;

use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::trace::v1::{ResourceSpans, ScopeSpans, Span};
use plain_connect::receiver::Receiver;
use prost::Message;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn post(addr: SocketAddr, path: &str, body: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut response = String::new();
    let _ = s.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

/// A pass-through proxy in front of the receiver that holds the page's second `/changes` poll
/// until `on_second_poll` ran: data that arrives while the page is open, deterministically.
fn proxy(target: SocketAddr, on_second_poll: impl Fn() + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let polls = Arc::new(AtomicUsize::new(0));
    let hook = Arc::new(on_second_poll);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let Ok(mut server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut client_back, mut server_in) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut server_in, &mut client_back);
            });
            let (polls, hook) = (Arc::clone(&polls), Arc::clone(&hook));
            std::thread::spawn(move || {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let polled = buf[..n].windows(12).any(|w| w == b"GET /changes");
                    if polled && polls.fetch_add(1, Ordering::SeqCst) == 1 {
                        hook();
                    }
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = server.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// The DOM after load, and after `virtual_ms` of (virtual) time on the page.
fn chromium_dom(url: &str, virtual_ms: u32) -> String {
    let profile = std::env::temp_dir().join(format!(
        "plain-connect-chromium-{}-{}",
        std::process::id(),
        url.len()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--dump-dom",
        ])
        // Virtual time: the page's 1 s poll runs without waiting a real second.
        .args((virtual_ms > 0).then(|| format!("--virtual-time-budget={virtual_ms}")))
        // Whatever happens, the browser is stopped (a hung page must fail the test, not hang it).
        .arg("--timeout=20000")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run chromium ({e}): run .ci/setup to install it"));
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn late_trace() -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id: vec![0xcd; 8],
                    name: "late arrival".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2_000_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

#[test]
fn a_person_sees_traces_a_waterfall_a_histogram_and_live_updates() {
    for var in ["PLAIN_CONNECT_EXPORT_URL", "PLAIN_CONNECT_EXPORT_TOKEN"] {
        assert!(
            std::env::var_os(var).is_none(),
            "unset {var} to run this test"
        );
    }
    let outcome = demo::run(demo::DemoConfig {
        requests: 9,
        workers: 3,
        print: false,
        html: None,
        serve: false,
    })
    .expect("demo runs");
    let exported = outcome.received.expect("the embedded receiver was used");

    // A fresh receiver, fed the demo's requests as the exporter sent them.
    let receiver = Receiver::start("127.0.0.1:0").unwrap();
    let target = receiver.local_addr();
    for r in &exported.traces {
        post(target, "/v1/traces", &r.encode_to_vec());
    }
    for r in &exported.metrics {
        post(target, "/v1/metrics", &r.encode_to_vec());
    }
    for r in &exported.logs {
        post(target, "/v1/logs", &r.encode_to_vec());
    }
    let page = proxy(target, move || post(target, "/v1/traces", &late_trace()));
    let dom = chromium_dom(&format!("http://{page}/"), 10_000);

    // The trace list: nine demo requests and the late one.
    let list = dom
        .split("<table class=\"trace-list\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or_else(|| panic!("no trace list in\n{dom}"));
    assert_eq!(list.matches("href=\"#trace-").count(), 10, "{list}");
    assert!(
        list.contains("✗ POST /orders"),
        "the failed request is marked: {list}"
    );
    assert!(
        dom.contains("late arrival"),
        "data sent after the page loaded appears without a reload:\n{dom}"
    );
    assert!(dom.contains("live — checked"), "the page polls for changes");

    // One waterfall open, with its spans on the time axis and its logs below.
    let open = dom
        .split("<details class=\"trace\"")
        .find(|d| d.split('>').next().is_some_and(|tag| tag.contains(" open")))
        .unwrap_or_else(|| panic!("no open waterfall in\n{dom}"));
    let demo_waterfall = dom
        .split("<details class=\"trace\"")
        .find(|d| d.contains("SELECT users") && d.contains("profile served"))
        .unwrap_or_else(|| panic!("no waterfall with a query and its log in\n{dom}"));
    assert!(open.contains("class=\"bar\""), "{open}");
    assert!(
        demo_waterfall.matches("class=\"row").count() >= 2,
        "{demo_waterfall}"
    );

    // A histogram with percentiles and buckets, and exemplars linking to their waterfalls.
    let histogram = dom
        .split("<div class=\"card metric\">")
        .find(|c| c.contains("db.client.operation.duration"))
        .unwrap_or_else(|| panic!("no DB duration histogram in\n{dom}"));
    assert!(histogram.contains("p95≈"), "{histogram}");
    assert!(histogram.contains("class=\"hb\""), "{histogram}");
    let exemplar = histogram
        .split("class=\"mono exemplar\" href=\"?trace=")
        .nth(1)
        .and_then(|l| l.split('#').next())
        .unwrap_or_else(|| panic!("no exemplar link in {histogram}"));
    assert!(
        dom.contains(&format!("id=\"trace-{exemplar}\"")),
        "the exemplar's trace is on the page"
    );

    // Filtered to that trace: its waterfall alone.
    let one = chromium_dom(&format!("http://{target}/?trace={exemplar}"), 0);
    assert_eq!(one.matches("<details class=\"trace\"").count(), 1, "{one}");
    assert!(one.contains(&format!("id=\"trace-{exemplar}\"")));
}
