//! Settings from arbitrary environment values: a clear error or valid settings, never a panic,
//! and the token never shows in an error message: one replaced by another token that is valid
//! (or not) alike leaves the message as it was. A token an HTTP header cannot carry is itself an
//! error, naming the variable only.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plain_connect::{Settings, SettingsError};

fn settings_from(values: &[&str]) -> Result<Settings, SettingsError> {
    Settings::default().with_env_from(|name| {
        let index = match name {
            "PLAIN_CONNECT_EXPORT_URL" => 0,
            "PLAIN_CONNECT_EXPORT_TOKEN" => 1,
            "PLAIN_CONNECT_TRACE_SAMPLE_RATE" => 2,
            "PLAIN_CONNECT_EXPORT_LOGS" => 3,
            "PLAIN_CONNECT_LOG_LEVEL" => 4,
            _ => 5,
        };
        Ok(values.get(index).map(|v| v.to_string()))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let values: Vec<&str> = text.split('\u{0}').collect();
    match settings_from(&values) {
        Ok(settings) => {
            assert!((0.0..=1.0).contains(&settings.trace_sample_rate()));
            assert!(settings.export_url().starts_with("http"));
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.starts_with("PLAIN_CONNECT_") || message.starts_with("OTEL_EXPORTER_OTLP_"),
                "{message}"
            );
            if values.len() > 1 {
                let mut other = values.clone();
                // The HTTP client's rule for a header value.
                let token_is_valid = values[1]
                    .trim()
                    .bytes()
                    .all(|b| b == b'\t' || (b >= 32 && b != 127));
                let stand_in = if token_is_valid { "x" } else { "\u{1}" };
                let replacement = stand_in.repeat(values[1].chars().count().max(1));
                other[1] = &replacement;
                assert_eq!(
                    settings_from(&other).err().map(|e| e.to_string()),
                    Some(error.to_string()),
                    "the token changed the error message"
                );
            }
        }
    }
});
