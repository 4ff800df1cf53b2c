//! The span workloads' steps through fastrace 0.7, reported by fastrace-opentelemetry over the
//! same opentelemetry-otlp span exporter the SDK side uses, default collector settings.
//! fastrace records spans only: the metrics and log workloads are not run for it.

use crate::library::{
    db_operation_name, status_code, Library, Pipeline, Signal, CHILD_SPAN, SERVER_SPAN,
};
use fastrace::collector::{Config, SpanContext};
use fastrace::local::LocalSpan;
use fastrace::Span;
use fastrace_opentelemetry::OpenTelemetryReporter;
use opentelemetry::InstrumentationScope;
use std::borrow::Cow;

pub struct Fastrace {
    /// fastrace has no sampler: an unsampled trace is a root whose context says so.
    sampled: bool,
}

/// fastrace's properties are strings.
fn status_code_text(i: u64) -> &'static str {
    if status_code(i) == 200 {
        "200"
    } else {
        "201"
    }
}

impl Fastrace {
    fn root(&self) -> Span {
        Span::root(SERVER_SPAN, SpanContext::random().sampled(self.sampled))
    }
}

impl Library for Fastrace {
    const SIGNALS: &'static [Signal] = &[Signal::Traces];
    type Histogram = ();
    type BoundHistogram = ();

    fn start(pipeline: &Pipeline) -> Self {
        let reporter = OpenTelemetryReporter::new(
            crate::sdk::span_exporter(pipeline.endpoint, pipeline.gzip),
            Cow::Owned(crate::sdk::resource(pipeline.service)),
            InstrumentationScope::builder("bench").build(),
        );
        fastrace::set_reporter(reporter, Config::default());
        Fastrace {
            sampled: pipeline.sampled,
        }
    }

    fn shutdown(self) {
        fastrace::flush();
    }

    fn server_span(&self, i: u64) {
        let _span = self.root().with_properties(|| {
            [
                ("span.kind", "server"),
                ("http.request.method", "GET"),
                ("http.route", "/users/{id}"),
                ("http.response.status_code", status_code_text(i)),
            ]
        });
    }

    fn under_parent(&self, body: &mut dyn FnMut()) {
        let parent = self.root().with_property(|| ("span.kind", "server"));
        let _current = parent.set_local_parent();
        body();
    }

    fn child_span(&self, i: u64) {
        let _child = LocalSpan::enter_with_local_parent(CHILD_SPAN).with_properties(|| {
            [
                ("span.kind", "client"),
                ("db.system.name", "postgresql"),
                ("db.collection.name", "users"),
                ("db.operation.name", db_operation_name(i)),
            ]
        });
    }

    fn install_log_bridge(&self) {
        unreachable!("fastrace records no logs")
    }

    fn histogram(&self) {
        unreachable!("fastrace records no metrics")
    }

    fn record(_: &(), _: f64) {}

    fn bind(_: &()) {}

    fn record_bound(_: &(), _: f64) {}
}
