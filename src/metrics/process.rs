//! The process's own metrics, named and shaped per the semantic conventions for OS process
//! metrics, read at collection time (on the exporter thread) by observable instruments.
//!
//! On Linux they come from `/proc/self` (no dependency): CPU time and start time from `stat`,
//! the clock-tick rate and page size from `auxv` (what `sysconf` reads), resident and virtual
//! memory from `statm`, threads from `stat`, descriptors from `fd/`, boot-relative time from
//! `/proc/uptime`. Elsewhere the standard library offers none of these, so none is exported:
//! a metric that cannot be measured is left out, never faked. Whatever fails to read or parse
//! leaves that metric out of the collection; nothing here panics.

use super::instrument::{
    observable_counter, observable_gauge, observable_up_down_counter, Observer,
};
use crate::attributes::KeyValue;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

/// Whether the installed pipeline exports them (the instruments, once registered, stay).
static ON: AtomicBool = AtomicBool::new(false);

/// Registers the instruments on first use and turns their reading on or off.
pub(crate) fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
    if on {
        static REGISTERED: Once = Once::new();
        REGISTERED.call_once(register);
    }
}

fn register() {
    let modes = |o: &mut Observer, user: f64, system: f64| {
        o.observe(user, &[KeyValue::new("cpu.mode", "user")]);
        o.observe(system, &[KeyValue::new("cpu.mode", "system")]);
    };
    // Registration fails only on a name clash with an app instrument of another kind; the
    // app's instrument then keeps the name and ours is left out.
    let _ = observable_counter("process.cpu.time", move |o| {
        if let Some(s) = sample() {
            modes(o, s.user_seconds, s.system_seconds);
        }
    })
    .unit("s")
    .description("Total CPU seconds broken down by different states.")
    .build();
    let _ = observable_gauge("process.cpu.utilization", move |o| {
        if let Some((user, system)) = utilization() {
            modes(o, user, system);
        }
    })
    .unit("1")
    .description(
        "Difference in process.cpu.time since the last measurement, divided by the elapsed \
         time and number of CPUs available to the process.",
    )
    .build();
    let gauge_like: [(Name, Unit, Description, Reading); 4] = [
        (
            "process.memory.usage",
            "By",
            "The amount of physical memory in use.",
            |s| s.resident_bytes,
        ),
        (
            "process.memory.virtual",
            "By",
            "The amount of committed virtual memory.",
            |s| s.virtual_bytes,
        ),
        (
            "process.thread.count",
            "{thread}",
            "Process threads count.",
            |s| s.threads,
        ),
        (
            "process.unix.file_descriptor.count",
            "{file_descriptor}",
            "Number of unix file descriptors in use by the process.",
            |s| s.file_descriptors,
        ),
    ];
    for (name, unit, description, read) in gauge_like {
        let _ = observable_up_down_counter(name, move |o| {
            if let Some(value) = sample().as_ref().and_then(read) {
                o.observe(value, &[]);
            }
        })
        .unit(unit)
        .description(description)
        .build();
    }
    let _ = observable_gauge("process.uptime", |o| {
        if let Some(uptime) = sample().and_then(|s| s.uptime_seconds) {
            o.observe(uptime, &[]);
        }
    })
    .unit("s")
    .description("The time the process has been running.")
    .build();
}

type Name = &'static str;
type Unit = &'static str;
type Description = &'static str;
/// Picks one value out of a [`Sample`].
type Reading = fn(&Sample) -> Option<f64>;

/// One reading of the process's state.
#[derive(Clone, Debug, Default, PartialEq)]
struct Sample {
    user_seconds: f64,
    system_seconds: f64,
    resident_bytes: Option<f64>,
    virtual_bytes: Option<f64>,
    threads: Option<f64>,
    file_descriptors: Option<f64>,
    uptime_seconds: Option<f64>,
}

/// The instruments are read one after the other in one collection: they share one reading, so
/// a collection reads `/proc` once, not once per instrument.
const SAMPLE_REUSE: Duration = Duration::from_millis(20);

/// `None` when the process is not enabled or the platform has no reading.
fn sample() -> Option<Sample> {
    static LAST: Mutex<Option<(Instant, Sample)>> = parking_lot::const_mutex(None);
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    let mut last = LAST.lock();
    if let Some((at, sample)) = last.as_ref() {
        if at.elapsed() < SAMPLE_REUSE {
            return Some(sample.clone());
        }
    }
    let fresh = read()?;
    *last = Some((Instant::now(), fresh.clone()));
    Some(fresh)
}

/// User and system CPU utilization since the previous collection (the first: since the process
/// started), divided by the CPUs available to the process.
fn utilization() -> Option<(f64, f64)> {
    static PREVIOUS: Mutex<Option<(f64, f64, f64)>> = parking_lot::const_mutex(None);
    let now = sample()?;
    let uptime = now.uptime_seconds?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let mut previous = PREVIOUS.lock();
    let (user_before, system_before, uptime_before) = previous.unwrap_or((0.0, 0.0, 0.0));
    *previous = Some((now.user_seconds, now.system_seconds, uptime));
    let elapsed = uptime - uptime_before;
    if elapsed <= 0.0 {
        return None;
    }
    let share = |used: f64| (used / (elapsed * cpus)).max(0.0);
    Some((
        share(now.user_seconds - user_before),
        share(now.system_seconds - system_before),
    ))
}

#[cfg(target_os = "linux")]
fn read() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let auxv = std::fs::read("/proc/self/auxv").ok()?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok();
    let boot_uptime = std::fs::read_to_string("/proc/uptime").ok();
    // The directory handle reading `fd/` is itself listed; it is ours, not the app's.
    let file_descriptors = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count().saturating_sub(1) as f64);
    parse(
        &stat,
        &auxv,
        statm.as_deref(),
        boot_uptime.as_deref(),
        file_descriptors,
    )
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<Sample> {
    None
}

/// `AT_PAGESZ` and `AT_CLKTCK` in the auxiliary vector.
const AT_PAGESZ: usize = 6;
const AT_CLKTCK: usize = 17;

/// Reads `(type, value)` pairs of native words from `/proc/self/auxv`.
fn auxv_value(auxv: &[u8], wanted: usize) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    auxv.chunks_exact(2 * WORD).find_map(|pair| {
        let (key, value) = pair.split_at(WORD);
        let key = usize::from_ne_bytes(key.try_into().ok()?);
        let value = usize::from_ne_bytes(value.try_into().ok()?);
        (key == wanted).then_some(value as u64)
    })
}

fn parse(
    stat: &str,
    auxv: &[u8],
    statm: Option<&str>,
    boot_uptime: Option<&str>,
    file_descriptors: Option<f64>,
) -> Option<Sample> {
    let ticks_per_second = auxv_value(auxv, AT_CLKTCK).filter(|t| *t > 0)? as f64;
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after it start past the last ')'. `fields[0]` is then field 3 (state).
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field =
        |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<u64>().ok().map(|v| v as f64) };
    let user_seconds = field(14)? / ticks_per_second;
    let system_seconds = field(15)? / ticks_per_second;
    let start_seconds = field(22).map(|ticks| ticks / ticks_per_second);
    let page_size = auxv_value(auxv, AT_PAGESZ).filter(|p| *p > 0);
    let resident_bytes = statm.zip(page_size).and_then(|(statm, page)| {
        let pages = statm.split_whitespace().nth(1)?.parse::<u64>().ok()?;
        Some((pages * page) as f64)
    });
    let uptime_seconds = boot_uptime
        .and_then(|u| u.split_whitespace().next()?.parse::<f64>().ok())
        .zip(start_seconds)
        .map(|(since_boot, started)| (since_boot - started).max(0.0));
    Some(Sample {
        user_seconds,
        system_seconds,
        resident_bytes,
        virtual_bytes: field(23),
        threads: field(20),
        file_descriptors,
        uptime_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(k, v)| k.to_ne_bytes().into_iter().chain(v.to_ne_bytes()))
            .collect()
    }

    #[test]
    fn parses_proc_files_including_a_command_name_with_spaces_and_parentheses() {
        // Fields 3.. of a real /proc/self/stat line, behind an awkward command name.
        let stat = "4242 (my (odd) app) S 1 4242 4242 0 -1 4194304 500 0 0 0 250 75 0 0 20 0 \
                    7 0 12000 104857600 2000 18446744073709551615";
        let sample = parse(
            stat,
            &auxv(&[(AT_PAGESZ, 4096), (AT_CLKTCK, 100), (0, 0)]),
            Some("25600 2000 500 1 0 300 0"),
            Some("150.50 300.00"),
            Some(9.0),
        )
        .unwrap();
        assert_eq!(sample.user_seconds, 2.5);
        assert_eq!(sample.system_seconds, 0.75);
        assert_eq!(sample.threads, Some(7.0));
        assert_eq!(sample.virtual_bytes, Some(104_857_600.0));
        assert_eq!(sample.resident_bytes, Some(2000.0 * 4096.0));
        assert_eq!(sample.uptime_seconds, Some(150.5 - 120.0));
        assert_eq!(sample.file_descriptors, Some(9.0));
    }

    #[test]
    fn unreadable_or_garbled_input_leaves_metrics_out_and_never_panics() {
        let ok_auxv = auxv(&[(AT_CLKTCK, 100)]);
        assert_eq!(parse("", &ok_auxv, None, None, None), None);
        assert_eq!(parse("1 (x) S", &ok_auxv, None, None, None), None);
        assert_eq!(parse("1 (x) S 1 2 3", &[1, 2, 3], None, None, None), None);
        let stat = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 10 10 0 0 20 0 1 0 5 100 1";
        let partial = parse(stat, &ok_auxv, Some("garbage"), Some("nope"), None).unwrap();
        assert_eq!(
            partial.resident_bytes, None,
            "no page size, no resident bytes"
        );
        assert_eq!(partial.uptime_seconds, None);
        assert_eq!(partial.threads, Some(1.0));
        for cut in 0..stat.len() {
            let _ = parse(
                &stat[..cut],
                &ok_auxv,
                Some(&stat[..cut]),
                Some(&stat[..cut]),
                None,
            );
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads_plausibly_and_a_reading_is_cheap() {
        let sample = read().expect("/proc/self is readable");
        assert!(sample.threads.unwrap() >= 1.0);
        assert!(sample.resident_bytes.unwrap() > 0.0);
        assert!(sample.virtual_bytes.unwrap() >= sample.resident_bytes.unwrap());
        assert!(
            sample.file_descriptors.unwrap() >= 3.0,
            "stdin, stdout, stderr"
        );
        assert!(sample.uptime_seconds.unwrap() >= 0.0);
        // This thread's time on a CPU (ns): on a shared host, wall time includes waiting.
        let cpu_ns = || -> u64 {
            std::fs::read_to_string("/proc/thread-self/schedstat")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let rounds = 200;
        let (started, started_cpu) = (Instant::now(), cpu_ns());
        for _ in 0..rounds {
            std::hint::black_box(read());
        }
        let per_reading = started.elapsed() / rounds;
        let cpu_per_reading = Duration::from_nanos((cpu_ns() - started_cpu) / u64::from(rounds));
        eprintln!("one /proc/self reading: {per_reading:?} wall, {cpu_per_reading:?} CPU");
        assert!(per_reading < Duration::from_millis(20), "{per_reading:?}");
    }
}
