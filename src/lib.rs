//! plain-connect: a service's traces, metrics and logs to Plain Cloud or any OTLP/HTTP endpoint.
#![warn(missing_docs)]

mod attributes;
pub mod export;
pub mod logs;
pub mod metrics;
pub mod proto;
pub mod trace;

pub use attributes::{KeyValue, Str, Value};
