//! Classifying arbitrary endpoint responses (status, Retry-After, body with partial success or
//! google.rpc.Status): never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 600;
    let (retry_after, body) = match data[3..].iter().position(|b| *b == b'\n') {
        Some(i) => (
            Some(String::from_utf8_lossy(&data[3..3 + i]).into_owned()),
            &data[4 + i..],
        ),
        None => (None, &data[3..]),
    };
    let outcome =
        plain_connect::fuzzing::classify_response(data[2], status, retry_after.as_deref(), body);
    assert!(!outcome.is_empty());
});
