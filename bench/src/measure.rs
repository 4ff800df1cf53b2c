//! Clocks, the measured loop and what a child reports.

use std::time::{Duration, Instant};

/// Operations run back to back in one measured call; clocks are read around each batch.
pub const BATCH: u64 = 1000;

/// What a child reports on its last stdout line, as `key=value` pairs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    /// Median over the child's rounds of the app thread's CPU time per operation.
    pub cpu_ns_per_op: f64,
    pub wall_ns_per_op: f64,
    /// Operations run inside [`measured_ops`] (what an instruction count is divided by).
    pub measured_ops: u64,
    /// Spans produced (burst and sustained workloads).
    pub produced: u64,
    pub peak_rss_kb: u64,
    /// The app thread's CPU time up to the end of production.
    pub app_cpu_ns: u64,
    /// The whole process's CPU time after shutdown, exporter threads included.
    pub process_cpu_ns: u64,
    /// How long shutdown took to flush what was still queued when production ended.
    pub shutdown_ms: u64,
}

impl Report {
    pub fn to_line(self) -> String {
        format!(
            "REPORT cpu={} wall={} ops={} produced={} peak_rss_kb={} app_cpu={} process_cpu={} shutdown_ms={}",
            self.cpu_ns_per_op,
            self.wall_ns_per_op,
            self.measured_ops,
            self.produced,
            self.peak_rss_kb,
            self.app_cpu_ns,
            self.process_cpu_ns,
            self.shutdown_ms
        )
    }

    pub fn parse(line: &str) -> Option<Report> {
        let mut report = Report::default();
        for pair in line.strip_prefix("REPORT ")?.split(' ') {
            let (key, value) = pair.split_once('=')?;
            let number: f64 = value.parse().ok()?;
            match key {
                "cpu" => report.cpu_ns_per_op = number,
                "wall" => report.wall_ns_per_op = number,
                "ops" => report.measured_ops = number as u64,
                "produced" => report.produced = number as u64,
                "peak_rss_kb" => report.peak_rss_kb = number as u64,
                "app_cpu" => report.app_cpu_ns = number as u64,
                "process_cpu" => report.process_cpu_ns = number as u64,
                "shutdown_ms" => report.shutdown_ms = number as u64,
                _ => return None,
            }
        }
        Some(report)
    }
}

/// CPU time this thread has run, in ns: excludes time it waited for a core while the exporter
/// or the receiver had it.
pub fn thread_cpu_ns() -> u64 {
    cpu_time::ThreadTime::try_now()
        .map(|t| t.as_duration().as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU time of the whole process, threads that have exited included.
pub fn process_cpu_ns() -> u64 {
    cpu_time::ProcessTime::try_now()
        .map(|t| t.as_duration().as_nanos() as u64)
        .unwrap_or(0)
}

pub fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// The loop whose instructions are counted: the instruction count run collects only while this
/// function is on the app thread's stack (`--toggle-collect=*measured_ops*`).
#[inline(never)]
pub fn measured_ops(first: u64, op: &mut impl FnMut(u64)) {
    for i in first..first + BATCH {
        op(i);
    }
}

/// How a child drives the operations of a per-operation workload.
#[derive(Clone, Copy, Debug)]
pub struct Drive {
    pub warm_up_batches: u64,
    pub rounds: usize,
    pub batches_per_round: u64,
    /// None: batches back to back (a flood); Some: one batch each period (bursts).
    pub period: Option<Duration>,
}

/// Runs the batches of `op`, each inside `wrap` (which runs the batch it is handed), and returns
/// the median over rounds of the app-thread CPU and wall ns per op. Only time inside `wrap` is
/// counted, so a paced workload's sleeps are not.
pub fn per_op(drive: &Drive, wrap: &dyn Fn(&mut dyn FnMut()), mut op: impl FnMut(u64)) -> Report {
    let mut next = 0;
    let mut tick = Instant::now();
    let mut batch = |measured: bool| -> (u64, u64) {
        if let Some(period) = drive.period {
            tick += period;
            if let Some(wait) = tick.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let first = next;
        next += BATCH;
        let (cpu, wall) = (thread_cpu_ns(), Instant::now());
        wrap(&mut || {
            if measured {
                measured_ops(first, &mut op)
            } else {
                // Warm-up, not collected, so one-time initialisation is not counted. Not a twin
                // of `measured_ops`: the linker would fold the two into one symbol.
                (first..first + BATCH).for_each(&mut op)
            }
        });
        (thread_cpu_ns() - cpu, wall.elapsed().as_nanos() as u64)
    };
    for _ in 0..drive.warm_up_batches {
        batch(false);
    }
    let per_round_ops = (drive.batches_per_round * BATCH) as f64;
    let (mut cpu, mut wall): (Vec<f64>, Vec<f64>) = (0..drive.rounds)
        .map(|_| {
            let (cpu, wall) = (0..drive.batches_per_round)
                .map(|_| batch(true))
                .fold((0, 0), |(c, w), (bc, bw)| (c + bc, w + bw));
            (cpu as f64 / per_round_ops, wall as f64 / per_round_ops)
        })
        .unzip();
    Report {
        cpu_ns_per_op: median(&mut cpu),
        wall_ns_per_op: median(&mut wall),
        measured_ops: drive.rounds as u64 * drive.batches_per_round * BATCH,
        ..Report::default()
    }
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Produces `rate` items per second for `duration`, in slices of a fraction of a millisecond;
/// returns how many were produced.
pub fn paced(rate: u64, duration: Duration, mut op: impl FnMut(u64)) -> u64 {
    let started = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_line() {
        let report = Report {
            cpu_ns_per_op: 152.5,
            wall_ns_per_op: 160.25,
            measured_ops: 3000,
            produced: 100_000,
            peak_rss_kb: 24_576,
            app_cpu_ns: 7,
            process_cpu_ns: 9,
            shutdown_ms: 11,
        };
        let back = Report::parse(&report.to_line()).expect("parses");
        assert_eq!(back.to_line(), report.to_line());
        assert!(Report::parse("REPORT cpu=1 unknown=2").is_none());
        assert!(Report::parse("cpu=1").is_none());
    }

    #[test]
    fn per_op_counts_every_measured_op_once_and_only_inside_wrap() {
        let drive = Drive {
            warm_up_batches: 1,
            rounds: 3,
            batches_per_round: 2,
            period: None,
        };
        let (mut seen, wraps) = (Vec::new(), std::cell::Cell::new(0));
        let report = per_op(
            &drive,
            &|batch| {
                wraps.set(wraps.get() + 1);
                batch()
            },
            |i| seen.push(i),
        );
        assert_eq!(report.measured_ops, 6 * BATCH);
        assert_eq!(wraps.get(), 7);
        assert_eq!(seen, (0..7 * BATCH).collect::<Vec<_>>());
    }
}
