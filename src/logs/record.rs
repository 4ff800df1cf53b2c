//! A log record as handed to the export pipeline: its frame assembled from the bridged record's
//! own fields in a thread-local buffer, nothing owned built first, then copied into the recording
//! thread's hand-off buffer.

use crate::attributes::KeyValue;
#[cfg(any(test, feature = "tracing"))]
use crate::attributes::Str;
use crate::core::handoff::{self, Kind};
use crate::core::wire::{
    self, key_values, scalar_key_value, varint_bytes, varint_len, OneOf, Writer,
};
use crate::trace::Ids;
#[cfg(test)]
use crate::trace::{SpanId, TraceId};
use std::cell::RefCell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

/// A log record's message: text as it is, or a format run straight into the frame.
#[derive(Clone, Copy)]
pub(crate) enum Body<'a> {
    #[cfg(any(test, feature = "tracing"))]
    Text(&'a str),
    Format(fmt::Arguments<'a>),
}

/// A log record's fields, borrowed from whatever the bridge holds (a `log::Record`, say).
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
    pub(crate) body: Body<'a>,
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

/// Wire type of strings and nested messages, as the byte a tag is built from.
pub(super) const LEN: u8 = wire::LEN as u8;

/// OTLP severity number and text for a level (the log data model's table): the one place the
/// bridges and the call-site templates take them from.
pub(crate) const fn severity(level: log::Level) -> (u8, &'static str) {
    match level {
        log::Level::Trace => (1, "TRACE"),
        log::Level::Debug => (5, "DEBUG"),
        log::Level::Info => (9, "INFO"),
        log::Level::Warn => (13, "WARN"),
        log::Level::Error => (17, "ERROR"),
    }
}

/// A frame's bytes before its message, besides the scope name and the severity text, take at
/// most this many: five tags, five varint lengths of at most ten bytes, the severity number's
/// two-byte varint and the nine-byte timestamp.
const HEAD_ROOM: usize = 5 + 5 * 10 + 2 + 9;

/// A frame buffer grown past this is dropped after its record: one huge message must not pin
/// its memory to the thread.
const MAX_KEPT_FRAME_BYTES: usize = 16 * 1024;

/// What a frame buffer starts with: room for the usual record without growing.
pub(super) const FIRST_FRAME_BYTES: usize = 512;

/// Where a log record's frame is assembled before it is handed off.
///
/// The message is formatted here, so the hand-off slot is held for one copy and never while an
/// app's `Display` runs. The message goes in first, at a distance from the start that leaves
/// room for everything before it; what follows it is written next, and then the lengths and
/// fields before the message, right up to it, once they are known: no byte is moved and no
/// length guessed. The buffer stays initialised to its length (bytes outside the frame are left
/// from earlier records and never read), so each piece is placed with one bounds check.
pub(crate) struct FrameBuffer {
    pub(super) bytes: Vec<u8>,
    /// What the general writer writes for the rare piece (a long string or line number, a list
    /// of attributes), before it is placed in the frame.
    pub(super) aside: Vec<u8>,
    /// Templates of the call sites this thread logs from (`site`).
    pub(super) sites: Vec<super::site::Template>,
}

impl FrameBuffer {
    pub(crate) const fn new() -> Self {
        FrameBuffer {
            bytes: Vec::new(),
            aside: Vec::new(),
            sites: Vec::new(),
        }
    }

    /// `r`'s frame: its scope name (written even when empty, so every frame has two fields),
    /// then its `ScopeLogs.log_records` entry, fields in tag order as prost writes them.
    #[inline(always)]
    pub(crate) fn frame(&mut self, r: &LogRecordView<'_>) -> &[u8] {
        let body_at = HEAD_ROOM + r.scope.len() + r.severity_text.len();
        if self.bytes.len() < body_at {
            grow(&mut self.bytes, body_at.max(FIRST_FRAME_BYTES));
        }
        let body_end = {
            let mut sink = BodySink {
                bytes: &mut self.bytes,
                at: body_at,
            };
            write_body(&mut sink, r.body);
            sink.at
        };
        let end = match after_body(
            &mut Region::new(&mut self.bytes[body_end..]),
            r,
            &mut self.aside,
        ) {
            Ok(len) => body_end + len,
            Err(Full) => self.after_body_grown(body_end, r),
        };
        let (body_len, after_len) = (body_end - body_at, end - body_end);
        let mut head = Back {
            room: &mut self.bytes[..body_at],
        };
        let start = match head_fields(&mut head, r, body_at, body_len, after_len) {
            Ok(()) => head.room.len(),
            // The room left for the head always holds it: the oracle tests would show a frame
            // that had lost it.
            Err(Full) => body_at,
        };
        &self.bytes[start..end]
    }

    /// What follows the message, written again from its start into a grown buffer until it
    /// fits (it only copies what the record holds); returns where it ends.
    #[cold]
    #[inline(never)]
    fn after_body_grown(&mut self, body_end: usize, r: &LogRecordView<'_>) -> usize {
        loop {
            let len = self.bytes.len();
            grow(&mut self.bytes, len + 1);
            let mut out = Region::new(&mut self.bytes[body_end..]);
            if let Ok(len) = after_body(&mut out, r, &mut self.aside) {
                return body_end + len;
            }
        }
    }

    /// Drops a buffer grown past the bound by its last record.
    fn trim(&mut self) {
        if self.bytes.len() > MAX_KEPT_FRAME_BYTES {
            self.bytes = Vec::new();
        }
        if self.aside.capacity() > MAX_KEPT_FRAME_BYTES {
            self.aside = Vec::new();
        }
    }
}

/// The frame's bytes up to the message, written backwards from it: the body's own head, the
/// record's fields before the body, then the record's tag and length (all that follows it
/// being known by then) and the scope name.
#[inline(always)]
fn head_fields(
    head: &mut Back<'_>,
    r: &LogRecordView<'_>,
    body_at: usize,
    body_len: usize,
    after_len: usize,
) -> Result<(), Full> {
    // An `AnyValue` holding the string member, written even when empty.
    let any_len = 1 + length_len(body_len) + body_len;
    if any_len < 0x80 {
        head.put_array([5 << 3 | LEN, any_len as u8, 1 << 3 | LEN, body_len as u8])?;
    } else {
        head.put_tag_len(1 << 3 | LEN, body_len)?;
        head.put_tag_len(5 << 3 | LEN, any_len)?;
    }
    let text = r.severity_text;
    if !text.is_empty() {
        head.put(text.as_bytes())?;
        head.put_tag_len(3 << 3 | LEN, text.len())?;
    }
    // The severity number is under 128 (a one-byte varint).
    if r.severity_number != 0 {
        head.put_array([2 << 3, r.severity_number])?;
    }
    if r.time_unix_nanos != 0 {
        head.put_array(fixed64_field(1, r.time_unix_nanos))?;
    }
    let record_len = body_at - head.room.len() + body_len + after_len;
    head.put_tag_len((SCOPE_LOGS_RECORD_FIELD as u8) << 3 | LEN, record_len)?;
    head.put(r.scope.as_bytes())?;
    head.put_tag_len(1 << 3 | LEN, r.scope.len())
}

/// Writes the message; a format argument that fails or panics leaves the text written before
/// it (the logging call goes on, and the record is still exported).
#[inline(always)]
pub(super) fn write_body(out: &mut BodySink<'_>, body: Body<'_>) {
    match body {
        #[cfg(any(test, feature = "tracing"))]
        Body::Text(text) => {
            let _ = out.put(text.as_bytes());
        }
        Body::Format(args) => match args.as_str() {
            Some(literal) => {
                let _ = out.put(literal.as_bytes());
            }
            None => format_caught(out, args),
        },
    }
}

/// Formats `args` into `out`. A format argument that fails or panics leaves the text written
/// before it: the caller goes on with what there is (the panic hook still reports the panic).
pub(crate) fn format_caught(out: &mut dyn fmt::Write, args: fmt::Arguments<'_>) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| fmt::write(out, args)));
}

/// Where the message is written, growing the frame buffer as it needs.
pub(super) struct BodySink<'a> {
    pub(super) bytes: &'a mut Vec<u8>,
    pub(super) at: usize,
}

impl BodySink<'_> {
    /// Writes `piece`. Anything but a short piece that fits goes to a tail call, so the usual
    /// one calls nothing and saves no registers.
    #[inline(always)]
    fn put(&mut self, piece: &[u8]) -> fmt::Result {
        let end = self.at + piece.len();
        if piece.len() <= SHORT {
            if let Some(to) = self.bytes.get_mut(self.at..end) {
                copy_short(to, piece);
                self.at = end;
                return Ok(());
            }
        }
        self.put_long(piece)
    }

    #[inline(never)]
    fn put_long(&mut self, piece: &[u8]) -> fmt::Result {
        let end = self.at + piece.len();
        if end > self.bytes.len() {
            grow(self.bytes, end);
        }
        self.bytes[self.at..end].copy_from_slice(piece);
        self.at = end;
        Ok(())
    }
}

/// The message is formatted straight into the frame.
impl fmt::Write for BodySink<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put(s.as_bytes())
    }
}

#[cold]
#[inline(never)]
pub(super) fn grow(bytes: &mut Vec<u8>, end: usize) {
    let len = end.max(2 * bytes.len());
    bytes.resize(len, 0);
}

/// A piece did not fit in the region.
#[derive(Debug)]
pub(super) struct Full;

/// A write position in (part of) a frame buffer: a piece is placed with one bounds check and,
/// when short, with fixed-size copies rather than a call.
pub(super) struct Region<'a> {
    /// What is left to write into.
    rest: &'a mut [u8],
    len: usize,
}

impl<'a> Region<'a> {
    pub(super) fn new(room: &'a mut [u8]) -> Self {
        Region {
            len: room.len(),
            rest: room,
        }
    }

    /// How many bytes were written.
    #[inline(always)]
    pub(super) fn written(&self) -> usize {
        self.len - self.rest.len()
    }

    /// The next `n` bytes, the position moved past them.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Result<&'a mut [u8], Full> {
        if n > self.rest.len() {
            return Err(Full);
        }
        let (room, rest) = std::mem::take(&mut self.rest).split_at_mut(n);
        self.rest = rest;
        Ok(room)
    }

    #[inline(always)]
    pub(super) fn put(&mut self, piece: &[u8]) -> Result<(), Full> {
        copy_bytes(self.room(piece.len())?, piece);
        Ok(())
    }

    #[inline(always)]
    pub(super) fn put_array<const N: usize>(&mut self, piece: [u8; N]) -> Result<(), Full> {
        self.room(N)?.copy_from_slice(&piece);
        Ok(())
    }

    /// Lengths are mostly one or two bytes: those skip the general loop.
    #[inline(always)]
    pub(super) fn put_varint(&mut self, value: u64) -> Result<(), Full> {
        if value < 0x80 {
            self.put_array([value as u8])
        } else if value < 0x4000 {
            self.put_array([value as u8 | 0x80, (value >> 7) as u8])
        } else {
            let (bytes, len) = varint_bytes(value);
            self.put(&bytes[..len])
        }
    }
}

/// A write position that moves backwards: each piece goes right before what was written
/// last, so a length can be written once what it measures is.
pub(super) struct Back<'a> {
    /// The room still free, before what is written.
    pub(super) room: &'a mut [u8],
}

impl Back<'_> {
    #[inline(always)]
    pub(super) fn put(&mut self, piece: &[u8]) -> Result<(), Full> {
        let free = self.room.len().checked_sub(piece.len()).ok_or(Full)?;
        let (room, to) = std::mem::take(&mut self.room).split_at_mut(free);
        copy_bytes(to, piece);
        self.room = room;
        Ok(())
    }

    #[inline(always)]
    pub(super) fn put_array<const N: usize>(&mut self, piece: [u8; N]) -> Result<(), Full> {
        let free = self.room.len().checked_sub(N).ok_or(Full)?;
        let (room, to) = std::mem::take(&mut self.room).split_at_mut(free);
        to.copy_from_slice(&piece);
        self.room = room;
        Ok(())
    }

    /// A tag byte and a length, in one copy when the length is under 128.
    #[inline(always)]
    pub(super) fn put_tag_len(&mut self, tag: u8, len: usize) -> Result<(), Full> {
        if len < 0x80 {
            self.put_array([tag, len as u8])
        } else {
            let (bytes, n) = varint_bytes(len as u64);
            self.put(&bytes[..n])?;
            self.put_array([tag])
        }
    }

    /// `piece`'s last `used` bytes, in one copy of the whole piece: the bytes before them land
    /// in room that the next piece, or nothing, is written over.
    #[inline(always)]
    pub(super) fn put_over<const N: usize>(
        &mut self,
        piece: &[u8; N],
        used: usize,
    ) -> Result<(), Full> {
        let len = self.room.len();
        let (Some(start), Some(free)) = (len.checked_sub(N), len.checked_sub(used)) else {
            return Err(Full);
        };
        self.room[start..].copy_from_slice(piece);
        self.room = &mut std::mem::take(&mut self.room)[..free];
        Ok(())
    }
}

/// What `write` writes through the general writer (for what is rare: long strings and
/// numbers, a list of attributes), into `aside`.
#[inline(never)]
pub(super) fn written_aside(aside: &mut Vec<u8>, write: impl FnOnce(&mut Writer<'_>)) -> &[u8] {
    aside.clear();
    write(&mut Writer::new(aside));
    aside
}

/// Bytes a varint takes, in one comparison for the usual length under 128.
#[inline(always)]
pub(super) fn length_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        varint_len(len as u64)
    }
}

/// Pieces up to this long are copied without a call.
const SHORT: usize = 32;

/// Copies `from` into `to` (of the same length).
#[inline(always)]
fn copy_bytes(to: &mut [u8], from: &[u8]) {
    if from.len() > SHORT {
        to.copy_from_slice(from);
    } else {
        copy_short(to, from);
    }
}

/// Copies `from` (at most [`SHORT`] bytes) into `to` (of the same length) with two fixed-size
/// copies that may overlap, both read before either is written: the usual message piece, path
/// or target is that short, and a call to `memcpy` costs more than the copy.
#[inline(always)]
fn copy_short(to: &mut [u8], from: &[u8]) {
    let n = from.len();
    debug_assert!(to.len() == n && n <= SHORT);
    // Pieces under 16 bytes (most message pieces, most numbers) are told apart in two tests.
    if n >= 8 {
        if n >= 16 {
            copy_ends::<16>(to, from);
        } else {
            copy_ends::<8>(to, from);
        }
    } else if n >= 4 {
        copy_ends::<4>(to, from);
    } else if n > 0 {
        let (first, middle, last) = (from[0], from[n / 2], from[n - 1]);
        to[0] = first;
        to[n / 2] = middle;
        to[n - 1] = last;
    }
}

/// Copies the first and the last `N` bytes of `from` (`N` to `2N` long) into `to`.
#[inline(always)]
fn copy_ends<const N: usize>(to: &mut [u8], from: &[u8]) {
    let n = from.len();
    let head: [u8; N] = from[..N].try_into().expect("N bytes");
    let tail: [u8; N] = from[n - N..].try_into().expect("N bytes");
    to[..N].copy_from_slice(&head);
    to[n - N..].copy_from_slice(&tail);
}

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
fn string_attribute(
    out: &mut Region<'_>,
    aside: &mut Vec<u8>,
    template: &[u8; 22],
    key: &str,
    value: &str,
) -> Result<(), Full> {
    if value.len() < 108 {
        let mut entry = *template;
        entry[1] = (20 + value.len()) as u8;
        entry[19] = (2 + value.len()) as u8;
        entry[21] = value.len() as u8;
        out.put_array(entry)?;
        out.put(value.as_bytes())
    } else {
        out.put(written_aside(aside, |w| {
            scalar_key_value(w, 6, key, OneOf::Str(value))
        }))
    }
}

/// The `LogRecord` fields after the body, in tag order, those at their default left out. What
/// nearly every record has is written as fixed-size arrays with its lengths patched in, each in
/// one copy; anything longer goes through the general writer.
#[inline(always)]
pub(super) fn after_body(
    out: &mut Region<'_>,
    r: &LogRecordView<'_>,
    aside: &mut Vec<u8>,
) -> Result<usize, Full> {
    if let Some(file) = r.file {
        string_attribute(out, aside, &FILE_ENTRY, "code.file.path", file)?;
    }
    if let Some(line) = r.line {
        let mut entry = [0; 25];
        entry[..23].copy_from_slice(&LINE_ENTRY);
        // Constant-length copies for lines under 16384; a longer varint in the general way.
        if line < 0x80 {
            entry[1] = 22;
            entry[21] = 2;
            entry[23] = line as u8;
            let mut short = [0; 24];
            short.copy_from_slice(&entry[..24]);
            out.put_array(short)?;
        } else if line < 0x4000 {
            entry[1] = 23;
            entry[21] = 3;
            entry[23] = line as u8 | 0x80;
            entry[24] = (line >> 7) as u8;
            out.put_array(entry)?;
        } else {
            out.put(written_aside(aside, |w| {
                scalar_key_value(w, 6, "code.line.number", OneOf::Int(i64::from(line)))
            }))?;
        }
    }
    if let Some(namespace) = r.namespace {
        string_attribute(out, aside, &NAMESPACE_ENTRY, "code.namespace", namespace)?;
    }
    if !r.attributes.is_empty() {
        out.put(written_aside(aside, |w| key_values(w, 6, r.attributes)))?;
    }
    if !r.encoded_attributes.is_empty() {
        out.put(r.encoded_attributes)?;
    }
    if r.dropped_attributes != 0 {
        out.put_array([7 << 3])?;
        out.put_varint(u64::from(r.dropped_attributes))?;
    }
    context_and_observed(out, r.context, r.observed_unix_nanos)?;
    Ok(out.written())
}

/// The span correlation's fields (flags when set, trace id, span id) in the first bytes of an
/// array of the longest case's size, and how many they take.
#[inline(always)]
pub(super) fn correlation(context: Ids) -> ([u8; 33], usize) {
    let mut fields = [0; 33];
    let at = if context.flags != 0 {
        fields[0] = 8 << 3 | 5; // fixed32
        fields[1..5].copy_from_slice(&u32::from(context.flags).to_le_bytes());
        5
    } else {
        0
    };
    let ids = &mut fields[at..at + 28];
    ids[0] = 9 << 3 | LEN;
    ids[1] = 16;
    ids[2..18].copy_from_slice(&context.trace_id.to_bytes());
    ids[18] = 10 << 3 | LEN;
    ids[19] = 8;
    ids[20..].copy_from_slice(&context.span_id.to_bytes());
    (fields, at + 28)
}

/// The span correlation (flags, trace and span ids, when both ids are valid) and the observed
/// time: the last `LogRecord` fields, each in one fixed-size copy.
#[inline(always)]
pub(super) fn context_and_observed(
    out: &mut Region<'_>,
    context: Ids,
    observed: u64,
) -> Result<(), Full> {
    if context.is_valid() {
        let (fields, len) = correlation(context);
        out.put(&fields[..len])?;
    }
    if observed != 0 {
        out.put_array(fixed64_field(11, observed))?;
    }
    Ok(())
}

/// A non-zero `fixed64` field, tag and value.
#[inline(always)]
pub(super) fn fixed64_field(field: u8, value: u64) -> [u8; 9] {
    let mut bytes = [field << 3 | 1; 9];
    bytes[1..].copy_from_slice(&value.to_le_bytes());
    bytes
}

thread_local! {
    /// This thread's frame buffer. Borrowed while a record's frame is assembled, so a format
    /// argument that logs cannot recurse into it: that record is not exported.
    static FRAME: RefCell<FrameBuffer> = const { RefCell::new(FrameBuffer::new()) };
}

/// Hands a finished log record to the installed pipeline: its frame assembled in this thread's
/// frame buffer, then copied into its hand-off buffer (nothing is kept when none is installed).
/// What the `tracing` bridge calls.
#[cfg(feature = "tracing")]
#[inline(always)]
pub(crate) fn submit(record: &LogRecordView<'_>) {
    submit_with(|frame| Some(frame.frame(record)));
}

/// [`submit`] for a `tracing` event at `level` from the call site whose `'static` metadata is at
/// address `site`: the view's scope and code location are the site's, encoded once per thread
/// in its template (`site`).
#[cfg(feature = "tracing")]
#[inline(always)]
pub(crate) fn submit_site(site: usize, level: log::Level, record: &LogRecordView<'_>) {
    submit_with(|frame| match frame.event_site_frame(site, level, record) {
        Some(range) => Some(frame.framed(range)),
        None => Some(frame.frame(record)),
    });
}

/// Hands off the frame `build` assembles in this thread's frame buffer (none: nothing is).
#[inline(always)]
pub(crate) fn submit_with<F>(build: F)
where
    F: for<'f> FnOnce(&'f mut FrameBuffer) -> Option<&'f [u8]>,
{
    let _ = FRAME.try_with(|frame| {
        let Ok(mut frame) = frame.try_borrow_mut() else {
            return;
        };
        if let Some(bytes) = build(&mut frame) {
            handoff::submit(Kind::Log, |buf| buf.extend_from_slice(bytes));
        }
        frame.trim();
    });
}

/// Appends `r`'s frame, as [`submit`] hands it off.
#[cfg(test)]
fn frame(buf: &mut Vec<u8>, r: &LogRecordView<'_>) {
    buf.extend_from_slice(FrameBuffer::new().frame(r));
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
            body: Body::Text(&self.body),
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

/// A frame as it sits in a thread's buffer, the scope name then the record: what tests decode
/// a frame with.
#[cfg(test)]
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DecodedFrame {
    #[prost(string, tag = "1")]
    pub(crate) scope: String,
    #[prost(message, optional, tag = "2")]
    pub(crate) record: Option<crate::proto::logs::v1::LogRecord>,
}

/// Appends `record`'s frame, as [`frame`] does.
#[cfg(test)]
pub(crate) fn log_frame(buf: &mut Vec<u8>, record: &LogRecordData) {
    frame(buf, &record.view());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_log_data_model() {
        use log::Level;
        assert_eq!(severity(Level::Trace), (1, "TRACE"));
        assert_eq!(severity(Level::Debug), (5, "DEBUG"));
        assert_eq!(severity(Level::Info), (9, "INFO"));
        assert_eq!(severity(Level::Warn), (13, "WARN"));
        assert_eq!(severity(Level::Error), (17, "ERROR"));
    }

    /// Every length on both sides of each fixed-size copy's range, forwards and backwards,
    /// into room left full of other bytes: a copy that missed a byte or wrote past its piece
    /// shows here.
    #[test]
    fn pieces_of_every_short_length_are_copied_exactly() {
        let source: Vec<u8> = (1..=80).collect();
        for n in 0..=source.len() {
            let piece = &source[..n];
            let mut room = vec![0xee; n + 8];
            copy_bytes(&mut room[4..4 + n], piece);
            assert_eq!(&room[4..4 + n], piece, "{n} bytes");
            assert!(room[..4].iter().chain(&room[4 + n..]).all(|&b| b == 0xee));

            let mut bytes = vec![0xee; n + 3];
            let mut back = Back {
                room: &mut bytes[..n + 1],
            };
            back.put(piece).expect("room");
            assert_eq!(back.room.len(), 1);
            assert_eq!(&bytes[1..n + 1], piece);
            assert_eq!((bytes[0], bytes[n + 1], bytes[n + 2]), (0xee, 0xee, 0xee));

            let mut sink = BodySink {
                bytes: &mut vec![0xee; 2],
                at: 1,
            };
            let _ = sink.put(piece);
            assert_eq!(&sink.bytes[1..sink.at], piece);
        }
    }
}
