//! The workloads, each written once against [`Library`], and how big a child runs them.

use crate::library::{Library, Pipeline, Signal};
use crate::measure::{self, Drive, Report};
use std::time::{Duration, Instant};

pub const BURST: u64 = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Sampled server spans, 3 attributes, back to back.
    SpanFlood,
    /// The same in bursts of 1000 every 10 ms.
    SpanPaced,
    SpanUnsampled,
    /// A server span and a client child span with 3 attributes, per pair.
    ParentChild,
    /// Client spans with 3 attributes under a current server span (one per 1000 children).
    ChildUnderParent,
    /// `log::info!` with one formatted argument, through the library's `log` bridge.
    Log,
    Histogram,
    HistogramBound,
    /// 100 000 sampled spans as fast as they come, default settings.
    Burst,
    /// Sampled spans at `rate` per second, gzip on.
    Sustain {
        rate: u64,
    },
}

const NAMED: [Workload; 9] = [
    Workload::SpanFlood,
    Workload::SpanPaced,
    Workload::SpanUnsampled,
    Workload::ParentChild,
    Workload::ChildUnderParent,
    Workload::Log,
    Workload::Histogram,
    Workload::HistogramBound,
    Workload::Burst,
];

impl Workload {
    pub fn arg(self) -> String {
        match self {
            Workload::Sustain { rate } => format!("Sustain:{rate}"),
            other => format!("{other:?}"),
        }
    }

    pub fn parse(s: &str) -> Option<Workload> {
        if let Some(rate) = s.strip_prefix("Sustain:") {
            return Some(Workload::Sustain {
                rate: rate.parse().ok()?,
            });
        }
        NAMED.into_iter().find(|w| format!("{w:?}") == s)
    }

    pub fn signal(self) -> Signal {
        match self {
            Workload::Log => Signal::Logs,
            Workload::Histogram | Workload::HistogramBound => Signal::Metrics,
            _ => Signal::Traces,
        }
    }

    pub fn pipeline<'a>(self, endpoint: &'a str, service: &'a str) -> Pipeline<'a> {
        Pipeline {
            endpoint,
            service,
            signal: self.signal(),
            sampled: self != Workload::SpanUnsampled,
            gzip: matches!(self, Workload::Sustain { .. }),
        }
    }
}

/// How much a child runs: the full bench, the quick one, or a few batches for an instruction
/// count (deterministic, so one round is enough).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizes {
    Full,
    Quick,
    Instructions,
}

impl Sizes {
    pub fn arg(self) -> &'static str {
        match self {
            Sizes::Full => "full",
            Sizes::Quick => "quick",
            Sizes::Instructions => "instructions",
        }
    }

    pub fn parse(s: &str) -> Option<Sizes> {
        [Sizes::Full, Sizes::Quick, Sizes::Instructions]
            .into_iter()
            .find(|m| m.arg() == s)
    }

    fn drive(self, workload: Workload) -> Drive {
        let (warm_up_batches, rounds, batches_per_round) = match self {
            Sizes::Full => (20, 5, 20),
            Sizes::Quick => (10, 3, 10),
            Sizes::Instructions => (2, 1, 3),
        };
        Drive {
            warm_up_batches,
            rounds,
            batches_per_round,
            period: (workload == Workload::SpanPaced).then_some(Duration::from_millis(10)),
        }
    }

    pub fn sustain_for(self) -> Duration {
        Duration::from_secs(if self == Sizes::Full { 3 } else { 2 })
    }
}

fn db_duration(i: u64) -> f64 {
    0.001 * (i % 50) as f64
}

/// Runs `workload` through `L` in this process and says what it measured.
pub fn run<L: Library>(workload: Workload, pipeline: &Pipeline, sizes: &Sizes) -> Report {
    let lib = L::start(pipeline);
    let drive = sizes.drive(workload);
    let each = |body: &mut dyn FnMut()| body();
    let mut report = match workload {
        Workload::SpanFlood | Workload::SpanPaced | Workload::SpanUnsampled => {
            measure::per_op(&drive, &each, |i| lib.server_span(i))
        }
        Workload::ParentChild => measure::per_op(&drive, &each, |i| {
            lib.under_parent(&mut || lib.child_span(i))
        }),
        Workload::ChildUnderParent => measure::per_op(
            &drive,
            &|batch: &mut dyn FnMut()| lib.under_parent(batch),
            |i| lib.child_span(i),
        ),
        Workload::Log => {
            lib.install_log_bridge();
            measure::per_op(&drive, &each, |i| log::info!("order {i} placed"))
        }
        Workload::Histogram => {
            let histogram = lib.histogram();
            measure::per_op(&drive, &each, |i| L::record(&histogram, db_duration(i)))
        }
        Workload::HistogramBound => {
            let histogram = lib.histogram();
            let bound = L::bind(&histogram);
            measure::per_op(&drive, &each, |i| L::record_bound(&bound, db_duration(i)))
        }
        Workload::Burst => {
            (0..BURST).for_each(|i| lib.server_span(i));
            Report {
                produced: BURST,
                ..Report::default()
            }
        }
        Workload::Sustain { rate } => {
            let started = Instant::now();
            let produced = measure::paced(rate, sizes.sustain_for(), |i| lib.server_span(i));
            Report {
                produced,
                wall_ns_per_op: started.elapsed().as_nanos() as f64 / produced as f64,
                ..Report::default()
            }
        }
    };
    report.app_cpu_ns = measure::thread_cpu_ns();
    let shutdown = Instant::now();
    lib.shutdown();
    report.shutdown_ms = shutdown.elapsed().as_millis() as u64;
    report.process_cpu_ns = measure::process_cpu_ns();
    report.peak_rss_kb = measure::peak_rss_kb();
    report
}
