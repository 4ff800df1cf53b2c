//! A loopback OTLP/HTTP endpoint that only counts what arrives, per service.name, so both
//! libraries are measured against the same, cheap receiver.

use flate2::read::GzDecoder;
use plain_connect::proto::collector::logs::v1::ExportLogsServiceRequest;
use plain_connect::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::common::v1::any_value;
use plain_connect::proto::resource::v1::Resource;
use prost::Message;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Default, Clone, Copy, Debug)]
pub struct Counts {
    pub spans: u64,
    pub logs: u64,
    pub points: u64,
    pub requests: u64,
}

#[derive(Clone, Default)]
pub struct Tally(Arc<Mutex<HashMap<String, Counts>>>);

impl Tally {
    pub fn get(&self, service: &str) -> Counts {
        self.0
            .lock()
            .unwrap()
            .get(service)
            .copied()
            .unwrap_or_default()
    }
    fn add(&self, service: String, f: impl FnOnce(&mut Counts)) {
        let mut map = self.0.lock().unwrap();
        let counts = map.entry(service).or_default();
        counts.requests += 1;
        f(counts);
    }
}

fn service_name(resource: &Option<Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Starts the receiver on 127.0.0.1 at a free port; returns its base URL and the tally.
pub fn start() -> (String, Tally) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let tally = Tally::default();
    let shared = tally.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tally = shared.clone();
            std::thread::spawn(move || serve(stream, tally));
        }
    });
    (url, tally)
}

fn serve(stream: TcpStream, tally: Tally) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let (mut length, mut gzip) = (0usize, false);
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end().to_ascii_lowercase();
            if header.is_empty() {
                break;
            }
            if let Some(v) = header.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if header.starts_with("content-encoding:") && header.contains("gzip") {
                gzip = true;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if gzip {
            let mut out = Vec::new();
            if GzDecoder::new(&body[..]).read_to_end(&mut out).is_err() {
                return;
            }
            body = out;
        }
        match path.as_str() {
            "/v1/traces" => {
                if let Ok(req) = ExportTraceServiceRequest::decode(&body[..]) {
                    for rs in req.resource_spans {
                        let n = rs
                            .scope_spans
                            .iter()
                            .map(|s| s.spans.len() as u64)
                            .sum::<u64>();
                        tally.add(service_name(&rs.resource), |c| c.spans += n);
                    }
                }
            }
            "/v1/logs" => {
                if let Ok(req) = ExportLogsServiceRequest::decode(&body[..]) {
                    for rl in req.resource_logs {
                        let n = rl
                            .scope_logs
                            .iter()
                            .map(|s| s.log_records.len() as u64)
                            .sum::<u64>();
                        tally.add(service_name(&rl.resource), |c| c.logs += n);
                    }
                }
            }
            "/v1/metrics" => {
                if let Ok(req) = ExportMetricsServiceRequest::decode(&body[..]) {
                    for rm in req.resource_metrics {
                        let n = rm
                            .scope_metrics
                            .iter()
                            .map(|s| s.metrics.len() as u64)
                            .sum::<u64>();
                        tally.add(service_name(&rm.resource), |c| c.points += n);
                    }
                }
            }
            _ => {}
        }
        let response =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
