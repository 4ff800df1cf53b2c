//! Protobuf wire format, written straight into a reusable buffer.
//!
//! Spans and log records are encoded from our own values at hand-off, on the recording thread,
//! without building prost messages first: no per-field `String`, no per-attribute `Vec`. Fields
//! at their proto3 default (0, empty) are left out, as prost leaves them out.

use crate::attributes::{KeyValue, Value};

/// Wire type of varint fields (`uint32`, `int64`, `bool`, enums).
const VARINT: u32 = 0;
/// Wire type of `fixed64` and `double` fields.
pub(crate) const FIXED64: u32 = 1;
/// Wire type of strings, bytes and nested messages.
pub(crate) const LEN: u32 = 2;
/// Wire type of `fixed32` fields.
pub(crate) const FIXED32: u32 = 5;

/// The scalar members of a `oneof` we write (`AnyValue.value`).
#[derive(Clone, Copy)]
pub(crate) enum OneOf<'a> {
    Str(&'a str),
    Bool(bool),
    Int(i64),
    Double(f64),
}

/// A protobuf message under construction.
pub(crate) struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Self {
        Writer { buf }
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.buf.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.buf.push(value as u8);
    }

    #[inline(always)]
    pub(crate) fn tag(&mut self, field: u32, wire_type: u32) {
        self.varint(u64::from(field << 3 | wire_type));
    }

    /// A `uint32`/`uint64`/enum field.
    #[inline(always)]
    pub(crate) fn uint(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.tag(field, VARINT);
            self.varint(value);
        }
    }

    #[inline(always)]
    pub(crate) fn fixed64(&mut self, field: u32, value: u64) {
        if value != 0 {
            self.tag(field, FIXED64);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    #[inline(always)]
    pub(crate) fn fixed32(&mut self, field: u32, value: u32) {
        if value != 0 {
            self.tag(field, FIXED32);
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    #[inline(always)]
    pub(crate) fn bytes(&mut self, field: u32, value: &[u8]) {
        if !value.is_empty() {
            self.tag(field, LEN);
            self.varint(value.len() as u64);
            self.buf.extend_from_slice(value);
        }
    }

    #[inline(always)]
    pub(crate) fn str(&mut self, field: u32, value: &str) {
        self.bytes(field, value.as_bytes());
    }

    /// A nested message, written by `body`. Written even when empty: presence is meaningful
    /// for message fields (an `AnyValue` inside an array, say).
    #[inline(always)]
    pub(crate) fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer<'_>)) {
        self.message_sized(field, 1, body);
    }

    /// [`message`](Self::message), for a body whose length is expected to take `length_bytes`
    /// bytes as a varint (1 under 128 bytes, 2 under 16 KiB). The length comes first on the
    /// wire but is known only afterwards: that many bytes are kept for it, and the body is
    /// shifted only when the guess was wrong.
    #[inline(always)]
    pub(crate) fn message_sized(
        &mut self,
        field: u32,
        length_bytes: usize,
        body: impl FnOnce(&mut Writer<'_>),
    ) {
        self.tag(field, LEN);
        let length_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 10][..length_bytes]);
        let body_at = self.buf.len();
        body(&mut Writer { buf: self.buf });
        let length = self.buf.len() - body_at;
        if length_bytes == 1 && length < 0x80 {
            self.buf[length_at] = length as u8;
            return;
        }
        if length_bytes == 2 && (0x80..0x4000).contains(&length) {
            self.buf[length_at] = (length as u8) | 0x80;
            self.buf[length_at + 1] = (length >> 7) as u8;
            return;
        }
        self.place_length(length_at, length_bytes, length);
    }

    /// Writes the varint `length` over the `reserved` bytes at `length_at`, shifting the body
    /// after them when it takes another number of bytes.
    #[inline(never)]
    fn place_length(&mut self, length_at: usize, reserved: usize, length: usize) {
        let (varint, used) = varint_bytes(length as u64);
        let body_at = length_at + reserved;
        let end = self.buf.len();
        if used < reserved {
            self.buf.copy_within(body_at..end, length_at + used);
            self.buf.truncate(end - (reserved - used));
        } else if used > reserved {
            self.buf.resize(end + (used - reserved), 0);
            self.buf.copy_within(body_at..end, length_at + used);
        }
        self.buf[length_at..length_at + used].copy_from_slice(&varint[..used]);
    }

    /// A member of a `oneof`: written whatever its value, since which member is set is itself
    /// information (an empty string, a zero, `false`).
    #[inline(always)]
    pub(crate) fn oneof(&mut self, field: u32, value: OneOf<'_>) {
        match value {
            OneOf::Str(s) => {
                self.tag(field, LEN);
                self.varint(s.len() as u64);
                self.buf.extend_from_slice(s.as_bytes());
            }
            OneOf::Bool(b) => {
                self.tag(field, VARINT);
                self.varint(u64::from(b));
            }
            // int64: negative numbers take ten bytes, as protobuf specifies.
            OneOf::Int(i) => {
                self.tag(field, VARINT);
                self.varint(i as u64);
            }
            OneOf::Double(f) => {
                self.tag(field, FIXED64);
                self.buf.extend_from_slice(&f.to_le_bytes());
            }
        }
    }

    /// Bytes that already are an encoded message, as field `field`.
    #[inline(always)]
    pub(crate) fn encoded_message(&mut self, field: u32, encoded: &[u8]) {
        self.tag(field, LEN);
        self.varint(encoded.len() as u64);
        self.buf.extend_from_slice(encoded);
    }

    /// Bytes that already are whole encoded fields of this message.
    #[inline(always)]
    pub(crate) fn raw(&mut self, fields: &[u8]) {
        self.buf.extend_from_slice(fields);
    }
}

/// Room made once at the end of a buffer, written front to back, piece after piece: each write
/// checks a bound held in a register instead of reloading the vector's length and capacity and
/// storing its length. What was written joins the buffer when the tail is dropped. A write past
/// the room panics (a wrong length computation; the oracle tests check every length).
pub(crate) struct Tail<'a> {
    buf: &'a mut Vec<u8>,
    /// The buffer's end when the room was made, where the room starts.
    base: *mut u8,
    len: usize,
    room: usize,
    at: usize,
}

impl<'a> Tail<'a> {
    #[inline(always)]
    pub(crate) fn new(buf: &'a mut Vec<u8>, room: usize) -> Self {
        buf.reserve(room);
        let len = buf.len();
        // SAFETY: `len` is within the allocation (at most its end). `as_mut_ptr` makes no
        // reference to the elements, so the pointer stays valid while `buf` is not
        // reallocated, which nothing does until this tail is gone (`set_len` does not).
        let base = unsafe { buf.as_mut_ptr().add(len) };
        Tail {
            buf,
            base,
            len,
            room,
            at: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        assert!(
            bytes.len() <= self.room - self.at,
            "wire: write past the room"
        );
        // SAFETY: `at + bytes.len() <= room`, and the `room` bytes after `base` are reserved
        // capacity of `buf`, which `bytes` (borrowed elsewhere) cannot overlap.
        unsafe { copy_short(bytes, self.base.add(self.at)) };
        self.at += bytes.len();
    }

    #[inline(always)]
    pub(crate) fn byte(&mut self, byte: u8) {
        self.put(&[byte]);
    }

    #[inline(always)]
    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.byte((value as u8) | 0x80);
            value >>= 7;
        }
        self.byte(value as u8);
    }

    /// A length-delimited field in a field under 16, left out when empty (as
    /// [`Writer::bytes`]).
    #[inline(always)]
    pub(crate) fn field_bytes(&mut self, field: u32, value: &[u8]) {
        debug_assert!(field < 16, "a one-byte tag");
        if !value.is_empty() {
            self.byte((field << 3 | LEN) as u8);
            self.varint(value.len() as u64);
            self.put(value);
        }
    }

    /// A varint field in a field under 16, left out when 0 (as [`Writer::uint`]).
    #[inline(always)]
    pub(crate) fn uint(&mut self, field: u32, value: u64) {
        debug_assert!(field < 16, "a one-byte tag");
        if value != 0 {
            self.byte((field << 3 | VARINT) as u8);
            self.varint(value);
        }
    }
}

/// [`Tail`] without a bound checked per write, for a writer whose pieces' lengths are summed up
/// front in the same function: room made once for `room` bytes, written front to back, joining
/// the buffer when dropped. A debug build checks that the pieces filled the room exactly.
pub(crate) struct Exact<'a> {
    buf: &'a mut Vec<u8>,
    /// Where the next write goes.
    at: *mut u8,
    /// The buffer's end when the room was made.
    #[cfg(debug_assertions)]
    base: *mut u8,
    len: usize,
    room: usize,
}

impl<'a> Exact<'a> {
    /// # Safety
    /// The writes made through it total exactly `room` bytes (the room joins the buffer whole
    /// when the writer is dropped, whatever was written).
    #[inline(always)]
    pub(crate) unsafe fn new(buf: &'a mut Vec<u8>, room: usize) -> Self {
        buf.reserve(room);
        let len = buf.len();
        // SAFETY: as in `Tail::new`: `len` is within the allocation, which nothing reallocates
        // while this writer holds the buffer.
        let base = unsafe { buf.as_mut_ptr().add(len) };
        Exact {
            buf,
            at: base,
            #[cfg(debug_assertions)]
            base,
            len,
            room,
        }
    }

    /// Bytes written so far.
    #[cfg(debug_assertions)]
    #[inline(always)]
    fn written(&self) -> usize {
        self.at as usize - self.base as usize
    }

    #[inline(always)]
    pub(crate) fn put(&mut self, bytes: &[u8]) {
        #[cfg(debug_assertions)]
        assert!(
            self.written() + bytes.len() <= self.room,
            "wire: write past the room"
        );
        // SAFETY: the writes total the reserved `room` bytes after `base` (`new`'s contract),
        // which `bytes` (borrowed elsewhere) cannot overlap.
        unsafe {
            copy_short(bytes, self.at);
            self.at = self.at.add(bytes.len());
        }
    }

    /// The first `n` bytes of `bytes`, written as all of them (one fixed-size store): the room
    /// must have space for all `N` even though only `n` count, and the next write (or the end)
    /// overwrites or drops the others.
    #[inline(always)]
    pub(crate) fn put_first<const N: usize>(&mut self, bytes: [u8; N], n: usize) {
        debug_assert!(n <= N);
        #[cfg(debug_assertions)]
        assert!(self.written() + N <= self.room, "wire: write past the room");
        // SAFETY: as in `put`, for the `N` bytes stored (within the room, as the caller
        // promises); only `n` are counted as written.
        unsafe {
            self.at.cast::<[u8; N]>().write_unaligned(bytes);
            self.at = self.at.add(n);
        }
    }
}

impl Drop for Exact<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // A debug build checks the contract, and a write past the room that panicked there
        // keeps only what was written.
        #[cfg(debug_assertions)]
        let written = if std::thread::panicking() {
            self.written()
        } else {
            assert_eq!(
                self.written(),
                self.room,
                "wire: the pieces fill the room exactly"
            );
            self.room
        };
        #[cfg(not(debug_assertions))]
        let written = self.room;
        // SAFETY: the `room` bytes after the old end were written front to back with no gap
        // (`new`'s contract; in a debug build, what was written when a check panicked), so
        // they are initialized, and they were reserved.
        unsafe { self.buf.set_len(self.len + written) };
    }
}

/// Copies `bytes` to `dst`. A copy of up to 32 bytes (a key, a short value, a name) is two
/// overlapping moves of the widest size that fits, inline: a call to `memcpy` costs more than
/// such a copy. Longer ones are `memcpy`'s.
///
/// # Safety
/// `dst` must be valid for `bytes.len()` writes and not overlap `bytes`.
#[inline(always)]
unsafe fn copy_short(bytes: &[u8], dst: *mut u8) {
    let n = bytes.len();
    let src = bytes.as_ptr();
    // SAFETY (all arms): every read is inside `bytes` (from `src` up to `src + n`) and every
    // write inside the `n` bytes at `dst`, as the caller promises; the two moves of an arm
    // overlap when `n` is under twice their width, writing the same bytes twice.
    unsafe {
        if n > 16 {
            if n > 32 {
                std::ptr::copy_nonoverlapping(src, dst, n);
            } else {
                let head = src.cast::<[u8; 16]>().read_unaligned();
                let tail = src.add(n - 16).cast::<[u8; 16]>().read_unaligned();
                dst.cast::<[u8; 16]>().write_unaligned(head);
                dst.add(n - 16).cast::<[u8; 16]>().write_unaligned(tail);
            }
        } else if n >= 8 {
            let head = src.cast::<u64>().read_unaligned();
            let tail = src.add(n - 8).cast::<u64>().read_unaligned();
            dst.cast::<u64>().write_unaligned(head);
            dst.add(n - 8).cast::<u64>().write_unaligned(tail);
        } else if n >= 4 {
            let head = src.cast::<u32>().read_unaligned();
            let tail = src.add(n - 4).cast::<u32>().read_unaligned();
            dst.cast::<u32>().write_unaligned(head);
            dst.add(n - 4).cast::<u32>().write_unaligned(tail);
        } else if n > 0 {
            // 1 to 3 bytes: the first, the middle and the last (some the same byte).
            let (first, middle, last) = (*src, *src.add(n / 2), *src.add(n - 1));
            *dst = first;
            *dst.add(n / 2) = middle;
            *dst.add(n - 1) = last;
        }
    }
}

impl Drop for Tail<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: writes go front to back with no gap (each starts at `at` and moves it past
        // what it wrote), so the first `at` bytes after the old end are initialized, and
        // `at <= room`, which was reserved.
        unsafe { self.buf.set_len(self.len + self.at) };
    }
}

/// `s` cut to at most `max_chars` characters (`None`: no limit). A string of no more bytes than
/// that is never cut, a character taking at least one byte: the common case reads no text.
#[inline]
pub(crate) fn cut(s: &str, max_chars: Option<u32>) -> &str {
    match max_chars {
        Some(max) if s.len() > max as usize => match s.char_indices().nth(max as usize) {
            Some((end, _)) => &s[..end],
            None => s,
        },
        _ => s,
    }
}

/// The `AnyValue` field number of a scalar member.
#[inline(always)]
fn member_field(member: OneOf<'_>) -> u32 {
    match member {
        OneOf::Str(_) => 1,
        OneOf::Bool(_) => 2,
        OneOf::Int(_) => 3,
        OneOf::Double(_) => 4,
    }
}

/// Writes `value` as a varint at the start of `out` and returns how many bytes it took: for
/// writers that place a varint into room they already have (a length written after its body, a
/// fixed-size piece). `out` must have room for it (10 bytes always do).
#[inline(always)]
pub(crate) fn put_varint(out: &mut [u8], mut value: u64) -> usize {
    let mut at = 0;
    while value >= 0x80 {
        out[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
    at + 1
}

/// `value` as a varint, and how many bytes it takes.
#[inline(never)]
pub(crate) fn varint_bytes(value: u64) -> ([u8; 10], usize) {
    let mut bytes = [0; 10];
    let len = put_varint(&mut bytes, value);
    (bytes, len)
}

/// Bytes a varint takes: prost's own formula, a multiply and a shift where dividing the bit
/// count by 7 costs several instructions more (four times per attribute).
#[inline(always)]
pub(crate) fn varint_len(value: u64) -> usize {
    prost::encoding::encoded_len_varint(value)
}

/// Calls `f` with each member of an array value, strings cut to `max_chars`; nothing for a
/// scalar.
fn each_member(value: &Value, max_chars: Option<u32>, mut f: impl FnMut(OneOf<'_>)) {
    match value {
        Value::StrArray(v) => v
            .iter()
            .for_each(|s| f(OneOf::Str(cut(s.as_str(), max_chars)))),
        Value::BoolArray(v) => v.iter().for_each(|b| f(OneOf::Bool(*b))),
        Value::I64Array(v) => v.iter().for_each(|i| f(OneOf::Int(*i))),
        Value::F64Array(v) => v.iter().for_each(|x| f(OneOf::Double(*x))),
        Value::Str(_) | Value::Bool(_) | Value::I64(_) | Value::F64(_) => {}
    }
}

/// The `AnyValue` body length of a scalar member.
#[inline(always)]
fn scalar_len(member: OneOf<'_>) -> usize {
    match member {
        OneOf::Str(s) => 1 + varint_len(s.len() as u64) + s.len(),
        OneOf::Bool(_) => 2,
        OneOf::Int(i) => 1 + varint_len(i as u64),
        OneOf::Double(_) => 9,
    }
}

/// The `ArrayValue` body length of an array value: each member an `AnyValue` in field 1.
fn array_len(value: &Value, max_chars: Option<u32>) -> usize {
    let mut len = 0;
    each_member(value, max_chars, |m| {
        let member = scalar_len(m);
        len += 1 + varint_len(member as u64) + member;
    });
    len
}

/// Each of `attributes` as a `KeyValue` entry in field `field`, as given (no limit applied).
pub(crate) fn key_values(w: &mut Writer<'_>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        key_value_entry(w.buf, field, kv.key.as_str(), &kv.value, None);
    }
}

/// Appends one whole `KeyValue` entry in field `field` (tag, length, body) for `key` and
/// `value`, strings cut to `max_chars`. Every length is computed first, so the entry is written
/// in one pass into room reserved once. Returns where the key's bytes start in the entry.
#[inline(always)]
pub(crate) fn key_value_entry(
    buf: &mut Vec<u8>,
    field: u32,
    key: &str,
    value: &Value,
    max_chars: Option<u32>,
) -> usize {
    // One match, each arm with its own copy of the scalar path: the value's type then picks
    // the code once, not again at each of its lengths and writes.
    match value {
        Value::Str(s) => scalar_entry(buf, field, key, OneOf::Str(cut(s.as_str(), max_chars))),
        Value::Bool(b) => scalar_entry(buf, field, key, OneOf::Bool(*b)),
        Value::I64(i) => scalar_entry(buf, field, key, OneOf::Int(*i)),
        Value::F64(f) => scalar_entry(buf, field, key, OneOf::Double(*f)),
        _ => array_entry(buf, field, key, value, max_chars),
    }
}

/// A `KeyValue` entry with a scalar value in field `field`, its lengths computed up front.
#[inline(always)]
pub(crate) fn scalar_key_value(w: &mut Writer<'_>, field: u32, key: &str, member: OneOf<'_>) {
    scalar_entry(w.buf, field, key, member);
}

/// The bytes [`scalar_key_value`] writes: the entry's tag and length, and its body.
pub(crate) fn scalar_entry_len(field: u32, key: &str, member: OneOf<'_>) -> usize {
    let (head, body_len) = entry_lengths(field, key, scalar_len(member));
    head + body_len
}

/// The lengths of an entry whose `AnyValue` body takes `value_len` bytes: of its tag and length
/// together, and of its body.
fn entry_lengths(field: u32, key: &str, value_len: usize) -> (usize, usize) {
    let key_len = if key.is_empty() {
        0
    } else {
        1 + varint_len(key.len() as u64) + key.len()
    };
    let body_len = key_len + 1 + varint_len(value_len as u64) + value_len;
    let head = varint_len(u64::from(field << 3 | LEN)) + varint_len(body_len as u64);
    (head, body_len)
}

/// [`key_value_entry`] for a scalar value; returns where the key's bytes start.
#[inline(always)]
fn scalar_entry(buf: &mut Vec<u8>, field: u32, key: &str, member: OneOf<'_>) -> usize {
    // Under 128 bytes every length inside takes one byte, so each length is a plain sum (a
    // longer string makes the sum too big for this path, whatever its length's width).
    let key_len = if key.is_empty() { 0 } else { 2 + key.len() };
    let value_len = match member {
        OneOf::Str(s) => 2 + s.len(),
        other => scalar_len(other),
    };
    let body_len = key_len + 2 + value_len;
    if body_len < 0x80 && field < 16 {
        short_key_value(buf, field, key, member, body_len, value_len);
        return 4;
    }
    long_scalar_entry(buf, field, key, member)
}

/// The head of an entry whose `AnyValue` body takes `value_len` bytes: room reserved for the
/// whole entry, then its tag and length, the key, the value's tag and length. Returns where the
/// key's bytes start.
fn entry_head(buf: &mut Vec<u8>, field: u32, key: &str, value_len: usize) -> usize {
    let (head, body_len) = entry_lengths(field, key, value_len);
    buf.reserve(head + body_len);
    let mut w = Writer::new(buf);
    w.tag(field, LEN);
    w.varint(body_len as u64);
    w.str(1, key);
    w.tag(2, LEN);
    w.varint(value_len as u64);
    head + 1 + varint_len(key.len() as u64)
}

/// [`scalar_entry`] for an entry of 128 bytes or more (or in a field from 16).
#[inline(never)]
fn long_scalar_entry(buf: &mut Vec<u8>, field: u32, key: &str, member: OneOf<'_>) -> usize {
    let key_at = entry_head(buf, field, key, scalar_len(member));
    Writer::new(buf).oneof(member_field(member), member);
    key_at
}

/// [`key_value_entry`] for an array value.
#[inline(never)]
fn array_entry(
    buf: &mut Vec<u8>,
    field: u32,
    key: &str,
    value: &Value,
    max_chars: Option<u32>,
) -> usize {
    let members = array_len(value, max_chars);
    let key_at = entry_head(buf, field, key, 1 + varint_len(members as u64) + members);
    let mut w = Writer::new(buf);
    w.tag(5, LEN);
    w.varint(members as u64);
    each_member(value, max_chars, |m| {
        w.tag(1, LEN);
        w.varint(scalar_len(m) as u64);
        w.oneof(member_field(m), m);
    });
    key_at
}

/// A `KeyValue` entry whose body is under 128 bytes, in a field under 16: every tag and length
/// then takes one byte, so the entry is four pieces, written into room made once with no bound
/// checked per piece: its head (tag, length, the key's tag and length), the key, the value's
/// head (tag, length, the member's tag, and the member itself unless a string), the string.
#[inline(always)]
fn short_key_value(
    buf: &mut Vec<u8>,
    field: u32,
    key: &str,
    member: OneOf<'_>,
    body_len: usize,
    value_len: usize,
) {
    const KEY: u8 = 1 << 3 | LEN as u8;
    const VALUE: u8 = 2 << 3 | LEN as u8;
    let entry = (field << 3 | LEN) as u8;
    let total = 2 + body_len;
    let (body_len, value_len) = (body_len as u8, value_len as u8);
    let head = [entry, body_len, KEY, key.len() as u8];
    // An empty key is left out (proto3 default): the head is then the entry's tag and length.
    let head_len = if key.is_empty() { 2 } else { 4 };
    let mut value_head = [0u8; 16];
    value_head[0] = VALUE;
    value_head[1] = value_len;
    let (value_head_len, string) = match member {
        OneOf::Str(s) => {
            value_head[2] = 1 << 3 | LEN as u8;
            value_head[3] = s.len() as u8;
            (4, s.as_bytes())
        }
        OneOf::Bool(b) => {
            value_head[2] = 2 << 3;
            value_head[3] = u8::from(b);
            (4, &[][..])
        }
        OneOf::Int(i) => {
            value_head[2] = 3 << 3;
            (3 + put_varint(&mut value_head[3..], i as u64), &[][..])
        }
        OneOf::Double(f) => {
            value_head[2] = 4 << 3 | FIXED64 as u8;
            value_head[3..11].copy_from_slice(&f.to_le_bytes());
            (11, &[][..])
        }
    };
    let value_head = &value_head[..value_head_len];
    // SAFETY: the pieces fill `total` bytes exactly: `body_len` is the key field (0, or 2 + the
    // key's length: the head's last two bytes and the key) plus 2 + `value_len` (the value's
    // tag and length, then its `AnyValue`: the member's tag and, for a string, its length byte
    // and its bytes, else the member's bytes, all in `value_head` or `string`), and `total` is
    // that plus the head's first two bytes. The head is stored whole even when only its first
    // two bytes count (an empty key): the room is at least 6 bytes (`value_len` is at least
    // 2), and the pieces after it overwrite the other two.
    // `key_values_match_prost_for_every_scalar_and_length_width` covers every member and both
    // sides of each length bound, where the writer checks the sum.
    let mut w = unsafe { Exact::new(buf, total) };
    w.put_first(head, head_len);
    w.put(key.as_bytes());
    w.put(value_head);
    w.put(string);
}

/// Reads a varint at `*at`, moving past it; `None` on a truncated or overlong one.
pub(crate) fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The next length-delimited field in `bytes` from `*at`: its whole encoding (tag, length and
/// body) and its body, moving past it. `None` at the end or on bytes that are not such a field
/// (our own buffers always are).
pub(crate) fn next_field<'b>(bytes: &'b [u8], at: &mut usize) -> Option<(&'b [u8], &'b [u8])> {
    let start = *at;
    let tag = read_varint(bytes, at)?;
    if tag & 7 != u64::from(LEN) {
        return None;
    }
    let len = usize::try_from(read_varint(bytes, at)?).ok()?;
    let body_start = *at;
    let end = body_start.checked_add(len).filter(|&e| e <= bytes.len())?;
    *at = end;
    Some((&bytes[start..end], &bytes[body_start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
    use prost::Message;

    fn encode(body: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = Vec::new();
        body(&mut Writer::new(&mut buf));
        buf
    }

    /// The tail's bound is what keeps its writes inside the reserved room: a write past it
    /// must panic, and what was written before it must join the buffer, whole and in order.
    #[test]
    fn a_tail_writes_inside_its_room_only() {
        let mut buf = b"ab".to_vec();
        {
            let mut t = Tail::new(&mut buf, 5);
            t.put(b"cd");
            t.varint(300);
            t.byte(b'e');
        }
        assert_eq!(buf, [b'a', b'b', b'c', b'd', 0xac, 0x02, b'e']);
        let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut t = Tail::new(&mut buf, 3);
            t.put(b"xy");
            t.put(b"zw");
        }));
        assert!(past.is_err(), "a write past the room panics");
        assert_eq!(&buf[7..], b"xy", "the writes before it are kept");
    }

    /// A debug build checks an exact writer's pieces: past the room panics, and so does a room
    /// left partly unwritten; pieces that fill it join the buffer whole.
    #[test]
    fn an_exact_writer_is_checked_in_debug_builds() {
        let mut buf = b"ab".to_vec();
        {
            // SAFETY: 2 + 3 + 1 = 6 bytes.
            let mut w = unsafe { Exact::new(&mut buf, 6) };
            w.put_first([1, 2, 0xff], 2);
            w.put(b"cde");
            w.put(&[3]);
        }
        assert_eq!(buf, [b'a', b'b', 1, 2, b'c', b'd', b'e', 3]);
        if cfg!(debug_assertions) {
            let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut buf = Vec::new();
                // SAFETY: checked in this (debug) build: the second write panics first.
                let mut w = unsafe { Exact::new(&mut buf, 3) };
                w.put(b"xy");
                w.put(b"zw");
            }));
            assert!(past.is_err(), "a write past the room panics");
            let short = std::panic::catch_unwind(|| {
                let mut buf = Vec::new();
                // SAFETY: checked in this (debug) build: the drop panics before the length
                // takes the unwritten byte in.
                let mut w = unsafe { Exact::new(&mut buf, 3) };
                w.put(b"xy");
            });
            assert!(short.is_err(), "a room left partly unwritten panics");
        }
    }

    /// Every length a short copy picks its moves by (and either side of each bound), at every
    /// offset into the source and the destination: the bytes land exactly, none outside.
    #[test]
    fn short_copies_write_exactly_their_bytes() {
        let source: Vec<u8> = (1..=80).collect();
        for n in 0..=40 {
            for from in 0..4 {
                for to in 0..4 {
                    let mut buf = vec![0u8; 2];
                    {
                        let mut t = Tail::new(&mut buf, to + n + 1);
                        t.put(&vec![0xee; to]);
                        t.put(&source[from..from + n]);
                        t.byte(0xff);
                    }
                    let mut expected = vec![0u8; 2];
                    expected.extend(std::iter::repeat_n(0xee, to));
                    expected.extend_from_slice(&source[from..from + n]);
                    expected.push(0xff);
                    assert_eq!(buf, expected, "{n} bytes from {from} to {to}");
                }
            }
        }
    }

    #[test]
    fn cutting_counts_characters_not_bytes() {
        assert_eq!(cut("héllo wörld", Some(4)), "héll");
        assert_eq!(cut("ab", Some(4)), "ab");
        assert_eq!(
            cut("héllo", Some(5)),
            "héllo",
            "more bytes than the limit, not more chars"
        );
        assert_eq!(cut("abc", Some(0)), "");
        assert_eq!(cut("abc", None), "abc");
    }

    #[test]
    fn varints_match_prost_at_every_width() {
        for value in [
            0i64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            1 << 35,
            -1,
            i64::MIN,
            i64::MAX,
        ] {
            let ours = encode(|w| w.oneof(3, OneOf::Int(value)));
            let theirs = AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }
            .encode_to_vec();
            assert_eq!(ours, theirs, "{value}");
        }
    }

    #[test]
    fn nested_lengths_are_right_on_both_sides_of_each_varint_width() {
        // Every guess of the outer length's width (right, too small, too large) gives the
        // same bytes.
        for (text_len, length_bytes) in [
            0, 1, 120, 124, 125, 126, 127, 128, 200, 16_380, 16_384, 70_000,
        ]
        .into_iter()
        .flat_map(|len| (1..=3).map(move |guess| (len, guess)))
        {
            let text = "x".repeat(text_len);
            let ours = encode(|w| {
                w.message_sized(1, length_bytes, |kv| {
                    kv.str(1, "k");
                    kv.message(2, |v| v.str(1, &text));
                });
                w.uint(2, 7);
            });
            let decoded = KeyValueLike::decode(&ours[..]).expect("decodes");
            let expected = KeyValueLike {
                inner: Some(KeyValue {
                    key: "k".into(),
                    value: Some(AnyValue {
                        value: (text_len > 0).then(|| any_value::Value::StringValue(text.clone())),
                    }),
                    ..Default::default()
                }),
                after: 7,
            };
            assert_eq!(decoded, expected, "{text_len}, guess {length_bytes}");
            assert_eq!(
                ours,
                expected.encode_to_vec(),
                "{text_len}, guess {length_bytes}: same bytes as prost"
            );
        }
    }

    /// A message whose field 9 is `repeated KeyValue` (as in `Span`), to decode `key_values`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct Attributes {
        #[prost(message, repeated, tag = "9")]
        attributes: Vec<KeyValue>,
    }

    #[test]
    fn key_values_match_prost_for_every_scalar_and_length_width() {
        use crate::attributes::{KeyValue as Ours, Value as OurValue};
        let expected_value = |value: &OurValue| -> any_value::Value {
            match value {
                OurValue::Str(s) => any_value::Value::StringValue(s.as_str().to_owned()),
                OurValue::Bool(b) => any_value::Value::BoolValue(*b),
                OurValue::I64(i) => any_value::Value::IntValue(*i),
                OurValue::F64(f) => any_value::Value::DoubleValue(*f),
                _ => unreachable!("scalars only in this test"),
            }
        };
        let mut attributes = Vec::new();
        for len in [
            0, 1, 100, 110, 112, 120, 127, 128, 200, 16_360, 16_383, 16_384, 70_000,
        ] {
            let text = "v".repeat(len);
            attributes.push(Ours::new("k", text.clone()));
            attributes.push(Ours::new(text.clone(), "value"));
            attributes.push(Ours::new(text, 7i64));
        }
        for i in [
            0i64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            -1,
            i64::MIN,
            i64::MAX,
        ] {
            attributes.push(Ours::new("int", i));
        }
        for f in [0.0f64, -0.0, 1.5, f64::MAX, f64::NAN] {
            attributes.push(Ours::new("double", f));
        }
        attributes.push(Ours::new("yes", true));
        attributes.push(Ours::new("no", false));
        attributes.push(Ours::new("", ""));
        attributes.push(Ours::new("list", vec!["a", "", "b"]));

        let ours = encode(|w| key_values(w, 9, &attributes));
        let decoded = Attributes::decode(&ours[..]).expect("decodes");
        assert_eq!(decoded.attributes.len(), attributes.len());
        for (theirs, ours) in decoded.attributes.iter().zip(&attributes) {
            assert_eq!(theirs.key, ours.key.as_str());
            if let OurValue::StrArray(_) = ours.value {
                continue;
            }
            let value = theirs.value.as_ref().and_then(|v| v.value.clone());
            match (value, expected_value(&ours.value)) {
                (Some(any_value::Value::DoubleValue(a)), any_value::Value::DoubleValue(b)) => {
                    assert_eq!(a.to_bits(), b.to_bits())
                }
                (value, expected) => assert_eq!(value, Some(expected), "{}", ours.key.as_str()),
            }
        }
        assert_eq!(ours, decoded.encode_to_vec(), "same bytes as prost");
    }

    /// A message whose field 1 is a `KeyValue`, to decode what the test above writes.
    #[derive(Clone, PartialEq, prost::Message)]
    struct KeyValueLike {
        #[prost(message, optional, tag = "1")]
        inner: Option<KeyValue>,
        #[prost(uint64, tag = "2")]
        after: u64,
    }
}
