//! The app-thread side of the pipeline: per-thread buffers of encoded records, and the queue
//! to the exporter, bounded in items.
//!
//! A finished span or log record is written in the OTLP wire format into a buffer owned by the
//! recording thread (an uncontended lock, no channel operation, nothing allocated per record),
//! a span's literal attributes aside (kept as addresses for the exporter to write out).
//! A full buffer is handed to the exporter as one [`Chunk`] if the queue has room for its items;
//! the exporter also sweeps every thread's buffer on its timer and on flush, so an idle thread's
//! records still leave within the export delay. The buffer of a thread that exits (or moves to
//! another pipeline) is parked in its pipeline's [`Shared`] instead, for the exporter to collect
//! on the same sweep.
//!
//! Waking the blocked exporter costs a system call, more than a short-lived thread's records
//! themselves and a good part of a burst's: app threads ring its doorbell only when the records
//! sent or parked since it last drained the queue reach a batch's worth. It drains the queue and
//! collects the parked records whenever it runs, its timers included.
//! The bound counts records, whatever the size of the chunks they travel in: every record
//! handed over and not yet sent (or dropped) by the exporter counts against it. Nothing here
//! blocks; a full queue drops the chunk and counts its records.
//!
//! Sent buffers come back as spares, and once threads fill buffers the exporter keeps a stock of
//! spares whose pages it has already written: a thread that outruns the exporter would
//! otherwise take fresh memory from the allocator and page-fault on its first write to each
//! page, on the recording thread.

use super::counters::{Counters, SignalCounters};
use super::spin::{SpinGuard, SpinLock};
use super::{SignalConfig, SpanLimits};
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::cell::{Cell, RefCell, UnsafeCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

/// A thread's buffer is this big; it is handed over once less than a kilobyte is free (or at
/// `handoff_items` records), so a record rarely makes it grow and queued chunks use nearly all
/// the memory they hold (the queue's memory is close to the bytes it holds).
const BUFFER_BYTES: usize = 32 * 1024;
const HANDOFF_BYTES: usize = BUFFER_BYTES - 1024;
/// A thread's first buffer starts small: a short-lived thread that records one span should not
/// queue a buffer sized for a thousand. It is never a spare one, so such threads leave the
/// exporter's stock to the threads that fill buffers.
const FIRST_BUFFER_BYTES: usize = 1024;
/// Emptied buffers kept for reuse, at most.
const SPARE_BUFFERS: usize = 64;
/// Spare buffers the exporter keeps ready, their pages already written, once some thread fills
/// buffers: about what a flooding thread fills while the exporter encodes and sends a batch of
/// the default size, twice over. A flood outruns the exporter, so the queue grows and the
/// buffers that come back cannot keep up: a buffer fresh from the allocator would page-fault on
/// the recording thread at its first write to each page; these fault on the exporter thread.
const STOCKED_BUFFERS: usize = 32;
/// The smallest page size of any target: writing one byte this far apart writes every page,
/// whatever the page size.
const PAGE_BYTES: usize = 4096;

/// Encoded records of one signal, back to back.
#[derive(Default, Debug)]
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) count: usize,
}

/// What travels from a recording thread to the exporter: spans and log records, encoded.
#[derive(Default, Debug)]
pub(crate) struct Chunk {
    pub(crate) spans: Encoded,
    pub(crate) logs: Encoded,
}

impl Chunk {
    pub(crate) fn items(&self) -> usize {
        self.spans.count + self.logs.count
    }

    /// Whether this chunk holds a full-size buffer: its thread fills buffers, and takes spare
    /// ones.
    pub(crate) fn holds_full_buffer(&self) -> bool {
        self.spans.bytes.capacity().max(self.logs.bytes.capacity()) >= BUFFER_BYTES
    }

    /// The records of `kind`.
    fn of(&mut self, kind: Kind) -> &mut Encoded {
        match kind {
            Kind::Span => &mut self.spans,
            Kind::Log => &mut self.logs,
        }
    }
}

/// Which record buffer a submission writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Span,
    Log,
}

/// A thread's pending records: written by its thread for each record, taken by the exporter's
/// sweep and by the thread's hand-over. The spin lock of `core::spin` guards them: one atomic
/// read-modify-write to take and a release store to give back, half of what a general mutex's
/// uncontended path pays (and every span and log record pays it). A holder keeps it only to
/// append one record or take the buffers, and a thread never locks its own slot twice
/// (`with_local` is not reentrant). Never poisoned: a writer that panics leaves the records
/// written before it, as a mutex without poisoning would.
struct Slot {
    lock: SpinLock,
    chunk: UnsafeCell<Chunk>,
}

// SAFETY: `chunk` is only reached through a `SlotGuard`, which holds `lock`: one exists at a
// time, and the lock's Acquire and Release order every access to `chunk` between the guards.
// `Chunk` is `Send`, so passing its access from thread to thread is sound.
unsafe impl Sync for Slot {}

impl Slot {
    fn new() -> Self {
        Slot {
            lock: SpinLock::default(),
            chunk: UnsafeCell::new(Chunk::default()),
        }
    }

    #[inline]
    fn lock(&self) -> SlotGuard<'_> {
        SlotGuard {
            _held: self.lock.lock(),
            chunk: &self.chunk,
        }
    }
}

struct SlotGuard<'a> {
    _held: SpinGuard<'a>,
    chunk: &'a UnsafeCell<Chunk>,
}

impl std::ops::Deref for SlotGuard<'_> {
    type Target = Chunk;

    fn deref(&self) -> &Chunk {
        // SAFETY: this guard is the only one of its slot (see `impl Sync for Slot`), and it
        // borrows itself for as long as the reference lives.
        unsafe { &*self.chunk.get() }
    }
}

impl std::ops::DerefMut for SlotGuard<'_> {
    fn deref_mut(&mut self) -> &mut Chunk {
        // SAFETY: as in `deref`; the guard is borrowed mutably, so no other reference from it
        // exists.
        unsafe { &mut *self.chunk.get() }
    }
}

/// State shared by the app threads and the exporter thread of one installed pipeline.
pub(crate) struct Shared {
    pub(crate) signals: SignalConfig,
    pub(crate) counters: Arc<Counters>,
    queue: Sender<Chunk>,
    /// Records handed over and not yet sent or dropped by the exporter.
    queued: AtomicUsize,
    capacity: usize,
    /// Set once shutdown is over: what is handed over afterwards is counted as dropped, never
    /// kept.
    closed: AtomicBool,
    /// Emptied buffers the exporter hands back, so neither side allocates a buffer per chunk.
    spare: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
    slots: Mutex<Vec<Weak<Slot>>>,
    handoff_items: usize,
    /// Chunks handed over by threads that exited, admitted and waiting for the exporter's next
    /// sweep. `closed` is set under this lock, so a chunk is either parked before the close (and
    /// the close accounts for it) or refused after it.
    parked: Mutex<Parked>,
    /// Held (shared) by a thread from admitting a full buffer to sending it, and (exclusive) by
    /// `close`: once `close` returns, every chunk admitted before it is in the queue, where the
    /// exporter's last drain finds it, and none is admitted after it. Without it a chunk admitted
    /// just before the close and sent just after that drain would be counted as queued and vanish
    /// with the queue.
    gate: RwLock<()>,
    /// `parked.items` as of its last change: the exporter looks here before taking the lock.
    parked_hint: AtomicUsize,
    /// What wakes the exporter: a blocked thread's wake-up is a system call, and on a virtual
    /// machine an interrupt to another core, so the app threads ring only once `wake_items`
    /// records wait unannounced (a batch's worth), not for every chunk. The exporter drains the
    /// queue whenever it runs, so a chunk sent meanwhile waits at most for its next timer.
    doorbell: (Sender<()>, Receiver<()>),
    /// Records sent or parked since the exporter last drained the queue.
    unannounced: AtomicUsize,
    wake_items: usize,
}

#[derive(Default)]
struct Parked {
    chunks: Vec<Chunk>,
    items: usize,
}

impl Shared {
    /// `capacity` records may be queued at once; a thread hands over every `handoff_items`.
    pub(crate) fn new(
        signals: SignalConfig,
        counters: Arc<Counters>,
        queue: Sender<Chunk>,
        capacity: usize,
        handoff_items: usize,
    ) -> Self {
        Shared {
            signals,
            counters,
            queue,
            queued: AtomicUsize::new(0),
            capacity: capacity.max(1),
            closed: AtomicBool::new(false),
            spare: crossbeam_channel::bounded(SPARE_BUFFERS),
            slots: Mutex::new(Vec::new()),
            handoff_items: handoff_items.max(1),
            parked: Mutex::new(Parked::default()),
            gate: RwLock::new(()),
            parked_hint: AtomicUsize::new(0),
            doorbell: crossbeam_channel::bounded(1),
            unannounced: AtomicUsize::new(0),
            wake_items: handoff_items.max(1),
        }
    }

    /// Wakes the exporter once `n` records wait unannounced (by default, a hand-off's worth).
    pub(crate) fn waking_at(mut self, n: usize) -> Self {
        self.wake_items = n.max(1);
        self
    }

    /// What the exporter waits on, besides its timers and control messages.
    pub(crate) fn doorbell(&self) -> &Receiver<()> {
        &self.doorbell.1
    }

    /// Counts `n` records just sent or parked, and wakes the exporter if they bring the
    /// unannounced ones to `wake_items`.
    fn announce(&self, n: usize) {
        let before = self.unannounced.fetch_add(n, Ordering::Relaxed);
        if before < self.wake_items && before + n >= self.wake_items {
            // Full: a wake-up is already pending.
            let _ = self.doorbell.0.try_send(());
        }
    }

    /// After this, nothing more is queued: handed-over records are counted as dropped. Parked
    /// records no exporter collected are dropped too (and counted), as a closing exporter drops
    /// what it holds.
    pub(crate) fn close(&self) {
        let _shut = self.gate.write();
        let chunks = {
            let mut parked = self.parked.lock();
            self.closed.store(true, Ordering::Release);
            parked.items = 0;
            self.parked_hint.store(0, Ordering::Relaxed);
            std::mem::take(&mut parked.chunks)
        };
        for chunk in chunks {
            SignalCounters::add(&self.counters.spans.dropped_send_failed, chunk.spans.count);
            SignalCounters::add(&self.counters.logs.dropped_send_failed, chunk.logs.count);
            self.release(chunk.items());
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Takes room for `n` records in the queue; false when it would exceed the bound.
    fn reserve(&self, n: usize) -> bool {
        let mut queued = self.queued.load(Ordering::Relaxed);
        loop {
            if queued + n > self.capacity {
                return false;
            }
            match self.queued.compare_exchange_weak(
                queued,
                queued + n,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }

    /// Gives back the room of `n` records the exporter has sent or dropped.
    pub(crate) fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }

    /// Counts `chunk`'s records as accepted if the bound has room, else as dropped; true when
    /// accepted (the exporter then owns their room until it releases it).
    pub(crate) fn admit(&self, chunk: &Chunk) -> bool {
        let n = chunk.items();
        if n == 0 {
            return false;
        }
        let admitted = !self.is_closed() && self.reserve(n);
        for (counters, n) in [
            (&self.counters.spans, chunk.spans.count),
            (&self.counters.logs, chunk.logs.count),
        ] {
            let outcome = if admitted {
                &counters.enqueued
            } else {
                &counters.dropped_queue_full
            };
            SignalCounters::add(outcome, n);
        }
        admitted
    }

    /// Held from admitting a full buffer to sending it: see `gate`.
    fn open(&self) -> RwLockReadGuard<'_, ()> {
        self.gate.read()
    }

    /// Hands an admitted chunk to the exporter.
    fn send(&self, chunk: Chunk) {
        let n = chunk.items();
        match self.queue.send(chunk) {
            Ok(()) => self.announce(n),
            Err(refused) => self.refused(refused.into_inner()),
        }
    }

    /// A chunk the gone exporter thread never took: its records are dropped after all.
    #[cold]
    fn refused(&self, chunk: Chunk) {
        self.release(chunk.items());
        let move_count = |c: &SignalCounters, n: usize| {
            c.enqueued.fetch_sub(n as u64, Ordering::Relaxed);
            SignalCounters::add(&c.dropped_queue_full, n);
        };
        move_count(&self.counters.spans, chunk.spans.count);
        move_count(&self.counters.logs, chunk.logs.count);
    }

    /// An empty full-size buffer: a spare one if any, else a new one.
    fn full_buffer(&self) -> Vec<u8> {
        self.spare
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER_BYTES))
    }

    /// Gives an emptied buffer back for reuse (the exporter calls this). The pages the app
    /// thread did not write are written here, as a stocked buffer's are.
    pub(crate) fn recycle(&self, mut buffer: Vec<u8>) {
        if (BUFFER_BYTES..=2 * BUFFER_BYTES).contains(&buffer.capacity()) && !self.spare.0.is_full()
        {
            touch_spare_capacity(&mut buffer);
            buffer.clear();
            let _ = self.spare.0.try_send(buffer);
        }
    }

    /// Brings the spare buffers up to [`STOCKED_BUFFERS`] with new ones whose every page is
    /// written (the exporter calls this whenever it runs, once some thread fills buffers).
    pub(crate) fn stock_spares(&self) {
        // At most one stock's worth per call, whatever the app threads take meanwhile.
        for _ in 0..STOCKED_BUFFERS {
            if self.spare.0.len() >= STOCKED_BUFFERS {
                return;
            }
            let mut buffer = Vec::with_capacity(BUFFER_BYTES);
            touch_spare_capacity(&mut buffer);
            if self.spare.0.try_send(buffer).is_err() {
                return;
            }
        }
    }

    /// Frees the spare buffers (the exporter calls this as it ends): app threads may keep this
    /// pipeline's state until they next record, and its buffers should not stay with it.
    pub(crate) fn free_spares(&self) {
        while self.spare.1.try_recv().is_ok() {}
    }

    #[cfg(test)]
    fn spares(&self) -> usize {
        self.spare.0.len()
    }

    /// Parks an exiting thread's chunk for the exporter's next sweep if the bound has room (else
    /// drops and counts it, as a full queue does), announced as a sent chunk is.
    fn park(&self, chunk: Chunk) {
        let n = chunk.items();
        {
            let mut parked = self.parked.lock();
            // Under the lock: see `parked`.
            if !self.admit(&chunk) {
                return;
            }
            parked.items += n;
            parked.chunks.push(chunk);
            self.parked_hint.store(parked.items, Ordering::Relaxed);
        }
        // The exporter collects parked chunks whenever it drains the queue. A gone exporter
        // closed this pipeline first, so nothing is parked for it.
        self.announce(n);
    }

    /// Whether any chunk may be parked (a look without the lock, for the exporter's wake-ups).
    fn has_parked(&self) -> bool {
        self.parked_hint.load(Ordering::Relaxed) > 0
    }

    /// Moves the parked chunks into `into` (they were admitted when parked); returns how many
    /// records that was. The exporter calls this first whenever it drains the queue: what was
    /// announced until now is then taken.
    pub(crate) fn collect_parked(&self, into: &mut Vec<Chunk>) -> usize {
        self.unannounced.store(0, Ordering::Relaxed);
        if !self.has_parked() {
            return 0;
        }
        let mut parked = self.parked.lock();
        // `append` leaves the parked list its capacity for the next burst of exits.
        into.append(&mut parked.chunks);
        self.parked_hint.store(0, Ordering::Relaxed);
        std::mem::take(&mut parked.items)
    }

    /// Takes every thread's buffered records into `into`, as far as the bound allows, and the
    /// parked chunks (the exporter's sweep); returns how many records were taken.
    pub(crate) fn sweep(&self, into: &mut Vec<Chunk>) -> usize {
        let mut taken = self.collect_parked(into);
        let mut slots = self.slots.lock();
        slots.retain(|weak| match weak.upgrade() {
            Some(slot) => {
                let mut pending = slot.lock();
                if pending.items() > 0 {
                    let chunk = std::mem::take(&mut *pending);
                    drop(pending);
                    // Not admitted: dropped, and counted by `admit`.
                    if self.admit(&chunk) {
                        taken += chunk.items();
                        into.push(chunk);
                    }
                }
                true
            }
            None => false,
        });
        taken
    }

    fn new_slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::new());
        self.slots.lock().push(Arc::downgrade(&slot));
        slot
    }

    /// Hands over whatever `slot` holds (a thread that exits or moves to a new pipeline), parked,
    /// trimmed so a nearly empty buffer does not hold a full one's memory in the queue.
    fn hand_over(&self, slot: &Slot) {
        let mut chunk = std::mem::take(&mut *slot.lock());
        if chunk.items() > 0 {
            for encoded in [&mut chunk.spans, &mut chunk.logs] {
                if encoded.bytes.capacity() > 2 * encoded.bytes.len() + FIRST_BUFFER_BYTES {
                    encoded.bytes.shrink_to_fit();
                }
            }
            self.park(chunk);
        }
    }
}

/// Writes a byte into every page of `buffer`'s spare capacity, so that none of them faults on
/// its first write by whoever fills the buffer next (the pages of its contents were written
/// already). The bytes stay beyond the length: the buffer's contents do not change.
fn touch_spare_capacity(buffer: &mut Vec<u8>) {
    let spare = buffer.spare_capacity_mut();
    for byte in spare.iter_mut().step_by(PAGE_BYTES) {
        byte.write(0);
    }
    if let Some(last) = spare.last_mut() {
        last.write(0);
    }
    // The writes go to memory the program never reads: keep the optimiser from dropping them.
    std::hint::black_box(buffer.as_ptr());
}

/// This thread's view of the installed pipeline, refreshed when the generation changes.
struct Local {
    generation: u64,
    shared: Option<Arc<Shared>>,
    slot: Option<Arc<Slot>>,
}

impl Local {
    fn refresh(&mut self, generation: u64) {
        // Before the Arcs the cache points into can go: see `HOT`.
        forget_hot();
        self.hand_over();
        self.shared = super::installed_shared();
        self.slot = self.shared.as_ref().map(|s| s.new_slot());
        self.generation = generation;
    }

    fn hand_over(&mut self) {
        if let (Some(shared), Some(slot)) = (&self.shared, &self.slot) {
            shared.hand_over(slot);
        }
    }
}

impl Drop for Local {
    /// A thread that ends hands its buffered records over rather than losing them.
    fn drop(&mut self) {
        // Before the Arcs the cache points into go: see `HOT`.
        forget_hot();
        self.hand_over();
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local { generation: 0, shared: None, slot: None })
    };
}

/// What `HOT` holds: `LOCAL`'s generation and pointers to the `Shared` and `Slot` its Arcs hold,
/// both null when no pipeline is installed.
type Hot = (u64, *const Shared, *const Slot);

/// No generation: `GENERATION` starts at 1 and only grows, so a cache holding it is never used.
const NO_HOT: Hot = (0, std::ptr::null(), std::ptr::null());
/// Marks the cache while `submit`'s fast path holds the slot (`GENERATION` never reaches it): a
/// submission from inside `write` (an allocator that records, say) takes the slow path, which
/// refuses it, as `LOCAL`'s borrow refuses one there; it would otherwise spin on its own lock.
const BUSY: u64 = u64::MAX;

thread_local! {
    /// A copy of this thread's view (`LOCAL`) for `submit`'s common path: one load of a
    /// destructor-free thread-local instead of `LOCAL`'s lifetime check, borrow and `Option`s.
    ///
    /// The pointers are valid whenever the generation in here is not `NO_HOT`'s or `BUSY`:
    /// - they are written only by `with_local`, while it borrows `LOCAL`, from the Arcs `LOCAL`
    ///   holds then (after any refresh), with the generation `LOCAL` holds them for, and after
    ///   its `f` returns (so never while `f` holds the slot);
    /// - those Arcs leave `LOCAL` only in `Local::refresh` and `Local::drop`, and both reset this
    ///   cache first, so no pointer outlives the Arc it was read from (other holders of the
    ///   Arcs may keep them longer: that only makes the pointers valid for longer);
    /// - after `Local::drop` (thread teardown) nothing sets it again: `LOCAL.try_with` fails from
    ///   the start of its destructor, so `with_local` never reaches the store;
    /// - `submit`'s fast path marks it `BUSY` while it uses them, and `with_local` refuses to
    ///   run while it is marked, so no refresh (and no drop: that only runs at thread exit,
    ///   outside any submission) runs in between.
    static HOT: Cell<Hot> = const { Cell::new(NO_HOT) };
}

fn forget_hot() {
    let _ = HOT.try_with(|hot| hot.set(NO_HOT));
}

/// Runs `f` with this thread's view of the installed pipeline; `None` when none is installed
/// (or during thread teardown, or from inside a submission).
fn with_local<R>(f: impl FnOnce(&Shared, &Slot) -> R) -> Option<R> {
    if HOT.try_with(|hot| hot.get().0 == BUSY).unwrap_or(true) {
        return None;
    }
    LOCAL
        .try_with(|cell| {
            let generation = super::GENERATION.load(Ordering::Relaxed);
            // One borrow: `f` only writes into the slot, it never comes back here.
            let mut local = cell.try_borrow_mut().ok()?;
            if local.generation != generation {
                local.refresh(generation);
            }
            let (result, hot) = match (local.shared.as_deref(), local.slot.as_deref()) {
                (Some(shared), Some(slot)) => (
                    Some(f(shared, slot)),
                    (local.generation, shared as *const _, slot as *const _),
                ),
                _ => (None, (local.generation, std::ptr::null(), std::ptr::null())),
            };
            // After `f`: a submission from inside it must not find the cache ready and lock
            // the slot `f` may hold.
            let _ = HOT.try_with(|c| c.set(hot));
            result
        })
        .ok()
        .flatten()
}

thread_local! {
    /// The installed pipeline's span limits, and the generation they were read in: a sampled
    /// span reads them at its start, so they are kept where that costs one load, not a look at
    /// the thread's view (destructor-free, so no lifetime check either).
    static SPAN_LIMITS: Cell<(u64, SpanLimits)> = const { Cell::new((0, SpanLimits::DEFAULT)) };
}

/// The installed pipeline's span limits (the defaults when none is installed), read once per
/// thread and pipeline.
#[inline]
pub(crate) fn span_limits() -> SpanLimits {
    let generation = super::GENERATION.load(Ordering::Relaxed);
    match SPAN_LIMITS.try_with(Cell::get) {
        Ok((seen, limits)) if seen == generation => limits,
        _ => read_span_limits(generation),
    }
}

#[cold]
#[inline(never)]
fn read_span_limits(generation: u64) -> SpanLimits {
    // Read for `generation` or a later one: a later one makes the next call read them again.
    let limits = with_local(|shared, _| shared.signals.span_limits).unwrap_or_default();
    let _ = SPAN_LIMITS.try_with(|c| c.set((generation, limits)));
    limits
}

/// Writes one record into this thread's buffer with `write` (which appends its encoding);
/// nothing happens when no pipeline is installed. Returns whether it was written. A span's
/// record is what `trace::encode::finish_span` completed, and nothing else: the exporter reads
/// the addresses of literal attributes out of it (`trace::literal`).
#[inline]
pub(crate) fn submit(kind: Kind, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    let generation = super::GENERATION.load(Ordering::Relaxed);
    let (seen, shared, slot) = HOT.try_with(Cell::get).unwrap_or(NO_HOT);
    if seen != generation {
        return submit_slow(kind, write);
    }
    if slot.is_null() {
        // No pipeline installed, as of this generation.
        return false;
    }
    let _busy = Busy::mark(generation, shared, slot);
    // SAFETY: `seen` is the current generation, neither `NO_HOT`'s nor `BUSY`, and `slot` is not
    // null, so both pointers are valid (see `HOT`) until `_busy` unmarks the cache, after the
    // last use of these references.
    let (shared, slot) = unsafe { (&*shared, &*slot) };
    write_into(shared, slot, kind, write);
    true
}

/// Marks `HOT` busy (see `BUSY`) until dropped, which puts back what it held, also when `write`
/// panics. Nothing changes the cache meanwhile: only `with_local` sets it, and it refuses to.
struct Busy(Hot);

impl Busy {
    #[inline]
    fn mark(generation: u64, shared: *const Shared, slot: *const Slot) -> Self {
        let _ = HOT.try_with(|hot| hot.set((BUSY, shared, slot)));
        Busy((generation, shared, slot))
    }
}

impl Drop for Busy {
    #[inline]
    fn drop(&mut self) {
        let _ = HOT.try_with(|hot| hot.set(self.0));
    }
}

/// `submit` for a new generation, a new thread, or a thread being torn down.
#[cold]
#[inline(never)]
fn submit_slow(kind: Kind, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    with_local(|shared, slot| write_into(shared, slot, kind, write)).is_some()
}

#[inline]
fn write_into(shared: &Shared, slot: &Slot, kind: Kind, write: impl FnOnce(&mut Vec<u8>)) {
    let mut pending = slot.lock();
    let encoded = pending.of(kind);
    if encoded.bytes.capacity() == 0 {
        first_buffer(&mut encoded.bytes);
    }
    write(&mut encoded.bytes);
    prefetch_ahead(&encoded.bytes);
    encoded.count += 1;
    // Only this kind's length: the other one's was below the mark when it was last written
    // (or its buffer was handed over then), and nothing but a write makes it grow.
    if encoded.bytes.len() >= HANDOFF_BYTES || pending.items() >= shared.handoff_items {
        hand_off_full(shared, pending, kind);
    }
}

/// How far ahead of the records being written [`prefetch_ahead`] asks for the buffer's memory:
/// a few records' worth, as long as memory takes to answer while the app does a few records'
/// other work.
const PREFETCH_AHEAD: usize = 1024;
/// The lines one record asks for: as many as a common record takes (a span with a few
/// attributes), so that one record's lines follow on from the last one's.
const PREFETCH_LINES: usize = 3;
const CACHE_LINE: usize = 64;

/// Asks the CPU to fetch the next [`PREFETCH_LINES`] lines of `bytes`' spare capacity found
/// [`PREFETCH_AHEAD`] bytes past its end (a write prefetch where the build targets a CPU that
/// has one, a read prefetch otherwise: either brings the lines into this core's cache). A
/// buffer comes from the exporter's stock or back from a send, so its memory is not in this
/// core's cache: a thread that records in bursts (after a sleep, say) would otherwise stall on
/// each line as its records reach it.
#[inline(always)]
#[allow(clippy::ptr_arg)] // its capacity is what it reads
fn prefetch_ahead(bytes: &Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    {
        let first = bytes
            .as_ptr()
            .wrapping_add(prefetch_from(bytes.len(), bytes.capacity()));
        for line in 0..PREFETCH_LINES {
            // SAFETY: a prefetch is only a hint: it neither reads nor writes memory as the
            // program sees it, and never faults, whatever the address (these are inside the
            // buffer's allocation anyway, see `prefetch_from`).
            #[allow(unused_unsafe)]
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_ET0 }>(
                    first.wrapping_add(line * CACHE_LINE).cast::<i8>(),
                )
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Where [`prefetch_ahead`] starts in a buffer of `len` bytes and `capacity`: its lines stay
/// inside the allocation, the last ones asked for again as the buffer nears its end.
#[inline(always)]
fn prefetch_from(len: usize, capacity: usize) -> usize {
    (len + PREFETCH_AHEAD).min(capacity.saturating_sub(PREFETCH_LINES * CACHE_LINE))
}

#[cold]
#[inline(never)]
fn first_buffer(bytes: &mut Vec<u8>) {
    *bytes = Vec::with_capacity(FIRST_BUFFER_BYTES);
}

/// Hands a full buffer to the exporter (or drops it if the queue has no room).
#[cold]
#[inline(never)]
fn hand_off_full(shared: &Shared, mut pending: SlotGuard<'_>, kind: Kind) {
    let mut chunk = std::mem::take(&mut *pending);
    let _open = shared.open();
    if shared.admit(&chunk) {
        // A thread that fills buffers gets its next one at full size: grown from the first
        // buffer's size, it would be copied at each doubling.
        pending.of(kind).bytes = shared.full_buffer();
        drop(pending);
        shared.send(chunk);
    } else {
        // Dropped, and counted by `admit`: its buffers, already written, serve again rather
        // than taking spare ones while the queue is full.
        for encoded in [&mut chunk.spans, &mut chunk.logs] {
            encoded.bytes.clear();
            encoded.count = 0;
        }
        *pending = chunk;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The prefetched lines lie ahead of what was written and inside the buffer, however full,
    /// and follow on from one record to the next.
    #[test]
    fn prefetching_stays_in_the_buffer_and_ahead_of_the_records() {
        let lines = PREFETCH_LINES * CACHE_LINE;
        for capacity in [FIRST_BUFFER_BYTES, BUFFER_BYTES, 2 * BUFFER_BYTES] {
            let mut last = None;
            for len in (0..capacity).step_by(165) {
                let from = prefetch_from(len, capacity);
                assert!(from + lines <= capacity, "{len} of {capacity}: {from}");
                if len + PREFETCH_AHEAD + lines <= capacity {
                    assert_eq!(from, len + PREFETCH_AHEAD);
                    if let Some(last) = last {
                        assert!(from <= last + lines, "no gap after {last}: {from}");
                    }
                }
                last = Some(from);
            }
        }
    }

    /// Each side's writes happen while it alone holds the slot: a lock that let two in at once
    /// (or ordered their writes loosely) would lose increments or tear the buffer.
    #[test]
    fn a_slot_is_held_by_one_side_at_a_time() {
        const THREADS: usize = 4;
        const ROUNDS: usize = 50_000;
        let slot = Arc::new(Slot::new());
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let slot = Arc::clone(&slot);
                std::thread::spawn(move || {
                    for _ in 0..ROUNDS {
                        let mut chunk = slot.lock();
                        let before = chunk.logs.count;
                        chunk.logs.bytes.push(t as u8);
                        chunk.logs.count = before + 1;
                        assert_eq!(chunk.logs.bytes.len(), chunk.logs.count);
                    }
                })
            })
            .collect();
        // The exporter's side: takes what is there, as a sweep does.
        let mut taken = 0;
        while workers.iter().any(|w| !w.is_finished()) {
            let chunk = std::mem::take(&mut *slot.lock());
            assert_eq!(chunk.logs.bytes.len(), chunk.logs.count);
            taken += chunk.logs.count;
        }
        for worker in workers {
            worker.join().unwrap();
        }
        taken += slot.lock().logs.count;
        assert_eq!(taken, THREADS * ROUNDS);
    }

    fn shared() -> Shared {
        let signals = SignalConfig {
            sampler: crate::core::sampler::Sampler::ratio(1.0),
            span_limits: Default::default(),
            log_floor: None,
            metrics_mode: 1,
        };
        let (queue, _) = crossbeam_channel::unbounded();
        Shared::new(signals, Arc::default(), queue, 1 << 20, 1024)
    }

    /// A slot holding `n` log records of one byte each, as an exiting thread leaves it.
    fn slot_with(n: usize) -> Slot {
        let slot = Slot::new();
        let mut chunk = slot.lock();
        chunk.logs.bytes = vec![0; n];
        chunk.logs.count = n;
        drop(chunk);
        slot
    }

    /// A sent chunk wakes the exporter only when it brings the records waiting since the last
    /// drain to the mark: one wake-up per batch, not one per chunk.
    #[test]
    fn sent_chunks_ring_the_doorbell_once_a_batch_waits() {
        let (queue, sent) = crossbeam_channel::unbounded();
        let shared = Shared::new(shared().signals, Arc::default(), queue, 1000, 4).waking_at(10);
        let chunk = |n| {
            let mut chunk = Chunk::default();
            chunk.logs.count = n;
            chunk
        };
        for _ in 0..3 {
            shared.send(chunk(3));
        }
        assert!(shared.doorbell().is_empty(), "9 records, below the mark");
        shared.send(chunk(3));
        assert_eq!(shared.doorbell().len(), 1);
        for _ in 0..5 {
            shared.send(chunk(3));
        }
        assert_eq!(shared.doorbell().len(), 1, "one pending wake-up is enough");
        assert_eq!(sent.len(), 9);
        // The exporter wakes and drains: counting starts again.
        shared.doorbell().try_recv().unwrap();
        shared.collect_parked(&mut Vec::new());
        sent.try_iter().for_each(drop);
        for _ in 0..3 {
            shared.send(chunk(3));
        }
        assert!(shared.doorbell().is_empty());
        shared.send(chunk(3));
        assert_eq!(shared.doorbell().len(), 1);
    }

    /// Exiting threads' records are parked, admitted against the bound, and ring the exporter's
    /// doorbell once, when they reach its wake-up mark; the sweep (timer, flush, shutdown)
    /// takes them all, however few.
    #[test]
    fn exits_are_parked_and_wake_the_exporter_once_per_batch() {
        let (queue, sent) = crossbeam_channel::unbounded();
        let shared = Shared::new(shared().signals, Arc::default(), queue, 100, 4);
        for _ in 0..3 {
            shared.hand_over(&slot_with(1));
        }
        assert!(
            shared.doorbell().is_empty(),
            "three records, below the mark of four"
        );
        assert!(shared.has_parked());
        assert_eq!(shared.counters.logs.enqueued.load(Ordering::Relaxed), 3);
        assert_eq!(shared.queued.load(Ordering::Relaxed), 3);
        // A flush or a timer finds them without any wake-up.
        let mut chunks = Vec::new();
        assert_eq!(shared.sweep(&mut chunks), 3);
        assert_eq!(chunks.iter().map(Chunk::items).sum::<usize>(), 3);
        assert!(!shared.has_parked());
        // Five exits cross the mark once: one wake-up, with the records parked, not sent.
        for _ in 0..5 {
            shared.hand_over(&slot_with(1));
        }
        assert_eq!(shared.doorbell().try_iter().count(), 1);
        assert!(sent.is_empty());
        let mut chunks = Vec::new();
        assert_eq!(shared.collect_parked(&mut chunks), 5);
        assert_eq!(chunks.len(), 5);
        // The bound counts parked records as queued ones: what does not fit is dropped.
        shared.hand_over(&slot_with(93));
        assert_eq!(
            shared
                .counters
                .logs
                .dropped_queue_full
                .load(Ordering::Relaxed),
            93
        );
        assert!(!shared.has_parked());
    }

    /// Threads handing over full buffers while the pipeline closes: every chunk admitted before
    /// the close is in the queue when the exporter drains it for the last time, so nothing
    /// counted as queued vanishes with the queue.
    #[test]
    fn every_chunk_admitted_before_the_close_reaches_the_last_drain() {
        for _ in 0..300 {
            let (queue, exporter) = crossbeam_channel::unbounded();
            let shared = Arc::new(Shared::new(
                shared().signals,
                Arc::default(),
                queue,
                1 << 30,
                1,
            ));
            let started = Arc::new(std::sync::Barrier::new(3));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (shared, started) = (Arc::clone(&shared), Arc::clone(&started));
                    std::thread::spawn(move || {
                        started.wait();
                        while !shared.is_closed() {
                            // As `hand_off_full` does, with a pause between admitting and
                            // sending that makes the race this test looks for likely to show.
                            let chunk = slot_with(1).chunk.into_inner();
                            let _open = shared.open();
                            if shared.admit(&chunk) {
                                std::hint::spin_loop();
                                shared.send(chunk);
                            }
                        }
                    })
                })
                .collect();
            started.wait();
            std::thread::yield_now();
            // As the exporter's `abandon`: close, drain, and the queue goes with the exporter.
            shared.close();
            let received: usize = exporter.try_iter().map(|c| c.items()).sum();
            drop(exporter);
            for t in threads {
                t.join().unwrap();
            }
            let logs = &shared.counters.logs;
            assert_eq!(
                logs.enqueued.load(Ordering::Relaxed) as usize,
                received,
                "admitted, counted as queued, and never received"
            );
        }
    }

    /// Closing drops and counts what no exporter collected, and what is handed over afterwards
    /// is refused, never parked.
    #[test]
    fn closing_accounts_for_parked_records_and_refuses_later_ones() {
        let (queue, _woken) = crossbeam_channel::unbounded();
        let shared = Shared::new(shared().signals, Arc::default(), queue, 100, 4);
        shared.hand_over(&slot_with(2));
        shared.close();
        let logs = &shared.counters.logs;
        assert_eq!(logs.dropped_send_failed.load(Ordering::Relaxed), 2);
        assert_eq!(shared.queued.load(Ordering::Relaxed), 0);
        shared.hand_over(&slot_with(3));
        assert_eq!(logs.dropped_queue_full.load(Ordering::Relaxed), 3);
        assert_eq!(logs.enqueued.load(Ordering::Relaxed), 2);
        let mut chunks = Vec::new();
        assert_eq!(shared.sweep(&mut chunks), 0);
        assert!(chunks.is_empty());
    }

    /// The stock is topped up to its size and never beyond, however often the exporter runs,
    /// and recycled buffers never make the spares outgrow their bound.
    #[test]
    fn the_spare_buffers_are_bounded() {
        let shared = shared();
        shared.stock_spares();
        assert_eq!(shared.spares(), STOCKED_BUFFERS);
        shared.stock_spares();
        assert_eq!(shared.spares(), STOCKED_BUFFERS);
        let taken: Vec<Vec<u8>> = (0..3).map(|_| shared.full_buffer()).collect();
        assert!(taken
            .iter()
            .all(|b| b.is_empty() && b.capacity() >= BUFFER_BYTES));
        assert_eq!(shared.spares(), STOCKED_BUFFERS - 3);
        shared.stock_spares();
        assert_eq!(shared.spares(), STOCKED_BUFFERS);
        for _ in 0..2 * SPARE_BUFFERS {
            let mut full = Vec::with_capacity(BUFFER_BYTES);
            full.resize(HANDOFF_BYTES, 1);
            shared.recycle(full);
        }
        assert_eq!(shared.spares(), SPARE_BUFFERS);
        // A buffer shrunk to a short-lived thread's records is not worth keeping.
        let spare = shared.full_buffer();
        shared.recycle(Vec::with_capacity(FIRST_BUFFER_BYTES));
        assert_eq!(shared.spares(), SPARE_BUFFERS - 1);
        shared.recycle(spare);
        let recycled = shared.full_buffer();
        assert!(recycled.is_empty() && recycled.capacity() >= BUFFER_BYTES);
        shared.free_spares();
        assert_eq!(shared.spares(), 0);
    }

    /// Touching a buffer leaves its contents as they were.
    #[test]
    fn touching_keeps_the_contents() {
        let mut buffer = Vec::with_capacity(3 * PAGE_BYTES);
        buffer.extend_from_slice(b"records");
        touch_spare_capacity(&mut buffer);
        assert_eq!(buffer, b"records");
        let mut full = vec![7u8; 16];
        touch_spare_capacity(&mut full);
        assert_eq!(full, [7; 16]);
    }

    /// This thread's minor page faults so far (Linux), read without allocating.
    #[cfg(target_os = "linux")]
    fn minor_faults() -> Option<u64> {
        use std::io::Read;
        let mut stat = [0u8; 1024];
        let mut file = std::fs::File::open("/proc/thread-self/stat").ok()?;
        let n = file.read(&mut stat).ok()?;
        let stat = std::str::from_utf8(&stat[..n]).ok()?;
        // Field 10, minflt; the fields after the command name's ')' start at field 3.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(7)?
            .parse()
            .ok()
    }

    /// Writes every byte of a buffer of `bytes` bytes, touched first or not; returns the minor
    /// faults of the writes.
    #[cfg(target_os = "linux")]
    fn faults_filling(bytes: usize, touched: bool) -> Option<u64> {
        let mut buffer: Vec<u8> = Vec::with_capacity(bytes);
        if touched {
            touch_spare_capacity(&mut buffer);
        }
        let before = minor_faults()?;
        buffer.resize(bytes, 1);
        let after = minor_faults()?;
        std::hint::black_box(&buffer);
        Some(after - before)
    }

    /// A touched buffer's pages are all present: filling it does not fault. The buffers are
    /// bigger than any the allocator serves from memory it has used before (glibc maps those
    /// afresh), so an untouched one shows the faults; where it shows few (huge pages, no
    /// per-thread counts), the test proves nothing and says so.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_touched_buffer_fills_without_faults() {
        const BYTES: usize = 36 << 20;
        // Runs the code the measured calls run, so its first run's faults are not counted.
        let _ = faults_filling(64 * 1024, true);
        let Some(untouched) = faults_filling(BYTES, false) else {
            return;
        };
        if untouched < (BYTES / PAGE_BYTES / 2) as u64 {
            eprintln!("untouched buffer took {untouched} faults: nothing to compare with");
            return;
        }
        let touched = faults_filling(BYTES, true).unwrap();
        assert!(touched <= 4, "{touched} faults filling a touched buffer");
    }

    /// Points this thread's view at `shared`, as a refresh under an installed pipeline would (no
    /// unit test installs one: installing is process-wide).
    fn view(shared: &Arc<Shared>) {
        forget_hot();
        LOCAL.with(|local| {
            let mut local = local.borrow_mut();
            local.hand_over();
            local.generation = super::super::GENERATION.load(Ordering::Relaxed);
            local.shared = Some(Arc::clone(shared));
            local.slot = Some(shared.new_slot());
        });
    }

    fn hot_is_ready() -> bool {
        HOT.with(|hot| {
            let (seen, _, slot) = hot.get();
            seen == super::super::GENERATION.load(Ordering::Relaxed) && !slot.is_null()
        })
    }

    /// The cache's pointers never outlive the Arcs of the thread's view: not after a refresh
    /// replaces them (a thread that outlives its pipeline), not after the view is destroyed at
    /// thread exit (a later thread-local destructor that records). A stale cache would take the
    /// fast path and report the record written, into a freed slot.
    #[test]
    fn the_cache_never_outlives_the_threads_view() {
        struct Late(Arc<Mutex<Option<(bool, bool)>>>);
        impl Drop for Late {
            fn drop(&mut self) {
                let view_gone = LOCAL.try_with(|_| ()).is_err();
                let written = submit(Kind::Log, |b| b.push(1));
                *self.0.lock() = Some((view_gone, written));
            }
        }
        thread_local! {
            static LATE: RefCell<Option<Late>> = const { RefCell::new(None) };
        }
        let shared = Arc::new(shared());
        let late = Arc::new(Mutex::new(None));
        let (s, l) = (Arc::clone(&shared), Arc::clone(&late));
        std::thread::spawn(move || {
            // Registered before the view, so destroyed after it.
            LATE.with(|late| *late.borrow_mut() = Some(Late(l)));
            view(&s);
            assert!(submit(Kind::Span, |b| b.push(1)), "the slow path");
            assert!(hot_is_ready());
            assert!(submit(Kind::Span, |b| b.push(1)), "the fast path");
            // The pipeline goes and nothing replaces it: the refresh frees the slot.
            LOCAL.with(|local| local.borrow_mut().refresh(u64::MAX - 1));
            assert!(!hot_is_ready());
            assert!(
                !submit(Kind::Span, |b| b.push(1)),
                "written after the refresh"
            );
            view(&s);
            assert!(submit(Kind::Log, |b| b.push(1)));
            assert!(submit(Kind::Log, |b| b.push(1)));
            assert!(hot_is_ready());
        })
        .join()
        .unwrap();
        let (view_gone, written) = late.lock().expect("the late destructor ran");
        assert!(view_gone, "the view was destroyed first: the case tested");
        assert!(!written, "written after the view was destroyed");
        // Every record written was handed over: two spans by the refresh, two logs at exit.
        let mut chunks = Vec::new();
        assert_eq!(shared.sweep(&mut chunks), 4);
        let spans: usize = chunks.iter().map(|c| c.spans.count).sum();
        assert_eq!(spans, 2);
    }

    /// A record submitted from inside a submission's write (say, by an allocator that records)
    /// is refused, on the slow path and the fast one: it never spins on its own thread's slot.
    #[test]
    fn a_submission_inside_a_submission_is_refused() {
        let shared = Arc::new(shared());
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            view(&s);
            for _ in 0..2 {
                let mut inner = None;
                assert!(submit(Kind::Span, |b| {
                    b.push(1);
                    inner = Some(submit(Kind::Log, |b| b.push(2)));
                    assert_eq!(span_limits(), SpanLimits::DEFAULT);
                }));
                assert_eq!(inner, Some(false));
                assert!(hot_is_ready());
            }
        })
        .join()
        .unwrap();
        let mut chunks = Vec::new();
        assert_eq!(shared.sweep(&mut chunks), 2);
    }

    /// A writer that panics gives the slot back: the thread's next record, and the sweep, go on.
    #[test]
    fn a_panicking_writer_releases_the_slot() {
        let slot = Slot::new();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut chunk = slot.lock();
            chunk.spans.count += 1;
            panic!("a writer that panics");
        }));
        assert!(panicked.is_err());
        assert_eq!(slot.lock().spans.count, 1);
    }
}
