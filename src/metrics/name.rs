//! Instrument names and units, validated per the OpenTelemetry rules, and the metrics error type.

use std::fmt;

/// Why an instrument could not be created.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricsError {
    /// The name breaks `ALPHA 0*254 ("_" / "." / "-" / "/" / ALPHA / DIGIT)`.
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// The unit is longer than 63 characters or not ASCII.
    InvalidUnit {
        /// The instrument.
        name: String,
        /// The offending unit.
        unit: String,
    },
    /// Bucket bounds must be finite and strictly increasing.
    InvalidBoundaries {
        /// The instrument.
        name: String,
    },
    /// The name is already used by an instrument of another kind.
    KindConflict {
        /// The instrument.
        name: String,
        /// The kind registered first.
        existing: &'static str,
        /// The kind asked for now.
        requested: &'static str,
    },
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::InvalidName { name } => write!(
                f,
                "instrument name {name:?} is not valid: it must start with a letter, use only \
                 ASCII letters, digits, '_', '.', '-' and '/', and be at most 255 characters"
            ),
            MetricsError::InvalidUnit { name, unit } => write!(
                f,
                "unit {unit:?} of instrument {name:?} is not valid: at most 63 ASCII characters"
            ),
            MetricsError::InvalidBoundaries { name } => write!(
                f,
                "bucket boundaries of histogram {name:?} must be finite and strictly increasing"
            ),
            MetricsError::KindConflict {
                name,
                existing,
                requested,
            } => write!(
                f,
                "instrument {name:?} already exists as a {existing}; cannot create it as a {requested}"
            ),
        }
    }
}

impl std::error::Error for MetricsError {}

pub(crate) fn validate_name(name: &str) -> Result<(), MetricsError> {
    let bytes = name.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(MetricsError::InvalidName {
            name: name.to_owned(),
        })
    }
}

pub(crate) fn validate_unit(name: &str, unit: &str) -> Result<(), MetricsError> {
    if unit.len() <= 63 && unit.is_ascii() {
        Ok(())
    } else {
        Err(MetricsError::InvalidUnit {
            name: name.to_owned(),
            unit: unit.to_owned(),
        })
    }
}

pub(crate) fn validate_boundaries(name: &str, bounds: &[f64]) -> Result<(), MetricsError> {
    let finite = bounds.iter().all(|b| b.is_finite());
    let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
    if finite && increasing {
        Ok(())
    } else {
        Err(MetricsError::InvalidBoundaries {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_otel_grammar() {
        for ok in [
            "a",
            "http.server.request.duration",
            "A_b-c/d.9",
            &"x".repeat(255),
        ] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "9lives",
            "_x",
            "has space",
            "ünï",
            "a\u{0}",
            &"x".repeat(256),
        ] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("must start with a letter"), "{e}");
        }
        assert!(validate_unit("m", "s").is_ok());
        assert!(validate_unit("m", &"s".repeat(64)).is_err());
        assert!(validate_boundaries("h", &[0.0, 1.0]).is_ok());
        assert!(validate_boundaries("h", &[1.0, 1.0]).is_err());
        assert!(validate_boundaries("h", &[0.0, f64::NAN]).is_err());
    }
}
