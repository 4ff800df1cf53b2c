//! Instructions per operation on the app thread: the child runs under valgrind's callgrind,
//! which counts instructions only while [`crate::measure::measured_ops`] is on a thread's stack
//! (collection state is per thread, so the exporter's threads are not counted).

use std::path::Path;
use std::process::Command;

pub fn available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The callgrind command line that runs `exe` with `args`, writing its counts to `out`.
pub fn command(exe: &Path, out: &Path) -> Command {
    let mut command = Command::new("valgrind");
    command.args([
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=*measured_ops*",
        "--separate-threads=no",
    ]);
    command.arg(format!("--callgrind-out-file={}", out.display()));
    command.arg(exe);
    command
}

/// The total instructions callgrind collected (its `summary:` or `totals:` line).
pub fn total(out: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(out).ok()?;
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("summary:").or(l.strip_prefix("totals:")))
        .and_then(|n| n.split_whitespace().next()?.parse().ok())
}
