//! What the exporter says to the app's logger when export fails, read through a real `log::Log`:
//! server text is cut short, stripped of control characters and redacted; an outage is a few
//! lines, not one per batch, and the numbers in them add up to the counters; a pipeline that never
//! gets a request through says what to check.

mod common;

use common::{Behavior, TestReceiver};
use parking_lot::Mutex;
use plain_connect::{trace, Resource, Settings, SettingsBuilder, Telemetry};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "tok-3f9a77c1e5";
const HEADER_SECRET: &str = "hny-5be1d0c2aa";

static LINES: Mutex<Vec<String>> = parking_lot::const_mutex(Vec::new());

/// The app's logger: keeps what the exporter says (target `plain_connect::export`).
struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.target().starts_with("plain_connect::export")
            && record.level() <= log::Level::Info
        {
            LINES.lock().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per process) and forgets earlier lines.
fn capture() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
    LINES.lock().clear();
}

fn lines() -> Vec<String> {
    LINES.lock().clone()
}

fn start(url: &str, tune: impl FnOnce(SettingsBuilder) -> SettingsBuilder) -> Telemetry {
    let vars: HashMap<String, String> = [
        ("PLAIN_CONNECT_EXPORT_TOKEN", TOKEN.to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url.to_owned()),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-api-key={HEADER_SECRET}"),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let settings = tune(
        Settings::builder().export_logs(false).retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(1)
                .initial_backoff(Duration::from_millis(5))
                .max_backoff(Duration::from_millis(10))
                .max_elapsed(Duration::from_secs(2)),
        ),
    )
    .build()
    .unwrap()
    .with_env_from(move |name| Ok(vars.get(name).cloned()))
    .unwrap();
    Telemetry::start(settings, Resource::new("failure-reports", "1")).unwrap()
}

fn spans(n: usize) {
    for _ in 0..n {
        trace::span("work").start().end();
    }
}

/// Every "<n> span(s)" figure the lines give.
fn spans_told(lines: &[String]) -> u64 {
    lines
        .iter()
        .flat_map(|line| {
            let words: Vec<&str> = line.split(' ').collect();
            words
                .windows(2)
                .filter(|w| w[1].starts_with("span"))
                .filter_map(|w| w[0].parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

fn assert_safe(line: &str) {
    assert!(
        !line.contains(TOKEN) && !line.contains(HEADER_SECRET),
        "a secret in: {line}"
    );
    assert!(
        !line.chars().any(char::is_control),
        "a control character in: {line:?}"
    );
    assert!(line.len() < 900, "{} bytes: {line}", line.len());
}

#[test]
fn an_endpoint_that_echoes_the_secrets_is_quoted_short_clean_and_redacted_once() {
    let _serial = common::serial();
    capture();
    let receiver = TestReceiver::start();
    let echo = format!(
        "you sent Bearer {TOKEN} and x-api-key {HEADER_SECRET} \u{1b}[31mDENIED\u{1b}[0m\r\n\
         Set-Cookie: injected=1\r\n{}",
        "and so on ".repeat(100)
    );
    receiver.script(vec![Behavior::Raw {
        status: 401,
        content_type: "text/plain".into(),
        body: echo.clone().into_bytes(),
    }]);
    receiver.set_behavior(Behavior::StatusMessage(403, echo.clone()));
    let telemetry = start(&receiver.endpoint(), |b| {
        b.failure_report_interval(Duration::from_secs(30))
    });
    for _ in 0..5 {
        spans(3);
        telemetry.flush(Duration::from_secs(5)).unwrap();
    }
    let said = lines();
    assert_eq!(
        said.len(),
        1,
        "one line for five refused batches: {said:#?}"
    );
    let first = &said[0];
    assert!(
        first.contains("HTTP 401 Unauthorized: you sent *** and x-api-key *** DENIED Set-Cookie"),
        "{first}"
    );
    assert!(
        first.contains("check the token (PLAIN_CONNECT_EXPORT_TOKEN)"),
        "{first}"
    );
    assert!(first.contains("nothing has got through yet"), "{first}");

    // A partial success whose message echoes them is treated the same.
    receiver.set_behavior(Behavior::PartialSuccess {
        rejected: 1,
        message: format!("dropped one from {TOKEN}\u{1b}[2J"),
    });
    spans(2);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let c = telemetry.counters().spans;
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((c.exported, c.dropped_rejected), (1, 16), "{c:?}");
    let said = lines();
    // The rest comes in one line when the exporter stops: nothing the counters hold goes untold.
    assert_eq!(said.len(), 2, "{said:#?}");
    assert!(
        said[1].contains("HTTP 403 Forbidden: you sent *** and"),
        "{}",
        said[1]
    );
    assert!(
        said[1].contains("refused by the endpoint: dropped one from ***"),
        "{}",
        said[1]
    );
    assert_eq!(spans_told(&said), c.dropped_rejected, "{said:#?}");
    for line in &said {
        assert_safe(line);
    }
}

#[test]
fn a_flapping_endpoint_is_a_few_lines_that_add_up_to_the_counters() {
    let _serial = common::serial();
    capture();
    let receiver = Arc::new(TestReceiver::start());
    let interval = Duration::from_millis(400);
    let telemetry = start(&receiver.endpoint(), |b| {
        b.failure_report_interval(interval)
            .export_delay(Duration::from_millis(10))
    });
    // Up and down every 100 ms for 2.4 s, while the app keeps producing.
    let flapping = Duration::from_millis(2400);
    let flipper = {
        let receiver = Arc::clone(&receiver);
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut down = true;
            while started.elapsed() < flapping {
                receiver.set_behavior(if down {
                    Behavior::Status(503)
                } else {
                    Behavior::Ok
                });
                down = !down;
                std::thread::sleep(Duration::from_millis(100));
            }
            receiver.set_behavior(Behavior::Ok);
        })
    };
    let started = Instant::now();
    while started.elapsed() < flapping {
        spans(5);
        std::thread::sleep(Duration::from_millis(5));
    }
    flipper.join().unwrap();
    // Export works again; once the interval has passed, the next batch says so.
    std::thread::sleep(interval);
    spans(1);
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let failed_requests = telemetry.counters().requests_failed;
    let said_before_stop = lines();
    let c = telemetry.counters().spans;
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
    let said = lines();

    assert!(
        failed_requests >= 10,
        "the endpoint flapped: {failed_requests} failed requests"
    );
    // One line per interval, plus the first and the recovery; slack for an exporter running late
    // on a loaded machine (7 lines here).
    let most = (flapping.as_millis() / interval.as_millis()) as usize + 5;
    assert!(
        said.len() <= most,
        "{} lines for {failed_requests} failed requests (at most {most}): {said:#?}",
        said.len()
    );
    assert!(
        said[0].contains("is failing") && said[0].contains("HTTP 503 Service Unavailable"),
        "{said:#?}"
    );
    assert!(
        said_before_stop
            .last()
            .unwrap()
            .contains("export works again"),
        "{said_before_stop:#?}"
    );
    assert_eq!(
        spans_told(&said),
        c.dropped(),
        "the lines add up: {said:#?} {c:?}"
    );
    for line in &said {
        assert_safe(line);
    }
}

/// The first line of a pipeline that never gets a request through, for each way that happens.
#[test]
fn a_pipeline_that_never_gets_through_says_what_to_check_in_its_first_line() {
    let _serial = common::serial();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let receiver = TestReceiver::start();
    let https_to_plain = receiver.endpoint().replace("http://", "https://");
    let refusing = TestReceiver::start();
    refusing.set_behavior(Behavior::Status(401));
    let wrong_path = TestReceiver::start();
    wrong_path.set_behavior(Behavior::Status(404));
    for (url, check) in [
        (
            format!("http://127.0.0.1:{closed_port}"),
            "check the URL and port",
        ),
        (
            "http://nonexistent.invalid:4318".into(),
            "does not resolve: check the URL",
        ),
        #[cfg(feature = "tls")]
        (https_to_plain, "https:// to a port that speaks plain http"),
        #[cfg(not(feature = "tls"))]
        (https_to_plain, "needs plain-connect's `tls` feature"),
        #[cfg(feature = "tls")]
        (
            common::untrusted_tls_server().0,
            "check the server's certificate",
        ),
        (refusing.endpoint(), "check the token"),
        (wrong_path.endpoint(), "check the URL's path"),
    ] {
        capture();
        let telemetry = start(&url, |b| b);
        spans(2);
        telemetry.flush(Duration::from_secs(5)).unwrap();
        spans(2);
        telemetry.flush(Duration::from_secs(5)).unwrap();
        let said = lines();
        telemetry.shutdown(Duration::from_secs(5)).unwrap();
        assert_eq!(said.len(), 1, "{url}: {said:#?}");
        assert!(
            said[0].contains("nothing has got through yet") && said[0].contains(check),
            "{url}: {said:#?}"
        );
        assert_safe(&said[0]);
    }
}

/// Items the app threads drop on a full queue are told like the others, and add up too.
#[test]
fn a_full_export_queue_is_told_with_what_to_change() {
    let _serial = common::serial();
    capture();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::Delay(
        Duration::from_millis(100),
        Box::new(Behavior::Ok),
    ));
    let telemetry = start(&receiver.endpoint(), |b| {
        b.max_queue_size(256)
            .max_export_batch_size(128)
            .export_delay(Duration::from_millis(10))
            .failure_report_interval(Duration::from_millis(200))
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(600) {
        spans(2000);
        std::thread::sleep(Duration::from_millis(20));
    }
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters().spans;
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
    let said = lines();
    assert!(c.dropped_queue_full > 0, "{c:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("(export queue full)") && l.contains("raise max_queue_size")),
        "{said:#?}"
    );
    assert!(said.len() <= 10, "{said:#?}");
    assert_eq!(spans_told(&said), c.dropped(), "{said:#?} {c:?}");
    for line in &said {
        assert_safe(line);
    }
}

/// A 200 whose `partial_success` only warns: told as a warning, at the same pace.
#[test]
fn an_endpoint_warning_in_a_partial_success_is_told_once_per_interval() {
    let _serial = common::serial();
    capture();
    let receiver = TestReceiver::start();
    receiver.set_behavior(Behavior::PartialSuccess {
        rejected: 0,
        message: "attribute values truncated".into(),
    });
    let telemetry = start(&receiver.endpoint(), |b| b);
    for _ in 0..3 {
        spans(2);
        telemetry.flush(Duration::from_secs(5)).unwrap();
    }
    let c = telemetry.counters().spans;
    let said = lines();
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(c.exported, 6, "{c:?}");
    assert_eq!(
        said,
        ["export works; since the last report: spans (the endpoint warned: attribute values truncated)"]
    );
    assert_eq!(lines().len(), 2, "the later warnings are told at stop");
}
