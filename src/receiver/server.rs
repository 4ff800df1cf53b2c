//! The receiver's HTTP/1.1 server on std's TcpListener. httparse (already in the tree through
//! ureq) parses request heads and chunk sizes; this file owns only what a parser cannot: how much
//! it reads, for how long, and who gets a connection slot.
//!
//! Every read has a deadline (head, body, idle), every size is checked before anything is
//! allocated and buffers grow only with bytes that really arrived, a slot is released by a guard
//! whatever happens on the connection thread (a panic included), and when all slots are taken the
//! connection that has been waiting longest for bytes is closed to make room: idle or trickling
//! sockets can delay a real exporter by one accept, never lock it out.

use super::store::Store;
use crate::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use crate::proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use crate::proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use parking_lot::Mutex;
use prost::Message;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Bytes asked of the socket per read: buffers grow by what arrived, never by what was declared.
const READ_CHUNK: usize = 64 * 1024;

/// What the server accepts, and for how long it waits.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_connections: usize,
    /// From the first byte of a request to the end of its head.
    pub(crate) head_timeout: Duration,
    /// From the end of the head to the end of the body.
    pub(crate) body_timeout: Duration,
    /// Waiting for the next request on a kept-alive connection.
    pub(crate) idle_timeout: Duration,
}

/// Where a connection is; anything but `Handling` is waiting on its peer and may be closed to
/// make room for a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Between requests, or connected and silent.
    Idle,
    /// Reading a request head.
    Head,
    /// Reading a request body.
    Body,
    /// Writing the answer, which waits on the peer reading it.
    Answering,
    /// Decoding, storing, rendering: bounded work, never preempted.
    Handling,
}

struct Slot {
    id: u64,
    stream: TcpStream,
    phase: Phase,
    since: Instant,
}

/// The open connections; a slot is taken at accept and released by [`SlotGuard`].
#[derive(Default)]
pub(crate) struct Slots {
    open: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    /// Connections closed to make room for a newer one.
    preempted: AtomicU64,
}

impl Slots {
    pub(crate) fn open_connections(&self) -> usize {
        self.open.lock().len()
    }

    pub(crate) fn preempted(&self) -> u64 {
        self.preempted.load(Ordering::Relaxed)
    }

    /// Takes a slot for `stream`, closing the connection that has waited longest on its peer if
    /// all are taken (idle before heads, heads before bodies, bodies before answers the peer does
    /// not read). None: every slot is busy handling.
    fn take(self: &Arc<Self>, stream: &TcpStream, max: usize) -> Option<SlotGuard> {
        let control = stream.try_clone().ok()?;
        let mut open = self.open.lock();
        if open.len() >= max.max(1) {
            let victim = open
                .iter()
                .enumerate()
                .filter(|(_, s)| s.phase != Phase::Handling)
                .min_by_key(|(_, s)| (s.phase, s.since))
                .map(|(i, _)| i)?;
            let victim = open.swap_remove(victim);
            let _ = victim.stream.shutdown(Shutdown::Both);
            self.preempted.fetch_add(1, Ordering::Relaxed);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        open.push(Slot {
            id,
            stream: control,
            phase: Phase::Idle,
            since: Instant::now(),
        });
        Some(SlotGuard {
            slots: Arc::clone(self),
            id,
        })
    }
}

/// Releases its slot when the connection ends, however it ends.
struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
}

impl SlotGuard {
    fn enter(&self, phase: Phase) {
        if let Some(slot) = self.slots.open.lock().iter_mut().find(|s| s.id == self.id) {
            slot.phase = phase;
            slot.since = Instant::now();
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.slots.open.lock().retain(|s| s.id != self.id);
    }
}

pub(crate) struct Server {
    pub(crate) store: Arc<Store>,
    pub(crate) limits: Limits,
    pub(crate) slots: Arc<Slots>,
    pub(crate) stopping: AtomicBool,
}

/// A slot for `stream`. When every slot is handling a request (bounded work: decoding, storing,
/// rendering), one is waiting on its peer again a moment later, so the new connection waits that
/// moment rather than being refused at once; `None` after [`BUSY_WAIT`].
fn take_slot(server: &Server, stream: &TcpStream) -> Option<SlotGuard> {
    let until = Instant::now() + BUSY_WAIT;
    loop {
        if let Some(guard) = server.slots.take(stream, server.limits.max_connections) {
            return Some(guard);
        }
        if Instant::now() >= until || server.stopping.load(Ordering::SeqCst) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// How long a new connection waits for a slot while every slot is handling a request.
const BUSY_WAIT: Duration = Duration::from_secs(1);

pub(crate) fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    for stream in listener.incoming() {
        if server.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut stream) = stream else { continue };
        let Some(guard) = take_slot(&server, &stream) else {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = respond(
                &mut stream,
                &Response::text(503, "busy: every connection is being answered, retry"),
                true,
            );
            continue;
        };
        let server = Arc::clone(&server);
        let spawned = std::thread::Builder::new()
            .name("plain-connect-receiver-conn".into())
            .spawn(move || {
                // A bug here must cost one connection, never the receiver; the guard frees the
                // slot while unwinding.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    serve_connection(stream, &server, &guard)
                }));
                drop(guard);
            });
        // Could not start a thread: the closure (stream and guard) is dropped, the slot freed.
        drop(spawned);
    }
}

/// A request head that parsed, reduced to what the receiver acts on.
struct Head {
    method: String,
    target: String,
    close: bool,
    body: BodyFraming,
    gzip: bool,
    json: bool,
    expect_continue: bool,
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) extra_headers: Vec<(&'static str, String)>,
    /// Answering HEAD: the headers of the response, without its body.
    pub(crate) head_only: bool,
}

impl Response {
    pub(crate) fn text(status: u16, message: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: message.as_bytes().to_vec(),
            extra_headers: Vec::new(),
            head_only: false,
        }
    }
}

enum Failure {
    /// The peer went away, timed out or the server is stopping: close without a word.
    Gone,
    /// Answer this, then close.
    Reject(u16, &'static str),
}

impl From<io::Error> for Failure {
    /// A deadline that passed mid-request is answered (408); anything else means the peer is gone.
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                Failure::Reject(408, "request timeout: the request did not arrive in time")
            }
            _ => Failure::Gone,
        }
    }
}

/// A connection's socket and the bytes read from it but not consumed yet.
struct Connection {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl Connection {
    /// Reads what the peer has sent, waiting until `deadline` at most. Ok(0): the peer closed.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let start = self.pending.len();
        self.pending.resize(start + READ_CHUNK, 0);
        let read = self.stream.read(&mut self.pending[start..]);
        self.pending.truncate(start + *read.as_ref().unwrap_or(&0));
        read
    }

    /// Moves up to `wanted` bytes into `body`, reading as they arrive.
    fn read_into(
        &mut self,
        body: &mut Vec<u8>,
        mut wanted: usize,
        deadline: Instant,
    ) -> Result<(), Failure> {
        while wanted > 0 {
            if self.pending.is_empty() && self.fill(deadline)? == 0 {
                return Err(Failure::Gone);
            }
            let take = wanted.min(self.pending.len());
            body.extend_from_slice(&self.pending[..take]);
            self.pending.drain(..take);
            wanted -= take;
        }
        Ok(())
    }

    /// Makes sure `pending` holds at least `n` bytes.
    fn need(&mut self, n: usize, deadline: Instant) -> Result<(), Failure> {
        while self.pending.len() < n {
            if self.fill(deadline)? == 0 {
                return Err(Failure::Gone);
            }
        }
        Ok(())
    }
}

fn serve_connection(stream: TcpStream, server: &Server, slot: &SlotGuard) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let mut connection = Connection {
        stream,
        pending: Vec::new(),
    };
    let limits = &server.limits;
    while !server.stopping.load(Ordering::SeqCst) {
        slot.enter(Phase::Idle);
        let outcome = read_head(&mut connection, limits, slot).and_then(|head| {
            slot.enter(Phase::Body);
            let body = read_body(&mut connection, &head, limits)?;
            Ok((head, body))
        });
        slot.enter(Phase::Handling);
        match outcome {
            Ok((head, body)) => {
                let mut response = handle(&head, &body, server);
                if head.method == "HEAD" {
                    response.head_only = true;
                }
                slot.enter(Phase::Answering);
                if respond(&mut connection.stream, &response, head.close).is_err() || head.close {
                    return;
                }
            }
            Err(Failure::Gone) => return,
            Err(Failure::Reject(status, message)) => {
                server.store.count_rejected();
                let _ = respond(
                    &mut connection.stream,
                    &Response::text(status, message),
                    true,
                );
                linger(&mut connection, slot);
                return;
            }
        }
    }
}

/// After refusing a request whose body was not read, reads (and drops) what the peer still sends
/// for a moment, so that it sees the answer instead of a reset.
fn linger(connection: &mut Connection, slot: &SlotGuard) {
    slot.enter(Phase::Idle);
    let _ = connection.stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + Duration::from_millis(500);
    let mut drained = 0usize;
    while drained < 4 * 1024 * 1024 {
        connection.pending.clear();
        match connection.fill(deadline) {
            Ok(0) | Err(_) => return,
            Ok(n) => drained += n,
        }
    }
}

fn read_head(
    connection: &mut Connection,
    limits: &Limits,
    slot: &SlotGuard,
) -> Result<Head, Failure> {
    // The idle wait ends at the first byte; the whole head must follow within head_timeout.
    if connection.pending.is_empty() {
        // Silence between requests is no error: the connection just ends.
        match connection.fill(Instant::now() + limits.idle_timeout) {
            Ok(0) | Err(_) => return Err(Failure::Gone),
            Ok(_) => {}
        }
    }
    slot.enter(Phase::Head);
    let deadline = Instant::now() + limits.head_timeout;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&connection.pending) {
            Ok(httparse::Status::Complete(length)) => {
                let head = interpret(&request)?;
                connection.pending.drain(..length);
                return Ok(head);
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Failure::Reject(431, "too many header fields"))
            }
            Err(_) => return Err(Failure::Reject(400, "malformed request head")),
        }
        if connection.pending.len() >= MAX_HEAD_BYTES {
            return Err(Failure::Reject(431, "request head too large"));
        }
        if connection.fill(deadline)? == 0 {
            return Err(Failure::Gone);
        }
    }
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn interpret(request: &httparse::Request) -> Result<Head, Failure> {
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(Failure::Reject(400, "incomplete request line"));
    };
    let mut close = version == 0;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut gzip = false;
    let mut json = false;
    let mut expect_continue = false;
    for header in request.headers.iter() {
        let value = header.value.trim_ascii();
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .map(|v| v.parse::<usize>().unwrap_or(usize::MAX))
                .ok_or(Failure::Reject(400, "bad Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(Failure::Reject(400, "conflicting Content-Length headers"));
            }
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(Failure::Reject(
                    501,
                    "unsupported Transfer-Encoding (chunked only)",
                ));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-encoding") {
            if value.eq_ignore_ascii_case(b"gzip") {
                gzip = true;
            } else if !value.eq_ignore_ascii_case(b"identity") {
                return Err(Failure::Reject(
                    415,
                    "unsupported Content-Encoding (gzip or identity)",
                ));
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            json = value
                .get(..16)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"application/json"));
        } else if name.eq_ignore_ascii_case("connection") {
            if has_token(value, "close") {
                close = true;
            } else if has_token(value, "keep-alive") {
                close = false;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case(b"100-continue");
        }
    }
    if chunked && length.is_some() {
        // Both framings at once is how requests are smuggled past proxies: refuse.
        return Err(Failure::Reject(
            400,
            "both Content-Length and Transfer-Encoding",
        ));
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        close,
        body: if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Length(length.unwrap_or(0))
        },
        gzip,
        json,
        expect_continue,
    })
}

fn read_body(
    connection: &mut Connection,
    head: &Head,
    limits: &Limits,
) -> Result<Vec<u8>, Failure> {
    let too_large = Failure::Reject(413, "request body too large");
    if let BodyFraming::Length(length) = head.body {
        if length > limits.max_body_bytes {
            return Err(too_large);
        }
    }
    if head.expect_continue {
        connection
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let deadline = Instant::now() + limits.body_timeout;
    let mut body = Vec::new();
    match head.body {
        BodyFraming::Length(length) => connection.read_into(&mut body, length, deadline)?,
        BodyFraming::Chunked => loop {
            let (consumed, size) = loop {
                match httparse::parse_chunk_size(&connection.pending) {
                    Ok(httparse::Status::Complete(found)) => break found,
                    Ok(httparse::Status::Partial) if connection.pending.len() < 4096 => {
                        if connection.fill(deadline)? == 0 {
                            return Err(Failure::Gone);
                        }
                    }
                    _ => return Err(Failure::Reject(400, "bad chunk size line")),
                }
            };
            connection.pending.drain(..consumed);
            let size =
                usize::try_from(size).map_err(|_| Failure::Reject(413, "chunk too large"))?;
            if size > limits.max_body_bytes.saturating_sub(body.len()) {
                return Err(too_large);
            }
            if size == 0 {
                read_trailers(connection, deadline)?;
                break;
            }
            connection.read_into(&mut body, size, deadline)?;
            connection.need(2, deadline)?;
            if &connection.pending[..2] != b"\r\n" {
                return Err(Failure::Reject(400, "chunk not followed by CRLF"));
            }
            connection.pending.drain(..2);
        },
    }
    if head.gzip {
        gunzip(&body, limits.max_body_bytes)
    } else {
        Ok(body)
    }
}

/// The trailer section after the last chunk: header fields up to an empty line, all ignored.
fn read_trailers(connection: &mut Connection, deadline: Instant) -> Result<(), Failure> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        match httparse::parse_headers(&connection.pending, &mut headers) {
            Ok(httparse::Status::Complete((length, _))) => {
                connection.pending.drain(..length);
                return Ok(());
            }
            Ok(httparse::Status::Partial) if connection.pending.len() < MAX_HEAD_BYTES => {
                if connection.fill(deadline)? == 0 {
                    return Err(Failure::Gone);
                }
            }
            _ => return Err(Failure::Reject(400, "malformed chunked trailer")),
        }
    }
}

/// Decompresses with a cap, so a small "zip bomb" cannot exhaust memory.
fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| Failure::Reject(400, "body is not valid gzip"))?;
    if out.len() > max {
        return Err(Failure::Reject(413, "decompressed body too large"));
    }
    Ok(out)
}

/// `google.rpc.Status` { code = 3 (INVALID_ARGUMENT), message }.
fn rpc_status(message: &str) -> Vec<u8> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    RpcStatus {
        code: 3,
        message: message.to_owned(),
    }
    .encode_to_vec()
}

fn protobuf(status: u16, body: Vec<u8>) -> Response {
    Response {
        status,
        content_type: "application/x-protobuf",
        body,
        extra_headers: Vec::new(),
        head_only: false,
    }
}

fn handle(head: &Head, body: &[u8], server: &Server) -> Response {
    let store = &server.store;
    let (path, query) = head
        .target
        .split_once('?')
        .unwrap_or((head.target.as_str(), ""));
    let ingest = matches!(path, "/v1/traces" | "/v1/metrics" | "/v1/logs");
    if !ingest {
        return match (head.method.as_str(), path) {
            ("GET" | "HEAD", "/") => super::live_page(store, query),
            ("GET" | "HEAD", "/changes") => Response::text(200, &store.changes().to_string()),
            ("GET" | "HEAD", _) => Response::text(
                404,
                "not found: the live view is at /; OTLP/HTTP goes to POST /v1/traces, /v1/metrics, /v1/logs",
            ),
            _ => Response::text(404, "not found: POST to /v1/traces, /v1/metrics or /v1/logs"),
        };
    }
    if head.method != "POST" {
        let mut response = Response::text(405, "method not allowed: use POST");
        response.extra_headers.push(("Allow", "POST".into()));
        return response;
    }
    if head.json {
        store.count_rejected();
        return Response::text(
            415,
            "OTLP/HTTP JSON is not supported here: send application/x-protobuf",
        );
    }
    let decoded = match path {
        "/v1/traces" => ExportTraceServiceRequest::decode(body).map(|r| {
            store.add_traces(r, body.len());
            ExportTraceServiceResponse::default().encode_to_vec()
        }),
        "/v1/metrics" => ExportMetricsServiceRequest::decode(body).map(|r| {
            store.add_metrics(r, body.len());
            ExportMetricsServiceResponse::default().encode_to_vec()
        }),
        _ => ExportLogsServiceRequest::decode(body).map(|r| {
            store.add_logs(r, body.len());
            ExportLogsServiceResponse::default().encode_to_vec()
        }),
    };
    match decoded {
        Ok(response) => protobuf(200, response),
        Err(e) => {
            store.count_rejected();
            protobuf(
                400,
                rpc_status(&format!("body is not a valid OTLP protobuf message: {e}")),
            )
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        _ => "Service Unavailable",
    }
}

fn respond(writer: &mut TcpStream, response: &Response, close: bool) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
    );
    for (name, value) in &response.extra_headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if response.status == 503 {
        head.push_str("Retry-After: 1\r\n");
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    if !response.head_only {
        all.extend_from_slice(&response.body);
    }
    writer.write_all(&all)?;
    writer.flush()
}
