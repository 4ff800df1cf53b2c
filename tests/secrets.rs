//! Secrets (the export token, OTEL header values) never show in `Debug`, errors or warnings; one
//! that cannot go in an HTTP header is refused at init; credentials bound for plain http off this
//! machine are warned about; a URL on this machine needs no token.

mod common;

use common::TestReceiver;
use plain_connect::{trace, Resource, Settings, SettingsError, SettingsFile, Telemetry};
use std::collections::HashMap;
use std::time::Duration;

const TOKEN: &str = "tok-3f9a77c1e5";
const HEADER_SECRET: &str = "hny-5be1d0c2aa";

fn from_env(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::default().with_env_from(move |name| Ok(map.get(name).cloned()))
}

#[test]
fn no_type_that_holds_a_secret_shows_it_in_debug() {
    let _serial = common::serial();
    let mut file = SettingsFile::default();
    file.export_token = Some(TOKEN.into());
    let shown = format!("{file:?} {file:#?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("***"), "{shown}");

    let settings = from_env(&[
        ("PLAIN_CONNECT_EXPORT_TOKEN", TOKEN),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            &format!("x-honeycomb-team={HEADER_SECRET},api-key=k-{HEADER_SECRET}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
            &format!("authorization=Basic%20{HEADER_SECRET}"),
        ),
    ])
    .unwrap();
    let builder = Settings::builder().export_token(TOKEN);
    let telemetry = Telemetry::start(settings.clone(), Resource::new("x", "1")).unwrap();
    for shown in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{builder:?}"),
        format!("{telemetry:?}"),
        settings.warnings().join("\n"),
    ] {
        assert!(
            !shown.contains(TOKEN) && !shown.contains(HEADER_SECRET),
            "{shown}"
        );
    }
    assert!(format!("{settings:?}").contains("x-honeycomb-team"));
    telemetry.shutdown(Duration::from_millis(100)).ok();

    #[cfg(feature = "serde")]
    {
        let file: SettingsFile =
            serde_json::from_str(&format!(r#"{{"export_token": "{TOKEN}"}}"#)).unwrap();
        assert!(!format!("{file:?}").contains(TOKEN));
        let settings = Settings::try_from(file).unwrap();
        assert_eq!(settings.export_token().expose_secret(), TOKEN);
    }
}

/// Every way a token or header value reaches the settings, with every byte an HTTP header cannot
/// carry: an error at init naming the variable, the value nowhere in it.
#[test]
fn a_secret_that_cannot_be_a_header_value_is_refused_at_init_naming_the_variable() {
    for bad in ["\r\n", "\n", "\r", "\0", "\x1b", "\x7f"] {
        let token = format!("{TOKEN}{bad}X-Injected: 1");
        let checks: Vec<(&str, Result<Settings, SettingsError>)> = vec![
            (
                "PLAIN_CONNECT_EXPORT_TOKEN",
                from_env(&[("PLAIN_CONNECT_EXPORT_TOKEN", &token)]),
            ),
            (
                "export_token",
                Settings::builder().export_token(token.as_str()).build(),
            ),
            (
                "export_token",
                Settings::try_from({
                    let mut file = SettingsFile::default();
                    file.export_token = Some(token.as_str().into());
                    file
                }),
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                from_env(&[("OTEL_EXPORTER_OTLP_HEADERS", &format!("api-key={token}"))]),
            ),
            (
                "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                from_env(&[(
                    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
                    &format!("api-key={token}"),
                )]),
            ),
        ];
        for (variable, result) in checks {
            let error = result.expect_err(variable);
            assert_eq!(error.variable, variable);
            assert_eq!(error.value, None);
            let message = format!("{error} {error:?}");
            assert!(!message.contains(TOKEN), "{message}");
            assert!(message.contains("CR, LF"), "{message}");
        }
    }
    // Percent-encoded CR/LF decodes to the same bytes, and is refused the same way.
    let error = from_env(&[(
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        &format!("x-key={HEADER_SECRET}%0D%0AX-Injected:%201"),
    )])
    .unwrap_err();
    assert_eq!(error.variable, "OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    assert!(!error.to_string().contains(HEADER_SECRET));
    // A bad header name cannot be sent either.
    let error = from_env(&[("OTEL_EXPORTER_OTLP_HEADERS", "bad name=v")]).unwrap_err();
    assert_eq!(error.variable, "OTEL_EXPORTER_OTLP_HEADERS");
    // The lossy loader keeps going without the header and hands the error back.
    let (settings, errors) = {
        std::env::set_var("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=a\u{1}b");
        let loaded = Settings::from_env_lossy();
        std::env::remove_var("OTEL_EXPORTER_OTLP_LOGS_HEADERS");
        loaded
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].variable, "OTEL_EXPORTER_OTLP_LOGS_HEADERS");
    assert!(!format!("{settings:?}").contains("a\u{1}b"));
}

#[test]
fn a_url_in_an_error_has_its_credentials_redacted() {
    for (raw, shown) in [
        (
            format!("https://user:{TOKEN}@collector:4318"),
            "https://***@collector:4318",
        ),
        (
            format!("https://collector:4318/v1?api_key={TOKEN}"),
            "https://collector:4318/v1?***",
        ),
    ] {
        let error = from_env(&[("PLAIN_CONNECT_EXPORT_URL", &raw)]).unwrap_err();
        let message = error.to_string();
        assert!(!message.contains(TOKEN), "{message}");
        assert!(message.contains(shown), "{message}");
        let settings = from_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &raw)]).unwrap();
        let warnings = settings.warnings().join("\n");
        assert!(
            !warnings.contains(TOKEN) && warnings.contains(shown),
            "{warnings}"
        );
    }
}

fn clear_text_warnings(settings: &Settings) -> Vec<String> {
    settings
        .warnings()
        .into_iter()
        .filter(|w| w.contains("plain http://"))
        .collect()
}

#[test]
fn credentials_bound_for_plain_http_off_this_machine_are_warned_about_for_every_endpoint() {
    // The token to a per-signal endpoint in clear; the others go to https.
    let settings = from_env(&[
        ("PLAIN_CONNECT_EXPORT_TOKEN", TOKEN),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector.internal:4318/v1/traces",
        ),
    ])
    .unwrap();
    let warnings = clear_text_warnings(&settings);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("export token")
            && warnings[0].contains("collector.internal:4318")
            && warnings[0].contains("(traces)"),
        "{warnings:?}"
    );

    // No token: credential headers are what travel. Per-signal headers only warn for their signal.
    let settings = from_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otlp.example"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://10.0.0.7:4318/v1/metrics",
        ),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://10.0.0.8:4318/v1/logs",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            &format!("api-key={HEADER_SECRET}"),
        ),
    ])
    .unwrap();
    let warnings = clear_text_warnings(&settings);
    assert_eq!(warnings.len(), 1, "logs carry no credentials: {warnings:?}");
    assert!(
        warnings[0].contains("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
            && warnings[0].contains("10.0.0.7"),
        "{warnings:?}"
    );
    assert!(!warnings[0].contains(HEADER_SECRET));

    // Generic headers go everywhere: one warning per endpoint, signals sharing one are grouped.
    let settings = from_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://logs.internal/v1/logs",
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            &format!("x-team={HEADER_SECRET}"),
        ),
    ])
    .unwrap();
    let warnings = clear_text_warnings(&settings);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].contains("collector:4318 (traces, metrics)"),
        "{warnings:?}"
    );
    assert!(warnings[1].contains("logs.internal (logs)"), "{warnings:?}");

    // https, or this machine: nothing to say.
    for endpoint in [
        "https://collector:4318",
        "http://127.0.0.1:4318",
        "http://localhost:4318",
        "http://[::1]:4318",
    ] {
        let settings = from_env(&[
            ("PLAIN_CONNECT_EXPORT_TOKEN", TOKEN),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=k"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ])
        .unwrap();
        assert!(clear_text_warnings(&settings).is_empty(), "{endpoint}");
    }
}

/// Issue 14: an explicit URL on this machine needs no token (the receiver's own doc example does
/// this); one elsewhere without a token exports nothing, and the warnings say why.
#[test]
fn a_loopback_export_url_needs_no_token_and_a_remote_one_says_why_it_is_off() {
    let _serial = common::serial();
    let receiver = TestReceiver::start();
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .build()
        .unwrap();
    assert!(settings.is_export_active());
    assert!(settings.warnings().is_empty(), "{:?}", settings.warnings());
    let telemetry = Telemetry::start(settings, Resource::new("local", "1")).unwrap();
    assert!(telemetry.is_active());
    trace::span("to the local collector").start().end();
    telemetry.flush(Duration::from_secs(5)).unwrap();
    let requests = receiver.requests();
    assert_eq!(receiver.spans().len(), 1);
    assert_eq!(requests[0].header("authorization"), None);
    assert!(clear_text_warnings(
        &Settings::builder()
            .export_url(receiver.endpoint())
            .export_token(TOKEN)
            .build()
            .unwrap()
    )
    .is_empty());
    telemetry.shutdown(Duration::from_secs(5)).unwrap();

    let remote = Settings::builder()
        .export_url("https://collector.example:4318")
        .build()
        .unwrap();
    assert!(!remote.is_export_active());
    let warnings = remote.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("export is off")
            && warnings[0].contains("https://collector.example:4318")
            && warnings[0].contains("PLAIN_CONNECT_EXPORT_TOKEN"),
        "{warnings:?}"
    );
    assert!(!Telemetry::start(remote, Resource::new("x", "1"))
        .unwrap()
        .is_active());
    // The default URL without a token is the quiet no-op that lets the same code run everywhere.
    assert!(Settings::default().warnings().is_empty());
    let disabled = Settings::builder()
        .export_url("https://collector.example:4318")
        .export_enabled(false)
        .build()
        .unwrap();
    assert!(disabled.warnings().is_empty(), "switched off on purpose");
}

const CHILD: &str = "PLAIN_CONNECT_TEST_STDERR_CHILD";

/// What a real process prints on stderr when it starts telemetry with these variables.
fn stderr_of_a_process_started_with(vars: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "stderr_child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Not a test of its own: the body of the process the stderr test starts.
#[test]
fn stderr_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    for _ in 0..2 {
        let settings = Settings::from_env().unwrap();
        let telemetry = Telemetry::start(settings, Resource::new("child", "1")).unwrap();
        telemetry.shutdown(Duration::from_millis(200)).ok();
    }
}

#[test]
fn the_warnings_reach_stderr_once_each_with_no_secret() {
    let stderr = stderr_of_a_process_started_with(&[
        ("PLAIN_CONNECT_EXPORT_TOKEN", TOKEN),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            &format!("api-key={HEADER_SECRET}"),
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "http://192.0.2.1:4318/v1/logs",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
    ]);
    let lines: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with("plain-connect: warning:"))
        .collect();
    assert_eq!(lines.len(), 1, "once, though started twice: {stderr}");
    assert!(
        lines[0].contains("the export token and the OTEL_EXPORTER_OTLP_HEADERS values")
            && lines[0].contains("192.0.2.1:4318 (logs)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(TOKEN) && !stderr.contains(HEADER_SECRET),
        "{stderr}"
    );

    let stderr = stderr_of_a_process_started_with(&[(
        "PLAIN_CONNECT_EXPORT_URL",
        "https://collector.example",
    )]);
    assert_eq!(
        stderr.matches("export is off").count(),
        1,
        "says why, once: {stderr}"
    );
}
