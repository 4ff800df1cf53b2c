//! plain-connect: a service's traces, metrics and logs to Plain Cloud or any OTLP/HTTP endpoint.
pub mod proto;
