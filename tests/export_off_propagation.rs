//! With export off (no pipeline installed anywhere in this test binary), a service must not cut
//! the traces of the services around it: a span started under an incoming remote parent carries
//! that parent's context, so outgoing calls pass `traceparent`/`tracestate` on unchanged.

use plain_connect::trace::{self, propagation, SpanContext, SpanKind};

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn injected() -> Vec<(String, String)> {
    let mut headers = Vec::new();
    propagation::inject(|name, value| headers.push((name.to_owned(), value.to_owned())));
    headers
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
