//! Histogram and log workloads through the official SDK.

use crate::{median_ns, Workload};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{SdkMeterProvider, Temporality};
use opentelemetry_sdk::Resource;
use std::time::Duration;

pub fn run(
    workload: Workload,
    endpoint: &str,
    service: &str,
    rounds: usize,
    per_round: u64,
) -> f64 {
    let resource = Resource::builder()
        .with_service_name(service.to_owned())
        .build();
    match workload {
        Workload::Histogram | Workload::HistogramBound => {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/metrics"))
                .with_temporality(Temporality::Delta)
                .build()
                .expect("SDK metric exporter");
            let provider = SdkMeterProvider::builder()
                .with_periodic_exporter(exporter)
                .with_resource(resource)
                .build();
            let histogram = provider
                .meter("bench")
                .f64_histogram("db.client.operation.duration")
                .with_unit("s")
                .build();
            let attributes = [
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.operation.name", "SELECT"),
                KeyValue::new("db.collection.name", "users"),
            ];
            let ns = median_ns(rounds, per_round, |i| {
                histogram.record(0.001 * (i % 50) as f64, &attributes)
            });
            let _ = provider.shutdown_with_timeout(Duration::from_secs(30));
            ns
        }
        Workload::Log => {
            let exporter = opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{endpoint}/v1/logs"))
                .build()
                .expect("SDK log exporter");
            let provider = SdkLoggerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource)
                .build();
            let bridge = opentelemetry_appender_log::OpenTelemetryLogBridge::new(&provider);
            log::set_boxed_logger(Box::new(bridge)).expect("first logger in this process");
            log::set_max_level(log::LevelFilter::Info);
            let ns = median_ns(rounds, per_round, |i| log::info!("order {i} placed"));
            let _ = provider.shutdown_with_timeout(Duration::from_secs(30));
            ns
        }
        _ => unreachable!(),
    }
}
