/// FNV-1a 64 over the relative path and the bytes of every file below `dir`, in path order.
/// Shared by `build.rs` (which refuses to build against stale generated code) and the
/// `proto_in_sync` test (which regenerates that code and records the hash).
fn plain_connect_proto_inputs_hash(dir: &std::path::Path) -> u64 {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("proto/ is readable")
            .map(|e| e.expect("proto/ entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for file in files {
        let relative = file.strip_prefix(dir).expect("below proto/");
        feed(relative.to_string_lossy().replace('\\', "/").as_bytes());
        feed(&std::fs::read(&file).expect("proto file is readable"));
    }
    hash
}
