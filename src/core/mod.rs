//! Process-wide state, at the bottom of the crate: the installed pipeline and its generation,
//! the clock, the sampler, and whether metrics record.
//!
//! The signals (`trace/`, `logs/`, `metrics/`) call into this module; the exporter (`export/`)
//! is handed what a pipeline's [`Shared`] holds. Nothing here knows a signal's types: records
//! arrive already encoded, as bytes.
//!
//! Every installed pipeline gets a new generation. An exporter thread acts on the process-wide
//! state (the metrics registry) only while its own generation is installed, and it takes
//! records only from its own [`Shared`]: a pipeline that was shut down while its endpoint hung
//! can never take a later pipeline's data.

pub(crate) mod clock;
pub(crate) mod counters;
pub(crate) mod handoff;
pub(crate) mod sampler;
pub(crate) mod spin;
pub(crate) mod wire;

pub(crate) use clock::now_unix_nanos;
pub(crate) use handoff::{Chunk, Encoded, Shared};
use parking_lot::RwLock;
use sampler::Sampler;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// Per-span limits: the OpenTelemetry SDK defaults (128 of each, no value length limit) with any
/// part changed.
///
/// ```
/// let limits = plain_connect::trace::SpanLimits::default().max_attributes(32).max_value_chars(1024);
/// # let _ = plain_connect::Settings::builder().span_limits(limits);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    pub(crate) max_attributes: u32,
    pub(crate) max_events: u32,
    pub(crate) max_links: u32,
    pub(crate) max_attributes_per_event: u32,
    pub(crate) max_value_chars: Option<u32>,
}

impl SpanLimits {
    /// Attributes per span; later new keys are discarded and counted.
    pub fn max_attributes(mut self, attributes: u32) -> Self {
        self.max_attributes = attributes;
        self
    }
    /// Events per span.
    pub fn max_events(mut self, events: u32) -> Self {
        self.max_events = events;
        self
    }
    /// Links per span.
    pub fn max_links(mut self, links: u32) -> Self {
        self.max_links = links;
        self
    }
    /// Attributes per event or link.
    pub fn max_attributes_per_event(mut self, attributes: u32) -> Self {
        self.max_attributes_per_event = attributes;
        self
    }
    /// Strings are cut to this many characters when set.
    pub fn max_value_chars(mut self, chars: u32) -> Self {
        self.max_value_chars = Some(chars);
        self
    }
}

impl SpanLimits {
    pub(crate) const DEFAULT: SpanLimits = SpanLimits {
        max_attributes: 128,
        max_events: 128,
        max_links: 128,
        max_attributes_per_event: 128,
        max_value_chars: None,
    };
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits::DEFAULT
    }
}

/// What the signals need to know on the app thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignalConfig {
    pub(crate) sampler: Sampler,
    pub(crate) span_limits: SpanLimits,
    /// The export floor for log records; `None` when log export is off.
    pub(crate) log_floor: Option<log::LevelFilter>,
    /// How metrics record while this pipeline is installed (non-zero).
    pub(crate) metrics_mode: u8,
}

struct Installed {
    shared: Arc<Shared>,
    installed_at: String,
}

/// Bumped on every install and uninstall, so threads notice with one relaxed load.
static GENERATION: AtomicU64 = AtomicU64::new(1);
/// The current install generation: a value cached with it is the installed pipeline's while
/// the generation is unchanged.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Whether any pipeline is installed: the disabled path is this one load and nothing else.
static INSTALLED_ANY: AtomicBool = AtomicBool::new(false);
/// Read-locked while an exporter acts on process-wide state in its generation's name, so an
/// install or uninstall never interleaves with it.
static INSTALLED: RwLock<Option<Installed>> = parking_lot::const_rwlock(None);
/// The installed pipeline's log export floor as a `LevelFilter` number (0 = off or none), so a
/// record under the floor costs one load.
static LOG_FLOOR: AtomicUsize = AtomicUsize::new(0);
/// The installed pipeline's sampler, so deciding a span's fate reads two words and no
/// thread-local state (an unsampled span never needs more).
static SAMPLER_UPPER_BOUND: AtomicU64 = AtomicU64::new(0);
static SAMPLER_PARENT_BASED: AtomicBool = AtomicBool::new(false);
/// See [`metrics_mode`].
static METRICS_MODE: AtomicU8 = AtomicU8::new(0);

/// Whether a pipeline is installed: one relaxed load, for the disabled fast path.
#[inline]
pub(crate) fn is_installed() -> bool {
    INSTALLED_ANY.load(Ordering::Relaxed)
}

/// How metric measurements are recorded (the metrics module's mode byte): 0 while no pipeline
/// is installed, so nothing accumulates after shutdown.
#[inline]
pub(crate) fn metrics_mode() -> u8 {
    METRICS_MODE.load(Ordering::Relaxed)
}

/// The installed pipeline's log export floor as a `LevelFilter` number, 0 when logs are not
/// exported: a record is exported only if its `Level` number is at most this.
#[inline]
pub(crate) fn log_floor_number() -> usize {
    LOG_FLOOR.load(Ordering::Relaxed)
}

/// The installed pipeline's log export floor, `None` when logs are not exported.
#[inline]
pub(crate) fn log_floor() -> Option<log::LevelFilter> {
    use log::LevelFilter;
    // The discriminants are the stored numbers, so this compiles to a range check.
    match LOG_FLOOR.load(Ordering::Relaxed) {
        1 => Some(LevelFilter::Error),
        2 => Some(LevelFilter::Warn),
        3 => Some(LevelFilter::Info),
        4 => Some(LevelFilter::Debug),
        5 => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// The installed pipeline's sampler; samples nothing when none is installed.
#[inline]
pub(crate) fn sampler() -> Sampler {
    Sampler::from_parts(
        SAMPLER_UPPER_BOUND.load(Ordering::Relaxed),
        SAMPLER_PARENT_BASED.load(Ordering::Relaxed),
    )
}

/// Makes `shared` the process's pipeline and returns its generation; a second one is refused,
/// naming where the first was installed.
pub(crate) fn install(shared: Arc<Shared>, installed_at: String) -> Result<u64, String> {
    let mut installed = INSTALLED.write();
    if let Some(existing) = installed.as_ref() {
        return Err(existing.installed_at.clone());
    }
    let floor = shared.signals.log_floor.map_or(0, |f| f as usize);
    let (upper_bound, parent_based) = shared.signals.sampler.to_parts();
    let metrics_mode = shared.signals.metrics_mode;
    let generation = GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    *installed = Some(Installed {
        shared,
        installed_at,
    });
    LOG_FLOOR.store(floor, Ordering::Release);
    SAMPLER_UPPER_BOUND.store(upper_bound, Ordering::Release);
    SAMPLER_PARENT_BASED.store(parent_based, Ordering::Release);
    METRICS_MODE.store(metrics_mode, Ordering::Release);
    INSTALLED_ANY.store(true, Ordering::Release);
    Ok(generation)
}

/// Removes `shared` if it is the installed pipeline; from here on nothing is recorded into it.
/// Returns the generation that follows it, under which its exporter may still collect metrics
/// (until another pipeline is installed).
pub(crate) fn uninstall(shared: &Arc<Shared>) -> Option<u64> {
    let mut installed = INSTALLED.write();
    if !installed
        .as_ref()
        .is_some_and(|i| Arc::ptr_eq(&i.shared, shared))
    {
        return None;
    }
    *installed = None;
    INSTALLED_ANY.store(false, Ordering::Release);
    LOG_FLOOR.store(0, Ordering::Release);
    SAMPLER_UPPER_BOUND.store(0, Ordering::Release);
    SAMPLER_PARENT_BASED.store(false, Ordering::Release);
    METRICS_MODE.store(0, Ordering::Release);
    Some(GENERATION.fetch_add(1, Ordering::AcqRel) + 1)
}

/// Runs `f` if `shared` is still the installed pipeline, or if it was the last one and nothing
/// has been installed since it was uninstalled (`after_uninstall`); install and uninstall wait
/// while `f` runs. What an exporter thread does to process-wide state goes through here.
pub(crate) fn while_current<R>(
    shared: &Arc<Shared>,
    after_uninstall: Option<u64>,
    f: impl FnOnce() -> R,
) -> Option<R> {
    let installed = INSTALLED.read();
    let ours = match installed.as_ref() {
        Some(i) => Arc::ptr_eq(&i.shared, shared),
        None => after_uninstall == Some(GENERATION.load(Ordering::Acquire)),
    };
    ours.then(f)
}

/// The installed pipeline, if any (what a thread's view refreshes from).
pub(crate) fn installed_shared() -> Option<Arc<Shared>> {
    INSTALLED.read().as_ref().map(|i| Arc::clone(&i.shared))
}

thread_local! {
    static ON_EXPORTER_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as an exporter thread (see [`is_exporter_thread`]).
pub(crate) fn mark_exporter_thread() {
    ON_EXPORTER_THREAD.with(|flag| flag.set(true));
}

/// True on the exporter thread: whatever is logged there (its HTTP client's errors included)
/// must not be exported, or a failing endpoint would feed itself.
pub fn is_exporter_thread() -> bool {
    ON_EXPORTER_THREAD.try_with(Cell::get).unwrap_or(false)
}
