//! Ready-made instrumentation following the semantic conventions: HTTP server requests and
//! database client queries, each a span plus a duration histogram (recorded whether or not the
//! trace is sampled).

pub mod db;
pub mod http;
pub mod sql;
