//! The handle the app holds: start, flush, shut down, read the counters.

use crate::core::sampler::Sampler;
use crate::core::SignalConfig;
use crate::export::{
    CountersReader, CountersSnapshot, Endpoint, ExportError, Pipeline, PipelineConfig, SpanConsumer,
};
use crate::resource::Resource;
use crate::settings::{Settings, SettingsError, Token};
use std::time::Duration;

/// Why telemetry could not start.
#[non_exhaustive]
#[derive(Debug)]
pub enum InitError {
    /// A setting is invalid; the message names the variable and the accepted values.
    Settings(SettingsError),
    /// The pipeline could not be installed (another one is, or the thread did not start).
    Export(ExportError),
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::Settings(e) => write!(f, "plain-connect settings: {e}"),
            InitError::Export(e) => write!(f, "plain-connect: {e}"),
        }
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InitError::Settings(e) => Some(e),
            InitError::Export(e) => Some(e),
        }
    }
}

impl From<SettingsError> for InitError {
    fn from(e: SettingsError) -> Self {
        InitError::Settings(e)
    }
}

impl From<ExportError> for InitError {
    fn from(e: ExportError) -> Self {
        InitError::Export(e)
    }
}

/// The running telemetry pipeline, or a no-op when export is off (no token, or disabled).
///
/// Dropping it flushes and shuts down (waiting at most 5 s).
///
/// ```
/// # fn main() -> Result<(), plain_connect::InitError> {
/// let telemetry = plain_connect::init!()?; // no PLAIN_CONNECT_EXPORT_TOKEN here: a no-op
/// plain_connect::trace::span("startup").start().end();
/// telemetry.shutdown(std::time::Duration::from_secs(5)).ok();
/// # Ok(()) }
/// ```
pub struct Telemetry {
    pipeline: Option<Pipeline>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("active", &self.is_active())
            .finish()
    }
}

impl Telemetry {
    /// Starts exporting with exactly these settings (no environment lookup: [`crate::init!`]
    /// applies `PLAIN_CONNECT_*` on top). With no token or export disabled, returns a no-op.
    /// A second active pipeline in the same process is an error naming where the first started.
    #[track_caller]
    pub fn start(settings: Settings, resource: Resource) -> Result<Telemetry, InitError> {
        let caller = std::panic::Location::caller();
        report_setting_warnings(&settings.warnings());
        if !settings.is_export_active() {
            return Ok(Telemetry::disabled());
        }
        let resource = with_otel_resource(resource, &settings.otel);
        let config = pipeline_config(&settings, &resource);
        let pipeline = Pipeline::start(config, format!("{}:{}", caller.file(), caller.line()))?;
        if let Some(floor) = settings.export_logs().then(|| settings.log_level()) {
            crate::logs::widen_max_level(floor);
        }
        crate::metrics::enable_process_metrics(settings.process_metrics());
        Ok(Telemetry {
            pipeline: Some(pipeline),
        })
    }

    /// A handle whose every call is a no-op.
    pub fn disabled() -> Telemetry {
        Telemetry { pipeline: None }
    }

    /// Whether telemetry is being exported.
    pub fn is_active(&self) -> bool {
        self.pipeline.is_some()
    }

    /// Exports everything recorded so far (spans, log records, and a metrics collection).
    /// Returns by the deadline; [`ExportError::Timeout`] if the export did not finish by then.
    pub fn flush(&self, timeout: Duration) -> Result<(), ExportError> {
        match &self.pipeline {
            Some(p) => p.flush(timeout),
            None => Ok(()),
        }
    }

    /// Flushes, then stops the exporter thread. Returns by the deadline, whatever the endpoint
    /// does; what could not be sent by then is counted as dropped.
    pub fn shutdown(mut self, timeout: Duration) -> Result<(), ExportError> {
        self.shutdown_in_place(timeout)
    }

    fn shutdown_in_place(&mut self, timeout: Duration) -> Result<(), ExportError> {
        match self.pipeline.take() {
            Some(mut p) => p.shutdown(timeout),
            None => Ok(()),
        }
    }

    /// What happened to every span, log record and metric point so far.
    pub fn counters(&self) -> CountersSnapshot {
        self.pipeline
            .as_ref()
            .map(|p| p.counters().snapshot())
            .unwrap_or_default()
    }

    /// A handle on the same counters that outlives this `Telemetry`: read it after
    /// [`shutdown`](Self::shutdown) to see what the shutdown itself sent or dropped, or from
    /// another thread. After a shutdown the counts add up (`enqueued = exported + dropped()`)
    /// once its exporter thread has ended: at the latest when a request still in flight at the
    /// deadline times out.
    ///
    /// ```
    /// # let telemetry = plain_connect::Telemetry::disabled();
    /// let counters = telemetry.counters_reader();
    /// telemetry.shutdown(std::time::Duration::from_secs(5)).ok();
    /// let spans = counters.read().spans;
    /// println!("{} spans exported, {} dropped", spans.exported, spans.dropped());
    /// ```
    pub fn counters_reader(&self) -> CountersReader {
        self.pipeline
            .as_ref()
            .map(|p| CountersReader::new(std::sync::Arc::clone(p.counters())))
            .unwrap_or_default()
    }

    /// Registers a second consumer of finished spans beside the exporter (a local viewer, a
    /// test). It runs on the exporter thread with each batch. Ignored when export is off.
    pub fn add_span_consumer(&self, consumer: impl SpanConsumer) {
        if let Some(p) = &self.pipeline {
            p.add_span_consumer(Box::new(consumer));
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.shutdown_in_place(crate::export::DEFAULT_SHUTDOWN_TIMEOUT);
    }
}

/// Resolves settings and resource into what the pipeline runs with.
fn pipeline_config(settings: &Settings, resource: &Resource) -> PipelineConfig {
    let tuning = settings.tuning();
    // A batch takes at most half the queue, so the queue still takes records while a full batch
    // is sent: a batch as big as the queue (or bigger) would be sent only once the queue was
    // full, or never before the timer, and records would be dropped meanwhile.
    let max_export_batch = tuning
        .max_export_batch_size
        .min(tuning.max_queue_size / 2)
        .max(1);
    // A thread hands over at most a sixteenth of the queue at once, so a small queue still
    // fills to the brim before anything is dropped.
    let handoff_size = 1024
        .min(max_export_batch)
        .min(tuning.max_queue_size / 16)
        .max(1);
    PipelineConfig {
        endpoint: Endpoint {
            traces_url: settings.signal_url("traces"),
            metrics_url: settings.signal_url("metrics"),
            logs_url: settings.signal_url("logs"),
            headers: settings
                .otel
                .headers
                .iter()
                .cloned()
                .chain((!settings.export_token().is_empty()).then(|| {
                    (
                        "Authorization".to_owned(),
                        Token::new(format!(
                            "Bearer {}",
                            settings.export_token().expose_secret()
                        )),
                    )
                }))
                .collect(),
            signal_headers: settings.otel.signal_headers.clone(),
            gzip: tuning.gzip,
            request_timeout: tuning.request_timeout,
            connect_timeout: tuning.connect_timeout,
        },
        resource: resource.attributes(),
        signals: SignalConfig {
            sampler: match settings.otel.parent_based {
                Some(false) => Sampler::ratio(settings.trace_sample_rate()).ignoring_parent(),
                _ => Sampler::ratio(settings.trace_sample_rate()),
            },
            span_limits: tuning.span_limits,
            log_floor: settings.export_logs().then(|| settings.log_level()),
            metrics_mode: crate::metrics::recording_mode(settings.exemplar_filter()),
        },
        max_queue_size: tuning.max_queue_size,
        handoff_size,
        max_export_batch,
        span_delay: tuning.span_delay,
        log_delay: tuning.log_delay,
        metrics_interval: tuning.metrics_interval,
        retry: tuning.retry,
        health_metrics: tuning.health_metrics,
        report_interval: tuning.failure_report_interval,
    }
}

/// `OTEL_RESOURCE_ATTRIBUTES`, then `OTEL_SERVICE_NAME` (which wins), over the code's resource.
fn with_otel_resource(mut resource: Resource, otel: &crate::settings::OtelOverrides) -> Resource {
    for (key, value) in &otel.resource_attributes {
        if key == "service.name" && otel.service_name.is_some() {
            continue;
        }
        resource = resource.with_attribute(key.clone(), value.clone());
    }
    if let Some(name) = &otel.service_name {
        resource = resource.with_attribute("service.name", name.clone());
    }
    resource
}

/// On stderr (never exported; the app's logger may not be installed yet), each warning once per
/// process however often telemetry is started.
fn report_setting_warnings(warnings: &[String]) {
    static REPORTED: parking_lot::Mutex<Vec<String>> = parking_lot::const_mutex(Vec::new());
    let mut reported = REPORTED.lock();
    for warning in warnings {
        if !reported.contains(warning) {
            eprintln!("plain-connect: warning: {warning}");
            reported.push(warning.clone());
        }
    }
}
