//! The span handle against a real loopback receiver: ends in any order, spans that cross
//! threads, the current span from deep code, and errors as exception events.

mod common;

use common::proto::trace::v1::Span as WireSpan;
use common::TestReceiver;
use plain_connect::trace::{self, SpanKind, Status};
use plain_connect::{Resource, Settings, Telemetry};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start(receiver: &TestReceiver) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("test-token")
        .build()
        .expect("valid settings");
    Telemetry::start(settings, Resource::new("span-tests", "1.0.0")).expect("pipeline starts")
}

fn named<'a>(spans: &'a [WireSpan], name: &str) -> Vec<&'a WireSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn flushed(receiver: &TestReceiver, telemetry: &Telemetry) -> Vec<WireSpan> {
    telemetry.flush(Duration::from_secs(5)).unwrap();
    receiver.spans()
}

#[test]
fn spans_are_send() {
    fn assert_send<T: Send>() {}
    assert_send::<trace::Span>();
}

#[test]
fn a_request_ended_before_its_child_is_never_current_again() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    // Three requests on one handler thread, each ended while a child it started is alive.
    for _ in 0..3 {
        let request = trace::span("request").kind(SpanKind::Server).start();
        let _cache = trace::span("cache lookup").start();
        request.end();
        // `_cache` drops here, after the request ended: it must not make it current again.
    }
    assert!(
        !trace::current().is_valid(),
        "nothing is current afterwards"
    );
    let spans = flushed(&receiver, &telemetry);
    let requests = named(&spans, "request");
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.parent_span_id.is_empty()),
        "3 roots"
    );
    let traces: HashSet<_> = requests.iter().map(|r| r.trace_id.clone()).collect();
    assert_eq!(traces.len(), 3, "3 traces");
    for cache in named(&spans, "cache lookup") {
        let parent = requests.iter().find(|r| r.span_id == cache.parent_span_id);
        assert!(parent.is_some_and(|p| p.trace_id == cache.trace_id));
    }
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn out_of_order_ends_leave_the_newest_live_span_current() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    let a = trace::span("a").start();
    let b = trace::span("b").start();
    let c = trace::span("c").start();
    let c_id = c.context().span_id();
    b.end(); // in the middle: c stays current
    assert_eq!(trace::current().span_id(), c_id);
    let under_c = trace::span("under c").start();
    drop(under_c);
    a.end();
    assert_eq!(trace::current().span_id(), c_id);
    c.end(); // a and b went before: nothing is current
    assert!(!trace::current().is_valid());
    trace::span("next").start().end();
    let spans = flushed(&receiver, &telemetry);
    let parent_of = |name: &str| named(&spans, name)[0].parent_span_id.clone();
    assert_eq!(parent_of("under c"), c_id.to_bytes().to_vec());
    assert!(parent_of("next").is_empty(), "a new root");
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_span_ended_on_another_thread_stops_being_current_where_it_started() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    let mut request = trace::span("dispatched").kind(SpanKind::Server).start();
    request.set_attribute("stage", "accepted");
    let request_id = request.context().span_id();
    let child = trace::span("parsed here").start();
    drop(child);
    // The dispatcher hands the request to a worker, which finishes it.
    let worker = std::thread::spawn(move || {
        request.set_attribute("worker", true);
        request.set_status(Status::Ok);
        request.end();
    });
    worker.join().unwrap();
    // Back on the dispatcher: the request it handed over is no longer current.
    assert_ne!(trace::current().span_id(), request_id);
    trace::span("next request")
        .kind(SpanKind::Server)
        .start()
        .end();

    // Kept in shared state and ended later by whichever thread finishes the job.
    let job = Arc::new(Mutex::new(Some(trace::span("job").start())));
    let shared = Arc::clone(&job);
    std::thread::spawn(move || drop(shared.lock().unwrap().take()))
        .join()
        .unwrap();
    assert!(job.lock().unwrap().is_none());
    assert!(!trace::current().is_valid());

    let spans = flushed(&receiver, &telemetry);
    let dispatched = named(&spans, "dispatched")[0];
    assert_eq!(dispatched.attributes.len(), 2);
    assert_eq!(dispatched.status.as_ref().map(|s| s.code), Some(1));
    assert_eq!(
        named(&spans, "parsed here")[0].parent_span_id,
        dispatched.span_id
    );
    assert!(named(&spans, "next request")[0].parent_span_id.is_empty());
    assert_eq!(named(&spans, "job").len(), 1);
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn deep_code_reaches_the_current_span_even_while_its_handle_is_used_elsewhere() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);

    fn deep() {
        trace::current_span().set_attribute("deep", true);
        trace::current_span().add_event("cache miss", Vec::new());
        trace::current_span().set_status(Status::error("slow"));
    }
    let request = trace::span("request").start();
    deep();
    drop(request);
    let sum = trace::in_span("in span", || {
        trace::current_span().set_attribute("n", 2i64);
        1 + 1
    });
    assert_eq!(sum, 2);
    // No span current: nothing happens.
    trace::current_span().set_attribute("lost", true);

    // The handle on a worker and deep code on the starting thread touch the same record at
    // once: every attribute of both arrives (the record is guarded off its own thread).
    let mut span = trace::span("shared").start();
    let rounds = 2000;
    let worker = std::thread::spawn(move || {
        for i in 0..rounds {
            span.set_attribute(format!("worker.{i}"), i as i64);
        }
        span
    });
    for i in 0..rounds {
        trace::current_span().set_attribute(format!("deep.{i}"), i as i64);
    }
    let span = worker.join().unwrap();
    drop(span);

    let spans = flushed(&receiver, &telemetry);
    let request = named(&spans, "request")[0];
    assert!(common::attr(&request.attributes, "deep").is_some());
    assert_eq!(request.events.len(), 1);
    assert_eq!(request.status.as_ref().map(|s| s.code), Some(2));
    assert_eq!(
        common::int_attr(&named(&spans, "in span")[0].attributes, "n"),
        Some(2)
    );
    let shared = named(&spans, "shared")[0];
    // The default limit keeps 128 attributes; the rest are counted, none lost or torn.
    assert_eq!(
        shared.attributes.len() as u32 + shared.dropped_attributes_count,
        2 * rounds as u32
    );
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[derive(Debug)]
struct ConfigError(std::num::ParseIntError);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("config invalid")
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn errors_become_exception_events_without_a_trait_object_as_type() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    let parse = "x".parse::<u16>().unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(ConfigError(parse.clone()));
    {
        let mut span = trace::span("typed").start();
        span.record_error(&ConfigError(parse.clone()));
    }
    {
        let mut span = trace::span("boxed").start();
        span.record_error(boxed.as_ref());
    }
    let spans = flushed(&receiver, &telemetry);
    let event = |name: &str| named(&spans, name)[0].events[0].clone();
    let typed = event("typed");
    assert_eq!(typed.name, "exception");
    assert_eq!(
        common::string_attr(&typed.attributes, "exception.type").as_deref(),
        Some("span_handle::ConfigError")
    );
    let message = "config invalid: invalid digit found in string";
    assert_eq!(
        common::string_attr(&typed.attributes, "exception.message").as_deref(),
        Some(message)
    );
    let boxed = event("boxed");
    assert_eq!(
        common::string_attr(&boxed.attributes, "exception.type"),
        None
    );
    assert_eq!(
        common::string_attr(&boxed.attributes, "exception.message").as_deref(),
        Some(message)
    );
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn a_reused_record_never_receives_what_is_meant_for_another_span() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver);
    for round in 0..50 {
        let request = trace::span("outer").start();
        let child = trace::span("child").start();
        request.end(); // out of order: its record goes back to the thread's pool
        let mut next = trace::span("next").start(); // may reuse that record
        trace::current_span().set_attribute("round", round as i64);
        next.set_attribute("own", true);
        drop(next);
        trace::current_span().set_attribute("child.round", round as i64);
        drop(child);
    }
    let spans = flushed(&receiver, &telemetry);
    assert!(named(&spans, "outer")
        .iter()
        .all(|s| s.attributes.is_empty()));
    assert!(named(&spans, "next")
        .iter()
        .all(|s| s.attributes.len() == 2));
    assert!(named(&spans, "child")
        .iter()
        .all(|s| s.attributes.len() == 1 && s.attributes[0].key == "child.round"));
    assert_eq!(named(&spans, "next").len(), 50);
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn an_unsampled_span_has_the_same_ids_wherever_they_are_read() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("test-token")
        .trace_sample_rate(0.0)
        .build()
        .expect("valid settings");
    let telemetry = Telemetry::start(settings, Resource::new("span-tests", "1.0.0")).unwrap();
    let root = trace::span("root").start();
    let current = trace::current();
    assert!(current.is_valid() && !current.is_sampled());
    assert_eq!(
        current.flags(),
        trace::FLAG_RANDOM,
        "a new trace: random, not sampled"
    );
    let child = trace::span("child").start();
    let child_current = trace::current();
    assert_eq!(child_current.trace_id(), current.trace_id());
    assert_ne!(child_current.span_id(), current.span_id());
    drop(child);
    // Read first on another thread: the ids are those the starting thread sees.
    let (root, elsewhere) = std::thread::spawn(move || {
        let elsewhere = root.context().clone();
        (root, elsewhere)
    })
    .join()
    .unwrap();
    assert_eq!(elsewhere, current);
    assert_eq!(root.context(), &current);
    assert_eq!(trace::current(), current);
    drop(root);
    assert!(!trace::current().is_valid());
    let again = trace::span("next root").start();
    assert_ne!(again.context().trace_id(), current.trace_id());
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}
