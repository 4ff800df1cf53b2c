//! One HTTP POST of an encoded batch, and what its outcome means for retrying.
//!
//! Only this module knows about HTTP. Redirects are never followed (the token must not travel
//! to another host), response bodies are read with a size cap, and every failure is classified
//! as retryable or not per the OTLP/HTTP specification.

use super::late_headers::{FillingConnector, LateHeaders};
use super::report::{Cause, Reason, Redactor};
use super::Signal;
use crate::proto::collector::logs::v1::ExportLogsServiceResponse;
use crate::proto::collector::metrics::v1::ExportMetricsServiceResponse;
use crate::proto::collector::trace::v1::ExportTraceServiceResponse;
use crate::settings::Token;
use prost::Message;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, DefaultConnector};

/// Responses larger than this (after decompression) are an error (OTLP/HTTP: 4 MiB).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;
/// Request bodies larger than this (before compression) are not sent (OTLP/HTTP: 64 MiB).
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Where and how to send.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) traces_url: String,
    pub(crate) metrics_url: String,
    pub(crate) logs_url: String,
    /// Extra headers, `Authorization` included; values are secrets and never logged.
    pub(crate) headers: Vec<(String, Token)>,
    /// Headers for one signal only (traces, metrics, logs), sent after `headers`.
    pub(crate) signal_headers: [Vec<(String, Token)>; 3],
    pub(crate) gzip: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
}

impl Endpoint {
    fn url(&self, signal: Signal) -> &str {
        match signal {
            Signal::Traces => &self.traces_url,
            Signal::Metrics => &self.metrics_url,
            Signal::Logs => &self.logs_url,
        }
    }
}

/// What one attempt came to.
#[derive(Debug, PartialEq)]
pub(crate) enum Attempt {
    /// 2xx. `rejected` items from `partial_success` are not to be retried; `warning` is the
    /// endpoint's message, safe to log.
    Accepted {
        rejected: u64,
        warning: Option<String>,
    },
    /// Worth trying again (network error, timeout, 429/502/503/504), maybe after `retry_after`.
    Retryable {
        reason: Reason,
        retry_after: Option<Duration>,
    },
    /// The endpoint refused the data (other 4xx/5xx, 3xx): drop and count as rejected.
    Rejected { reason: Reason },
    /// Could not be sent and will not be by trying again (TLS verification, oversized request
    /// or response, bad URL): drop and count as a failed send.
    Failed { reason: Reason },
}

pub(crate) struct Transport {
    agent: ureq::Agent,
    endpoint: Endpoint,
    redactor: Redactor,
    /// What the HTTP client is given for `endpoint.headers` and `signal_headers`: each value a
    /// stand-in that the transport replaces below the client's logging (`late_headers`).
    stand_ins: Vec<(String, String)>,
    signal_stand_ins: [Vec<(String, String)>; 3],
    /// The agent's resolver, told to forget its answers when an attempt fails.
    resolver: KeptAddresses,
    /// Created on the first gzip request and kept: a compressor's tables are large enough that
    /// setting them up per request would cost a noticeable share of compressing one.
    #[cfg(feature = "gzip")]
    gzip: Option<Gzip>,
}

impl Transport {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(endpoint.request_timeout))
            .timeout_connect(Some(endpoint.connect_timeout))
            .user_agent(concat!(
                env!("CARGO_PKG_NAME"),
                "/",
                env!("CARGO_PKG_VERSION"),
                " (Rust; OTLP/HTTP protobuf)"
            ))
            .max_idle_connections_per_host(2);
        #[cfg(feature = "platform-roots")]
        let config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        );
        let mut late = LateHeaders::default();
        let mut stand_ins = |headers: &[(String, Token)]| -> Vec<(String, String)> {
            headers
                .iter()
                .map(|(name, value)| (name.clone(), late.stand_in(name, value)))
                .collect()
        };
        let stand_ins_all = stand_ins(&endpoint.headers);
        let signal_stand_ins = [0, 1, 2].map(|i| stand_ins(&endpoint.signal_headers[i]));
        let connector = DefaultConnector::new().chain(FillingConnector(Arc::new(late)));
        let resolver = KeptAddresses::default();
        let agent = ureq::Agent::with_parts(config.build(), connector, resolver.clone());
        Transport {
            agent,
            resolver,
            redactor: Redactor::new(&endpoint),
            endpoint,
            stand_ins: stand_ins_all,
            signal_stand_ins,
            #[cfg(feature = "gzip")]
            gzip: None,
        }
    }

    /// POSTs `body` (uncompressed protobuf). `timeout` bounds the whole attempt.
    ///
    /// No `tracing` subscriber hears the exchange: the HTTP client dumps the request's bytes at
    /// TRACE (with stand-ins for the secrets, see `late_headers`), and an app that turns `log`
    /// records into tracing events (tracing-log) would print every batch's dump, whatever
    /// filter sits on this crate's layer. The `log` bridge keeps them from the app's logger.
    pub(crate) fn send(&mut self, signal: Signal, body: &[u8], timeout: Duration) -> Attempt {
        unheard_by_tracing(|| self.exchange(signal, body, timeout))
    }

    fn exchange(&mut self, signal: Signal, body: &[u8], timeout: Duration) -> Attempt {
        if body.len() > MAX_REQUEST_BYTES {
            return Attempt::Failed {
                reason: Reason::new(
                    Cause::Local,
                    format!("request of {} bytes is over the 64 MiB cap", body.len()),
                ),
            };
        }
        let (payload, encoding) = if self.endpoint.gzip {
            #[cfg(feature = "gzip")]
            let compressed = Gzip::compress(&mut self.gzip, body);
            #[cfg(not(feature = "gzip"))]
            let compressed: std::io::Result<&[u8]> =
                Err(std::io::Error::other("built without the gzip feature"));
            match compressed {
                Ok(compressed) => (compressed, Some("gzip")),
                Err(e) => {
                    return Attempt::Failed {
                        reason: Reason::new(
                            Cause::Local,
                            self.redactor.excerpt(&format!("gzip failed: {e}")),
                        ),
                    }
                }
            }
        } else {
            (body, None)
        };
        let mut request = self
            .agent
            .post(self.endpoint.url(signal))
            .header("Content-Type", "application/x-protobuf");
        if let Some(encoding) = encoding {
            request = request.header("Content-Encoding", encoding);
        }
        let signal_index = match signal {
            Signal::Traces => 0,
            Signal::Metrics => 1,
            Signal::Logs => 2,
        };
        for (name, stand_in) in self
            .stand_ins
            .iter()
            .chain(&self.signal_stand_ins[signal_index])
        {
            request = request.header(name.as_str(), stand_in.as_str());
        }
        let result = request
            .config()
            .timeout_global(Some(timeout.min(self.endpoint.request_timeout)))
            .build()
            .send(payload);
        match result {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| super::retry::parse_retry_after(v, SystemTime::now()));
                let content_type = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec();
                let response = Response {
                    status,
                    retry_after,
                    content_type: content_type.as_deref(),
                    body,
                };
                classify(signal, response, &self.redactor)
            }
            Err(error) => {
                // The host may have moved: the next attempt asks the system resolver again.
                self.resolver.forget();
                classify_error(&error, &self.redactor)
            }
        }
    }
}

/// How long a resolved address is used for new connections before the host is looked up again.
const KEEP_ADDRESSES: Duration = Duration::from_secs(30);

/// The HTTP client's resolver: the system's, with its answers kept for [`KEEP_ADDRESSES`] or
/// until an attempt fails. ureq resolves the host before every request, pooled connection or
/// not, and on a new thread whenever a timeout applies (always, here): one thread and one
/// system lookup per batch otherwise.
#[derive(Clone, Debug, Default)]
struct KeptAddresses(Arc<parking_lot::Mutex<Vec<(String, Instant, ResolvedSocketAddrs)>>>);

impl KeptAddresses {
    fn forget(&self) {
        self.0.lock().clear();
    }
}

impl Resolver for KeptAddresses {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = match (uri.scheme(), uri.authority()) {
            (Some(scheme), Some(authority)) => DefaultResolver::host_and_port(scheme, authority),
            _ => None,
        };
        let Some(key) = key else {
            return DefaultResolver::default().resolve(uri, config, timeout);
        };
        let now = Instant::now();
        {
            let mut kept = self.0.lock();
            kept.retain(|(_, at, _)| now.saturating_duration_since(*at) < KEEP_ADDRESSES);
            if let Some((_, _, addresses)) = kept.iter().find(|(k, _, _)| *k == key) {
                return Ok(addresses.clone());
            }
        }
        // Looked up without the lock held: a lookup that hangs until its timeout holds no one up.
        let addresses = DefaultResolver::default().resolve(uri, config, timeout)?;
        self.0.lock().push((key, now, addresses.clone()));
        Ok(addresses)
    }
}

/// What came back.
pub(crate) struct Response<'a> {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) body: Result<Vec<u8>, ureq::Error>,
}

/// What a response means; any text from it is passed through `redactor` before it is kept.
pub(crate) fn classify(signal: Signal, response: Response<'_>, redactor: &Redactor) -> Attempt {
    let Response {
        status,
        retry_after,
        content_type,
        body,
    } = response;
    match status {
        200..=299 => match body {
            Ok(body) => {
                let (rejected, message) = partial_success(signal, &body);
                let message = redactor.excerpt(&message);
                Attempt::Accepted {
                    rejected,
                    warning: (!message.is_empty()).then_some(message),
                }
            }
            Err(ureq::Error::BodyExceedsLimit(_)) => Attempt::Failed {
                reason: Reason::new(Cause::Local, "response body over the 4 MiB cap"),
            },
            // The status said the data was accepted; a broken body does not undo that.
            Err(_) => Attempt::Accepted {
                rejected: 0,
                warning: None,
            },
        },
        429 | 502 | 503 | 504 => Attempt::Retryable {
            reason: Reason::new(
                Cause::Status(status),
                status_line(status, content_type, body, redactor),
            ),
            retry_after: if matches!(status, 429 | 503) {
                retry_after
            } else {
                None
            },
        },
        300..=399 => Attempt::Rejected {
            reason: Reason::new(
                Cause::Status(status),
                format!("HTTP {status}: redirects are not followed"),
            ),
        },
        _ => Attempt::Rejected {
            reason: Reason::new(
                Cause::Status(status),
                status_line(status, content_type, body, redactor),
            ),
        },
    }
}

/// `HTTP 401 Unauthorized: <what the body says>`: the `google.rpc.Status` message of a protobuf
/// body, or an excerpt of a text one (proxies and gateways answer in text, HTML or JSON).
fn status_line(
    status: u16,
    content_type: Option<&str>,
    body: Result<Vec<u8>, ureq::Error>,
    redactor: &Redactor,
) -> String {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let mut line = format!("HTTP {status}");
    if let Some(name) = ureq::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        line = format!("{line} {name}");
    }
    let Ok(body) = body else { return line };
    let media_type = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let said = if media_type.ends_with("protobuf") {
        RpcStatus::decode(&body[..])
            .map(|s| s.message)
            .unwrap_or_default()
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let said = redactor.excerpt(&said);
    if !said.is_empty() {
        line = format!("{line}: {said}");
    }
    line
}

/// (rejected items, message) of a 2xx body; an undecodable body counts as full success.
fn partial_success(signal: Signal, body: &[u8]) -> (u64, String) {
    let clamp = |n: i64| u64::try_from(n).unwrap_or(0);
    match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (clamp(p.rejected_spans), p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (clamp(p.rejected_data_points), p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (clamp(p.rejected_log_records), p.error_message)),
    }
    .unwrap_or_default()
}

fn classify_error(error: &ureq::Error, redactor: &Redactor) -> Attempt {
    use std::io::ErrorKind as K;
    use ureq::Error as E;
    let reason = |cause: Cause, text: &str| Reason::new(cause, redactor.excerpt(text));
    let retry = |cause: Cause, text: &str| Attempt::Retryable {
        reason: reason(cause, text),
        retry_after: None,
    };
    match error {
        // rustls reports a certificate that does not verify (and other TLS failures) as
        // InvalidData inside an io::Error: trying again will not make it trustworthy.
        E::Io(e) if e.kind() == K::InvalidData => Attempt::Failed {
            reason: reason(Cause::Tls, &format!("TLS or protocol failure: {e}")),
        },
        E::Io(e) if e.kind() == K::ConnectionRefused => retry(Cause::Connect, "connection refused"),
        E::Io(e) if e.kind() == K::TimedOut => retry(Cause::Timeout, &error.to_string()),
        // std reports a failed getaddrinfo with no ErrorKind of its own, only this wording.
        E::Io(e) if e.to_string().contains("failed to lookup address") => {
            retry(Cause::HostNotFound, &format!("host not found (DNS): {e}"))
        }
        E::Timeout(_) => retry(Cause::Timeout, &error.to_string()),
        E::HostNotFound => retry(Cause::HostNotFound, "host not found (DNS)"),
        E::ConnectionFailed => retry(Cause::Connect, "connection failed"),
        E::Io(_) | E::Protocol(_) | E::BodyStalled => retry(Cause::Network, &error.to_string()),
        E::TlsRequired => Attempt::Failed {
            reason: reason(Cause::TlsUnavailable, "this build cannot speak TLS"),
        },
        E::Tls(_) => Attempt::Failed {
            reason: reason(Cause::Tls, &format!("TLS failure: {error}")),
        },
        #[cfg(feature = "tls")]
        E::Rustls(_) => Attempt::Failed {
            reason: reason(Cause::Tls, &format!("TLS failure: {error}")),
        },
        // Bad URLs and the like will not fix themselves.
        _ => Attempt::Failed {
            reason: reason(Cause::Local, &error.to_string()),
        },
    }
}

#[cfg(feature = "tracing")]
fn unheard_by_tracing<T>(exchange: impl FnOnce() -> T) -> T {
    tracing_core::dispatcher::with_default(&tracing_core::Dispatch::none(), exchange)
}

#[cfg(not(feature = "tracing"))]
fn unheard_by_tracing<T>(exchange: impl FnOnce() -> T) -> T {
    exchange()
}

/// A gzip compressor and its output buffer, reused from one request to the next.
#[cfg(feature = "gzip")]
struct Gzip {
    compress: flate2::Compress,
    out: Vec<u8>,
}

/// An output buffer grown past this (a rare, huge request) is not reused: the next request
/// starts a new one.
#[cfg(feature = "gzip")]
const KEPT_OUTPUT_BYTES: usize = 1 << 20;

#[cfg(feature = "gzip")]
impl Gzip {
    /// `body` as one gzip member, in `slot`'s buffer (a compressor is made on first use).
    fn compress<'a>(slot: &'a mut Option<Gzip>, body: &[u8]) -> std::io::Result<&'a [u8]> {
        use flate2::{Compress, Compression, FlushCompress, Status};
        let gzip = slot.get_or_insert_with(|| Gzip {
            compress: Compress::new_gzip(Compression::fast(), 15),
            out: Vec::new(),
        });
        gzip.compress.reset();
        if gzip.out.capacity() > KEPT_OUTPUT_BYTES {
            gzip.out = Vec::new();
        }
        gzip.out.clear();
        gzip.out.reserve(body.len() / 4 + 64);
        loop {
            let taken = usize::try_from(gzip.compress.total_in()).unwrap_or(body.len());
            let input = body.get(taken..).unwrap_or_default();
            match gzip
                .compress
                .compress_vec(input, &mut gzip.out, FlushCompress::Finish)
                .map_err(std::io::Error::other)?
            {
                Status::StreamEnd => return Ok(&gzip.out),
                // Out of room: the output buffer doubles and compression goes on.
                Status::Ok | Status::BufError => gzip.out.reserve(gzip.out.capacity().max(64)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(signal: Signal, status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
        let response = Response {
            status,
            retry_after,
            content_type: Some("application/x-protobuf"),
            body: Ok(body.to_vec()),
        };
        classify(signal, response, &Redactor::default())
    }

    #[test]
    fn statuses_are_classified_per_the_otlp_spec() {
        for retryable in [429, 502, 503, 504] {
            assert!(matches!(
                respond(Signal::Traces, retryable, None, b""),
                Attempt::Retryable { .. }
            ));
        }
        for fatal in [400, 401, 403, 404, 413, 500, 501, 301, 307] {
            assert!(matches!(
                respond(Signal::Traces, fatal, None, b""),
                Attempt::Rejected { .. }
            ));
        }
        assert_eq!(
            respond(Signal::Logs, 200, None, b"\xff\xff garbage"),
            Attempt::Accepted {
                rejected: 0,
                warning: None
            }
        );
        // Retry-After is honoured on 429 and 503 only.
        let wait = Some(Duration::from_secs(2));
        assert_eq!(
            respond(Signal::Traces, 502, wait, b""),
            Attempt::Retryable {
                reason: Reason::new(Cause::Status(502), "HTTP 502 Bad Gateway"),
                retry_after: None
            }
        );
        assert_eq!(
            respond(Signal::Traces, 429, wait, b""),
            Attempt::Retryable {
                reason: Reason::new(Cause::Status(429), "HTTP 429 Too Many Requests"),
                retry_after: wait
            }
        );
    }

    #[test]
    fn partial_success_counts_rejections() {
        use crate::proto::collector::trace::v1::ExportTracePartialSuccess;
        let body = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec();
        assert_eq!(
            respond(Signal::Traces, 200, None, &body),
            Attempt::Accepted {
                rejected: 3,
                warning: Some("too old".into())
            }
        );
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn one_compressor_writes_whole_gzip_members_request_after_request() {
        use std::io::Read;
        let mut slot = None;
        // Repetitive (compresses well), then noise that takes more room than first reserved.
        let text = b"GET /users/{id} http.route ".repeat(4000);
        let mut noise = vec![0u8; 300_000];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for b in &mut noise {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for body in [&text[..], &noise[..], b"", &text[..100]] {
            let compressed = Gzip::compress(&mut slot, body)
                .expect("compresses")
                .to_vec();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&compressed[..])
                .read_to_end(&mut back)
                .expect("a whole gzip member");
            assert_eq!(back, body);
        }
    }

    #[test]
    fn a_resolved_host_is_kept_until_it_is_old_or_an_attempt_fails() {
        use ureq::unversioned::transport::NextTimeout;
        let kept = KeptAddresses::default();
        let config = ureq::Agent::config_builder().build();
        let uri: ureq::http::Uri = "http://127.0.0.1:4318/v1/traces".parse().unwrap();
        let resolve = || kept.resolve(&uri, &config, NextTimeout::default());
        let first = resolve().expect("an address");
        let at = kept.0.lock()[0].1;
        assert_eq!(resolve().expect("kept"), first);
        assert_eq!(kept.0.lock().len(), 1);
        assert_eq!(kept.0.lock()[0].1, at, "not looked up again");
        if let Some(old) = Instant::now().checked_sub(KEEP_ADDRESSES) {
            kept.0.lock()[0].1 = old;
            assert_eq!(resolve().expect("looked up again"), first);
            assert!(kept.0.lock()[0].1 > old);
            assert_eq!(kept.0.lock().len(), 1);
        }
        kept.forget();
        assert!(kept.0.lock().is_empty());
        assert_eq!(resolve().expect("looked up again"), first);
    }
}
