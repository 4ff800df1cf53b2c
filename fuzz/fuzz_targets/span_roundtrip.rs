//! A span with arbitrary names and attribute values encodes to valid OTLP that decodes back to
//! the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plain_connect::proto::collector::trace::v1::ExportTraceServiceRequest;
use plain_connect::proto::common::v1::any_value;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let number = i64::from_le_bytes(data[..8].try_into().unwrap());
    let float = f64::from_le_bytes(data[8..16].try_into().unwrap());
    let text = String::from_utf8_lossy(&data[16..]);
    let mut parts = text.split('\u{1}');
    let name = parts.next().unwrap_or_default();
    let value = parts.next().unwrap_or_default();
    let keys: Vec<&str> = parts.take(200).collect();
    let bytes = plain_connect::fuzzing::encode_span(name, &keys, value, number, float);
    let decoded = ExportTraceServiceRequest::decode(&bytes[..]).expect("our encoding decodes");
    let span = &decoded.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.name, name);
    let literals = plain_connect::fuzzing::LITERAL_KEYS;
    assert_eq!(span.attributes.len(), keys.len() + literals.len());
    let last = &span.attributes[keys.len()..];
    assert!(last.iter().map(|a| a.key.as_str()).eq(literals));
    let int = last[1].value.as_ref().and_then(|v| v.value.as_ref());
    assert_eq!(int, Some(&any_value::Value::IntValue(number)));
    assert_eq!(span.status.as_ref().unwrap().message, value);
});
