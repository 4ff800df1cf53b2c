//! Attribute keys and values shared by spans, metrics and log records.
//!
//! Arrays are typed (`Vec<i64>`, `Vec<String>`...) rather than arrays of [`Value`], so nesting is
//! impossible by construction and every value encodes to a valid OTLP `AnyValue`.

use std::borrow::Cow;
use std::sync::Arc;

/// A string that is either `'static` (no allocation) or shared.
///
/// Keys and most values in instrumentation are literals; a `Str` keeps them free to copy.
/// Equality, ordering and hashing go by the text, whichever variant holds it.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum Str {
    /// A string literal.
    Static(&'static str),
    /// A string built at run time.
    Owned(Arc<str>),
}

impl Str {
    /// The text.
    pub fn as_str(&self) -> &str {
        match self {
            Str::Static(s) => s,
            Str::Owned(s) => s,
        }
    }
}

impl PartialEq for Str {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        // The same literal passed again (the usual case for keys) settles it without reading it.
        std::ptr::eq(a, b) || a == b
    }
}

impl Eq for Str {}

impl PartialOrd for Str {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Str {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::ops::Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Str {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&'static str> for Str {
    fn from(s: &'static str) -> Self {
        Str::Static(s)
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str::Owned(s.into())
    }
}

impl From<Arc<str>> for Str {
    fn from(s: Arc<str>) -> Self {
        Str::Owned(s)
    }
}

impl From<Cow<'static, str>> for Str {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => Str::Static(s),
            Cow::Owned(s) => s.into(),
        }
    }
}

/// An attribute value: a scalar or a homogeneous array of scalars.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    Str(Str),
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// A float (NaN and infinities are encoded as they are; OTLP carries IEEE doubles).
    F64(f64),
    /// Strings.
    StrArray(Vec<Str>),
    /// Booleans.
    BoolArray(Vec<bool>),
    /// Integers.
    I64Array(Vec<i64>),
    /// Floats.
    F64Array(Vec<f64>),
}

impl Value {
    /// The value as text, for views and log bodies.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Str(s) => s.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::I64(i) => i.to_string(),
            Value::F64(f) => f.to_string(),
            Value::StrArray(v) => format!("{:?}", v.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
            Value::BoolArray(v) => format!("{v:?}"),
            Value::I64Array(v) => format!("{v:?}"),
            Value::F64Array(v) => format!("{v:?}"),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant((v $(as $cast)?).into())
            }
        })*
    };
}

value_from! {
    &'static str => Str,
    String => Str,
    Arc<str> => Str,
    Str => Str,
    bool => Bool,
    i64 => I64,
    i32 => I64 as i64,
    u32 => I64 as i64,
    i16 => I64 as i64,
    u16 => I64 as i64,
    u8 => I64 as i64,
    f64 => F64,
    f32 => F64 as f64,
    Vec<Str> => StrArray,
    Vec<bool> => BoolArray,
    Vec<i64> => I64Array,
    Vec<f64> => F64Array,
}

impl From<Cow<'static, str>> for Value {
    fn from(v: Cow<'static, str>) -> Self {
        Value::Str(v.into())
    }
}

/// Unsigned values above `i64::MAX` saturate: OTLP has no unsigned attribute type.
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// See `From<u64>`: saturates at `i64::MAX`.
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::StrArray(v.into_iter().map(Str::from).collect())
    }
}

impl From<Vec<&'static str>> for Value {
    fn from(v: Vec<&'static str>) -> Self {
        Value::StrArray(v.into_iter().map(Str::from).collect())
    }
}

/// A key and its value.
///
/// ```
/// use plain_connect::KeyValue;
/// let attrs = [KeyValue::new("http.route", "/users/{id}"), KeyValue::new("retries", 2)];
/// assert_eq!(attrs[1].value, plain_connect::Value::I64(2));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The attribute key, e.g. `http.request.method`.
    pub key: Str,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// A key/value pair; the value converts from strings, integers, floats, booleans and arrays.
    pub fn new(key: impl Into<Str>, value: impl Into<Value>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_unsigned_values_saturate() {
        assert_eq!(Value::from(u64::MAX), Value::I64(i64::MAX));
        assert_eq!(Value::from(7u64), Value::I64(7));
    }
}
