//! The `log` bridge end to end: severities, the floor, trace correlation, key-values, the
//! wrapped logger, the feedback guard, and EXPORT_LOGS=false — decoded from a loopback receiver.

mod common;

use common::{hex, int_attr, string_attr, TestReceiver};
use parking_lot::Mutex;
use plain_connect::trace;
use plain_connect::{Resource, Settings, Telemetry};
use std::sync::OnceLock;
use std::time::Duration;

/// What the app's own logger (wrapped by the bridge) received: (target, level, message).
static SEEN_BY_APP_LOGGER: Mutex<Vec<(String, log::Level, String)>> =
    parking_lot::const_mutex(Vec::new());

struct AppLogger;

impl log::Log for AppLogger {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        SEEN_BY_APP_LOGGER.lock().push((
            record.target().to_owned(),
            record.level(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

fn install_bridge_once() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        plain_connect::logs::install(Some(Box::new(AppLogger))).expect("first logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn start(
    receiver_url: &str,
    tune: impl FnOnce(plain_connect::SettingsBuilder) -> plain_connect::SettingsBuilder,
) -> Telemetry {
    install_bridge_once();
    let settings = tune(
        Settings::builder()
            .export_url(receiver_url)
            .export_token("t"),
    )
    .build()
    .unwrap();
    Telemetry::start(settings, Resource::new("log-tests", "1")).unwrap()
}

fn messages(receiver: &TestReceiver) -> Vec<String> {
    receiver
        .log_records()
        .into_iter()
        .filter_map(|r| match r.body?.value? {
            common::proto::common::v1::any_value::Value::StringValue(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn severities_map_to_the_otlp_numbers() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver.endpoint(), |b| b.log_level("trace"));
    log::trace!("t");
    log::debug!("d");
    log::info!("i {}", 1);
    log::warn!("w");
    log::error!("e");
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let records = receiver.log_records();
    let got: Vec<(i32, String)> = records
        .iter()
        .map(|r| (r.severity_number, r.severity_text.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (1, "TRACE"),
            (5, "DEBUG"),
            (9, "INFO"),
            (13, "WARN"),
            (17, "ERROR")
        ]
        .map(|(n, t)| (n, t.to_owned()))
    );
    assert_eq!(messages(&receiver)[2], "i 1");
    assert!(records
        .iter()
        .all(|r| r.time_unix_nano > 0 && r.observed_time_unix_nano > 0));
    let scope = &receiver.resource_logs()[0].scope_logs[0]
        .scope
        .clone()
        .unwrap();
    assert_eq!(
        scope.name, "logs",
        "the log target is the instrumentation scope"
    );
}

#[test]
fn the_floor_applies_by_name_and_by_number() {
    for floor in ["WARN", "13"] {
        let _serial = common::serial();
        let receiver = TestReceiver::start();
        let telemetry = start(&receiver.endpoint(), |b| b.log_level(floor));
        log::info!("below the floor");
        log::warn!("at the floor");
        log::error!("above the floor");
        telemetry.flush(Duration::from_secs(5)).unwrap();
        assert_eq!(
            messages(&receiver),
            ["at the floor", "above the floor"],
            "floor {floor}"
        );
        let seen = SEEN_BY_APP_LOGGER.lock();
        assert!(
            seen.iter().any(|(_, _, m)| m == "below the floor"),
            "the app's logger still sees what is not exported"
        );
    }
}

#[test]
fn records_carry_the_current_span_and_key_values() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver.endpoint(), |b| b);
    let (trace_id, span_id) = {
        let span = trace::span("request").start();
        log::info!(order_id = 42, vip = true, customer = "ada"; "order placed");
        (span.context().trace_id(), span.context().span_id())
    };
    log::info!("outside any span");
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let records = receiver.log_records();
    assert_eq!(records.len(), 2);
    let inside = &records[0];
    assert_eq!(hex(&inside.trace_id), trace_id.to_string());
    assert_eq!(hex(&inside.span_id), span_id.to_string());
    assert_eq!(inside.flags, 0x03, "a new trace: sampled and random");
    assert_eq!(int_attr(&inside.attributes, "order_id"), Some(42));
    assert_eq!(
        string_attr(&inside.attributes, "customer").as_deref(),
        Some("ada")
    );
    assert!(int_attr(&inside.attributes, "code.line.number").is_some());
    assert!(string_attr(&inside.attributes, "code.file.path")
        .unwrap()
        .ends_with("logs.rs"));
    let outside = &records[1];
    assert!(outside.trace_id.is_empty() && outside.span_id.is_empty());
}

#[test]
fn a_refusing_endpoint_does_not_feed_the_export_with_its_own_errors() {
    let _serial = common::serial();
    // A port with nothing listening: every export attempt fails to connect.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let telemetry = start(&closed, |b| {
        b.log_level("trace")
            .export_delay(Duration::from_millis(50))
            .retry(
                plain_connect::RetryPolicy::default()
                    .max_attempts(2)
                    .initial_backoff(Duration::from_millis(10))
                    .max_backoff(Duration::from_millis(20))
                    .max_elapsed(Duration::from_secs(1)),
            )
    });
    let before = SEEN_BY_APP_LOGGER.lock().len();
    log::info!("app record one");
    log::info!(target: "ureq::pool", "the app's own HTTP client, on the app's thread");
    // Several export cycles fail meanwhile; each logs on the exporter thread.
    std::thread::sleep(Duration::from_millis(800));
    log::info!("app record two");
    std::thread::sleep(Duration::from_millis(300));
    let counts = telemetry.counters().logs;
    assert_eq!(
        counts.enqueued + counts.dropped_queue_full,
        3,
        "only the app's three records may enter the pipeline: {counts:?}"
    );
    let seen = SEEN_BY_APP_LOGGER.lock()[before..].to_vec();
    assert!(
        seen.iter()
            .any(|(target, _, _)| target.starts_with("plain_connect")),
        "the exporter's own warnings still reach the app's logger: {seen:?}"
    );
    drop(telemetry);
}

#[test]
fn export_logs_false_stops_logs_but_not_spans() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let telemetry = start(&receiver.endpoint(), |b| b.export_logs(false));
    log::error!("not exported");
    trace::span("still exported").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(receiver.log_records().is_empty());
    assert_eq!(receiver.spans().len(), 1);
}

#[test]
fn the_export_token_never_reaches_the_apps_logger_even_at_trace() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let token = "tok-4f9a-SECRET-never-logged-7c21";
    install_bridge_once();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token(token)
        .log_level("trace")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("log-tests", "1")).unwrap();
    assert_eq!(log::max_level(), log::LevelFilter::Trace);
    let before = SEEN_BY_APP_LOGGER.lock().len();
    log::info!("a record to export");
    trace::span("a span to export").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    assert!(
        receiver
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(&format!("Bearer {token}"))),
        "the token did travel, so there was something to leak"
    );
    drop(telemetry);
    let captured: Vec<String> = SEEN_BY_APP_LOGGER.lock()[before..]
        .iter()
        .map(|(_, _, message)| message.clone())
        .collect();
    assert_eq!(
        common::token_leaks(&captured, token),
        Vec::<String>::new(),
        "{captured:#?}"
    );
    // The app's own records from the same libraries, on its own threads, still arrive.
    log::trace!(target: "ureq_proto::util", "the app's own wire dump");
    assert!(SEEN_BY_APP_LOGGER
        .lock()
        .iter()
        .any(|(_, _, m)| m == "the app's own wire dump"));
}
