//! Span attributes whose key and value are literals (a `&'static str` key, a `&'static str`,
//! integer, float or bool value), kept as the addresses and lengths of their text (or the
//! number's bits) instead of the bytes they are exported as. Setting one on the recording thread
//! stores those 20 bytes; the exporter thread writes its `KeyValue` entry
//! ([`super::encode::SpanRecord::write_exported`]).
//!
//! Why this is sound to read back on another thread, any time later: a `&'static str` is text
//! that is never freed or changed while the program runs, so the address and length of one,
//! taken back, are the same `&'static str`.

use crate::core::wire::OneOf;

/// The bytes one literal takes: the key's address, the value (a string's address, or the
/// number's bits), the key's length and the string value's length with the value's type. Few, as
/// a flood of spans is bound by the bytes it writes as much as by its instructions.
pub(crate) const LITERAL_BYTES: usize = WORD + 8 + 4;
const WORD: usize = std::mem::size_of::<usize>();
/// The most literals a span's record holds before they are written out as entries: each has a
/// key of a length (modulo 64) that no other attribute of the span has (the record's check for a
/// new key), so there are at most 64.
pub(crate) const MOST_PENDING: usize = 64;

const STR: u16 = 0;
const INT: u16 = 1;
const BOOL: u16 = 2;
const DOUBLE: u16 = 3;
const MEMBER_BITS: u32 = 2;
/// The longest string value a literal keeps (its length shares 16 bits with the type).
const MAX_VALUE_LEN: usize = (u16::MAX >> MEMBER_BITS) as usize;

/// Appends the attribute's bytes to `buf`, unless its key or string value is too long to be
/// kept so (64 KiB, 16 KiB: the caller writes its entry instead) or `buf` has no room for them
/// (the caller makes some); returns whether it did. Never grows `buf`, so a caller's path that
/// calls nothing else stays free of calls.
#[inline(always)]
pub(crate) fn put(buf: &mut Vec<u8>, key: &'static str, member: OneOf<'static>) -> bool {
    let (member, value, value_len) = match member {
        OneOf::Str(s) => (STR, s.as_ptr().expose_provenance() as u64, s.len()),
        OneOf::Int(i) => (INT, i as u64, 0),
        OneOf::Bool(b) => (BOOL, u64::from(b), 0),
        OneOf::Double(f) => (DOUBLE, f.to_bits(), 0),
    };
    let no_room = buf.capacity() - buf.len() < LITERAL_BYTES;
    if key.len() > usize::from(u16::MAX) || value_len > MAX_VALUE_LEN || no_room {
        return false;
    }
    let mut raw = [0u8; LITERAL_BYTES];
    raw[..WORD].copy_from_slice(&key.as_ptr().expose_provenance().to_ne_bytes());
    raw[WORD..WORD + 8].copy_from_slice(&value.to_ne_bytes());
    raw[WORD + 8..WORD + 10].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    let value_len_and_member = (value_len as u16) << MEMBER_BITS | member;
    raw[WORD + 10..].copy_from_slice(&value_len_and_member.to_ne_bytes());
    buf.extend_from_slice(&raw);
    true
}

/// Each attribute of `bytes`, literals back to back as [`put`] wrote them.
///
/// # Safety
/// `bytes` must be a copy of what calls of [`put`] wrote, in this process (the addresses in it
/// are then those of `&'static str`s that `put` was given).
pub(crate) unsafe fn each(
    bytes: &[u8],
) -> impl Iterator<Item = (&'static str, OneOf<'static>)> + '_ {
    bytes.chunks_exact(LITERAL_BYTES).map(|raw| {
        // SAFETY: as the caller promises; `chunks_exact` gives `LITERAL_BYTES` each.
        unsafe { read(raw.try_into().unwrap()) }
    })
}

/// The attribute one literal's bytes hold.
///
/// # Safety
/// `bytes` must be a copy of one literal's bytes that [`put`] wrote, in this process (the
/// addresses in it are then those of `&'static str`s that `put` was given).
#[inline]
unsafe fn read(bytes: &[u8; LITERAL_BYTES]) -> (&'static str, OneOf<'static>) {
    let address = usize::from_ne_bytes(bytes[..WORD].try_into().unwrap());
    let value = u64::from_ne_bytes(bytes[WORD..WORD + 8].try_into().unwrap());
    let key_len = u16::from_ne_bytes([bytes[WORD + 8], bytes[WORD + 9]]);
    let value_len_and_member = u16::from_ne_bytes([bytes[WORD + 10], bytes[WORD + 11]]);
    // SAFETY: as the caller promises, the address and length are a `&'static str`'s: alive and
    // unchanged for the rest of the program, valid UTF-8, and their provenance was exposed by
    // `put`.
    let text = |address: usize, len: u16| unsafe {
        let ptr = std::ptr::with_exposed_provenance::<u8>(address);
        std::str::from_utf8_unchecked(std::slice::from_raw_parts(ptr, usize::from(len)))
    };
    let key = text(address, key_len);
    let member = match value_len_and_member & ((1 << MEMBER_BITS) - 1) {
        STR => OneOf::Str(text(value as usize, value_len_and_member >> MEMBER_BITS)),
        INT => OneOf::Int(value as i64),
        BOOL => OneOf::Bool(value != 0),
        _ => OneOf::Double(f64::from_bits(value)),
    };
    (key, member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(a: OneOf<'_>, b: OneOf<'_>) -> bool {
        match (a, b) {
            (OneOf::Str(a), OneOf::Str(b)) => a.as_ptr() == b.as_ptr() && a == b,
            (OneOf::Int(a), OneOf::Int(b)) => a == b,
            (OneOf::Bool(a), OneOf::Bool(b)) => a == b,
            (OneOf::Double(a), OneOf::Double(b)) => a.to_bits() == b.to_bits(),
            _ => false,
        }
    }

    /// Each type of value, at the edges of each field, read back from a copy of the bytes (as
    /// the exporter reads them): the same text, at the same address, the same numbers.
    #[test]
    fn a_literal_reads_back_as_it_was_put() {
        let members = [
            OneOf::Str(""),
            OneOf::Str("/users/{id}"),
            OneOf::Str("é ü ✓"),
            OneOf::Int(0),
            OneOf::Int(-1),
            OneOf::Int(i64::MIN),
            OneOf::Int(i64::MAX),
            OneOf::Bool(false),
            OneOf::Bool(true),
            OneOf::Double(-0.0),
            OneOf::Double(f64::NAN),
            OneOf::Double(1.5e300),
        ];
        // The longest key and string value a literal keeps.
        let long_key: &'static str = "k".repeat(usize::from(u16::MAX)).leak();
        let long_value: &'static str = "v".repeat(MAX_VALUE_LEN).leak();
        let members = [&members[..], &[OneOf::Str(long_value)]].concat();
        let keys = ["", "k", "http.response.status_code", "ключ", long_key];
        let mut written = Vec::with_capacity(1 + members.len() * LITERAL_BYTES);
        written.push(7); // after other bytes, as in a span's record
        let mut pushed = Vec::new();
        for (i, member) in members.iter().enumerate() {
            let key = keys[i % keys.len()];
            assert!(put(&mut written, key, *member));
            pushed.push((key, *member));
        }
        assert_eq!(written.len(), 1 + members.len() * LITERAL_BYTES);
        let copy = written[1..].to_vec();
        // SAFETY: a copy of what `put` wrote, in this process.
        let read: Vec<_> = unsafe { each(&copy) }.collect();
        assert_eq!(read.len(), pushed.len());
        for ((k, m), (key, member)) in read.into_iter().zip(pushed) {
            assert!(k.as_ptr() == key.as_ptr() && k == key);
            assert!(same(m, member), "{k:?}");
        }
    }

    /// A key or a string value too long for a literal's lengths is refused, and nothing is
    /// written: its caller writes the entry itself. So is a literal that the buffer has no room
    /// for: `put` never grows it.
    #[test]
    fn a_literal_too_long_or_without_room_is_refused_whole() {
        let key: &'static str = "k".repeat(usize::from(u16::MAX) + 1).leak();
        let value: &'static str = "v".repeat(MAX_VALUE_LEN + 1).leak();
        let mut written = Vec::with_capacity(2 * LITERAL_BYTES);
        assert!(!put(&mut written, key, OneOf::Int(1)));
        assert!(!put(&mut written, "k", OneOf::Str(value)));
        assert!(written.is_empty());
        let mut full = Vec::with_capacity(LITERAL_BYTES);
        full.push(0);
        let capacity = full.capacity();
        let refused = capacity - 1 < LITERAL_BYTES;
        assert_eq!(put(&mut full, "k", OneOf::Int(1)), !refused);
        assert_eq!(full.capacity(), capacity, "never grown");
    }
}
