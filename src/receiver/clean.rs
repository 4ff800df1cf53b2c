//! Every string a view shows comes through here: bounded in length and nesting (cut with a
//! visible marker), with control characters (C0, DEL, C1) and bidirectional overrides written
//! as visible escapes, so no field can move the cursor, retitle the terminal or reorder a line.

use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
use std::fmt::Write as _;

/// Appended where text was cut.
pub(crate) const CUT: &str = "…[cut]";
/// Stands for a value nested deeper than [`MAX_DEPTH`].
pub(crate) const TOO_DEEP: &str = "[…nested deeper]";
/// Arrays and maps shown this deep; deeper levels become [`TOO_DEEP`].
pub(crate) const MAX_DEPTH: usize = 6;

/// Names, ids, attribute values in a row.
pub(crate) const SHORT: usize = 256;
/// Log bodies, event and link attributes.
pub(crate) const LONG: usize = 2048;

/// Text being built under a character budget.
pub(crate) struct Bounded {
    out: String,
    left: usize,
    cut: bool,
}

/// Whether a character must not reach a terminal as is.
fn unsafe_char(c: char) -> bool {
    c.is_control() // C0, DEL and C1
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

impl Bounded {
    pub(crate) fn new(max_chars: usize) -> Self {
        Bounded {
            out: String::new(),
            left: max_chars,
            cut: false,
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.left == 0
    }

    /// Appends `text`, controls made visible, as much as the budget allows.
    pub(crate) fn push(&mut self, text: &str) {
        for c in text.chars() {
            if self.left == 0 {
                self.cut = true;
                return;
            }
            self.left -= 1;
            if !unsafe_char(c) {
                self.out.push(c);
                continue;
            }
            match c {
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if (c as u32) < 0x80 => {
                    let _ = write!(self.out, "\\x{:02x}", c as u32);
                }
                c => {
                    let _ = write!(self.out, "\\u{{{:x}}}", c as u32);
                }
            }
        }
    }

    pub(crate) fn finish(mut self) -> String {
        if self.cut {
            self.out.push_str(CUT);
        }
        self.out
    }

    /// Appends a value: strings as they are, arrays and maps inline, nesting bounded.
    pub(crate) fn value(&mut self, value: Option<&AnyValue>, depth: usize) {
        use any_value::Value as V;
        if self.full() {
            self.cut = true;
            return;
        }
        match value.and_then(|v| v.value.as_ref()) {
            Some(V::StringValue(s)) => self.push(s),
            Some(V::BoolValue(b)) => self.push(if *b { "true" } else { "false" }),
            Some(V::IntValue(i)) => self.push(&i.to_string()),
            Some(V::DoubleValue(d)) => self.push(&d.to_string()),
            Some(V::BytesValue(b)) => self.push(&format!("<{} bytes>", b.len())),
            Some(V::StringValueStrindex(i)) => self.push(&format!("<string #{i}>")),
            Some(V::ArrayValue(a)) if depth >= MAX_DEPTH && !a.values.is_empty() => {
                self.push(TOO_DEEP)
            }
            Some(V::KvlistValue(kv)) if depth >= MAX_DEPTH && !kv.values.is_empty() => {
                self.push(TOO_DEEP)
            }
            Some(V::ArrayValue(a)) => {
                self.push("[");
                for (i, v) in a.values.iter().enumerate() {
                    if self.full() {
                        self.cut = true;
                        return;
                    }
                    if i > 0 {
                        self.push(", ");
                    }
                    self.value(Some(v), depth + 1);
                }
                self.push("]");
            }
            Some(V::KvlistValue(kv)) => {
                self.push("{");
                self.attributes(&kv.values, depth + 1, ", ");
                self.push("}");
            }
            None => {}
        }
    }

    /// Appends `key=value` pairs.
    pub(crate) fn attributes(&mut self, attributes: &[KeyValue], depth: usize, separator: &str) {
        for (i, kv) in attributes.iter().enumerate() {
            if self.full() {
                self.cut = true;
                return;
            }
            if i > 0 {
                self.push(separator);
            }
            self.push(&kv.key);
            self.push("=");
            self.value(kv.value.as_ref(), depth);
        }
    }
}

/// `text` bounded to `max` characters, controls made visible.
pub(crate) fn text(text: &str, max: usize) -> String {
    let mut b = Bounded::new(max);
    b.push(text);
    b.finish()
}

/// A value as one bounded line.
pub(crate) fn value(value: Option<&AnyValue>, max: usize) -> String {
    let mut b = Bounded::new(max);
    b.value(value, 0);
    b.finish()
}

/// Attributes as one bounded line of `key=value` joined by `separator`.
pub(crate) fn attributes(attributes: &[KeyValue], max: usize, separator: &str) -> String {
    let mut b = Bounded::new(max);
    b.attributes(attributes, 0, separator);
    b.finish()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    // Ids are 8 or 16 bytes; a hostile one is shown by its first 32.
    let mut out: String = bytes.iter().take(32).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 32 {
        out.push_str(CUT);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_length_is_bounded() {
        assert_eq!(
            text("a\x1b[31mb\u{9b}c\x07\n\u{202e}", 100),
            "a\\x1b[31mb\\u{9b}c\\x07\\n\\u{202e}"
        );
        assert_eq!(text("héllo world", 5), format!("héllo{CUT}"));
        assert_eq!(text("short", 5), "short");
    }

    #[test]
    fn nesting_is_cut_with_a_marker() {
        let mut v = AnyValue {
            value: Some(any_value::Value::StringValue("leaf".into())),
        };
        for _ in 0..50 {
            v = AnyValue {
                value: Some(any_value::Value::ArrayValue(
                    crate::proto::common::v1::ArrayValue { values: vec![v] },
                )),
            };
        }
        let shown = value(Some(&v), 1000);
        assert!(shown.contains(TOO_DEEP), "{shown}");
        assert_eq!(shown.matches('[').count(), MAX_DEPTH + 1, "{shown}");
    }
}
