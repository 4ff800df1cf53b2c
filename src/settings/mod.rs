//! Settings: defaults, then code (a builder or a serde config file), then `PLAIN_CONNECT_*`
//! environment variables, which win.
//!
//! Every value is validated; a bad one is a [`SettingsError`] naming the variable and the values
//! it accepts. [`crate::init!`] fails with that error; apps that must start whatever the
//! environment says use [`Settings::from_env_lossy`], which keeps the default for each bad
//! variable and hands the errors back for the app to log.
//!
//! ```
//! use plain_connect::Settings;
//! let settings = Settings::builder()
//!     .export_token("secret")
//!     .trace_sample_rate(0.25)
//!     .log_level("warn")
//!     .build()
//!     .unwrap();
//! assert_eq!(settings.trace_sample_rate(), 0.25);
//! assert_eq!(format!("{:?}", settings.export_token()), "Token(***)");
//! ```

mod otel;

use crate::export::RetryPolicy;
pub(crate) use otel::{OtelOverrides, SIGNALS};
use std::fmt;
use std::time::Duration;

/// The prefix of every environment variable this crate reads.
pub const ENV_PREFIX: &str = "PLAIN_CONNECT_";

/// The default export endpoint (Plain Cloud).
pub const DEFAULT_EXPORT_URL: &str = "https://ingest.plainframework.com";

/// A secret (the export token, an `OTEL_EXPORTER_OTLP_HEADERS` value): never shown by `Debug` or
/// `Display`, never put in an error message or a log line.
#[derive(Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(transparent))]
pub struct Token(String);

impl Token {
    /// A token.
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }
    /// The secret itself, for the `Authorization` header. Named so that misuse stands out.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
    /// No token set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Token(<empty>)"
        } else {
            "Token(***)"
        })
    }
}

impl From<String> for Token {
    fn from(value: String) -> Self {
        Token(value)
    }
}

impl From<&str> for Token {
    fn from(value: &str) -> Self {
        Token(value.to_owned())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "<empty>" } else { "***" })
    }
}

/// A setting that could not be used.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettingsError {
    /// The variable (`PLAIN_CONNECT_TRACE_SAMPLE_RATE`) or field (`trace_sample_rate`).
    pub variable: String,
    /// The rejected value, shown quoted; `None` for secrets.
    pub value: Option<String>,
    /// What is accepted.
    pub expected: &'static str,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "{}={value:?} is not valid: expected {}",
                self.variable, self.expected
            ),
            None => write!(
                f,
                "{} is not valid: expected {}",
                self.variable, self.expected
            ),
        }
    }
}

impl std::error::Error for SettingsError {}

/// What the crate is configured to do. Build with [`Settings::builder`], [`Settings::from_env`]
/// or (feature `serde`) deserialize a [`SettingsFile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    export_url: String,
    export_token: Token,
    trace_sample_rate: f64,
    export_logs: bool,
    log_level: log::LevelFilter,
    export_enabled: bool,
    tuning: Tuning,
    pub(crate) otel: OtelOverrides,
}

/// Pipeline knobs; the defaults suit most services.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Tuning {
    pub(crate) max_queue_size: usize,
    pub(crate) max_export_batch_size: usize,
    pub(crate) span_delay: Duration,
    pub(crate) log_delay: Duration,
    pub(crate) metrics_interval: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) gzip: bool,
    pub(crate) span_limits: crate::trace::SpanLimits,
    pub(crate) failure_report_interval: Duration,
    pub(crate) exemplar_filter: ExemplarFilter,
    pub(crate) process_metrics: bool,
    pub(crate) health_metrics: bool,
}

/// Which measurements may carry an exemplar (`OTEL_METRICS_EXEMPLAR_FILTER`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExemplarFilter {
    /// Only measurements made while a sampled span is current (the default).
    #[default]
    TraceBased,
    /// Every measurement is eligible, with the current span's ids when there is one.
    AlwaysOn,
    /// No exemplars.
    AlwaysOff,
}

impl ExemplarFilter {
    /// `trace_based`, `always_on` or `always_off`, any case.
    pub fn parse(raw: &str) -> Option<ExemplarFilter> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "trace_based" => Some(ExemplarFilter::TraceBased),
            "always_on" => Some(ExemplarFilter::AlwaysOn),
            "always_off" => Some(ExemplarFilter::AlwaysOff),
            _ => None,
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            max_queue_size: 131_072,
            max_export_batch_size: 2048,
            span_delay: Duration::from_secs(5),
            log_delay: Duration::from_secs(1),
            metrics_interval: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            gzip: cfg!(feature = "gzip"),
            span_limits: crate::trace::SpanLimits::default(),
            failure_report_interval: Duration::from_secs(60),
            exemplar_filter: ExemplarFilter::TraceBased,
            process_metrics: true,
            health_metrics: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            export_url: DEFAULT_EXPORT_URL.to_owned(),
            export_token: Token::default(),
            trace_sample_rate: 1.0,
            export_logs: true,
            log_level: log::LevelFilter::Info,
            export_enabled: true,
            tuning: Tuning::default(),
            otel: OtelOverrides::default(),
        }
    }
}

impl Settings {
    /// Defaults, to be changed in code.
    pub fn builder() -> SettingsBuilder {
        SettingsBuilder {
            settings: Settings::default(),
            error: None,
        }
    }

    /// Defaults overridden by `PLAIN_CONNECT_*` environment variables.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::default().with_env()
    }

    /// These settings with the standard `OTEL_*` variables on top, and `PLAIN_CONNECT_*` on top
    /// of those (they win). See the README's precedence table.
    pub fn with_env(self) -> Result<Settings, SettingsError> {
        self.with_env_from(process_env)
    }

    /// Like [`Settings::from_env`], but a bad variable keeps its default instead of failing;
    /// the errors come back for the app to report.
    pub fn from_env_lossy() -> (Settings, Vec<SettingsError>) {
        let mut settings = Settings::default();
        let mut errors = otel::apply(&mut settings, &process_env);
        for var in EnvVar::ALL {
            let one = |name: &str| {
                if name == var.name() {
                    process_env(name)
                } else {
                    Ok(None)
                }
            };
            match settings.clone().with_plain_connect_env(one) {
                Ok(s) => settings = s,
                Err(e) => errors.push(e),
            }
        }
        (settings, errors)
    }

    /// Applies `OTEL_*` then `PLAIN_CONNECT_*` variables from `lookup` (testable without
    /// touching the process environment). An empty value counts as unset.
    pub fn with_env_from(
        mut self,
        lookup: impl Fn(&str) -> Result<Option<String>, SettingsError>,
    ) -> Result<Settings, SettingsError> {
        if let Some(error) = otel::apply(&mut self, &lookup).into_iter().next() {
            return Err(error);
        }
        self.with_plain_connect_env(lookup)
    }

    fn with_plain_connect_env(
        mut self,
        lookup: impl Fn(&str) -> Result<Option<String>, SettingsError>,
    ) -> Result<Settings, SettingsError> {
        for var in EnvVar::ALL {
            let name = var.name();
            let Some(raw) = lookup(&name)?.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            self.apply(var, &raw, &name)?;
        }
        Ok(self)
    }

    fn apply(&mut self, var: EnvVar, raw: &str, name: &str) -> Result<(), SettingsError> {
        match var {
            EnvVar::ExportUrl => self.export_url = parse_url(raw, name)?,
            EnvVar::ExportToken => self.export_token = parse_token(raw, name)?,
            EnvVar::TraceSampleRate => {
                self.trace_sample_rate = parse_rate(raw, name)?;
                self.otel.parent_based = None;
            }
            EnvVar::ExportLogs => self.export_logs = parse_bool(raw, name)?,
            EnvVar::LogLevel => self.log_level = parse_level(raw, name)?,
            EnvVar::ExportEnabled => self.export_enabled = parse_bool(raw, name)?,
            EnvVar::ProcessMetrics => self.tuning.process_metrics = parse_bool(raw, name)?,
            EnvVar::HealthMetrics => self.tuning.health_metrics = parse_bool(raw, name)?,
        }
        Ok(())
    }

    /// Base URL; signals go to `{url}/v1/traces`, `/v1/metrics`, `/v1/logs`.
    pub fn export_url(&self) -> &str {
        &self.export_url
    }
    /// The bearer token (shown as `***`).
    pub fn export_token(&self) -> &Token {
        &self.export_token
    }
    /// Fraction of traces kept, 0.0–1.0.
    pub fn trace_sample_rate(&self) -> f64 {
        self.trace_sample_rate
    }
    /// Whether log records are exported.
    pub fn export_logs(&self) -> bool {
        self.export_logs
    }
    /// The export floor for log records.
    pub fn log_level(&self) -> log::LevelFilter {
        self.log_level
    }
    /// The master switch.
    pub fn export_enabled(&self) -> bool {
        self.export_enabled
    }
    /// Export happens: enabled (and not `OTEL_SDK_DISABLED`), and a token is set — or an
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` names another backend, or `export_url` is on this machine
    /// (a local collector or the embedded receiver), which then get no token. An `export_url`
    /// elsewhere with no token is off, and [`Settings::warnings`] says why.
    pub fn is_export_active(&self) -> bool {
        self.export_enabled
            && !self.otel.sdk_disabled
            && (!self.export_token.is_empty()
                || self.otel.has_endpoint()
                || is_loopback_url(&self.export_url))
    }
    /// Where `signal` (`traces`, `metrics`, `logs`) is sent: a per-signal `OTEL_*` endpoint as
    /// given, else `{export_url}/v1/{signal}`, keeping any base path.
    pub fn signal_url(&self, signal: &str) -> String {
        let per_signal = SIGNALS
            .iter()
            .position(|s| s.eq_ignore_ascii_case(signal))
            .and_then(|i| self.otel.signal_endpoints[i].clone());
        per_signal
            .unwrap_or_else(|| format!("{}/v1/{signal}", self.export_url.trim_end_matches('/')))
    }
    /// What the operator should hear about (printed once each on stderr when telemetry starts,
    /// never exported): `OTEL_*` values that were ignored, credentials (the token, header
    /// values) that would travel over plain `http://` to another machine, and an `export_url`
    /// that exports nothing for want of a token.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = self.otel.warnings.clone();
        if self.is_export_active() {
            warnings.extend(self.credentials_in_clear());
            let https = SIGNALS
                .iter()
                .any(|signal| self.signal_url(signal).starts_with("https://"));
            if https && !cfg!(feature = "tls") {
                warnings.push(
                    "an export URL is https:// but this build lacks plain-connect's `tls` \
                     feature: every export to it will fail"
                        .to_owned(),
                );
            }
        } else if self.export_enabled
            && !self.otel.sdk_disabled
            && self.export_url != DEFAULT_EXPORT_URL
        {
            warnings.push(format!(
                "export is off: the export URL is {} but no export token is set; set \
                 {ENV_PREFIX}EXPORT_TOKEN (a URL on this machine needs none)",
                self.export_url
            ));
        }
        warnings
    }

    /// One warning per plain-`http://` endpoint off this machine that credentials go to.
    fn credentials_in_clear(&self) -> Vec<String> {
        let mut by_endpoint: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (i, signal) in SIGNALS.iter().enumerate() {
            let mut credentials = Vec::new();
            if !self.export_token.is_empty() {
                credentials.push("the export token".to_owned());
            }
            if !self.otel.headers.is_empty() {
                credentials.push("the OTEL_EXPORTER_OTLP_HEADERS values".to_owned());
            }
            if !self.otel.signal_headers[i].is_empty() {
                credentials.push(format!("the OTEL_EXPORTER_OTLP_{signal}_HEADERS values"));
            }
            let url = self.signal_url(signal);
            if credentials.is_empty() || !is_plain_http_off_host(&url) {
                continue;
            }
            let endpoint = url_authority(&url).to_owned();
            let signal = signal.to_ascii_lowercase();
            match by_endpoint.iter_mut().find(|(e, _, _)| *e == endpoint) {
                Some((_, signals, known)) => {
                    signals.push(signal);
                    for c in credentials {
                        if !known.contains(&c) {
                            known.push(c);
                        }
                    }
                }
                None => by_endpoint.push((endpoint, vec![signal], credentials)),
            }
        }
        by_endpoint
            .into_iter()
            .map(|(endpoint, signals, credentials)| {
                format!(
                    "{} are sent over plain http:// to {endpoint} ({}), where anyone on the network \
                     path can read them; use https:// for anything but a collector on this machine",
                    credentials.join(" and "),
                    signals.join(", ")
                )
            })
            .collect()
    }
    /// Which measurements carry exemplars.
    pub fn exemplar_filter(&self) -> ExemplarFilter {
        self.tuning.exemplar_filter
    }
    /// Whether the `process.*` metrics (CPU, memory, threads, file descriptors) are exported.
    pub fn process_metrics(&self) -> bool {
        self.tuning.process_metrics
    }
    /// Whether the pipeline's own `otel.sdk.*` health metrics are exported.
    pub fn health_metrics(&self) -> bool {
        self.tuning.health_metrics
    }
    pub(crate) fn tuning(&self) -> &Tuning {
        &self.tuning
    }
}

/// Changes settings in code; [`SettingsBuilder::build`] validates.
#[derive(Clone, Debug)]
#[must_use = "call .build()"]
pub struct SettingsBuilder {
    settings: Settings,
    error: Option<SettingsError>,
}

impl SettingsBuilder {
    fn check<T>(&mut self, result: Result<T, SettingsError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(e);
                None
            }
        }
    }

    /// `export_url`: an `http://` or `https://` URL.
    pub fn export_url(mut self, url: impl AsRef<str>) -> Self {
        if let Some(url) = self.check(parse_url(url.as_ref(), "export_url")) {
            self.settings.export_url = url;
        }
        self
    }
    /// `export_token`: the bearer token. One with a character that cannot go in an HTTP header
    /// (CR, LF, another control character) is an error at [`SettingsBuilder::build`].
    pub fn export_token(mut self, token: impl Into<String>) -> Self {
        if let Some(token) = self.check(parse_token(&token.into(), "export_token")) {
            self.settings.export_token = token;
        }
        self
    }
    /// `trace_sample_rate`: 0.0–1.0.
    pub fn trace_sample_rate(mut self, rate: f64) -> Self {
        if let Some(rate) = self.check(check_rate(rate, &rate.to_string(), "trace_sample_rate")) {
            self.settings.trace_sample_rate = rate;
        }
        self
    }
    /// `export_logs`.
    pub fn export_logs(mut self, on: bool) -> Self {
        self.settings.export_logs = on;
        self
    }
    /// `log_level`: a level name (`trace`…`error`, `off`) or an OTLP severity number 1–24.
    pub fn log_level(mut self, level: impl AsRef<str>) -> Self {
        if let Some(level) = self.check(parse_level(level.as_ref(), "log_level")) {
            self.settings.log_level = level;
        }
        self
    }
    /// `export_enabled`: the master switch.
    pub fn export_enabled(mut self, on: bool) -> Self {
        self.settings.export_enabled = on;
        self
    }
    /// Spans and log records the export queue holds before it drops (default 131 072, about
    /// 64 MiB at worst for spans with a few attributes; lower it on constrained hosts).
    pub fn max_queue_size(mut self, items: usize) -> Self {
        self.settings.tuning.max_queue_size = items.max(1);
        self
    }
    /// Items per export request (default 2048), at most half of
    /// [`max_queue_size`](Self::max_queue_size): the queue keeps taking records while a full
    /// batch is sent.
    pub fn max_export_batch_size(mut self, items: usize) -> Self {
        self.settings.tuning.max_export_batch_size = items.max(1);
        self
    }
    /// How long a span may wait for its batch to fill (default 5 s); log records wait at most
    /// a fifth of that, up to 1 s.
    pub fn export_delay(mut self, delay: Duration) -> Self {
        self.settings.tuning.span_delay = delay;
        self.settings.tuning.log_delay = (delay / 5).min(Duration::from_secs(1));
        self
    }
    /// How often metrics are collected and pushed (default 60 s).
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.settings.tuning.metrics_interval = interval.max(Duration::from_millis(10));
        self
    }
    /// Per-request timeout (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.settings.tuning.request_timeout = timeout;
        self
    }
    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.tuning.connect_timeout = timeout;
        self
    }
    /// Compress request bodies with gzip (default on when built with the `gzip` feature;
    /// without it, requests are always sent uncompressed).
    pub fn gzip(mut self, on: bool) -> Self {
        self.settings.tuning.gzip = on && cfg!(feature = "gzip");
        self
    }
    /// Per-span limits (default: the OpenTelemetry SDK's 128 attributes, events and links, no
    /// value length limit); set `max_value_chars` to bound hostile or huge values.
    pub fn span_limits(mut self, limits: crate::trace::SpanLimits) -> Self {
        self.settings.tuning.span_limits = limits;
        self
    }
    /// How often, at most, the exporter logs a summary of an ongoing export failure (default
    /// 60 s). The first failure and the recovery are told when they happen (the recovery waits
    /// for the interval after the previous line, so a flapping endpoint stays a few lines).
    pub fn failure_report_interval(mut self, interval: Duration) -> Self {
        self.settings.tuning.failure_report_interval = interval;
        self
    }
    /// Which measurements carry exemplars (default [`ExemplarFilter::TraceBased`]).
    pub fn exemplar_filter(mut self, filter: ExemplarFilter) -> Self {
        self.settings.tuning.exemplar_filter = filter;
        self
    }
    /// Export the `process.*` metrics (default on).
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.settings.tuning.process_metrics = on;
        self
    }
    /// Export the pipeline's own `otel.sdk.*` health metrics (default on).
    pub fn health_metrics(mut self, on: bool) -> Self {
        self.settings.tuning.health_metrics = on;
        self
    }
    /// Retry policy for failed sends.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.settings.tuning.retry = policy;
        self
    }
    /// The settings, or the first invalid value.
    pub fn build(self) -> Result<Settings, SettingsError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.settings),
        }
    }
}

/// The settings as an app embeds them in its own config file (feature `serde`); field names
/// match the environment variables without the prefix. Convert with `Settings::try_from`.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// let file: plain_connect::SettingsFile =
///     serde_json::from_str(r#"{"export_token": "t", "log_level": 13}"#).unwrap();
/// let settings = plain_connect::Settings::try_from(file).unwrap();
/// assert_eq!(settings.log_level(), log::LevelFilter::Warn);
/// # }
/// ```
#[non_exhaustive]
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[derive(Clone, Debug, Default)]
pub struct SettingsFile {
    /// See [`Settings::export_url`].
    pub export_url: Option<String>,
    /// See [`Settings::export_token`] (redacted by `Debug`).
    pub export_token: Option<Token>,
    /// See [`Settings::trace_sample_rate`].
    pub trace_sample_rate: Option<f64>,
    /// See [`Settings::export_logs`].
    pub export_logs: Option<bool>,
    /// A level name or a severity number.
    pub log_level: Option<LevelSetting>,
    /// See [`Settings::export_enabled`].
    pub export_enabled: Option<bool>,
    /// See [`SettingsBuilder::metrics_interval`], in milliseconds.
    pub metrics_interval_ms: Option<u64>,
    /// `trace_based`, `always_on` or `always_off`; see [`Settings::exemplar_filter`].
    pub exemplar_filter: Option<String>,
    /// See [`Settings::process_metrics`].
    pub process_metrics: Option<bool>,
    /// See [`Settings::health_metrics`].
    pub health_metrics: Option<bool>,
}

/// `log_level` in a config file: `"warn"` or `13`.
#[cfg_attr(feature = "serde", derive(serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(untagged))]
#[derive(Clone, Debug)]
pub enum LevelSetting {
    /// A level name.
    Name(String),
    /// A severity number.
    Number(i64),
}

impl TryFrom<SettingsFile> for Settings {
    type Error = SettingsError;
    fn try_from(file: SettingsFile) -> Result<Settings, SettingsError> {
        let mut b = Settings::builder();
        if let Some(url) = file.export_url {
            b = b.export_url(url);
        }
        if let Some(token) = file.export_token {
            b = b.export_token(token.0);
        }
        if let Some(rate) = file.trace_sample_rate {
            b = b.trace_sample_rate(rate);
        }
        if let Some(on) = file.export_logs {
            b = b.export_logs(on);
        }
        match file.log_level {
            Some(LevelSetting::Name(name)) => b = b.log_level(name),
            Some(LevelSetting::Number(n)) => b = b.log_level(n.to_string()),
            None => {}
        }
        if let Some(on) = file.export_enabled {
            b = b.export_enabled(on);
        }
        if let Some(ms) = file.metrics_interval_ms {
            b = b.metrics_interval(Duration::from_millis(ms));
        }
        if let Some(raw) = file.exemplar_filter {
            match ExemplarFilter::parse(&raw) {
                Some(filter) => b = b.exemplar_filter(filter),
                None => return Err(error("exemplar_filter", &raw, EXEMPLAR_FILTER_EXPECTED)),
            }
        }
        if let Some(on) = file.process_metrics {
            b = b.process_metrics(on);
        }
        if let Some(on) = file.health_metrics {
            b = b.health_metrics(on);
        }
        b.build()
    }
}

#[derive(Clone, Copy, Debug)]
enum EnvVar {
    ExportUrl,
    ExportToken,
    TraceSampleRate,
    ExportLogs,
    LogLevel,
    ExportEnabled,
    ProcessMetrics,
    HealthMetrics,
}

impl EnvVar {
    const ALL: [EnvVar; 8] = [
        EnvVar::ExportUrl,
        EnvVar::ExportToken,
        EnvVar::TraceSampleRate,
        EnvVar::ExportLogs,
        EnvVar::LogLevel,
        EnvVar::ExportEnabled,
        EnvVar::ProcessMetrics,
        EnvVar::HealthMetrics,
    ];

    fn name(self) -> String {
        let suffix = match self {
            EnvVar::ExportUrl => "EXPORT_URL",
            EnvVar::ExportToken => "EXPORT_TOKEN",
            EnvVar::TraceSampleRate => "TRACE_SAMPLE_RATE",
            EnvVar::ExportLogs => "EXPORT_LOGS",
            EnvVar::LogLevel => "LOG_LEVEL",
            EnvVar::ExportEnabled => "EXPORT_ENABLED",
            EnvVar::ProcessMetrics => "PROCESS_METRICS",
            EnvVar::HealthMetrics => "HEALTH_METRICS",
        };
        format!("{ENV_PREFIX}{suffix}")
    }
}

/// The real environment; a value that is not UTF-8 is an error, not a panic.
fn process_env(name: &str) -> Result<Option<String>, SettingsError> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(SettingsError {
            variable: name.to_owned(),
            value: None,
            expected: "a UTF-8 value",
        }),
    }
}

fn error(variable: &str, value: &str, expected: &'static str) -> SettingsError {
    SettingsError {
        variable: variable.to_owned(),
        value: Some(value.to_owned()),
        expected,
    }
}

pub(crate) const EXEMPLAR_FILTER_EXPECTED: &str = "trace_based, always_on or always_off";

const RATE_EXPECTED: &str = "a number from 0.0 to 1.0";

fn parse_rate(raw: &str, variable: &str) -> Result<f64, SettingsError> {
    let rate: f64 = raw
        .trim()
        .parse()
        .map_err(|_| error(variable, raw, RATE_EXPECTED))?;
    check_rate(rate, raw, variable)
}

fn check_rate(rate: f64, raw: &str, variable: &str) -> Result<f64, SettingsError> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(error(variable, raw, RATE_EXPECTED))
    }
}

fn parse_bool(raw: &str, variable: &str) -> Result<bool, SettingsError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(error(variable, raw, "true or false (or 1 / 0)")),
    }
}

const LEVEL_EXPECTED: &str =
    "trace, debug, info, warn, error or off (any case), or an OTLP severity number 1-24";

/// A level name, or an OTLP severity number mapped to the level whose range holds it
/// (1–4 trace, 5–8 debug, 9–12 info, 13–16 warn, 17–24 error and fatal). `0` means off.
fn parse_level(raw: &str, variable: &str) -> Result<log::LevelFilter, SettingsError> {
    use log::LevelFilter as L;
    let value = raw.trim();
    if let Ok(number) = value.parse::<i64>() {
        return match number {
            0 => Ok(L::Off),
            1..=4 => Ok(L::Trace),
            5..=8 => Ok(L::Debug),
            9..=12 => Ok(L::Info),
            13..=16 => Ok(L::Warn),
            17..=24 => Ok(L::Error),
            _ => Err(error(variable, raw, LEVEL_EXPECTED)),
        };
    }
    match value.to_ascii_lowercase().as_str() {
        "trace" => Ok(L::Trace),
        "debug" => Ok(L::Debug),
        "info" => Ok(L::Info),
        "warn" | "warning" => Ok(L::Warn),
        "error" | "fatal" => Ok(L::Error),
        "off" | "none" => Ok(L::Off),
        _ => Err(error(variable, raw, LEVEL_EXPECTED)),
    }
}

const URL_EXPECTED: &str =
    "an http:// or https:// URL with a host, e.g. https://ingest.example.com";

/// Checks an `http(s)://host[:port][/path]` URL by hand (no URL crate) and drops trailing `/`.
fn parse_url(raw: &str, variable: &str) -> Result<String, SettingsError> {
    let url = raw.trim();
    let bad = || error(variable, &redacted_url(raw), URL_EXPECTED);
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if !host_ok || !port_ok || url.contains(['?', '#']) {
        return Err(bad());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// `host[:port]` of an `http(s)://` URL.
fn url_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or_default()
}

/// The host of an `http(s)://` URL, without brackets for IPv6.
fn url_host(url: &str) -> &str {
    let authority = url_authority(url);
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    }
}

/// Whether the URL names this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback_url(url: &str) -> bool {
    let host = url_host(url);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether what is sent to `url` can be read on the network: plain `http://` to another machine.
fn is_plain_http_off_host(url: &str) -> bool {
    url.starts_with("http://") && !is_loopback_url(url)
}

/// A URL fit to quote in an error: user info and query, where credentials hide, become `***`.
fn redacted_url(raw: &str) -> String {
    let (url, query) = match raw.split_once('?') {
        Some((url, _)) => (url, "?***"),
        None => (raw, ""),
    };
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    format!("{scheme}{authority}{path}{query}")
}

const HEADER_EXPECTED: &str = "header names made of letters, digits and -, and values with no \
     control characters (CR, LF, NUL...), which an HTTP header cannot carry";
const TOKEN_EXPECTED: &str =
    "a token with no control characters (CR, LF, NUL...), which an HTTP header cannot carry";

/// Whether the HTTP client will send this header: the check it applies itself, made at init so a
/// bad value is one clear error instead of a failure of every export.
pub(crate) fn is_valid_header(name: &str, value: &str) -> bool {
    ureq::http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && ureq::http::HeaderValue::from_str(value).is_ok()
}

/// A secret bound for a header; the error never quotes it.
fn secret_error(variable: &str, expected: &'static str) -> SettingsError {
    SettingsError {
        variable: variable.to_owned(),
        value: None,
        expected,
    }
}

fn parse_token(raw: &str, variable: &str) -> Result<Token, SettingsError> {
    let token = raw.trim();
    if is_valid_header("authorization", &format!("Bearer {token}")) {
        Ok(Token::new(token))
    } else {
        Err(secret_error(variable, TOKEN_EXPECTED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, SettingsError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (format!("{ENV_PREFIX}{k}"), v.to_string()))
            .collect();
        move |name| Ok(map.get(name).cloned())
    }

    fn env_error(pairs: &[(&str, &str)]) -> String {
        Settings::default()
            .with_env_from(env(pairs))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults() {
        let s = Settings::default();
        assert_eq!(s.export_url(), "https://ingest.plainframework.com");
        assert!(s.export_token().is_empty());
        assert_eq!(s.trace_sample_rate(), 1.0);
        assert!(s.export_logs() && s.export_enabled());
        assert_eq!(s.log_level(), log::LevelFilter::Info);
        assert!(!s.is_export_active());
    }

    #[test]
    fn environment_wins_over_code_and_empty_means_unset() {
        let code = Settings::builder()
            .trace_sample_rate(0.5)
            .export_url("http://localhost:4318")
            .build()
            .unwrap();
        let s = code
            .with_env_from(env(&[
                ("TRACE_SAMPLE_RATE", "0.1"),
                ("EXPORT_URL", ""),
                ("EXPORT_TOKEN", "abc"),
                ("LOG_LEVEL", "WARNING"),
                ("EXPORT_LOGS", "FALSE"),
            ]))
            .unwrap();
        assert_eq!(s.trace_sample_rate(), 0.1);
        assert_eq!(s.export_url(), "http://localhost:4318");
        assert!(s.is_export_active());
        assert_eq!(s.log_level(), log::LevelFilter::Warn);
        assert!(!s.export_logs());
    }

    #[test]
    fn bad_values_name_the_variable_and_the_accepted_values() {
        for rate in ["abc", "1.5", "-0.1", "NaN", "inf"] {
            let e = env_error(&[("TRACE_SAMPLE_RATE", rate)]);
            assert!(e.starts_with("PLAIN_CONNECT_TRACE_SAMPLE_RATE="), "{e}");
            assert!(e.contains("0.0 to 1.0") && e.contains(rate), "{e}");
        }
        let e = env_error(&[("LOG_LEVEL", "LOUD")]);
        assert!(
            e.contains("PLAIN_CONNECT_LOG_LEVEL") && e.contains("warn"),
            "{e}"
        );
        let e = env_error(&[("EXPORT_LOGS", "maybe")]);
        assert!(
            e.contains("PLAIN_CONNECT_EXPORT_LOGS") && e.contains("true or false"),
            "{e}"
        );
        for url in [
            "ftp://x",
            "not a url",
            "http://",
            "https://:443",
            "http://h:99999",
            "http://a b",
        ] {
            let e = env_error(&[("EXPORT_URL", url)]);
            assert!(
                e.contains("PLAIN_CONNECT_EXPORT_URL") && e.contains("http://"),
                "{e}"
            );
        }
        let e = Settings::builder()
            .trace_sample_rate(2.0)
            .build()
            .unwrap_err();
        assert!(e.to_string().starts_with("trace_sample_rate="), "{e}");
    }

    #[test]
    fn levels_by_name_and_severity_number() {
        use log::LevelFilter as L;
        for (raw, level) in [
            ("trace", L::Trace),
            ("DEBUG", L::Debug),
            ("Info", L::Info),
            ("1", L::Trace),
            ("5", L::Debug),
            ("9", L::Info),
            ("12", L::Info),
            ("13", L::Warn),
            ("17", L::Error),
            ("21", L::Error),
            ("0", L::Off),
            ("off", L::Off),
        ] {
            assert_eq!(parse_level(raw, "x"), Ok(level), "{raw}");
        }
        assert!(parse_level("25", "x").is_err());
        assert!(parse_level("-1", "x").is_err());
    }

    #[test]
    fn urls_keep_their_base_path() {
        let s = Settings::builder()
            .export_url("https://collector:4318/base/")
            .build()
            .unwrap();
        assert_eq!(s.export_url(), "https://collector:4318/base");
        assert_eq!(
            s.signal_url("traces"),
            "https://collector:4318/base/v1/traces"
        );
        assert!(parse_url("http://[::1]:4318", "x").is_ok());
        assert!(parse_url("http://127.0.0.1:4318", "x").is_ok());
    }

    #[test]
    fn the_token_never_shows() {
        let s = Settings::builder().export_token("s3cr3t").build().unwrap();
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert_eq!(s.export_token().to_string(), "***");
        assert_eq!(s.export_token().expose_secret(), "s3cr3t");
        let e = env_error(&[("EXPORT_TOKEN", "s3cr3t"), ("EXPORT_LOGS", "s3cr3t?")]);
        assert!(!e.contains("s3cr3t\""), "{e}");
    }

    /// From fuzzing: a token that happens to be part of an error's fixed text ("p://" in
    /// "http://") must still have no influence on the message.
    #[test]
    fn the_token_has_no_influence_on_error_messages() {
        let with =
            |token: &str| env_error(&[("EXPORT_URL", "\u{ff}\u{7}"), ("EXPORT_TOKEN", token)]);
        assert_eq!(with("p://"), with("zzzz"));
    }

    #[test]
    fn non_unicode_is_an_error_naming_the_variable() {
        let lookup = |name: &str| {
            if name.ends_with("LOG_LEVEL") {
                Err(SettingsError {
                    variable: name.to_owned(),
                    value: None,
                    expected: "a UTF-8 value",
                })
            } else {
                Ok(None)
            }
        };
        let e = Settings::default().with_env_from(lookup).unwrap_err();
        assert_eq!(
            e.to_string(),
            "PLAIN_CONNECT_LOG_LEVEL is not valid: expected a UTF-8 value"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_config_file_deserializes_and_validates() {
        let file: SettingsFile = serde_json::from_str(
            r#"{"export_url": "http://localhost:4318", "export_token": "t",
                "trace_sample_rate": 0.5, "log_level": "debug", "export_logs": false}"#,
        )
        .unwrap();
        let s = Settings::try_from(file).unwrap();
        assert_eq!(s.trace_sample_rate(), 0.5);
        assert_eq!(s.log_level(), log::LevelFilter::Debug);
        assert!(!s.export_logs());
        assert!(serde_json::from_str::<SettingsFile>(r#"{"sample_rate": 1}"#).is_err());
        let bad: SettingsFile = serde_json::from_str(r#"{"trace_sample_rate": 1.5}"#).unwrap();
        let e = Settings::try_from(bad).unwrap_err().to_string();
        assert!(
            e.contains("trace_sample_rate") && e.contains("0.0 to 1.0"),
            "{e}"
        );
    }
}
