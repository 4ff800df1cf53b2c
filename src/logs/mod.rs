//! Logs: records from the `log` crate, bridged to OTLP log records.

mod record;

pub use record::LogRecordData;
