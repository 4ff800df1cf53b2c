//! An app that installs env_logger at TRACE itself, without our bridge (`env_logger::init()`
//! with `RUST_LOG=trace`): its HTTP client's request dump reaches that logger, and the export
//! token and header secrets must not be in it. Its own binary: a process has one logger.

mod common;

use common::{token_leaks, Console, TestReceiver};
use plain_connect::{trace, Resource, Settings, Telemetry};
use std::io::Write;
use std::time::Duration;

const TOKEN: &str = "tok-4f9c2a7e1b6d8053";
const HEADER_SECRET: &str = "hdr-secret-7d31e0c9";

#[test]
fn a_trace_logger_of_the_apps_own_sees_the_request_dump_but_no_secret() {
    let console = Console::default();
    env_logger::Builder::new()
        .parse_filters("trace")
        .target(env_logger::Target::Pipe(Box::new(console.clone())))
        .format(|out, record| writeln!(out, "{} {}", record.target(), record.args()))
        .init();

    let receiver = TestReceiver::start();
    let endpoint = receiver.endpoint();
    let settings = Settings::builder()
        .export_url(&endpoint)
        .export_token(TOKEN)
        .export_logs(false)
        .build()
        .unwrap()
        .with_env_from(|name| {
            Ok((name == "OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .then(|| format!("x-api-key={HEADER_SECRET},x-tenant=acme")))
        })
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("own-logger", "1")).unwrap();
    for _ in 0..2 {
        trace::span("checkout").start().end();
        telemetry.flush(Duration::from_secs(5)).unwrap();
    }

    let requests = receiver.requests();
    assert_eq!(receiver.spans().len(), 2);
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str()),
            "the endpoint gets the real token"
        );
        if request.path == "/v1/traces" {
            assert_eq!(request.header("x-api-key"), Some(HEADER_SECRET));
            assert_eq!(request.header("x-tenant"), Some("acme"));
        }
    }

    let printed = console.text();
    let lines: Vec<String> = printed.lines().map(str::to_owned).collect();
    let dump_rows = lines
        .iter()
        .filter(|l| l.starts_with("ureq_proto::util "))
        .count();
    assert!(
        dump_rows > 4 && printed.contains("POST./v1/traces"),
        "the client's dump reached the app's logger:\n{printed}"
    );
    let dumped: Vec<String> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("ureq_proto::util ").map(str::to_owned))
        .collect();
    for secret in [TOKEN, HEADER_SECRET] {
        let mut found = token_leaks(&dumped, secret);
        found.extend(token_leaks(&lines, secret));
        assert!(found.is_empty(), "{secret} {found:?}:\n{printed}");
    }
    telemetry.shutdown(Duration::from_secs(5)).unwrap();
}
