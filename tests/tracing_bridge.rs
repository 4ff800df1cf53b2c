//! The `tracing` bridge end to end: spans with fields and nesting, events as correlated log
//! records, `log` records and our own spans inside tracing spans, tracing-opentelemetry's special
//! fields, `#[instrument(err)]`, per-layer filters, remote parents, and the HTTP and database
//! conventions' histograms — from a loopback receiver.
#![cfg(feature = "tracing")]

mod common;

use common::proto::metrics::v1::{metric::Data, HistogramDataPoint};
use common::proto::trace::v1::status::StatusCode;
use common::{attr, hex, int_attr, string_attr, TestReceiver};
use plain_connect::trace::propagation;
use plain_connect::tracing_bridge::{layer, SpanExt};
use plain_connect::{Resource, Settings, Telemetry};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::field::Empty;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::Layer;

fn start(receiver: &TestReceiver, sample_rate: f64) -> Telemetry {
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .trace_sample_rate(sample_rate)
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap()
}

fn status(span: &common::proto::trace::v1::Span) -> (i32, String) {
    let status = span.status.clone().unwrap_or_default();
    (status.code, status.message)
}

/// The data points of the last export of histogram `name`.
fn histogram_points(receiver: &TestReceiver, name: &str) -> Vec<HistogramDataPoint> {
    let metric = receiver
        .metrics()
        .into_iter()
        .rev()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    match metric.data {
        Some(Data::Histogram(h)) => h.data_points,
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

#[test]
fn tracing_spans_and_events_arrive_as_spans_and_correlated_logs() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let subscriber = tracing_subscriber::registry().with(plain_connect::tracing_bridge::layer());
    tracing::subscriber::with_default(subscriber, || {
        let request = tracing::info_span!(
            "handle request",
            otel.kind = "server",
            http.route = "/cart",
            items = 3_i64
        );
        request.in_scope(|| {
            tracing::info!(cart.total = 42.5, "cart priced");
            let query = tracing::debug_span!("SELECT carts", db.system.name = "sqlite");
            query.in_scope(|| {
                let _own = plain_connect::trace::span("own span inside").start();
            });
            request.record("items", 4_i64);
        });
        tracing::warn!("outside any span");
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let spans = receiver.spans();
    let get = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let request = get("handle request");
    assert_eq!(request.kind, 2, "otel.kind = server");
    assert!(request.parent_span_id.is_empty());
    assert_eq!(
        string_attr(&request.attributes, "http.route").as_deref(),
        Some("/cart")
    );
    assert_eq!(
        int_attr(&request.attributes, "items"),
        Some(4),
        "on_record updates the field"
    );
    assert!(common::attr(&request.attributes, "otel.kind").is_none());
    let query = get("SELECT carts");
    assert_eq!(query.parent_span_id, request.span_id);
    assert_eq!(query.trace_id, request.trace_id);
    let own = get("own span inside");
    assert_eq!(
        own.parent_span_id, query.span_id,
        "our spans nest under entered tracing spans"
    );

    let logs = receiver.log_records();
    assert_eq!(logs.len(), 2);
    let priced = &logs[0];
    assert_eq!(priced.severity_number, 9);
    assert_eq!(hex(&priced.trace_id), hex(&request.trace_id));
    assert_eq!(hex(&priced.span_id), hex(&request.span_id));
    assert!(common::attr(&priced.attributes, "cart.total").is_some());
    let outside = &logs[1];
    assert_eq!(outside.severity_number, 13);
    assert!(outside.trace_id.is_empty());
}

#[test]
fn otel_fields_name_kind_and_status_the_span_and_are_not_attributes() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        let route = "/carts/{id}";
        tracing::info_span!(
            "request",
            otel.name = %format!("GET {route}"),
            otel.kind = "SERVER",
            otel.status_code = "ok"
        )
        .in_scope(|| {});
        let renamed = tracing::info_span!(
            "work",
            otel.name = Empty,
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_message = Empty
        );
        renamed.in_scope(|| {
            renamed.record("otel.name", "renamed later");
            renamed.record("otel.status_message", "backend unavailable");
            renamed.record("otel.status_code", "ERROR");
        });
        drop(renamed);
        tracing::info_span!("bad kind", otel.kind = "sideways").in_scope(|| {});
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["GET /carts/{id}", "renamed later", "bad kind"]);
    assert_eq!(spans[0].kind, 2, "server, whatever the case");
    assert_eq!(status(&spans[0]), (StatusCode::Ok as i32, String::new()));
    assert_eq!(spans[1].kind, 3, "client");
    assert_eq!(
        status(&spans[1]),
        (StatusCode::Error as i32, "backend unavailable".to_owned())
    );
    assert_eq!(spans[2].kind, 1, "an unknown kind leaves it internal");
    for span in &spans {
        assert!(
            span.attributes.iter().all(|a| !a.key.starts_with("otel.")),
            "special fields are not attributes: {:?}",
            span.attributes
        );
    }
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined: insufficient funds")
    }
}

#[tracing::instrument(err)]
fn charge(amount_cents: u64) -> Result<(), Declined> {
    tracing::info!("charging");
    Err(Declined)
}

#[test]
fn instrument_err_sets_the_error_status_and_records_the_exception() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        let _ = charge(1250);
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "charge");
    assert_eq!(int_attr(&span.attributes, "amount_cents"), Some(1250));
    assert_eq!(
        status(span),
        (
            StatusCode::Error as i32,
            "card declined: insufficient funds".to_owned()
        )
    );
    let exception = span
        .events
        .iter()
        .find(|e| e.name == "exception")
        .expect("an exception event");
    assert_eq!(
        string_attr(&exception.attributes, "exception.message").as_deref(),
        Some("card declined: insufficient funds")
    );
    let logs = receiver.log_records();
    let error = logs
        .iter()
        .find(|r| r.severity_number == 17)
        .expect("the error's log record");
    let body = match error.body.clone().and_then(|b| b.value) {
        Some(common::proto::common::v1::any_value::Value::StringValue(s)) => s,
        other => panic!("body {other:?}"),
    };
    assert_eq!(body, "card declined: insufficient funds");
    assert_eq!(
        string_attr(&error.attributes, "exception.message").as_deref(),
        Some("card declined: insufficient funds")
    );
    assert!(attr(&error.attributes, "error").is_none());
    assert_eq!(hex(&error.span_id), hex(&span.span_id));
}

#[test]
fn per_layer_filters_choose_the_exported_spans_and_nesting_skips_the_rest() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let by_level = tracing_subscriber::registry().with(layer().with_filter(LevelFilter::INFO));
    tracing::subscriber::with_default(by_level, || {
        tracing::info_span!("outer").in_scope(|| {
            tracing::debug_span!("hidden").in_scope(|| {
                tracing::info_span!("inner").in_scope(|| {});
                tracing::info!("inside the hidden span");
                tracing::debug!("below the filter");
            });
        });
    });
    let by_target = tracing_subscriber::registry().with(
        layer().with_filter(
            Targets::new()
                .with_default(LevelFilter::TRACE)
                .with_target("noisy", LevelFilter::OFF),
        ),
    );
    tracing::subscriber::with_default(by_target, || {
        tracing::trace_span!("kept at trace").in_scope(|| {});
        tracing::info_span!(target: "noisy", "left out").in_scope(|| {});
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["inner", "outer", "kept at trace"]);
    assert_eq!(
        spans[0].parent_span_id, spans[1].span_id,
        "a filtered span's child nests under the nearest exported one"
    );
    let logs = receiver.log_records();
    assert_eq!(logs.len(), 1, "the debug event is filtered too");
    assert_eq!(hex(&logs[0].span_id), hex(&spans[1].span_id));
}

const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

#[test]
fn set_parent_continues_a_remote_trace_until_the_span_starts() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    // Rate 0: only the remote parent's sampled flag gets these spans exported.
    let telemetry = start(&receiver, 0.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    let (set_before, set_after, context) = tracing::subscriber::with_default(subscriber, || {
        let parent = propagation::extract(PARENT, Some("vendor=x")).unwrap();
        let span = tracing::info_span!("incoming", otel.kind = "server", user.id = 7);
        let set_before = span.set_parent(parent.clone());
        span.in_scope(|| tracing::info_span!("child").in_scope(|| {}));
        let set_after = span.set_parent(parent);
        (set_before, set_after, span.context())
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(
        set_before && !set_after,
        "set_parent applies before the span starts only"
    );
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["child", "incoming"]);
    let incoming = &spans[1];
    assert_eq!(hex(&incoming.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&incoming.parent_span_id), "b7ad6b7169203331");
    assert_eq!(incoming.flags & 0x300, 0x300, "the parent is remote");
    assert_eq!(incoming.trace_state, "vendor=x");
    assert_eq!(
        int_attr(&incoming.attributes, "user.id"),
        Some(7),
        "fields recorded before set_parent are kept"
    );
    assert_eq!(spans[0].parent_span_id, incoming.span_id);
    assert_eq!(context.span_id().to_string(), hex(&incoming.span_id));
}

#[test]
fn http_server_spans_give_the_request_duration_histogram_and_error_status() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        for (method, status_code) in [("GET", 200_u16), ("GET", 503), ("PURGE", 200)] {
            let span = tracing::info_span!(
                "request",
                otel.kind = "server",
                otel.name = Empty,
                http.request.method = method,
                url.scheme = "https",
                http.route = Empty,
                http.response.status_code = Empty,
            );
            span.in_scope(|| {
                span.record("http.route", "/tracing/orders/{id}");
                span.record("otel.name", format!("{method} /tracing/orders/{{id}}"));
                span.record("http.response.status_code", status_code);
            });
        }
        // Not a server span: no server histogram.
        tracing::info_span!(
            "outgoing",
            otel.kind = "client",
            http.request.method = "GET",
            http.route = "/tracing/orders/{id}",
            http.response.status_code = 200
        )
        .in_scope(|| {});
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let failed = spans
        .iter()
        .find(|s| int_attr(&s.attributes, "http.response.status_code") == Some(503))
        .unwrap();
    assert_eq!(failed.name, "GET /tracing/orders/{id}");
    assert_eq!(
        string_attr(&failed.attributes, "error.type").as_deref(),
        Some("503")
    );
    assert_eq!(
        status(failed),
        (StatusCode::Error as i32, "HTTP 503".to_owned())
    );

    let points: Vec<HistogramDataPoint> =
        histogram_points(&receiver, "http.server.request.duration")
            .into_iter()
            .filter(|p| {
                string_attr(&p.attributes, "http.route").as_deref() == Some("/tracing/orders/{id}")
            })
            .collect();
    let described: Vec<(String, i64, Option<String>, u64)> = points
        .iter()
        .map(|p| {
            assert_eq!(
                string_attr(&p.attributes, "url.scheme").as_deref(),
                Some("https")
            );
            (
                string_attr(&p.attributes, "http.request.method").unwrap(),
                int_attr(&p.attributes, "http.response.status_code").unwrap(),
                string_attr(&p.attributes, "error.type"),
                p.count,
            )
        })
        .collect();
    let mut described = described;
    described.sort();
    assert_eq!(
        described,
        [
            ("GET".to_owned(), 200, None, 1),
            ("GET".to_owned(), 503, Some("503".to_owned()), 1),
            ("_OTHER".to_owned(), 200, None, 1),
        ]
    );
}

#[test]
fn database_spans_are_summarised_sanitised_and_counted_even_unsampled() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let subscriber = tracing_subscriber::registry().with(layer());
    let query = |error: Option<&str>| {
        let span = tracing::info_span!(
            "query",
            otel.kind = "client",
            db.system.name = "postgresql",
            db.namespace = "shop",
            db.query.text = "SELECT * FROM tracing_orders WHERE id = 42",
            error.type = Empty,
        );
        if let Some(error) = error {
            span.record("error.type", error);
        }
    };
    let telemetry = start(&receiver, 1.0);
    tracing::subscriber::with_default(subscriber, || query(None));
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    assert_eq!(spans.len(), 1);
    let a = &spans[0].attributes;
    assert_eq!(
        string_attr(a, "db.query.text").as_deref(),
        Some("SELECT * FROM tracing_orders WHERE id = ?"),
        "literals are sanitised"
    );
    assert_eq!(
        string_attr(a, "db.query.summary").as_deref(),
        Some("SELECT tracing_orders")
    );
    assert_eq!(
        string_attr(a, "db.operation.name").as_deref(),
        Some("SELECT")
    );
    assert_eq!(
        string_attr(a, "db.collection.name").as_deref(),
        Some("tracing_orders")
    );
    drop(telemetry);

    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 0.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..4 {
            query((i == 0).then_some("timeout"));
        }
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.spans().is_empty(), "rate 0: no spans");
    let points: Vec<HistogramDataPoint> =
        histogram_points(&receiver, "db.client.operation.duration")
            .into_iter()
            .filter(|p| {
                string_attr(&p.attributes, "db.collection.name").as_deref()
                    == Some("tracing_orders")
            })
            .collect();
    for p in &points {
        assert_eq!(
            string_attr(&p.attributes, "db.operation.name").as_deref(),
            Some("SELECT")
        );
        assert_eq!(
            string_attr(&p.attributes, "db.namespace").as_deref(),
            Some("shop")
        );
        assert_eq!(
            string_attr(&p.attributes, "db.system.name").as_deref(),
            Some("postgresql")
        );
    }
    let timeouts: u64 = points
        .iter()
        .filter(|p| string_attr(&p.attributes, "error.type").as_deref() == Some("timeout"))
        .map(|p| p.count)
        .sum();
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(
        (timeouts, total),
        (1, 4),
        "every query counts, sampled or not"
    );
}

/// What the app's console layer printed: every event's message, from any thread.
static CONSOLE: parking_lot::Mutex<Vec<String>> = parking_lot::const_mutex(Vec::new());

/// A console layer at TRACE, as an app debugging its own HTTP calls would run.
struct Console;

impl<S: tracing::Subscriber> Layer<S> for Console {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut message = Message(None);
        event.record(&mut message);
        CONSOLE.lock().extend(message.0);
    }
}

/// The process's `log` records turned into tracing events (tracing-log's `LogTracer`, what
/// tracing-subscriber's `init()` installs) and a global subscriber with a console and this
/// crate's layer: the global one is what the exporter thread dispatches to.
fn log_through_tracing() {
    static GLOBAL: OnceLock<()> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        tracing_log::LogTracer::init().unwrap();
        // This crate's layer filtered, so its own callbacks cannot veto what the console gets.
        let subscriber = tracing_subscriber::registry()
            .with(Console)
            .with(layer().with_filter(LevelFilter::INFO));
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
    log::set_max_level(log::LevelFilter::Trace);
}

#[test]
fn log_records_through_tracing_log_are_exported_as_the_log_bridge_exports_them() {
    let _serial = common::serial();
    log_through_tracing();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let line = line!() + 1;
    log::info!(target: "shop::orders", "order {} placed", 7);
    log::warn!(target: "plain_connect::export", "this crate's own warning");
    log::info!("logged from this module");
    telemetry.flush(Duration::from_secs(5)).unwrap();
    drop(telemetry);
    let logs = receiver.resource_logs();
    let scoped: Vec<(String, String, Vec<common::proto::common::v1::KeyValue>)> = logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| {
            let scope = s.scope.as_ref().map(|s| s.name.clone()).unwrap_or_default();
            s.log_records.iter().map(move |r| {
                let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(common::proto::common::v1::any_value::Value::StringValue(s)) => s.clone(),
                    _ => String::new(),
                };
                (scope.clone(), body, r.attributes.clone())
            })
        })
        .collect();
    let bodies: Vec<&str> = scoped.iter().map(|(_, b, _)| b.as_str()).collect();
    assert!(
        !bodies.contains(&"this crate's own warning"),
        "this crate's records stay unexported whatever path they take: {bodies:?}"
    );
    let (scope, _, attributes) = scoped
        .iter()
        .find(|(_, body, _)| body == "order 7 placed")
        .unwrap_or_else(|| panic!("{bodies:?}"));
    assert_eq!(scope, "shop::orders", "the record's target is the scope");
    assert_eq!(
        string_attr(attributes, "code.file.path").as_deref(),
        Some(file!())
    );
    assert_eq!(int_attr(attributes, "code.line.number"), Some(line as i64));
    assert_eq!(
        string_attr(attributes, "code.namespace").as_deref(),
        Some(module_path!()),
        "the module differs from the target"
    );
    let keys: Vec<&str> = attributes.iter().map(|a| a.key.as_str()).collect();
    assert!(
        keys.iter().all(|k| !k.starts_with("log.")),
        "tracing-log's fields are read, not exported: {keys:?}"
    );
    let (scope, _, attributes) = scoped
        .iter()
        .find(|(_, body, _)| body == "logged from this module")
        .unwrap();
    assert_eq!(scope, module_path!());
    assert_eq!(string_attr(attributes, "code.namespace"), None);
}

#[test]
fn the_export_token_never_reaches_other_layers_through_tracing_log() {
    let _serial = common::serial();
    log_through_tracing();
    let receiver = TestReceiver::start();
    let token = "tok-91b3-SECRET-not-for-consoles-55e0";
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token(token)
        .log_level("trace")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let before = CONSOLE.lock().len();
    tracing::info_span!("exported span").in_scope(|| tracing::info!("exported event"));
    telemetry.flush(Duration::from_secs(5)).unwrap();
    drop(telemetry);
    assert!(
        receiver
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {token}"))),
        "the token did travel, so there was something to leak"
    );
    let printed = CONSOLE.lock()[before..].to_vec();
    assert!(printed.iter().any(|m| m == "exported event"), "{printed:?}");
    assert_eq!(
        common::token_leaks(&printed, token),
        Vec::<String>::new(),
        "{printed:#?}"
    );
    log::trace!(target: "ureq_proto::util", "the app's own wire dump");
    assert!(
        CONSOLE
            .lock()
            .iter()
            .any(|m| m == "the app's own wire dump"),
        "the app's own records from the same library still print"
    );
}

#[test]
fn errors_mark_their_span_even_when_log_export_is_off() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .export_logs(false)
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        let _ = charge(99);
        tracing::info_span!("handled").in_scope(|| tracing::warn!("retrying"));
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.log_records().is_empty());
    let spans = receiver.spans();
    let charged = spans.iter().find(|s| s.name == "charge").unwrap();
    assert_eq!(status(charged).0, StatusCode::Error as i32);
    assert!(charged.events.iter().any(|e| e.name == "exception"));
    let handled = spans.iter().find(|s| s.name == "handled").unwrap();
    assert_eq!(
        status(handled).0,
        StatusCode::Unset as i32,
        "a warning is not an error"
    );
}

#[test]
fn fields_follow_the_configured_span_limits() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .span_limits(
            plain_connect::trace::SpanLimits::default()
                .max_attributes(2)
                .max_value_chars(4),
        )
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tracing-users", "1")).unwrap();
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("limited", a = "abcdefgh", b = 2, c = 3, d = Empty);
        span.record("d", 4);
        span.in_scope(|| span.record("a", "ijklmnop"));
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let span = &spans[0];
    assert_eq!(span.attributes.len(), 2);
    assert_eq!(string_attr(&span.attributes, "a").as_deref(), Some("ijkl"));
    assert_eq!(int_attr(&span.attributes, "b"), Some(2));
    assert_eq!(span.dropped_attributes_count, 2);
}

#[test]
fn follows_from_becomes_a_link() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let subscriber = tracing_subscriber::registry().with(layer());
    tracing::subscriber::with_default(subscriber, || {
        let produced = tracing::info_span!("produce");
        produced.in_scope(|| {});
        let consumed = tracing::info_span!(parent: None, "consume batch");
        consumed.follows_from(&produced);
        drop(produced);
        consumed.in_scope(|| {});
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let spans = receiver.spans();
    let produce = spans.iter().find(|s| s.name == "produce").unwrap();
    let consume = spans.iter().find(|s| s.name == "consume batch").unwrap();
    assert!(consume.parent_span_id.is_empty());
    assert_eq!(consume.links.len(), 1);
    assert_eq!(consume.links[0].span_id, produce.span_id);
    assert_eq!(consume.links[0].trace_id, produce.trace_id);
}

/// Events from one call site, over and over (its template and the last message's room reused),
/// and from a second site with another target: each record has its own message, fields, scope
/// and code location.
#[test]
fn repeated_events_from_a_call_site_each_keep_their_own_message_and_fields() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver, 1.0);
    let subscriber = tracing_subscriber::registry().with(plain_connect::tracing_bridge::layer());
    let long = "l".repeat(3000);
    let messages = ["first", long.as_str(), "", "after the long one", "x"];
    let line = line!() + 4;
    tracing::subscriber::with_default(subscriber, || {
        for (i, message) in messages.iter().enumerate() {
            if i % 2 == 0 {
                tracing::info!(order = i, "{message}");
            } else {
                tracing::warn!(target: "shop::orders", "{message} {i}");
            }
        }
    });
    telemetry.flush(Duration::from_secs(5)).unwrap();
    drop(telemetry);
    let mut records = Vec::new();
    for resource in receiver.resource_logs() {
        for scope_logs in &resource.scope_logs {
            let scope = scope_logs.scope.as_ref().map(|s| s.name.clone());
            for r in &scope_logs.log_records {
                let body = match r.body.as_ref().and_then(|b| b.value.as_ref()) {
                    Some(common::proto::common::v1::any_value::Value::StringValue(s)) => s.clone(),
                    other => panic!("body {other:?}"),
                };
                records.push((scope.clone().unwrap_or_default(), body, r.clone()));
            }
        }
    }
    assert_eq!(records.len(), messages.len());
    for (i, message) in messages.iter().enumerate() {
        let (scope, _, record) = records
            .iter()
            .find(|(_, body, r)| {
                let expected = if i % 2 == 0 {
                    message.to_string()
                } else {
                    format!("{message} {i}")
                };
                *body == expected && r.severity_number == if i % 2 == 0 { 9 } else { 13 }
            })
            .unwrap_or_else(|| panic!("no record {i}"));
        let line = if i % 2 == 0 { line } else { line + 2 };
        assert_eq!(
            string_attr(&record.attributes, "code.file.path").as_deref(),
            Some(file!())
        );
        assert_eq!(
            int_attr(&record.attributes, "code.line.number"),
            Some(i64::from(line))
        );
        if i % 2 == 0 {
            assert_eq!(scope, module_path!());
            assert_eq!(int_attr(&record.attributes, "order"), Some(i as i64));
            assert_eq!(record.attributes.len(), 3, "code location and order");
        } else {
            assert_eq!(scope, "shop::orders");
            assert_eq!(
                string_attr(&record.attributes, "code.namespace").as_deref(),
                Some(module_path!())
            );
            assert_eq!(record.attributes.len(), 3, "code location and namespace");
        }
    }
}
