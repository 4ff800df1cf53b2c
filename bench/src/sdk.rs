//! The workloads' steps through the official SDK: opentelemetry_sdk + opentelemetry-otlp over
//! HTTP protobuf with the blocking reqwest client and the batch processors, default settings.

use crate::library::{
    db_operation_name, status_code, Library, Pipeline, Signal, CHILD_SPAN, HISTOGRAM_ATTRIBUTES,
    HISTOGRAM_NAME, SERVER_SPAN,
};
use opentelemetry::metrics::{BoundHistogram, Histogram, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanKind, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;

pub fn resource(service: &str) -> Resource {
    Resource::builder()
        .with_service_name(service.to_owned())
        .build()
}

/// The span exporter both the SDK and fastrace-opentelemetry send through.
pub fn span_exporter(endpoint: &str, gzip: bool) -> opentelemetry_otlp::SpanExporter {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{endpoint}/v1/traces"));
    if gzip {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    builder.build().expect("SDK span exporter")
}

#[derive(Default)]
pub struct Sdk {
    traces: Option<(SdkTracerProvider, SdkTracer)>,
    metrics: Option<SdkMeterProvider>,
    logs: Option<SdkLoggerProvider>,
}

pub struct DbHistogram {
    histogram: Histogram<f64>,
    attributes: [KeyValue; 3],
}

impl Sdk {
    fn tracer(&self) -> &SdkTracer {
        &self.traces.as_ref().expect("a span workload").1
    }
}

impl Library for Sdk {
    const SIGNALS: &'static [Signal] = &[Signal::Traces, Signal::Metrics, Signal::Logs];
    type Histogram = DbHistogram;
    type BoundHistogram = BoundHistogram<f64>;

    fn start(pipeline: &Pipeline) -> Self {
        let resource = resource(pipeline.service);
        let endpoint = pipeline.endpoint;
        let mut sdk = Sdk::default();
        match pipeline.signal {
            Signal::Traces => {
                let rate = if pipeline.sampled { 1.0 } else { 0.0 };
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(span_exporter(endpoint, pipeline.gzip))
                    .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                        rate,
                    ))))
                    .with_resource(resource)
                    .build();
                let tracer = provider.tracer("bench");
                sdk.traces = Some((provider, tracer));
            }
            Signal::Metrics => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(format!("{endpoint}/v1/metrics"))
                    .with_temporality(Temporality::Delta)
                    .build()
                    .expect("SDK metric exporter");
                sdk.metrics = Some(
                    SdkMeterProvider::builder()
                        .with_periodic_exporter(exporter)
                        .with_resource(resource)
                        .build(),
                );
            }
            Signal::Logs => {
                let exporter = opentelemetry_otlp::LogExporter::builder()
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(format!("{endpoint}/v1/logs"))
                    .build()
                    .expect("SDK log exporter");
                sdk.logs = Some(
                    SdkLoggerProvider::builder()
                        .with_batch_exporter(exporter)
                        .with_resource(resource)
                        .build(),
                );
            }
        }
        sdk
    }

    fn shutdown(self) {
        let deadline = Duration::from_secs(30);
        if let Some((provider, _)) = self.traces {
            let _ = provider.force_flush();
            let _ = provider.shutdown_with_timeout(deadline);
        }
        if let Some(provider) = self.metrics {
            let _ = provider.shutdown_with_timeout(deadline);
        }
        if let Some(provider) = self.logs {
            let _ = provider.shutdown_with_timeout(deadline);
        }
    }

    fn server_span(&self, i: u64) {
        let tracer = self.tracer();
        let mut span = tracer
            .span_builder(SERVER_SPAN)
            .with_kind(SpanKind::Server)
            .start(tracer);
        span.set_attribute(KeyValue::new("http.request.method", "GET"));
        span.set_attribute(KeyValue::new("http.route", "/users/{id}"));
        span.set_attribute(KeyValue::new("http.response.status_code", status_code(i)));
        span.end();
    }

    fn under_parent(&self, body: &mut dyn FnMut()) {
        let tracer = self.tracer();
        let parent = tracer
            .span_builder(SERVER_SPAN)
            .with_kind(SpanKind::Server)
            .start(tracer);
        let cx = Context::current_with_span(parent);
        {
            let _attached = cx.clone().attach();
            body();
        }
        cx.span().end();
    }

    fn child_span(&self, i: u64) {
        let tracer = self.tracer();
        let mut child = tracer
            .span_builder(CHILD_SPAN)
            .with_kind(SpanKind::Client)
            .start(tracer);
        child.set_attribute(KeyValue::new("db.system.name", "postgresql"));
        child.set_attribute(KeyValue::new("db.collection.name", "users"));
        child.set_attribute(KeyValue::new("db.operation.name", db_operation_name(i)));
        child.end();
    }

    fn install_log_bridge(&self) {
        let provider = self.logs.as_ref().expect("a log workload");
        let bridge = opentelemetry_appender_log::OpenTelemetryLogBridge::new(provider);
        log::set_boxed_logger(Box::new(bridge)).expect("first logger in this process");
        log::set_max_level(log::LevelFilter::Info);
    }

    fn histogram(&self) -> DbHistogram {
        let provider = self.metrics.as_ref().expect("a metrics workload");
        DbHistogram {
            histogram: provider
                .meter("bench")
                .f64_histogram(HISTOGRAM_NAME)
                .with_unit("s")
                .with_boundaries(plain_connect::metrics::DB_CLIENT_DURATION_BOUNDS.to_vec())
                .build(),
            attributes: HISTOGRAM_ATTRIBUTES.map(|(key, value)| KeyValue::new(key, value)),
        }
    }

    fn record(histogram: &DbHistogram, value: f64) {
        histogram.histogram.record(value, &histogram.attributes);
    }

    fn bind(histogram: &DbHistogram) -> BoundHistogram<f64> {
        histogram.histogram.bind(&histogram.attributes)
    }

    fn record_bound(bound: &BoundHistogram<f64>, value: f64) {
        bound.record(value);
    }
}
