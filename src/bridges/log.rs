//! The `log::Log` bridge: every record still goes to the app's own logger; those at or above the
//! export floor also become OTLP log records, correlated with the current span.
//!
//! No feedback loop: records from this crate's own targets and anything logged on the exporter
//! thread (its HTTP client's connection errors included) are never exported — a failing endpoint
//! would otherwise feed itself. The app's own records, from any library and any target, are.
//! On the exporter thread the wrapped logger gets only this crate's records and others' from
//! INFO up: below that the HTTP client dumps the request bytes, export token included.
//!
//! The export never panics the logging call: a format argument whose `Display` fails or panics
//! leaves the text formatted before it as the record's body (the panic hook still reports the
//! panic). The wrapped logger, called first, formats the record its own way.

use super::{is_exported, is_own_target, reaches_app_output, RecordAttributes, MAX_LOG_ATTRIBUTES};
use crate::attributes::{KeyValue, Value};
use crate::core::wire::{scalar_key_value, OneOf, Writer};
use crate::logs::{format_caught, severity, Body, FrameBuffer, LogRecordView};
use crate::trace::Ids;
use log::{LevelFilter, Log, Metadata, Record};
use std::cell::RefCell;

/// Wraps the app's logger and exports records to the installed pipeline.
///
/// ```
/// // With no logger of its own, an app installs the bridge alone:
/// plain_connect::logs::install(None).ok();
/// log::info!("exported once a pipeline is installed, and only above the floor");
/// ```
pub struct LogBridge {
    inner: Option<Box<dyn Log>>,
}

impl LogBridge {
    /// Forwards every record to `inner` unchanged, and exports those above the floor.
    pub fn wrap(inner: Box<dyn Log>) -> Self {
        LogBridge { inner: Some(inner) }
    }

    /// Exports only; nothing is printed.
    pub fn export_only() -> Self {
        LogBridge { inner: None }
    }
}

/// Installs the bridge as the process's logger (wrapping `inner` when given) and sets
/// `log::max_level` so that neither the wrapped logger nor the export loses a record.
///
/// It never narrows what the wrapped logger asked for. A logger built but not installed (as
/// env_logger's `Builder::build()` leaves it) cannot say through `Box<dyn Log>` which levels it
/// accepts, so unless the app set `log::max_level` itself before this call, the bridge opens it
/// to `Trace` and lets the wrapped logger filter each record. To keep a disabled `trace!` at
/// one comparison, set the level first (env_logger: `log::set_max_level(logger.filter())`).
/// The level is then widened to the export floor of the installed pipeline (`Info` when none
/// is installed yet).
///
/// ```
/// let mut builder = env_logger::Builder::new();
/// builder.parse_filters("info,my_app=debug");
/// let logger = builder.build();
/// log::set_max_level(logger.filter()); // optional: the cheap path for disabled records
/// plain_connect::logs::install(Some(Box::new(logger))).unwrap();
/// ```
///
/// Fails if another logger is already installed (Rust allows one per process): then wrap that
/// logger with [`LogBridge::wrap`] where it is created.
pub fn install(inner: Option<Box<dyn Log>>) -> Result<(), log::SetLoggerError> {
    let set_by_app = log::max_level();
    let wrapped_wants = match (&inner, set_by_app) {
        (Some(_), LevelFilter::Off) => LevelFilter::Trace,
        _ => set_by_app,
    };
    let bridge = match inner {
        Some(inner) => LogBridge::wrap(inner),
        None => LogBridge::export_only(),
    };
    log::set_boxed_logger(Box::new(bridge))?;
    let floor = crate::core::log_floor().unwrap_or(LevelFilter::Info);
    log::set_max_level(wrapped_wants.max(floor));
    Ok(())
}

/// Raises `log::max_level` to `floor` if it is lower, so libraries' records reach the exporter.
pub(crate) fn widen_max_level(floor: LevelFilter) {
    if log::max_level() < floor {
        log::set_max_level(floor);
    }
}

thread_local! {
    /// A record's key-values as they are encoded, reused from record to record. Borrowed while
    /// this thread exports a record that has some, so a format argument that logs cannot
    /// recurse into it.
    static KEY_VALUES: RefCell<EncodedKvs> = const { RefCell::new(EncodedKvs::new()) };
}

/// A thread's key-value buffers grown past this are dropped after their record: one huge value
/// must not pin its memory to the thread.
const MAX_KEPT_KV_BYTES: usize = 16 * 1024;

/// A record's key-values written as `LogRecord.attributes` entries as they are visited: no
/// allocation once the buffers have grown. A repeated key stops the visit (`repeated`): its
/// value overwrites the first one's, so such a record is collected by [`KvCollector`] instead.
struct EncodedKvs {
    entries: Vec<u8>,
    /// The keys written, back to back, and where each ends.
    keys: String,
    key_ends: Vec<usize>,
    /// A value's text, when it is neither a scalar nor a borrowed string.
    text: String,
    /// Keys past the log record limit.
    dropped: u32,
    repeated: bool,
}

impl EncodedKvs {
    const fn new() -> Self {
        EncodedKvs {
            entries: Vec::new(),
            keys: String::new(),
            key_ends: Vec::new(),
            text: String::new(),
            dropped: 0,
            repeated: false,
        }
    }

    /// Readies the buffers for the next record, dropping them if one grew past the bound.
    fn reset(&mut self) {
        if self.entries.capacity() > MAX_KEPT_KV_BYTES
            || self.keys.capacity() > MAX_KEPT_KV_BYTES
            || self.text.capacity() > MAX_KEPT_KV_BYTES
        {
            *self = EncodedKvs::new();
            return;
        }
        self.entries.clear();
        self.keys.clear();
        self.key_ends.clear();
        self.dropped = 0;
        self.repeated = false;
    }

    /// The entries written and how many keys were dropped.
    fn written(&self) -> (&[u8], u32) {
        (&self.entries, self.dropped)
    }

    fn seen(&self, key: &str) -> bool {
        let mut start = 0;
        self.key_ends.iter().any(|&end| {
            let found = &self.keys[start..end] == key;
            start = end;
            found
        })
    }
}

impl<'kvs> log::kv::VisitSource<'kvs> for EncodedKvs {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let key = key.as_str();
        if self.seen(key) {
            self.repeated = true;
            return Err(log::kv::Error::msg("a repeated key"));
        }
        if self.key_ends.len() >= MAX_LOG_ATTRIBUTES as usize {
            self.dropped = self.dropped.saturating_add(1);
            return Ok(());
        }
        self.keys.push_str(key);
        self.key_ends.push(self.keys.len());
        let member = scalar_of(&value, &mut self.text);
        scalar_key_value(&mut Writer::new(&mut self.entries), 6, key, member);
        Ok(())
    }
}

/// A record's key-values collected, a repeated key overwriting the first one's value.
struct KvCollector<'a>(&'a mut RecordAttributes);

impl<'kvs> log::kv::VisitSource<'kvs> for KvCollector<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let mut text = String::new();
        let typed = match scalar_of(&value, &mut text) {
            OneOf::Bool(b) => Value::Bool(b),
            OneOf::Int(i) => Value::I64(i),
            OneOf::Double(f) => Value::F64(f),
            OneOf::Str(s) => Value::from(s.to_owned()),
        };
        self.0.push(key.as_str().to_owned(), typed);
        Ok(())
    }
}

/// A key-value's value as the scalar it is exported as, the one typing both visitors use: a
/// bool, an integer (a `u64` saturating at `i64::MAX`), a float, a borrowed string, or else its
/// text formatted into `text`.
fn scalar_of<'a>(value: &'a log::kv::Value<'_>, text: &'a mut String) -> OneOf<'a> {
    if let Some(b) = value.to_bool() {
        OneOf::Bool(b)
    } else if let Some(i) = value.to_i64() {
        OneOf::Int(i)
    } else if let Some(u) = value.to_u64() {
        OneOf::Int(i64::try_from(u).unwrap_or(i64::MAX))
    } else if let Some(f) = value.to_f64() {
        OneOf::Double(f)
    } else if let Some(s) = value.to_borrowed_str() {
        OneOf::Str(s)
    } else {
        text.clear();
        format_caught(text, format_args!("{value}"));
        OneOf::Str(text)
    }
}

/// Whether two strings are the same text, settled without reading them when they are the same
/// literal (a record's target is its module path unless the call names another).
fn same_str(a: &str, b: &str) -> bool {
    std::ptr::eq(a, b) || a == b
}

/// A `log` record's frame at `now`, correlated with the span `context` names when it is valid,
/// written in `frames`; its message is formatted as the frame is written. None for a record of
/// this crate's own targets, and for one with key-values when a format argument of the record
/// being exported logs it.
#[inline(always)]
fn frame<'f>(
    frames: &'f mut FrameBuffer,
    record: &Record<'_>,
    context: Ids,
    now: u64,
) -> Option<&'f [u8]> {
    // Counting is a leaf call on the usual record without key-values; visiting is not.
    let plain = record.key_values().count() == 0;
    if plain {
        // A template is made only for a target that is not this crate's own: finding one
        // settles it.
        if let Some(range) =
            frames.site_frame(record, context, now, |target| !is_own_target(target), None)
        {
            return Some(frames.framed(range));
        }
    }
    if is_own_target(record.target()) {
        None
    } else if plain {
        Some(frame_field_by_field(frames, record, context, now))
    } else {
        frame_with_key_values(frames, record, context, now)
    }
}

/// [`frame`] for a record without key-values whose call site has no template.
#[inline(never)]
fn frame_field_by_field<'f>(
    frames: &'f mut FrameBuffer,
    record: &Record<'_>,
    context: Ids,
    now: u64,
) -> &'f [u8] {
    frames.frame(&view(record, context, now, &[], &[], 0))
}

/// [`frame`] for a record with key-values: they are encoded first, in this thread's buffers
/// (none when a format argument of the record being exported logs this one).
#[inline(never)]
fn frame_with_key_values<'f>(
    frames: &'f mut FrameBuffer,
    record: &Record<'_>,
    context: Ids,
    now: u64,
) -> Option<&'f [u8]> {
    KEY_VALUES
        .try_with(move |kvs| {
            let mut kvs = kvs.try_borrow_mut().ok()?;
            let _ = record.key_values().visit(&mut *kvs);
            let bytes = if kvs.repeated {
                let mut collected = RecordAttributes::default();
                let _ = record.key_values().visit(&mut KvCollector(&mut collected));
                let attributes = &collected.list;
                frames.frame(&view(
                    record,
                    context,
                    now,
                    attributes,
                    &[],
                    collected.dropped,
                ))
            } else {
                // The caller has settled that the target is exported.
                match frames.site_frame(record, context, now, |_| true, Some(kvs.written())) {
                    Some(range) => frames.framed(range),
                    None => {
                        let (encoded, dropped) = kvs.written();
                        frames.frame(&view(record, context, now, &[], encoded, dropped))
                    }
                }
            };
            kvs.reset();
            Some(bytes)
        })
        .ok()
        .flatten()
}

/// The view of `record` with its key-values given as `attributes`, then `encoded`.
#[inline(always)]
fn view<'a>(
    record: &'a Record<'a>,
    context: Ids,
    now: u64,
    attributes: &'a [KeyValue],
    encoded_attributes: &'a [u8],
    dropped_attributes: u32,
) -> LogRecordView<'a> {
    let (severity_number, severity_text) = severity(record.level());
    let target = record.target();
    LogRecordView {
        time_unix_nanos: now,
        observed_unix_nanos: now,
        severity_number,
        severity_text,
        body: Body::Format(*record.args()),
        scope: target,
        file: record.file(),
        line: record.line(),
        namespace: record
            .module_path()
            .filter(|module| !same_str(module, target)),
        attributes,
        encoded_attributes,
        dropped_attributes,
        context,
    }
}

impl Log for LogBridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let (level, target) = (metadata.level(), metadata.target());
        self.inner
            .as_ref()
            .is_some_and(|i| i.enabled(metadata) && reaches_app_output(level, target))
            || is_exported(level, target, crate::core::log_floor())
    }

    fn log(&self, record: &Record<'_>) {
        let (level, target) = (record.level(), record.target());
        if let Some(inner) = &self.inner {
            if reaches_app_output(level, target) {
                inner.log(record);
            }
        }
        // The level check comes first: a filtered record costs one comparison and no clock read.
        // Whether the target is this crate's own is settled in `frame`, mostly by finding the
        // call site's template.
        if level as usize > crate::core::log_floor_number() || crate::core::is_exporter_thread() {
            return;
        }
        let (context, now) = (crate::trace::current_ids(), crate::core::now_unix_nanos());
        crate::logs::submit_with(|frames| frame(frames, record, context, now));
    }

    fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    //! The bridge encodes straight from a `log::Record`: its bytes are checked against what
    //! prost writes for the record the log data model says it is.
    use super::*;
    use crate::proto::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
    use crate::proto::logs::v1::LogRecord;
    use crate::trace::{SpanContext, SpanId, TraceId};
    use log::Level;
    use prost::Message;
    use std::fmt;

    const NOW: u64 = 1_700_000_000_123_456_789;

    use crate::logs::DecodedFrame as Frame;

    /// The record's frame as the bridge writes it, into a frame buffer left full of other
    /// records' bytes (one with a template, one without), and then again over its own.
    fn ours(record: &Record<'_>, context: Ids) -> Vec<u8> {
        let mut frames = FrameBuffer::new();
        let junk = "j".repeat(600);
        for junk in [
            Record::builder().args(format_args!("{junk}")).build(),
            Record::builder()
                .args(format_args!("{junk}"))
                .target("junk")
                .module_path_static(Some("junk::site"))
                .file_static(Some("src/a/much/longer/path/to/junk.rs"))
                .line(Some(7))
                .build(),
        ] {
            frame(&mut frames, &junk, context, NOW).expect("written");
        }
        let mut buf = Vec::new();
        for _ in 0..2 {
            buf = frame(&mut frames, record, context, NOW)
                .expect("written")
                .to_vec();
        }
        buf
    }

    fn kv(key: &str, value: Any) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    /// What the log data model makes of a record: every field spelled out.
    struct Expected<'a> {
        scope: &'a str,
        severity: (i32, &'a str),
        body: &'a str,
        attributes: Vec<KeyValue>,
        context: Ids,
        dropped: u32,
    }

    impl Expected<'_> {
        fn bytes(&self) -> Vec<u8> {
            let correlated = self.context.is_valid();
            Frame {
                scope: self.scope.to_owned(),
                record: Some(LogRecord {
                    time_unix_nano: NOW,
                    observed_time_unix_nano: NOW,
                    severity_number: self.severity.0,
                    severity_text: self.severity.1.to_owned(),
                    body: Some(AnyValue {
                        value: Some(Any::StringValue(self.body.to_owned())),
                    }),
                    attributes: self.attributes.clone(),
                    dropped_attributes_count: self.dropped,
                    flags: if correlated {
                        u32::from(self.context.flags)
                    } else {
                        0
                    },
                    trace_id: if correlated {
                        self.context.trace_id.to_bytes().to_vec()
                    } else {
                        Vec::new()
                    },
                    span_id: if correlated {
                        self.context.span_id.to_bytes().to_vec()
                    } else {
                        Vec::new()
                    },
                    event_name: String::new(),
                }),
            }
            .encode_to_vec()
        }
    }

    fn check(record: &Record<'_>, expected: &Expected<'_>) {
        let ours = ours(record, expected.context);
        let theirs = expected.bytes();
        assert_eq!(
            Frame::decode(&ours[..]).expect("decodes"),
            Frame::decode(&theirs[..]).expect("decodes")
        );
        assert_eq!(ours, theirs, "same bytes as prost");
    }

    fn code(file: &str, line: u32) -> Vec<KeyValue> {
        vec![
            kv("code.file.path", Any::StringValue(file.to_owned())),
            kv("code.line.number", Any::IntValue(i64::from(line))),
        ]
    }

    #[test]
    fn records_are_written_exactly_as_prost_writes_them() {
        let sampled = SpanContext::new_remote(TraceId(7), SpanId(9), 1).ids();
        let unsampled = SpanContext::new_remote(TraceId(u128::MAX), SpanId(u64::MAX), 0).ids();
        let half = Ids {
            span_id: SpanId(0),
            ..sampled
        };
        let long_body = "b".repeat(300);
        let huge_body = "h".repeat(70_000);
        let long_path = format!("src/{}.rs", "p".repeat(200));
        let long_target = "t".repeat(200);
        let owned = String::from("owned text");
        let debugged = vec![1, 2];
        let kvs: [(&str, log::kv::Value<'_>); 10] = [
            ("order.id", 42u64.into()),
            ("huge", u64::MAX.into()),
            ("negative", (-5i64).into()),
            ("ratio", 0.25f64.into()),
            ("vip", true.into()),
            ("name", "alice".into()),
            ("owned", log::kv::Value::from_display(&owned)),
            ("debugged", log::kv::Value::from_debug(&debugged)),
            ("", "empty key".into()),
            ("name", "bob".into()), // a repeated key overwrites
        ];
        let kv_attributes = vec![
            kv("order.id", Any::IntValue(42)),
            kv("huge", Any::IntValue(i64::MAX)),
            kv("negative", Any::IntValue(-5)),
            kv("ratio", Any::DoubleValue(0.25)),
            kv("vip", Any::BoolValue(true)),
            kv("name", Any::StringValue("bob".into())),
            kv("owned", Any::StringValue("owned text".into())),
            kv("debugged", Any::StringValue("[1, 2]".into())),
            kv("", Any::StringValue("empty key".into())),
        ];
        let severities = [
            (Level::Trace, (1, "TRACE")),
            (Level::Debug, (5, "DEBUG")),
            (Level::Info, (9, "INFO")),
            (Level::Warn, (13, "WARN")),
            (Level::Error, (17, "ERROR")),
        ];
        for (level, severity) in severities {
            for context in [Ids::default(), sampled, unsampled, half] {
                // The usual record: formatted, the target its module path, no key-values.
                check(
                    &Record::builder()
                        .args(format_args!("order {} placed", 42))
                        .level(level)
                        .target("shop::orders")
                        .module_path_static(Some("shop::orders"))
                        .file_static(Some("src/orders.rs"))
                        .line(Some(12))
                        .build(),
                    &Expected {
                        scope: "shop::orders",
                        severity,
                        body: "order 42 placed",
                        attributes: code("src/orders.rs", 12),
                        context,
                        dropped: 0,
                    },
                );
                // Key-values of every type (a repeated key last, or not), a target of its
                // own, a literal message.
                for (kvs, name) in [(&kvs[..], "bob"), (&kvs[..9], "alice")] {
                    let mut attributes = code("src/orders.rs", 16_384);
                    attributes.push(kv(
                        "code.namespace",
                        Any::StringValue("shop::orders::inner".into()),
                    ));
                    attributes.extend(kv_attributes.iter().cloned());
                    attributes[8] = kv("name", Any::StringValue(name.into()));
                    check(
                        &Record::builder()
                            .args(format_args!("placed"))
                            .level(level)
                            .target("audit")
                            .module_path_static(Some("shop::orders::inner"))
                            .file_static(Some("src/orders.rs"))
                            .line(Some(16_384))
                            .key_values(&kvs)
                            .build(),
                        &Expected {
                            scope: "audit",
                            severity,
                            body: "placed",
                            attributes,
                            context,
                            dropped: 0,
                        },
                    );
                }
            }
        }
        for context in [Ids::default(), sampled] {
            // Lengths past one byte everywhere; no module, a run-time file.
            for body in [&long_body, &huge_body] {
                check(
                    &Record::builder()
                        .args(format_args!("{body}"))
                        .level(Level::Warn)
                        .target(&long_target)
                        .file(Some(&long_path))
                        .line(Some(u32::MAX))
                        .build(),
                    &Expected {
                        scope: &long_target,
                        severity: (13, "WARN"),
                        body,
                        attributes: code(&long_path, u32::MAX),
                        context,
                        dropped: 0,
                    },
                );
            }
            // Every body length around the one- and two-byte boundaries of the body's and
            // the record's lengths, with each width of line number.
            for (n, line) in (0..300).zip([12, 300, 16_384].into_iter().cycle()) {
                let body = "x".repeat(n);
                check(
                    &Record::builder()
                        .args(format_args!("{body}"))
                        .level(Level::Info)
                        .target("shop::orders")
                        .file_static(Some("src/orders.rs"))
                        .line(Some(line))
                        .build(),
                    &Expected {
                        scope: "shop::orders",
                        severity: (9, "INFO"),
                        body: &body,
                        attributes: code("src/orders.rs", line),
                        context,
                        dropped: 0,
                    },
                );
            }
            // Past the attribute limit: the first 128 keys kept, the rest counted (a key
            // repeated past the limit still overwrites).
            let keys: Vec<String> = (0..131).map(|i| format!("k{i}")).collect();
            let long_value = "v".repeat(200);
            for repeat in [false, true] {
                let mut pairs: Vec<(&str, log::kv::Value<'_>)> = keys
                    .iter()
                    .map(|k| (k.as_str(), log::kv::Value::from(&*long_value)))
                    .collect();
                let mut expected: Vec<KeyValue> = keys[..128]
                    .iter()
                    .map(|k| kv(k, Any::StringValue(long_value.clone())))
                    .collect();
                if repeat {
                    pairs.push(("k3", 7i64.into()));
                    expected[3] = kv("k3", Any::IntValue(7));
                }
                check(
                    &Record::builder()
                        .args(format_args!("many"))
                        .level(Level::Info)
                        .target("app")
                        .key_values(&pairs)
                        .build(),
                    &Expected {
                        scope: "app",
                        severity: (9, "INFO"),
                        body: "many",
                        attributes: expected,
                        context,
                        dropped: 3,
                    },
                );
            }
            // An empty message, no code location at all.
            for args in [format_args!(""), format_args!("{}", "")] {
                check(
                    &Record::builder()
                        .args(args)
                        .level(Level::Error)
                        .target("app")
                        .build(),
                    &Expected {
                        scope: "app",
                        severity: (17, "ERROR"),
                        body: "",
                        attributes: Vec::new(),
                        context,
                        dropped: 0,
                    },
                );
            }
        }
    }

    /// One thread's call-site templates over many sites: more sites than slots, sites that
    /// differ only by line, file, module or target (run-time targets among them, one with the
    /// module's text in another string), sites too long for a template, every level, records
    /// of one site back to back and sites taking turns, messages past the buffer's room,
    /// key-values (past the limit too): each record's bytes are still prost's.
    #[test]
    fn call_site_templates_serve_only_their_own_site() {
        let run_time: Vec<String> = (0..3).map(|i| format!("run::time{i}")).collect();
        let long_target = "t".repeat(63);
        let long_file: &'static str =
            Box::leak(format!("src/{}.rs", "p".repeat(180)).into_boxed_str());
        let module_texts = [String::from("shop::orders"), String::from("shop::users")];
        let mut sites = Vec::new();
        for (m, module) in ["shop::orders", "shop::users"].into_iter().enumerate() {
            for file in ["src/orders.rs", "src/users.rs", long_file] {
                for target in [module, "audit", &long_target, &module_texts[m]] {
                    sites.push((file, module, target));
                }
                for run_time in &run_time {
                    sites.push((file, module, run_time));
                }
            }
        }
        let lines = 1..=20;
        // Each site's lines back to back, then each line's sites.
        let orders: [Vec<_>; 2] = [
            sites
                .iter()
                .flat_map(|&site| lines.clone().map(move |line| (site, line)))
                .collect(),
            lines
                .clone()
                .flat_map(|line| sites.iter().map(move |&site| (site, line)))
                .collect(),
        ];
        let sampled = SpanContext::new_remote(TraceId(7), SpanId(9), 1).ids();
        let levels = [
            (Level::Info, (9, "INFO"), Ids::default()),
            (Level::Error, (17, "ERROR"), sampled),
            (Level::Trace, (1, "TRACE"), Ids::default()),
        ];
        let mut frames = FrameBuffer::new();
        for (level, severity, context) in levels {
            for &((file, module, target), line) in orders.iter().flatten() {
                let mut attributes = code(file, line);
                if target != module {
                    attributes.push(kv("code.namespace", Any::StringValue(module.into())));
                }
                let theirs = Expected {
                    scope: target,
                    severity,
                    body: &format!("line {line}"),
                    attributes,
                    context,
                    dropped: 0,
                }
                .bytes();
                let ours = frame(
                    &mut frames,
                    &Record::builder()
                        .args(format_args!("line {line}"))
                        .level(level)
                        .target(target)
                        .module_path_static(Some(module))
                        .file_static(Some(file))
                        .line(Some(line))
                        .build(),
                    context,
                    NOW,
                )
                .expect("written")
                .to_vec();
                assert_eq!(ours, theirs, "{file}:{line} {module} {target}");
            }
        }
        // Messages longer than the buffer's room, then short again, from one site.
        for n in [300, 20_000, 70_000, 5] {
            let body = "m".repeat(n);
            let theirs = Expected {
                scope: "shop::orders",
                severity: (9, "INFO"),
                body: &body,
                attributes: code("src/orders.rs", 7),
                context: sampled,
                dropped: 0,
            }
            .bytes();
            let ours = frame(
                &mut frames,
                &Record::builder()
                    .args(format_args!("{body}"))
                    .level(Level::Info)
                    .target("shop::orders")
                    .module_path_static(Some("shop::orders"))
                    .file_static(Some("src/orders.rs"))
                    .line(Some(7))
                    .build(),
                sampled,
                NOW,
            )
            .expect("written")
            .to_vec();
            assert_eq!(ours, theirs, "a message of {n} bytes");
        }
        // Key-values from the same site, with its template: some, past the limit, none, some.
        let keys: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
        let pairs: Vec<(&str, log::kv::Value<'_>)> = keys
            .iter()
            .map(|k| (k.as_str(), log::kv::Value::from(7i64)))
            .collect();
        for n in [1, 130, 0, 2] {
            let mut attributes = code("src/orders.rs", 7);
            attributes.extend(keys[..n.min(128)].iter().map(|k| kv(k, Any::IntValue(7))));
            let theirs = Expected {
                scope: "shop::orders",
                severity: (9, "INFO"),
                body: "kv",
                attributes,
                context: sampled,
                dropped: n.saturating_sub(128) as u32,
            }
            .bytes();
            let ours = frame(
                &mut frames,
                &Record::builder()
                    .args(format_args!("kv"))
                    .level(Level::Info)
                    .target("shop::orders")
                    .module_path_static(Some("shop::orders"))
                    .file_static(Some("src/orders.rs"))
                    .line(Some(7))
                    .key_values(&&pairs[..n])
                    .build(),
                sampled,
                NOW,
            )
            .expect("written")
            .to_vec();
            assert_eq!(ours, theirs, "{n} key-values");
        }
    }

    /// This crate's own records get no frame, whether through a call site (twice: the second
    /// would find a template), field by field or with key-values; a look-alike target does.
    #[test]
    fn this_crates_own_records_have_no_frame() {
        let mut frames = FrameBuffer::new();
        let kvs: [(&str, log::kv::Value<'_>); 1] = [("k", 1i64.into())];
        for (target, own) in [
            ("plain_connect", true),
            ("plain_connect::export", true),
            ("plain_connectx", false),
        ] {
            for module in [Some(target), Some("app"), None] {
                for kvs in [&kvs[..0], &kvs[..]] {
                    for _ in 0..2 {
                        let framed = frame(
                            &mut frames,
                            &Record::builder()
                                .args(format_args!("m"))
                                .target(target)
                                .module_path_static(module)
                                .file_static(Some("src/x.rs"))
                                .line(Some(1))
                                .key_values(&kvs)
                                .build(),
                            Ids::default(),
                            NOW,
                        );
                        assert_eq!(framed.is_none(), own, "{target} {module:?}");
                    }
                }
            }
        }
    }

    /// Writes its text, then fails the way it is told to.
    struct Failing {
        panics: bool,
    }

    impl fmt::Display for Failing {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("partial")?;
            if self.panics {
                panic!("a Display impl that panics");
            }
            Err(fmt::Error)
        }
    }

    #[test]
    fn a_format_argument_that_fails_or_panics_leaves_the_text_before_it() {
        for panics in [false, true] {
            let failing = Failing { panics };
            // In the message and in a key-value (written as it comes, or collected when a key
            // repeats).
            let kvs = [
                ("bad", log::kv::Value::from_display(&failing)),
                ("bad", log::kv::Value::from_display(&failing)),
            ];
            for kvs in [&kvs[..1], &kvs[..]] {
                check(
                    &Record::builder()
                        .args(format_args!("before {failing} after"))
                        .level(Level::Info)
                        .target("app")
                        .key_values(&kvs)
                        .build(),
                    &Expected {
                        scope: "app",
                        severity: (9, "INFO"),
                        body: "before partial",
                        attributes: vec![kv("bad", Any::StringValue("partial".into()))],
                        context: Ids::default(),
                        dropped: 0,
                    },
                );
            }
        }
    }
}
