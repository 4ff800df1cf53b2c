//! The standalone receiver binary: listens where told, shows what arrived, exits 0 when asked.
#![cfg(feature = "receiver")]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn the_binary_listens_shows_and_exits_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let html = std::env::temp_dir().join(format!("plain-connect-receiver-{port}.html"));
    let child = Command::new(env!("CARGO_BIN_EXE_plain-connect-receiver"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--exit-after",
            "2",
            "--html",
        ])
        .arg(&html)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // A foreign exporter's empty-but-valid request: an ExportLogsServiceRequest with no records.
    let mut sent = false;
    for _ in 0..50 {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            stream
                .write_all(b"POST /v1/logs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            sent = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sent, "the receiver never listened");
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stdout}"
    );
    assert!(stdout.contains("1 requests (0 rejected)"), "{stdout}");
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .starts_with("<!doctype html>"));
    let _ = std::fs::remove_file(html);
}
