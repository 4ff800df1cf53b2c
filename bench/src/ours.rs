//! The workloads through plain-connect.

use crate::{finish, median_ns, median_ns_threads, paced, Quick, Report, Workload, BURST};
use plain_connect::trace::{self, SpanKind};
use plain_connect::{Resource, Settings, Telemetry};
use std::time::Duration;

fn start(endpoint: &str, service: &str, rate: f64, token: &str) -> Telemetry {
    let settings = Settings::builder()
        .export_url(endpoint)
        .export_token(token)
        .trace_sample_rate(rate)
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new(service, "1.0.0")).unwrap()
}

fn server_span(i: u64) {
    let mut span = trace::span("GET /users/{id}")
        .kind(SpanKind::Server)
        .start();
    span.set_attribute("http.request.method", "GET");
    span.set_attribute("http.route", "/users/{id}");
    span.set_attribute("http.response.status_code", 200 + (i % 2) as i64);
}

pub fn run(workload: Workload, endpoint: &str, service: &str, quick: &Quick) -> Report {
    let (rounds, per_round) = (quick.rounds(), quick.per_round());
    let mut report = Report::default();
    let telemetry = match workload {
        Workload::SpanDisabled => start(endpoint, service, 1.0, ""),
        Workload::SpanUnsampled => start(endpoint, service, 0.0, "t"),
        _ => start(endpoint, service, 1.0, "t"),
    };
    match workload {
        Workload::Span | Workload::SpanUnsampled | Workload::SpanDisabled => {
            report.ns_per_op = median_ns(rounds, per_round, server_span);
        }
        Workload::Nested => {
            report.ns_per_op = median_ns(rounds, per_round, |i| {
                let _parent = trace::span("GET /users/{id}")
                    .kind(SpanKind::Server)
                    .start();
                let mut child = trace::span("SELECT users").kind(SpanKind::Client).start();
                child.set_attribute("db.system.name", "postgresql");
                child.set_attribute("db.collection.name", "users");
                child.set_attribute(
                    "db.operation.name",
                    if i % 2 == 0 { "SELECT" } else { "select" },
                );
            });
        }
        Workload::Histogram | Workload::HistogramBound | Workload::Log | Workload::LogFiltered => {
            report.ns_per_op = crate::ours_extra::run(workload, rounds, per_round);
        }
        Workload::Span2Threads => {
            report.ns_per_op = median_ns_threads(2, rounds, per_round, server_span);
        }
        Workload::Burst => {
            for i in 0..BURST {
                server_span(i);
            }
            report.produced = BURST;
        }
        Workload::Sustain { rate, gzip } => {
            drop(telemetry);
            let telemetry = start_sustain(endpoint, service, gzip);
            report.produced = paced(rate, 3, server_span);
            let _ = telemetry.shutdown(Duration::from_secs(30));
            return finish(report);
        }
        Workload::Idle => std::thread::sleep(Duration::from_secs(1)),
    }
    let _ = telemetry.shutdown(Duration::from_secs(30));
    finish(report)
}

fn start_sustain(endpoint: &str, service: &str, gzip: bool) -> Telemetry {
    let settings = Settings::builder()
        .export_url(endpoint)
        .export_token("t")
        .gzip(gzip)
        .build()
        .unwrap();
    Telemetry::start(settings, Resource::new(service, "1.0.0")).unwrap()
}
