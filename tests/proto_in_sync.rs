//! The prost code under `src/proto/` is generated from the vendored `.proto` files and checked in,
//! so that building the crate needs neither `protoc` nor a proto parser. This test regenerates it
//! with a pure-Rust parser (protox) and fails if the checked-in copy differs.
//!
//! After changing `proto/`: `PLAIN_CONNECT_REGENERATE_PROTO=1 cargo test --test proto_in_sync`.

use std::path::{Path, PathBuf};

const PROTO_FILES: &[&str] = &[
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
    "opentelemetry/proto/collector/metrics/v1/metrics_service.proto",
    "opentelemetry/proto/collector/logs/v1/logs_service.proto",
];

const GENERATED: &[&str] = &[
    "opentelemetry.proto.collector.logs.v1.rs",
    "opentelemetry.proto.collector.metrics.v1.rs",
    "opentelemetry.proto.collector.trace.v1.rs",
    "opentelemetry.proto.common.v1.rs",
    "opentelemetry.proto.logs.v1.rs",
    "opentelemetry.proto.metrics.v1.rs",
    "opentelemetry.proto.resource.v1.rs",
    "opentelemetry.proto.trace.v1.rs",
];

fn generate_into(out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let proto_dir = root.join("proto");
    let files: Vec<PathBuf> = PROTO_FILES.iter().map(|f| proto_dir.join(f)).collect();
    let descriptors = protox::compile(&files, [&proto_dir]).expect("vendored protos compile");
    let mut config = prost_build::Config::new();
    config.out_dir(out);
    config.skip_debug(std::iter::empty::<String>());
    config
        .compile_fds(descriptors)
        .expect("prost-build generates code");
    for name in GENERATED {
        let path = out.join(name);
        let code = std::fs::read_to_string(&path).expect("generated file");
        std::fs::write(&path, tag_code_fences_as_text(&code)).unwrap();
    }
}

/// The protos' comments carry examples in untagged code fences and in indented blocks, which
/// rustdoc would compile as Rust doctests; fencing them as `text` keeps the docs, skips the tests.
fn tag_code_fences_as_text(code: &str) -> String {
    let mut in_fence = false;
    let mut in_indented = false;
    let mut out = String::with_capacity(code.len() + 1024);
    for line in code.split_inclusive('\n') {
        let indent = &line[..line.len() - line.trim_start().len()];
        let doc = line.trim_start().strip_prefix("///");
        let indented_code =
            !in_fence && doc.is_some_and(|d| d.starts_with("     ") && !d.trim().is_empty());
        if in_indented && !indented_code {
            out.push_str(&format!("{indent}/// ```\n"));
            in_indented = false;
        }
        if indented_code && !in_indented {
            out.push_str(&format!("{indent}/// ```text\n"));
            in_indented = true;
        }
        match doc.map(str::trim) {
            Some("```") if !in_fence => {
                out.push_str(&format!("{indent}/// ```text\n"));
                in_fence = true;
            }
            Some(d) if d.starts_with("```") => {
                in_fence = !in_fence;
                out.push_str(line);
            }
            _ => out.push_str(line),
        }
    }
    out
}

#[test]
fn generated_code_matches_vendored_protos() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checked_in = root.join("src/proto");
    let scratch = std::env::temp_dir().join(format!("plain-connect-proto-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    generate_into(&scratch);

    let regenerate = std::env::var_os("PLAIN_CONNECT_REGENERATE_PROTO").is_some();
    let mut stale = Vec::new();
    for name in GENERATED {
        let fresh = std::fs::read_to_string(scratch.join(name)).expect("generated file exists");
        let path = checked_in.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if fresh != current {
            if regenerate {
                std::fs::write(&path, &fresh).unwrap();
            }
            stale.push(*name);
        }
    }
    let inputs_hash = format!(
        "{:016x}\n",
        plain_connect_proto_inputs_hash(&root.join("proto"))
    );
    let hash_path = checked_in.join("proto-inputs.hash");
    if std::fs::read_to_string(&hash_path).unwrap_or_default() != inputs_hash {
        if regenerate {
            std::fs::write(&hash_path, &inputs_hash).unwrap();
        }
        stale.push("proto-inputs.hash");
    }
    std::fs::remove_dir_all(&scratch).ok();
    assert!(
        regenerate || stale.is_empty(),
        "checked-in protobuf code is stale: {stale:?}; run \
         `PLAIN_CONNECT_REGENERATE_PROTO=1 cargo test --test proto_in_sync`"
    );
}

// The same hash build.rs checks (FNV-1a 64 over every file's relative path and bytes, sorted).
include!("../build/proto_inputs_hash.rs");
