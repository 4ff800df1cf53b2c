//! A log record as handed to the export pipeline: encoded straight into the recording thread's
//! buffer from the bridged record's own fields, nothing owned built first.

use crate::attributes::KeyValue;
#[cfg(any(test, feature = "tracing"))]
use crate::attributes::Str;
use crate::core::handoff::{self, Kind};
use crate::core::wire::{self, key_values, scalar_key_value, varint_len, OneOf, Writer};
use crate::trace::Ids;
#[cfg(test)]
use crate::trace::{SpanId, TraceId};

/// A log record's fields, borrowed from whatever the bridge holds (a `log::Record` and the
/// body formatted for it, say).
pub(crate) struct LogRecordView<'a> {
    /// When the event happened, Unix nanoseconds.
    pub(crate) time_unix_nanos: u64,
    /// When the bridge observed it, Unix nanoseconds.
    pub(crate) observed_unix_nanos: u64,
    /// OTLP severity number (TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17).
    pub(crate) severity_number: u8,
    /// Severity text (`INFO`...).
    pub(crate) severity_text: &'static str,
    /// The message.
    pub(crate) body: &'a str,
    /// The instrumentation scope: the `log` target.
    pub(crate) scope: &'a str,
    /// `code.file.path`.
    pub(crate) file: Option<&'a str>,
    /// `code.line.number`.
    pub(crate) line: Option<u32>,
    /// `code.namespace` (the module, when it differs from the target).
    pub(crate) namespace: Option<&'a str>,
    /// The record's own attributes (its key-values), after the code location on the wire.
    pub(crate) attributes: &'a [KeyValue],
    /// Then more of them, already written as `LogRecord.attributes` entries.
    pub(crate) encoded_attributes: &'a [u8],
    /// Attributes discarded by limits.
    pub(crate) dropped_attributes: u32,
    /// The current span's ids and W3C trace flags: written only when both ids are valid.
    pub(crate) context: Ids,
}

/// Where a log record was written: the `code.*` attributes on the wire. Kept apart from the
/// attribute list so a record without key-values allocates none.
#[cfg(any(test, feature = "tracing"))]
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CodeLocation {
    /// `code.file.path`.
    pub file: Option<Str>,
    /// `code.line.number`.
    pub line: Option<u32>,
    /// `code.namespace` (the module, when it differs from the target).
    pub namespace: Option<&'static str>,
}

/// The field of `ScopeLogs` that holds its records; a record's frame in a thread's buffer is its
/// scope name (field 1), then the record as this field, so the exporter can group records by
/// scope without decoding them.
pub(crate) const SCOPE_LOGS_RECORD_FIELD: u32 = 2;

/// Appends a record's frame: its scope name (written even when empty, so every frame has two
/// fields), then its `ScopeLogs.log_records` entry.
#[inline(always)]
pub(crate) fn frame(buf: &mut Vec<u8>, r: &LogRecordView<'_>) {
    let mut w = Writer::new(buf);
    if r.scope.len() < 0x80 {
        w.raw(&[1 << 3 | LEN, r.scope.len() as u8]);
        w.raw(r.scope.as_bytes());
    } else {
        w.encoded_message(1, r.scope.as_bytes());
    }
    // The record's length gets the bytes its size (exact but for key-values and a dropped
    // count) says it takes, so it is written in place rather than the record moved after it.
    let correlated = r.context.is_valid();
    let size = 13
        + r.severity_text.len()
        + 4
        + r.body.len()
        + r.file.map_or(0, |f| 22 + f.len())
        + r.line.map_or(0, |line| 23 + varint_len(u64::from(line)))
        + r.namespace.map_or(0, |n| 22 + n.len())
        + 24 * r.attributes.len()
        + r.encoded_attributes.len()
        + if correlated { 33 } else { 0 }
        + 9;
    let length_bytes = if size < 0x80 { 1 } else { 2 };
    w.message_sized(SCOPE_LOGS_RECORD_FIELD, length_bytes, |w| {
        log_record(w, r, correlated)
    });
}

/// Wire type of strings and nested messages, as the byte a tag is built from.
const LEN: u8 = wire::LEN as u8;

/// A code-location `KeyValue` entry (field 6) up to its value's member: `[entry, length, key
/// tag, key length, key…, value tag, length, member tag]`, the two lengths left to patch.
const fn code_entry<const N: usize>(key: &[u8], member_tag: u8) -> [u8; N] {
    let mut entry = [0; N];
    entry[0] = 6 << 3 | LEN;
    entry[2] = 1 << 3 | LEN;
    entry[3] = key.len() as u8;
    let mut i = 0;
    while i < key.len() {
        entry[4 + i] = key[i];
        i += 1;
    }
    entry[4 + key.len()] = 2 << 3 | LEN;
    entry[6 + key.len()] = member_tag;
    entry
}

/// Then the string's length and the string.
const FILE_ENTRY: [u8; 22] = code_entry(b"code.file.path", 1 << 3 | LEN);
const NAMESPACE_ENTRY: [u8; 22] = code_entry(b"code.namespace", 1 << 3 | LEN);
/// Then the line's varint.
const LINE_ENTRY: [u8; 23] = code_entry(b"code.line.number", 3 << 3);

/// A code-location entry with a string value (its 14-byte key in `template`): one fixed-size
/// copy and the string when every length fits in a byte (a path under 108 bytes).
#[inline(always)]
fn string_attribute(w: &mut Writer<'_>, template: &[u8; 22], key: &str, value: &str) {
    if value.len() < 108 {
        let mut entry = *template;
        entry[1] = (20 + value.len()) as u8;
        entry[19] = (2 + value.len()) as u8;
        entry[21] = value.len() as u8;
        w.raw(&entry);
        w.raw(value.as_bytes());
    } else {
        scalar_key_value(w, 6, key, OneOf::Str(value));
    }
}

/// A `LogRecord`, fields in tag order (as prost writes them, fields at their default left out).
/// What nearly every record has is written as fixed-size arrays with its lengths patched in,
/// each in one copy; anything longer goes through the general writer.
#[inline(always)]
fn log_record(w: &mut Writer<'_>, r: &LogRecordView<'_>, correlated: bool) {
    if r.time_unix_nanos != 0 {
        w.raw(&fixed64_field(1, r.time_unix_nanos));
    }
    let (severity, text) = (r.severity_number, r.severity_text);
    if (1..0x80).contains(&severity) && (1..0x80).contains(&text.len()) {
        w.raw(&[2 << 3, severity, 3 << 3 | LEN, text.len() as u8]);
        w.raw(text.as_bytes());
    } else {
        w.uint(2, u64::from(severity));
        w.str(3, text);
    }
    // An `AnyValue` holding the string member, written even when empty.
    let body = r.body;
    if body.len() < 0x7e {
        w.raw(&[
            5 << 3 | LEN,
            2 + body.len() as u8,
            1 << 3 | LEN,
            body.len() as u8,
        ]);
        w.raw(body.as_bytes());
    } else {
        w.message_of_len(5, 1 + varint_len(body.len() as u64) + body.len(), |v| {
            v.oneof(1, OneOf::Str(body))
        });
    }
    if let Some(file) = r.file {
        string_attribute(w, &FILE_ENTRY, "code.file.path", file);
    }
    if let Some(line) = r.line {
        let mut entry = [0; 25];
        entry[..23].copy_from_slice(&LINE_ENTRY);
        // Constant-length copies for lines under 16384; a longer varint in the general way.
        if line < 0x80 {
            entry[1] = 22;
            entry[21] = 2;
            entry[23] = line as u8;
            w.raw(&entry[..24]);
        } else if line < 0x4000 {
            entry[1] = 23;
            entry[21] = 3;
            entry[23] = line as u8 | 0x80;
            entry[24] = (line >> 7) as u8;
            w.raw(&entry);
        } else {
            scalar_key_value(w, 6, "code.line.number", OneOf::Int(i64::from(line)));
        }
    }
    if let Some(namespace) = r.namespace {
        string_attribute(w, &NAMESPACE_ENTRY, "code.namespace", namespace);
    }
    if !r.attributes.is_empty() {
        key_values(w, 6, r.attributes);
    }
    if !r.encoded_attributes.is_empty() {
        w.raw(r.encoded_attributes);
    }
    w.uint(7, u64::from(r.dropped_attributes));
    if correlated {
        let mut ids = [0; 33];
        ids[0] = 8 << 3 | 5; // fixed32
        ids[1..5].copy_from_slice(&u32::from(r.context.flags).to_le_bytes());
        ids[5] = 9 << 3 | LEN;
        ids[6] = 16;
        ids[7..23].copy_from_slice(&r.context.trace_id.to_bytes());
        ids[23] = 10 << 3 | LEN;
        ids[24] = 8;
        ids[25..].copy_from_slice(&r.context.span_id.to_bytes());
        if r.context.flags != 0 {
            w.raw(&ids);
        } else {
            w.raw(&ids[5..]);
        }
    }
    if r.observed_unix_nanos != 0 {
        w.raw(&fixed64_field(11, r.observed_unix_nanos));
    }
}

/// A non-zero `fixed64` field, tag and value.
#[inline(always)]
fn fixed64_field(field: u8, value: u64) -> [u8; 9] {
    let mut bytes = [field << 3 | 1; 9];
    bytes[1..].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// Hands a finished log record to the installed pipeline, encoded into this thread's buffer
/// (nothing happens when none is installed). What the log bridges call.
#[inline]
pub(crate) fn submit(record: &LogRecordView<'_>) {
    handoff::submit(Kind::Log, |buf| frame(buf, record));
}

/// One log record, owned: what the prost oracle tests build records from.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecordData {
    pub time_unix_nanos: u64,
    pub observed_unix_nanos: u64,
    pub severity_number: u8,
    pub severity_text: &'static str,
    pub body: std::borrow::Cow<'static, str>,
    pub scope: Str,
    pub code: CodeLocation,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes: u32,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: u8,
}

#[cfg(test)]
impl LogRecordData {
    fn view(&self) -> LogRecordView<'_> {
        LogRecordView {
            time_unix_nanos: self.time_unix_nanos,
            observed_unix_nanos: self.observed_unix_nanos,
            severity_number: self.severity_number,
            severity_text: self.severity_text,
            body: &self.body,
            scope: self.scope.as_str(),
            file: self.code.file.as_deref(),
            line: self.code.line,
            namespace: self.code.namespace,
            attributes: &self.attributes,
            encoded_attributes: &[],
            dropped_attributes: self.dropped_attributes,
            context: Ids {
                trace_id: self.trace_id,
                span_id: self.span_id,
                flags: self.flags,
                ..Ids::default()
            },
        }
    }

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

/// Appends `record`'s frame, as [`frame`] does.
#[cfg(test)]
pub(crate) fn log_frame(buf: &mut Vec<u8>, record: &LogRecordData) {
    frame(buf, &record.view());
}
