//! Ready-made instrumentation following the semantic conventions: HTTP server requests, HTTP
//! client requests and database client queries, each a span plus a duration histogram (recorded
//! whether or not the trace is sampled).
//!
//! Every helper ends with `end…`, like [`Span::end`](crate::trace::Span::end): one verb for one
//! concept. `end(status_code)` for HTTP, `end_ok()`, `end_result(&result)` and `end_error(&error)`
//! where an operation succeeds or fails. Dropping a helper without ending it ends its span (like a
//! span) but records no duration, since the outcome is unknown.

pub mod db;
pub mod http;
pub(crate) mod sql;

use crate::metrics::{self, Histogram};
use std::sync::OnceLock;

/// A duration histogram in seconds, built once; `None` if the name was refused.
fn duration_histogram(
    cell: &'static OnceLock<Option<Histogram<f64>>>,
    name: &'static str,
    description: &'static str,
    boundaries: &[f64],
) -> Option<&'static Histogram<f64>> {
    cell.get_or_init(|| {
        metrics::histogram(name)
            .unit("s")
            .description(description)
            .boundaries(boundaries.to_vec())
            .build()
            .ok()
    })
    .as_ref()
}

/// `error.type` for an error value: its type name, or for a trait object (`dyn Error`,
/// `Box<dyn Error>`), whose name says nothing, the conventions' fallback `_OTHER`.
fn error_type<E: ?Sized>() -> &'static str {
    crate::trace::error_type_name::<E>().unwrap_or("_OTHER")
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_types_are_type_names_and_trait_objects_are_other() {
        assert_eq!(
            super::error_type::<std::io::Error>(),
            "std::io::error::Error"
        );
        assert_eq!(super::error_type::<dyn std::error::Error>(), "_OTHER");
        assert_eq!(
            super::error_type::<Box<dyn std::error::Error + Send + Sync>>(),
            "_OTHER"
        );
    }
}

/// Misuse the compiler catches (run as doc tests only).
///
/// Starting a span and dropping it on the spot records a zero-length span: a warning.
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// plain_connect::instrument::http::server_request("GET", "/").start();
/// ```
/// ```compile_fail
/// #![deny(unused_must_use)]
/// plain_connect::instrument::http::client_request("GET", "http://h/").start();
/// ```
/// ```compile_fail
/// #![deny(unused_must_use)]
/// plain_connect::instrument::db::query("sqlite", "SELECT 1").start();
/// ```
/// ```
/// #![deny(unused_must_use)]
/// let _request = plain_connect::instrument::http::server_request("GET", "/").start();
/// let _call = plain_connect::instrument::http::client_request("GET", "http://h/").start();
/// plain_connect::instrument::db::query("sqlite", "SELECT 1").start().end_ok();
/// ```
#[cfg(doctest)]
mod misuse {}
