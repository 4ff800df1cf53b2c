//! A small HTTP/1.1 server for OTLP/HTTP protobuf on std's TcpListener: keep-alive,
//! Content-Length and chunked bodies, gzip, size caps, read timeouts. Never panics on input.

use super::store::Store;
use crate::proto::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use crate::proto::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use crate::proto::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 64;

pub(crate) struct Limits {
    pub(crate) max_body_bytes: usize,
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

enum ReadError {
    /// The peer closed or the server is stopping: end quietly.
    Closed,
    /// Answer with this status, then close.
    Reject(u16, &'static str),
}

pub(crate) fn accept_loop(
    listener: TcpListener,
    store: Arc<Store>,
    limits: Arc<Limits>,
    stopping: Arc<AtomicBool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            let mut stream = stream;
            let _ = respond(
                &mut stream,
                503,
                "text/plain",
                b"too many connections",
                true,
            );
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (store, limits, stopping, open) = (
            Arc::clone(&store),
            Arc::clone(&limits),
            Arc::clone(&stopping),
            Arc::clone(&open),
        );
        let spawned = std::thread::Builder::new()
            .name("plain-connect-receiver-conn".into())
            .spawn(move || {
                serve_connection(stream, &store, &limits, &stopping);
                open.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // Could not start a thread: the connection is dropped, the server goes on.
            continue;
        }
    }
}

fn serve_connection(stream: TcpStream, store: &Store, limits: &Limits, stopping: &AtomicBool) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let Ok(reader_stream) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader_stream);
    let mut writer = stream;
    while !stopping.load(Ordering::SeqCst) {
        match read_request(&mut reader, limits) {
            Ok(request) => {
                let (status, body) = handle(&request, store);
                let content_type = if status == 200 || status == 400 {
                    "application/x-protobuf"
                } else {
                    "text/plain"
                };
                if respond(&mut writer, status, content_type, &body, request.close).is_err()
                    || request.close
                {
                    return;
                }
            }
            Err(ReadError::Closed) => return,
            Err(ReadError::Reject(status, message)) => {
                store.count_rejected();
                let _ = respond(&mut writer, status, "text/plain", message.as_bytes(), true);
                return;
            }
        }
    }
}

fn read_line(reader: &mut BufReader<TcpStream>, budget: &mut usize) -> Result<String, ReadError> {
    let mut line = Vec::new();
    let read = reader
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|_| ReadError::Closed)?;
    if read == 0 {
        return Err(ReadError::Closed);
    }
    if read > *budget {
        return Err(ReadError::Reject(431, "request headers too large"));
    }
    *budget -= read;
    String::from_utf8(line).map_err(|_| ReadError::Reject(400, "request head is not UTF-8"))
}

fn read_request(reader: &mut BufReader<TcpStream>, limits: &Limits) -> Result<Request, ReadError> {
    let mut budget = MAX_HEADER_BYTES;
    let request_line = read_line(reader, &mut budget)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(path), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Reject(400, "malformed request line"));
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut close = version == "HTTP/1.0";
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut gzip = false;
    loop {
        let line = read_line(reader, &mut budget)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Reject(400, "malformed header"));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                content_length = Some(
                    value
                        .parse()
                        .map_err(|_| ReadError::Reject(400, "bad Content-Length"))?,
                )
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "content-encoding" => gzip = value.eq_ignore_ascii_case("gzip"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let raw = if chunked {
        read_chunked(reader, limits.max_body_bytes)?
    } else {
        let length = content_length.unwrap_or(0);
        if length > limits.max_body_bytes {
            return Err(ReadError::Reject(413, "request body too large"));
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .map_err(|_| ReadError::Closed)?;
        body
    };
    let body = if gzip {
        gunzip(&raw, limits.max_body_bytes)?
    } else {
        raw
    };
    Ok(Request {
        method,
        path,
        body,
        close,
    })
}

fn read_chunked(reader: &mut BufReader<TcpStream>, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut budget = 1024;
        let size_line = read_line(reader, &mut budget)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or(""), 16)
            .map_err(|_| ReadError::Reject(400, "bad chunk size"))?;
        if size == 0 {
            let mut budget = MAX_HEADER_BYTES;
            while !read_line(reader, &mut budget)?.trim().is_empty() {}
            return Ok(body);
        }
        if body.len() + size > max {
            return Err(ReadError::Reject(413, "request body too large"));
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|_| ReadError::Closed)?;
        body.truncate(start + size);
    }
}

/// Decompresses with a cap, so a small "zip bomb" cannot exhaust memory.
fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| ReadError::Reject(400, "body is not valid gzip"))?;
    if out.len() > max {
        return Err(ReadError::Reject(413, "decompressed body too large"));
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

fn handle(request: &Request, store: &Store) -> (u16, Vec<u8>) {
    let known = matches!(
        request.path.as_str(),
        "/v1/traces" | "/v1/metrics" | "/v1/logs"
    );
    if !known {
        return (
            404,
            b"not found: POST to /v1/traces, /v1/metrics or /v1/logs".to_vec(),
        );
    }
    if request.method != "POST" {
        return (405, b"method not allowed: use POST".to_vec());
    }
    let body = &request.body[..];
    let decoded = match request.path.as_str() {
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
        Ok(response) => (200, response),
        Err(e) => {
            store.count_rejected();
            (
                400,
                rpc_status(&format!("body is not a valid OTLP protobuf message: {e}")),
            )
        }
    }
}

fn respond(
    writer: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        if close { "Connection: close\r\n" } else { "" }
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(body)?;
    writer.flush()
}
