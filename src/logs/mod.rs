//! Logs: records from the `log` crate, bridged to OTLP log records.
//!
//! Rust has one global logger, so the bridge wraps the app's own (env_logger, a file logger…)
//! and forwards every record to it unchanged; turning export on never silences the console.
//!
//! ```no_run
//! # struct MyLogger;
//! # impl log::Log for MyLogger {
//! #     fn enabled(&self, _: &log::Metadata) -> bool { true }
//! #     fn log(&self, r: &log::Record) { eprintln!("{}", r.args()) }
//! #     fn flush(&self) {}
//! # }
//! let telemetry = plain_connect::init!().unwrap();
//! plain_connect::logs::install(Some(Box::new(MyLogger))).unwrap();
//! log::info!(user_id = 42; "signed in");
//! ```

mod record;
mod site;

pub(crate) use crate::bridges::log::widen_max_level;
pub use crate::bridges::log::{install, LogBridge};
#[cfg(any(test, feature = "tracing"))]
pub(crate) use record::CodeLocation;
pub(crate) use record::{format_caught, severity, submit_with, Body, FrameBuffer, LogRecordView};
#[cfg(test)]
pub(crate) use record::{log_frame, DecodedFrame, LogRecordData};
#[cfg(feature = "tracing")]
pub(crate) use record::{submit, submit_site};
