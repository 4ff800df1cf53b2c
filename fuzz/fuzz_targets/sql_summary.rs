//! SQL summary and sanitising on arbitrary text: never panics, bounded output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plain_connect::fuzzing::{sanitize, summarize};

fuzz_target!(|data: &[u8]| {
    let sql = String::from_utf8_lossy(data);
    let summary = summarize(&sql);
    if let Some(s) = &summary.summary {
        assert!(s.len() <= 255);
    }
    let clean = sanitize(&sql);
    assert!(clean.len() <= sql.len() + 1);
});
