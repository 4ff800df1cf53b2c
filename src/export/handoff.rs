//! The app-thread side of the pipeline: the installed pipeline and per-thread buffers.
//!
//! A finished span or log record is pushed onto a buffer owned by the recording thread (an
//! uncontended lock, no channel operation); a full buffer is handed to the exporter's bounded
//! queue as one batch with a single non-blocking `try_send`. The exporter also sweeps every
//! thread's buffer on its own timer and on flush, so an idle thread's records still leave within
//! the export delay. Nothing here blocks, and a full queue drops the batch and counts it.

use super::counters::{Counters, SignalCounters};
use super::pipeline::Batch;
use crate::logs::LogRecordData;
use crate::trace::sampler::Sampler;
use crate::trace::{SpanData, SpanLimits};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// What the signal modules need to know on the app thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignalConfig {
    pub(crate) sampler: Sampler,
    pub(crate) span_limits: SpanLimits,
    /// The export floor for log records; `None` when log export is off.
    pub(crate) log_floor: Option<log::LevelFilter>,
}

/// One thread's records not yet handed to the queue.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) spans: Vec<SpanData>,
    pub(crate) logs: Vec<LogRecordData>,
}

type Slot = Mutex<Pending>;

/// State shared by the app threads and the exporter thread of one installed pipeline.
pub(crate) struct Shared {
    pub(crate) signals: SignalConfig,
    pub(crate) counters: Arc<Counters>,
    queue: Sender<Batch>,
    /// Emptied span buffers the exporter hands back, so neither side allocates or frees a
    /// batch-sized buffer per hand-off.
    spare_spans: (Sender<Vec<SpanData>>, Receiver<Vec<SpanData>>),
    slots: Mutex<Vec<Weak<Slot>>>,
    handoff_size: usize,
}

impl Shared {
    pub(crate) fn new(
        signals: SignalConfig,
        counters: Arc<Counters>,
        queue: Sender<Batch>,
        handoff_size: usize,
    ) -> Self {
        Shared {
            signals,
            counters,
            queue,
            spare_spans: crossbeam_channel::bounded(64),
            slots: Mutex::new(Vec::new()),
            handoff_size: handoff_size.max(1),
        }
    }

    /// An empty span buffer: a recycled one if any, else a new one.
    fn span_buffer(&self) -> Vec<SpanData> {
        self.spare_spans
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.handoff_size))
    }

    /// Gives an emptied span buffer back for reuse (the exporter calls this).
    pub(crate) fn recycle_span_buffer(&self, mut buffer: Vec<SpanData>) {
        buffer.clear();
        if buffer.capacity() >= self.handoff_size {
            let _ = self.spare_spans.0.try_send(buffer);
        }
    }

    fn enqueue(&self, batch: Batch) {
        let (counters, n) = match &batch {
            Batch::Spans(s) => (&self.counters.spans, s.len()),
            Batch::Logs(l) => (&self.counters.logs, l.len()),
        };
        if n == 0 {
            return;
        }
        // Counted before the send so a reader never sees more exported than enqueued.
        SignalCounters::add(&counters.enqueued, n);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(batch)
        {
            counters.enqueued.fetch_sub(n as u64, Ordering::Relaxed);
            SignalCounters::add(&counters.dropped_queue_full, n);
        }
    }

    fn hand_over_everything(&self, slot: &Slot) {
        let pending = std::mem::take(&mut *slot.lock());
        self.enqueue(Batch::Spans(pending.spans));
        self.enqueue(Batch::Logs(pending.logs));
    }

    /// Takes every thread's buffered records (the exporter's sweep).
    pub(crate) fn sweep(&self, spans: &mut Vec<SpanData>, logs: &mut Vec<LogRecordData>) {
        let mut slots = self.slots.lock();
        slots.retain(|weak| match weak.upgrade() {
            Some(slot) => {
                let mut pending = slot.lock();
                SignalCounters::add(&self.counters.spans.enqueued, pending.spans.len());
                SignalCounters::add(&self.counters.logs.enqueued, pending.logs.len());
                spans.append(&mut pending.spans);
                logs.append(&mut pending.logs);
                true
            }
            None => false,
        });
    }

    fn new_slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Mutex::new(Pending::default()));
        self.slots.lock().push(Arc::downgrade(&slot));
        slot
    }
}

struct Installed {
    shared: Arc<Shared>,
    installed_at: String,
}

/// Bumped on every install and uninstall, so threads notice with one relaxed load.
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// The installed pipeline's log export floor as a `LevelFilter` number (0 = off or none), so a
/// record under the floor costs one load.
static LOG_FLOOR: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The installed pipeline's log export floor, `None` when logs are not exported.
pub(crate) fn log_floor() -> Option<log::LevelFilter> {
    match LOG_FLOOR.load(Ordering::Relaxed) {
        0 => None,
        n => log::LevelFilter::iter().nth(n),
    }
}

/// The installed pipeline's sampler, so deciding a span's fate reads two words and no
/// thread-local state (an unsampled span never needs more).
static SAMPLER_UPPER_BOUND: AtomicU64 = AtomicU64::new(0);
static SAMPLER_PARENT_BASED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The installed pipeline's sampler; samples nothing when none is installed.
pub(crate) fn sampler() -> Sampler {
    Sampler::from_parts(
        SAMPLER_UPPER_BOUND.load(Ordering::Relaxed),
        SAMPLER_PARENT_BASED.load(Ordering::Relaxed),
    )
}

/// Whether any pipeline is installed: the disabled path is this one load and nothing else.
static INSTALLED_ANY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static INSTALLED: Mutex<Option<Installed>> = parking_lot::const_mutex(None);

/// Makes `shared` the process's pipeline; a second one is refused, naming the first.
pub(crate) fn install(shared: Arc<Shared>, installed_at: String) -> Result<(), String> {
    let mut installed = INSTALLED.lock();
    if let Some(existing) = installed.as_ref() {
        return Err(existing.installed_at.clone());
    }
    let floor = shared.signals.log_floor.map_or(0, |f| f as usize);
    let (upper_bound, parent_based) = shared.signals.sampler.to_parts();
    *installed = Some(Installed {
        shared,
        installed_at,
    });
    LOG_FLOOR.store(floor, Ordering::Release);
    SAMPLER_UPPER_BOUND.store(upper_bound, Ordering::Release);
    SAMPLER_PARENT_BASED.store(parent_based, Ordering::Release);
    GENERATION.fetch_add(1, Ordering::Release);
    INSTALLED_ANY.store(true, Ordering::Release);
    Ok(())
}

/// Removes `shared` if it is the installed pipeline.
pub(crate) fn uninstall(shared: &Arc<Shared>) {
    let mut installed = INSTALLED.lock();
    if installed
        .as_ref()
        .is_some_and(|i| Arc::ptr_eq(&i.shared, shared))
    {
        *installed = None;
        LOG_FLOOR.store(0, Ordering::Release);
        SAMPLER_UPPER_BOUND.store(0, Ordering::Release);
        SAMPLER_PARENT_BASED.store(false, Ordering::Release);
        GENERATION.fetch_add(1, Ordering::Release);
        INSTALLED_ANY.store(false, Ordering::Release);
    }
}

/// This thread's view of the installed pipeline, refreshed when the generation changes.
struct Local {
    generation: u64,
    shared: Option<Arc<Shared>>,
    slot: Option<Arc<Slot>>,
}

impl Local {
    fn refresh(&mut self, generation: u64) {
        self.hand_over();
        self.shared = INSTALLED.lock().as_ref().map(|i| Arc::clone(&i.shared));
        self.slot = self.shared.as_ref().map(|s| s.new_slot());
        self.generation = generation;
    }

    fn hand_over(&mut self) {
        if let (Some(shared), Some(slot)) = (&self.shared, &self.slot) {
            shared.hand_over_everything(slot);
        }
    }
}

impl Drop for Local {
    /// A thread that ends hands its buffered records over rather than losing them.
    fn drop(&mut self) {
        self.hand_over();
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local { generation: 0, shared: None, slot: None })
    };
}

/// Runs `f` with this thread's view of the installed pipeline; `None` when none is installed
/// (or during thread teardown).
fn with_local<R>(f: impl FnOnce(&Shared, &Slot) -> R) -> Option<R> {
    LOCAL
        .try_with(|cell| {
            let generation = GENERATION.load(Ordering::Relaxed);
            if cell.try_borrow().ok()?.generation != generation {
                cell.try_borrow_mut().ok()?.refresh(generation);
            }
            let local = cell.try_borrow().ok()?;
            match (&local.shared, &local.slot) {
                (Some(shared), Some(slot)) => Some(f(shared, slot)),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// Whether a pipeline is installed: one relaxed load, for the disabled fast path.
#[inline]
pub(crate) fn is_installed() -> bool {
    INSTALLED_ANY.load(Ordering::Relaxed)
}

/// The installed pipeline's signal settings, or `None` when export is off.
pub(crate) fn with_signal_config<R>(f: impl FnOnce(&SignalConfig) -> R) -> Option<R> {
    if !is_installed() {
        return None;
    }
    with_local(|shared, _| f(&shared.signals))
}

/// Queues a finished span (dropped silently when no pipeline is installed). Boxed on the way in,
/// so the record is copied once, into the thread's buffer, not at every call on the way there.
pub(crate) fn submit_span(span: Box<SpanData>) {
    with_local(|shared, slot| {
        let mut pending = slot.lock();
        pending.spans.push(*span);
        if pending.spans.len() >= shared.handoff_size {
            let batch = std::mem::replace(&mut pending.spans, shared.span_buffer());
            drop(pending);
            shared.enqueue(Batch::Spans(batch));
        }
    });
}

/// Queues a log record (dropped silently when no pipeline is installed).
pub(crate) fn submit_log(record: LogRecordData) {
    // Captured by reference, so the record is not copied into each closure on the way.
    let mut record = Some(record);
    with_local(|shared, slot| {
        let mut pending = slot.lock();
        pending.logs.extend(record.take());
        if pending.logs.len() >= shared.handoff_size {
            let batch =
                std::mem::replace(&mut pending.logs, Vec::with_capacity(shared.handoff_size));
            drop(pending);
            shared.enqueue(Batch::Logs(batch));
        }
    });
}
