//! Database client spans and the `db.client.operation.duration` histogram
//! (semantic conventions v1.44).

use super::sql;
use crate::attributes::{KeyValue, Str};
use crate::metrics::{self, Histogram, DB_CLIENT_DURATION_BOUNDS};
use crate::trace::{self, Span, SpanKind, Status};
use std::sync::OnceLock;
use std::time::Instant;

fn duration_histogram() -> Option<&'static Histogram<f64>> {
    static HISTOGRAM: OnceLock<Option<Histogram<f64>>> = OnceLock::new();
    HISTOGRAM
        .get_or_init(|| {
            metrics::histogram("db.client.operation.duration")
                .unit("s")
                .description("Duration of database client operations.")
                .boundaries(DB_CLIENT_DURATION_BOUNDS.to_vec())
                .build()
                .ok()
        })
        .as_ref()
}

/// Describes a query; `.start()` opens its client span.
///
/// ```
/// use plain_connect::instrument::db;
/// let query = db::query("postgresql", "SELECT * FROM users WHERE id = $1")
///     .namespace("shop")
///     .server("db.internal", 5432)
///     .start();
/// // ... run the query ...
/// query.finish(None::<&str>);
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

    /// Starts the client span (a child of the current span).
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

/// A query in flight: its span is current until [`Query::finish`].
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

    /// Ends the query: `error` is the error's type (e.g. `timeout`, a SQLSTATE or an error
    /// type name), `None` on success. Records the duration whether or not the trace is sampled.
    pub fn finish<E: AsRef<str>>(mut self, error: Option<E>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let error = error.map(|e| e.as_ref().to_owned());
        if let Some(error_type) = &error {
            self.span.set_attribute("error.type", error_type.clone());
            self.span.set_status(Status::error(error_type.clone()));
        }
        record_duration(
            elapsed,
            self.system.clone(),
            self.operation.take(),
            self.collection.take(),
            self.namespace.take(),
            error,
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
    error_type: Option<String>,
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
