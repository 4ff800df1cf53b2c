//! Call-site templates: what a `log` record's frame holds that every record from its call site
//! shares (the scope name and the code location) is encoded once per thread and site, then
//! copied in fixed-size pieces; the severity fields come from a table per level. Only the
//! message, the lengths, the times and the span correlation are written per record.
//!
//! A site is known by its file, line and module path, all of them `'static` (as the `log`
//! macros give them): a static string's address and length name its text for good, so the key
//! is compared without reading the strings (a leaked string changed afterwards would leave its
//! old text in the template: wrong bytes, never anything unsound). The target is one more static
//! string when it is the module path itself (the usual record); any other target is compared by
//! its text.
//!
//! A `tracing` event's call site is known by its `'static` metadata, which fixes its target,
//! file, line and module path: the key is the metadata's address.

#[cfg(feature = "tracing")]
use super::record::written_aside;
use super::record::{
    after_body, context_and_observed, correlation, fixed64_field, grow, write_body, Back, Body,
    BodySink, Full, LogRecordView, Region, FIRST_FRAME_BYTES, LEN, SCOPE_LOGS_RECORD_FIELD,
};
use super::FrameBuffer;
#[cfg(feature = "tracing")]
use crate::core::wire::key_values;
use crate::trace::Ids;
use log::{Level, Record};

/// Call sites a thread keeps templates of, in a table indexed by a hash of the site: a site
/// whose slot another one took is encoded again.
const SITES: usize = 16;

/// A scope field (tag, one-byte length, name) at most this long has a template.
const SCOPE_ROOM: usize = 64;

/// The code location's entries at most this long have a template: a path of a hundred bytes,
/// its line and a namespace.
const TAIL_ROOM: usize = 192;

/// The code location is copied in pieces of this many bytes, the last one reaching past it into
/// room that what follows is written over.
const PIECE: usize = 32;

/// Where the message starts in the frame buffer. The fields before it are written backwards from
/// here, the severity and the scope name in fixed-size copies that reach below where the frame
/// starts: at most 51 bytes of lengths, times and severity, then the scope's 64.
const BODY_AT: usize = 128;

/// Room after the message: the code location (rounded up to a piece, which `TAIL_ROOM` is), the
/// span correlation and the observed time.
const AFTER_ROOM: usize = TAIL_ROOM + 33 + 9;

const _: () = assert!(TAIL_ROOM % PIECE == 0 && BODY_AT - 51 >= SCOPE_ROOM);
const _: () = assert!(FIRST_FRAME_BYTES >= BODY_AT + AFTER_ROOM);

/// A call site, by the addresses and lengths of its static strings; all zeros in an empty slot
/// (no string is at address 0).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct SiteKey {
    file: usize,
    file_len: usize,
    module: usize,
    module_len: usize,
    /// The line (bit 33 set when there is none), and in bit 32 whether the target is the module
    /// path's own string or fixed by the key (no text to compare then).
    line_and_target: u64,
}

const NO_LINE: u64 = 1 << 33;
const TARGET_IS_MODULE: u64 = 1 << 32;
/// Set in the key of a `tracing` call site, whose `file` is its metadata's address, not a
/// string's: no `log` site's key is the same. Its metadata fixes the target, so the key has
/// `TARGET_IS_MODULE` set too (no text to compare).
#[cfg(feature = "tracing")]
const EVENT_SITE: u64 = 1 << 34;

impl SiteKey {
    fn target_is_module(&self) -> bool {
        self.line_and_target & TARGET_IS_MODULE != 0
    }

    /// Sites in one file differ by line, and files mostly by the lengths of their names.
    fn slot(&self) -> usize {
        (self.line_and_target as usize ^ self.file_len ^ self.module_len << 3) % SITES
    }
}

/// One call site's shared fields, encoded.
#[derive(Clone)]
pub(crate) struct Template {
    key: SiteKey,
    /// The scope field (`ScopeLogs` frame field 1: the target), in the last `scope_len` bytes.
    scope: [u8; SCOPE_ROOM],
    scope_len: usize,
    /// The code location's attribute entries, in the first `tail_len` bytes.
    tail: [[u8; PIECE]; TAIL_ROOM / PIECE],
    tail_len: usize,
}

impl Template {
    fn empty() -> Self {
        Template {
            key: SiteKey::default(),
            scope: [0; SCOPE_ROOM],
            scope_len: 0,
            tail: [[0; PIECE]; TAIL_ROOM / PIECE],
            tail_len: 0,
        }
    }

    /// The scope name's text.
    fn target(&self) -> &[u8] {
        let start = (SCOPE_ROOM + 2).saturating_sub(self.scope_len);
        self.scope.get(start..).unwrap_or_default()
    }
}

/// The severity fields (number, then text) of each `log::Level` (by its number), right-aligned,
/// and how many bytes they take: the log data model's table.
const SEVERITIES: [([u8; 16], usize); 6] = [
    ([0; 16], 0),
    severity_fields(Level::Error),
    severity_fields(Level::Warn),
    severity_fields(Level::Info),
    severity_fields(Level::Debug),
    severity_fields(Level::Trace),
];

const fn severity_fields(level: Level) -> ([u8; 16], usize) {
    let (number, text) = super::record::severity(level);
    let text = text.as_bytes();
    let len = 4 + text.len();
    let mut fields = [0; 16];
    let start = 16 - len;
    fields[start] = 2 << 3;
    fields[start + 1] = number;
    fields[start + 2] = 3 << 3 | LEN;
    fields[start + 3] = text.len() as u8;
    let mut i = 0;
    while i < text.len() {
        fields[start + 4 + i] = text[i];
        i += 1;
    }
    (fields, len)
}

impl FrameBuffer {
    /// The frame of `record` at `now`, correlated with `context` when it is valid, from its call
    /// site's template, with its key-values' `attributes` (written as `LogRecord.attributes`
    /// entries, and how many were dropped) when it has some: where the frame lies in the buffer,
    /// or None when the site can have no template (strings not `'static`, a target or path too
    /// long for one, a target `accepts` refuses: only those it accepts get templates).
    #[inline(always)]
    pub(crate) fn site_frame(
        &mut self,
        record: &Record<'_>,
        context: Ids,
        now: u64,
        accepts: impl FnOnce(&str) -> bool,
        attributes: Option<(&[u8], u32)>,
    ) -> Option<(usize, usize)> {
        let (file, module) = (record.file_static()?, record.module_path_static()?);
        let target = record.target();
        let line = record.line().map_or(NO_LINE, u64::from);
        let key = SiteKey {
            file: file.as_ptr().addr(),
            file_len: file.len(),
            module: module.as_ptr().addr(),
            module_len: module.len(),
            line_and_target: line | (u64::from(std::ptr::eq(target, module)) * TARGET_IS_MODULE),
        };
        let severity = SEVERITIES.get(record.level() as usize)?;
        let slot = key.slot();
        let known = self.sites.get(slot).is_some_and(|t| {
            t.key == key && (key.target_is_module() || t.target() == target.as_bytes())
        });
        if !known {
            if !accepts(target) {
                return None;
            }
            let module = record.module_path_static();
            let site = Site {
                scope: target,
                file: record.file_static(),
                line: record.line(),
                namespace: module.filter(|module| *module != target),
            };
            new_template(&mut self.sites, &mut self.aside, slot, key, &site)?;
        }
        let template = self.sites.get(slot)?;
        fill(
            &mut self.bytes,
            template,
            severity,
            Body::Format(*record.args()),
            context,
            now,
            attributes,
        )
    }

    /// The frame of a `tracing` event `r` (at `level`) from its call site's template, the site
    /// known by the address of its `'static` metadata, which fixes the view's scope, file, line
    /// and namespace: where the frame lies in the buffer, or None when the site can have no
    /// template (a target or path too long for one) or the view is one a template cannot give
    /// (two different times, attributes already encoded).
    #[cfg(feature = "tracing")]
    #[inline(always)]
    pub(crate) fn event_site_frame(
        &mut self,
        site: usize,
        level: log::Level,
        r: &LogRecordView<'_>,
    ) -> Option<(usize, usize)> {
        if r.time_unix_nanos != r.observed_unix_nanos || !r.encoded_attributes.is_empty() {
            return None;
        }
        let key = SiteKey {
            file: site,
            file_len: r.file.map_or(0, str::len),
            module: 0,
            module_len: r.namespace.map_or(0, str::len),
            line_and_target: r.line.map_or(NO_LINE, u64::from) | TARGET_IS_MODULE | EVENT_SITE,
        };
        let severity = SEVERITIES.get(level as usize)?;
        let slot = key.slot();
        if self.sites.get(slot).is_none_or(|t| t.key != key) {
            let site = Site {
                scope: r.scope,
                file: r.file,
                line: r.line,
                namespace: r.namespace,
            };
            new_template(&mut self.sites, &mut self.aside, slot, key, &site)?;
        }
        // The event's fields other than the code location, written as entries after it.
        let attributes = if r.attributes.is_empty() && r.dropped_attributes == 0 {
            None
        } else {
            let encoded = written_aside(&mut self.aside, |w| key_values(w, 6, r.attributes));
            Some((encoded, r.dropped_attributes))
        };
        let template = self.sites.get(slot)?;
        fill(
            &mut self.bytes,
            template,
            severity,
            r.body,
            r.context,
            r.time_unix_nanos,
            attributes,
        )
    }

    /// The frame [`FrameBuffer::site_frame`] placed at `range`.
    #[inline(always)]
    pub(crate) fn framed(&self, (start, end): (usize, usize)) -> &[u8] {
        &self.bytes[start..end]
    }
}

/// The frame of a record from `template`'s call site with its own `body`, severity, correlation,
/// time and encoded `attributes` (and how many were dropped), written in `bytes`: where it lies.
#[inline(always)]
fn fill(
    bytes: &mut Vec<u8>,
    template: &Template,
    severity: &([u8; 16], usize),
    body: Body<'_>,
    context: Ids,
    now: u64,
    attributes: Option<(&[u8], u32)>,
) -> Option<(usize, usize)> {
    let body_end = {
        let mut sink = BodySink {
            bytes: &mut *bytes,
            at: BODY_AT,
        };
        write_body(&mut sink, body);
        sink.at
    };
    // The record's key-values (already written as entries) and their dropped count's field.
    let extra = attributes.map_or(0, |(encoded, _)| encoded.len() + 11);
    if bytes.len() < body_end + AFTER_ROOM + extra {
        grow(bytes, body_end + AFTER_ROOM + extra);
    }
    let (head, after) = bytes.split_at_mut(body_end);
    let tail_len = template.tail_len.min(TAIL_ROOM);
    let after_len = match attributes {
        None => {
            // Every position here is bounded by the room's size: no index can fail.
            let after = after.first_chunk_mut::<AFTER_ROOM>()?;
            copy_tail(after.first_chunk_mut()?, template, tail_len);
            let mut after_len = tail_len;
            if context.is_valid() {
                let (fields, len) = correlation(context);
                after[after_len..after_len + 33].copy_from_slice(&fields);
                after_len += len;
            }
            if now != 0 {
                after[after_len..after_len + 9].copy_from_slice(&fixed64_field(11, now));
                after_len += 9;
            }
            after_len
        }
        Some((encoded, dropped)) => {
            copy_tail(after.first_chunk_mut()?, template, tail_len);
            let mut out = Region::new(after.get_mut(tail_len..)?);
            out.put(encoded).ok()?;
            if dropped != 0 {
                out.put_array([7 << 3]).ok()?;
                out.put_varint(u64::from(dropped)).ok()?;
            }
            context_and_observed(&mut out, context, now).ok()?;
            tail_len + out.written()
        }
    };
    let start = site_head(
        head.first_chunk_mut::<BODY_AT>()?,
        template,
        severity,
        now,
        body_end - BODY_AT,
        after_len,
    )?;
    Some((start, body_end + after_len))
}

/// The template's code location into `to`, in whole pieces (the last one's end is slack).
#[inline(always)]
fn copy_tail(to: &mut [u8; TAIL_ROOM], template: &Template, tail_len: usize) {
    for (i, piece) in template
        .tail
        .iter()
        .enumerate()
        .take(tail_len.div_ceil(PIECE))
    {
        to[i * PIECE..(i + 1) * PIECE].copy_from_slice(piece);
    }
}

/// The frame's bytes up to the message, written backwards from it: the body's own head, the
/// severity and the time, the record's tag and length, the scope name. Returns where the frame
/// starts.
#[inline(always)]
fn site_head(
    head: &mut [u8; BODY_AT],
    template: &Template,
    (severity, severity_len): &([u8; 16], usize),
    now: u64,
    body_len: usize,
    after_len: usize,
) -> Option<usize> {
    let severity_len = (*severity_len).min(16);
    let time_len = if now != 0 { 9 } else { 0 };
    let record_len = 4 + body_len + severity_len + time_len + after_len;
    // The usual record: the body's lengths in one byte each, the record's in at most two, each
    // piece at a position the rooms' sizes bound.
    if body_len < 0x80 - 2 && record_len < 0x4000 {
        head[BODY_AT - 4..].copy_from_slice(&[
            5 << 3 | LEN,
            body_len as u8 + 2,
            1 << 3 | LEN,
            body_len as u8,
        ]);
        head[BODY_AT - 20..BODY_AT - 4].copy_from_slice(severity);
        let mut at = BODY_AT - 4 - severity_len;
        if now != 0 {
            head[at - 9..at].copy_from_slice(&fixed64_field(1, now));
            at -= 9;
        }
        let tag = (SCOPE_LOGS_RECORD_FIELD as u8) << 3 | LEN;
        if record_len < 0x80 {
            head[at - 2..at].copy_from_slice(&[tag, record_len as u8]);
            at -= 2;
        } else {
            let length = [record_len as u8 | 0x80, (record_len >> 7) as u8];
            head[at - 3..at].copy_from_slice(&[tag, length[0], length[1]]);
            at -= 3;
        }
        head[at - SCOPE_ROOM..at].copy_from_slice(&template.scope);
        return Some(at - template.scope_len.min(SCOPE_ROOM));
    }
    let mut back = Back {
        room: &mut head[..],
    };
    long_site_head(
        &mut back,
        template,
        severity,
        severity_len,
        now,
        body_len,
        after_len,
    )
    .ok()?;
    Some(back.room.len())
}

/// [`site_head`] for a long message or record: varints of any length.
#[inline(never)]
fn long_site_head(
    head: &mut Back<'_>,
    template: &Template,
    severity: &[u8; 16],
    severity_len: usize,
    now: u64,
    body_len: usize,
    after_len: usize,
) -> Result<(), Full> {
    // An `AnyValue` holding the string member, written even when empty.
    let any_len = 1 + super::record::length_len(body_len) + body_len;
    head.put_tag_len(1 << 3 | LEN, body_len)?;
    head.put_tag_len(5 << 3 | LEN, any_len)?;
    head.put_over(severity, severity_len)?;
    if now != 0 {
        head.put_array(fixed64_field(1, now))?;
    }
    let record_len = BODY_AT - head.room.len() + body_len + after_len;
    head.put_tag_len((SCOPE_LOGS_RECORD_FIELD as u8) << 3 | LEN, record_len)?;
    head.put_over(&template.scope, template.scope_len)
}

/// What a call site fixes, as its template encodes it: the scope name and the code location.
struct Site<'a> {
    scope: &'a str,
    file: Option<&'a str>,
    line: Option<u32>,
    namespace: Option<&'a str>,
}

/// Encodes the template of a call site into its slot; None when the site's strings do not fit
/// one.
#[cold]
#[inline(never)]
fn new_template(
    sites: &mut Vec<Template>,
    aside: &mut Vec<u8>,
    slot: usize,
    key: SiteKey,
    site: &Site<'_>,
) -> Option<()> {
    if sites.is_empty() {
        sites.resize_with(SITES, Template::empty);
    }
    let template = sites.get_mut(slot)?;
    template.key = SiteKey::default();
    let target = site.scope;
    let scope_len = 2 + target.len();
    let scope_start = SCOPE_ROOM.checked_sub(scope_len)?;
    let scope = &mut template.scope[scope_start..];
    scope[0] = 1 << 3 | LEN;
    scope[1] = target.len() as u8;
    scope[2..].copy_from_slice(target.as_bytes());
    template.scope_len = scope_len;
    // The code location as the general path writes it: a view with nothing else in it.
    let location = LogRecordView {
        time_unix_nanos: 0,
        observed_unix_nanos: 0,
        severity_number: 0,
        severity_text: "",
        body: Body::Format(format_args!("")),
        scope: "",
        file: site.file,
        line: site.line,
        namespace: site.namespace,
        attributes: &[],
        encoded_attributes: &[],
        dropped_attributes: 0,
        context: Ids::default(),
    };
    template.tail_len = after_body(
        &mut Region::new(template.tail.as_flattened_mut()),
        &location,
        aside,
    )
    .ok()?;
    template.key = key;
    Some(())
}

#[cfg(all(test, feature = "tracing"))]
mod tests {
    //! A `tracing` event's frame from its site's template is the general path's, which the
    //! encoder's oracle tests check against prost, and what prost writes for what it decodes to.
    use super::*;
    use crate::attributes::{KeyValue, Value};
    use crate::trace::{SpanContext, SpanId, TraceId};
    use log::Level;
    use prost::Message;

    use crate::logs::DecodedFrame as Frame;

    const NOW: u64 = 1_700_000_000_123_456_789;

    struct Event {
        site: usize,
        level: Level,
        scope: &'static str,
        file: Option<&'static str>,
        line: Option<u32>,
        namespace: Option<&'static str>,
    }

    fn view<'a>(
        event: &Event,
        body: &'a str,
        attributes: &'a [KeyValue],
        dropped: u32,
        context: Ids,
        now: u64,
    ) -> LogRecordView<'a> {
        let (severity_number, severity_text) = crate::logs::severity(event.level);
        LogRecordView {
            time_unix_nanos: now,
            observed_unix_nanos: now,
            severity_number,
            severity_text,
            body: Body::Text(body),
            scope: event.scope,
            file: event.file,
            line: event.line,
            namespace: event.namespace,
            attributes,
            encoded_attributes: &[],
            dropped_attributes: dropped,
            context,
        }
    }

    #[test]
    fn event_sites_give_the_general_paths_bytes() {
        let path = "src/checkout/orders.rs";
        let long_path: &'static str = format!("src/{}.rs", "p".repeat(200)).leak();
        let long_scope: &'static str = "t".repeat(70).leak();
        // Sites 1 and 2 share their slot (same line and lengths): each keeps its own text.
        let events = [
            (1, Level::Info, "app::orders", Some(path), Some(42), None),
            (2, Level::Warn, "app::ordexs", Some(path), Some(42), None),
            (
                3,
                Level::Error,
                "billing",
                Some(path),
                Some(300),
                Some("app::billing"),
            ),
            (4, Level::Debug, "app", None, None, None),
            (
                5,
                Level::Trace,
                "app",
                Some(path),
                Some(70_000),
                Some("app::deep"),
            ),
            (6, Level::Info, "app", Some(long_path), Some(1), None),
            (7, Level::Info, long_scope, Some(path), Some(2), None),
        ]
        .map(|(site, level, scope, file, line, namespace)| Event {
            site,
            level,
            scope,
            file,
            line,
            namespace,
        });
        let sampled = SpanContext::new_remote(TraceId(7), SpanId(9), 1).ids();
        let unsampled = SpanContext::new_remote(TraceId(u128::MAX), SpanId(u64::MAX), 0).ids();
        let bodies = [
            String::new(),
            "order placed".to_owned(),
            "b".repeat(300),
            "h".repeat(70_000),
        ];
        let attributes = [
            KeyValue::new("order", Value::I64(-5)),
            KeyValue::new("name", "alice"),
            KeyValue::new("vip", true),
            KeyValue::new("ratio", 0.25),
            KeyValue::new("exception.message", "x".repeat(200)),
        ];
        let mut frames = FrameBuffer::new();
        let mut templated = 0;
        for round in 0..2 {
            for (e, event) in events.iter().enumerate() {
                for (b, body) in bodies.iter().enumerate() {
                    for (n, dropped) in [(0, 0), (0, 3), (1, 0), (5, 200)] {
                        let context = [Ids::default(), sampled, unsampled][(e + b + n) % 3];
                        let now = if (round + e + b) % 5 == 4 { 0 } else { NOW };
                        let r = view(event, body, &attributes[..n], dropped, context, now);
                        let theirs = FrameBuffer::new().frame(&r).to_vec();
                        let ours = match frames.event_site_frame(event.site, event.level, &r) {
                            Some(range) => {
                                templated += 1;
                                frames.framed(range).to_vec()
                            }
                            None => {
                                assert!(e >= 5, "event {e} has a template");
                                frames.frame(&r).to_vec()
                            }
                        };
                        assert_eq!(ours, theirs, "event {e}, body {b}, {n} attributes");
                        let decoded = Frame::decode(&ours[..]).expect("decodes");
                        assert_eq!(decoded.scope, event.scope);
                        assert_eq!(decoded.encode_to_vec(), ours, "prost's bytes");
                    }
                }
            }
        }
        assert_eq!(templated, 2 * 5 * 4 * 4);
    }

    #[test]
    fn views_a_template_cannot_give_take_the_general_path() {
        let event = Event {
            site: 1,
            level: Level::Info,
            scope: "app",
            file: Some("src/main.rs"),
            line: Some(3),
            namespace: None,
        };
        let mut frames = FrameBuffer::new();
        let mut r = view(&event, "hi", &[], 0, Ids::default(), NOW);
        assert!(frames.event_site_frame(1, Level::Info, &r).is_some());
        r.observed_unix_nanos += 1;
        assert!(frames.event_site_frame(1, Level::Info, &r).is_none());
        r.observed_unix_nanos = NOW;
        r.encoded_attributes = &[0x3a, 0];
        assert!(frames.event_site_frame(1, Level::Info, &r).is_none());
    }
}
