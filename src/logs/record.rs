//! A log record as handed to the export pipeline.

use crate::attributes::{KeyValue, Str};
use crate::core::handoff::{self, Kind};
use crate::core::wire::{key_values, OneOf, Writer};
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
    /// The code location followed by the record's own attributes, as exported (what the prost
    /// oracle test builds from).
    #[cfg(test)]
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

/// The field of `ScopeLogs` that holds its records; a record's frame in a thread's buffer is its
/// scope name (field 1), then the record as this field, so the exporter can group records by
/// scope without decoding them.
pub(crate) const SCOPE_LOGS_RECORD_FIELD: u32 = 2;

/// Appends `record`'s frame: its scope name, then its `ScopeLogs.log_records` entry.
pub(crate) fn log_frame(buf: &mut Vec<u8>, record: &LogRecordData) {
    let mut w = Writer::new(buf);
    // Written even when empty, so every frame has two fields.
    w.message(1, |w| w.raw(record.scope.as_str().as_bytes()));
    w.message(SCOPE_LOGS_RECORD_FIELD, |w| log_record(w, record));
}

/// A `LogRecord`, fields in tag order (as prost writes them).
fn log_record(w: &mut Writer<'_>, r: &LogRecordData) {
    let correlated = r.trace_id.is_valid() && r.span_id.is_valid();
    w.fixed64(1, r.time_unix_nanos);
    w.uint(2, u64::from(r.severity_number));
    w.str(3, r.severity_text);
    w.message(5, |body| body.oneof(1, OneOf::Str(&r.body)));
    let code = &r.code;
    if let Some(file) = &code.file {
        w.message(6, |m| {
            m.str(1, "code.file.path");
            m.message(2, |v| v.oneof(1, OneOf::Str(file.as_str())));
        });
    }
    if let Some(line) = code.line {
        w.message(6, |m| {
            m.str(1, "code.line.number");
            m.message(2, |v| v.oneof(3, OneOf::Int(i64::from(line))));
        });
    }
    if let Some(namespace) = code.namespace {
        w.message(6, |m| {
            m.str(1, "code.namespace");
            m.message(2, |v| v.oneof(1, OneOf::Str(namespace)));
        });
    }
    key_values(w, 6, &r.attributes);
    w.uint(7, u64::from(r.dropped_attributes));
    if correlated {
        w.fixed32(8, u32::from(r.flags));
        w.bytes(9, &r.trace_id.to_bytes());
        w.bytes(10, &r.span_id.to_bytes());
    }
    w.fixed64(11, r.observed_unix_nanos);
}

/// Hands a finished log record to the installed pipeline, encoded into this thread's buffer
/// (nothing happens when none is installed). What the log bridges call.
pub(crate) fn submit(record: &LogRecordData) {
    handoff::submit(Kind::Log, |buf| log_frame(buf, record));
}
