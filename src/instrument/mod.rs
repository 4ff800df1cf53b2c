//! Ready-made instrumentation following the semantic conventions: HTTP server requests and
//! database client queries, each a span plus a duration histogram.

pub mod sql;
