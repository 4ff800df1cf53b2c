//! The bridges from the logging ecosystems: `log` records ([`log`]) and `tracing` spans and
//! events ([`tracing`], feature `tracing`) become this crate's log records and spans.
//!
//! Both share one path for a record: the same guards (this crate's own targets and the exporter
//! thread are never exported), the same severity table, the same attribute limit, and one
//! encoder of a log record correlated with a span (`logs::submit`).

pub mod log;
#[cfg(feature = "tracing")]
pub mod tracing;

use crate::attributes::{KeyValue, Str, Value};
#[cfg(feature = "tracing")]
use crate::logs::{severity, CodeLocation, LogRecordView};
use crate::trace::push_attribute;
#[cfg(feature = "tracing")]
use crate::trace::Ids;
use ::log::{Level, LevelFilter};
#[cfg(feature = "tracing")]
use std::borrow::Cow;

/// Attributes per log record beyond which new keys are dropped and counted (the OpenTelemetry
/// SDK's default log record limit).
const MAX_LOG_ATTRIBUTES: u32 = 128;

/// This crate's own targets: `plain_connect` and `plain_connect::…`, not `plain_connectx`.
fn is_own_target(target: &str) -> bool {
    target
        .strip_prefix("plain_connect")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// Whether a record at `level` from `target` is exported under `floor` (`None`: log export is
/// off). Never this crate's own records nor anything on the exporter thread: a failing endpoint
/// would otherwise feed itself.
fn is_exported(level: Level, target: &str, floor: Option<LevelFilter>) -> bool {
    floor.is_some_and(|floor| level <= floor) && from_exported_source(target)
}

/// Whether a record from `target`, on this thread, may be exported at all.
fn from_exported_source(target: &str) -> bool {
    !is_own_target(target) && !crate::core::is_exporter_thread()
}

/// Whether a record may reach the app's own logger. On the exporter thread only this crate's records and others' from INFO up do: below
/// that its HTTP and TLS libraries dump the request on the wire, export token included.
fn reaches_app_output(level: Level, target: &str) -> bool {
    may_leave_exporter_thread(level, target) || !crate::core::is_exporter_thread()
}

fn may_leave_exporter_thread(level: Level, target: &str) -> bool {
    level <= Level::Info || is_own_target(target)
}

/// A record's attributes under the log record limit: unique keys, the rest dropped and counted.
#[derive(Default)]
struct RecordAttributes {
    list: Vec<KeyValue>,
    dropped: u32,
}

impl RecordAttributes {
    fn push(&mut self, key: impl Into<Str>, value: Value) {
        push_attribute(
            &mut self.list,
            &mut self.dropped,
            MAX_LOG_ATTRIBUTES,
            KeyValue::new(key, value),
        );
    }
}

/// What a bridged `tracing` event says (the `log` bridge encodes straight from its record).
#[cfg(feature = "tracing")]
struct Bridged {
    level: Level,
    body: Cow<'static, str>,
    scope: Str,
    code: CodeLocation,
    attributes: RecordAttributes,
    /// The address of the event's `'static` metadata when it fixes the scope and the code
    /// location (not an event made from a `log` record): its call site's template key.
    site: Option<usize>,
}

#[cfg(feature = "tracing")]
impl Bridged {
    /// Hands the record to the installed pipeline, correlated with the span `context` names
    /// when it is valid.
    fn submit(&self, context: Ids) {
        let now = crate::core::now_unix_nanos();
        let (severity_number, severity_text) = severity(self.level);
        let record = LogRecordView {
            time_unix_nanos: now,
            observed_unix_nanos: now,
            severity_number,
            severity_text,
            body: crate::logs::Body::Text(&self.body),
            scope: self.scope.as_str(),
            file: self.code.file.as_deref(),
            line: self.code.line,
            namespace: self.code.namespace,
            attributes: &self.attributes.list,
            encoded_attributes: &[],
            dropped_attributes: self.attributes.dropped,
            context,
        };
        match self.site {
            Some(site) => crate::logs::submit_site(site, self.level, &record),
            None => crate::logs::submit(&record),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_targets_are_recognised_exactly() {
        assert!(is_own_target("plain_connect"));
        assert!(is_own_target("plain_connect::export"));
        assert!(!is_own_target("plain_connectx"));
        assert!(!is_own_target("ureq::unit"));
        assert!(!is_own_target("app"));
    }

    #[test]
    fn the_exporter_thread_keeps_only_info_and_up_from_other_targets() {
        assert!(!may_leave_exporter_thread(Level::Trace, "ureq_proto::util"));
        assert!(!may_leave_exporter_thread(Level::Debug, "rustls::client"));
        assert!(may_leave_exporter_thread(Level::Warn, "ureq"));
        assert!(may_leave_exporter_thread(
            Level::Debug,
            "plain_connect::export"
        ));
        assert!(
            reaches_app_output(Level::Trace, "ureq_proto::util"),
            "app threads: all"
        );
    }

    #[test]
    fn attributes_stop_at_the_limit_and_count_the_rest() {
        let mut attributes = RecordAttributes::default();
        for i in 0..MAX_LOG_ATTRIBUTES + 3 {
            attributes.push(format!("k{i}"), Value::I64(i.into()));
        }
        attributes.push("k0", Value::I64(-1));
        assert_eq!(attributes.list.len(), MAX_LOG_ATTRIBUTES as usize);
        assert_eq!(attributes.dropped, 3);
        assert_eq!(
            attributes.list[0].value,
            Value::I64(-1),
            "a repeated key overwrites"
        );
    }
}
