//! A loopback OTLP/HTTP endpoint that only counts what arrives, per service.name, so both
//! libraries are measured against the same, cheap receiver.

use flate2::read::GzDecoder;
use plain_connect::proto::collector::logs::v1::ExportLogsServiceRequest;
use plain_connect::proto::collector::metrics::v1::ExportMetricsServiceRequest;
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
            // Spans are counted by walking the wire format, not decoded into structs: a full decode
            // costs the receiver about three times what the exporter spends per span, and the
            // exporter waits for each response, so the receiver would bound the sustained rate.
            "/v1/traces" => {
                for rs in fields(&body).filter(|(f, _)| *f == 1) {
                    let mut service = String::new();
                    let mut n = 0;
                    for (f, inner) in fields(rs.1) {
                        if f == 1 {
                            service = service_name(&Resource::decode(inner).ok());
                        } else if f == 2 {
                            n += fields(inner).filter(|(g, _)| *g == 2).count() as u64;
                        }
                    }
                    tally.add(service, |c| c.spans += n);
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

/// The length-delimited fields of a message, as (field number, body); other wire types skipped.
fn fields(bytes: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let key = varint(bytes, &mut at)?;
        match key & 7 {
            0 => {
                varint(bytes, &mut at)?;
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let len = varint(bytes, &mut at)? as usize;
                let body = bytes.get(at..at + len)?;
                at += len;
                return Some(((key >> 3) as u32, body));
            }
            _ => return None,
        }
    })
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}
