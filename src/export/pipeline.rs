//! The exporter thread: batches what the app threads hand over, encodes it, sends it, retries,
//! and accounts for every item. Flush and shutdown honour their deadline whatever the endpoint
//! does: retry waits are interruptible and request timeouts are cut to the time left.

use super::encode::Encoder;
use super::report::Reporter;
use super::retry::RetryPolicy;
use super::transport::{Attempt, Endpoint, Transport};
use super::{ExportError, Signal, SpanConsumer};
use crate::attributes::KeyValue;
use crate::core::counters::{Counters, SignalCounters};
use crate::core::wire::next_field;
use crate::core::{self, Chunk, Encoded, Shared, SignalConfig};
use crate::trace;
use crossbeam_channel::{bounded, select, unbounded, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

enum Control {
    Flush {
        deadline: Instant,
        done: Sender<()>,
    },
    /// `after_uninstall`: the generation that followed this pipeline's, under which its final
    /// metrics collection may still run.
    Shutdown {
        deadline: Instant,
        after_uninstall: Option<u64>,
        done: Sender<()>,
    },
}

impl Control {
    fn deadline(&self) -> Instant {
        match self {
            Control::Flush { deadline, .. } | Control::Shutdown { deadline, .. } => *deadline,
        }
    }
}

/// Everything the pipeline needs, resolved from the settings.
#[derive(Clone, Debug)]
pub(crate) struct PipelineConfig {
    pub(crate) endpoint: Endpoint,
    pub(crate) resource: Vec<KeyValue>,
    pub(crate) signals: SignalConfig,
    /// Spans and log records the queue holds (handed over, not yet sent).
    pub(crate) max_queue_size: usize,
    /// Records a thread buffers before handing them over.
    pub(crate) handoff_size: usize,
    /// Items per export request.
    pub(crate) max_export_batch: usize,
    pub(crate) span_delay: Duration,
    pub(crate) log_delay: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) retry: RetryPolicy,
    /// At most one line about an ongoing failure per this interval.
    pub(crate) report_interval: Duration,
    /// Export the pipeline's own `otel.sdk.*` metrics ([`super::health`]).
    pub(crate) health_metrics: bool,
}

type Consumers = Arc<Mutex<Vec<Box<dyn SpanConsumer>>>>;

/// The app's handle on a running pipeline.
pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    control: Sender<Control>,
    stopped: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    consumers: Consumers,
}

impl Pipeline {
    /// Spawns the exporter thread and installs the pipeline for the whole process.
    pub(crate) fn start(config: PipelineConfig, installed_at: String) -> Result<Self, ExportError> {
        let counters = Arc::new(Counters::default());
        // Unbounded as a channel: the bound is on records, kept by `Shared`.
        let (queue_tx, queue_rx) = unbounded();
        let (control_tx, control_rx) = bounded(64);
        let (stopped_tx, stopped_rx) = bounded(1);
        let shared = Arc::new(
            Shared::new(
                config.signals,
                Arc::clone(&counters),
                queue_tx,
                config.max_queue_size,
                config.handoff_size,
            )
            .waking_at(config.max_export_batch),
        );
        // The clock calibrates on first use (a spin of a fraction of a millisecond, longer on
        // an emulator): here, before any app thread can record into this pipeline, rather than
        // in some request's first span.
        let _ = core::now_unix_nanos();
        core::install(Arc::clone(&shared), installed_at)
            .map_err(|first| ExportError::AlreadyInstalled { first })?;
        let consumers: Consumers = Arc::default();
        let now = Instant::now();
        let exporter = Exporter {
            transport: Transport::new(config.endpoint.clone()),
            reporter: Reporter::new(&config, Arc::clone(&counters)),
            encoder: Encoder::new(&config.resource),
            shared: Arc::clone(&shared),
            counters,
            queue: queue_rx,
            doorbell: shared.doorbell().clone(),
            control: control_rx,
            consumers: Arc::clone(&consumers),
            spans: Waiting::default(),
            exported: Vec::new(),
            logs: Waiting::default(),
            next_span_export: now + config.span_delay,
            next_log_export: now + config.log_delay,
            next_metrics: now + config.metrics_interval,
            stop_deadline: None,
            after_uninstall: None,
            stashed: Vec::new(),
            stocking: false,
            health: config
                .health_metrics
                .then(|| super::health::Health::new(config.max_queue_size)),
            config,
        };
        let thread = std::thread::Builder::new()
            .name("plain-connect-exporter".into())
            .spawn(move || {
                core::mark_exporter_thread();
                exporter.run();
                let _ = stopped_tx.send(());
            });
        match thread {
            Ok(thread) => Ok(Pipeline {
                shared,
                control: control_tx,
                stopped: stopped_rx,
                thread: Some(thread),
                consumers,
            }),
            Err(e) => {
                core::uninstall(&shared);
                shared.close();
                Err(ExportError::Spawn(e.to_string()))
            }
        }
    }

    pub(crate) fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    pub(crate) fn add_span_consumer(&self, consumer: Box<dyn SpanConsumer>) {
        self.consumers.lock().push(consumer);
    }

    fn request(
        &self,
        deadline: Instant,
        make: impl FnOnce(Sender<()>) -> Control,
    ) -> Result<(), ExportError> {
        let (done_tx, done_rx) = bounded(1);
        self.control
            .send_deadline(make(done_tx), deadline)
            .map_err(|_| ExportError::Timeout)?;
        done_rx
            .recv_deadline(deadline)
            .map_err(|_| ExportError::Timeout)
    }

    /// Exports everything recorded so far; returns when done or at the deadline.
    pub(crate) fn flush(&self, timeout: Duration) -> Result<(), ExportError> {
        if self.thread.is_none() {
            return Err(ExportError::ShutDown);
        }
        let deadline = Instant::now() + timeout;
        self.request(deadline, |done| Control::Flush { deadline, done })
    }

    /// Uninstalls the pipeline (nothing more is recorded into it), exports what it holds and
    /// stops the exporter thread. Returns by the deadline even if the endpoint hangs: the
    /// pipeline is closed then, so its thread, which ends when its request times out, takes
    /// nothing more and touches no process-wide state.
    pub(crate) fn shutdown(&mut self, timeout: Duration) -> Result<(), ExportError> {
        let Some(thread) = self.thread.take() else {
            return Err(ExportError::ShutDown);
        };
        let deadline = Instant::now() + timeout;
        let after_uninstall = core::uninstall(&self.shared);
        let result = self.request(deadline, |done| Control::Shutdown {
            deadline,
            after_uninstall,
            done,
        });
        self.shared.close();
        if self.stopped.recv_deadline(deadline).is_ok() {
            let _ = thread.join();
        }
        result
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = self.shutdown(super::DEFAULT_SHUTDOWN_TIMEOUT);
    }
}

/// The most bytes the exporter keeps, between batches, of the buffer it writes a batch's spans
/// into: a default batch of common spans fits.
const KEPT_EXPORTED_BYTES: usize = 1 << 20;

/// A log record's length-delimited fields, its scope's and its own, each as (whole field, body).
type LogRecord<'a> = [(&'a [u8], &'a [u8]); 2];

fn next_log_record<'a>(bytes: &'a [u8], at: &mut usize) -> Option<LogRecord<'a>> {
    Some([next_field(bytes, at)?, next_field(bytes, at)?])
}

/// Where the records taken from [`Waiting`] end: after its first `whole_buffers` buffers, at
/// `offset` in the next.
struct End {
    whole_buffers: usize,
    offset: usize,
}

/// Encoded records of one signal waiting on the exporter, in arrival order, in the buffers the
/// app threads wrote them into.
#[derive(Default)]
struct Waiting {
    buffers: VecDeque<Encoded>,
    /// Where the records not yet taken start in the front buffer.
    front_offset: usize,
    count: usize,
}

impl Waiting {
    fn push(&mut self, encoded: Encoded) {
        if encoded.count > 0 {
            self.count += encoded.count;
            self.buffers.push_back(encoded);
        }
    }

    /// The first `max` records, each as `next` reads it from a buffer, and where they end.
    fn front<'a, R>(
        &'a self,
        max: usize,
        next: impl Fn(&'a [u8], &mut usize) -> Option<R>,
    ) -> (Vec<R>, End) {
        let mut records = Vec::with_capacity(max.min(self.count));
        let mut offset = self.front_offset;
        for (index, encoded) in self.buffers.iter().enumerate() {
            let bytes = &encoded.bytes[..];
            while records.len() < max {
                match next(bytes, &mut offset) {
                    Some(record) => records.push(record),
                    None => break,
                }
            }
            if records.len() == max && offset < bytes.len() {
                return (
                    records,
                    End {
                        whole_buffers: index,
                        offset,
                    },
                );
            }
            offset = 0;
        }
        let whole_buffers = self.buffers.len();
        (
            records,
            End {
                whole_buffers,
                offset: 0,
            },
        )
    }

    /// Forgets the `n` records [`Waiting::front`] returned, up to the `end` it returned with
    /// them; emptied buffers go back to the app threads.
    fn consume(&mut self, n: usize, end: End, shared: &Shared) {
        for done in self.buffers.drain(..end.whole_buffers) {
            shared.recycle(done.bytes);
        }
        self.front_offset = end.offset;
        self.count = self.count.saturating_sub(n);
    }

    /// Forgets everything, returning how many records that was.
    fn clear(&mut self, shared: &Shared) -> usize {
        for encoded in self.buffers.drain(..) {
            shared.recycle(encoded.bytes);
        }
        self.front_offset = 0;
        std::mem::take(&mut self.count)
    }
}

struct Exporter {
    config: PipelineConfig,
    transport: Transport,
    reporter: Reporter,
    encoder: Encoder,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    queue: Receiver<Chunk>,
    /// Rung by the app threads once a batch's worth waits in `queue` or parked (see `Shared`).
    doorbell: Receiver<()>,
    control: Receiver<Control>,
    consumers: Consumers,
    spans: Waiting,
    /// The spans of the batch being sent, as they are exported (kept for its capacity).
    exported: Vec<u8>,
    logs: Waiting,
    next_span_export: Instant,
    next_log_export: Instant,
    next_metrics: Instant,
    /// Set while a flush or shutdown is being served: no wait or request may outlast it.
    stop_deadline: Option<Instant>,
    /// Set by shutdown: see [`Control::Shutdown`].
    after_uninstall: Option<u64>,
    /// Control messages that arrived during a retry wait, served next.
    stashed: Vec<Control>,
    health: Option<super::health::Health>,
    /// Set once some thread has handed over a full buffer: from then on the exporter keeps a
    /// stock of spare buffers ready (`Shared::stock_spares`). A process whose threads never
    /// fill one holds no stock.
    stocking: bool,
}

impl Drop for Exporter {
    /// However the thread ends, the pipeline's spare buffers go with it.
    fn drop(&mut self) {
        self.shared.free_spares();
    }
}

impl Exporter {
    fn run(mut self) {
        loop {
            if self.shared.is_closed() {
                self.abandon();
                return;
            }
            if !self.stashed.is_empty() {
                let control = self.stashed.remove(0);
                if self.serve(control) {
                    return;
                }
                continue;
            }
            let now = Instant::now();
            let wake = self
                .next_metrics
                .min(self.next_span_export)
                .min(self.next_log_export);
            select! {
                recv(self.control) -> message => match message {
                    Ok(control) => if self.serve(control) { return },
                    // The handle is gone without a shutdown: deliver what we have and stop.
                    Err(_) => {
                        self.stop_deadline = Some(Instant::now() + super::DEFAULT_SHUTDOWN_TIMEOUT);
                        self.export_everything();
                        self.abandon();
                        return;
                    }
                },
                recv(self.doorbell) -> _ => {},
                default(wake.saturating_duration_since(now)) => {},
            }
            self.drain();
            self.on_timers();
            self.stock_spares();
        }
    }

    /// Tops up the app threads' stock of spare buffers, once they use it.
    fn stock_spares(&self) {
        if self.stocking {
            self.shared.stock_spares();
        }
    }

    /// Returns true when the thread should stop.
    fn serve(&mut self, control: Control) -> bool {
        let deadline = control.deadline();
        self.stop_deadline = Some(self.stop_deadline.map_or(deadline, |d| d.min(deadline)));
        if let Control::Shutdown {
            after_uninstall, ..
        } = &control
        {
            self.after_uninstall = *after_uninstall;
        }
        self.export_everything();
        self.stop_deadline = None;
        match control {
            Control::Flush { done, .. } => {
                let _ = done.send(());
                false
            }
            Control::Shutdown { done, .. } => {
                self.abandon();
                let _ = done.send(());
                true
            }
        }
    }

    /// Counts what is still held as dropped (a shutdown that ran out of time, or a closed
    /// pipeline), so the counters add up. Closes the pipeline first: a thread that exits from
    /// here on would park its records where no exporter collects them.
    fn abandon(&mut self) {
        self.shared.close();
        while let Ok(chunk) = self.queue.try_recv() {
            self.take(chunk);
        }
        let spans = self.spans.clear(&self.shared);
        let logs = self.logs.clear(&self.shared);
        SignalCounters::add(&self.counters.spans.dropped_send_failed, spans);
        SignalCounters::add(&self.counters.logs.dropped_send_failed, logs);
        self.shared.release(spans + logs);
    }

    fn take(&mut self, chunk: Chunk) {
        self.spans.push(chunk.spans);
        self.logs.push(chunk.logs);
    }

    /// Takes what was handed over since the last drain, queued or parked, and sends the full
    /// batches: whenever the exporter wakes, whatever woke it.
    fn drain(&mut self) {
        let mut parked = Vec::new();
        self.shared.collect_parked(&mut parked);
        for chunk in parked {
            self.take(chunk);
        }
        while let Ok(chunk) = self.queue.try_recv() {
            self.stocking |= chunk.holds_full_buffer();
            self.take(chunk);
        }
        if self.spans.count >= self.config.max_export_batch {
            self.export_spans(false);
        }
        if self.logs.count >= self.config.max_export_batch {
            self.export_logs(false);
        }
    }

    fn sweep(&mut self) {
        let mut chunks = Vec::new();
        self.shared.sweep(&mut chunks);
        for chunk in chunks {
            self.take(chunk);
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_span_export || now >= self.next_log_export {
            self.sweep();
        }
        if now >= self.next_span_export {
            core::clock::resync();
            self.export_spans(true);
            self.next_span_export = Instant::now() + self.config.span_delay;
        }
        if now >= self.next_log_export {
            self.export_logs(true);
            self.next_log_export = Instant::now() + self.config.log_delay;
        }
        if now >= self.next_metrics {
            self.export_metrics();
            self.next_metrics = Instant::now() + self.config.metrics_interval;
        }
    }

    fn export_everything(&mut self) {
        self.sweep();
        while let Ok(chunk) = self.queue.try_recv() {
            self.take(chunk);
        }
        self.export_spans(true);
        self.export_logs(true);
        self.export_metrics();
    }

    /// Sends full batches, and the remainder too when `all`.
    fn export_spans(&mut self, all: bool) {
        let max = self.config.max_export_batch.max(1);
        while self.spans.count >= max || (all && self.spans.count > 0) {
            if self.shared.is_closed() {
                return;
            }
            let (body, n, end) = {
                let (records, end) = self.spans.front(max, trace::next_span_record);
                // The spans as they are exported, literal attributes written in.
                self.exported.clear();
                for record in &records {
                    // SAFETY: span bytes in a hand-off buffer are only ever written by
                    // `trace::span::submit`, record by record from the buffer's start, in this
                    // process; `front` read the records from there in order.
                    unsafe { record.write_exported(&mut self.exported) };
                }
                self.feed_consumers(&self.exported);
                (self.encoder.traces(&self.exported), records.len(), end)
            };
            // A batch of big spans does not keep its memory for good.
            if self.exported.capacity() > KEPT_EXPORTED_BYTES {
                self.exported = Vec::new();
            }
            if n == 0 {
                // Never ours: bytes that are not whole fields. Dropped and counted.
                let n = self.spans.clear(&self.shared);
                SignalCounters::add(&self.counters.spans.dropped_send_failed, n);
                self.shared.release(n);
                return;
            }
            self.spans.consume(n, end, &self.shared);
            self.deliver(Signal::Traces, body, n);
            // A drain can hold many batches: threads still flooding meanwhile need spares.
            self.stock_spares();
            self.shared.release(n);
        }
    }

    /// Hands the batch (its spans' entries, back to back, as exported) to the span consumers,
    /// decoded; a consumer that panics is counted and keeps its place (the exporter and the app
    /// threads carry on).
    fn feed_consumers(&self, entries: &[u8]) {
        let mut consumers = self.consumers.lock();
        if consumers.is_empty() {
            return;
        }
        let mut at = 0;
        let bodies = std::iter::from_fn(|| next_field(entries, &mut at).map(|(_, body)| body));
        let spans = trace::decode_spans(bodies);
        for consumer in consumers.iter_mut() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                consumer.consume(&spans);
            }));
            if outcome.is_err() {
                self.counters
                    .span_consumer_panics
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn export_logs(&mut self, all: bool) {
        let max = self.config.max_export_batch.max(1);
        while self.logs.count >= max || (all && self.logs.count > 0) {
            if self.shared.is_closed() {
                return;
            }
            let (body, n, end) = {
                let (records, end) = self.logs.front(max, next_log_record);
                let frames: Vec<(&[u8], &[u8])> = records
                    .iter()
                    .map(|[(_, scope), (whole, _)]| (*scope, *whole))
                    .collect();
                (self.encoder.logs(&frames), records.len(), end)
            };
            if n == 0 {
                let n = self.logs.clear(&self.shared);
                SignalCounters::add(&self.counters.logs.dropped_send_failed, n);
                self.shared.release(n);
                return;
            }
            self.logs.consume(n, end, &self.shared);
            self.deliver(Signal::Logs, body, n);
            self.stock_spares();
            self.shared.release(n);
        }
    }

    /// Collects and sends the process's metrics, only in this pipeline's name: never once
    /// another pipeline has been installed.
    fn export_metrics(&mut self) {
        let now = core::now_unix_nanos();
        let Some(mut metrics) = core::while_current(&self.shared, self.after_uninstall, || {
            crate::metrics::collect(now)
        }) else {
            return;
        };
        let points: usize = metrics.iter().map(|m| m.points.len()).sum();
        // Counted before the health points join: they are never counted in themselves.
        if let Some(health) = &self.health {
            metrics.extend(health.collect(&self.counters, now));
        }
        if metrics.is_empty() {
            return;
        }
        SignalCounters::add(&self.counters.metric_points.enqueued, points);
        let body = self.encoder.metrics(&metrics);
        self.deliver(Signal::Metrics, body, points);
    }

    fn signal_counters(&self, signal: Signal) -> &SignalCounters {
        match signal {
            Signal::Traces => &self.counters.spans,
            Signal::Metrics => &self.counters.metric_points,
            Signal::Logs => &self.counters.logs,
        }
    }

    /// Sends one batch, retrying per the policy, and counts every item's fate.
    fn deliver(&mut self, signal: Signal, body: Vec<u8>, items: usize) {
        let first_attempt = Instant::now();
        let mut attempt = 1;
        loop {
            let budget_end = first_attempt + self.config.retry.max_elapsed;
            let hard_end = self.stop_deadline.map_or(budget_end, |d| d.min(budget_end));
            let now = Instant::now();
            if self.stop_deadline.is_some_and(|d| now >= d) {
                SignalCounters::add(&self.signal_counters(signal).dropped_send_failed, items);
                return;
            }
            let timeout = match self.stop_deadline {
                Some(deadline) => deadline.saturating_duration_since(now),
                None => self.config.endpoint.request_timeout,
            };
            // The app threads go on filling buffers while the request is out.
            self.stock_spares();
            let outcome = self.transport.send(signal, &body, timeout);
            let counters = self.signal_counters(signal);
            match outcome {
                Attempt::Accepted { rejected, warning } => {
                    self.counters
                        .requests_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let rejected = usize::try_from(rejected).unwrap_or(usize::MAX).min(items);
                    SignalCounters::add(&counters.exported, items - rejected);
                    SignalCounters::add(&counters.dropped_rejected, rejected);
                    self.reporter.accepted(signal, rejected, warning.as_deref());
                    return;
                }
                Attempt::Rejected { reason } => {
                    self.counters
                        .requests_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    SignalCounters::add(&counters.dropped_rejected, items);
                    self.reporter.dropped(signal, items, attempt, &reason);
                    return;
                }
                Attempt::Failed { reason } => {
                    self.counters
                        .requests_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    SignalCounters::add(&counters.dropped_send_failed, items);
                    self.reporter.dropped(signal, items, attempt, &reason);
                    return;
                }
                Attempt::Retryable {
                    reason,
                    retry_after,
                } => {
                    self.counters
                        .requests_failed
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let wait = self.config.retry.backoff(attempt, retry_after);
                    if attempt >= self.config.retry.max_attempts || Instant::now() + wait > hard_end
                    {
                        SignalCounters::add(&counters.dropped_send_failed, items);
                        self.reporter.dropped(signal, items, attempt, &reason);
                        return;
                    }
                    log::debug!(target: "plain_connect::export", "{signal:?}: attempt {attempt} failed ({reason}); retrying in {wait:?}");
                    self.wait(wait);
                    attempt += 1;
                }
            }
        }
    }

    /// Sleeps, but wakes early when a flush or shutdown asks for a deadline sooner than the wake.
    fn wait(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        loop {
            match self.control.recv_deadline(until) {
                Ok(control) => {
                    let deadline = control.deadline();
                    self.stop_deadline =
                        Some(self.stop_deadline.map_or(deadline, |d| d.min(deadline)));
                    self.stashed.push(control);
                    if deadline < until {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::wire::Writer;

    fn buffer(first: u64, n: u64) -> Encoded {
        let mut bytes = Vec::new();
        for i in first..first + n {
            Writer::new(&mut bytes).bytes(2, &i.to_le_bytes()[..1 + (i % 8) as usize]);
        }
        Encoded {
            bytes,
            count: n as usize,
        }
    }

    #[test]
    fn batches_take_every_record_once_in_order_across_buffers() {
        let (queue, _rx) = unbounded();
        let signals = SignalConfig {
            sampler: crate::core::sampler::Sampler::ratio(1.0),
            span_limits: Default::default(),
            log_floor: None,
            metrics_mode: 1,
        };
        let shared = Shared::new(signals, Arc::default(), queue, 1 << 20, 1024);
        let mut waiting = Waiting::default();
        let sizes = [3, 1, 7, 4, 4, 10, 1];
        let mut first = 0;
        for n in sizes {
            waiting.push(buffer(first, n));
            first += n;
        }
        let mut seen = Vec::new();
        for max in [1, 3, 4, 2, 7, 100] {
            let (records, end) = waiting.front(max, next_field);
            let n = records.len();
            seen.extend(records.iter().map(|(_, body)| body.to_vec()));
            waiting.consume(n, end, &shared);
            assert_eq!(waiting.count, first as usize - seen.len());
        }
        let expected: Vec<Vec<u8>> = (0..first)
            .map(|i| i.to_le_bytes()[..1 + (i % 8) as usize].to_vec())
            .collect();
        assert_eq!(seen, expected);
        assert!(waiting.buffers.is_empty());
        assert_eq!(waiting.front(5, next_field).0.len(), 0);
    }
}
