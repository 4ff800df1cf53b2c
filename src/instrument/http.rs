//! HTTP server request spans and the `http.server.request.duration` histogram
//! (semantic conventions v1.44).

use crate::attributes::{KeyValue, Str};
use crate::metrics::{self, Histogram, HTTP_SERVER_DURATION_BOUNDS};
use crate::trace::{self, propagation, Span, SpanKind, Status};
use std::sync::OnceLock;
use std::time::Instant;

/// Methods the conventions call known (RFC 9110 and PATCH); anything else is `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn duration_histogram() -> Option<&'static Histogram<f64>> {
    static HISTOGRAM: OnceLock<Option<Histogram<f64>>> = OnceLock::new();
    HISTOGRAM
        .get_or_init(|| {
            metrics::histogram("http.server.request.duration")
                .unit("s")
                .description("Duration of HTTP server requests.")
                .boundaries(HTTP_SERVER_DURATION_BOUNDS.to_vec())
                .build()
                .ok()
        })
        .as_ref()
}

/// The normalised method: the known method itself, or `None` for `_OTHER`.
pub(crate) fn normalise_method(method: &str) -> Option<&'static str> {
    KNOWN_METHODS.iter().find(|m| **m == method).copied()
}

/// Describes an incoming request; `.start()` opens its server span.
///
/// ```
/// use plain_connect::instrument::http;
/// let mut request = http::server_request("GET", "/users/42")
///     .scheme("https")
///     .traceparent(Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), None)
///     .start();
/// request.set_route("/users/{id}");
/// request.finish(200);
/// ```
#[must_use = "call .start() to start the request span"]
pub struct ServerRequestBuilder {
    method: String,
    path: String,
    scheme: Str,
    query: Option<String>,
    server: Option<(String, u16)>,
    client_address: Option<String>,
    user_agent: Option<String>,
    route: Option<String>,
    parent: Option<trace::SpanContext>,
}

/// Starts describing a request with its method (as received) and path (without the query).
pub fn server_request(method: &str, path: &str) -> ServerRequestBuilder {
    ServerRequestBuilder {
        method: method.to_owned(),
        path: path.to_owned(),
        scheme: Str::Static("http"),
        query: None,
        server: None,
        client_address: None,
        user_agent: None,
        route: None,
        parent: None,
    }
}

impl ServerRequestBuilder {
    /// `http` or `https` (default `http`).
    pub fn scheme(mut self, scheme: &'static str) -> Self {
        self.scheme = Str::Static(scheme);
        self
    }
    /// The query string without the `?`.
    pub fn query(mut self, query: &str) -> Self {
        self.query = (!query.is_empty()).then(|| query.to_owned());
        self
    }
    /// The server's name and port as the client addressed it (`Host`).
    pub fn server(mut self, address: &str, port: u16) -> Self {
        self.server = Some((address.to_owned(), port));
        self
    }
    /// The client's address.
    pub fn client_address(mut self, address: &str) -> Self {
        self.client_address = Some(address.to_owned());
        self
    }
    /// The `User-Agent` header.
    pub fn user_agent(mut self, user_agent: &str) -> Self {
        self.user_agent = Some(user_agent.to_owned());
        self
    }
    /// The matched route template (e.g. `/users/{id}`), when already known.
    pub fn route(mut self, route: &str) -> Self {
        self.route = Some(route.to_owned());
        self
    }
    /// The incoming `traceparent` / `tracestate` headers. A valid `traceparent` makes the
    /// request span its child; an invalid one is ignored (a new trace starts), tracestate too.
    pub fn traceparent(mut self, traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        self.parent = traceparent.and_then(|tp| propagation::extract(tp, tracestate));
        self
    }

    /// Starts the server span (current on this thread until the request finishes).
    pub fn start(self) -> ServerRequest {
        let known = normalise_method(&self.method);
        let method_attr: Str = match known {
            Some(m) => Str::Static(m),
            None => Str::Static("_OTHER"),
        };
        let name_method = known.unwrap_or("HTTP");
        let name: Str = match &self.route {
            Some(route) => format!("{name_method} {route}").into(),
            None => Str::Static(name_method),
        };
        let mut builder = trace::span(name).kind(SpanKind::Server);
        if let Some(parent) = self.parent {
            builder = builder.parent(parent);
        }
        let mut span = builder.start();
        if span.is_recording() {
            span.set_attribute("http.request.method", method_attr.clone());
            if known.is_none() {
                span.set_attribute("http.request.method_original", self.method.clone());
            }
            span.set_attribute("url.path", self.path);
            span.set_attribute("url.scheme", self.scheme.clone());
            if let Some(query) = self.query {
                span.set_attribute("url.query", query);
            }
            if let Some((address, port)) = &self.server {
                span.set_attribute("server.address", address.clone());
                span.set_attribute("server.port", *port);
            }
            if let Some(client) = self.client_address {
                span.set_attribute("client.address", client);
            }
            if let Some(ua) = self.user_agent {
                span.set_attribute("user_agent.original", ua);
            }
            if let Some(route) = &self.route {
                span.set_attribute("http.route", route.clone());
            }
        }
        ServerRequest {
            span,
            started: Instant::now(),
            method: method_attr,
            name_method,
            scheme: self.scheme,
            route: self.route,
        }
    }
}

/// An HTTP request being served: its span is current until [`ServerRequest::finish`].
pub struct ServerRequest {
    span: Span,
    started: Instant,
    method: Str,
    name_method: &'static str,
    scheme: Str,
    route: Option<String>,
}

impl ServerRequest {
    /// The route template once the router matched it; renames the span `{method} {route}`.
    pub fn set_route(&mut self, route: &str) {
        self.span
            .update_name(format!("{} {route}", self.name_method));
        self.span.set_attribute("http.route", route.to_owned());
        self.route = Some(route.to_owned());
    }

    /// The span, to add attributes or events.
    pub fn span(&mut self) -> &mut Span {
        &mut self.span
    }

    /// Records an exception event on the span (the status follows the response code).
    pub fn record_exception(&mut self, exception_type: &str, message: &str) {
        self.span.record_exception(exception_type, message);
    }

    /// Ends the request with its response status: 5xx marks the span as an error with
    /// `error.type`; the duration is recorded whether or not the trace is sampled.
    pub fn finish(mut self, status_code: u16) {
        let elapsed = self.started.elapsed().as_secs_f64();
        self.span
            .set_attribute("http.response.status_code", i64::from(status_code));
        let failed = record_finished(
            elapsed,
            self.method.clone(),
            self.scheme.clone(),
            self.route.take(),
            status_code,
        );
        if let Some((error_type, status)) = failed {
            self.span.set_attribute("error.type", error_type);
            self.span.set_status(status);
        }
        self.span.end();
    }
}

/// Records a finished request in `http.server.request.duration`, and returns the `error.type`
/// and span status a server error (5xx) calls for. Shared with the `tracing` bridge.
pub(crate) fn record_finished(
    elapsed_secs: f64,
    method: Str,
    scheme: Str,
    route: Option<String>,
    status_code: u16,
) -> Option<(String, Status)> {
    let failed = (status_code >= 500).then(|| {
        (
            status_code.to_string(),
            Status::error(format!("HTTP {status_code}")),
        )
    });
    if let Some(histogram) = duration_histogram() {
        let mut attributes = vec![
            KeyValue::new("http.request.method", method),
            KeyValue::new("url.scheme", scheme),
            KeyValue::new("http.response.status_code", i64::from(status_code)),
        ];
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route));
        }
        if let Some((error_type, _)) = &failed {
            attributes.push(KeyValue::new("error.type", error_type.clone()));
        }
        histogram.record(elapsed_secs, &attributes);
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_normalised_case_sensitively() {
        assert_eq!(normalise_method("GET"), Some("GET"));
        assert_eq!(normalise_method("PATCH"), Some("PATCH"));
        assert_eq!(normalise_method("get"), None);
        assert_eq!(normalise_method("PURGE"), None);
    }
}
