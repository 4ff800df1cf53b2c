//! The embedded OTLP/HTTP receiver (feature `receiver`): the local counterpart of production
//! export. It accepts OTLP/HTTP protobuf from any exporter in any language, decodes what really
//! arrived (gzip included), and shows it as trace waterfalls, metric series and logs: live in a
//! browser at the receiver's own address (`GET /`), in the terminal, or as one HTML file.
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

mod clean;
mod html;
mod model;
mod server;
mod store;
mod text;

pub use store::Counts;

/// The receiver's connections: see [`Receiver::connections`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connections {
    /// Open right now.
    pub open: usize,
    /// Closed so far to make room for newer ones (all slots taken).
    pub preempted: u64,
}

/// What the receiver keeps in memory right now: see [`Receiver::kept`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeptNow {
    /// Spans, metric points and log records.
    pub items: usize,
    /// Their decoded protobuf bytes.
    pub bytes: usize,
}

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Limits for what the receiver accepts and keeps: the defaults with any part changed, e.g.
/// `ReceiverOptions::default().max_items(10_000)`.
#[derive(Clone, Copy, Debug)]
pub struct ReceiverOptions {
    pub(crate) max_body_bytes: usize,
    pub(crate) max_items: usize,
    pub(crate) max_kept_bytes: usize,
    pub(crate) max_connections: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
}

impl ReceiverOptions {
    /// Largest request body, compressed or not (default 16 MiB); larger ones get 413.
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
    /// Spans, points and records kept in memory (default 200 000); the oldest requests are
    /// evicted past it.
    pub fn max_items(mut self, max_items: usize) -> Self {
        self.max_items = max_items;
        self
    }
    /// Decoded protobuf bytes kept in memory (default 64 MiB); the oldest requests are evicted
    /// past it.
    pub fn max_kept_bytes(mut self, max_kept_bytes: usize) -> Self {
        self.max_kept_bytes = max_kept_bytes;
        self
    }
    /// Connections open at once (default 64). When all are taken, the one that has waited
    /// longest for its peer is closed to make room.
    pub fn max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }
    /// Time for a request head to arrive once it started, and for its body once the head is in
    /// (default 10 s each; a slower peer is cut off).
    pub fn request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }
    /// How long a kept-alive connection may sit between requests (default 30 s).
    pub fn idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout;
        self
    }
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        ReceiverOptions {
            max_body_bytes: 16 * 1024 * 1024,
            max_items: 200_000,
            max_kept_bytes: 64 * 1024 * 1024,
            max_connections: 64,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    server: Arc<server::Server>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .finish()
    }
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
        let server = Arc::new(server::Server {
            store: Arc::new(store::Store::new(options.max_items, options.max_kept_bytes)),
            limits: server::Limits {
                max_body_bytes: options.max_body_bytes,
                max_connections: options.max_connections,
                head_timeout: options.request_timeout,
                body_timeout: options.request_timeout,
                idle_timeout: options.idle_timeout,
            },
            slots: Arc::default(),
            stopping: Default::default(),
        });
        let thread = std::thread::Builder::new()
            .name("plain-connect-receiver".into())
            .spawn({
                let server = Arc::clone(&server);
                move || server::accept_loop(listener, server)
            })?;
        Ok(Receiver {
            addr,
            server,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, ready for `export_url`; the live view is at this address's `/`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Counts so far, without copying what is kept.
    pub fn counts(&self) -> Counts {
        self.server.store.counts()
    }

    /// Connections open right now, and connections closed so far to make room for newer ones.
    pub fn connections(&self) -> Connections {
        let slots = &self.server.slots;
        Connections {
            open: slots.open_connections(),
            preempted: slots.preempted(),
        }
    }

    /// What is kept in memory right now (the store's caps bound both).
    pub fn kept(&self) -> KeptNow {
        let (items, bytes) = self.server.store.kept();
        KeptNow { items, bytes }
    }

    /// A copy of everything kept so far.
    pub fn snapshot(&self) -> Received {
        self.server.store.with(|inner| Received {
            traces: inner.traces().cloned().collect(),
            metrics: inner.metrics().cloned().collect(),
            logs: inner.logs().cloned().collect(),
            counts: inner.counts,
        })
    }

    /// The terminal view of what is kept, rendered in place (no copy; see
    /// [`Received::render_text`]).
    pub fn render_text(&self, out: &mut dyn io::Write, color: bool) -> io::Result<()> {
        self.server
            .store
            .with(|inner| text::render(out, color, &model_of(inner, model::Filter::default())))
    }

    /// The page of what is kept, as one static file (no script), rendered in place.
    pub fn render_html(&self) -> String {
        self.server.store.with(|inner| {
            html::render(
                &model_of(inner, model::Filter::default()),
                html::Mode::Static,
            )
        })
    }

    /// Stops accepting and joins the accept thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.server.stopping.store(true, Ordering::SeqCst);
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

fn model_of(inner: &store::Inner, filter: model::Filter) -> model::Model {
    model::Model::build(
        inner.traces(),
        inner.metrics(),
        inner.logs(),
        inner.counts,
        filter,
    )
}

/// The live page for `GET /?service=..&trace=..`, rendered under the store's lock from what is
/// kept (no copy), with a Content-Security-Policy that lets only its own script run.
fn live_page(store: &store::Store, query: &str) -> server::Response {
    use rand::{Rng, SeedableRng};
    let nonce = format!(
        "{:032x}",
        rand::rngs::SmallRng::from_os_rng().random::<u128>()
    );
    let filter = model::Filter::parse(query);
    let page = store
        .with(|inner| html::render(&model_of(inner, filter), html::Mode::Live { nonce: &nonce }));
    server::Response {
        status: 200,
        content_type: "text/html; charset=utf-8",
        body: page.into_bytes(),
        extra_headers: vec![
            (
                "Content-Security-Policy",
                format!("default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'self'; base-uri 'none'"),
            ),
            ("Cache-Control", "no-store".into()),
            ("X-Content-Type-Options", "nosniff".into()),
        ],
        head_only: false,
    }
}

/// What the receiver decoded: the requests as they arrived, and counts.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Received {
    /// Trace requests.
    pub traces: Vec<ExportTraceServiceRequest>,
    /// Metric requests.
    pub metrics: Vec<ExportMetricsServiceRequest>,
    /// Log requests.
    pub logs: Vec<ExportLogsServiceRequest>,
    /// Counts over everything received, evicted requests included.
    pub counts: Counts,
}

impl Received {
    /// Requests decoded elsewhere (a file, a test, a fuzzer), to show with the same views.
    pub fn from_requests(
        traces: Vec<ExportTraceServiceRequest>,
        metrics: Vec<ExportMetricsServiceRequest>,
        logs: Vec<ExportLogsServiceRequest>,
    ) -> Received {
        let sum = |counts: Vec<usize>| counts.into_iter().sum::<usize>() as u64;
        let counts = Counts {
            requests: (traces.len() + metrics.len() + logs.len()) as u64,
            spans: sum(traces.iter().map(store::span_count).collect()),
            data_points: sum(metrics.iter().map(store::point_count).collect()),
            log_records: sum(logs.iter().map(store::log_count).collect()),
            ..Counts::default()
        };
        Received {
            traces,
            metrics,
            logs,
            counts,
        }
    }

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

    fn model(&self) -> model::Model {
        model::Model::build(
            self.traces.iter(),
            self.metrics.iter(),
            self.logs.iter(),
            self.counts,
            model::Filter::default(),
        )
    }

    /// The terminal view: waterfalls, metric series with estimated percentiles and exemplars,
    /// logs in time order, and what was received but not shown. Every field is bounded and its
    /// control characters are made visible, so nothing received can drive the terminal.
    pub fn render_text(&self, out: &mut dyn io::Write, color: bool) -> io::Result<()> {
        text::render(out, color, &self.model())
    }

    /// The same view as one self-contained HTML page (no script, no external resources).
    pub fn render_html(&self) -> String {
        html::render(&self.model(), html::Mode::Static)
    }
}
