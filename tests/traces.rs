//! Spans end to end: nesting, threads, sampling, limits, status, events, consumers, decoded
//! from a real loopback receiver.

mod common;

use common::proto::trace::v1::{span::SpanKind as WireKind, status::StatusCode, Span};
use common::{hex, int_attr, string_attr, TestReceiver};
use plain_connect::trace::{self, SpanKind, Status};
use plain_connect::{Resource, Settings, Telemetry};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start(receiver: &TestReceiver, rate: f64) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .trace_sample_rate(rate)
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new("trace-tests", "0.1.0")).unwrap()
}

fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name:?} among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn children_nest_under_the_current_span_and_across_threads() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    {
        let mut request = trace::span("GET /users/{id}")
            .kind(SpanKind::Server)
            .start();
        request.set_attribute("http.route", "/users/{id}");
        {
            let _query = trace::span("SELECT users").kind(SpanKind::Client).start();
        }
        let context = trace::current();
        std::thread::spawn(move || {
            let _attached = context.attach();
            let _work = trace::span("render on worker").start();
        })
        .join()
        .unwrap();
        let _after = trace::span("after the worker").start();
    }
    trace::span("a new root").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    assert_eq!(spans.len(), 5);
    let request = by_name(&spans, "GET /users/{id}");
    assert!(request.parent_span_id.is_empty());
    assert_eq!(request.kind, WireKind::Server as i32);
    assert_eq!(request.trace_id.len(), 16);
    assert_eq!(request.span_id.len(), 8);
    for child in ["SELECT users", "render on worker", "after the worker"] {
        let child = by_name(&spans, child);
        assert_eq!(child.trace_id, request.trace_id, "{}", child.name);
        assert_eq!(child.parent_span_id, request.span_id, "{}", child.name);
        assert!(child.start_time_unix_nano >= request.start_time_unix_nano);
        assert!(child.end_time_unix_nano <= request.end_time_unix_nano);
    }
    assert_eq!(
        by_name(&spans, "SELECT users").kind,
        WireKind::Client as i32
    );
    let root = by_name(&spans, "a new root");
    assert_ne!(root.trace_id, request.trace_id);
    assert!(root.parent_span_id.is_empty());
    // Sampled and (a new trace, Level 2) random in the low byte; "has is_remote" bit set,
    // parent not remote.
    assert_eq!(request.flags, 0x103);
}

#[test]
fn attributes_events_status_and_limits_arrive_as_set() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    {
        let mut span = trace::span("work").start();
        span.set_attribute("text", "hello");
        span.set_attribute("count", 3);
        span.set_attribute("ratio", 0.5);
        span.set_attribute("flag", true);
        span.set_attribute("tags", vec!["a", "b"]);
        span.set_attribute("count", 4); // overwrite, not a second key
        for i in 0..200 {
            span.set_attribute(format!("extra.{i}"), i);
        }
        span.record_exception("io::Error", "disk full");
        span.set_status(Status::error("failed to write"));
        span.set_status(Status::Unset); // ignored: Unset never replaces a status
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let span = by_name(&spans, "work");
    assert_eq!(span.attributes.len(), 128);
    assert_eq!(span.dropped_attributes_count, 5 + 200 - 128);
    assert_eq!(
        string_attr(&span.attributes, "text").as_deref(),
        Some("hello")
    );
    assert_eq!(int_attr(&span.attributes, "count"), Some(4));
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "exception");
    assert_eq!(
        string_attr(&span.events[0].attributes, "exception.message").as_deref(),
        Some("disk full")
    );
    let status = span.status.clone().unwrap();
    assert_eq!(status.code, StatusCode::Error as i32);
    assert_eq!(status.message, "failed to write");
}

/// A thread reuses its span records from pipeline to pipeline: each span follows the limits
/// of the pipeline installed when it starts, not those its record was last read with.
#[test]
fn a_reinstalled_pipeline_s_span_limits_apply_to_the_next_span() {
    let _serial = common::serial();
    let spans_under = |max_attributes: u32| {
        let receiver = TestReceiver::start();
        let settings = Settings::builder()
            .export_url(receiver.endpoint())
            .export_token("t")
            .span_limits(trace::SpanLimits::default().max_attributes(max_attributes))
            .build()
            .unwrap();
        let telemetry = Telemetry::start(settings, Resource::new("trace-tests", "0.1.0")).unwrap();
        for _ in 0..3 {
            let mut span = trace::span("limited").start();
            for key in ["a", "b", "c", "d"] {
                span.set_attribute(key, 1);
            }
        }
        telemetry.shutdown(Duration::from_secs(5)).unwrap();
        receiver
            .spans()
            .iter()
            .map(|s| (s.attributes.len(), s.dropped_attributes_count))
            .collect::<Vec<_>>()
    };
    assert_eq!(spans_under(1), [(1, 3); 3]);
    assert_eq!(spans_under(3), [(3, 1); 3]);
    assert_eq!(spans_under(2), [(2, 2); 3]);
}

#[test]
fn rate_zero_exports_no_span_but_keeps_valid_contexts() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 0.0);
    let (outer_context, inner_context) = {
        let outer = trace::span("unsampled").start();
        assert!(!outer.is_recording());
        let inner = trace::span("unsampled child").start();
        (outer.context().clone(), inner.context().clone())
    };
    assert!(outer_context.is_valid() && !outer_context.is_sampled());
    assert_eq!(inner_context.trace_id(), outer_context.trace_id());
    // A sampled remote parent wins over the rate: the child is recorded.
    let remote = trace::SpanContext::new_remote(
        trace::TraceId::from_bytes([0x4b; 16]),
        trace::SpanId::from_bytes([0x0f; 8]),
        1,
    );
    trace::span("child of sampled remote")
        .parent(remote.clone())
        .start()
        .end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "child of sampled remote");
    assert_eq!(hex(&spans[0].parent_span_id), remote.span_id().to_string());
    assert_eq!(
        spans[0].flags, 0x301,
        "sampled, has is_remote, parent is remote"
    );
}

#[test]
fn an_unsampled_remote_parent_keeps_its_children_out_whatever_the_rate() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let remote = trace::SpanContext::new_remote(
        trace::TraceId::from_bytes([0x4b; 16]),
        trace::SpanId::from_bytes([0x0f; 8]),
        0,
    );
    {
        let parent = trace::span("follows remote").parent(remote).start();
        assert!(!parent.is_recording());
        let child = trace::span("grandchild").start();
        assert!(!child.is_recording());
    }
    trace::span("sampled root").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let names: Vec<String> = receiver.spans().into_iter().map(|s| s.name).collect();
    assert_eq!(names, ["sampled root"]);
}

#[test]
fn sampling_at_one_tenth_keeps_about_a_tenth_of_traces_and_whole_traces() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 0.1);
    let traces = 5_000;
    for _ in 0..traces {
        let _root = trace::span("root").start();
        let _child = trace::span("child").start();
    }
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let spans = receiver.spans();
    let roots = spans.iter().filter(|s| s.name == "root").count();
    let children = spans.iter().filter(|s| s.name == "child").count();
    assert_eq!(roots, children, "a kept trace is kept whole");
    // Binomial(5000, 0.1): mean 500, sd ≈ 21; allow 5 sd.
    assert!((395..=605).contains(&roots), "kept {roots} of {traces}");
}

#[test]
fn a_second_consumer_sees_every_sampled_span() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&seen);
    telemetry.add_span_consumer(move |spans: &[trace::SpanData]| {
        sink.lock()
            .unwrap()
            .extend(spans.iter().map(|s| s.name.to_string()));
    });
    for name in ["one", "two", "three"] {
        trace::span(name).start().end();
    }
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    assert_eq!(receiver.spans().len(), 3);
}

#[test]
fn an_idle_threads_buffered_spans_leave_within_the_export_delay() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .export_delay(Duration::from_millis(200))
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("idle", "1")).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let idle = std::thread::spawn(move || {
        trace::span("from an idle thread").start().end();
        done_tx.send(()).unwrap();
        let _ = go_rx.recv(); // stays alive (and idle) until the test is done
    });
    done_rx.recv().unwrap();
    assert!(
        receiver.wait_for(Duration::from_secs(3), |r| r.spans().len() == 1),
        "the span was not swept from the idle thread's buffer"
    );
    go_tx.send(()).unwrap();
    idle.join().unwrap();
    drop(telemetry);
}

#[test]
fn hostile_attribute_values_are_bounded_and_encoded_validly() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .span_limits(trace::SpanLimits::default().max_value_chars(1000))
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("hostile", "1")).unwrap();
    {
        let mut span = trace::span(String::from_utf8_lossy(b"name \xff\xfe")).start();
        span.set_attribute("huge", "x".repeat(5 * 1024 * 1024));
        span.set_attribute(
            "lossy",
            String::from_utf8_lossy(b"\xc3\x28 ok \xed\xa0\x80").into_owned(),
        );
        span.set_attribute("nan", f64::NAN);
        span.set_attribute("inf", f64::NEG_INFINITY);
        span.set_attribute("min", i64::MIN);
        span.set_attribute("", "empty key");
        // A literal (kept as its address until the exporter writes it): cut all the same.
        let literal: &'static str = "é".repeat(1200).leak();
        span.set_attribute("literal", literal);
        span.set_attribute(
            "many",
            vec!["é".repeat(2000); 3]
                .into_iter()
                .map(plain_connect::Str::from)
                .collect::<Vec<_>>(),
        );
    }
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let spans = receiver.spans();
    let span = &spans[0];
    assert!(span.name.starts_with("name "));
    assert_eq!(
        string_attr(&span.attributes, "huge").unwrap().len(),
        1000,
        "cut to the limit"
    );
    let literal = string_attr(&span.attributes, "literal").unwrap();
    assert_eq!(
        literal.chars().count(),
        1000,
        "a literal cut to the limit too"
    );
    assert!(string_attr(&span.attributes, "lossy")
        .unwrap()
        .contains('\u{fffd}'));
    use common::proto::common::v1::any_value::Value;
    match common::attr(&span.attributes, "nan") {
        Some(Value::DoubleValue(v)) => assert!(v.is_nan()),
        other => panic!("{other:?}"),
    }
    assert_eq!(int_attr(&span.attributes, "min"), Some(i64::MIN));
    match common::attr(&span.attributes, "many") {
        Some(Value::ArrayValue(a)) => assert!(a
            .values
            .iter()
            .all(|v| matches!(&v.value, Some(Value::StringValue(s)) if s.chars().count() == 1000))),
        other => panic!("{other:?}"),
    }
}

/// W3C Level 2: a trace started here says its id is random; a continued one keeps the
/// caller's flags as they came, random or not.
#[test]
fn a_new_trace_sets_the_random_flag_and_a_continued_one_keeps_the_callers() {
    let traceparent_of = |span: &trace::Span| {
        let _entered = span.context().clone().attach();
        trace::propagation::headers()
            .find(|(name, _)| *name == "traceparent")
            .map(|(_, value)| value)
            .unwrap()
    };
    for (rate, flags) in [(1.0, "03"), (0.0, "02")] {
        let _serial = common::serial();
        let receiver = TestReceiver::start();
        let telemetry = start(&receiver, rate);
        let root = trace::span("root").start();
        assert!(
            traceparent_of(&root).ends_with(&format!("-{flags}")),
            "rate {rate}"
        );
        assert_eq!(
            root.context().flags() & trace::FLAG_RANDOM,
            trace::FLAG_RANDOM
        );
        for caller in ["01", "03"] {
            let parent = trace::propagation::extract(
                &format!("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-{caller}"),
                None,
            )
            .unwrap();
            let child = trace::span("continued").parent(parent).start();
            assert!(
                traceparent_of(&child).ends_with(&format!("-{caller}")),
                "{caller}"
            );
        }
        drop(root);
        telemetry.shutdown(Duration::from_secs(5)).unwrap();
    }
}

/// Literal keys and values (kept as words on the recording thread, written out by the exporter)
/// arrive as set, among run-time ones, at the endpoint and at the span consumers: set on the
/// span's thread, set again, set from another thread, on a span ended on another thread.
#[test]
fn literal_attributes_arrive_as_set_wherever_they_were_set() {
    use common::proto::common::v1::any_value::Value as V;
    use plain_connect::Value;
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let consumed: Arc<Mutex<Vec<trace::SpanData>>> = Arc::default();
    let sink = Arc::clone(&consumed);
    telemetry.add_span_consumer(move |spans: &[trace::SpanData]| {
        sink.lock().unwrap().extend_from_slice(spans);
    });
    {
        let mut span = trace::span("here").start();
        span.set_attribute("http.request.method", "GET");
        span.set_attribute("http.response.status_code", 200i64);
        span.set_attribute("peer", format!("10.0.0.{}", 7)); // run-time value
        span.set_attribute("retry", true);
        span.set_attribute("ratio", 0.5);
        span.set_attribute("http.response.status_code", 503i64); // set again
        trace::current_span().set_attribute("http.route", "/users/{id}");
    }
    let mut moved = trace::span("ended elsewhere").start();
    moved.set_attribute("db.system.name", "postgresql");
    std::thread::spawn(move || {
        moved.set_attribute("db.operation.name", "SELECT"); // off its thread
        moved.end();
    })
    .join()
    .unwrap();
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let here = by_name(&spans, "here");
    let keys: Vec<&str> = here.attributes.iter().map(|a| a.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "http.request.method",
            "http.response.status_code",
            "peer",
            "retry",
            "ratio",
            "http.route"
        ]
    );
    assert_eq!(
        string_attr(&here.attributes, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        int_attr(&here.attributes, "http.response.status_code"),
        Some(503)
    );
    assert_eq!(
        string_attr(&here.attributes, "peer").as_deref(),
        Some("10.0.0.7")
    );
    assert_eq!(
        common::attr(&here.attributes, "retry"),
        Some(V::BoolValue(true))
    );
    assert_eq!(
        common::attr(&here.attributes, "ratio"),
        Some(V::DoubleValue(0.5))
    );
    assert_eq!(
        string_attr(&here.attributes, "http.route").as_deref(),
        Some("/users/{id}")
    );
    let elsewhere = by_name(&spans, "ended elsewhere");
    assert_eq!(
        string_attr(&elsewhere.attributes, "db.system.name").as_deref(),
        Some("postgresql")
    );
    assert_eq!(
        string_attr(&elsewhere.attributes, "db.operation.name").as_deref(),
        Some("SELECT")
    );

    let consumed = consumed.lock().unwrap();
    let here = consumed.iter().find(|s| s.name.as_str() == "here").unwrap();
    let values: Vec<(&str, &Value)> = here
        .attributes
        .iter()
        .map(|kv| (kv.key.as_str(), &kv.value))
        .collect();
    assert_eq!(values.len(), 6);
    assert_eq!(values[1], ("http.response.status_code", &Value::I64(503)));
    assert_eq!(values[4], ("ratio", &Value::F64(0.5)));
    assert_eq!(values[5].0, "http.route");
}
