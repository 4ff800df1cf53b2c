//! The embedded OTLP/HTTP receiver (feature `receiver`): the local counterpart of production
//! export. It accepts OTLP/HTTP protobuf from any exporter in any language, decodes what really
//! arrived (gzip included), and shows it as trace waterfalls, histograms and logs in the terminal
//! or as one HTML page.
//!
//! ```
//! use plain_connect::receiver::Receiver;
//! let receiver = Receiver::start("127.0.0.1:0").unwrap();
//! let endpoint = receiver.endpoint(); // export here, e.g. with Settings::builder().export_url(endpoint)
//! let seen = receiver.snapshot();
//! assert_eq!(seen.counts.spans, 0);
//! let mut text = Vec::new();
//! seen.render_text(&mut text, false).unwrap();
//! # drop(endpoint);
//! ```

mod server;
mod store;
mod view;

pub use store::Counts;

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Limits for what the receiver accepts.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverOptions {
    /// Largest request body, compressed or not (default 16 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// Spans, points and records kept in memory (default 200 000); older requests are evicted.
    pub max_items: usize,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            max_body_bytes: 16 * 1024 * 1024,
            max_items: 200_000,
        }
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    store: Arc<store::Store>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `addr` (`127.0.0.1:0` picks a free port).
    pub fn start(addr: impl ToSocketAddrs) -> io::Result<Receiver> {
        Receiver::with_options(addr, ReceiverOptions::default())
    }

    /// Listens on `addr` with these limits.
    pub fn with_options(
        addr: impl ToSocketAddrs,
        options: ReceiverOptions,
    ) -> io::Result<Receiver> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let store = Arc::new(store::Store::new(options.max_items));
        let stopping = Arc::new(AtomicBool::new(false));
        let limits = Arc::new(server::Limits {
            max_body_bytes: options.max_body_bytes,
        });
        let thread = std::thread::Builder::new()
            .name("plain-connect-receiver".into())
            .spawn({
                let (store, stopping) = (Arc::clone(&store), Arc::clone(&stopping));
                move || server::accept_loop(listener, store, limits, stopping)
            })?;
        Ok(Receiver {
            addr,
            store,
            stopping,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, ready for `export_url`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of everything kept so far.
    pub fn snapshot(&self) -> Telemetry {
        self.store.with(|inner| Telemetry {
            traces: inner.traces.iter().cloned().collect(),
            metrics: inner.metrics.iter().cloned().collect(),
            logs: inner.logs.iter().cloned().collect(),
            counts: inner.counts,
        })
    }

    /// Stops accepting and joins the accept thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the receiver decoded: the requests as they arrived, and counts.
#[derive(Clone, Debug, Default)]
pub struct Telemetry {
    /// Trace requests.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// Metric requests.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Log requests.
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Counts over everything received, evicted requests included.
    pub counts: Counts,
}

impl Telemetry {
    /// Every span, flattened.
    pub fn spans(&self) -> impl Iterator<Item = &crate::proto::trace::v1::Span> {
        self.traces
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
    }

    /// Every log record, flattened.
    pub fn log_records(&self) -> impl Iterator<Item = &crate::proto::logs::v1::LogRecord> {
        self.logs
            .iter()
            .flat_map(|r| &r.resource_logs)
            .flat_map(|rl| &rl.scope_logs)
            .flat_map(|sl| &sl.log_records)
    }

    /// Every metric, flattened (one per export window).
    pub fn metrics(&self) -> impl Iterator<Item = &crate::proto::metrics::v1::Metric> {
        self.metrics
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
    }

    fn summary(&self, traces: usize) -> String {
        let mut services: Vec<String> = self
            .traces
            .iter()
            .flat_map(|r| r.resource_spans.iter().map(|rs| &rs.resource))
            .chain(
                self.metrics
                    .iter()
                    .flat_map(|r| r.resource_metrics.iter().map(|rm| &rm.resource)),
            )
            .chain(
                self.logs
                    .iter()
                    .flat_map(|r| r.resource_logs.iter().map(|rl| &rl.resource)),
            )
            .flatten()
            .flat_map(|r| &r.attributes)
            .filter(|kv| kv.key == "service.name")
            .map(|kv| view::any_to_string(&kv.value))
            .collect();
        services.sort();
        services.dedup();
        let c = &self.counts;
        format!(
            "services: {} | {} traces, {} spans | {} metric points | {} log records | {} requests ({} rejected)",
            if services.is_empty() { "-".into() } else { services.join(", ") },
            traces,
            c.spans,
            c.data_points,
            c.log_records,
            c.requests,
            c.rejected_requests
        )
    }

    /// The terminal view: waterfalls, histograms with estimated percentiles, logs in time order.
    pub fn render_text(&self, out: &mut dyn io::Write, color: bool) -> io::Result<()> {
        let traces = view::traces(&self.traces.iter().collect::<Vec<_>>());
        let (histograms, numbers) = view::metrics(&self.metrics.iter().collect::<Vec<_>>());
        let logs = view::logs(&self.logs.iter().collect::<Vec<_>>());
        view::render_text(
            out,
            color,
            &self.summary(traces.len()),
            &traces,
            &histograms,
            &numbers,
            &logs,
        )
    }

    /// The same view as one self-contained HTML page.
    pub fn render_html(&self) -> String {
        let traces = view::traces(&self.traces.iter().collect::<Vec<_>>());
        let (histograms, numbers) = view::metrics(&self.metrics.iter().collect::<Vec<_>>());
        let logs = view::logs(&self.logs.iter().collect::<Vec<_>>());
        view::render_html(
            &self.summary(traces.len()),
            &traces,
            &histograms,
            &numbers,
            &logs,
        )
    }
}
