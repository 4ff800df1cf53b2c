//! plain-connect against the official OpenTelemetry SDK (opentelemetry_sdk + opentelemetry-otlp,
//! HTTP protobuf, blocking client, batch processors) and fastrace (+ fastrace-opentelemetry over
//! the same exporter), default settings, same workloads, same loopback receiver, one command:
//!
//!     cargo run --release --manifest-path bench/Cargo.toml             # full run
//!     cargo run --release --manifest-path bench/Cargo.toml -- --quick  # a smaller one
//!     ... -- --only SpanFlood     # the workloads whose name starts so (Span, Sustain, ...)
//!     ... -- --no-instructions                                         # skip valgrind
//!     ... -- --callgrind-dir DIR   # keep each callgrind profile, for callgrind_annotate
//!
//! Each (library, workload, round) runs in its own child process of this binary, so libraries
//! never share a global logger, a background thread or a heap, and peak RSS is per run. The
//! parent owns the counting receiver, alternates the libraries within each round and prints one
//! table: medians of the app thread's CPU time per operation and instructions per operation
//! (callgrind, one run), the ratios, and issue 13's targets with met or missed.

mod counting_receiver;
mod fastrace;
mod instructions;
mod library;
mod measure;
mod ours;
mod sdk;
mod workload;

use library::{Lib, LIBS};
use measure::{median, Report};
use std::process::Command;
use std::time::{Duration, Instant};
use workload::{Sizes, Workload, BURST};

fn child(args: &[String]) {
    let (lib, workload, endpoint, service, sizes) = (
        Lib::parse(&args[0]),
        Workload::parse(&args[1]).expect("a workload"),
        &args[2],
        &args[3],
        Sizes::parse(&args[4]).expect("full, quick or instructions"),
    );
    let report = lib.run(workload, &workload.pipeline(endpoint, service), &sizes);
    println!("{}", report.to_line());
}

/// What one child run measured, with the receiver's count and, under callgrind, instructions.
struct Run {
    report: Report,
    delivered_spans: u64,
    instructions_per_op: Option<f64>,
}

struct Bench {
    exe: std::path::PathBuf,
    endpoint: String,
    tally: counting_receiver::Tally,
    sizes: Sizes,
    run_id: u32,
    /// Where callgrind profiles are kept (`<lib>-<workload>.callgrind`); None: deleted.
    callgrind_dir: Option<std::path::PathBuf>,
}

impl Bench {
    fn run(&mut self, lib: Lib, workload: Workload, count_instructions: bool) -> Run {
        self.run_id += 1;
        let service = format!("bench-{}-{}", lib.arg(), self.run_id);
        let out = match &self.callgrind_dir {
            Some(dir) => dir.join(format!("{}-{}.callgrind", lib.arg(), workload.arg())),
            None => std::env::temp_dir().join(format!(
                "plain-connect-bench-{}-{}.callgrind",
                std::process::id(),
                self.run_id
            )),
        };
        let (mut command, sizes) = if count_instructions {
            (instructions::command(&self.exe, &out), Sizes::Instructions)
        } else {
            (Command::new(&self.exe), self.sizes)
        };
        let output = command
            .arg("child")
            .args([lib.arg(), &workload.arg(), &self.endpoint, &service])
            .arg(sizes.arg())
            .output()
            .expect("child runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let report = stdout
            .lines()
            .rev()
            .find_map(Report::parse)
            .unwrap_or_else(|| {
                panic!(
                    "{lib:?} {workload:?} gave no report: {}",
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        let instructions_per_op = count_instructions
            .then(|| instructions::total(&out))
            .flatten()
            .map(|total| total as f64 / report.measured_ops.max(1) as f64);
        if self.callgrind_dir.is_none() {
            let _ = std::fs::remove_file(&out);
        }
        if workload.signal() == library::Signal::Traces && report.produced > 0 {
            // Children flush before exiting; the receiver counts a request before answering it,
            // but give the last connection a moment anyway.
            std::thread::sleep(Duration::from_millis(50));
        }
        Run {
            report,
            delivered_spans: self.tally.get(&service).spans,
            instructions_per_op,
        }
    }

    /// `rounds` rounds; in each, every library that records `workload`'s signal runs once, the
    /// first library moving on by one each round.
    fn rounds(&mut self, workload: Workload, rounds: usize) -> Vec<(Lib, Vec<Run>)> {
        let libs: Vec<Lib> = LIBS
            .into_iter()
            .filter(|l| l.records(workload.signal()))
            .collect();
        let mut runs: Vec<(Lib, Vec<Run>)> = libs.iter().map(|&l| (l, Vec::new())).collect();
        for round in 0..rounds {
            for k in 0..libs.len() {
                let index = (round + k) % libs.len();
                let run = self.run(libs[index], workload, false);
                runs[index].1.push(run);
            }
        }
        runs
    }
}

/// A library's figures for one table row; `None` where it does not record that signal.
type Cells = [Option<Figure>; 3];

#[derive(Clone, Copy, Default)]
struct Figure {
    /// The figure the ratio and the target use (lower is better unless `higher_is_better`).
    value: f64,
    instructions: Option<f64>,
}

fn per_op_text(figure: &Figure) -> String {
    let ns = if figure.value < 100.0 {
        format!("{:.1} ns", figure.value)
    } else {
        format!("{:.0} ns", figure.value)
    };
    match figure.instructions {
        Some(i) => format!("{ns} · {i:.0} instr"),
        None => ns,
    }
}

#[derive(Clone, Copy)]
enum Target {
    /// The SDK costs at least this many times ours.
    SdkTimes(f64),
    /// Ours costs no more than fastrace.
    AtMostFastrace,
}

impl Target {
    fn text(self) -> String {
        match self {
            Target::SdkTimes(x) => format!("SDK/ours ≥ {x}x"),
            Target::AtMostFastrace => "fastrace/ours ≥ 1x".into(),
        }
    }

    /// Whether `ratio_of` (SDK/ours or fastrace/ours, by the measure it is handed) meets it.
    fn met(self, ratio_of: impl Fn(Lib) -> Option<f64>) -> Option<bool> {
        match self {
            Target::SdkTimes(x) => ratio_of(Lib::Sdk).map(|r| r >= x),
            Target::AtMostFastrace => ratio_of(Lib::Fastrace).map(|r| r >= 1.0),
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "missed",
        None => "–",
    }
}

struct Table {
    lines: Vec<String>,
}

impl Table {
    fn new() -> Table {
        Table {
            lines: vec![
                "| workload | plain-connect | SDK 0.33 | fastrace 0.7 | SDK/ours | fastrace/ours | target | met? |".into(),
                "|---|---:|---:|---:|---:|---:|---|---|".into(),
            ],
        }
    }

    fn row(&mut self, cells: [String; 8]) {
        let line = format!("| {} |", cells.join(" | "));
        println!("{line}");
        self.lines.push(line);
    }
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or("–".into(), |r| format!("{r:.1}x"))
}

/// Other library's figure over ours, by the figure `pick` takes (None where either is missing).
fn ratio(cells: &Cells, other: Lib, pick: impl Fn(&Figure) -> Option<f64>) -> Option<f64> {
    let ours = cells[0].as_ref().and_then(&pick)?;
    let theirs = cells[other as usize].as_ref().and_then(&pick)?;
    (ours > 0.0 && theirs > 0.0).then(|| theirs / ours)
}

/// The per-operation row: CPU ns and instructions, both ratios, the target judged on CPU time
/// (and said when instructions judge otherwise).
fn per_op_row(table: &mut Table, label: &str, cells: &Cells, target: Target) {
    let cpu = |lib: Lib| ratio(cells, lib, |f| Some(f.value));
    let instr = |lib: Lib| ratio(cells, lib, |f| f.instructions);
    let both = |lib: Lib| match (cpu(lib), instr(lib)) {
        (None, _) => "–".to_string(),
        (Some(c), None) => ratio_text(Some(c)),
        (Some(c), Some(i)) => format!("{} · {}", ratio_text(Some(c)), ratio_text(Some(i))),
    };
    let by_cpu = target.met(cpu);
    let by_instructions = target.met(instr);
    let mut met = verdict(by_cpu).to_string();
    if by_instructions.is_some() && by_instructions != by_cpu {
        met += &format!(
            " (instructions: {})",
            verdict(by_instructions).trim_matches('*')
        );
    }
    table.row([
        label.into(),
        cells[0].as_ref().map_or("–".into(), per_op_text),
        cells[1].as_ref().map_or("–".into(), per_op_text),
        cells[2].as_ref().map_or("–".into(), per_op_text),
        both(Lib::Sdk),
        both(Lib::Fastrace),
        target.text(),
        met,
    ]);
}

const PER_OP_ROWS: [(&str, Workload, Target); 8] = [
    (
        "sampled server span, 3 attributes, flood",
        Workload::SpanFlood,
        Target::SdkTimes(4.0),
    ),
    (
        "same, paced (bursts of 1000 every 10 ms)",
        Workload::SpanPaced,
        Target::SdkTimes(4.0),
    ),
    (
        "unsampled span",
        Workload::SpanUnsampled,
        Target::SdkTimes(10.0),
    ),
    (
        "parent + child span (per pair)",
        Workload::ParentChild,
        Target::SdkTimes(4.0),
    ),
    (
        "child span, 3 attributes, under a current parent",
        Workload::ChildUnderParent,
        Target::AtMostFastrace,
    ),
    (
        "INFO log record through the `log` bridge",
        Workload::Log,
        Target::SdkTimes(3.0),
    ),
    (
        "histogram record, 3 attributes",
        Workload::Histogram,
        Target::SdkTimes(3.0),
    ),
    (
        "histogram, bound handle (SDK: its experimental bound instrument)",
        Workload::HistogramBound,
        Target::SdkTimes(2.0),
    ),
];

/// The rates tried for the highest rate sustained with nothing lost: up from the first while
/// nothing is lost, or down from it while something is.
const SUSTAIN_RATES: [u64; 12] = [
    25_000, 50_000, 100_000, 200_000, 300_000, 400_000, 600_000, 800_000, 1_000_000, 1_200_000,
    1_500_000, 2_000_000,
];
const SUSTAIN_FIRST: usize = 2;
/// The longest flush after production that still counts as the exporter keeping up.
const MAX_BACKLOG_MS: u64 = 500;

/// `n` with a thin space between groups of three digits.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Every argument is a known flag (and those taking a value have one): `Err(None)` for `--help`,
/// `Err(Some(arg))` for the first argument that is not, so a typo never starts a long run.
fn check_flags(args: &[String]) -> Result<(), Option<&str>> {
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--quick" | "--no-instructions" => {}
            "--only" | "--callgrind-dir" => {
                rest.next().ok_or(Some(arg.as_str()))?;
            }
            "--help" | "-h" => return Err(None),
            other => return Err(Some(other)),
        }
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        return child(&args[1..]);
    }
    if let Err(unknown) = check_flags(&args) {
        let usage = "usage: plain-connect-bench [--quick] [--only PREFIX] [--no-instructions] \
                     [--callgrind-dir DIR]";
        return match unknown {
            None => println!("{usage}"),
            Some(flag) => {
                eprintln!("unknown argument, or a flag without its value: {flag:?}\n{usage}");
                std::process::exit(2);
            }
        };
    }
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let runs = |workload: Workload| only.as_ref().is_none_or(|o| workload.arg().starts_with(o));
    let count_instructions =
        !args.iter().any(|a| a == "--no-instructions") && instructions::available();
    let callgrind_dir = args
        .iter()
        .position(|a| a == "--callgrind-dir")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from);
    if let Some(dir) = &callgrind_dir {
        std::fs::create_dir_all(dir).expect("callgrind directory");
    }
    let (endpoint, tally) = counting_receiver::start();
    let sizes = if quick { Sizes::Quick } else { Sizes::Full };
    let mut bench = Bench {
        exe: std::env::current_exe().expect("own path"),
        endpoint,
        tally,
        sizes,
        run_id: 0,
        callgrind_dir,
    };
    let rounds = if quick { 3 } else { 7 };
    let started = Instant::now();
    println!(
        "plain-connect {} vs opentelemetry_sdk 0.33 + opentelemetry-otlp 0.33 (HTTP protobuf, blocking reqwest, batch processors) \
         and fastrace 0.7 + fastrace-opentelemetry 0.19 (same exporter); default settings",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "{} cores; app-thread CPU time per op: median of {rounds} rounds (libraries alternated per round), each a child's median of its own rounds; \
         instructions per op on the app thread: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if count_instructions { "callgrind, one run of 3000 ops after 2000 warm-up" } else { "not counted" }
    );
    println!(
        "command: cargo run --release --manifest-path bench/Cargo.toml{}{}; load average at start: {}",
        if args.is_empty() { "" } else { " -- " },
        args.join(" "),
        load_average()
    );
    println!();
    let mut table = Table::new();
    for line in &table.lines {
        println!("{line}");
    }
    for (label, workload, target) in PER_OP_ROWS {
        if !runs(workload) {
            continue;
        }
        let mut cells: Cells = [None; 3];
        for (lib, runs) in bench.rounds(workload, rounds) {
            let mut cpu: Vec<f64> = runs.iter().map(|r| r.report.cpu_ns_per_op).collect();
            let instructions = if count_instructions {
                bench.run(lib, workload, true).instructions_per_op
            } else {
                None
            };
            cells[lib as usize] = Some(Figure {
                value: median(&mut cpu),
                instructions,
            });
        }
        per_op_row(&mut table, label, &cells, target);
    }
    if runs(Workload::Burst) {
        burst_row(&mut bench, &mut table, if quick { 1 } else { 3 });
    }
    if runs(Workload::Sustain { rate: 0 }) {
        sustain_rows(&mut bench, &mut table);
    }
    println!();
    println!(
        "({} s; load average at the end: {})",
        started.elapsed().as_secs(),
        load_average()
    );
}

/// The 1, 5 and 15 minute load averages: how much else wanted the cores meanwhile.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn burst_row(bench: &mut Bench, table: &mut Table, rounds: usize) {
    let mut cells: [String; 3] = Default::default();
    let mut ours_met = None;
    for (lib, runs) in bench.rounds(Workload::Burst, rounds) {
        let mut delivered: Vec<f64> = runs
            .iter()
            .map(|r| 100.0 * r.delivered_spans as f64 / BURST as f64)
            .collect();
        let mut rss: Vec<f64> = runs
            .iter()
            .map(|r| r.report.peak_rss_kb as f64 / 1024.0)
            .collect();
        let (delivered, rss) = (median(&mut delivered), median(&mut rss));
        cells[lib as usize] = format!("{delivered:.0} % · {rss:.1} MiB");
        if lib == Lib::Ours {
            ours_met = Some(delivered >= 100.0 && rss <= 24.0);
        }
    }
    let [ours, sdk, fastrace] = cells;
    table.row([
        "100k-span burst, default settings: delivered · peak RSS".into(),
        ours,
        sdk,
        fastrace,
        "–".into(),
        "–".into(),
        "100 % · ≤ 24 MiB".into(),
        verdict(ours_met).into(),
    ]);
}

/// Steps the rate up until a run loses anything or falls behind; returns the last rate that kept
/// up with nothing lost, with the exporter's CPU time (all but the app thread) per delivered span
/// at that rate.
fn highest_zero_loss_rate(bench: &mut Bench, lib: Lib) -> (u64, Option<f64>) {
    let mut lossless = |rate| {
        let run = bench.run(lib, Workload::Sustain { rate }, false);
        let exporter_ns = run
            .report
            .process_cpu_ns
            .saturating_sub(run.report.app_cpu_ns);
        eprintln!(
            "{} at {rate} spans/s: {} of {} delivered, flushed in {} ms",
            lib.arg(),
            run.delivered_spans,
            run.report.produced,
            run.report.shutdown_ms
        );
        // Sustained: nothing lost, and the exporter kept up (a queue can hide a rate the
        // exporter cannot keep for a few seconds; its backlog then takes the flush long).
        (run.delivered_spans >= run.report.produced && run.report.shutdown_ms <= MAX_BACKLOG_MS)
            .then(|| exporter_ns as f64 / run.delivered_spans.max(1) as f64)
    };
    let mut best = (0, None);
    if let Some(exporter_ns) = lossless(SUSTAIN_RATES[SUSTAIN_FIRST]) {
        best = (SUSTAIN_RATES[SUSTAIN_FIRST], Some(exporter_ns));
        for &rate in &SUSTAIN_RATES[SUSTAIN_FIRST + 1..] {
            match lossless(rate) {
                Some(exporter_ns) => best = (rate, Some(exporter_ns)),
                None => break,
            }
        }
    } else {
        for &rate in SUSTAIN_RATES[..SUSTAIN_FIRST].iter().rev() {
            if let Some(exporter_ns) = lossless(rate) {
                best = (rate, Some(exporter_ns));
                break;
            }
        }
    }
    best
}

fn sustain_rows(bench: &mut Bench, table: &mut Table) {
    let mut rates: Cells = [None; 3];
    let mut exporter: Cells = [None; 3];
    for lib in LIBS {
        let (rate, exporter_ns) = highest_zero_loss_rate(bench, lib);
        rates[lib as usize] = Some(Figure {
            value: rate as f64,
            ..Figure::default()
        });
        exporter[lib as usize] = exporter_ns.map(|ns| Figure {
            value: ns,
            ..Figure::default()
        });
    }
    let value = |f: &Figure| Some(f.value);
    let rate_text = |f: &Option<Figure>| {
        f.map_or("–".into(), |f| {
            format!("{} spans/s", grouped(f.value as u64))
        })
    };
    // A higher rate is better: ours over theirs.
    let rate_ratio = |lib| ratio(&rates, lib, value).map(|r| 1.0 / r);
    table.row([
        "highest rate sustained with nothing lost, gzip on".into(),
        rate_text(&rates[0]),
        rate_text(&rates[1]),
        rate_text(&rates[2]),
        ratio_text(rate_ratio(Lib::Sdk)).replace('x', "x (ours/SDK)"),
        ratio_text(rate_ratio(Lib::Fastrace)).replace('x', "x (ours/fastrace)"),
        "≥ 1 000 000 spans/s".into(),
        verdict(rates[0].map(|f| f.value >= 1_000_000.0)).into(),
    ]);
    let ns_text = |f: &Option<Figure>| f.map_or("–".into(), |f| format!("{:.0} ns", f.value));
    table.row([
        "exporter (non-app) CPU per delivered span, at that rate".into(),
        ns_text(&exporter[0]),
        ns_text(&exporter[1]),
        ns_text(&exporter[2]),
        ratio_text(ratio(&exporter, Lib::Sdk, value)),
        ratio_text(ratio(&exporter, Lib::Fastrace, value)),
        "≤ 500 ns".into(),
        verdict(exporter[0].map(|f| f.value <= 500.0)).into(),
    ]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_and_library_survives_its_argument() {
        for (_, workload, _) in PER_OP_ROWS {
            assert_eq!(Workload::parse(&workload.arg()), Some(workload));
        }
        let sustain = Workload::Sustain { rate: 300_000 };
        assert_eq!(Workload::parse(&sustain.arg()), Some(sustain));
        assert_eq!(Workload::parse("Sustain:x"), None);
        for lib in LIBS {
            assert_eq!(Lib::parse(lib.arg()), lib);
        }
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(25_000), "25 000");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }

    #[test]
    fn targets_are_judged_on_the_ratio_they_name() {
        let figure = |value| {
            Some(Figure {
                value,
                instructions: None,
            })
        };
        let cells: Cells = [figure(100.0), figure(450.0), figure(90.0)];
        let cpu = |lib| ratio(&cells, lib, |f| Some(f.value));
        assert_eq!(Target::SdkTimes(4.0).met(cpu), Some(true));
        assert_eq!(Target::SdkTimes(5.0).met(cpu), Some(false));
        assert_eq!(Target::AtMostFastrace.met(cpu), Some(false));
        let no_fastrace: Cells = [figure(100.0), figure(450.0), None];
        assert_eq!(
            Target::AtMostFastrace.met(|lib| ratio(&no_fastrace, lib, |f| Some(f.value))),
            None
        );
    }

    #[test]
    fn the_callgrind_total_is_read_from_its_summary() {
        let path =
            std::env::temp_dir().join(format!("bench-test-{}.callgrind", std::process::id()));
        std::fs::write(
            &path,
            "events: Ir\nfn=(1) f\n0 12\nsummary: 4594327\ntotals: 4594327\n",
        )
        .unwrap();
        assert_eq!(instructions::total(&path), Some(4_594_327));
        std::fs::remove_file(&path).unwrap();
    }
}
