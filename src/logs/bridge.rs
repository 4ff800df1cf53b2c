//! The `log::Log` bridge: every record still goes to the app's own logger; those at or above the
//! export floor also become OTLP log records, correlated with the current span.
//!
//! No feedback loop: records from this crate's own targets and anything logged on the exporter
//! thread (its HTTP client's connection errors included) are never exported — a failing endpoint
//! would otherwise feed itself. The app's own records, from any library and any target, are.

use super::record::{CodeLocation, LogRecordData};
use crate::attributes::{KeyValue, Str, Value};
use crate::trace::Ids;
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::borrow::Cow;
use std::cell::Cell;

/// Attributes per record beyond which the rest are dropped and counted.
const MAX_ATTRIBUTES: usize = 128;

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

/// Installs the bridge as the process's logger (wrapping `inner` when given) and widens
/// `log::max_level` to the export floor of the installed pipeline, or to `Info` when none is
/// installed yet; it never narrows what the wrapped logger asked for.
///
/// Fails if another logger is already installed (Rust allows one per process): then wrap that
/// logger with [`LogBridge::wrap`] where it is created.
pub fn install(inner: Option<Box<dyn Log>>) -> Result<(), log::SetLoggerError> {
    let before = log::max_level();
    let bridge = match inner {
        Some(inner) => LogBridge::wrap(inner),
        None => LogBridge::export_only(),
    };
    log::set_boxed_logger(Box::new(bridge))?;
    let floor = crate::core::log_floor().unwrap_or(LevelFilter::Info);
    log::set_max_level(before.max(floor));
    widen_max_level(floor);
    Ok(())
}

/// Raises `log::max_level` to `floor` if it is lower, so libraries' records reach the exporter.
pub(crate) fn widen_max_level(floor: LevelFilter) {
    if log::max_level() < floor {
        log::set_max_level(floor);
    }
}

/// This crate's own targets: `plain_connect` and `plain_connect::…`, not `plain_connectx`.
fn is_own_target(target: &str) -> bool {
    target
        .strip_prefix("plain_connect")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

thread_local! {
    /// Set while this thread is inside the bridge, so a wrapped logger that logs cannot recurse.
    static IN_BRIDGE: Cell<bool> = const { Cell::new(false) };
}

/// OTLP severity number and text for a `log` level.
pub(crate) fn severity(level: Level) -> (u8, &'static str) {
    match level {
        Level::Trace => (1, "TRACE"),
        Level::Debug => (5, "DEBUG"),
        Level::Info => (9, "INFO"),
        Level::Warn => (13, "WARN"),
        Level::Error => (17, "ERROR"),
    }
}

fn export_floor() -> Option<LevelFilter> {
    crate::core::log_floor()
}

/// Whether a record with this metadata is to be exported (floor and feedback guard).
fn wants_export(metadata: &Metadata<'_>, floor: Option<LevelFilter>) -> bool {
    floor.is_some_and(|floor| metadata.level() <= floor)
        && !is_own_target(metadata.target())
        && !crate::core::is_exporter_thread()
}

struct KvCollector<'a> {
    attributes: &'a mut Vec<KeyValue>,
    dropped: u32,
}

impl<'kvs> log::kv::VisitSource<'kvs> for KvCollector<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        if self.attributes.len() >= MAX_ATTRIBUTES {
            self.dropped += 1;
            return Ok(());
        }
        let typed = if let Some(b) = value.to_bool() {
            Value::Bool(b)
        } else if let Some(i) = value.to_i64() {
            Value::I64(i)
        } else if let Some(u) = value.to_u64() {
            Value::from(u)
        } else if let Some(f) = value.to_f64() {
            Value::F64(f)
        } else if let Some(s) = value.to_borrowed_str() {
            Value::from(s.to_owned())
        } else {
            Value::from(value.to_string())
        };
        self.attributes
            .push(KeyValue::new(key.as_str().to_owned(), typed));
        Ok(())
    }
}

thread_local! {
    /// Targets seen on this thread, shared rather than allocated per record; bounded.
    static TARGETS: std::cell::RefCell<Vec<std::sync::Arc<str>>> = const { std::cell::RefCell::new(Vec::new()) };
}

const MAX_INTERNED_TARGETS: usize = 64;

fn interned_target(target: &str) -> Str {
    TARGETS
        .try_with(|targets| {
            let mut targets = targets.borrow_mut();
            if let Some(found) = targets.iter().find(|t| &***t == target) {
                return Str::Owned(std::sync::Arc::clone(found));
            }
            let new: std::sync::Arc<str> = target.into();
            if targets.len() < MAX_INTERNED_TARGETS {
                targets.push(std::sync::Arc::clone(&new));
            }
            Str::Owned(new)
        })
        .unwrap_or_else(|_| Str::from(target.to_owned()))
}

/// Turns a `log` record into an OTLP log record, correlated with the span `context` names when
/// it is valid.
pub(crate) fn to_record(record: &Record<'_>, context: Ids) -> LogRecordData {
    let now = crate::core::now_unix_nanos();
    let (severity_number, severity_text) = severity(record.level());
    let body = match record.args().as_str() {
        Some(literal) => Cow::Borrowed(literal),
        None => Cow::Owned(record.args().to_string()),
    };
    let code = CodeLocation {
        file: match (record.file_static(), record.file()) {
            (Some(file), _) => Some(Str::Static(file)),
            (None, Some(file)) => Some(Str::from(file.to_owned())),
            _ => None,
        },
        line: record.line(),
        namespace: record
            .module_path_static()
            .filter(|module| *module != record.target()),
    };
    let mut attributes = Vec::new();
    let mut collector = KvCollector {
        attributes: &mut attributes,
        dropped: 0,
    };
    let _ = record.key_values().visit(&mut collector);
    let dropped_attributes = collector.dropped;
    let correlated = context.is_valid();
    LogRecordData {
        time_unix_nanos: now,
        observed_unix_nanos: now,
        severity_number,
        severity_text,
        body,
        scope: match record.module_path_static() {
            // The usual case: the target is the module path, a literal shared without counting.
            Some(module) if module == record.target() => Str::Static(module),
            _ => interned_target(record.target()),
        },
        code,
        attributes,
        dropped_attributes,
        trace_id: if correlated {
            context.trace_id
        } else {
            Default::default()
        },
        span_id: if correlated {
            context.span_id
        } else {
            Default::default()
        },
        flags: if correlated { context.flags } else { 0 },
    }
}

impl Log for LogBridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.inner.as_ref().is_some_and(|i| i.enabled(metadata))
            || wants_export(metadata, export_floor())
    }

    fn log(&self, record: &Record<'_>) {
        if let Some(inner) = &self.inner {
            inner.log(record);
        }
        // The level check comes first: a filtered record costs one comparison and no clock read.
        let Some(floor) = export_floor() else {
            return;
        };
        if record.level() > floor || !wants_export(record.metadata(), Some(floor)) {
            return;
        }
        let entered = IN_BRIDGE
            .try_with(|flag| !flag.replace(true))
            .unwrap_or(false);
        if !entered {
            return;
        }
        let data = to_record(record, crate::trace::current_ids());
        crate::logs::submit(&data);
        let _ = IN_BRIDGE.try_with(|flag| flag.set(false));
    }

    fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SpanContext, SpanId, TraceId};

    #[test]
    fn severities_follow_the_log_data_model() {
        assert_eq!(severity(Level::Trace), (1, "TRACE"));
        assert_eq!(severity(Level::Debug), (5, "DEBUG"));
        assert_eq!(severity(Level::Info), (9, "INFO"));
        assert_eq!(severity(Level::Warn), (13, "WARN"));
        assert_eq!(severity(Level::Error), (17, "ERROR"));
    }

    #[test]
    fn own_targets_are_recognised_exactly() {
        assert!(is_own_target("plain_connect"));
        assert!(is_own_target("plain_connect::export"));
        assert!(!is_own_target("plain_connectx"));
        assert!(!is_own_target("ureq::unit"));
        assert!(!is_own_target("app"));
    }

    #[test]
    fn records_carry_kv_code_location_and_the_span() {
        let context = SpanContext::new_remote(TraceId(7), SpanId(9), 1);
        let kvs = [
            ("order.id", log::kv::Value::from(42u64)),
            ("vip", true.into()),
        ];
        let record = |context: &SpanContext| {
            to_record(
                &Record::builder()
                    .args(format_args!("order {} placed", 42))
                    .level(Level::Warn)
                    .target("shop::orders")
                    .file(Some("src/orders.rs"))
                    .line(Some(12))
                    .key_values(&kvs)
                    .build(),
                context.ids(),
            )
        };
        let data = record(&context);
        assert_eq!(data.body, "order 42 placed");
        assert_eq!((data.severity_number, data.severity_text), (13, "WARN"));
        assert_eq!(data.scope.as_str(), "shop::orders");
        assert_eq!(
            (data.trace_id, data.span_id, data.flags),
            (TraceId(7), SpanId(9), 1)
        );
        let get = |k: &str| {
            data.all_attributes()
                .find(|a| a.key.as_str() == k)
                .map(|a| a.value)
        };
        assert_eq!(get("order.id"), Some(Value::I64(42)));
        assert_eq!(get("vip"), Some(Value::Bool(true)));
        assert_eq!(get("code.line.number"), Some(Value::I64(12)));
        assert_eq!(get("code.file.path"), Some(Value::from("src/orders.rs")));

        let outside = record(&SpanContext::none());
        assert!(!outside.trace_id.is_valid() && !outside.span_id.is_valid());
    }
}
