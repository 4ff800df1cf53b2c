//! With export off (no pipeline installed anywhere in this test binary), a service must not cut
//! the traces of the services around it: a span started under an incoming remote parent carries
//! that parent's context, so outgoing calls pass `traceparent`/`tracestate` on unchanged.

use plain_connect::trace::{self, propagation, SpanContext, SpanKind};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn injected() -> Vec<(String, String)> {
    propagation::headers()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

#[test]
fn a_span_under_a_remote_parent_passes_the_parent_on_and_restores_on_end() {
    let parent = propagation::extract(TRACEPARENT, Some("vendor=opaque,other=1")).unwrap();
    let request = trace::span("GET /")
        .kind(SpanKind::Server)
        .parent(parent.clone())
        .start();
    assert!(!request.is_recording());
    assert_eq!(request.context(), &parent);
    assert_eq!(trace::current(), parent);
    {
        // A client span with no explicit parent stays the free no-op; the parent is still what
        // goes out.
        let call = trace::span("call upstream").kind(SpanKind::Client).start();
        assert!(!call.context().is_valid());
        assert_eq!(
            injected(),
            [
                pair("traceparent", TRACEPARENT),
                pair("tracestate", "vendor=opaque,other=1")
            ]
        );
    }
    assert_eq!(trace::current(), parent);
    request.end();
    assert_eq!(trace::current(), SpanContext::none());
    assert!(injected().is_empty());
}

#[test]
fn without_a_valid_parent_nothing_becomes_current() {
    let span = trace::span("root").start();
    assert!(!span.context().is_valid());
    assert!(injected().is_empty());
    drop(span);

    let invalid = SpanContext::default();
    let span = trace::span("bad parent").parent(invalid).start();
    assert!(!span.context().is_valid());
    assert!(injected().is_empty());
}

#[test]
fn pass_through_spans_nest_and_unwind_in_order() {
    let outer = propagation::extract(TRACEPARENT, None).unwrap();
    let inner = propagation::extract(
        "00-11111111111111111111111111111111-2222222222222222-00",
        Some("k=v"),
    )
    .unwrap();
    let outer_span = trace::span("outer").parent(outer.clone()).start();
    let inner_span = trace::span("inner").parent(inner.clone()).start();
    assert_eq!(trace::current(), inner);
    drop(inner_span);
    assert_eq!(trace::current(), outer);
    drop(outer_span);
    assert_eq!(trace::current(), SpanContext::none());
}

/// The W3C suite's test service, driven here over loopback as the suite drives it.
#[cfg(feature = "receiver")]
#[allow(dead_code)]
#[path = "../examples/w3c_service.rs"]
mod w3c_service;

#[cfg(feature = "receiver")]
mod over_http {
    use super::{w3c_service, TRACEPARENT};
    use std::sync::mpsc;
    use std::time::Duration;

    /// A loopback server standing in for the next service: sends each request's headers back.
    fn downstream() -> (String, mpsc::Receiver<Vec<(String, String)>>) {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", server.server_addr().to_ip().unwrap());
        let (sender, received) = mpsc::channel();
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                let _ = request.respond(tiny_http::Response::from_string("{}"));
                if sender.send(headers).is_err() {
                    break;
                }
            }
        });
        (url, received)
    }

    fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// POSTs to the service with these headers, asking it to call `downstream` twice.
    fn drive(service: &str, downstream: &str, headers: &[(&str, &str)]) -> u16 {
        let body =
            format!(r#"[{{"url": "{downstream}0", "arguments": []}}, {{"url": "{downstream}1"}}]"#);
        let mut request = ureq::http::Request::post(service);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        agent
            .run(request.body(body).unwrap())
            .unwrap()
            .status()
            .as_u16()
    }

    #[test]
    fn the_test_service_hands_the_incoming_context_on_with_export_off() {
        let service = w3c_service::Service::start("127.0.0.1:0").unwrap();
        let (downstream, calls) = downstream();
        let wait = || calls.recv_timeout(Duration::from_secs(5)).unwrap();

        let status = drive(
            &service.url(),
            &downstream,
            &[
                ("TraceParent", TRACEPARENT),
                ("tracestate", "a=1,foo@=2"),
                ("tracestate", "b=3,a=4"),
            ],
        );
        assert_eq!(status, 200);
        for _ in 0..2 {
            let headers = wait();
            assert_eq!(values(&headers, "traceparent"), [TRACEPARENT]);
            assert_eq!(values(&headers, "tracestate"), ["a=1,foo@=2,b=3"]);
        }

        // Two traceparent headers are invalid: there is no context to hand on, and with export
        // off none is made.
        let other = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01";
        let status = drive(
            &service.url(),
            &downstream,
            &[
                ("traceparent", TRACEPARENT),
                ("traceparent", other),
                ("tracestate", "a=1"),
            ],
        );
        assert_eq!(status, 200);
        for _ in 0..2 {
            let headers = wait();
            assert!(values(&headers, "traceparent").is_empty(), "{headers:?}");
            assert!(values(&headers, "tracestate").is_empty(), "{headers:?}");
        }

        // A context left current by one request would leak into the next one on the same worker.
        let status = drive(&service.url(), &downstream, &[]);
        assert_eq!(status, 200);
        for _ in 0..2 {
            assert!(values(&wait(), "traceparent").is_empty());
        }

        let record = service.stop();
        assert_eq!(record.requests.len(), 3);
        assert_eq!(record.calls.len(), 6);
        // With export off the request "span" is the incoming context itself, or nothing.
        let ids: Vec<String> = record
            .requests
            .iter()
            .map(|r| format!("{}-{}", r.trace_id, r.span_id))
            .collect();
        assert_eq!(ids[0], TRACEPARENT[3..52]);
        assert!(ids[1..].iter().all(|id| id.starts_with("0000")), "{ids:?}");
    }
}

/// The `tracing` way: `SpanExt::set_parent` on a span with export off passes the parent on
/// while the span is entered, and a child span under it does too.
#[cfg(feature = "tracing")]
#[test]
fn a_tracing_span_given_a_remote_parent_passes_it_on() {
    use plain_connect::tracing_bridge::{self, SpanExt};
    use tracing_subscriber::layer::SubscriberExt;

    let subscriber = tracing_subscriber::registry().with(tracing_bridge::layer());
    tracing::subscriber::with_default(subscriber, || {
        let parent = propagation::extract(TRACEPARENT, Some("vendor=opaque")).unwrap();
        let request = tracing::info_span!("request");
        assert!(request.set_parent(parent.clone()));
        assert_eq!(request.context(), parent);
        assert!(injected().is_empty(), "not current before it is entered");
        {
            let _entered = request.enter();
            let _child = tracing::info_span!("call upstream").entered();
            assert_eq!(
                injected(),
                [
                    pair("traceparent", TRACEPARENT),
                    pair("tracestate", "vendor=opaque")
                ]
            );
        }
        assert!(injected().is_empty(), "restored when the span is exited");
        assert!(!tracing::info_span!("no parent").set_parent(SpanContext::default()));
    });
}
