//! What must hold for any input, shared by the fuzz targets (fuzz/fuzz_targets/receiver_*.rs)
//! and the regression tests that replay what they found (tests/receiver_fuzz_regressions.rs).
#![allow(dead_code)]

use plain_connect::proto::collector::logs::v1::ExportLogsServiceRequest;
use plain_connect::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::receiver::{Received, Receiver};
use prost::Message;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Tags the page template writes; anything else in the HTML came from the input.
const TAGS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "style", "body", "div", "header", "h1", "h2",
    "h3", "nav", "span", "a", "form", "input", "button", "main", "p", "section", "table", "tr",
    "th", "td", "details", "summary", "br", "ul", "li", "footer", "script",
];
const ATTRIBUTES: &[&str] = &[
    "lang",
    "charset",
    "name",
    "content",
    "class",
    "href",
    "title",
    "id",
    "style",
    "open",
    "method",
    "action",
    "placeholder",
    "value",
    "type",
    "colspan",
    "nonce",
];

/// Decodes `data` as each of the three OTLP requests (whatever decodes), as an exporter would.
pub fn decode_all(data: &[u8]) -> Received {
    let traces = ExportTraceServiceRequest::decode(data)
        .into_iter()
        .collect();
    let metrics = ExportMetricsServiceRequest::decode(data)
        .into_iter()
        .collect();
    let logs = ExportLogsServiceRequest::decode(data).into_iter().collect();
    Received::from_requests(traces, metrics, logs)
}

/// The terminal view holds no control character but newlines and the view's own colours.
pub fn check_text(received: &Received) {
    for color in [false, true] {
        let mut out = Vec::new();
        received.render_text(&mut out, color).unwrap();
        let mut text = String::from_utf8(out).expect("the text view is UTF-8");
        for colour in ["\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m"] {
            text = text.replace(colour, "");
        }
        if let Some(c) = text.chars().find(|&c| c.is_control() && c != '\n') {
            panic!("control character {c:?} in the text view:\n{text}");
        }
    }
}

/// The page holds only the template's markup: known tags and attributes, quoted values with
/// no markup in them, links that stay on the page, and no text that closes a tag.
pub fn check_html(received: &Received) {
    let html = received.render_html();
    let mut rest = html.as_str();
    while let Some(open) = rest.find(['<', '>']) {
        assert_eq!(
            &rest[open..open + 1],
            "<",
            "a '>' outside a tag: {:?}",
            &rest[open.saturating_sub(80)..open + 1]
        );
        rest = &rest[open + 1..];
        let closing = rest.starts_with('/');
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '!' || c == '/'))
            .expect("tag ends");
        let name = rest[..name_end]
            .trim_start_matches('/')
            .to_ascii_lowercase();
        assert!(
            TAGS.contains(&name.as_str()),
            "tag <{name}> not from the template"
        );
        rest = &rest[name_end..];
        if name == "!doctype" {
            assert!(rest.starts_with(" html>"), "one doctype");
            rest = &rest[" html>".len()..];
            continue;
        }
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            assert!(!closing, "attributes on a closing tag");
            let attr_end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .expect("attribute ends");
            let attr = &rest[..attr_end];
            assert!(ATTRIBUTES.contains(&attr), "attribute {attr:?} on <{name}>");
            rest = &rest[attr_end..];
            if let Some(after) = rest.strip_prefix("=\"") {
                let close = after.find('"').expect("quoted value ends");
                let value = &after[..close];
                assert!(
                    !value.contains('<') && !value.contains('>'),
                    "markup in {attr}={value:?}"
                );
                if attr == "href" {
                    assert!(
                        value.starts_with('?') || value.starts_with('#'),
                        "href={value:?}"
                    );
                }
                if attr == "style" {
                    assert!(
                        value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || ":;.%- ".contains(c)),
                        "style={value:?}"
                    );
                }
                rest = &after[close + 1..];
            }
        }
        if !closing && (name == "style" || name == "script") {
            let end = rest.find(&format!("</{name}>")).expect("element closes");
            rest = &rest[end..];
        }
    }
    assert_eq!(
        html.matches("<script").count(),
        0,
        "the static page has no script"
    );
}

/// Sends `bytes` to the receiver, half-closes, reads the answer; checks the answer is HTTP and
/// that the connection's slot is freed.
pub fn check_http(receiver: &Receiver, bytes: &[u8]) {
    let mut stream = TcpStream::connect(receiver.local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    if !response.is_empty() {
        assert!(
            response.starts_with(b"HTTP/1.1 "),
            "{:?}",
            String::from_utf8_lossy(&response)
        );
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while receiver.connections().open > 0 {
        assert!(Instant::now() < deadline, "a connection slot was not freed");
        std::thread::sleep(Duration::from_millis(1));
    }
}
