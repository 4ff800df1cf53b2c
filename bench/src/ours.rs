//! The workloads' steps through plain-connect, default settings.

use crate::library::{
    db_operation_name, status_code, Library, Pipeline, Signal, CHILD_SPAN, HISTOGRAM_ATTRIBUTES,
    HISTOGRAM_NAME, SERVER_SPAN,
};
use plain_connect::trace::{self, SpanKind};
use plain_connect::{metrics, KeyValue, Resource, Settings, Telemetry};
use std::time::Duration;

pub struct Ours(Telemetry);

pub struct Histogram {
    histogram: metrics::Histogram<f64>,
    attributes: [KeyValue; 3],
}

impl Library for Ours {
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
    type Histogram = Histogram;
    type BoundHistogram = metrics::BoundHistogram<f64>;

    fn start(pipeline: &Pipeline) -> Self {
        let settings = Settings::builder()
            .export_url(pipeline.endpoint)
            .export_token("t")
            .trace_sample_rate(if pipeline.sampled { 1.0 } else { 0.0 })
            .gzip(pipeline.gzip)
            .build()
            .expect("bench settings");
        Ours(
            Telemetry::start(settings, Resource::new(pipeline.service, "1.0.0"))
                .expect("plain-connect starts"),
        )
    }

    fn shutdown(self) {
        let _ = self.0.shutdown(Duration::from_secs(30));
    }

    fn server_span(&self, i: u64) {
        let mut span = trace::span(SERVER_SPAN).kind(SpanKind::Server).start();
        span.set_attribute("http.request.method", "GET");
        span.set_attribute("http.route", "/users/{id}");
        span.set_attribute("http.response.status_code", status_code(i));
    }

    fn under_parent(&self, body: &mut dyn FnMut()) {
        let _parent = trace::span(SERVER_SPAN).kind(SpanKind::Server).start();
        body();
    }

    fn child_span(&self, i: u64) {
        let mut child = trace::span(CHILD_SPAN).kind(SpanKind::Client).start();
        child.set_attribute("db.system.name", "postgresql");
        child.set_attribute("db.collection.name", "users");
        child.set_attribute("db.operation.name", db_operation_name(i));
    }

    fn install_log_bridge(&self) {
        plain_connect::logs::install(None).expect("first logger in this process");
    }

    fn histogram(&self) -> Histogram {
        Histogram {
            histogram: metrics::histogram(HISTOGRAM_NAME)
                .unit("s")
                .boundaries(metrics::DB_CLIENT_DURATION_BOUNDS.to_vec())
                .build()
                .expect("histogram"),
            attributes: HISTOGRAM_ATTRIBUTES.map(|(key, value)| KeyValue::new(key, value)),
        }
    }

    fn record(histogram: &Histogram, value: f64) {
        histogram.histogram.record(value, &histogram.attributes);
    }

    fn bind(histogram: &Histogram) -> metrics::BoundHistogram<f64> {
        histogram.histogram.bind(&histogram.attributes)
    }

    fn record_bound(bound: &metrics::BoundHistogram<f64>, value: f64) {
        bound.record(value);
    }
}
