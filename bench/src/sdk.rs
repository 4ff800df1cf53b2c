//! The same workloads through the official SDK: opentelemetry_sdk + opentelemetry-otlp over
//! HTTP protobuf with the blocking reqwest client and the batch processors, default settings.

use crate::{finish, median_ns, median_ns_threads, paced, Quick, Report, Workload, BURST};
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::sync::OnceLock;
use std::time::Duration;

static TRACER: OnceLock<opentelemetry_sdk::trace::SdkTracer> = OnceLock::new();

fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

fn tracer_provider(endpoint: &str, service: &str, rate: f64, gzip: bool) -> SdkTracerProvider {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"));
    if gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    SdkTracerProvider::builder()
        .with_batch_exporter(builder.build().expect("SDK span exporter"))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            rate,
        ))))
        .with_resource(resource(service))
        .build()
}

fn server_span(i: u64) {
    let tracer = TRACER.get().unwrap();
    let mut span = tracer
        .span_builder("GET /users/{id}")
        .with_kind(SpanKind::Server)
        .start(tracer);
    span.set_attribute(KeyValue::new("http.request.method", "GET"));
    span.set_attribute(KeyValue::new("http.route", "/users/{id}"));
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        200 + (i % 2) as i64,
    ));
    span.end();
}

pub fn run(workload: Workload, endpoint: &str, service: &str, quick: &Quick) -> Report {
    let (rounds, per_round) = (quick.rounds(), quick.per_round());
    let mut report = Report::default();
    let provider = match workload {
        Workload::SpanDisabled => None,
        Workload::SpanUnsampled => Some(tracer_provider(endpoint, service, 0.0, false)),
        Workload::Sustain { gzip, .. } => Some(tracer_provider(endpoint, service, 1.0, gzip)),
        _ => Some(tracer_provider(endpoint, service, 1.0, false)),
    };
    match &provider {
        Some(p) => TRACER.set(p.tracer("bench")).ok(),
        // Export disabled: the no-op tracer the API hands out with no provider installed.
        None => None,
    };
    match workload {
        Workload::SpanDisabled => {
            let tracer = opentelemetry::global::tracer("bench");
            report.ns_per_op = median_ns(rounds, per_round, |i| {
                let mut span = tracer
                    .span_builder("GET /users/{id}")
                    .with_kind(SpanKind::Server)
                    .start(&tracer);
                span.set_attribute(KeyValue::new("http.request.method", "GET"));
                span.set_attribute(KeyValue::new("http.route", "/users/{id}"));
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    200 + (i % 2) as i64,
                ));
                span.end();
            });
        }
        Workload::Span | Workload::SpanUnsampled => {
            report.ns_per_op = median_ns(rounds, per_round, server_span);
        }
        Workload::Nested => {
            let tracer = TRACER.get().unwrap();
            report.ns_per_op = median_ns(rounds, per_round, |i| {
                let parent = tracer
                    .span_builder("GET /users/{id}")
                    .with_kind(SpanKind::Server)
                    .start(tracer);
                let cx = Context::current_with_span(parent);
                {
                    let _attached = cx.clone().attach();
                    let mut child = tracer
                        .span_builder("SELECT users")
                        .with_kind(SpanKind::Client)
                        .start(tracer);
                    child.set_attribute(KeyValue::new("db.system.name", "postgresql"));
                    child.set_attribute(KeyValue::new("db.collection.name", "users"));
                    child.set_attribute(KeyValue::new(
                        "db.operation.name",
                        if i % 2 == 0 { "SELECT" } else { "select" },
                    ));
                    child.end();
                }
                cx.span().end();
            });
        }
        Workload::LogFiltered => {
            // The baseline: a record `log` itself filters out with one level comparison.
            log::set_max_level(log::LevelFilter::Info);
            report.ns_per_op = median_ns(rounds, per_round, |i| log::debug!("order {i} looked up"));
        }
        Workload::Histogram | Workload::HistogramBound | Workload::Log => {
            report.ns_per_op =
                crate::sdk_extra::run(workload, endpoint, service, rounds, per_round);
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
        Workload::Sustain { rate, .. } => {
            report.produced = paced(rate, 3, server_span);
        }
        Workload::Idle => std::thread::sleep(Duration::from_secs(1)),
    }
    if let Some(p) = provider {
        let _ = p.force_flush();
        let _ = p.shutdown_with_timeout(Duration::from_secs(30));
    }
    finish(report)
}
