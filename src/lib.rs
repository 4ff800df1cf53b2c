//! Ship a service's traces, metrics and logs to Plain Cloud — or any OTLP/HTTP endpoint — from a
//! small synchronous crate with its own OTLP client: no OpenTelemetry SDK, no async runtime.
//!
//! # Quick start
//!
//! Set `PLAIN_CONNECT_EXPORT_TOKEN` and call [`init!`] once. Without a token every call is a
//! no-op that costs next to nothing, so the same code runs everywhere.
//!
//! ```
//! use plain_connect::{instrument::{db, http}, metrics, trace, KeyValue};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = plain_connect::init!()?; // service.name/version from your Cargo.toml
//! plain_connect::logs::install(None).ok(); // or logs::LogBridge::wrap(your_logger)
//!
//! let mut request = http::server_request("GET", "/users/42").start();
//! request.set_route("/users/{id}");
//! db::query("postgresql", "SELECT * FROM users WHERE id = $1").parameterized().start().end_ok();
//! log::info!(user_id = 42; "profile served"); // carries the request's trace and span ids
//! request.end(200);
//!
//! let orders = metrics::counter("shop.orders").build()?;
//! orders.add(1, &[KeyValue::new("channel", "web")]);
//!
//! telemetry.shutdown(std::time::Duration::from_secs(5))?; // dropping it does the same
//! # Ok(()) }
//! ```
//!
//! # Settings
//!
//! [`Settings`] come from defaults, then code ([`Settings::builder`], or a [`SettingsFile`] in your
//! own config file), then the standard `OTEL_*` variables, then `PLAIN_CONNECT_*` variables, which
//! win. A bad `PLAIN_CONNECT_*` value is a [`SettingsError`] naming the variable and what it
//! accepts; [`Settings::from_env_lossy`] keeps defaults instead, for apps that must start.
//!
//! ```
//! let settings = plain_connect::Settings::builder()
//!     .export_url("http://127.0.0.1:4318")
//!     .trace_sample_rate(0.25)
//!     .build()
//!     .unwrap();
//! assert_eq!(settings.signal_url("traces"), "http://127.0.0.1:4318/v1/traces");
//! ```
//!
//! # Work on other threads
//!
//! Each thread has its own current span. Capture the context and attach it on the worker so its
//! spans nest under the request:
//!
//! ```
//! let request = plain_connect::trace::span("GET /report").start();
//! let context = plain_connect::trace::current();
//! std::thread::spawn(move || {
//!     let _attached = context.attach();
//!     let _render = plain_connect::trace::span("render").start(); // a child of the request
//! })
//! .join()
//! .unwrap();
//! drop(request);
//! ```
//!
//! # How it behaves under failure
//!
//! The app thread never waits on the network: finished records go to a per-thread buffer and
//! from there, in batches, to one exporter thread through a bounded queue; a full queue drops and
//! counts. The exporter retries 429/502/503/504 and network errors with jittered exponential
//! backoff, honours `Retry-After`, never follows redirects, and gives up after a bounded budget.
//! [`Telemetry::flush`] and [`Telemetry::shutdown`] keep their deadline whatever the endpoint
//! does, and [`Telemetry::counters`] accounts for every item: exported, or dropped with a reason.
//!
//! # A second consumer
//!
//! A local viewer or a test can see every finished, sampled span beside the exporter with
//! [`Telemetry::add_span_consumer`]; the embedded OTLP receiver (feature `receiver`) shows what
//! arrived on the wire as trace waterfalls, histograms and logs.
#![warn(missing_docs)]

mod attributes;
mod bridges;
mod core;
mod export;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod instrument;
pub mod logs;
pub mod metrics;
/// The generated OTLP protobuf types, public only where the API hands them out: what the
/// embedded receiver decoded (feature `receiver`).
#[cfg(any(feature = "receiver", feature = "fuzzing"))]
pub mod proto;
// Without the receiver only the metrics encoder uses them; the rest is generated and unused.
#[cfg(not(any(feature = "receiver", feature = "fuzzing")))]
#[allow(dead_code)]
mod proto;
#[cfg(feature = "receiver")]
pub mod receiver;
mod resource;
mod settings;
mod telemetry;
pub mod trace;
#[cfg(feature = "tracing")]
pub use bridges::tracing as tracing_bridge;
mod url;

pub use attributes::{KeyValue, Str, Value};
pub use export::{
    CountersReader, CountersSnapshot, ExportError, RetryPolicy, SignalCounts, SpanConsumer,
};
pub use resource::Resource;
pub use settings::{Settings, SettingsBuilder, SettingsError, SettingsFile, Token};
pub use telemetry::{InitError, Telemetry};

/// The README's examples, compiled and run as doc tests so that the page users copy from
/// cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme {}

/// Misuse the compiler catches (doc tests only): types that will grow cannot be built from
/// their fields or matched without a wildcard outside this crate.
///
/// ```compile_fail,E0639
/// let counts = plain_connect::SignalCounts { enqueued: 1, exported: 1, dropped_queue_full: 0,
///     dropped_send_failed: 0, dropped_rejected: 0 };
/// ```
/// ```compile_fail,E0004
/// fn describe(error: plain_connect::ExportError) -> &'static str {
///     match error {
///         plain_connect::ExportError::Timeout => "timeout",
///         plain_connect::ExportError::ShutDown => "shut down",
///         plain_connect::ExportError::AlreadyInstalled { .. } => "installed",
///         plain_connect::ExportError::Spawn(_) => "spawn",
///     }
/// }
/// ```
/// ```
/// fn describe(error: plain_connect::ExportError) -> &'static str {
///     match error {
///         plain_connect::ExportError::Timeout => "timeout",
///         _ => "other",
///     }
/// }
/// ```
///
/// Settings types keep their fields to themselves; one path per item, at the root:
///
/// ```compile_fail,E0451
/// let retry = plain_connect::RetryPolicy { max_attempts: 3, ..Default::default() };
/// ```
/// ```compile_fail,E0451
/// let limits = plain_connect::trace::SpanLimits { max_events: 8, ..Default::default() };
/// ```
/// ```compile_fail,E0603
/// use plain_connect::export::RetryPolicy;
/// ```
/// ```compile_fail,E0603
/// let id = plain_connect::trace::random_u64();
/// ```
/// ```compile_fail,E0603
/// use plain_connect::settings::Settings;
/// ```
/// ```
/// let retry = plain_connect::RetryPolicy::default().max_attempts(3);
/// let _ = plain_connect::Settings::builder().retry(retry).build();
/// ```
///
/// A query ends with a named outcome; `finish(None)` needed a type annotation and is gone:
///
/// ```compile_fail,E0599
/// plain_connect::instrument::db::query("sqlite", "SELECT 1").start().finish(None);
/// ```
/// ```
/// plain_connect::instrument::db::query("sqlite", "SELECT 1").start().end_ok();
/// ```
#[cfg(doctest)]
mod misuse {}

/// Starts telemetry for this service: `service.name` and `service.version` come from the
/// calling crate's `Cargo.toml`; settings are the defaults (or the ones given) with
/// `PLAIN_CONNECT_*` environment variables on top.
///
/// Without `PLAIN_CONNECT_EXPORT_TOKEN` (or with export disabled) the handle is a no-op.
///
/// ```
/// # fn main() -> Result<(), plain_connect::InitError> {
/// let telemetry = plain_connect::init!()?;
/// // or, with settings from code (the environment still wins):
/// // let telemetry = plain_connect::init!(plain_connect::Settings::builder().trace_sample_rate(0.1).build()?)?;
/// # drop(telemetry);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! init {
    () => {
        $crate::init!($crate::Settings::default())
    };
    ($settings:expr) => {
        match $crate::Settings::with_env($settings) {
            Ok(settings) => $crate::Telemetry::start(
                settings,
                $crate::Resource::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION")),
            ),
            Err(e) => Err($crate::InitError::from(e)),
        }
    };
}
