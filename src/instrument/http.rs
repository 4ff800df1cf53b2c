//! HTTP server and client request spans with the `http.server.request.duration` and
//! `http.client.request.duration` histograms (semantic conventions v1.44).

use super::error_type;
use crate::attributes::{KeyValue, Str};
use crate::metrics::{Histogram, SECONDS_BOUNDS};
use crate::trace::{self, propagation, Span, SpanContext, SpanKind, Status};
use std::fmt::Display;
use std::sync::OnceLock;
use std::time::Instant;

/// Methods the conventions call known (RFC 9110 and PATCH); anything else is `_OTHER`.
const KNOWN_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// Query parameters whose values the conventions redact from `url.full` by default.
const REDACTED_QUERY_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

fn server_duration() -> Option<&'static Histogram<f64>> {
    static HISTOGRAM: OnceLock<Option<Histogram<f64>>> = OnceLock::new();
    super::duration_histogram(
        &HISTOGRAM,
        "http.server.request.duration",
        "Duration of HTTP server requests.",
        &SECONDS_BOUNDS,
    )
}

/// The conventions advise the same boundaries for client and server durations.
fn client_duration() -> Option<&'static Histogram<f64>> {
    static HISTOGRAM: OnceLock<Option<Histogram<f64>>> = OnceLock::new();
    super::duration_histogram(
        &HISTOGRAM,
        "http.client.request.duration",
        "Duration of HTTP client requests.",
        &SECONDS_BOUNDS,
    )
}

/// The normalised method: the known method itself, or `None` for `_OTHER`.
pub(crate) fn normalise_method(method: &str) -> Option<&'static str> {
    KNOWN_METHODS.iter().find(|m| **m == method).copied()
}

/// `http.request.method`, plus `http.request.method_original` when the method is not known.
fn method_attributes(method: &str) -> (Str, Option<String>) {
    match normalise_method(method) {
        Some(known) => (Str::Static(known), None),
        None => (Str::Static("_OTHER"), Some(method.to_owned())),
    }
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
/// request.end(200);
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
    /// The request's headers as `(name, value)` pairs, a repeated header once per value: reads
    /// `traceparent` and `tracestate` as [`propagation::extract_headers`] does (two
    /// `traceparent` headers are invalid and start a new trace; `tracestate` values combine).
    /// Prefer it to [`traceparent`](Self::traceparent) when the server hands over every value.
    pub fn trace_headers<'a>(
        mut self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        self.parent = propagation::extract_headers(headers);
        self
    }

    /// Starts the server span (current on this thread until the request ends).
    #[must_use = "the request span ends when this is dropped; keep it until the response is sent"]
    pub fn start(self) -> ServerRequest {
        let (method_attr, method_original) = method_attributes(&self.method);
        let name_method = normalise_method(&self.method).unwrap_or("HTTP");
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
            if let Some(original) = method_original {
                span.set_attribute("http.request.method_original", original);
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

/// An HTTP request being served: its span is current until [`ServerRequest::end`].
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

    /// The request span's context, e.g. to hand to a worker thread.
    pub fn context(&self) -> &SpanContext {
        self.span.context()
    }

    /// Ends the request with its response status: 5xx (or a code outside 100–599) marks the
    /// span as an error with `error.type`; 4xx is the client's error, not the server's. The
    /// duration is recorded whether or not the trace is sampled.
    pub fn end(mut self, status_code: u16) {
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

/// Describes an outgoing request; `.start()` opens its client span.
///
/// The request's headers must carry [`ClientRequest::headers`] (`traceparent`, `tracestate`) so
/// the server's span joins this trace. With [ureq](https://docs.rs/ureq) 3, whose builder is
/// taken and returned by value:
///
/// ```
/// use plain_connect::instrument::http;
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// # let url = format!("http://{}/users/42", listener.local_addr().unwrap());
/// # std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     let (mut socket, _) = listener.accept().unwrap();
/// #     let mut buffer = [0; 4096];
/// #     let _ = socket.read(&mut buffer).unwrap();
/// #     socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").unwrap();
/// # });
///
/// let mut request = http::client_request("GET", &url).url_template("/users/{id}").start();
/// let mut builder = ureq::get(&url);
/// for (name, value) in request.headers() {
///     builder = builder.header(name, value);
/// }
/// request.set_protocol_version("1.1"); // ureq speaks HTTP/1.1
/// match builder.call() {
///     Ok(response) => request.end(response.status().as_u16()),
///     // ureq turns 4xx/5xx into this error by default: still a response
///     Err(ureq::Error::StatusCode(code)) => request.end(code),
///     Err(error) => request.end_error(&error), // no response: connection, timeout...
/// }
/// ```
#[must_use = "call .start() to start the request span"]
pub struct ClientRequestBuilder {
    method: String,
    url: String,
    url_template: Option<String>,
}

/// Starts describing an outgoing request with its method and absolute URL.
///
/// `url.full` is recorded with credentials and signature query values (`AWSAccessKeyId`,
/// `Signature`, `sig`, `X-Goog-Signature`) replaced by `REDACTED`, as the conventions ask;
/// `server.address` and `server.port` (the scheme's default when the URL has none) come from it.
pub fn client_request(method: &str, url: &str) -> ClientRequestBuilder {
    ClientRequestBuilder {
        method: method.to_owned(),
        url: url.to_owned(),
        url_template: None,
    }
}

impl ClientRequestBuilder {
    /// The URL's template (e.g. `/users/{id}`): names the span `{method} {template}` instead of
    /// `{method}`, and is recorded as `url.template`.
    pub fn url_template(mut self, template: &str) -> Self {
        self.url_template = Some(template.to_owned());
        self
    }

    /// Starts the client span: a child of the current span, and current until the request ends.
    #[must_use = "the request span ends when this is dropped; keep it until the response arrived"]
    pub fn start(self) -> ClientRequest {
        let (method_attr, method_original) = method_attributes(&self.method);
        let name_method = normalise_method(&self.method).unwrap_or("HTTP");
        let name: Str = match &self.url_template {
            Some(template) => format!("{name_method} {template}").into(),
            None => Str::Static(name_method),
        };
        let mut span = trace::span(name).kind(SpanKind::Client).start();
        let parts = crate::url::split(&self.url);
        let server = parts
            .as_ref()
            .map(|p| (p.host.to_owned(), p.port_or_default()));
        if span.is_recording() {
            span.set_attribute("http.request.method", method_attr.clone());
            if let Some(original) = method_original {
                span.set_attribute("http.request.method_original", original);
            }
            span.set_attribute("url.full", redacted_url(&self.url));
            if let Some((address, port)) = &server {
                span.set_attribute("server.address", address.clone());
                if let Some(port) = port {
                    span.set_attribute("server.port", *port);
                }
            }
            if let Some(template) = self.url_template {
                span.set_attribute("url.template", template);
            }
        }
        ClientRequest {
            span,
            started: Instant::now(),
            method: method_attr,
            server,
            protocol_version: None,
        }
    }
}

/// `url` with userinfo and the signature query values the conventions name replaced by
/// `REDACTED`; a URL that does not split is kept as given.
fn redacted_url(url: &str) -> String {
    let Some(parts) = crate::url::split(url) else {
        return url.to_owned();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(parts.scheme);
    out.push_str("://");
    if parts.userinfo.is_some() {
        out.push_str("REDACTED:REDACTED@");
    }
    out.push_str(parts.host_port);
    let (before_fragment, fragment) = match parts.rest.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (parts.rest, None),
    };
    match before_fragment.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            for (i, pair) in query.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                match pair.split_once('=') {
                    Some((key, _)) if REDACTED_QUERY_KEYS.contains(&key) => {
                        out.push_str(key);
                        out.push_str("=REDACTED");
                    }
                    _ => out.push_str(pair),
                }
            }
        }
        None => out.push_str(before_fragment),
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// An HTTP request being sent: its span is current until [`ClientRequest::end`],
/// [`ClientRequest::end_error`] or [`ClientRequest::end_error_type`].
pub struct ClientRequest {
    span: Span,
    started: Instant,
    method: Str,
    server: Option<(String, Option<u16>)>,
    protocol_version: Option<&'static str>,
}

impl ClientRequest {
    /// The headers that carry this request's span to the server, as `(name, value)` pairs:
    /// `traceparent`, and `tracestate` when there is one. With no pipeline installed the span has
    /// no context of its own: then the headers carry what is current (the incoming trace a server
    /// span passed through), so a service whose telemetry is off does not cut the trace.
    /// Owned values, so a builder taken by value (`builder = builder.header(name, value)`) can
    /// take them in a loop.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, String)> {
        let own = self.span.context();
        if own.is_valid() {
            propagation::headers_for(own)
        } else {
            propagation::headers_for(&trace::current())
        }
    }

    /// The span, to add attributes or events.
    pub fn span(&mut self) -> &mut Span {
        &mut self.span
    }

    /// The request span's context.
    pub fn context(&self) -> &SpanContext {
        self.span.context()
    }

    /// `network.protocol.version` (`1.1`, `2`, `3`) once known, on the span and the duration.
    pub fn set_protocol_version(&mut self, version: &'static str) {
        self.span.set_attribute("network.protocol.version", version);
        self.protocol_version = Some(version);
    }

    /// Ends the request with the response's status: 4xx and 5xx (or a code outside 100–599)
    /// mark the span as an error with `error.type` = the code, as the conventions ask of
    /// clients. The duration is recorded whether or not the trace is sampled.
    pub fn end(self, status_code: u16) {
        let failed = !(100..400).contains(&status_code);
        self.end_with(Some(status_code), failed.then(|| status_code.to_string()));
    }

    /// Ends a request that got no response (connection refused, timeout, TLS failure...):
    /// `error.type` is the error's type name (`_OTHER` for a `dyn Error`), the status an error
    /// with its message.
    pub fn end_error<E: Display + ?Sized>(mut self, error: &E) {
        self.span.set_status(Status::error(error.to_string()));
        self.end_with(None, Some(error_type::<E>().to_owned()));
    }

    /// Ends a request that got no response with an `error.type` the caller knows, e.g.
    /// `timeout` or `name_resolution_error` (the conventions' examples); it is the status message
    /// too.
    pub fn end_error_type(mut self, error_type: &str) {
        self.span.set_status(Status::error(error_type.to_owned()));
        self.end_with(None, Some(error_type.to_owned()));
    }

    fn end_with(mut self, status_code: Option<u16>, error: Option<String>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some(code) = status_code {
            self.span
                .set_attribute("http.response.status_code", i64::from(code));
            if error.is_some() {
                self.span.set_status(Status::error(format!("HTTP {code}")));
            }
        }
        if let Some(error) = &error {
            self.span.set_attribute("error.type", error.clone());
        }
        if let Some(histogram) = client_duration() {
            let mut attributes = vec![KeyValue::new("http.request.method", self.method.clone())];
            if let Some((address, port)) = self.server.take() {
                attributes.push(KeyValue::new("server.address", address));
                if let Some(port) = port {
                    attributes.push(KeyValue::new("server.port", port));
                }
            }
            if let Some(code) = status_code {
                attributes.push(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            if let Some(version) = self.protocol_version {
                attributes.push(KeyValue::new("network.protocol.version", version));
            }
            if let Some(error) = error {
                attributes.push(KeyValue::new("error.type", error));
            }
            histogram.record(elapsed, &attributes);
        }
        self.span.end();
    }
}

/// Records a finished request in `http.server.request.duration`, and returns the `error.type`
/// and span status a server error (5xx, or a code outside 100–599) calls for. Shared with the
/// `tracing` bridge.
pub(crate) fn record_finished(
    elapsed_secs: f64,
    method: Str,
    scheme: Str,
    route: Option<String>,
    status_code: u16,
) -> Option<(String, Status)> {
    let failed = (!(100..500).contains(&status_code)).then(|| {
        (
            status_code.to_string(),
            Status::error(format!("HTTP {status_code}")),
        )
    });
    if let Some(histogram) = server_duration() {
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

    #[test]
    fn client_urls_lose_credentials_and_signatures() {
        let cases = [
            (
                "https://api.example.com/a?b=1",
                "https://api.example.com/a?b=1",
            ),
            (
                "https://user:secret@h:8443/p?x=1&sig=abc&Signature=s&y#top",
                "https://REDACTED:REDACTED@h:8443/p?x=1&sig=REDACTED&Signature=REDACTED&y#top",
            ),
            (
                "http://h?AWSAccessKeyId=AK&X-Goog-Signature=g&sigx=keep",
                "http://h?AWSAccessKeyId=REDACTED&X-Goog-Signature=REDACTED&sigx=keep",
            ),
            ("not a url", "not a url"),
        ];
        for (url, expected) in cases {
            assert_eq!(redacted_url(url), expected, "{url}");
        }
    }
}
