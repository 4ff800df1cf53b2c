//! No code generation happens here: the prost code in `src/proto/` is checked in (see the README's
//! design section). This script only refuses to build when `proto/` no longer matches the hash the
//! code was generated from, so a changed .proto can never ship with stale Rust types.

include!("build/proto_inputs_hash.rs");

fn main() {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let proto = root.join("proto");
    // The toolchain, for the `process.runtime.*` resource attributes (empty if rustc cannot run).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .unwrap_or_default();
    println!(
        "cargo:rustc-env=PLAIN_CONNECT_RUSTC_VERSION={}",
        version.trim()
    );
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=src/proto/proto-inputs.hash");
    let recorded =
        std::fs::read_to_string(root.join("src/proto/proto-inputs.hash")).unwrap_or_default();
    let actual = format!("{:016x}", plain_connect_proto_inputs_hash(&proto));
    if recorded.trim() != actual {
        panic!(
            "proto/ changed since src/proto/ was generated (hash {actual}, recorded {}); run \
             `PLAIN_CONNECT_REGENERATE_PROTO=1 cargo test --test proto_in_sync`",
            recorded.trim()
        );
    }
}
