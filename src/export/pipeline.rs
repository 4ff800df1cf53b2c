//! The exporter thread: batches what the app threads hand over, encodes it, sends it, retries,
//! and accounts for every item. Flush and shutdown honour their deadline whatever the endpoint
//! does: retry waits are interruptible and request timeouts are cut to the time left.

use super::counters::{Counters, SignalCounters};
use super::encode::Encoder;
use super::handoff::{self, Shared, SignalConfig};
use super::report::Reporter;
use super::retry::RetryPolicy;
use super::transport::{Attempt, Endpoint, Transport};
use super::{ExportError, Signal, SpanConsumer};
use crate::attributes::KeyValue;
use crate::logs::LogRecordData;
use crate::trace::SpanData;
use crossbeam_channel::{bounded, select, Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use std::cell::Cell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What travels from the app threads to the exporter.
pub(crate) enum Batch {
    Spans(Vec<SpanData>),
    Logs(Vec<LogRecordData>),
}

enum Control {
    Flush { deadline: Instant, done: Sender<()> },
    Shutdown { deadline: Instant, done: Sender<()> },
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
    /// Batches the queue holds; each is at most `handoff_size` items.
    pub(crate) queue_batches: usize,
    /// Items a thread buffers before handing them over.
    pub(crate) handoff_size: usize,
    /// Items per export request.
    pub(crate) max_export_batch: usize,
    pub(crate) span_delay: Duration,
    pub(crate) log_delay: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) retry: RetryPolicy,
    /// Export the pipeline's own `otel.sdk.*` metrics ([`super::health`]).
    pub(crate) health_metrics: bool,
    /// At most one line about an ongoing failure per this interval.
    pub(crate) report_interval: Duration,
}

thread_local! {
    static ON_EXPORTER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// True on the exporter thread: whatever is logged there (its HTTP client's errors included)
/// must not be exported, or a failing endpoint would feed itself.
pub fn is_exporter_thread() -> bool {
    ON_EXPORTER_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// The app's handle on a running pipeline.
pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    control: Sender<Control>,
    stopped: Receiver<()>,
    thread: Option<JoinHandle<()>>,
    consumers: Arc<Mutex<Vec<Box<dyn SpanConsumer>>>>,
}

impl Pipeline {
    /// Spawns the exporter thread and installs the pipeline for the whole process.
    pub(crate) fn start(config: PipelineConfig, installed_at: String) -> Result<Self, ExportError> {
        let counters = Arc::new(Counters::default());
        let (queue_tx, queue_rx) = bounded(config.queue_batches.max(1));
        let (control_tx, control_rx) = bounded(64);
        let (stopped_tx, stopped_rx) = bounded(1);
        let shared = Arc::new(Shared::new(
            config.signals,
            Arc::clone(&counters),
            queue_tx,
            config.handoff_size,
        ));
        handoff::install(Arc::clone(&shared), installed_at)
            .map_err(|first| ExportError::AlreadyInstalled { first })?;
        let consumers: Arc<Mutex<Vec<Box<dyn SpanConsumer>>>> = Arc::default();
        let now = Instant::now();
        let exporter = Exporter {
            transport: Transport::new(config.endpoint.clone()),
            reporter: Reporter::new(&config.endpoint, config.report_interval),
            encoder: Encoder::new(&config.resource),
            shared: Arc::clone(&shared),
            counters,
            queue: queue_rx,
            control: control_rx,
            consumers: Arc::clone(&consumers),
            spans: Vec::new(),
            logs: Vec::new(),
            next_span_export: now + config.span_delay,
            next_log_export: now + config.log_delay,
            next_metrics: now + config.metrics_interval,
            last_metrics_collection: super::now_unix_nanos(),
            stop_deadline: None,
            stashed: Vec::new(),
            config,
        };
        let thread = std::thread::Builder::new()
            .name("plain-connect-exporter".into())
            .spawn(move || {
                ON_EXPORTER_THREAD.with(|flag| flag.set(true));
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
                handoff::uninstall(&shared);
                Err(ExportError::Spawn(e.to_string()))
            }
        }
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    pub(crate) fn add_span_consumer(&self, consumer: Box<dyn SpanConsumer>) {
        self.consumers.lock().push(consumer);
    }

    fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(Instant, Sender<()>) -> Control,
    ) -> Result<(), ExportError> {
        let deadline = Instant::now() + timeout;
        let (done_tx, done_rx) = bounded(1);
        self.control
            .send_deadline(make(deadline, done_tx), deadline)
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
        self.request(timeout, |deadline, done| Control::Flush { deadline, done })
    }

    /// Flushes, stops the exporter thread and uninstalls the pipeline. Returns by the deadline
    /// even if the endpoint hangs (the thread then ends on its own when its request times out).
    pub(crate) fn shutdown(&mut self, timeout: Duration) -> Result<(), ExportError> {
        let Some(thread) = self.thread.take() else {
            return Err(ExportError::ShutDown);
        };
        handoff::uninstall(&self.shared);
        let deadline = Instant::now() + timeout;
        let result = self.request(timeout, |deadline, done| Control::Shutdown {
            deadline,
            done,
        });
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

struct Exporter {
    config: PipelineConfig,
    transport: Transport,
    reporter: Reporter,
    encoder: Encoder,
    shared: Arc<Shared>,
    counters: Arc<Counters>,
    queue: Receiver<Batch>,
    control: Receiver<Control>,
    consumers: Arc<Mutex<Vec<Box<dyn SpanConsumer>>>>,
    spans: Vec<SpanData>,
    logs: Vec<LogRecordData>,
    next_span_export: Instant,
    next_log_export: Instant,
    next_metrics: Instant,
    last_metrics_collection: u64,
    /// Set while a flush or shutdown is being served: no wait or request may outlast it.
    stop_deadline: Option<Instant>,
    /// Control messages that arrived during a retry wait, served next.
    stashed: Vec<Control>,
}

/// Takes the whole batches of `max` items from the front of `pending` (everything when `all`),
/// leaving the partial rest. Only that rest is moved, so draining a deep queue (a flush after a
/// burst) costs one pass, not one copy of the remainder per batch.
fn take_batches<T>(pending: &mut Vec<T>, max: usize, all: bool) -> Vec<T> {
    let ready = if all {
        pending.len()
    } else {
        pending.len() - pending.len() % max
    };
    let rest = pending.split_off(ready);
    std::mem::replace(pending, rest)
}

impl Exporter {
    fn run(mut self) {
        loop {
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
                        return;
                    }
                },
                recv(self.queue) -> batch => if let Ok(batch) = batch { self.accept(batch) },
                default(wake.saturating_duration_since(now)) => {},
            }
            self.on_timers();
        }
    }

    /// Returns true when the thread should stop.
    fn serve(&mut self, control: Control) -> bool {
        let deadline = control.deadline();
        self.stop_deadline = Some(self.stop_deadline.map_or(deadline, |d| d.min(deadline)));
        self.export_everything();
        self.stop_deadline = None;
        match control {
            Control::Flush { done, .. } => {
                let _ = done.send(());
                false
            }
            Control::Shutdown { done, .. } => {
                let _ = done.send(());
                true
            }
        }
    }

    fn accept(&mut self, batch: Batch) {
        match batch {
            Batch::Spans(mut spans) => {
                self.spans.append(&mut spans);
                self.shared.recycle_span_buffer(spans);
                if self.spans.len() >= self.config.max_export_batch {
                    self.export_spans(false);
                }
            }
            Batch::Logs(mut logs) => {
                self.logs.append(&mut logs);
                if self.logs.len() >= self.config.max_export_batch {
                    self.export_logs(false);
                }
            }
        }
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_span_export || now >= self.next_log_export {
            self.shared.sweep(&mut self.spans, &mut self.logs);
        }
        if now >= self.next_span_export {
            super::clock::resync();
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
        self.shared.sweep(&mut self.spans, &mut self.logs);
        while let Ok(batch) = self.queue.try_recv() {
            match batch {
                Batch::Spans(mut s) => self.spans.append(&mut s),
                Batch::Logs(mut l) => self.logs.append(&mut l),
            }
        }
        self.export_spans(true);
        self.export_logs(true);
        self.export_metrics();
    }

    /// Sends full batches, and the remainder too when `all`.
    fn export_spans(&mut self, all: bool) {
        let max = self.config.max_export_batch.max(1);
        let ready = take_batches(&mut self.spans, max, all);
        for batch in ready.chunks(max) {
            for consumer in self.consumers.lock().iter_mut() {
                consumer.consume(batch);
            }
            let body = self.encoder.traces(batch);
            self.deliver(Signal::Traces, body, batch.len());
        }
    }

    fn export_logs(&mut self, all: bool) {
        let max = self.config.max_export_batch.max(1);
        let ready = take_batches(&mut self.logs, max, all);
        for batch in ready.chunks(max) {
            let body = self.encoder.logs(batch);
            self.deliver(Signal::Logs, body, batch.len());
        }
    }

    fn export_metrics(&mut self) {
        let now = super::now_unix_nanos();
        let mut metrics = crate::metrics::collect(now);
        self.last_metrics_collection = now;
        let points: usize = metrics.iter().map(|m| m.points.len()).sum();
        // Counted before the health points join: they are never counted in themselves.
        if self.config.health_metrics {
            let capacity = self.config.queue_batches * self.config.handoff_size;
            metrics.extend(super::health::collect(&self.counters, capacity, now));
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
    use super::take_batches;

    #[test]
    fn whole_batches_leave_in_order_and_the_rest_waits() {
        let mut pending: Vec<u32> = (0..10).collect();
        assert_eq!(
            take_batches(&mut pending, 4, false),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(pending, [8, 9]);
        assert!(take_batches(&mut pending, 4, false).is_empty());
        assert_eq!(pending, [8, 9]);
        assert_eq!(take_batches(&mut pending, 4, true), [8, 9]);
        assert!(pending.is_empty());
    }
}
