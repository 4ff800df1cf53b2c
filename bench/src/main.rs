//! plain-connect against the official OpenTelemetry SDK (opentelemetry_sdk + opentelemetry-otlp,
//! HTTP protobuf, blocking client, batch processors, default settings), same workloads, same
//! loopback receiver, one command:
//!
//!     cargo run --release --manifest-path bench/Cargo.toml            # full run
//!     cargo run --release --manifest-path bench/Cargo.toml -- --quick # fewer rounds
//!
//! Each (library, workload) runs in its own child process of this binary, so the two never share
//! a global logger, a background thread or a heap, and peak RSS is per run. The parent owns the
//! counting receiver and prints one table: median ns/op, the ratio, and delivered/produced.

mod counting_receiver;
mod ours;
mod ours_extra;
mod sdk;
mod sdk_extra;

use std::process::Command;
use std::time::{Duration, Instant};

/// What a child reports on its last stdout line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub ns_per_op: f64,
    pub cpu_ns_per_op: f64,
    pub produced: u64,
    pub peak_rss_kb: u64,
    pub rss_kb: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Span,
    SpanUnsampled,
    SpanDisabled,
    Nested,
    Histogram,
    HistogramBound,
    Log,
    LogFiltered,
    Span2Threads,
    Burst,
    Sustain { rate: u64, gzip: bool },
    Idle,
}

impl Workload {
    fn arg(&self) -> String {
        match self {
            Workload::Sustain { rate, gzip } => format!("sustain:{rate}:{gzip}"),
            other => format!("{other:?}"),
        }
    }
    fn parse(s: &str) -> Workload {
        if let Some(rest) = s.strip_prefix("sustain:") {
            let (rate, gzip) = rest.split_once(':').unwrap();
            return Workload::Sustain {
                rate: rate.parse().unwrap(),
                gzip: gzip == "true",
            };
        }
        [
            Workload::Span,
            Workload::SpanUnsampled,
            Workload::SpanDisabled,
            Workload::Nested,
            Workload::Histogram,
            Workload::HistogramBound,
            Workload::Log,
            Workload::LogFiltered,
            Workload::Span2Threads,
            Workload::Burst,
            Workload::Idle,
        ]
        .into_iter()
        .find(|w| format!("{w:?}") == s)
        .unwrap_or_else(|| panic!("unknown workload {s}"))
    }
}

pub const BURST: u64 = 100_000;

/// CPU time this thread has run, in ns: excludes time the thread waited for a core while the
/// exporter or the receiver had it.
fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::try_now()
        .map(|t| t.as_duration().as_nanos() as u64)
        .unwrap_or(0)
}

thread_local! {
    static CPU_SAMPLES: std::cell::RefCell<Vec<f64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The median app-thread CPU ns/op of the last `median_ns` call on this thread.
pub fn last_cpu_ns() -> f64 {
    CPU_SAMPLES.with(|c| {
        let mut v = c.borrow().clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    })
}

/// Median wall ns per call of `op` over `rounds` rounds of `per_round` calls, after a warm-up
/// (the median thread-CPU ns/op is kept for [`last_cpu_ns`]).
pub fn median_ns(rounds: usize, per_round: u64, mut op: impl FnMut(u64)) -> f64 {
    for i in 0..per_round {
        op(i);
    }
    let mut cpu = Vec::with_capacity(rounds);
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let cpu_start = thread_cpu_ns();
            let started = Instant::now();
            for i in 0..per_round {
                op(i);
            }
            let wall = started.elapsed().as_nanos() as f64 / per_round as f64;
            cpu.push((thread_cpu_ns() - cpu_start) as f64 / per_round as f64);
            wall
        })
        .collect();
    CPU_SAMPLES.with(|c| *c.borrow_mut() = cpu);
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

/// Runs `op` from `threads` threads at once; the median per-thread ns/op.
pub fn median_ns_threads(threads: usize, rounds: usize, per_round: u64, op: fn(u64)) -> f64 {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                median_ns(rounds, per_round, op)
            })
        })
        .collect();
    let mut per_thread: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    per_thread.sort_by(|a, b| a.total_cmp(b));
    per_thread[per_thread.len() / 2]
}

/// Produces `rate` items per second for `seconds`, pacing in 1 ms slices.
pub fn paced(rate: u64, seconds: u64, mut op: impl FnMut(u64)) -> u64 {
    let started = Instant::now();
    let total = rate * seconds;
    let mut done = 0;
    while done < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while done < due {
            op(done);
            done += 1;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    done
}

fn proc_status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

pub fn finish(mut report: Report) -> Report {
    if report.ns_per_op > 0.0 && report.cpu_ns_per_op == 0.0 {
        report.cpu_ns_per_op = last_cpu_ns();
    }
    report.peak_rss_kb = proc_status_kb("VmHWM:");
    report.rss_kb = proc_status_kb("VmRSS:");
    report
}

pub struct Quick(pub bool);

impl Quick {
    pub fn rounds(&self) -> usize {
        if self.0 {
            5
        } else {
            15
        }
    }
    pub fn per_round(&self) -> u64 {
        if self.0 {
            5_000
        } else {
            20_000
        }
    }
}

fn child(args: &[String]) {
    let (lib, workload, endpoint, service, quick) = (
        args[0].as_str(),
        Workload::parse(&args[1]),
        args[2].clone(),
        args[3].clone(),
        Quick(args.get(4).is_some_and(|a| a == "quick")),
    );
    let report = match lib {
        "ours" => ours::run(workload, &endpoint, &service, &quick),
        "sdk" => sdk::run(workload, &endpoint, &service, &quick),
        _ => panic!("unknown library {lib}"),
    };
    println!(
        "REPORT {} {} {} {} {}",
        report.ns_per_op, report.produced, report.peak_rss_kb, report.rss_kb, report.cpu_ns_per_op
    );
}

struct Runner {
    exe: std::path::PathBuf,
    endpoint: String,
    tally: counting_receiver::Tally,
    quick: bool,
    run_id: u32,
}

impl Runner {
    /// Runs one child; returns its report and what the receiver counted for it.
    fn run(&mut self, lib: &str, workload: Workload) -> (Report, counting_receiver::Counts) {
        self.run_id += 1;
        let service = format!("bench-{lib}-{}", self.run_id);
        let output = Command::new(&self.exe)
            .arg("child")
            .args([lib, &workload.arg(), &self.endpoint, &service])
            .arg(if self.quick { "quick" } else { "full" })
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("REPORT "))
            .unwrap_or_else(|| {
                panic!(
                    "{lib} {workload:?} gave no report: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let f: Vec<f64> = line[7..].split(' ').map(|x| x.parse().unwrap()).collect();
        let report = Report {
            ns_per_op: f[0],
            produced: f[1] as u64,
            peak_rss_kb: f[2] as u64,
            rss_kb: f[3] as u64,
            cpu_ns_per_op: f[4],
        };
        // Children flush before exiting; give the receiver a moment to count the last request.
        std::thread::sleep(Duration::from_millis(200));
        (report, self.tally.get(&service))
    }
}

fn ratio(sdk: f64, ours: f64) -> String {
    if ours > 0.0 && sdk > 0.0 {
        format!("{:.1}x", sdk / ours)
    } else {
        "-".into()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("serve") {
        // Just the counting receiver, for profiling a child on its own.
        let (endpoint, _tally) = counting_receiver::start();
        println!("{endpoint}");
        std::thread::sleep(Duration::from_secs(3600));
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only Span` runs just that micro workload (for profiling).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|w| Workload::parse(w));
    let (endpoint, tally) = counting_receiver::start();
    let mut runner = Runner {
        exe: std::env::current_exe().unwrap(),
        endpoint,
        tally,
        quick,
        run_id: 0,
    };
    println!("plain-connect {} vs opentelemetry_sdk 0.33 + opentelemetry-otlp 0.33 (HTTP protobuf, blocking reqwest, batch processors)", env!("CARGO_PKG_VERSION"));
    println!(
        "machine: {} cores; medians of {} rounds",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if quick { 5 } else { 15 }
    );
    println!();
    println!("| workload | plain-connect ns/op | SDK ns/op | SDK/ours | plain-connect app-thread CPU ns/op | SDK app-thread CPU ns/op | SDK/ours (CPU) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let micro = [
        ("1. sampled server span, 3 attributes", Workload::Span),
        ("2a. unsampled span (rate 0)", Workload::SpanUnsampled),
        (
            "2b. export disabled (no token / no provider)",
            Workload::SpanDisabled,
        ),
        ("3. parent span + child DB span", Workload::Nested),
        ("4a. histogram record, 3 attributes", Workload::Histogram),
        (
            "4b. histogram record, bound handle (SDK: unbound)",
            Workload::HistogramBound,
        ),
        ("5. INFO log record, 1 formatted argument", Workload::Log),
        ("5b. DEBUG record under the INFO floor, app logger verbose (SDK column: `log`'s own level check)", Workload::LogFiltered),
        (
            "6. workload 1 on 2 threads (per-thread ns/op)",
            Workload::Span2Threads,
        ),
    ];
    for (label, workload) in micro {
        if only.is_some_and(|o| o != workload) {
            continue;
        }
        let (ours, _) = runner.run("ours", workload);
        let (sdk, _) = runner.run("sdk", workload);
        let cpu = |ns: f64| {
            if ns > 0.0 {
                format!("{ns:.1}")
            } else {
                "-".into()
            }
        };
        println!(
            "| {label} | {:.1} | {:.1} | {} | {} | {} | {} |",
            ours.ns_per_op,
            sdk.ns_per_op,
            ratio(sdk.ns_per_op, ours.ns_per_op),
            cpu(ours.cpu_ns_per_op),
            cpu(sdk.cpu_ns_per_op),
            ratio(sdk.cpu_ns_per_op, ours.cpu_ns_per_op)
        );
    }

    if only.is_some() {
        return;
    }
    println!();
    println!("| delivery | plain-connect | SDK |");
    println!("|---|---:|---:|");
    let (ours, ours_counts) = runner.run("ours", Workload::Burst);
    let (sdk, sdk_counts) = runner.run("sdk", Workload::Burst);
    println!(
        "| 7a. 100k-span burst, default settings: delivered | {} / {} ({:.0}%) | {} / {} ({:.0}%) |",
        ours_counts.spans,
        ours.produced,
        100.0 * ours_counts.spans as f64 / ours.produced.max(1) as f64,
        sdk_counts.spans,
        sdk.produced,
        100.0 * sdk_counts.spans as f64 / sdk.produced.max(1) as f64
    );
    println!(
        "| 8a. peak RSS during the burst | {} MiB | {} MiB |",
        ours.peak_rss_kb / 1024,
        sdk.peak_rss_kb / 1024
    );
    let (ours_idle, _) = runner.run("ours", Workload::Idle);
    let (sdk_idle, _) = runner.run("sdk", Workload::Idle);
    println!(
        "| 8b. idle RSS, pipeline initialised | {} MiB | {} MiB |",
        ours_idle.rss_kb / 1024,
        sdk_idle.rss_kb / 1024
    );
    for gzip in [false, true] {
        let ours_best = highest_zero_loss_rate(&mut runner, "ours", gzip);
        let sdk_best = highest_zero_loss_rate(&mut runner, "sdk", gzip);
        println!(
            "| 7b. highest rate sustained 3 s with nothing dropped, gzip {} | {} spans/s | {} spans/s |",
            if gzip { "on" } else { "off" },
            ours_best,
            sdk_best
        );
    }
}

/// Steps the rate up until a 3-second run loses anything; returns the last rate that lost nothing.
fn highest_zero_loss_rate(runner: &mut Runner, lib: &str, gzip: bool) -> u64 {
    let rates: &[u64] = &[
        25_000, 50_000, 100_000, 200_000, 300_000, 400_000, 600_000, 800_000, 1_200_000,
    ];
    let mut best = 0;
    for &rate in rates {
        let (report, counts) = runner.run(lib, Workload::Sustain { rate, gzip });
        if counts.spans < report.produced {
            break;
        }
        best = rate;
    }
    best
}
