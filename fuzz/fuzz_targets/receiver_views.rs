//! Arbitrary decoded OTLP (traces, metrics, logs) rendered as text and as HTML: no panic, no
//! control character in the terminal view, no markup in the page the template did not write.
#![no_main]

#[path = "../../tests/receiver_oracle/mod.rs"]
mod oracle;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let received = oracle::decode_all(data);
    oracle::check_text(&received);
    oracle::check_html(&received);
});
