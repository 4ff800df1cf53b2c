//! A log record as handed to the export pipeline.

use crate::attributes::{KeyValue, Str};
use crate::trace::{SpanId, TraceId};

/// One log record, ready for export.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecordData {
    /// When the event happened, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// When it was observed by the bridge, Unix nanoseconds.
    pub observed_unix_nanos: u64,
    /// OTLP severity number (TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17).
    pub severity_number: u8,
    /// Severity text (`INFO`...).
    pub severity_text: &'static str,
    /// The formatted message.
    pub body: String,
    /// The instrumentation scope: the `log` target.
    pub scope: Str,
    /// Attributes (code location, key-values).
    pub attributes: Vec<KeyValue>,
    /// Attributes discarded by limits.
    pub dropped_attributes: u32,
    /// The active span's trace id (invalid outside a span).
    pub trace_id: TraceId,
    /// The active span's id (invalid outside a span).
    pub span_id: SpanId,
    /// The active span's W3C trace flags.
    pub flags: u8,
}
