//! A log record as handed to the export pipeline.

use crate::attributes::{KeyValue, Str};
use crate::trace::{SpanId, TraceId};
use std::borrow::Cow;

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
    /// The message: the literal itself when it had no arguments, else the formatted text.
    pub body: Cow<'static, str>,
    /// The instrumentation scope: the `log` target.
    pub scope: Str,
    /// Where the record was written.
    pub code: CodeLocation,
    /// Attributes (the record's key-values).
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

/// Where a log record was written: the `code.*` attributes on the wire. Kept apart from the
/// attribute list so a record without key-values allocates none.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CodeLocation {
    /// `code.file.path`.
    pub file: Option<Str>,
    /// `code.line.number`.
    pub line: Option<u32>,
    /// `code.namespace` (the module, when it differs from the target).
    pub namespace: Option<&'static str>,
}

impl LogRecordData {
    /// The code location followed by the record's own attributes, as exported.
    pub fn all_attributes(&self) -> impl Iterator<Item = KeyValue> + '_ {
        let code = &self.code;
        let file = code
            .file
            .clone()
            .map(|f| KeyValue::new("code.file.path", f));
        let line = code
            .line
            .map(|l| KeyValue::new("code.line.number", i64::from(l)));
        let namespace = code.namespace.map(|m| KeyValue::new("code.namespace", m));
        file.into_iter()
            .chain(line)
            .chain(namespace)
            .chain(self.attributes.iter().cloned())
    }
}
