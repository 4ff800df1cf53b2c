//! A span's record → OTLP `Span` bytes (written as the span goes, on the recording thread), and
//! back again for in-process span consumers (on the exporter thread, only while one is
//! registered).

use super::context::{Ids, SpanContext};
use super::id::{SpanId, TraceId};
use super::literal::{self, LITERAL_BYTES};
use super::record::{Attributes, Recording, SPAN_ATTRIBUTES};
use super::span::{Event, Link, SpanData, SpanKind, Status};
use crate::attributes::{KeyValue, Str, Value};
use crate::core::wire::{
    key_values, next_field, put_varint, read_varint, scalar_entry_len, scalar_key_value,
    varint_len, Exact, Tail, Writer, FIXED32, FIXED64, LEN,
};
use crate::proto::common::v1::{any_value, AnyValue};
use crate::proto::trace::v1 as pt;
use prost::Message;

/// `Span.flags` bits: the low 8 are the W3C trace flags; these say whether the parent is remote.
const SPAN_FLAGS_HAS_IS_REMOTE: u32 = 0x100;
const SPAN_FLAGS_IS_REMOTE: u32 = 0x200;

/// The field of `ScopeSpans` that holds its spans.
pub(crate) const SCOPE_SPANS_SPAN_FIELD: u32 = 2;

/// `Span.kind` (`SpanKind` enum numbers).
fn span_kind(kind: SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `Span.flags` and `Link.flags`: the W3C flags plus whether the parent (or linked) span is remote.
#[inline]
pub(crate) fn remote_flags(flags: u8, is_remote: bool) -> u32 {
    u32::from(flags) | SPAN_FLAGS_HAS_IS_REMOTE | if is_remote { SPAN_FLAGS_IS_REMOTE } else { 0 }
}

// A span's record is its `ScopeSpans.spans` entry under construction, in the bytes of its
// attribute list (written as prost writes it, fields in number order, defaults left out):
//
//   [room for the entry's tag and length, and a spliced record's head: HEAD_ROOM bytes]
//   [fields 1 and 2: ids] [3: tracestate] [4: parent span id] [5: name]   written at the start
//   [6, 7, 8: kind, start and end times: KIND_AND_TIMES_LEN bytes]        room, written at the end
//   [9: attribute entries]                                                 written as they are set
//   [literal attributes: LITERAL_BYTES each]                              kept as they are set
//   [10 to 15: dropped counts, events, links, status] [16: flags]          written at the end
//
// The end then writes the tag and length right before the body, in the room kept for them (and
// in front of them, when there are literals, the head of a spliced record), and the whole record
// is copied into the thread's hand-off buffer at once. The exporter writes the literals out as
// `KeyValue` entries where they are ([`SpanRecord::write_exported`]).

/// Room for the entry's tag (one byte) and its length (a varint of up to ten bytes), and in front
/// of them the head of a record with literals (see [`SPLICED`]).
const HEAD_ROOM: usize = 11 + SPLICED_HEAD_ROOM;

/// The shortest head a started record has: no tracestate, no parent, no name.
pub(crate) const MIN_HEAD_LEN: usize = HEAD_ROOM + IDS_LEN + KIND_AND_TIMES_LEN;

/// `Span.parent_span_id` (field 4): always 8 bytes.
const PARENT_LEN: usize = 10;

/// Writes the head of a span's record (what its start knows: fields 1 to 5, and room for 6 to
/// 8) into its emptied bytes, and where its parts are.
#[inline(always)]
pub(crate) fn write_head(
    r: &mut Recording,
    name: &str,
    ids: &Ids,
    parent_span_id: SpanId,
    trace_state: Option<&str>,
) {
    let trace_state = trace_state.unwrap_or_default();
    let has_parent = parent_span_id.is_valid();
    let name_at = HEAD_ROOM
        + IDS_LEN
        + field_len(trace_state.len())
        + if has_parent { PARENT_LEN } else { 0 };
    let start = name_at + field_len(name.len()) + KIND_AND_TIMES_LEN;
    let bytes = &mut r.attributes.bytes;
    bytes.clear();
    if trace_state.len() < 0x80 && name.len() < 0x80 {
        // The usual head: every length in it takes one byte.
        let mut head = [0u8; HEAD_ROOM + IDS_LEN];
        head[HEAD_ROOM..].copy_from_slice(&self::ids(ids.trace_id, ids.span_id));
        let mut parent = [0u8; PARENT_LEN];
        parent[0] = 4 << 3 | LEN as u8;
        parent[1] = 8;
        parent[2..].copy_from_slice(&parent_span_id.to_bytes());
        // SAFETY: the pieces fill `start` bytes exactly: `start` is the room and the ids (the
        // first piece), the tracestate field (a tag, a one-byte length and the text, or
        // nothing when empty), the parent field if any, the name field (likewise) and the
        // room for the times. `every_entry_length_width_is_written_as_prost_writes_it` writes
        // each combination, where the writer checks the sum.
        let mut w = unsafe { Exact::new(bytes, start) };
        w.put(&head);
        if !trace_state.is_empty() {
            w.put(&[3 << 3 | LEN as u8, trace_state.len() as u8]);
            w.put(trace_state.as_bytes());
        }
        if has_parent {
            w.put(&parent);
        }
        if !name.is_empty() {
            w.put(&[5 << 3 | LEN as u8, name.len() as u8]);
            w.put(name.as_bytes());
        }
        w.put(&[0; KIND_AND_TIMES_LEN]);
    } else {
        long_head(bytes, name, ids, parent_span_id, trace_state, start);
    }
    r.name_at = name_at;
    r.attributes.start = start;
    r.attributes.literals = 0;
}

/// [`write_head`] with a tracestate or a name of 128 bytes or more.
#[cold]
#[inline(never)]
fn long_head(
    bytes: &mut Vec<u8>,
    name: &str,
    ids: &Ids,
    parent_span_id: SpanId,
    trace_state: &str,
    len: usize,
) {
    let mut t = Tail::new(bytes, len);
    t.put(&[0; HEAD_ROOM]);
    t.put(&self::ids(ids.trace_id, ids.span_id));
    t.field_bytes(3, trace_state.as_bytes());
    if parent_span_id.is_valid() {
        t.byte(4 << 3 | LEN as u8);
        t.byte(8);
        t.put(&parent_span_id.to_bytes());
    }
    t.field_bytes(5, name.as_bytes());
    t.put(&[0; KIND_AND_TIMES_LEN]);
}

/// The first byte of a hand-off record whose span has literal attributes: field 0, never an
/// OTLP tag. Then the number of literals and where they are in the entry's body (varints), and
/// the span's entry with the literals' bytes there (its length counting them as they are).
const SPLICED: u8 = 0;
/// The most bytes that head takes.
const SPLICED_HEAD_ROOM: usize = 21;

/// Writes the head of a record with `n` literals at `literals_at` in its body right before the
/// entry that starts at `at`, and returns where it starts.
#[inline(always)]
fn place_spliced_head(bytes: &mut [u8], at: usize, n: usize, literals_at: usize) -> usize {
    // Nearly always: under 128 literals, which start within 16 KiB of the body's start.
    if n < 0x80 && literals_at < 0x80 {
        bytes[at - 3..at].copy_from_slice(&[SPLICED, n as u8, literals_at as u8]);
        at - 3
    } else if n < 0x80 && literals_at < 0x4000 {
        let (low, high) = (literals_at as u8 | 0x80, (literals_at >> 7) as u8);
        bytes[at - 4..at].copy_from_slice(&[SPLICED, n as u8, low, high]);
        at - 4
    } else {
        place_long_spliced_head(bytes, at, n, literals_at)
    }
}

#[cold]
#[inline(never)]
fn place_long_spliced_head(bytes: &mut [u8], at: usize, n: usize, literals_at: usize) -> usize {
    let start = at - 1 - varint_len(n as u64) - varint_len(literals_at as u64);
    bytes[start] = SPLICED;
    let n_len = put_varint(&mut bytes[start + 1..], n as u64);
    put_varint(&mut bytes[start + 1 + n_len..], literals_at as u64);
    start
}

/// One span's record in a hand-off buffer, read by [`next_span_record`].
pub(crate) enum SpanRecord<'b> {
    /// Its entry, as it is exported.
    Entry(&'b [u8]),
    /// The body of its entry, with its literals' bytes at `literals_at` in it.
    Spliced {
        body: &'b [u8],
        literals_at: usize,
        literals_end: usize,
    },
}

/// The span record at `*at` in a hand-off buffer, moving past it; `None` at the end or on bytes
/// that are not a whole record (never ours).
pub(crate) fn next_span_record<'b>(bytes: &'b [u8], at: &mut usize) -> Option<SpanRecord<'b>> {
    if *bytes.get(*at)? != SPLICED {
        return next_field(bytes, at).map(|(whole, _)| SpanRecord::Entry(whole));
    }
    let mut pos = *at + 1;
    let n = usize::try_from(read_varint(bytes, &mut pos)?).ok()?;
    let literals_at = usize::try_from(read_varint(bytes, &mut pos)?).ok()?;
    let (_, body) = next_field(bytes, &mut pos)?;
    let literals_end = n.checked_mul(LITERAL_BYTES)?.checked_add(literals_at)?;
    if literals_end > body.len() {
        return None;
    }
    *at = pos;
    Some(SpanRecord::Spliced {
        body,
        literals_at,
        literals_end,
    })
}

impl SpanRecord<'_> {
    /// Appends the span's entry as it is exported: with literals, their `KeyValue` entries
    /// written where they are, and the entry's length counting them so.
    ///
    /// # Safety
    /// The record must have been read by [`next_span_record`] from a buffer of records written by
    /// [`finish_span`] in this process, back to back from its start (a spliced record's literals
    /// are then `&'static str`s and numbers, see [`super::literal`]).
    pub(crate) unsafe fn write_exported(&self, out: &mut Vec<u8>) {
        let (body, literals_at, literals_end) = match *self {
            SpanRecord::Entry(entry) => return out.extend_from_slice(entry),
            SpanRecord::Spliced {
                body,
                literals_at,
                literals_end,
            } => (body, literals_at, literals_end),
        };
        let literals = &body[literals_at..literals_end];
        // SAFETY: as the caller promises, these are the bytes `literal::put` wrote for the span.
        let each = || unsafe { literal::each(literals) };
        let added: usize = each()
            .map(|(key, member)| scalar_entry_len(SPAN_ATTRIBUTES, key, member))
            .sum();
        let mut w = Writer::new(out);
        w.tag(SCOPE_SPANS_SPAN_FIELD, LEN);
        w.varint((body.len() - literals.len() + added) as u64);
        w.raw(&body[..literals_at]);
        for (key, member) in each() {
            scalar_key_value(&mut w, SPAN_ATTRIBUTES, key, member);
        }
        w.raw(&body[literals_end..]);
    }
}

/// Completes the record of the span ended at `end_unix_nanos` into one `ScopeSpans.spans` entry
/// (tag, length, `Span`), exactly as prost writes it, literals aside, and returns it: kind and
/// times into their room, the rare fields and the flags after the attributes, the tag and length
/// in front. Once per record: the record is done afterwards.
#[inline(always)]
pub(crate) fn finish_span(r: &mut Recording, end_unix_nanos: u64) -> &[u8] {
    if !r.has_head() {
        r.add_head();
    }
    let times_at = r.attributes.start - KIND_AND_TIMES_LEN;
    if r.start_unix_nanos != 0 && end_unix_nanos != 0 {
        let times = kind_and_times(r.kind, r.start_unix_nanos, end_unix_nanos);
        r.attributes.bytes[times_at..r.attributes.start].copy_from_slice(&times);
    } else {
        unusual_times(r, end_unix_nanos);
    }
    // Dropped counts, events, links, a status: few spans have any.
    if r.attributes.dropped != 0 || r.extras {
        write_rare_fields(r);
    }
    let flags = r.flags.to_le_bytes();
    let bytes = &mut r.attributes.bytes;
    // Field 16 (a two-byte tag), fixed32, never 0.
    bytes.extend_from_slice(&[
        (16 << 3 | FIXED32) as u8 | 0x80,
        1,
        flags[0],
        flags[1],
        flags[2],
        flags[3],
    ]);
    let len = bytes.len() - HEAD_ROOM;
    const TAG: u8 = (SCOPE_SPANS_SPAN_FIELD << 3 | LEN) as u8;
    // Nearly every span is under 16 KiB long: its length then takes one or two bytes.
    let mut at = if len < 0x80 {
        bytes[HEAD_ROOM - 2..HEAD_ROOM].copy_from_slice(&[TAG, len as u8]);
        HEAD_ROOM - 2
    } else if len < 0x4000 {
        bytes[HEAD_ROOM - 3..HEAD_ROOM].copy_from_slice(&[TAG, len as u8 | 0x80, (len >> 7) as u8]);
        HEAD_ROOM - 3
    } else {
        place_entry_head(bytes, len)
    };
    let n = r.attributes.literals;
    if n != 0 {
        // Where the literals are in the body, which starts at `HEAD_ROOM`.
        let literals_at = r.attributes.start + r.attributes.literals_at - HEAD_ROOM;
        at = place_spliced_head(bytes, at, n, literals_at);
    }
    &bytes[at..]
}

/// Writes the tag and the varint length `len` of a span's entry right before its body, and
/// returns where they start.
#[cold]
#[inline(never)]
fn place_entry_head(bytes: &mut [u8], len: usize) -> usize {
    let at = HEAD_ROOM - 1 - varint_len(len as u64);
    bytes[at] = (SCOPE_SPANS_SPAN_FIELD << 3 | LEN) as u8;
    put_varint(&mut bytes[at + 1..], len as u64);
    at
}

/// Fields 6 to 8 when a time is 0 (left out, as prost leaves it out): shorter than their room,
/// which they replace. Only a span given as data (tests, the fuzz target) has one.
#[cold]
#[inline(never)]
fn unusual_times(r: &mut Recording, end_unix_nanos: u64) {
    let mut fields = vec![6 << 3, span_kind(r.kind) as u8];
    for (field, time) in [(7u8, r.start_unix_nanos), (8, end_unix_nanos)] {
        if time != 0 {
            fields.push(field << 3 | FIXED64 as u8);
            fields.extend_from_slice(&time.to_le_bytes());
        }
    }
    let times_at = r.attributes.start - KIND_AND_TIMES_LEN;
    r.attributes.start = times_at + fields.len();
    r.attributes
        .bytes
        .splice(times_at..times_at + KIND_AND_TIMES_LEN, fields);
}

pub(crate) const KIND_AND_TIMES_LEN: usize = 20;

/// A length-delimited field's bytes for a body of `len` bytes, 0 when empty (left out).
fn field_len(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        1 + varint_len(len as u64) + len
    }
}

fn uint_len(value: u32) -> usize {
    if value == 0 {
        0
    } else {
        1 + varint_len(u64::from(value))
    }
}

/// `Status`: message (2), then code (3: 1 ok, 2 error); `None` when unset (left out).
fn status_body_len(status: &Status) -> Option<usize> {
    match status {
        Status::Unset => None,
        Status::Ok => Some(2),
        Status::Error(description) => Some(field_len(description.len()) + 2),
    }
}

/// What `Span` fields 10 to 15 take (dropped counts, events, links, status).
fn rare_fields_len(r: &Recording) -> usize {
    uint_len(r.attributes.dropped)
        + r.events.len()
        + uint_len(r.dropped_events)
        + r.links.len()
        + uint_len(r.dropped_links)
        + status_body_len(&r.status).map_or(0, |body| 1 + varint_len(body as u64) + body)
}

/// Appends `Span` fields 10 to 15 to the record's bytes.
#[cold]
#[inline(never)]
fn write_rare_fields(r: &mut Recording) {
    let len = rare_fields_len(r);
    let mut bytes = std::mem::take(&mut r.attributes.bytes);
    let mut t = Tail::new(&mut bytes, len);
    t.uint(10, u64::from(r.attributes.dropped));
    t.put(&r.events);
    t.uint(12, u64::from(r.dropped_events));
    t.put(&r.links);
    t.uint(14, u64::from(r.dropped_links));
    if let Some(body) = status_body_len(&r.status) {
        t.byte((15 << 3 | LEN) as u8);
        t.varint(body as u64);
        if let Status::Error(description) = &r.status {
            t.field_bytes(2, description.as_bytes());
            t.uint(3, 2);
        } else {
            t.uint(3, 1);
        }
    }
    drop(t);
    r.attributes.bytes = bytes;
}

/// `Span` fields 6, 7 and 8 (kind, start and end times, both non-zero): one fixed-size copy.
fn kind_and_times(kind: SpanKind, start: u64, end: u64) -> [u8; KIND_AND_TIMES_LEN] {
    let mut block = [0u8; KIND_AND_TIMES_LEN];
    block[0] = 6 << 3;
    block[1] = span_kind(kind) as u8;
    block[2] = 7 << 3 | 1;
    block[3..11].copy_from_slice(&start.to_le_bytes());
    block[11] = 8 << 3 | 1;
    block[12..].copy_from_slice(&end.to_le_bytes());
    block
}

/// `Span` fields 1 and 2, always 16 and 8 bytes: written in one go.
const IDS_LEN: usize = 28;

fn ids(trace_id: TraceId, span_id: SpanId) -> [u8; IDS_LEN] {
    let mut ids = [0u8; IDS_LEN];
    ids[0] = 1 << 3 | 2;
    ids[1] = 16;
    ids[2..18].copy_from_slice(&trace_id.to_bytes());
    ids[18] = 2 << 3 | 2;
    ids[19] = 8;
    ids[20..].copy_from_slice(&span_id.to_bytes());
    ids
}

/// Appends one `Span.events` entry.
pub(crate) fn event_entry(
    buf: &mut Vec<u8>,
    time_unix_nanos: u64,
    name: &Str,
    attributes: &Attributes,
) {
    Writer::new(buf).message(11, |m| {
        m.fixed64(1, time_unix_nanos);
        m.str(2, name.as_str());
        m.raw(attributes.entries());
        m.uint(4, u64::from(attributes.dropped));
    });
}

/// Appends one `Span.links` entry, its attributes as given.
pub(crate) fn link_entry(buf: &mut Vec<u8>, context: &SpanContext, attributes: &[KeyValue]) {
    Writer::new(buf).message(13, |m| {
        m.bytes(1, &context.trace_id().to_bytes());
        m.bytes(2, &context.span_id().to_bytes());
        m.str(3, context.trace_state().unwrap_or_default());
        key_values(m, 4, attributes);
        m.fixed32(6, remote_flags(context.flags(), context.is_remote()));
    });
}

/// Appends `s` as one hand-off record, exactly as it is (no limit applied), with `literals` set
/// after its attributes as literals: through the same writer as a live span, for tests and the
/// fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn span_entry(
    buf: &mut Vec<u8>,
    s: &SpanData,
    literals: &[(&'static str, crate::core::wire::OneOf<'static>)],
) {
    let mut r = Recording::empty();
    let ids = Ids {
        trace_id: s.trace_id,
        span_id: s.span_id,
        flags: s.flags,
        is_remote: false,
        has_trace_state: s.trace_state.is_some(),
    };
    r.start(
        s.name.as_str(),
        s.kind,
        &ids,
        s.parent_span_id,
        s.parent_is_remote,
        s.trace_state.as_deref(),
    );
    r.start_unix_nanos = s.start_unix_nanos;
    for kv in &s.attributes {
        r.attributes.push_as_is(SPAN_ATTRIBUTES, kv);
    }
    let unlimited = crate::core::SpanLimits::default().max_attributes(u32::MAX);
    for (key, member) in literals {
        r.set_scalar_attribute(key, *member, unlimited);
    }
    r.attributes.dropped = s.dropped_attributes;
    for e in &s.events {
        let mut attributes = Attributes::default();
        for kv in &e.attributes {
            attributes.push_as_is(3, kv);
        }
        attributes.dropped = e.dropped_attributes;
        event_entry(&mut r.events, e.time_unix_nanos, &e.name, &attributes);
    }
    r.dropped_events = s.dropped_events;
    for l in &s.links {
        link_entry(&mut r.links, &l.context, &l.attributes);
    }
    r.dropped_links = s.dropped_links;
    r.status = s.status.clone();
    r.extras = true;
    buf.extend_from_slice(finish_span(&mut r, s.end_unix_nanos));
}

/// The spans of a buffer of hand-off records (what [`finish_span`] completed, back to back) as
/// the exporter writes them out: their entries, literals written in. Panics on bytes it cannot
/// read, which [`finish_span`] never writes. For tests and the fuzz target.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn exported_spans(handed_off: &[u8]) -> Vec<u8> {
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some(record) = next_span_record(handed_off, &mut at) {
        // SAFETY: read, in order from its start, from a buffer of records that callers take
        // from `finish_span` in this process.
        unsafe { record.write_exported(&mut out) };
    }
    assert_eq!(at, handed_off.len(), "every record read");
    out
}

/// The spans back from the `Span` message bodies [`span_entry`] wrote. A body that does not
/// decode (never ours) is skipped.
pub(crate) fn decode_spans<'b>(bodies: impl Iterator<Item = &'b [u8]>) -> Vec<SpanData> {
    bodies
        .filter_map(|body| pt::Span::decode(body).ok())
        .map(from_proto)
        .collect()
}

fn trace_id(bytes: &[u8]) -> TraceId {
    bytes
        .try_into()
        .map_or(TraceId::INVALID, TraceId::from_bytes)
}

fn span_id(bytes: &[u8]) -> SpanId {
    bytes.try_into().map_or(SpanId::INVALID, SpanId::from_bytes)
}

fn trace_state(s: String) -> Option<std::sync::Arc<str>> {
    (!s.is_empty()).then(|| s.into())
}

fn from_proto(s: pt::Span) -> SpanData {
    SpanData {
        trace_id: trace_id(&s.trace_id),
        span_id: span_id(&s.span_id),
        parent_span_id: span_id(&s.parent_span_id),
        parent_is_remote: s.flags & SPAN_FLAGS_IS_REMOTE != 0,
        flags: s.flags as u8,
        trace_state: trace_state(s.trace_state),
        name: Str::from(s.name),
        kind: match s.kind {
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Internal,
        },
        start_unix_nanos: s.start_time_unix_nano,
        end_unix_nanos: s.end_time_unix_nano,
        attributes: key_values_from_proto(s.attributes),
        dropped_attributes: s.dropped_attributes_count,
        events: s
            .events
            .into_iter()
            .map(|e| Event {
                name: Str::from(e.name),
                time_unix_nanos: e.time_unix_nano,
                attributes: key_values_from_proto(e.attributes),
                dropped_attributes: e.dropped_attributes_count,
            })
            .collect(),
        dropped_events: s.dropped_events_count,
        links: s
            .links
            .into_iter()
            .map(|l| Link {
                context: SpanContext {
                    trace_id: trace_id(&l.trace_id),
                    span_id: span_id(&l.span_id),
                    flags: l.flags as u8,
                    is_remote: l.flags & SPAN_FLAGS_IS_REMOTE != 0,
                    trace_state: trace_state(l.trace_state),
                },
                attributes: key_values_from_proto(l.attributes),
            })
            .collect(),
        dropped_links: s.dropped_links_count,
        status: match s.status {
            Some(pt::Status { code: 1, .. }) => Status::Ok,
            Some(pt::Status { code: 2, message }) => Status::Error(Str::from(message)),
            _ => Status::Unset,
        },
    }
}

fn key_values_from_proto(attributes: Vec<crate::proto::common::v1::KeyValue>) -> Vec<KeyValue> {
    attributes
        .into_iter()
        .map(|kv| KeyValue::new(kv.key, value_from_proto(kv.value)))
        .collect()
}

/// The value as we would have recorded it; an empty or unknown `AnyValue` becomes `""`.
fn value_from_proto(value: Option<AnyValue>) -> Value {
    use any_value::Value as V;
    let scalars = |values: Vec<AnyValue>| values.into_iter().filter_map(|v| v.value);
    match value.and_then(|v| v.value) {
        Some(V::StringValue(s)) => Value::Str(Str::from(s)),
        Some(V::BoolValue(b)) => Value::Bool(b),
        Some(V::IntValue(i)) => Value::I64(i),
        Some(V::DoubleValue(f)) => Value::F64(f),
        Some(V::ArrayValue(array)) => {
            let members: Vec<V> = scalars(array.values).collect();
            match members.first() {
                Some(V::BoolValue(_)) => Value::BoolArray(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::BoolValue(b) => Some(b),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(V::IntValue(_)) => Value::I64Array(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::IntValue(i) => Some(i),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(V::DoubleValue(_)) => Value::F64Array(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::DoubleValue(f) => Some(f),
                            _ => None,
                        })
                        .collect(),
                ),
                _ => Value::StrArray(
                    members
                        .into_iter()
                        .filter_map(|m| match m {
                            V::StringValue(s) => Some(Str::from(s)),
                            _ => None,
                        })
                        .collect(),
                ),
            }
        }
        _ => Value::Str(Str::Static("")),
    }
}

#[cfg(test)]
mod tests {
    //! The oracle for a live span's record: what prost writes for the same outcome.
    use super::*;
    use crate::core::wire::OneOf;
    use crate::proto::common::v1::{ArrayValue, KeyValue as PKeyValue};
    use crate::trace::context::FLAG_SAMPLED;
    use crate::trace::SpanLimits;

    use super::exported_spans as exported;

    fn kv(key: &str, value: any_value::Value) -> PKeyValue {
        PKeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn text(s: &str) -> any_value::Value {
        any_value::Value::StringValue(s.to_owned())
    }

    #[test]
    fn a_live_span_is_written_exactly_as_prost_writes_its_outcome() {
        use any_value::Value as V;
        let limits = SpanLimits::default()
            .max_attributes(5)
            .max_events(1)
            .max_links(1)
            .max_attributes_per_event(1)
            .max_value_chars(5);
        let parent = SpanContext::new_remote(TraceId(0xabc), SpanId(0x12), FLAG_SAMPLED)
            .with_trace_state(Some("vendor=a".into()));
        let context = SpanContext {
            trace_id: TraceId(0xabc),
            span_id: SpanId(0x34),
            flags: FLAG_SAMPLED,
            is_remote: false,
            trace_state: parent.trace_state.clone(),
        };
        let mut r = Recording::empty();
        r.start(
            "GET /users",
            SpanKind::Server,
            &context.ids(),
            parent.span_id(),
            parent.is_remote(),
            parent.trace_state(),
        );
        r.start_unix_nanos = 1_000;
        let long_key = "k".repeat(130);
        let set = |r: &mut Recording, key: Str, value: Value| r.set_attribute(&key, &value, limits);
        set(&mut r, "text".into(), "héllo wörld".into()); // cut, by characters
        set(&mut r, "count".into(), 7i64.into());
        set(&mut r, "list".into(), vec!["abcdefgh", "x", ""].into());
        set(&mut r, Str::from(long_key.clone()), (-1i64).into()); // over 128 bytes
        set(&mut r, "text".into(), true.into()); // overwritten in place, shorter
        set(
            &mut r,
            Str::from("count".to_owned()),
            "x".repeat(300).into(),
        ); // run-time key
        set(&mut r, "ratio".into(), 0.5f64.into());
        set(&mut r, "over".into(), 1i64.into()); // past the limit: dropped
        set(&mut r, "over too".into(), 2i64.into());
        r.add_event(
            &"retry".into(),
            &[
                KeyValue::new("why", "timeout!"),
                KeyValue::new("extra", 1i64),
            ],
            limits,
        );
        r.add_event(&"late".into(), &[], limits); // past the event limit
        let linked = SpanContext::new_remote(TraceId(9), SpanId(8), FLAG_SAMPLED)
            .with_trace_state(Some("other=b".into()));
        r.add_link(&linked, &[KeyValue::new("batch", 3i64)], limits);
        r.add_link(&linked, &[], limits); // past the link limit
        r.add_link(&SpanContext::none(), &[], limits); // invalid
        r.set_status(Status::error("bad"));
        // Renamed after its attributes were set: the head is rewritten in front of them.
        r.update_name("GET /users/{id}");

        let ours = exported(finish_span(&mut r, 2_000));
        let expected = pt::Span {
            trace_id: TraceId(0xabc).to_bytes().to_vec(),
            span_id: SpanId(0x34).to_bytes().to_vec(),
            trace_state: "vendor=a".into(),
            parent_span_id: SpanId(0x12).to_bytes().to_vec(),
            flags: u32::from(FLAG_SAMPLED) | SPAN_FLAGS_HAS_IS_REMOTE | SPAN_FLAGS_IS_REMOTE,
            name: "GET /users/{id}".into(),
            kind: pt::span::SpanKind::Server as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 2_000,
            attributes: vec![
                kv("text", V::BoolValue(true)),
                kv("count", text("xxxxx")),
                kv(
                    "list",
                    V::ArrayValue(ArrayValue {
                        values: ["abcde", "x", ""]
                            .iter()
                            .map(|s| AnyValue {
                                value: Some(text(s)),
                            })
                            .collect(),
                    }),
                ),
                kv(&long_key, V::IntValue(-1)),
                kv("ratio", V::DoubleValue(0.5)),
            ],
            dropped_attributes_count: 2,
            events: vec![pt::span::Event {
                time_unix_nano: 0,
                name: "retry".into(),
                attributes: vec![kv("why", text("timeo"))],
                dropped_attributes_count: 1,
            }],
            dropped_events_count: 1,
            links: vec![pt::span::Link {
                trace_id: TraceId(9).to_bytes().to_vec(),
                span_id: SpanId(8).to_bytes().to_vec(),
                trace_state: "other=b".into(),
                attributes: vec![kv("batch", V::IntValue(3))],
                dropped_attributes_count: 0,
                flags: u32::from(FLAG_SAMPLED) | SPAN_FLAGS_HAS_IS_REMOTE | SPAN_FLAGS_IS_REMOTE,
            }],
            dropped_links_count: 2,
            status: Some(pt::Status {
                message: "bad".into(),
                code: pt::status::StatusCode::Error as i32,
            }),
        };
        // The event's time is the clock's: take it from what we wrote.
        let mut at = 0;
        let (_, body) = crate::core::wire::next_field(&ours, &mut at).expect("one entry");
        assert_eq!(at, ours.len(), "one entry, its length exact");
        let decoded = pt::Span::decode(body).expect("decodes");
        let mut expected = expected;
        expected.events[0].time_unix_nano = decoded.events[0].time_unix_nano;
        assert_eq!(decoded, expected);
        let theirs = pt::ScopeSpans {
            spans: vec![expected],
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(ours, theirs, "same bytes as prost");
    }

    /// A span's entry head (its tag and length, written in front of its body at the end) on
    /// both sides of each width of the length, with and without a name, parent, tracestate,
    /// attributes and times: what prost writes.
    #[test]
    fn every_entry_length_width_is_written_as_prost_writes_it() {
        let limits = SpanLimits::default();
        for (value_len, named, parent, trace_state, start) in
            [0usize, 1, 20, 40, 50, 16_250, 16_300, 16_400, 70_000]
                .into_iter()
                .flat_map(|n| {
                    (n.saturating_sub(3)..n + 3).map(move |len| {
                        (len, len % 2 == 0, len % 3 != 0, len % 5 == 0, len % 7 != 0)
                    })
                })
        {
            let long = "n".repeat(130 + value_len % 3);
            let name = match (named, value_len % 4) {
                (false, _) => "",
                (true, 0) => long.as_str(),
                _ => "x",
            };
            let long_state = format!("k={}", "v".repeat(200));
            let trace_state = match (trace_state, value_len % 3) {
                (false, _) => None,
                (true, 0) => Some(long_state.as_str()),
                _ => Some("k=v"),
            };
            let parent_span_id = if parent { SpanId(5) } else { SpanId::INVALID };
            let ids = Ids {
                trace_id: TraceId(3),
                span_id: SpanId(4),
                flags: FLAG_SAMPLED,
                is_remote: false,
                has_trace_state: trace_state.is_some(),
            };
            let mut r = Recording::empty();
            r.start(
                name,
                SpanKind::Internal,
                &ids,
                parent_span_id,
                false,
                trace_state,
            );
            r.start_unix_nanos = if start { 1 } else { 0 };
            if value_len > 0 {
                r.set_attribute(&"k".into(), &"v".repeat(value_len).into(), limits);
            }
            let ours = exported(finish_span(&mut r, 2));
            let expected = pt::Span {
                trace_id: TraceId(3).to_bytes().to_vec(),
                span_id: SpanId(4).to_bytes().to_vec(),
                trace_state: trace_state.unwrap_or_default().into(),
                parent_span_id: if parent {
                    SpanId(5).to_bytes().to_vec()
                } else {
                    Vec::new()
                },
                flags: u32::from(FLAG_SAMPLED) | SPAN_FLAGS_HAS_IS_REMOTE,
                name: name.into(),
                kind: pt::span::SpanKind::Internal as i32,
                start_time_unix_nano: if start { 1 } else { 0 },
                end_time_unix_nano: 2,
                attributes: if value_len > 0 {
                    vec![kv("k", text(&"v".repeat(value_len)))]
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            let theirs = pt::ScopeSpans {
                spans: vec![expected],
                ..Default::default()
            }
            .encode_to_vec();
            assert_eq!(ours, theirs, "value of {value_len} bytes");
        }
    }

    /// A started root span named `name` (ids 3 and 4, sampled, started at 1), for the literal
    /// tests.
    fn literal_span(name: &str) -> Recording {
        let mut r = Recording::empty();
        let ids = Ids {
            trace_id: TraceId(3),
            span_id: SpanId(4),
            flags: FLAG_SAMPLED,
            is_remote: false,
            has_trace_state: false,
        };
        r.start(name, SpanKind::Client, &ids, SpanId::INVALID, false, None);
        r.start_unix_nanos = 1;
        r
    }

    /// What prost makes of [`literal_span`] with `attributes`, ended at 2.
    fn prost_span(name: &str, attributes: Vec<PKeyValue>) -> pt::Span {
        pt::Span {
            trace_id: TraceId(3).to_bytes().to_vec(),
            span_id: SpanId(4).to_bytes().to_vec(),
            flags: u32::from(FLAG_SAMPLED) | SPAN_FLAGS_HAS_IS_REMOTE,
            name: name.into(),
            kind: pt::span::SpanKind::Client as i32,
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes,
            ..Default::default()
        }
    }

    fn prost_entry(span: pt::Span) -> Vec<u8> {
        pt::ScopeSpans {
            spans: vec![span],
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// Literal attributes (kept as literals, written by the exporter) among other attributes:
    /// in the order they were set, a key set again overwritten where it was, a literal too long
    /// to keep written on the spot, still literals when the span is renamed and given a status
    /// and ended: what prost writes, byte for byte, once the exporter has spliced them in.
    #[test]
    fn literal_attributes_are_spliced_in_as_prost_writes_them() {
        use any_value::Value as V;
        let limits = SpanLimits::default();
        let statement: &'static str = "select 1 ".repeat(2_000).leak();
        let mut r = literal_span("q");
        let lit = |r: &mut Recording, key: &'static str, member: OneOf<'static>| {
            r.set_scalar_attribute(key, member, limits)
        };
        lit(&mut r, "http.request.method", OneOf::Str("GET"));
        lit(&mut r, "http.route", OneOf::Str("/users/{id}"));
        // Run-time key: the two literals before it are written out first, in order.
        r.set_attribute(&Str::from("peer".to_owned()), &"x".into(), limits);
        lit(&mut r, "status", OneOf::Int(200));
        lit(&mut r, "retry", OneOf::Bool(true));
        // The length of "retry": looked up among the entries, the literals written out first.
        lit(&mut r, "ratio", OneOf::Double(0.25));
        lit(&mut r, "status", OneOf::Int(503)); // overwritten where it was
        lit(&mut r, "db.query.text", OneOf::Str(statement)); // too long for a literal
        lit(&mut r, "", OneOf::Str("empty key"));
        lit(&mut r, "server.port", OneOf::Int(-7));
        lit(&mut r, "nothing", OneOf::Str(""));
        r.set_status(Status::Ok);
        r.update_name("GET /users/{id}");
        assert_eq!(
            r.attributes.literals, 3,
            "the last three are still literals"
        );
        let ours = exported(finish_span(&mut r, 2));
        let expected = prost_span(
            "GET /users/{id}",
            vec![
                kv("http.request.method", text("GET")),
                kv("http.route", text("/users/{id}")),
                kv("peer", text("x")),
                kv("status", V::IntValue(503)),
                kv("retry", V::BoolValue(true)),
                kv("ratio", V::DoubleValue(0.25)),
                kv("db.query.text", text(statement)),
                kv("", text("empty key")),
                kv("server.port", V::IntValue(-7)),
                kv("nothing", text("")),
            ],
        );
        let expected = pt::Span {
            status: Some(pt::Status {
                message: String::new(),
                code: pt::status::StatusCode::Ok as i32,
            }),
            ..expected
        };
        assert_eq!(ours, prost_entry(expected), "same bytes as prost");
    }

    /// As many literals as a record holds at once (a key of each length modulo 64), written out
    /// by a run-time attribute after them and by the exporter: what prost writes, either way.
    #[test]
    fn the_most_literals_a_record_holds_are_written_out_whole() {
        use any_value::Value as V;
        let limits = SpanLimits::default();
        let keys: Vec<&'static str> = (0..literal::MOST_PENDING)
            .map(|n| &*"k".repeat(n).leak())
            .collect();
        for run_time_after in [false, true] {
            let mut r = literal_span("s");
            let mut expected = Vec::new();
            for (n, key) in keys.iter().enumerate() {
                r.set_scalar_attribute(key, OneOf::Int(n as i64), limits);
                expected.push(kv(key, V::IntValue(n as i64)));
            }
            assert_eq!(r.attributes.literals, literal::MOST_PENDING);
            if run_time_after {
                r.set_attribute(&Str::from("run".to_owned()), &"time".into(), limits);
                expected.push(kv("run", text("time")));
                assert_eq!(r.attributes.literals, 0, "written out");
            }
            let ours = exported(finish_span(&mut r, 2));
            assert_eq!(ours, prost_entry(prost_span("s", expected)));
        }
    }

    /// Literals past the count limit are dropped and counted, the ones before them kept.
    #[test]
    fn literals_past_the_count_limit_are_dropped_and_counted() {
        use any_value::Value as V;
        let limits = SpanLimits::default().max_attributes(2);
        let mut r = literal_span("s");
        for (key, value) in [("a", 1), ("bb", 2), ("ccc", 3), ("dddd", 4)] {
            r.set_scalar_attribute(key, OneOf::Int(value), limits);
        }
        let ours = exported(finish_span(&mut r, 2));
        let expected = pt::Span {
            dropped_attributes_count: 2,
            ..prost_span("s", vec![kv("a", V::IntValue(1)), kv("bb", V::IntValue(2))])
        };
        assert_eq!(ours, prost_entry(expected));
    }

    /// The head of a record with literals takes 3, 4 or more bytes, as far into the span as the
    /// literals are (a long name, a long attribute before them), and splicing them in can change
    /// the width of the span's length (a long literal value): on both sides of each width, the
    /// exporter writes what prost writes. Records with and without literals, back to back in one
    /// buffer, come out in order, as one buffer of entries.
    #[test]
    fn spliced_records_are_written_as_prost_writes_them_at_every_width() {
        use any_value::Value as V;
        let limits = SpanLimits::default();
        let mut handed_off = Vec::new();
        let mut theirs = Vec::new();
        for (name_len, before_len, value_len) in [
            (1, 0, 1),
            (60, 0, 1),
            (100, 0, 1),
            (300, 0, 1),
            (30, 20_000, 1),
            (1, 0, 100),
            (1, 0, 16_000),
            (1, 0, 16_383),
            (1, 40, 16_383),
        ] {
            let name = "n".repeat(name_len);
            let value: &'static str = "v".repeat(value_len).leak();
            let mut r = literal_span(&name);
            let mut attributes = Vec::new();
            if before_len > 0 {
                let before = "b".repeat(before_len);
                r.set_attribute(&"before".into(), &before.clone().into(), limits);
                attributes.push(kv("before", text(&before)));
            }
            r.set_scalar_attribute("key", OneOf::Str(value), limits);
            r.set_scalar_attribute("n", OneOf::Int(i64::from(name_len as u32)), limits);
            attributes.push(kv("key", text(value)));
            attributes.push(kv("n", V::IntValue(name_len as i64)));
            handed_off.extend_from_slice(finish_span(&mut r, 2));
            theirs.extend(prost_entry(prost_span(&name, attributes)));
            // A span without literals after each.
            let mut plain = literal_span("plain");
            plain.set_attribute(&"k".into(), &Value::I64(1), limits);
            handed_off.extend_from_slice(finish_span(&mut plain, 2));
            theirs.extend(prost_entry(prost_span(
                "plain",
                vec![kv("k", V::IntValue(1))],
            )));
        }
        assert_eq!(exported(&handed_off), theirs);
    }

    /// A record whose head says more literals than its entry holds, or that is cut short, is
    /// not read (the exporter drops such bytes, counted, as it drops any it cannot read); the
    /// records before it are.
    #[test]
    fn a_record_with_literals_that_does_not_add_up_is_not_read() {
        let limits = SpanLimits::default();
        let mut spliced = literal_span("s");
        spliced.set_scalar_attribute("k", OneOf::Int(1), limits);
        let whole = finish_span(&mut spliced, 2).to_vec();
        assert_eq!(whole[0], SPLICED);
        for bad in [
            [&[SPLICED, 9][..], &whole[2..]].concat(), // 9 literals said, 1 there
            whole[..whole.len() - 1].to_vec(),         // cut short
        ] {
            let bytes = [&whole[..], &bad[..]].concat();
            let mut at = 0;
            assert!(next_span_record(&bytes, &mut at).is_some());
            assert_eq!(at, whole.len());
            assert!(next_span_record(&bytes, &mut at).is_none());
            assert_eq!(at, whole.len(), "not moved past what it cannot read");
        }
    }
}
