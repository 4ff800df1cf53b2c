//! An https endpoint whose certificate does not verify (self-signed, in tests/fixtures): the
//! export fails and is counted, nothing is sent in clear, and no HTTP byte — token included —
//! reaches the server.
#![cfg(feature = "tls")]

mod common;

use plain_connect::{trace, Resource, Settings, Telemetry};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Serves TLS with the self-signed certificate; counts handshakes that completed and bytes of
/// application data that arrived.
fn untrusted_tls_server() -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let certs = vec![CertificateDer::from_pem_file(format!("{dir}/self-signed-cert.pem")).unwrap()];
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/self-signed-key.pem")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().unwrap().port()
    );
    let (handshakes, app_bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (h, b) = (handshakes.clone(), app_bytes.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, stream);
            let mut buf = [0u8; 4096];
            if let Ok(n) = tls.read(&mut buf) {
                b.fetch_add(n, Ordering::SeqCst);
            }
            if !tls.conn.is_handshaking() {
                h.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (url, handshakes, app_bytes)
}

#[test]
fn a_certificate_that_does_not_verify_fails_and_nothing_leaks() {
    let (url, handshakes, app_bytes) = untrusted_tls_server();
    let settings = Settings::builder()
        .export_url(&url)
        .export_token("very-secret")
        .retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(20))
                .max_backoff(Duration::from_millis(50))
                .max_elapsed(Duration::from_secs(2)),
        )
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("tls-test", "1")).unwrap();
    trace::span("over tls").start().end();
    telemetry.flush(Duration::from_secs(10)).unwrap();
    let c = telemetry.counters();
    assert_eq!(c.spans.exported, 0, "{c:?}");
    assert_eq!(
        c.spans.dropped_send_failed, 1,
        "a verification failure is a failed send: {c:?}"
    );
    assert_eq!(
        c.requests_failed, 1,
        "not retried: it will not fix itself ({c:?})"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 0);
    assert_eq!(
        app_bytes.load(Ordering::SeqCst),
        0,
        "no HTTP byte (or token) reached the server"
    );
}
