//! Settings from arbitrary environment values: a clear error or valid settings, never a panic,
//! and the token never influences an error message (so it can never appear in one).
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
            assert!(error.to_string().starts_with("PLAIN_CONNECT_"));
            if values.len() > 1 {
                let mut other = values.clone();
                let replacement = "\u{1}".repeat(values[1].chars().count().max(1));
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
