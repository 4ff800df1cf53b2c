//! The record of a live sampled span ([`Recording`]): its attributes, events and links kept as
//! the OTLP bytes they are exported as, written once when they are set, so ending the span only
//! copies them into the thread's hand-off buffer. An attribute whose key and value are literals
//! is kept as their addresses instead ([`super::literal`]), for the exporter to write out. The
//! same record serves the [`Span`](super::Span) handle, [`CurrentSpan`](super::CurrentSpan) and
//! the `tracing` bridge.
//!
//! A record is reachable from two places: the handle (which may move to another thread, it is
//! `Send`), and the current-span frame of the thread that started it (so deep code can set an
//! attribute on whatever span is current).
//!
//! Why this is not an `Arc<Mutex<Recording>>`: that costs two locked instructions per access
//! plus two per span for the reference count, a large share of a sampled span with a few
//! attributes. Here the common case, the handle used on the thread
//! that started the span, takes no lock at all (one thread-local read decides it), and only
//! access from elsewhere takes a one-instruction spin lock.
//!
//! The rules that make it sound:
//! 1. Only two parties ever reach the record: the handle (one owner, wherever it is) and the
//!    origin thread's frame. Code on the origin thread with the handle in hand cannot run
//!    concurrently with code on the origin thread using the frame, so the handle skips the lock
//!    there; every other access (the handle on another thread, any access through the frame)
//!    takes the lock.
//! 2. The record is freed only after its frame can no longer reach it: by the handle on the
//!    origin thread after its frame is marked ended, or by the origin thread itself when it
//!    processes the end posted to it by another thread (or by that other thread if the origin
//!    thread's frames are already gone). See `context::leave_from_elsewhere`.

use super::context::{Ids, SpanContext};
use super::id::SpanId;
use super::literal;
use super::span::{SpanKind, Status};
use crate::attributes::{KeyValue, Str, Value};
use crate::core::wire::{key_value_entry, read_varint, scalar_key_value, OneOf, Writer};
use crate::core::{now_unix_nanos, SpanLimits};
use std::cell::{RefCell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

/// `Span.attributes`, `Event.attributes`: the field numbers a [`Attributes`] list is written in.
pub(crate) const SPAN_ATTRIBUTES: u32 = 9;
const EVENT_ATTRIBUTES: u32 = 3;

/// A list of attributes as the OTLP `KeyValue` entries it is exported as, each written once when
/// it is set: ending the span copies the bytes, it encodes nothing more. Keys are unique: an
/// index of where each entry is lets a key set again overwrite its entry in place.
#[derive(Default)]
pub(crate) struct Attributes {
    /// The entries (tag, length, `KeyValue`), back to back from `start`, in the order their keys
    /// came. A span's record keeps the rest of its `Span` around them (see [`Recording`]).
    pub(crate) bytes: Vec<u8>,
    /// Where the entries start in `bytes`.
    pub(crate) start: usize,
    keys: Vec<Key>,
    /// How many attributes with a literal key and a scalar literal value were set since the
    /// last entry was written: the list's last ones, kept as [`literal`] bytes from
    /// `literals_at` (from `start`), for the exporter to write out as entries, or
    /// [`settle`](Self::settle) when anything else is set.
    pub(crate) literals: usize,
    /// Where the first of them starts, from `start`.
    pub(crate) literals_at: usize,
    /// The key lengths in the list, one bit per length modulo 64: a key whose bit is clear is
    /// new, known without a look at the keys (most keys of a span differ in length).
    lengths: u64,
    /// New keys refused by the count limit.
    pub(crate) dropped: u32,
}

/// Where [`Attributes::place`] puts an entry.
enum Place {
    End,
    Entry(usize),
    Nowhere,
}

/// Where one entry of [`Attributes::bytes`] is, and its key.
#[derive(Clone, Copy)]
struct Key {
    /// The key's address when it is a literal, which settles a repeated literal key without
    /// reading it; 0 for a key built at run time (its memory may be reused by another text).
    literal: usize,
    len: usize,
    /// The entry's offset from the first entry: a head rewritten in front keeps it.
    at: usize,
}

impl Attributes {
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.start = 0;
        self.keys.clear();
        self.literals = 0;
        self.lengths = 0;
        self.dropped = 0;
    }

    /// The entries, as they are exported: only for a list without literals (an event's).
    pub(crate) fn entries(&self) -> &[u8] {
        debug_assert_eq!(self.literals, 0);
        self.bytes.get(self.start..).unwrap_or_default()
    }

    /// Writes the literals out as entries after the others, in order: before anything else is
    /// set or looked up, so the order is the order of setting and a key set again is found.
    #[inline(always)]
    pub(crate) fn settle(&mut self, field: u32) {
        if self.literals != 0 {
            self.settle_literals(field);
        }
    }

    #[cold]
    #[inline(never)]
    fn settle_literals(&mut self, field: u32) {
        // Copied out of the way of the entries that replace them, onto the stack: a span that
        // mixes literals and run-time values settles on every span, and allocates nothing.
        let at = self.start + self.literals_at;
        let mut copy = [0u8; literal::MOST_PENDING * literal::LITERAL_BYTES];
        let literals = &mut copy[..self.bytes.len() - at];
        literals.copy_from_slice(&self.bytes[at..]);
        self.bytes.truncate(at);
        self.literals = 0;
        // SAFETY: the bytes from `literals_at` are the literals `set_literal` wrote with
        // `literal::put`: they are the last ones, as whatever else writes to `bytes` after the
        // head settles them first.
        for (key, member) in unsafe { literal::each(literals) } {
            let at = self.bytes.len() - self.start;
            scalar_key_value(&mut Writer::new(&mut self.bytes), field, key, member);
            self.keys.push(Key {
                literal: key.as_ptr() as usize,
                len: key.len(),
                at,
            });
        }
    }

    /// The one place attribute limits are applied to a span or an event: an existing key is
    /// overwritten; past `max_count` keys a new key is dropped and counted; strings are cut to
    /// `max_chars` characters. Inline: a span's setter is this and little more.
    #[inline(always)]
    pub(crate) fn set(
        &mut self,
        field: u32,
        key: &Str,
        value: &Value,
        max_count: u32,
        max_chars: Option<u32>,
    ) {
        self.settle(field);
        let (text, literal): (&str, usize) = match key {
            Str::Static(s) => (s, s.as_ptr() as usize),
            Str::Owned(s) => (s, 0),
        };
        let length = 1u64 << (text.len() % 64);
        // A key of a length not in the list yet is new: the usual case, decided here.
        if self.lengths & length != 0 || self.keys.len() >= max_count as usize {
            return self.set_slow(field, text, literal, value, max_count, max_chars);
        }
        self.lengths |= length;
        let at = self.bytes.len() - self.start;
        key_value_entry(&mut self.bytes, field, text, value, max_chars);
        self.keys.push(Key {
            literal,
            len: text.len(),
            at,
        });
    }

    /// [`set`](Self::set) for a key that may be in the list already, or past the count limit.
    #[cold]
    #[inline(never)]
    fn set_slow(
        &mut self,
        field: u32,
        text: &str,
        literal: usize,
        value: &Value,
        max_count: u32,
        max_chars: Option<u32>,
    ) {
        let place = self.place(text, literal, max_count);
        if let Some(written_at) = self.written_at(&place) {
            key_value_entry(&mut self.bytes, field, text, value, max_chars);
            self.index(place, text, literal, written_at);
        }
    }

    /// [`set`](Self::set) for a literal key and a scalar literal value (a string already cut
    /// to the limit), in a span's list: the common attribute, kept as a literal (its entry is
    /// written by the exporter).
    #[inline(always)]
    pub(crate) fn set_literal(
        &mut self,
        key: &'static str,
        member: OneOf<'static>,
        max_count: u32,
    ) {
        if !self.try_set_literal(key, member, max_count) {
            self.set_literal_general(key, member, max_count);
        }
    }

    /// [`set_literal`](Self::set_literal) when [`try_set_literal`](Self::try_set_literal)
    /// refused: a literal once there is room for it, else an entry.
    #[cold]
    #[inline(never)]
    fn set_literal_general(&mut self, key: &'static str, member: OneOf<'static>, max_count: u32) {
        self.bytes.reserve(literal::LITERAL_BYTES);
        if !self.try_set_literal(key, member, max_count) {
            self.set_scalar_slow(SPAN_ATTRIBUTES, key, member, max_count);
        }
    }

    /// [`set_literal`](Self::set_literal) when it is the usual case: a key of a length not in
    /// the list yet (so new), under the count limit, short enough to keep. Returns whether it
    /// was; nothing is changed when not.
    #[inline(always)]
    pub(crate) fn try_set_literal(
        &mut self,
        key: &'static str,
        member: OneOf<'static>,
        max_count: u32,
    ) -> bool {
        let length = 1u64 << (key.len() % 64);
        let count = self.keys.len() + self.literals;
        if self.lengths & length != 0 || count >= max_count as usize {
            return false;
        }
        let end = self.bytes.len();
        if !literal::put(&mut self.bytes, key, member) {
            return false;
        }
        if self.literals == 0 {
            self.literals_at = end - self.start;
        }
        self.literals += 1;
        self.lengths |= length;
        true
    }

    /// [`set_literal`](Self::set_literal) for a key that may be in the list already, or past the
    /// count limit.
    #[cold]
    #[inline(never)]
    fn set_scalar_slow(
        &mut self,
        field: u32,
        key: &'static str,
        member: OneOf<'_>,
        max_count: u32,
    ) {
        self.settle(field);
        let literal = key.as_ptr() as usize;
        let place = self.place(key, literal, max_count);
        if let Some(written_at) = self.written_at(&place) {
            scalar_key_value(&mut Writer::new(&mut self.bytes), field, key, member);
            self.index(place, key, literal, written_at);
        }
    }

    /// Where the entry for the key `text` goes: in place of the key's entry if it has one, else
    /// at the end, or nowhere past `max_count` keys (counted as dropped).
    #[inline(always)]
    fn place(&mut self, text: &str, literal: usize, max_count: u32) -> Place {
        let length = 1u64 << (text.len() % 64);
        if self.lengths & length != 0 {
            if let Some(i) = self.find(text, literal) {
                return Place::Entry(i);
            }
        }
        if self.keys.len() < max_count as usize {
            self.lengths |= length;
            Place::End
        } else {
            self.dropped = self.dropped.saturating_add(1);
            Place::Nowhere
        }
    }

    /// Where the entry for `place` is to be written (at the end of the bytes, whatever its
    /// place), unless nowhere. One place that writes it keeps the encoding's code inline once.
    #[inline(always)]
    fn written_at(&self, place: &Place) -> Option<usize> {
        (!matches!(place, Place::Nowhere)).then_some(self.bytes.len())
    }

    /// Indexes the entry for the key `text` just written at `written_at`, moved into `place`.
    #[inline(always)]
    fn index(&mut self, place: Place, text: &str, literal: usize, written_at: usize) {
        match place {
            Place::End => self.keys.push(Key {
                literal,
                len: text.len(),
                at: written_at - self.start,
            }),
            Place::Entry(i) => self.overwrite(i, text, literal, written_at),
            Place::Nowhere => {}
        }
    }

    /// The index of the key `text` (`literal` its address if a literal), if it is in the list.
    #[inline(never)]
    fn find(&self, text: &str, literal: usize) -> Option<usize> {
        self.keys.iter().position(|k| {
            k.len == text.len()
                && ((literal != 0 && k.literal == literal) || self.entry_has_key(k.at, text))
        })
    }

    /// Whether the entry at `at` has the key `text` (of the entry's key length): read from the
    /// bytes, for keys that are not the same literal.
    #[cold]
    #[inline(never)]
    fn entry_has_key(&self, at: usize, text: &str) -> bool {
        if text.is_empty() {
            // An empty key is left out of the entry (proto3 default): nothing to compare.
            return true;
        }
        let bytes = self.entries();
        let mut at = at;
        let key = (|| {
            read_varint(bytes, &mut at)?; // the entry's tag
            read_varint(bytes, &mut at)?; // its length
            read_varint(bytes, &mut at)?; // the key's tag
            let len = usize::try_from(read_varint(bytes, &mut at)?).ok()?;
            bytes.get(at..at.checked_add(len)?)
        })();
        key == Some(text.as_bytes())
    }

    /// Entry `i` replaced by the one written at the end from `tail`, where it was (the key
    /// keeps its place in the order). Rare.
    #[cold]
    #[inline(never)]
    fn overwrite(&mut self, i: usize, text: &str, literal: usize, tail: usize) {
        let at = self.keys[i].at;
        let old_len = self.keys.get(i + 1).map_or(tail - self.start, |k| k.at) - at;
        let start = self.start + at;
        let new_len = self.bytes.len() - tail;
        // [.. old, rest, new] -> [.. new, old, rest] -> [.. new, rest]
        self.bytes[start..].rotate_right(new_len);
        self.bytes.drain(start + new_len..start + new_len + old_len);
        self.keys[i] = Key {
            literal,
            len: text.len(),
            at,
        };
        for k in &mut self.keys[i + 1..] {
            k.at = k.at - old_len + new_len;
        }
    }

    /// Appends `kv` as it is, limits and uniqueness aside: for a span that already is a
    /// [`SpanData`](super::SpanData) (tests, the fuzz target), encoded as it was given.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn push_as_is(&mut self, field: u32, kv: &KeyValue) {
        self.settle(field);
        let at = self.bytes.len() - self.start;
        key_value_entry(&mut self.bytes, field, kv.key.as_str(), &kv.value, None);
        self.keys.push(Key {
            literal: 0,
            len: kv.key.len(),
            at,
        });
    }
}

/// The most bytes a recycled record keeps in each of its buffers.
const RECYCLED_BYTES: usize = 4096;

/// The record of a live sampled span: what it has been given so far, already in its wire form.
///
/// Its attribute list's bytes are the span's `ScopeSpans.spans` entry under construction,
/// written as the span goes ([`super::encode`] has the layout): room for the entry's tag and
/// length, then fields 1 to 5 (written at the start), room for fields 6 to 8 (kind and times,
/// written at the end, so they may change meanwhile), then the attribute entries. Ending the span
/// writes what is left after them and copies the entry out whole
/// ([`super::encode::finish_span`]).
pub(crate) struct Recording {
    pub(crate) attributes: Attributes,
    /// Where the name field (5) starts in the bytes; it ends where fields 6 to 8 go.
    pub(crate) name_at: usize,
    /// `Span.flags` (field 16).
    pub(crate) flags: u32,
    pub(crate) kind: SpanKind,
    pub(crate) start_unix_nanos: u64,
    /// `Span.events` entries (field 11), back to back.
    pub(crate) events: Vec<u8>,
    event_count: u32,
    pub(crate) dropped_events: u32,
    /// `Span.links` entries (field 13), back to back.
    pub(crate) links: Vec<u8>,
    link_count: u32,
    pub(crate) dropped_links: u32,
    pub(crate) status: Status,
    /// Whether the span has more than attributes: an event or a link (kept or dropped), or a
    /// status. Few spans do; for the others the end skips fields 10 to 15 and the recycle the
    /// lists they come from on one test.
    pub(crate) extras: bool,
    /// An event's attributes while they are limited, kept for its capacity.
    event_attributes: Attributes,
}

impl Recording {
    /// A record holding nothing, for the span's start to fill in.
    pub(crate) fn empty() -> Self {
        Recording {
            attributes: Attributes::default(),
            name_at: 0,
            flags: 0,
            kind: SpanKind::Internal,
            start_unix_nanos: 0,
            events: Vec::new(),
            event_count: 0,
            dropped_events: 0,
            links: Vec::new(),
            link_count: 0,
            dropped_links: 0,
            status: Status::Unset,
            extras: false,
            event_attributes: Attributes::default(),
        }
    }

    /// Starts the record of a sampled span now, in place, in an empty or emptied record (what
    /// it held is dropped). `parent_span_id` is invalid for a root; `trace_state` is the
    /// parent's.
    #[inline]
    pub(crate) fn start(
        &mut self,
        name: &str,
        kind: SpanKind,
        ids: &Ids,
        parent_span_id: SpanId,
        parent_is_remote: bool,
        trace_state: Option<&str>,
    ) {
        self.kind = kind;
        self.flags = super::encode::remote_flags(ids.flags, parent_is_remote);
        self.start_unix_nanos = now_unix_nanos();
        super::encode::write_head(self, name, ids, parent_span_id, trace_state);
    }

    /// Whether the bytes hold a head (fields 1 to 5 and room for 6 to 8): every started record.
    pub(crate) fn has_head(&self) -> bool {
        self.attributes.start >= super::encode::MIN_HEAD_LEN
    }

    /// Gives a record that was never started (a test's, say) the head of a span with no ids, in
    /// front of what it was given, so that it still ends as a well-formed span.
    #[cold]
    #[inline(never)]
    pub(crate) fn add_head(&mut self) {
        self.attributes.settle(SPAN_ATTRIBUTES);
        let entries = self.attributes.entries().to_vec();
        let (kind, start) = (self.kind, self.start_unix_nanos);
        let none = Ids::default();
        super::encode::write_head(self, "", &none, SpanId::INVALID, None);
        self.attributes.bytes.extend_from_slice(&entries);
        (self.kind, self.start_unix_nanos) = (kind, start);
    }

    /// Renames the span: its head is rewritten around the new name (the attributes after it
    /// keep their offsets from the first one).
    pub(crate) fn update_name(&mut self, name: &str) {
        if !self.has_head() {
            self.add_head();
        }
        let mut field = Vec::new();
        crate::core::wire::Writer::new(&mut field).str(5, name);
        let end = self.attributes.start - super::encode::KIND_AND_TIMES_LEN;
        let old_len = end - self.name_at;
        let new_len = field.len();
        self.attributes.bytes.splice(self.name_at..end, field);
        self.attributes.start = self.attributes.start - old_len + new_len;
    }

    /// The span's name, read back from its head.
    #[cfg(test)]
    pub(crate) fn name(&self) -> String {
        let end = self
            .attributes
            .start
            .saturating_sub(super::encode::KIND_AND_TIMES_LEN);
        let field = self
            .attributes
            .bytes
            .get(self.name_at..end)
            .unwrap_or_default();
        let mut at = 0;
        crate::core::wire::next_field(field, &mut at).map_or_else(String::new, |(_, body)| {
            String::from_utf8_lossy(body).into_owned()
        })
    }

    /// Empties the record for another span, its buffers' capacity kept unless a big span made
    /// them big: a recycled record should not hold one long value's memory for good.
    #[inline]
    fn clear(&mut self) {
        self.attributes.clear();
        self.name_at = 0;
        if self.extras {
            self.clear_extras();
        }
        // The other lists grow only with extras.
        if self.attributes.bytes.capacity() > RECYCLED_BYTES {
            self.shrink();
        }
    }

    #[cold]
    #[inline(never)]
    fn clear_extras(&mut self) {
        self.events.clear();
        self.event_count = 0;
        self.dropped_events = 0;
        self.links.clear();
        self.link_count = 0;
        self.dropped_links = 0;
        self.status = Status::Unset;
        self.extras = false;
        self.shrink();
    }

    /// Lets go of the buffers that a big span made bigger than a recycled record keeps.
    #[cold]
    #[inline(never)]
    fn shrink(&mut self) {
        for bytes in [
            &mut self.attributes.bytes,
            &mut self.events,
            &mut self.links,
            &mut self.event_attributes.bytes,
        ] {
            if bytes.capacity() > RECYCLED_BYTES {
                *bytes = Vec::new();
            }
        }
    }

    #[inline]
    pub(crate) fn set_attribute(&mut self, key: &Str, value: &Value, limits: SpanLimits) {
        self.attributes.set(
            SPAN_ATTRIBUTES,
            key,
            value,
            limits.max_attributes,
            limits.max_value_chars,
        );
    }

    /// [`set_attribute`](Self::set_attribute) for a literal key and a scalar value, a string
    /// already cut to the limit ([`cut`](crate::core::wire::cut)).
    #[inline(always)]
    pub(crate) fn set_scalar_attribute(
        &mut self,
        key: &'static str,
        member: OneOf<'static>,
        limits: SpanLimits,
    ) {
        self.attributes
            .set_literal(key, member, limits.max_attributes);
    }

    /// Applies a later status (see [`Status::update`]).
    pub(crate) fn set_status(&mut self, status: Status) {
        self.status.update(status);
        self.extras |= !matches!(self.status, Status::Unset);
    }

    pub(crate) fn add_event(&mut self, name: &Str, attributes: &[KeyValue], limits: SpanLimits) {
        self.extras = true;
        if self.event_count >= limits.max_events {
            self.dropped_events = self.dropped_events.saturating_add(1);
            return;
        }
        let kept = &mut self.event_attributes;
        kept.clear();
        for kv in attributes {
            kept.set(
                EVENT_ATTRIBUTES,
                &kv.key,
                &kv.value,
                limits.max_attributes_per_event,
                limits.max_value_chars,
            );
        }
        super::encode::event_entry(&mut self.events, now_unix_nanos(), name, kept);
        self.event_count += 1;
    }

    pub(crate) fn add_link(
        &mut self,
        context: &SpanContext,
        attributes: &[KeyValue],
        limits: SpanLimits,
    ) {
        self.extras = true;
        if self.link_count >= limits.max_links || !context.is_valid() {
            self.dropped_links = self.dropped_links.saturating_add(1);
            return;
        }
        super::encode::link_entry(&mut self.links, context, attributes);
        self.link_count += 1;
    }

    /// Ends the span now and hands it to the installed pipeline. Once: the record is done.
    #[inline(always)]
    pub(crate) fn end_now(&mut self) {
        let end = now_unix_nanos().max(self.start_unix_nanos);
        super::span::submit(self, end);
    }
}

pub(crate) struct SharedRecord {
    lock: AtomicBool,
    /// The thread key (`context::thread_key`) of the thread that started the span.
    origin: u64,
    limits: SpanLimits,
    /// The install generation `limits` were read in ([`NO_GENERATION`] when given): a recycled
    /// record whose generation is still current keeps them, unread.
    generation: u64,
    /// `None` once the span has ended.
    data: UnsafeCell<Option<Recording>>,
    /// Counted in [`tests::MARKED_LIVE`] (made with [`tests::MARK`] limits).
    #[cfg(test)]
    marked: bool,
}

#[cfg(test)]
impl Drop for SharedRecord {
    fn drop(&mut self) {
        if self.marked {
            tests::MARKED_LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl SharedRecord {
    /// The installed pipeline's span limits, read in `generation` (or a later one, which makes
    /// the next record read them again).
    #[cold]
    #[inline(never)]
    fn read_limits(&mut self, generation: u64) {
        self.limits = crate::core::handoff::span_limits();
        self.generation = generation;
    }
}

/// Held while the record is touched off its origin thread or through the frame.
struct Locked<'a>(&'a AtomicBool);

impl SharedRecord {
    fn lock(&self) -> Locked<'_> {
        while self
            .lock
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            // Contention needs the handle on one thread and deep code on the origin thread
            // touching the same span at the same instant: rare, and a few instructions long.
            std::thread::yield_now();
        }
        Locked(&self.lock)
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The handle's owning pointer to a record.
pub(crate) struct RecordBox(NonNull<SharedRecord>);

// SAFETY: the record's data is only touched under the rules in the module doc: from a thread
// other than the origin thread only under the lock; the other fields are immutable or atomic.
unsafe impl Send for RecordBox {}

/// Records a thread keeps for its next spans, so a sampled span allocates nothing once the
/// thread is warm (the record and its attribute list are reused, not freed and allocated): the
/// one spare in the context block first (`context::keep_spare`), then up to this many here.
const RECYCLED_PER_THREAD: usize = 32;

thread_local! {
    // Boxes, not records: what is reused is the allocation a handle points to.
    #[allow(clippy::vec_box)]
    static RECYCLED: RefCell<Vec<Box<SharedRecord>>> = const { RefCell::new(Vec::new()) };
}

/// No install generation: limits given, not read from a pipeline.
const NO_GENERATION: u64 = u64::MAX;

impl RecordBox {
    /// A record started by `start`, in place: in a recycled record (its data emptied, its lists'
    /// capacity kept) when this thread has one, so the span's data is never moved. Its limits
    /// are `limits`, or with `None` the installed pipeline's (read once per record and install).
    #[inline(always)]
    pub(crate) fn new(
        limits: Option<SpanLimits>,
        origin: u64,
        start: impl FnOnce(&mut Recording),
    ) -> Self {
        let recycled = match super::context::take_spare() {
            // SAFETY: made by `Box::into_raw` (in `end_and_recycle`), and `take_spare` gave the
            // one owner's pointer to us.
            Some(spare) => Some(unsafe { Box::from_raw(spare.as_ptr()) }),
            None => Self::take_recycled(),
        };
        let mut record = recycled.unwrap_or_else(|| Self::allocate(limits));
        record.origin = origin;
        match limits {
            Some(limits) => {
                record.limits = limits;
                record.generation = NO_GENERATION;
            }
            None => {
                let generation = crate::core::generation();
                if record.generation != generation {
                    record.read_limits(generation);
                }
            }
        }
        start(record.data.get_mut().get_or_insert_with(Recording::empty));
        RecordBox(NonNull::from(Box::leak(record)))
    }

    #[cold]
    #[inline(never)]
    fn allocate(limits: Option<SpanLimits>) -> Box<SharedRecord> {
        #[cfg(test)]
        let marked = limits.is_some_and(|l| l.max_links == tests::MARK);
        #[cfg(test)]
        if marked {
            tests::MARKED_LIVE.fetch_add(1, Ordering::Relaxed);
        }
        Box::new(SharedRecord {
            lock: AtomicBool::new(false),
            origin: 0,
            limits: limits.unwrap_or_default(),
            generation: NO_GENERATION,
            data: UnsafeCell::new(None),
            #[cfg(test)]
            marked,
        })
    }

    #[cold]
    #[inline(never)]
    fn take_recycled() -> Option<Box<SharedRecord>> {
        RECYCLED
            .try_with(|r| r.try_borrow_mut().ok().and_then(|mut r| r.pop()))
            .ok()
            .flatten()
    }

    /// Where the frame of the origin thread keeps it.
    pub(crate) fn pointer(&self) -> NonNull<SharedRecord> {
        self.0
    }

    /// Runs `f` on the record if the span has not ended. Inline: each setter's out-of-line
    /// part is this, and the value it sets is then moved once less.
    #[inline]
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut Recording, SpanLimits) -> R) -> Option<R> {
        // SAFETY: alive until `free` (which takes `self`); shared fields are immutable/atomic.
        let record = unsafe { self.0.as_ref() };
        let _locked = (record.origin != super::context::thread_key()).then(|| record.lock());
        // SAFETY: rule 1: on the origin thread nobody else can touch it now (the frame is only
        // used by code on this thread, which is not running); elsewhere we hold the lock.
        let data = unsafe { &mut *record.data.get() };
        data.as_mut().map(|d| f(d, record.limits))
    }

    /// Sets a literal attribute in the usual case, on the thread that started the span (where
    /// no lock is taken): returns whether it did, or found the span ended. Calls nothing, so a
    /// setter made of this and a call to its general path saves few registers.
    #[inline(always)]
    pub(crate) fn try_set_literal_here(
        &mut self,
        key: &'static str,
        member: OneOf<'static>,
    ) -> bool {
        // SAFETY: as in `with`.
        let record = unsafe { self.0.as_ref() };
        // A thread with no key yet (0) may be any thread: the general path finds out.
        let here = super::context::thread_key_if_known();
        if here == 0 || record.origin != here {
            return false;
        }
        // SAFETY: as in `with`: on the origin thread nobody else can touch the record now.
        let Some(data) = (unsafe { &mut *record.data.get() }) else {
            return true;
        };
        let limits = record.limits;
        if let OneOf::Str(value) = member {
            // Possibly longer than the limit's characters (never fewer than its bytes).
            if limits
                .max_value_chars
                .is_some_and(|max| value.len() > max as usize)
            {
                return false;
            }
        }
        data.attributes
            .try_set_literal(key, member, limits.max_attributes)
    }

    /// Ends the span: takes its data out (later accesses, through the frame too, see it ended).
    pub(crate) fn take(&mut self) -> Option<Recording> {
        // SAFETY: as in `with`.
        let record = unsafe { self.0.as_ref() };
        let _locked = (record.origin != super::context::thread_key()).then(|| record.lock());
        // SAFETY: as in `with`.
        unsafe { &mut *record.data.get() }.take()
    }

    /// Frees the record.
    ///
    /// # Safety
    /// No frame may reach it any more (rule 2 of the module doc).
    pub(crate) unsafe fn free(self) {
        // SAFETY: as the caller promises.
        drop(unsafe { self.into_box() });
    }

    /// Ends the span in place with `end` (given its data, unless it already ended), then keeps
    /// the record for this thread's next span, its data emptied (its lists keep their capacity).
    ///
    /// # Safety
    /// No frame may reach it any more (rule 2 of the module doc).
    #[inline]
    pub(crate) unsafe fn end_and_recycle(self, end: impl FnOnce(&mut Recording)) {
        // SAFETY: as the caller promises.
        let mut record = unsafe { self.into_box() };
        let Some(data) = record.data.get_mut() else {
            return;
        };
        end(data);
        data.clear();
        let record = NonNull::from(Box::leak(record));
        if let Some(refused) = super::context::keep_spare(record) {
            // SAFETY: made by `Box::leak` just above, and given back by `keep_spare`.
            Self::recycle(unsafe { Box::from_raw(refused.as_ptr()) });
        }
    }

    /// Keeps `record` among this thread's recycled records, or frees it when they are many.
    #[cold]
    #[inline(never)]
    fn recycle(record: Box<SharedRecord>) {
        let _ = RECYCLED.try_with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                if r.len() < RECYCLED_PER_THREAD {
                    r.push(record);
                }
            }
        });
    }

    /// # Safety
    /// No frame may reach the record any more (rule 2 of the module doc).
    unsafe fn into_box(self) -> Box<SharedRecord> {
        // SAFETY: made by `Box::leak` in `new` and owned by this handle alone (consumed here),
        // so this is the one `Box` for it.
        unsafe { Box::from_raw(self.0.as_ptr()) }
    }
}

/// Frees a record kept by [`super::context::keep_spare`] (at the thread's teardown).
///
/// # Safety
/// `record` was made by `Box::into_raw` (or `Box::leak`) and nobody else owns it.
pub(crate) unsafe fn free_spare(record: NonNull<SharedRecord>) {
    // SAFETY: as the caller promises.
    drop(unsafe { Box::from_raw(record.as_ptr()) });
}

/// Runs `f` on the record a frame points to, if its span has not ended.
///
/// # Safety
/// The record must not have been freed: the frame that holds `pointer` is not marked ended
/// (rule 2 of the module doc).
pub(crate) unsafe fn with_frame_record<R>(
    pointer: NonNull<SharedRecord>,
    f: impl FnOnce(&mut Recording, SpanLimits) -> R,
) -> Option<R> {
    // SAFETY: alive, per the caller.
    let record = unsafe { pointer.as_ref() };
    let _locked = record.lock();
    // SAFETY: under the lock; the handle on the origin thread, which skips the lock, is not
    // running while this code (on the origin thread) is.
    let data = unsafe { &mut *record.data.get() };
    data.as_mut().map(|d| f(d, record.limits))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// The link limit that marks the records one test counts (no other test uses it).
    pub(crate) const MARK: u32 = 0x5eed;
    /// Marked records alive.
    pub(crate) static MARKED_LIVE: AtomicUsize = AtomicUsize::new(0);

    /// The spare record sits in a thread-local that has no destructor of its own: the thread's
    /// teardown must free it, as the recycled list's destructor frees the others.
    #[test]
    fn a_thread_frees_the_records_it_kept_when_it_ends() {
        let limits = Some(SpanLimits::default().max_links(MARK));
        std::thread::spawn(move || {
            let origin = super::super::context::thread_key();
            let first = RecordBox::new(limits, origin, |_| {});
            let second = RecordBox::new(limits, origin, |_| {});
            let third = RecordBox::new(limits, origin, |_| {});
            let kept = first.pointer();
            // SAFETY (each): never entered in a frame.
            unsafe { first.end_and_recycle(|_| {}) };
            let again = RecordBox::new(limits, origin, |_| {});
            assert_eq!(again.pointer(), kept, "the spare is taken first");
            unsafe { again.end_and_recycle(|_| {}) };
            unsafe { second.end_and_recycle(|_| {}) };
            unsafe { third.end_and_recycle(|_| {}) };
            assert_eq!(MARKED_LIVE.load(Ordering::Relaxed), 3, "all kept");
        })
        .join()
        .unwrap();
        assert_eq!(
            MARKED_LIVE.load(Ordering::Relaxed),
            0,
            "the spare and the recycled records are freed with their thread"
        );
    }

    /// A record started where the thread had no key (0: during its teardown) is never taken
    /// as started on another thread that has no key yet either: that thread sets its literals
    /// through the general path, which gives it a key and then takes the lock.
    #[test]
    fn a_thread_without_a_key_never_takes_a_record_as_its_own() {
        let limits = SpanLimits::default();
        let mut record = RecordBox::new(Some(limits), 0, |data| {
            data.start(
                "s",
                SpanKind::Internal,
                &Ids::default(),
                SpanId::INVALID,
                false,
                None,
            );
            // Room for the literal: only the thread is in question.
            data.attributes.bytes.reserve(1024);
        });
        let record = std::thread::spawn(move || {
            assert_eq!(
                super::super::context::thread_key_if_known(),
                0,
                "a fresh thread"
            );
            assert!(!record.try_set_literal_here("k", OneOf::Int(1)));
            record
        })
        .join()
        .unwrap();
        // SAFETY: never entered in a frame.
        unsafe { record.free() };
    }

    #[test]
    fn a_recycled_record_keeps_no_big_buffer() {
        let mut r = Recording::empty();
        let limits = SpanLimits::default();
        r.set_attribute(
            &"big".into(),
            &"x".repeat(10 * RECYCLED_BYTES).into(),
            limits,
        );
        r.add_event(
            &"e".into(),
            &[KeyValue::new("big", "y".repeat(10_000))],
            limits,
        );
        r.clear();
        assert!(r.attributes.bytes.capacity() <= RECYCLED_BYTES);
        assert!(r.events.capacity() <= RECYCLED_BYTES);
        assert!(r.event_attributes.bytes.capacity() <= RECYCLED_BYTES);
        r.set_attribute(&"small".into(), &1i64.into(), limits);
        r.clear();
        assert!(r.attributes.bytes.capacity() > 0, "a small buffer is kept");
    }
}
