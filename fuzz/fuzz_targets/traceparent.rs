//! W3C traceparent / tracestate parsing: never panics; what parses re-emits as a valid header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plain_connect::fuzzing::{format_traceparent, parse_tracestate};
use plain_connect::trace::propagation::{extract, extract_headers};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (traceparent, tracestate) = text.split_once('\n').unwrap_or((&text, ""));
    if let Some(context) = extract(traceparent, Some(tracestate)) {
        let emitted = format_traceparent(&context);
        assert_eq!(emitted.len(), 55);
        let again = extract(&emitted, context.trace_state()).expect("re-emitted header parses");
        assert_eq!(again.trace_id(), context.trace_id());
        assert_eq!(again.span_id(), context.span_id());
        assert_eq!(again.trace_state(), context.trace_state());
    }
    if let Some(state) = parse_tracestate(tracestate.split('\r')) {
        assert!(state.len() <= 512 || !state.contains(','));
        assert_eq!(parse_tracestate([&*state]).as_deref(), Some(&*state));
    }
    // A header list as a server hands it over, one `name:value` a line: a context only from
    // exactly one traceparent, and its combined tracestate re-parses to itself.
    let headers: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once(':')).collect();
    if let Some(context) = extract_headers(headers.iter().copied()) {
        let traceparents = headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case("traceparent"))
            .count();
        assert_eq!(traceparents, 1);
        if let Some(state) = context.trace_state() {
            assert_eq!(parse_tracestate([state]).as_deref(), Some(state));
        }
    }
});
