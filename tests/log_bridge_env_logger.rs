//! The `log` bridge wrapping env_logger as users build it (`Builder::build()` leaves
//! `log::max_level` to its caller): everything the wrapped logger's filter asks for still
//! reaches it, what it filters out still does not, and the export keeps its own floor — the
//! console decoded from env_logger's own output, the export from a loopback receiver. Its own
//! binary: a process has one logger.

mod common;

use common::{Console, TestReceiver};
use plain_connect::{Resource, Settings, Telemetry};
use std::io::Write;
use std::time::Duration;

#[test]
fn a_wrapped_env_logger_keeps_its_own_levels_and_the_export_its_floor() {
    let console = Console::default();
    let mut builder = env_logger::Builder::new();
    // What RUST_LOG=debug,noisy=warn,app::db=trace asks for, without touching the process env.
    builder
        .parse_filters("debug,noisy=warn,app::db=trace")
        .target(env_logger::Target::Pipe(Box::new(console.clone())))
        .format(|out, record| {
            writeln!(
                out,
                "{} {} {}",
                record.level(),
                record.target(),
                record.args()
            )
        });
    plain_connect::logs::install(Some(Box::new(builder.build()))).unwrap();

    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .export_token("t")
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("env-logger-users", "1")).unwrap();

    log::debug!(target: "app", "a debug line");
    log::trace!(target: "app::db", "a trace line from app::db");
    log::trace!(target: "app", "a trace line elsewhere");
    log::info!(target: "noisy", "noisy info");
    log::warn!(target: "noisy", "noisy warning");
    log::info!(target: "app", "an info line");
    telemetry.flush(Duration::from_secs(5)).unwrap();

    let printed = console.text();
    let lines: Vec<&str> = printed
        .lines()
        .filter(|l| !l.contains(" plain_connect") && !l.contains(" ureq"))
        .collect();
    assert_eq!(
        lines,
        [
            "DEBUG app a debug line",
            "TRACE app::db a trace line from app::db",
            "WARN noisy noisy warning",
            "INFO app an info line",
        ],
        "exactly what env_logger's filter asks for"
    );

    let exported: Vec<String> = receiver
        .log_records()
        .into_iter()
        .filter_map(|r| match r.body?.value? {
            common::proto::common::v1::any_value::Value::StringValue(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(
        exported,
        ["noisy info", "noisy warning", "an info line"],
        "the export has its own floor (INFO by default), whatever the console's filter"
    );
}
