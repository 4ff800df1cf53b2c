//! The resource: which service the telemetry comes from.

use crate::attributes::{KeyValue, Str};

/// `service.name`, `service.version`, extra attributes, and the `telemetry.sdk.*` attributes
/// (name `plain-connect`: the name `opentelemetry` is reserved for the official SDKs).
///
/// [`crate::init!`] fills name and version from the calling crate's `Cargo.toml`.
///
/// ```
/// use plain_connect::Resource;
/// let resource = Resource::new("checkout", "2.1.0").with_attribute("deployment.environment.name", "prod");
/// assert_eq!(resource.service_name(), "checkout");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    service_name: String,
    service_version: String,
    attributes: Vec<KeyValue>,
}

impl Resource {
    /// A service's resource. An empty name becomes `unknown_service:<executable>` (the OTel rule).
    pub fn new(service_name: impl Into<String>, service_version: impl Into<String>) -> Self {
        let mut service_name = service_name.into();
        if service_name.trim().is_empty() {
            service_name = unknown_service_name();
        }
        Resource {
            service_name,
            service_version: service_version.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds (or replaces) an attribute such as `deployment.environment.name`.
    pub fn with_attribute(mut self, key: impl Into<Str>, value: impl Into<crate::Value>) -> Self {
        let kv = KeyValue::new(key, value);
        match kv.key.as_str() {
            "service.name" => self.service_name = kv.value.to_display_string(),
            "service.version" => self.service_version = kv.value.to_display_string(),
            _ => match self.attributes.iter_mut().find(|a| a.key == kv.key) {
                Some(existing) => existing.value = kv.value,
                None => self.attributes.push(kv),
            },
        }
        self
    }

    /// `service.name`.
    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// `service.version`.
    pub fn service_version(&self) -> &str {
        &self.service_version
    }

    /// Every attribute: `service.name` first, then `service.version`, the app's own, the
    /// process's (`process.pid`, `process.executable.name`, `process.runtime.*`), and
    /// `telemetry.sdk.*` last.
    pub fn attributes(&self) -> Vec<KeyValue> {
        let mut all = vec![KeyValue::new("service.name", self.service_name.clone())];
        if !self.service_version.is_empty() {
            all.push(KeyValue::new(
                "service.version",
                self.service_version.clone(),
            ));
        }
        all.extend(self.attributes.iter().cloned());
        // What the app set itself wins.
        all.extend(
            process_attributes()
                .into_iter()
                .filter(|kv| self.attributes.iter().all(|a| a.key != kv.key)),
        );
        all.push(KeyValue::new("telemetry.sdk.name", env!("CARGO_PKG_NAME")));
        all.push(KeyValue::new("telemetry.sdk.language", "rust"));
        all.push(KeyValue::new(
            "telemetry.sdk.version",
            env!("CARGO_PKG_VERSION"),
        ));
        all
    }
}

/// The resource attributes the conventions give a process: `process.pid`,
/// `process.executable.name`, and the Rust toolchain as `process.runtime.*`.
fn process_attributes() -> Vec<KeyValue> {
    let mut attributes = vec![KeyValue::new("process.pid", i64::from(std::process::id()))];
    if let Some(name) = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
    {
        attributes.push(KeyValue::new("process.executable.name", name));
    }
    // `rustc 1.90.0 (1159e78c4 2025-09-14)`, recorded by build.rs; empty if it could not run.
    let rustc = env!("PLAIN_CONNECT_RUSTC_VERSION");
    if let Some(version) = rustc.split_whitespace().nth(1) {
        attributes.push(KeyValue::new("process.runtime.name", "rustc"));
        attributes.push(KeyValue::new("process.runtime.version", version));
        attributes.push(KeyValue::new("process.runtime.description", rustc));
    }
    attributes
}

fn unknown_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    format!("unknown_service:{exe}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_attributes_and_fallback_name() {
        let r = Resource::new("", "1");
        assert!(r.service_name().starts_with("unknown_service:"));
        let attrs = Resource::new("svc", "1.0")
            .with_attribute("env", "dev")
            .attributes();
        let keys: Vec<&str> = attrs.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "service.name",
                "service.version",
                "env",
                "process.pid",
                "process.executable.name",
                "process.runtime.name",
                "process.runtime.version",
                "process.runtime.description",
                "telemetry.sdk.name",
                "telemetry.sdk.language",
                "telemetry.sdk.version"
            ]
        );
        assert_eq!(attrs[8].value, crate::Value::from("plain-connect"));
        assert_eq!(
            attrs[3].value,
            crate::Value::I64(i64::from(std::process::id()))
        );
        let own_pid = Resource::new("svc", "1")
            .with_attribute("process.pid", 7)
            .attributes();
        let pids: Vec<_> = own_pid
            .iter()
            .filter(|a| a.key.as_str() == "process.pid")
            .collect();
        assert_eq!(pids.len(), 1, "the app's own value wins");
        assert_eq!(pids[0].value, crate::Value::I64(7));
    }
}
