//! On-demand soak: minutes of steady telemetry against an endpoint that flaps up and down.
//! Prints RSS, threads and counters every 10 s and fails if memory or threads grow after warm-up.
//!
//!     cargo run --release --example soak --features receiver -- --minutes 5

use plain_connect::receiver::{Receiver, ReceiverOptions};
use plain_connect::{metrics, trace, KeyValue, Resource, Settings, Telemetry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Threads of this process other than the embedded receiver's connection handlers.
fn app_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .flatten()
                .filter(|t| {
                    let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                    !comm.starts_with("plain-connect-r")
                })
                .count()
        })
        .unwrap_or(0)
}

fn main() {
    let minutes: f64 = std::env::args()
        .skip_while(|a| a != "--minutes")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(2.0);
    let options = ReceiverOptions::default().max_items(10_000);
    let first = Receiver::with_options("127.0.0.1:0", options).expect("bind");
    let addr = first.local_addr();
    let settings = Settings::builder()
        .export_url(first.endpoint())
        .export_token("soak")
        .export_delay(Duration::from_millis(500))
        .metrics_interval(Duration::from_secs(2))
        .request_timeout(Duration::from_secs(2))
        .retry(
            plain_connect::RetryPolicy::default()
                .max_attempts(3)
                .initial_backoff(Duration::from_millis(100))
                .max_backoff(Duration::from_secs(1))
                .max_elapsed(Duration::from_secs(3)),
        )
        .build()
        .unwrap();
    let telemetry = Telemetry::start(settings, Resource::new("soak", "1")).unwrap();
    plain_connect::logs::install(None).ok();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..4)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let histogram = metrics::histogram("soak.duration").build().unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..50 {
                        let mut span = trace::span("soak work").start();
                        span.set_attribute("i", i as i64);
                        histogram.record((i % 100) as f64, &[KeyValue::new("thread", t as i64)]);
                        if i % 10 == 0 {
                            log::info!("soak record {i}");
                        }
                        i += 1;
                    }
                    std::thread::sleep(Duration::from_millis(5)); // ~40k items/s in all
                }
            })
        })
        .collect();

    let started = Instant::now();
    let mut receiver = Some(first);
    let mut baseline: Option<(u64, usize)> = None;
    let mut worst = (0u64, 0usize);
    let mut next_report = Duration::from_secs(10);
    while started.elapsed() < Duration::from_secs_f64(minutes * 60.0) {
        std::thread::sleep(Duration::from_secs(3));
        // Flap: down for 3 s, up for 3 s.
        receiver = match receiver.take() {
            Some(r) => {
                r.shutdown();
                None
            }
            None => Receiver::with_options(addr, options).ok(),
        };
        if started.elapsed() >= next_report {
            next_report += Duration::from_secs(10);
            let (rss, threads) = (status_kib("VmRSS:"), app_threads());
            let c = telemetry.counters();
            println!(
                "{:>5.0}s rss={rss} KiB threads={threads} spans: enqueued={} exported={} dropped={} | logs exported={} | points exported={}",
                started.elapsed().as_secs_f64(),
                c.spans.enqueued,
                c.spans.exported,
                c.spans.dropped(),
                c.logs.exported,
                c.metric_points.exported
            );
            if started.elapsed() >= Duration::from_secs(30) {
                match baseline {
                    None => baseline = Some((rss, threads)),
                    Some(_) => worst = (worst.0.max(rss), worst.1.max(threads)),
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    producers.into_iter().for_each(|p| p.join().unwrap());
    let _ = telemetry.shutdown(Duration::from_secs(10));
    if let Some((rss, threads)) = baseline {
        println!(
            "after warm-up: rss {rss} KiB, threads {threads}; worst later: rss {} KiB, threads {}",
            worst.0, worst.1
        );
        if worst.0 > rss + rss / 4 + 8 * 1024 || worst.1 > threads {
            eprintln!("soak: growth detected");
            std::process::exit(1);
        }
    }
    println!("soak: no growth in RSS or threads");
}
