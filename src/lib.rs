//! plain-connect: a service's traces, metrics and logs to Plain Cloud or any OTLP/HTTP endpoint.
#![warn(missing_docs)]

mod attributes;
pub mod export;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod instrument;
pub mod logs;
pub mod metrics;
pub mod proto;
#[cfg(feature = "receiver")]
pub mod receiver;
pub mod resource;
pub mod settings;
mod telemetry;
pub mod trace;

pub use attributes::{KeyValue, Str, Value};
pub use resource::Resource;
pub use settings::{Settings, SettingsBuilder, SettingsError, SettingsFile, Token};
pub use telemetry::{InitError, Telemetry};

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
