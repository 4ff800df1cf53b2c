//! Arbitrary bytes to the receiver's port through a real socket: the answer is HTTP (or
//! nothing), no connection thread panics (the fuzzer aborts on any panic), every slot is freed,
//! and a real exporter is still answered.
#![no_main]

#[path = "../../tests/receiver_oracle/mod.rs"]
mod oracle;

use libfuzzer_sys::fuzz_target;
use plain_connect::receiver::{Receiver, ReceiverOptions};
use std::sync::OnceLock;
use std::time::Duration;

fn receiver() -> &'static Receiver {
    static RECEIVER: OnceLock<Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let mut options = ReceiverOptions::default();
        options.max_body_bytes = 1 << 20;
        options.max_kept_bytes = 4 << 20;
        options.request_timeout = Duration::from_secs(2);
        Receiver::with_options("127.0.0.1:0", options).expect("listen")
    })
}

fuzz_target!(|data: &[u8]| {
    let receiver = receiver();
    oracle::check_http(receiver, data);
    // The receiver's own requests too: a prefix that parses leads the bytes onto a route.
    let mut routed = b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    routed.extend_from_slice(data);
    oracle::check_http(receiver, &routed);
});
