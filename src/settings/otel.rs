//! The standard `OTEL_*` environment variables, so the crate works against any OTLP backend with
//! no code change. Precedence: `PLAIN_CONNECT_*` > `OTEL_*` > code > defaults.
//!
//! As the OpenTelemetry specification asks, a bad `OTEL_*` value is not fatal: it is ignored and
//! reported as a warning (printed once on stderr when telemetry starts). Bad `PLAIN_CONNECT_*`
//! values stay errors: they are this product's own contract.

use super::{SettingsError, Token};
use std::time::Duration;

/// What the `OTEL_*` variables said, kept beside the settings they adjust.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct OtelOverrides {
    pub(crate) sdk_disabled: bool,
    pub(crate) service_name: Option<String>,
    pub(crate) resource_attributes: Vec<(String, String)>,
    /// Per-signal endpoints, used as given (traces, metrics, logs).
    pub(crate) signal_endpoints: [Option<String>; 3],
    /// Set when `OTEL_EXPORTER_OTLP_ENDPOINT` gave the base URL.
    pub(crate) base_endpoint: bool,
    /// Header values are often credentials, so they are kept as secrets.
    pub(crate) headers: Vec<(String, Token)>,
    /// Per-signal headers (traces, metrics, logs), sent after the generic ones.
    pub(crate) signal_headers: [Vec<(String, Token)>; 3],
    /// `false` for the samplers that ignore the parent (`always_on`, `traceidratio`...).
    pub(crate) parent_based: Option<bool>,
    pub(crate) warnings: Vec<String>,
}

impl OtelOverrides {
    /// Whether any OTLP endpoint was configured through `OTEL_*` (export then needs no token).
    pub(crate) fn has_endpoint(&self) -> bool {
        self.base_endpoint || self.signal_endpoints.iter().any(Option::is_some)
    }
}

pub(crate) const SIGNALS: [&str; 3] = ["TRACES", "METRICS", "LOGS"];

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `k1=v1,k2=v2` with percent-encoded values (keys too, for resource attributes). Any bad entry
/// discards the whole variable, per the specification.
fn parse_pairs(raw: &str, decode_keys: bool) -> Option<Vec<(String, String)>> {
    raw.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (key, value) = entry.split_once('=')?;
            let key = key.trim();
            if key.is_empty() {
                return None;
            }
            let key = if decode_keys {
                percent_decode(key)?
            } else {
                key.to_owned()
            };
            Some((key, percent_decode(value.trim())?))
        })
        .collect()
}

/// Milliseconds as a non-negative integer.
fn parse_millis(raw: &str) -> Option<Duration> {
    raw.trim().parse::<u64>().ok().map(Duration::from_millis)
}

fn parse_count(raw: &str) -> Option<usize> {
    raw.trim().parse::<usize>().ok().filter(|n| *n > 0)
}

/// An `OTEL_EXPORTER_OTLP_*HEADERS` value: `None` (with a warning) when it is not `k=v` pairs,
/// an error when a header could not be sent (a CR/LF in a value would fail every export).
/// Values are never quoted.
fn parse_headers(
    raw: &str,
    variable: &str,
    otel: &mut OtelOverrides,
    errors: &mut Vec<SettingsError>,
) -> Option<Vec<(String, Token)>> {
    let Some(pairs) = parse_pairs(raw, false) else {
        otel.warnings.push(format!(
            "{variable} is not valid (key=value pairs, values percent-encoded); ignored"
        ));
        return None;
    };
    if !pairs
        .iter()
        .all(|(name, value)| super::is_valid_header(name, value))
    {
        errors.push(super::secret_error(variable, super::HEADER_EXPECTED));
        return None;
    }
    Some(
        pairs
            .into_iter()
            .map(|(name, value)| (name, Token::new(value)))
            .collect(),
    )
}

/// Reads every supported `OTEL_*` variable through `lookup` and applies it to `settings`.
/// Bad values are warnings (kept in the settings); the errors returned are the headers that could
/// never be sent, which the caller treats like a bad `PLAIN_CONNECT_*` value.
pub(crate) fn apply(
    settings: &mut super::Settings,
    lookup: &dyn Fn(&str) -> Result<Option<String>, SettingsError>,
) -> Vec<SettingsError> {
    let mut otel = OtelOverrides::default();
    let mut errors = Vec::new();
    let get = |name: &str, otel: &mut OtelOverrides| match lookup(name) {
        Ok(Some(v)) if !v.trim().is_empty() => Some(v),
        Ok(_) => None,
        Err(e) => {
            otel.warnings.push(format!("{e}; ignored"));
            None
        }
    };
    let warn = |otel: &mut OtelOverrides, name: &str, value: &str, expected: &str| {
        otel.warnings.push(format!(
            "{name}={value:?} is not valid ({expected}); ignored"
        ));
    };

    if let Some(v) = get("OTEL_SDK_DISABLED", &mut otel) {
        otel.sdk_disabled = v.trim().eq_ignore_ascii_case("true");
    }
    if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES", &mut otel) {
        match parse_pairs(&v, true) {
            Some(pairs) => otel.resource_attributes = pairs,
            None => warn(
                &mut otel,
                "OTEL_RESOURCE_ATTRIBUTES",
                &v,
                "key=value pairs, percent-encoded",
            ),
        }
    }
    if let Some(v) = get("OTEL_SERVICE_NAME", &mut otel) {
        otel.service_name = Some(v.trim().to_owned());
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT", &mut otel) {
        match super::parse_url(&v, "OTEL_EXPORTER_OTLP_ENDPOINT") {
            Ok(url) => {
                settings.export_url = url;
                otel.base_endpoint = true;
            }
            Err(e) => otel.warnings.push(format!("{e}; ignored")),
        }
    }
    for (i, signal) in SIGNALS.iter().enumerate() {
        let name = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
        if let Some(v) = get(&name, &mut otel) {
            match super::parse_url(&v, &name) {
                // Used as given; a URL with no path means `/`.
                Ok(url) => {
                    let has_path = url.splitn(4, '/').nth(3).is_some();
                    otel.signal_endpoints[i] = Some(if has_path {
                        v.trim().to_owned()
                    } else {
                        format!("{url}/")
                    });
                }
                Err(e) => otel.warnings.push(format!("{e}; ignored")),
            }
        }
        let name = format!("OTEL_EXPORTER_OTLP_{signal}_HEADERS");
        if let Some(v) = get(&name, &mut otel) {
            if let Some(headers) = parse_headers(&v, &name, &mut otel, &mut errors) {
                otel.signal_headers[i] = headers;
            }
        }
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_HEADERS", &mut otel) {
        if let Some(headers) =
            parse_headers(&v, "OTEL_EXPORTER_OTLP_HEADERS", &mut otel, &mut errors)
        {
            otel.headers = headers;
        }
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_TIMEOUT", &mut otel) {
        match parse_millis(&v) {
            // 0 means no limit; a day stands in for it so every wait stays bounded.
            Some(Duration::ZERO) => settings.tuning.request_timeout = Duration::from_secs(86_400),
            Some(d) => settings.tuning.request_timeout = d,
            None => warn(&mut otel, "OTEL_EXPORTER_OTLP_TIMEOUT", &v, "milliseconds"),
        }
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_COMPRESSION", &mut otel) {
        match v.trim().to_ascii_lowercase().as_str() {
            "gzip" => settings.tuning.gzip = cfg!(feature = "gzip"),
            "none" => settings.tuning.gzip = false,
            _ => warn(
                &mut otel,
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                &v,
                "gzip or none",
            ),
        }
    }
    if let Some(v) = get("OTEL_EXPORTER_OTLP_PROTOCOL", &mut otel) {
        if v.trim() != "http/protobuf" {
            warn(
                &mut otel,
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                &v,
                "only http/protobuf is supported",
            );
        }
    }
    let sampler_arg = get("OTEL_TRACES_SAMPLER_ARG", &mut otel);
    if let Some(v) = get("OTEL_TRACES_SAMPLER", &mut otel) {
        let ratio = || -> Option<f64> {
            let arg = sampler_arg.as_deref()?;
            arg.trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
        };
        let choice = match v.trim().to_ascii_lowercase().as_str() {
            "always_on" => Some((1.0, false)),
            "always_off" => Some((0.0, false)),
            "traceidratio" => Some((ratio().unwrap_or(1.0), false)),
            "parentbased_always_on" => Some((1.0, true)),
            "parentbased_always_off" => Some((0.0, true)),
            "parentbased_traceidratio" => Some((ratio().unwrap_or(1.0), true)),
            _ => None,
        };
        match choice {
            Some((rate, parent_based)) => {
                settings.trace_sample_rate = rate;
                otel.parent_based = Some(parent_based);
            }
            None => warn(
                &mut otel,
                "OTEL_TRACES_SAMPLER",
                &v,
                "always_on, always_off, traceidratio or parentbased_*",
            ),
        }
        if v.contains("traceidratio") && sampler_arg.is_some() && ratio().is_none() {
            warn(
                &mut otel,
                "OTEL_TRACES_SAMPLER_ARG",
                sampler_arg.as_deref().unwrap_or(""),
                "a number from 0 to 1",
            );
        }
    }
    // One queue and one batch size serve spans and logs; the larger of the two settings wins.
    for (name, apply) in [
        ("OTEL_BSP_MAX_QUEUE_SIZE", 0),
        ("OTEL_BLRP_MAX_QUEUE_SIZE", 0),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 1),
        ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 1),
    ] {
        if let Some(v) = get(name, &mut otel) {
            match parse_count(&v) {
                Some(n) if apply == 0 => settings.tuning.max_queue_size = n,
                Some(n) => settings.tuning.max_export_batch_size = n,
                None => warn(&mut otel, name, &v, "a positive integer"),
            }
        }
    }
    for (name, target) in [
        ("OTEL_BSP_SCHEDULE_DELAY", 0),
        ("OTEL_BLRP_SCHEDULE_DELAY", 1),
        ("OTEL_METRIC_EXPORT_INTERVAL", 2),
    ] {
        if let Some(v) = get(name, &mut otel) {
            match parse_millis(&v) {
                Some(d) if target == 0 => settings.tuning.span_delay = d,
                Some(d) if target == 1 => settings.tuning.log_delay = d,
                Some(d) => settings.tuning.metrics_interval = d.max(Duration::from_millis(10)),
                None => warn(&mut otel, name, &v, "milliseconds"),
            }
        }
    }
    if let Some(v) = get("OTEL_METRICS_EXEMPLAR_FILTER", &mut otel) {
        match super::ExemplarFilter::parse(&v) {
            Some(filter) => settings.tuning.exemplar_filter = filter,
            None => warn(
                &mut otel,
                "OTEL_METRICS_EXEMPLAR_FILTER",
                &v,
                super::EXEMPLAR_FILTER_EXPECTED,
            ),
        }
    }
    settings.otel = otel;
    errors
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::default()
            .with_env_from(move |name| Ok(map.get(name).cloned()))
            .unwrap()
    }

    #[test]
    fn endpoints_headers_and_precedence() {
        let s = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/base/"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b, team=core"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-trace=1"),
        ]);
        assert_eq!(
            s.signal_url("traces"),
            "http://collector:4318/base/v1/traces"
        );
        assert_eq!(s.signal_url("logs"), "http://logs:9999/");
        assert!(s.is_export_active(), "an OTEL endpoint needs no token");
        assert_eq!(
            s.otel.headers,
            [
                ("x-api-key".into(), "a b".into()),
                ("team".into(), "core".into())
            ]
        );
        assert_eq!(s.otel.signal_headers[0], [("x-trace".into(), "1".into())]);
        // PLAIN_CONNECT_* wins over OTEL_*.
        let s = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("PLAIN_CONNECT_EXPORT_URL", "https://plain.example"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ]);
        assert_eq!(s.export_url(), "https://plain.example");
        assert_eq!(s.trace_sample_rate(), 0.25);
        assert_eq!(
            with(&[
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("PLAIN_CONNECT_TRACE_SAMPLE_RATE", "0.1")
            ])
            .trace_sample_rate(),
            0.1
        );
    }

    #[test]
    fn disabled_resource_and_tuning() {
        let s = with(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("PLAIN_CONNECT_EXPORT_TOKEN", "t"),
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=ignored,deployment.environment.name=prod%2Ceu",
            ),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "4096"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "256"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
        ]);
        assert!(!s.is_export_active());
        assert_eq!(s.otel.service_name.as_deref(), Some("checkout"));
        assert_eq!(
            s.otel.resource_attributes[1],
            ("deployment.environment.name".into(), "prod,eu".into())
        );
        assert_eq!(
            (s.tuning.max_queue_size, s.tuning.max_export_batch_size),
            (4096, 256)
        );
        assert_eq!(s.tuning.metrics_interval.as_millis(), 15_000);
        assert_eq!(s.tuning.request_timeout.as_millis(), 2_500);
        assert!(!s.tuning.gzip);
    }

    #[test]
    fn bad_otel_values_are_warnings_not_errors() {
        let s = with(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%zz,b=1"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-5"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%2secret"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://nope"),
        ]);
        assert!(
            s.otel.resource_attributes.is_empty(),
            "a decode error discards the whole variable"
        );
        assert_eq!(s.trace_sample_rate(), 1.0);
        assert_eq!(s.otel.warnings.len(), 5, "{:?}", s.otel.warnings);
        assert!(
            s.otel.warnings.iter().all(|w| !w.contains("secret")),
            "{:?}",
            s.otel.warnings
        );
        assert_eq!(s.export_url(), super::super::DEFAULT_EXPORT_URL);
    }
}
