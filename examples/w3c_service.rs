//! The test service the W3C Trace Context validation suite drives, built on this crate the way a
//! service would use it: one server span per request (parent from the incoming headers, every
//! value of each), one client span per outgoing call (its headers injected).
//!
//! Each POST carries a JSON array of `{"url": ..., "arguments": ...}`; for each element the
//! service POSTs `arguments` (as JSON) to `url` and answers with the statuses it got.
//!
//!     cargo run --example w3c_service --features receiver -- [--listen ADDR] [--export on|off]
//!
//! Prints `listening on http://ADDR/test` once ready and serves until its standard input closes.
//! With export on (the default) it exports to an embedded receiver and, on exit, checks what
//! arrived: every sampled span and no other, each client span under its server span, each
//! outgoing `traceparent` naming an exported client span. It exits non-zero if any check fails.

use plain_connect::instrument::http;
use plain_connect::receiver::Receiver;
use plain_connect::trace::{propagation, SpanId, TraceId};
use plain_connect::{Resource, Settings, Telemetry};
use std::error::Error;
use std::io::{self, BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Request bodies larger than this get 413.
const MAX_BODY_BYTES: u64 = 1024 * 1024;
const WORKERS: usize = 4;

/// The identity of a span the service started, as the export should show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Started {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub sampled: bool,
}

/// What the service did, for checking against what was exported.
#[derive(Debug, Default)]
pub struct Record {
    /// The server span of each request.
    pub requests: Vec<Started>,
    /// Each outgoing call: the `traceparent` / `tracestate` it sent, if any.
    pub calls: Vec<(Option<String>, Option<String>)>,
}

/// A running service; [`Service::stop`] ends it.
pub struct Service {
    addr: std::net::SocketAddr,
    stopping: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    record: Arc<Mutex<Record>>,
}

impl Service {
    /// Listens on `addr` (`127.0.0.1:0` picks a free port) with a few worker threads, reused
    /// from request to request so that a context left behind by one would show in the next.
    pub fn start(addr: &str) -> Result<Service, Box<dyn Error + Send + Sync>> {
        let server = Arc::new(tiny_http::Server::http(addr)?);
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or("the service listens on a TCP address")?;
        let stopping = Arc::new(AtomicBool::new(false));
        let record = Arc::new(Mutex::new(Record::default()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let workers = (0..WORKERS)
            .map(|_| {
                let (server, stopping) = (Arc::clone(&server), Arc::clone(&stopping));
                let (record, agent) = (Arc::clone(&record), agent.clone());
                std::thread::spawn(move || {
                    while !stopping.load(Ordering::Relaxed) {
                        if let Ok(Some(request)) = server.recv_timeout(Duration::from_millis(100)) {
                            handle(request, &agent, &record);
                        }
                    }
                })
            })
            .collect();
        Ok(Service {
            addr,
            stopping,
            workers,
            record,
        })
    }

    /// The endpoint to give the suite.
    pub fn url(&self) -> String {
        format!("http://{}/test", self.addr)
    }

    /// Stops serving and returns what the service did.
    pub fn stop(self) -> Record {
        self.stopping.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.join();
        }
        std::mem::take(&mut *self.record.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn handle(mut request: tiny_http::Request, agent: &ureq::Agent, record: &Mutex<Record>) {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .map(|h| (h.field.as_str().as_str(), h.value.as_str()))
        .collect();
    let mut span = http::server_request(request.method().as_str(), path)
        .query(query)
        .trace_headers(headers)
        .start();
    if path == "/test" {
        span.set_route("/test");
    }
    record_lock(record).requests.push(Started {
        trace_id: span.context().trace_id(),
        span_id: span.context().span_id(),
        sampled: span.context().is_sampled(),
    });

    let (status, body) = match read_actions(&mut request) {
        Ok(actions) => {
            let statuses: Vec<serde_json::Value> = actions
                .iter()
                .map(
                    |(url, arguments)| match call(agent, url, arguments, record) {
                        Ok(status) => status.into(),
                        Err(error) => error.to_string().into(),
                    },
                )
                .collect();
            (200, serde_json::Value::from(statuses).to_string())
        }
        Err((status, message)) => (status, serde_json::json!({ "error": message }).to_string()),
    };
    let content_type =
        tiny_http::Header::from_bytes("Content-Type", "application/json").expect("a valid header");
    let _ = request.respond(
        tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(content_type),
    );
    span.end(status);
}

fn record_lock(record: &Mutex<Record>) -> std::sync::MutexGuard<'_, Record> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `(url, arguments)` pairs of the request body, or the status and reason to refuse it.
fn read_actions(
    request: &mut tiny_http::Request,
) -> Result<Vec<(String, serde_json::Value)>, (u16, String)> {
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| (400, format!("reading the body: {e}")))?;
    if body.len() as u64 > MAX_BODY_BYTES {
        return Err((413, format!("body over {MAX_BODY_BYTES} bytes")));
    }
    let bad = |why: &str| {
        (
            400,
            format!("expected a JSON array of {{url, arguments}}: {why}"),
        )
    };
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| bad(&e.to_string()))?;
    let actions = value.as_array().ok_or_else(|| bad("not an array"))?;
    actions
        .iter()
        .map(|action| {
            let url = action["url"].as_str().ok_or_else(|| bad("no url"))?;
            Ok((url.to_owned(), action["arguments"].clone()))
        })
        .collect()
}

/// POSTs `arguments` to `url` under a client span, with the trace context in its headers.
fn call(
    agent: &ureq::Agent,
    url: &str,
    arguments: &serde_json::Value,
    record: &Mutex<Record>,
) -> Result<u16, Box<dyn Error>> {
    let call = http::client_request("POST", url).start();
    let mut builder = ureq::http::Request::post(url).header("Content-Type", "application/json");
    let (mut traceparent, mut tracestate) = (None, None);
    for (name, value) in call.headers() {
        builder = builder.header(name, &value);
        match name {
            "traceparent" => traceparent = Some(value),
            _ => tracestate = Some(value),
        }
    }
    record_lock(record).calls.push((traceparent, tracestate));
    let request = builder.body(arguments.to_string())?;
    match agent.run(request) {
        Ok(response) => {
            let status = response.status().as_u16();
            call.end(status);
            Ok(status)
        }
        Err(error) => {
            call.end_error(&error);
            Err(error.into())
        }
    }
}

/// What the embedded receiver shows, checked against what the service did. Returns the
/// problems found (none when the export is exactly what it should be).
pub fn check_export(record: &Record, received: &plain_connect::receiver::Received) -> Vec<String> {
    use plain_connect::proto::trace::v1::span::SpanKind;
    let spans: Vec<_> = received.spans().collect();
    let of_kind = |kind: SpanKind| {
        spans
            .iter()
            .filter(move |s| s.kind == kind as i32)
            .map(|s| (hex(&s.trace_id), hex(&s.span_id), hex(&s.parent_span_id)))
            .collect::<Vec<_>>()
    };
    let (servers, clients) = (of_kind(SpanKind::Server), of_kind(SpanKind::Client));
    let mut problems = Vec::new();
    for started in &record.requests {
        let exported = servers.iter().any(|(trace, span, _)| {
            *trace == started.trace_id.to_string() && *span == started.span_id.to_string()
        });
        if exported != started.sampled {
            problems.push(format!("server span {started:?}: exported = {exported}"));
        }
    }
    for (traceparent, _) in &record.calls {
        let Some(parsed) = traceparent
            .as_deref()
            .and_then(|value| propagation::extract(value, None))
        else {
            continue;
        };
        let client = clients.iter().find(|(trace, span, _)| {
            *trace == parsed.trace_id().to_string() && *span == parsed.span_id().to_string()
        });
        let sampled = parsed.is_sampled();
        match client {
            Some((_, _, parent)) if sampled => {
                if !servers.iter().any(|(_, server, _)| server == parent) {
                    problems.push(format!(
                        "client span of {traceparent:?} has no exported server parent"
                    ));
                }
            }
            None if !sampled => {}
            found => problems.push(format!(
                "outgoing {traceparent:?}: client span exported = {}",
                found.is_some()
            )),
        }
    }
    let sampled_requests = record.requests.iter().filter(|r| r.sampled).count();
    if servers.len() != sampled_requests {
        problems.push(format!(
            "{} server spans exported for {sampled_requests} sampled requests",
            servers.len()
        ));
    }
    problems
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(listen: &str, export: bool) -> Result<bool, Box<dyn Error + Send + Sync>> {
    let receiver = if export {
        Some(Receiver::start("127.0.0.1:0")?)
    } else {
        None
    };
    let settings = match &receiver {
        Some(receiver) => Settings::builder()
            .export_url(receiver.endpoint())
            .export_token("w3c-suite")
            .export_delay(Duration::from_millis(100)),
        None => Settings::builder().export_enabled(false),
    }
    .build()?;
    let telemetry = Telemetry::start(settings, Resource::new("w3c-test-service", "1.0.0"))?;
    let service = Service::start(listen)?;
    println!("listening on {}", service.url());
    io::stdout().flush()?;
    // Serves until standard input closes (what the driving script does when the suite is done).
    for line in io::stdin().lock().lines() {
        line?;
    }
    let record = service.stop();
    let sent = record.calls.iter().filter(|(tp, _)| tp.is_some()).count();
    println!(
        "served {} requests, made {} calls ({sent} with a traceparent)",
        record.requests.len(),
        record.calls.len()
    );
    let Some(receiver) = receiver else {
        return Ok(true);
    };
    telemetry.shutdown(Duration::from_secs(5))?;
    let received = receiver.snapshot();
    let problems = check_export(&record, &received);
    for problem in &problems {
        println!("export check failed: {problem}");
    }
    if problems.is_empty() {
        println!(
            "export check passed: {} spans arrived, exactly the sampled ones, each client span \
             under its server span and named by the traceparent it sent",
            received.spans().count()
        );
    }
    Ok(problems.is_empty())
}

fn main() {
    let (mut listen, mut export) = ("127.0.0.1:0".to_owned(), true);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().as_deref()) {
            ("--listen", Some(addr)) => listen = addr.to_owned(),
            ("--export", Some("on")) => export = true,
            ("--export", Some("off")) => export = false,
            _ => {
                eprintln!("usage: w3c_service [--listen ADDR] [--export on|off]");
                std::process::exit(2);
            }
        }
    }
    match run(&listen, export) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("w3c_service failed: {e}");
            std::process::exit(1);
        }
    }
}
