//! The exporter: batching what the app threads encoded, transport, retries.
//!
//! Data flows one way: app thread → encoded into its own buffer (`core::handoff`) → queue
//! bounded in records → exporter thread → request assembled around the bytes → gzip → HTTP
//! POST. Only this module knows about HTTP.

pub(crate) mod encode;
mod health;
mod late_headers;
mod pipeline;
mod report;
pub(crate) mod retry;
pub(crate) mod transport;

pub use crate::core::counters::{CountersReader, CountersSnapshot, SignalCounts};
pub(crate) use pipeline::{Pipeline, PipelineConfig};
pub use retry::RetryPolicy;
pub(crate) use transport::Endpoint;

use std::time::Duration;

/// How long dropping the handle waits for the final flush.
pub(crate) const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The three OTLP signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    Metrics,
    Logs,
}

/// Sees every finished, sampled span beside the exporter (e.g. a local dev viewer or a test).
/// Called on the exporter thread with each batch before it is sent; keep it quick.
pub trait SpanConsumer: Send + 'static {
    /// A batch of finished spans.
    fn consume(&mut self, spans: &[crate::trace::SpanData]);
}

impl<F: FnMut(&[crate::trace::SpanData]) + Send + 'static> SpanConsumer for F {
    fn consume(&mut self, spans: &[crate::trace::SpanData]) {
        self(spans)
    }
}

/// Why a pipeline operation did not complete.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// The deadline passed first; what was not sent is still queued (flush) or counted as
    /// dropped (shutdown).
    Timeout,
    /// The pipeline was already shut down.
    ShutDown,
    /// Another pipeline is installed in this process.
    AlreadyInstalled {
        /// Where the first one was installed (`file:line`).
        first: String,
    },
    /// The exporter thread could not be started.
    Spawn(String),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Timeout => f.write_str("the deadline passed before the export finished"),
            ExportError::ShutDown => f.write_str("the telemetry pipeline is already shut down"),
            ExportError::AlreadyInstalled { first } => write!(
                f,
                "a telemetry pipeline is already installed in this process (by {first}); \
                 shut it down first or keep using it"
            ),
            ExportError::Spawn(e) => write!(f, "could not start the exporter thread: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}
