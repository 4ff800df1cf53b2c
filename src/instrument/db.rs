//! Database client spans and the `db.client.operation.duration` histogram
//! (semantic conventions v1.44).

use super::{error_type, sql};
use crate::attributes::{KeyValue, Str};
use crate::metrics::{Histogram, DB_CLIENT_DURATION_BOUNDS};
use crate::trace::{self, Span, SpanContext, SpanKind, Status};
use std::fmt::Display;
use std::sync::OnceLock;
use std::time::Instant;

fn duration_histogram() -> Option<&'static Histogram<f64>> {
    static HISTOGRAM: OnceLock<Option<Histogram<f64>>> = OnceLock::new();
    super::duration_histogram(
        &HISTOGRAM,
        "db.client.operation.duration",
        "Duration of database client operations.",
        &DB_CLIENT_DURATION_BOUNDS,
    )
}

/// Describes a query; `.start()` opens its client span.
///
/// ```
/// use plain_connect::instrument::db;
/// let query = db::query("postgresql", "SELECT * FROM users WHERE id = $1")
///     .namespace("shop")
///     .server("db.internal", 5432)
///     .start();
/// let result: Result<usize, std::io::Error> = Ok(1); // ... run the query ...
/// query.end_result(&result);
/// ```
#[must_use = "call .start() to start the query span"]
pub struct QueryBuilder {
    system: Str,
    text: String,
    namespace: Option<String>,
    server: Option<(String, u16)>,
    parameterized: bool,
}

/// A query against `system` (`postgresql`, `mysql`, `sqlite`...): the text is summarised for the
/// span name and sanitised (literals → `?`) for `db.query.text`.
pub fn query(system: &'static str, text: &str) -> QueryBuilder {
    QueryBuilder {
        system: Str::Static(system),
        text: text.to_owned(),
        namespace: None,
        server: None,
        parameterized: false,
    }
}

impl QueryBuilder {
    /// The database (`db.namespace`).
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }
    /// The server's address and port.
    pub fn server(mut self, address: &str, port: u16) -> Self {
        self.server = Some((address.to_owned(), port));
        self
    }
    /// The text uses bind parameters only, so it carries no literals and is recorded verbatim.
    pub fn parameterized(mut self) -> Self {
        self.parameterized = true;
        self
    }

    /// Starts the client span (a child of the current span, and current until the query ends).
    #[must_use = "the query span ends when this is dropped; keep it until the query returned"]
    pub fn start(self) -> Query {
        let summary = sql::summarize(&self.text);
        let name: Str = match (&summary.summary, &summary.operation, &summary.collection) {
            (Some(s), _, _) => s.clone().into(),
            (None, Some(op), Some(target)) => format!("{op} {target}").into(),
            (None, None, Some(target)) => target.clone().into(),
            _ => self.system.clone(),
        };
        let mut span = trace::span(name).kind(SpanKind::Client).start();
        if span.is_recording() {
            span.set_attribute("db.system.name", self.system.clone());
            let text = if self.parameterized {
                self.text
            } else {
                sql::sanitize(&self.text)
            };
            span.set_attribute("db.query.text", text);
            span.set_attributes(summary_attributes(&summary));
            if let Some(ns) = &self.namespace {
                span.set_attribute("db.namespace", ns.clone());
            }
            if let Some((address, port)) = &self.server {
                span.set_attribute("server.address", address.clone());
                span.set_attribute("server.port", *port);
            }
        }
        Query {
            span,
            started: Instant::now(),
            system: self.system,
            operation: summary.operation,
            collection: summary.collection,
            namespace: self.namespace,
        }
    }
}

/// A query in flight: its span is current until it ends with [`Query::end_ok`],
/// [`Query::end_result`], [`Query::end_error`] or [`Query::end_error_type`].
pub struct Query {
    span: Span,
    started: Instant,
    system: Str,
    operation: Option<String>,
    collection: Option<String>,
    namespace: Option<String>,
}

impl Query {
    /// The span, to add attributes such as `db.response.returned_rows`.
    pub fn span(&mut self) -> &mut Span {
        &mut self.span
    }

    /// The query span's context.
    pub fn context(&self) -> &SpanContext {
        self.span.context()
    }

    /// Ends the query as a success. Records the duration whether or not the trace is sampled.
    pub fn end_ok(self) {
        self.end_with(None);
    }

    /// Ends the query with the outcome of running it: an `Err` is [`Query::end_error`].
    ///
    /// ```
    /// # use plain_connect::instrument::db;
    /// let query = db::query("sqlite", "DELETE FROM sessions").start();
    /// let deleted: Result<u64, Box<dyn std::error::Error>> = Ok(3);
    /// query.end_result(&deleted);
    /// ```
    pub fn end_result<T, E: Display>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.end_ok(),
            Err(error) => self.end_error(error),
        }
    }

    /// Ends the query as failed: `error.type` is the error's type name (`_OTHER` for a
    /// `dyn Error`), the span's status an error with the error's message.
    pub fn end_error<E: Display + ?Sized>(self, error: &E) {
        self.end_with(Some((Str::Static(error_type::<E>()), error.to_string())));
    }

    /// Ends the query as failed with an `error.type` the caller knows, e.g. the database's
    /// status code (a SQLSTATE such as `23505`) or `timeout`; it is the status message too.
    pub fn end_error_type(self, error_type: &str) {
        self.end_with(Some((
            Str::from(error_type.to_owned()),
            error_type.to_owned(),
        )));
    }

    fn end_with(mut self, error: Option<(Str, String)>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some((error_type, message)) = &error {
            self.span.set_attribute("error.type", error_type.clone());
            self.span.set_status(Status::error(message.clone()));
        }
        record_duration(
            elapsed,
            self.system.clone(),
            self.operation.take(),
            self.collection.take(),
            self.namespace.take(),
            error.map(|(error_type, _)| error_type),
        );
        self.span.end();
    }
}

/// The span attributes a query's summary gives: operation, collection and summary, when known.
pub(crate) fn summary_attributes(summary: &sql::QuerySummary) -> Vec<KeyValue> {
    [
        ("db.operation.name", &summary.operation),
        ("db.collection.name", &summary.collection),
        ("db.query.summary", &summary.summary),
    ]
    .into_iter()
    .filter_map(|(key, value)| Some(KeyValue::new(key, value.clone()?)))
    .collect()
}

/// Records one operation in `db.client.operation.duration` (shared with the `tracing` bridge).
pub(crate) fn record_duration(
    elapsed_secs: f64,
    system: Str,
    operation: Option<String>,
    collection: Option<String>,
    namespace: Option<String>,
    error_type: Option<Str>,
) {
    let Some(histogram) = duration_histogram() else {
        return;
    };
    let mut attributes = vec![KeyValue::new("db.system.name", system)];
    if let Some(op) = operation {
        attributes.push(KeyValue::new("db.operation.name", op));
    }
    if let Some(collection) = collection {
        attributes.push(KeyValue::new("db.collection.name", collection));
    }
    if let Some(ns) = namespace {
        attributes.push(KeyValue::new("db.namespace", ns));
    }
    if let Some(error_type) = error_type {
        attributes.push(KeyValue::new("error.type", error_type));
    }
    histogram.record(elapsed_secs, &attributes);
}
