//! W3C Trace Context: `traceparent` and `tracestate`, parsed strictly, emitted as version 00.
//!
//! Malformed input is ignored (a new trace starts), never a panic.
//!
//! ```
//! use plain_connect::trace::propagation;
//! let parent = propagation::extract(
//!     "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
//!     Some("vendor=opaque"),
//! )
//! .unwrap();
//! assert!(parent.is_sampled() && parent.is_remote());
//! assert_eq!(parent.trace_state(), Some("vendor=opaque"));
//! ```

use super::context::SpanContext;
use super::id::{SpanId, TraceId};
use std::sync::Arc;

/// The fields of a valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TraceParent {
    /// Trace id (non-zero).
    pub trace_id: TraceId,
    /// Parent span id (non-zero).
    pub span_id: SpanId,
    /// Trace flags, kept as received.
    pub flags: u8,
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Parses a `traceparent` value. Version 00 must be exactly 55 characters; a future version
/// (01–fe) is read at the fixed positions and may carry more after a `-`; version ff, uppercase
/// hex, all-zero ids and wrong lengths are invalid.
pub(crate) fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let value = value.trim_matches(is_ows);
    if !value.is_ascii() || value.len() < 55 {
        return None;
    }
    let [version] = lower_hex::<1>(&value[0..2])?;
    if version == 0xff || &value[2..3] != "-" || &value[35..36] != "-" || &value[52..53] != "-" {
        return None;
    }
    match (version, value.len()) {
        (0, 55) => {}
        (0, _) => return None,
        (_, 55) => {}
        (_, _) if value.as_bytes()[55] == b'-' => {}
        _ => return None,
    }
    let trace_id = TraceId::from_bytes(lower_hex::<16>(&value[3..35])?);
    let span_id = SpanId::from_bytes(lower_hex::<8>(&value[36..52])?);
    let [flags] = lower_hex::<1>(&value[53..55])?;
    if !trace_id.is_valid() || !span_id.is_valid() {
        return None;
    }
    Some(TraceParent {
        trace_id,
        span_id,
        flags,
    })
}

/// `00-<trace id>-<span id>-<flags>`, lowercase.
pub(crate) fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.flags()
    )
}

const MAX_MEMBERS: usize = 32;
const MAX_HEADER_CHARS: usize = 512;
const LONG_MEMBER_CHARS: usize = 128;

/// `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`: the key grammar
/// of Trace Context Level 2, which also accepts every Level 1 `tenant@system` key.
fn key_is_valid(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

fn value_is_valid(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|c| (0x20..=0x7e).contains(c) && *c != b',' && *c != b'=')
        && !value.ends_with(' ')
}

/// Combines `tracestate` header values (in order) into one validated value. Any invalid member or
/// more than 32 members invalidates the whole header (`None`). A key seen again keeps its first
/// (leftmost, most recently written) entry: the spec lets a receiver drop such duplicates. Longer
/// than 512 characters, whole members are dropped: first those over 128 characters, then from
/// the right.
pub(crate) fn parse_tracestate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Arc<str>> {
    let mut members: Vec<&str> = Vec::new();
    let mut seen_members = 0usize;
    for header in headers {
        for member in header.split(',') {
            let member = member.trim_matches(is_ows);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            if !key_is_valid(key) || !value_is_valid(value) {
                return None;
            }
            seen_members += 1;
            let key_with_equals = &member[..=key.len()];
            if !members.iter().any(|m| m.starts_with(key_with_equals)) {
                members.push(member);
            }
        }
    }
    if seen_members > MAX_MEMBERS {
        return None;
    }
    let joined_len =
        |m: &[&str]| m.iter().map(|s| s.len()).sum::<usize>() + m.len().saturating_sub(1);
    if joined_len(&members) > MAX_HEADER_CHARS {
        members.retain(|m| m.len() <= LONG_MEMBER_CHARS);
        while joined_len(&members) > MAX_HEADER_CHARS {
            members.pop();
        }
    }
    (!members.is_empty()).then(|| Arc::from(members.join(",")))
}

/// The parent context carried by one `traceparent` and at most one `tracestate` value, or `None`
/// when `traceparent` is invalid (then `tracestate` is ignored too). When the server can hand over
/// every header value, use [`extract_headers`]: a repeated `traceparent` is invalid, and a
/// repeated `tracestate` must be combined.
pub fn extract(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
    extract_all([traceparent], tracestate)
}

/// The parent context carried by every value of the incoming `traceparent` and `tracestate`
/// headers, each in the order received. Anything but exactly one valid `traceparent` is `None`
/// (a new trace starts, and `tracestate` is ignored); the `tracestate` values are combined.
pub(crate) fn extract_all<'a>(
    traceparents: impl IntoIterator<Item = &'a str>,
    tracestates: impl IntoIterator<Item = &'a str>,
) -> Option<SpanContext> {
    let mut traceparents = traceparents.into_iter();
    let traceparent = traceparents.next()?;
    if traceparents.next().is_some() {
        return None;
    }
    let parent = parse_traceparent(traceparent)?;
    Some(
        SpanContext::new_remote(parent.trace_id, parent.span_id, parent.flags)
            .with_trace_state(parse_tracestate(tracestates)),
    )
}

/// The parent context carried by a request's headers, given as `(name, value)` pairs in the order
/// received, a repeated header once per value; names match in any case. Anything but exactly
/// one valid `traceparent` is `None` (a new trace starts, and `tracestate` is ignored); the
/// `tracestate` values are combined.
///
/// ```
/// use plain_connect::trace::propagation;
/// let headers = [
///     ("TraceParent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
///     ("tracestate", "a=1"),
///     ("content-type", "application/json"),
///     ("tracestate", "b=2"),
/// ];
/// let parent = propagation::extract_headers(headers).unwrap();
/// assert_eq!(parent.trace_state(), Some("a=1,b=2"));
/// ```
pub fn extract_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<SpanContext> {
    let mut traceparents: Vec<&str> = Vec::with_capacity(1);
    let mut tracestates: Vec<&str> = Vec::new();
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("traceparent") {
            traceparents.push(value);
        } else if name.eq_ignore_ascii_case("tracestate") {
            tracestates.push(value);
        }
    }
    extract_all(traceparents, tracestates)
}

/// The headers to send with an outgoing request from the current span, as owned `(name, value)`
/// pairs: `traceparent` and, when there is one, `tracestate`; nothing when no valid span is
/// current. Owned, so that a builder taken and returned by value (ureq's, reqwest's) takes them
/// in a loop, and a map or a `&mut` request takes them with `extend` or `insert`:
///
/// ```
/// # struct Builder; impl Builder { fn header(self, _: &str, _: String) -> Self { self } }
/// # let mut builder = Builder;
/// let _span = plain_connect::trace::span("call upstream").start();
/// for (name, value) in plain_connect::trace::propagation::headers() {
///     builder = builder.header(name, value);
/// }
/// ```
pub fn headers() -> impl Iterator<Item = (&'static str, String)> {
    headers_for(&super::current())
}

/// The propagation headers for `context` (none when it is not valid).
pub(crate) fn headers_for(context: &SpanContext) -> impl Iterator<Item = (&'static str, String)> {
    let valid = context.is_valid();
    let traceparent = valid.then(|| ("traceparent", format_traceparent(context)));
    let tracestate = context
        .trace_state()
        .filter(|_| valid)
        .map(|state| ("tracestate", state.to_owned()));
    [traceparent, tracestate].into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn traceparent_vectors() {
        let valid = [
            format!("00-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-00"),
            format!("00-{TRACE}-{SPAN}-ff"),
            format!("  00-{TRACE}-{SPAN}-01\t"),
            format!("01-{TRACE}-{SPAN}-01"),
            format!("cc-{TRACE}-{SPAN}-01-what-the-future-holds"),
            format!("fe-{TRACE}-{SPAN}-09"),
        ];
        for v in &valid {
            let tp = parse_traceparent(v).unwrap_or_else(|| panic!("should accept {v:?}"));
            assert_eq!(tp.trace_id.to_string(), TRACE);
            assert_eq!(tp.span_id.to_string(), SPAN);
        }
        assert_eq!(parse_traceparent(&valid[2]).unwrap().flags, 0xff);
        let invalid = [
            String::new(),
            "garbage".into(),
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
            format!("00-{TRACE}-{}-01", SPAN.to_uppercase()),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}-01 x"),
            format!("00-{}-{SPAN}-01", &TRACE[1..]),
            format!("00-{TRACE}0-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-1"),
            format!("00-{TRACE}-{SPAN}-0g"),
            format!("0-{TRACE}-{SPAN}-01"),
            format!("00_{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}_{SPAN}-01"),
            format!("cc-{TRACE}-{SPAN}-01.future"),
            format!("00-{}-{SPAN}-01", "g".repeat(32)),
            format!("0X-{TRACE}-{SPAN}-01"),
            format!("00-{TRACE}-{SPAN}-01é"),
            format!("é0-{TRACE}-{SPAN}-01"),
        ];
        for v in &invalid {
            assert_eq!(parse_traceparent(v), None, "should reject {v:?}");
        }
    }

    #[test]
    fn future_versions_are_re_emitted_as_00() {
        let ctx = extract(&format!("cc-{TRACE}-{SPAN}-03-more"), None).unwrap();
        assert_eq!(format_traceparent(&ctx), format!("00-{TRACE}-{SPAN}-03"));
    }

    #[test]
    fn tracestate_rules() {
        assert_eq!(
            parse_tracestate(["a=1", "b=2,c=3"]).as_deref(),
            Some("a=1,b=2,c=3")
        );
        assert_eq!(
            parse_tracestate(["a=1,, ,\tb=2 "]).as_deref(),
            Some("a=1,b=2")
        );
        assert_eq!(
            parse_tracestate(["tenant@vendor=x"]).as_deref(),
            Some("tenant@vendor=x")
        );
        assert_eq!(parse_tracestate([""]), None);
        for bad in [
            "A=1",
            "a=",
            "a",
            "a=b=c",
            "@v=1",
            "@foo=1,bar=2",
            "a=1 x=",
            "é=1",
            "a=\u{7f}",
            "foo =1",
            "foo.bar=1",
            "_a=1",
        ] {
            assert_eq!(parse_tracestate([bad]), None, "{bad:?}");
        }
        let members: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_tracestate([members.join(",").as_str()]), None);
        let members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert!(parse_tracestate([members.join(",").as_str()]).is_some());
    }

    #[test]
    fn tracestate_keys_follow_the_level_2_grammar() {
        for key in [
            "foo@",
            "foo@@bar",
            "foo@bar@baz",
            "0tenant@sys",
            &"z".repeat(256),
            &format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            &format!("{}@v", "t".repeat(242)),
            &format!("t@{}", "v".repeat(15)),
        ] {
            let member = format!("{key}=1");
            assert_eq!(
                parse_tracestate(["foo=1", &member]).as_deref(),
                Some(format!("foo=1,{member}").as_str()),
                "{key:?}"
            );
        }
        let too_long = format!("{}=1", "z".repeat(257));
        assert_eq!(parse_tracestate(["foo=1", &too_long]), None);
    }

    #[test]
    fn a_repeated_tracestate_key_keeps_its_first_entry() {
        assert_eq!(parse_tracestate(["foo=1,foo=2"]).as_deref(), Some("foo=1"));
        assert_eq!(
            parse_tracestate(["foo=1", "foo=2"]).as_deref(),
            Some("foo=1")
        );
        assert_eq!(
            parse_tracestate(["a=1,foo=1,b=2", "foo=3,c=4"]).as_deref(),
            Some("a=1,foo=1,b=2,c=4")
        );
        // A key that is a prefix of another is not a duplicate.
        assert_eq!(
            parse_tracestate(["foo=1,foobar=2,foo@x=3"]).as_deref(),
            Some("foo=1,foobar=2,foo@x=3")
        );
        // Duplicates still count toward the 32-member limit of what was received.
        let mut members: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        members.push("k0=again".into());
        assert_eq!(parse_tracestate([members.join(",").as_str()]), None);
    }

    #[test]
    fn extraction_takes_every_header_value() {
        let tp = format!("00-{TRACE}-{SPAN}-01");
        let other = format!("00-{TRACE}-{}-01", "1".repeat(16));
        assert_eq!(extract_all([tp.as_str(), tp.as_str()], ["a=1"]), None);
        assert_eq!(extract_all([tp.as_str(), other.as_str()], []), None);
        assert_eq!(extract_all([], ["a=1"]), None);
        let ctx = extract_all([tp.as_str()], ["a=1", "", "b=2"]).unwrap();
        assert_eq!(ctx.trace_state(), Some("a=1,b=2"));

        let headers = [
            ("TRACEPARENT", tp.as_str()),
            ("trace-parent", other.as_str()),
            ("TraceState", "a=1"),
            ("trace.state", "x=9"),
            ("tracestate", "b=2"),
        ];
        let ctx = extract_headers(headers).unwrap();
        assert_eq!(ctx.span_id().to_string(), SPAN);
        assert_eq!(ctx.trace_state(), Some("a=1,b=2"));
        assert_eq!(
            extract_headers([("traceparent", tp.as_str()), ("Traceparent", tp.as_str())]),
            None
        );
        // An invalid tracestate drops only the tracestate.
        let ctx = extract_headers([("traceparent", tp.as_str()), ("tracestate", "@a=1")]).unwrap();
        assert_eq!(ctx.trace_state(), None);
    }

    #[test]
    fn long_tracestate_drops_long_members_first_then_from_the_right() {
        let long = format!("big={}", "x".repeat(200));
        let mut parts = vec!["a=1".to_string(), long];
        parts.extend((0..20).map(|i| format!("k{i}={}", "v".repeat(20))));
        let out = parse_tracestate([parts.join(",").as_str()]).unwrap();
        assert!(out.len() <= 512);
        assert!(out.starts_with("a=1,k0="));
        assert!(!out.contains("big="));
    }
}
