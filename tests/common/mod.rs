//! The one loopback OTLP/HTTP receiver every integration test uses: a real TCP server on
//! 127.0.0.1 that decodes what arrives with the generated protobuf types, and that can be told
//! to misbehave (error statuses, Retry-After, hangs, slow answers, resets, redirects, going down).
#![allow(dead_code)]

/// The generated OTLP types: the crate's own where it makes them public (the receiver hands
/// them out), else compiled here from the same generated source.
#[cfg(feature = "receiver")]
pub use plain_connect::proto;
#[cfg(not(feature = "receiver"))]
#[path = "../../src/proto/mod.rs"]
pub mod proto;

use self::proto::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use self::proto::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use self::proto::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use self::proto::common::v1::{any_value, KeyValue};
use self::proto::logs::v1::{LogRecord, ResourceLogs};
use self::proto::metrics::v1::{Metric, ResourceMetrics};
use self::proto::trace::v1::{ResourceSpans, Span};
use flate2::read::GzDecoder;
use parking_lot::Mutex;
use prost::Message;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Tests in one binary share the process-wide pipeline, so they take turns.
pub fn serial() -> parking_lot::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = parking_lot::const_mutex(());
    LOCK.lock()
}

/// How the receiver answers.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// 200 with an empty Export*ServiceResponse.
    Ok,
    /// That status with a google.rpc.Status body.
    Status(u16),
    /// That status with a google.rpc.Status body carrying this message.
    StatusMessage(u16, String),
    /// That status with this body and Content-Type, as a proxy or gateway might answer.
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    /// That status with `Retry-After: <value>`.
    StatusWithRetryAfter(u16, String),
    /// 200 with `partial_success` set.
    PartialSuccess { rejected: i64, message: String },
    /// 200 with bytes that are not protobuf.
    GarbageBody,
    /// 200 with a body of that many bytes.
    HugeBody(usize),
    /// Reads the request and never answers.
    Hang,
    /// Answers 200 one byte a second.
    SlowDrip,
    /// Reads part of the request, then closes the socket.
    ResetMidRequest,
    /// 307 to that URL.
    Redirect(String),
    /// Waits, then behaves.
    Delay(Duration, Box<Behavior>),
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub decoded_body: Vec<u8>,
    pub received_at: Instant,
    pub status_sent: u16,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct State {
    behavior: Mutex<Behavior>,
    script: Mutex<VecDeque<Behavior>>,
    requests: Mutex<Vec<RecordedRequest>>,
    stop: AtomicBool,
    connections: AtomicUsize,
}

pub struct TestReceiver {
    state: Arc<State>,
    addr: SocketAddr,
    accept_thread: Mutex<Option<thread::JoinHandle<()>>>,
    listening: Arc<AtomicBool>,
}

impl TestReceiver {
    pub fn start() -> TestReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let receiver = TestReceiver {
            state: Arc::new(State {
                behavior: Mutex::new(Behavior::Ok),
                script: Mutex::new(VecDeque::new()),
                requests: Mutex::new(Vec::new()),
                stop: AtomicBool::new(false),
                connections: AtomicUsize::new(0),
            }),
            addr,
            accept_thread: Mutex::new(None),
            listening: Arc::new(AtomicBool::new(false)),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let state = Arc::clone(&self.state);
        let listening = Arc::clone(&self.listening);
        listening.store(true, Ordering::SeqCst);
        let handle = thread::spawn(move || {
            while listening.load(Ordering::SeqCst) && !state.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        state.connections.fetch_add(1, Ordering::SeqCst);
                        let state = Arc::clone(&state);
                        let listening = Arc::clone(&listening);
                        thread::spawn(move || serve_connection(stream, &state, &listening));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        *self.accept_thread.lock() = Some(handle);
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn set_behavior(&self, behavior: Behavior) {
        *self.state.behavior.lock() = behavior;
    }

    /// Answers the next requests with these, in order, then falls back to the set behavior.
    pub fn script(&self, responses: Vec<Behavior>) {
        self.state.script.lock().extend(responses);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().clone()
    }

    pub fn request_count(&self, path: &str) -> usize {
        self.state
            .requests
            .lock()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn connection_count(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    fn accepted(&self, path: &str) -> Vec<Vec<u8>> {
        self.state
            .requests
            .lock()
            .iter()
            .filter(|r| r.path == path && r.status_sent == 200)
            .map(|r| r.decoded_body.clone())
            .collect()
    }

    /// Everything answered 200 on /v1/traces (partial successes included).
    pub fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.accepted("/v1/traces")
            .iter()
            .flat_map(|b| decode_traces(b).resource_spans)
            .collect()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.resource_spans()
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    pub fn resource_logs(&self) -> Vec<ResourceLogs> {
        self.accepted("/v1/logs")
            .iter()
            .flat_map(|b| decode_logs(b).resource_logs)
            .collect()
    }

    pub fn log_records(&self) -> Vec<LogRecord> {
        self.resource_logs()
            .into_iter()
            .flat_map(|r| r.scope_logs)
            .flat_map(|s| s.log_records)
            .collect()
    }

    pub fn resource_metrics(&self) -> Vec<ResourceMetrics> {
        self.accepted("/v1/metrics")
            .iter()
            .flat_map(|b| decode_metrics(b).resource_metrics)
            .collect()
    }

    pub fn metrics(&self) -> Vec<Metric> {
        self.resource_metrics()
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
            .collect()
    }

    /// Every arrived metric with this name, over all requests.
    pub fn metrics_named(&self, name: &str) -> Vec<Metric> {
        self.metrics()
            .into_iter()
            .filter(|m| m.name == name)
            .collect()
    }

    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&TestReceiver) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(self) {
                return true;
            }
            thread::sleep(Duration::from_millis(10));
        }
        pred(self)
    }

    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |r| r.requests().len() >= n)
    }

    /// Stops listening: new connections are refused until [`TestReceiver::restart`].
    pub fn stop(&self) {
        self.listening.store(false, Ordering::SeqCst);
        if let Some(handle) = self.accept_thread.lock().take() {
            let _ = handle.join();
        }
    }

    /// Listens again on the same port.
    pub fn restart(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(self.addr) {
                Ok(listener) => return self.serve(listener),
                Err(e) if Instant::now() > deadline => panic!("rebind {}: {e}", self.addr),
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.stop();
    }
}

fn stopping(state: &State, listening: &AtomicBool) -> bool {
    state.stop.load(Ordering::SeqCst) || !listening.load(Ordering::SeqCst)
}

fn serve_connection(stream: TcpStream, state: &State, listening: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    loop {
        let Some(head) = read_head(&mut reader, state, listening) else {
            return;
        };
        let behavior = state
            .script
            .lock()
            .pop_front()
            .unwrap_or_else(|| state.behavior.lock().clone());
        if let Behavior::ResetMidRequest = behavior {
            let mut partial = [0u8; 16];
            let _ = reader.read(&mut partial);
            let _ = writer.shutdown(Shutdown::Both);
            record(state, &head, Vec::new(), 0);
            return;
        }
        let Some(body) = read_body(&mut reader, &head, state, listening) else {
            return;
        };
        if !answer(&mut writer, state, listening, &head, body, behavior) {
            return;
        }
        if head.close {
            return;
        }
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    content_length: usize,
    chunked: bool,
    close: bool,
}

fn read_line_patiently(
    reader: &mut BufReader<TcpStream>,
    state: &State,
    listening: &AtomicBool,
) -> Option<String> {
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return None,
            Ok(_) if line.ends_with(b"\n") => return String::from_utf8(line).ok(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stopping(state, listening) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
}

fn read_head(
    reader: &mut BufReader<TcpStream>,
    state: &State,
    listening: &AtomicBool,
) -> Option<Head> {
    let request_line = read_line_patiently(reader, state, listening)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let line = read_line_patiently(reader, state, listening)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Some(Head {
        content_length: get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        chunked: get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        close: get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")),
        method,
        path,
        headers,
    })
}

fn read_exact_patiently(
    reader: &mut BufReader<TcpStream>,
    n: usize,
    state: &State,
    listening: &AtomicBool,
) -> Option<Vec<u8>> {
    let mut body = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match reader.read(&mut body[filled..]) {
            Ok(0) => return None,
            Ok(k) => filled += k,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stopping(state, listening) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    Some(body)
}

fn read_body(
    reader: &mut BufReader<TcpStream>,
    head: &Head,
    state: &State,
    listening: &AtomicBool,
) -> Option<Vec<u8>> {
    if !head.chunked {
        return read_exact_patiently(reader, head.content_length, state, listening);
    }
    let mut body = Vec::new();
    loop {
        let size_line = read_line_patiently(reader, state, listening)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
        let chunk = read_exact_patiently(reader, size + 2, state, listening)?;
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn record(state: &State, head: &Head, body: Vec<u8>, status: u16) {
    let gzipped = head
        .headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let decoded_body = if gzipped {
        let mut out = Vec::new();
        GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map(|_| out)
            .unwrap_or_default()
    } else {
        body.clone()
    };
    state.requests.lock().push(RecordedRequest {
        method: head.method.clone(),
        path: head.path.clone(),
        headers: head.headers.clone(),
        body,
        decoded_body,
        received_at: Instant::now(),
        status_sent: status,
    });
}

fn ok_body(path: &str, partial: Option<(i64, String)>) -> Vec<u8> {
    match path {
        "/v1/metrics" => ExportMetricsServiceResponse {
            partial_success: partial.map(|(n, m)| ExportMetricsPartialSuccess {
                rejected_data_points: n,
                error_message: m,
            }),
        }
        .encode_to_vec(),
        "/v1/logs" => ExportLogsServiceResponse {
            partial_success: partial.map(|(n, m)| ExportLogsPartialSuccess {
                rejected_log_records: n,
                error_message: m,
            }),
        }
        .encode_to_vec(),
        _ => ExportTraceServiceResponse {
            partial_success: partial.map(|(n, m)| ExportTracePartialSuccess {
                rejected_spans: n,
                error_message: m,
            }),
        }
        .encode_to_vec(),
    }
}

/// google.rpc.Status: code (1) and message (2), encoded by hand.
fn rpc_status(code: i32, message: &str) -> Vec<u8> {
    let mut out = vec![0x08];
    prost::encoding::encode_varint(code as u64, &mut out);
    out.push(0x12);
    prost::encoding::encode_varint(message.len() as u64, &mut out);
    out.extend_from_slice(message.as_bytes());
    out
}

fn write_response(w: &mut TcpStream, status: u16, extra: &[(&str, String)], body: &[u8]) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).is_ok() && w.write_all(body).is_ok() && w.flush().is_ok()
}

/// Returns false when the connection should close.
fn answer(
    w: &mut TcpStream,
    state: &State,
    listening: &AtomicBool,
    head: &Head,
    body: Vec<u8>,
    behavior: Behavior,
) -> bool {
    match behavior {
        Behavior::Ok => {
            record(state, head, body, 200);
            write_response(w, 200, &[], &ok_body(&head.path, None))
        }
        Behavior::Status(code) => {
            record(state, head, body, code);
            write_response(
                w,
                code,
                &[],
                &rpc_status(code.into(), "test receiver says no"),
            )
        }
        Behavior::StatusMessage(code, message) => {
            record(state, head, body, code);
            write_response(w, code, &[], &rpc_status(code.into(), &message))
        }
        Behavior::Raw {
            status,
            content_type,
            body: response,
        } => {
            record(state, head, body, status);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                response.len()
            );
            w.write_all(head.as_bytes()).is_ok() && w.write_all(&response).is_ok()
        }
        Behavior::StatusWithRetryAfter(code, value) => {
            record(state, head, body, code);
            write_response(w, code, &[("Retry-After", value)], &rpc_status(14, "later"))
        }
        Behavior::PartialSuccess { rejected, message } => {
            record(state, head, body, 200);
            write_response(w, 200, &[], &ok_body(&head.path, Some((rejected, message))))
        }
        Behavior::GarbageBody => {
            record(state, head, body, 200);
            write_response(w, 200, &[], b"\xff\xfe\x00garbage that is not protobuf")
        }
        Behavior::HugeBody(n) => {
            record(state, head, body, 200);
            write_response(w, 200, &[], &vec![0x0a; n])
        }
        Behavior::Hang => {
            record(state, head, body, 0);
            while !stopping(state, listening) {
                thread::sleep(Duration::from_millis(20));
            }
            false
        }
        Behavior::SlowDrip => {
            record(state, head, body, 200);
            let body = ok_body(&head.path, None);
            let response = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            for byte in response.bytes().chain(body) {
                if stopping(state, listening) || w.write_all(&[byte]).is_err() {
                    return false;
                }
                thread::sleep(Duration::from_secs(1));
            }
            true
        }
        Behavior::ResetMidRequest => false,
        Behavior::Redirect(location) => {
            record(state, head, body, 307);
            write_response(w, 307, &[("Location", location)], b"")
        }
        Behavior::Delay(wait, then) => {
            thread::sleep(wait);
            answer(w, state, listening, head, body, *then)
        }
    }
}

pub fn decode_traces(body: &[u8]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest::decode(body).expect("a valid ExportTraceServiceRequest")
}

pub fn decode_logs(body: &[u8]) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest::decode(body).expect("a valid ExportLogsServiceRequest")
}

pub fn decode_metrics(body: &[u8]) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest::decode(body).expect("a valid ExportMetricsServiceRequest")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The attribute's value as a string, if it is a string attribute.
pub fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match &a.value.as_ref()?.value {
            Some(any_value::Value::StringValue(s)) => Some(s.clone()),
            _ => None,
        })
}

/// The attribute's value as an integer, if it is an integer attribute.
pub fn int_attr(attributes: &[KeyValue], key: &str) -> Option<i64> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match &a.value.as_ref()?.value {
            Some(any_value::Value::IntValue(i)) => Some(*i),
            _ => None,
        })
}

/// Any attribute value, if present.
pub fn attr(attributes: &[KeyValue], key: &str) -> Option<any_value::Value> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.clone())
}

/// Every way a token could show in captured log text: plain, split across ureq's 16-byte
/// hex/ASCII dump rows (the ASCII column joined, the hex column decoded), or as hex.
pub fn token_leaks(captured: &[String], token: &str) -> Vec<String> {
    let mut found = Vec::new();
    let joined: String = captured.concat();
    if joined.contains(token) {
        found.push("in plain text".to_owned());
    }
    let token_hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
    if joined.replace(' ', "").contains(&token_hex) {
        found.push("as hex".to_owned());
    }
    // A dump row: 8 groups of 4 hex digits (or `--`), then the ASCII column.
    let rows: Vec<(&str, &str)> = captured
        .iter()
        .filter_map(|line| {
            let (hex, ascii) = line.split_at_checked(40)?;
            let is_row = hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b' ' || b == b'-');
            is_row.then_some((hex, ascii.trim_start()))
        })
        .collect();
    let ascii: String = rows.iter().map(|(_, ascii)| *ascii).collect();
    if ascii.contains(token) {
        found.push("in the dump's ASCII column".to_owned());
    }
    let bytes: Vec<u8> = rows
        .iter()
        .flat_map(|(hex, _)| {
            let digits: Vec<u8> = hex.bytes().filter(u8::is_ascii_hexdigit).collect();
            digits
                .chunks(2)
                .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
                .collect::<Vec<u8>>()
        })
        .collect();
    if bytes.windows(token.len()).any(|w| w == token.as_bytes()) {
        found.push("in the dump's hex column".to_owned());
    }
    found
}

/// Serves TLS with the self-signed certificate; counts handshakes that completed and bytes of
/// application data that arrived.
#[cfg(feature = "tls")]
pub fn untrusted_tls_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs = vec![rustls::pki_types::CertificateDer::from_pem_file(format!(
        "{dir}/self-signed-cert.pem"
    ))
    .unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(format!("{dir}/self-signed-key.pem"))
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (handshakes, app_bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, b) = (handshakes.clone(), app_bytes.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut buf = [0u8; 4096];
            if let Ok(n) = tls.read(&mut buf) {
                b.fetch_add(n, Ordering::SeqCst);
            }
            if !tls.conn.is_handshaking() {
                h.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (url, handshakes, app_bytes)
}

/// A logger's output, captured (env_logger's `Target::Pipe`).
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

impl std::io::Write for Console {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
