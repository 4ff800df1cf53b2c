//! The whole product in one command: a small sync service handles a few dozen simulated requests
//! on worker threads — HTTP server spans, database queries, histograms, log records — and exports
//! them. Whenever the settings from the environment say to export somewhere (any variable the
//! README lists: `PLAIN_CONNECT_EXPORT_URL` + `_TOKEN`, `OTEL_EXPORTER_OTLP_ENDPOINT`…), it exports
//! there; otherwise to an embedded OTLP receiver that then shows what arrived on the wire. Either
//! way it ends by saying where it sent what.
//!
//!     cargo run --example demo --features receiver
//!     cargo run --example demo --features receiver -- --requests 12 --html demo.html
//!     cargo run --example demo --features receiver -- --serve   # then open the printed URL
//!     OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_SERVICE_NAME=checkout \
//!         cargo run --example demo --features receiver

use plain_connect::instrument::{db, http};
use plain_connect::receiver::Receiver;
use plain_connect::{metrics, KeyValue, Resource, Settings, SettingsError, Telemetry};
use plain_connect::{CountersSnapshot, SignalCounts};
use std::error::Error;
use std::time::Duration;

/// How the demo runs.
pub struct DemoConfig {
    /// Simulated requests (at least 4: one slow, one failing, the rest ordinary).
    pub requests: usize,
    /// Worker threads.
    pub workers: usize,
    /// Print the receiver's view to stdout.
    pub print: bool,
    /// Also write the view as HTML here.
    pub html: Option<String>,
    /// Keep the embedded receiver serving its live view (`GET /`) until Ctrl-C.
    pub serve: bool,
}

/// What happened: the embedded receiver's snapshot (None when exporting elsewhere).
pub struct DemoOutcome {
    pub received: Option<plain_connect::receiver::Received>,
    pub queries: u64,
    pub counters: CountersSnapshot,
    /// Where what was sent went, as printed at the end.
    pub summary: String,
}

/// Variables that say where export goes; the embedded receiver stands in for them.
fn names_a_destination(name: &str) -> bool {
    name == "PLAIN_CONNECT_EXPORT_URL"
        || name == "PLAIN_CONNECT_EXPORT_TOKEN"
        || (name.starts_with("OTEL_EXPORTER_OTLP_")
            && (name.ends_with("ENDPOINT") || name.ends_with("HEADERS")))
}

fn environment(name: &str) -> Result<Option<String>, SettingsError> {
    Ok(std::env::var(name).ok())
}

/// The environment's settings when they export somewhere; otherwise the embedded receiver, with
/// every other variable (service name, sampler, log level, switches) still applied.
fn settings_and_receiver() -> Result<(Settings, Option<Receiver>), Box<dyn Error>> {
    let from_env = Settings::default().with_env_from(environment)?;
    if from_env.is_export_active() {
        return Ok((from_env, None));
    }
    for warning in from_env.warnings() {
        if warning.starts_with("export is off") {
            eprintln!("demo: {warning}; using the embedded receiver instead");
        }
    }
    let receiver = Receiver::start("127.0.0.1:0")?;
    let settings = Settings::builder()
        .export_url(receiver.endpoint())
        .log_level("debug")
        .export_delay(Duration::from_millis(200))
        .build()?
        .with_env_from(|name| {
            if names_a_destination(name) {
                Ok(None)
            } else {
                environment(name)
            }
        })?;
    Ok((settings, Some(receiver)))
}

/// Where each signal went and what became of it, from the pipeline's counters.
fn summary(
    settings: &Settings,
    embedded: bool,
    active: bool,
    counters: &CountersSnapshot,
) -> String {
    if !active {
        return "export is switched off by the settings (PLAIN_CONNECT_EXPORT_ENABLED or \
                OTEL_SDK_DISABLED): nothing was sent"
            .to_owned();
    }
    let line = |what: &str, signal: &str, c: &SignalCounts| {
        format!(
            "  {what:<14} {:>6} exported, {} dropped (queue full {}, send failed {}, refused {}) → {}\n",
            c.exported,
            c.dropped(),
            c.dropped_queue_full,
            c.dropped_send_failed,
            c.dropped_rejected,
            settings.signal_url(signal)
        )
    };
    format!(
        "sent to {}{} (by the final flush; shutdown then sends one last metrics collection):\n\
         {}{}{}  requests: {} sent, {} failed attempts\n",
        if embedded {
            "the embedded receiver at "
        } else {
            ""
        },
        settings.export_url(),
        line("spans", "traces", &counters.spans),
        line("metric points", "metrics", &counters.metric_points),
        line("log records", "logs", &counters.logs),
        counters.requests_sent,
        counters.requests_failed
    )
}

/// The app's own logger stand-in: prints what the exporter says about failures (a wrong URL, a
/// refused token) on stderr, so a misconfigured run says what to check.
struct ExporterWarnings;

impl log::Log for ExporterWarnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().starts_with("plain_connect")
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("demo: {}: {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// One simulated request, instrumented the way a service using the crate would be.
fn handle(request_number: usize, total: usize, order_value: &metrics::Histogram<f64>) {
    let (method, path, route) = match request_number % 3 {
        0 => ("POST", "/orders".to_owned(), "/orders"),
        _ => (
            "GET",
            format!("/users/{}", 100 + request_number),
            "/users/{id}",
        ),
    };
    let failing = request_number == failing_request(total);
    let slow = request_number == slow_request(total);
    let mut request = http::server_request(method, &path)
        .scheme("http")
        .server("demo.local", 8080)
        .client_address("127.0.0.1")
        .user_agent("demo-client/1.0")
        .start();
    request.set_route(route);
    log::debug!("routing {method} {path}");
    let status = if method == "GET" {
        query("SELECT * FROM users WHERE id = $1", true, 2);
        if slow {
            log::warn!(request = request_number; "slow path: cache miss, rebuilding profile");
            query("SELECT * FROM orders o JOIN order_items i ON i.order_id = o.id WHERE o.user_id = 42", false, 120);
        }
        log::info!(user_id = 100 + request_number as i64; "profile served");
        200
    } else if failing {
        query(
            "INSERT INTO orders (user_id, total) VALUES (42, 99.5)",
            false,
            3,
        );
        let failed = db::query(
            "postgresql",
            "UPDATE inventory SET stock = stock - 1 WHERE sku = 'A-1'",
        )
        .start();
        std::thread::sleep(Duration::from_millis(4));
        failed.end_error_type("serialization_failure");
        request
            .span()
            .record_exception("InventoryError", "stock went negative for sku A-1");
        log::error!("order rejected: inventory update failed");
        500
    } else {
        query(
            "INSERT INTO orders (user_id, total) VALUES (42, 99.5)",
            false,
            3,
        );
        query(
            "UPDATE inventory SET stock = stock - 1 WHERE sku = 'A-1'",
            false,
            2,
        );
        order_value.record(
            20.0 + (request_number % 7) as f64 * 15.0,
            &[KeyValue::new("currency", "EUR")],
        );
        log::info!(order_id = 5000 + request_number as i64; "order placed");
        201
    };
    request.end(status);
}

/// The last POST fails with a 500 and an exception.
fn failing_request(total: usize) -> usize {
    (total - 1) / 3 * 3
}

/// A GET in the middle takes the slow path.
fn slow_request(total: usize) -> usize {
    let middle = total / 2;
    if middle % 3 == 0 {
        middle + 1
    } else {
        middle
    }
}

fn query(sql: &str, parameterized: bool, millis: u64) {
    let mut builder = db::query("postgresql", sql)
        .namespace("shop")
        .server("db.local", 5432);
    if parameterized {
        builder = builder.parameterized();
    }
    let q = builder.start();
    std::thread::sleep(Duration::from_millis(millis));
    q.end_ok();
}

/// Counts DB queries a run makes, to check the histogram against.
fn expected_queries(total: usize) -> u64 {
    (0..total)
        .map(|n| {
            if n % 3 == 0 || n == slow_request(total) {
                2
            } else {
                1
            }
        })
        .sum()
}

pub fn run(config: DemoConfig) -> Result<DemoOutcome, Box<dyn Error>> {
    let total = config.requests.max(4);
    let (settings, receiver) = settings_and_receiver()?;
    let telemetry = Telemetry::start(
        settings.clone(),
        Resource::new("plain-connect-demo", env!("CARGO_PKG_VERSION")),
    )?;
    let active = telemetry.is_active();
    plain_connect::logs::install(Some(Box::new(ExporterWarnings))).ok();
    let order_value = metrics::histogram("demo.order.value")
        .unit("EUR")
        .description("Value of placed orders.")
        .boundaries(vec![25.0, 50.0, 75.0, 100.0])
        .build()?;

    let (work_tx, work_rx) = crossbeam_channel::unbounded::<usize>();
    for n in 0..total {
        work_tx.send(n)?;
    }
    drop(work_tx);
    let workers: Vec<_> = (0..config.workers.max(1))
        .map(|_| {
            let (work_rx, order_value) = (work_rx.clone(), order_value.clone());
            std::thread::spawn(move || {
                for n in work_rx {
                    handle(n, total, &order_value);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| "a worker panicked")?;
    }
    telemetry.flush(Duration::from_secs(10))?;
    // The view and the counters as of the same moment: the shutdown's last metrics collection
    // comes after both.
    let counters = telemetry.counters();
    let received = receiver.as_ref().map(Receiver::snapshot);
    telemetry.shutdown(Duration::from_secs(10))?;

    if let Some(snapshot) = &received {
        if config.print {
            let stdout = std::io::stdout();
            let color =
                std::io::IsTerminal::is_terminal(&stdout) && std::env::var_os("NO_COLOR").is_none();
            snapshot.render_text(&mut stdout.lock(), color)?;
        }
        if let Some(path) = &config.html {
            std::fs::write(path, snapshot.render_html())?;
            println!("\nHTML view written to {path}");
        }
    }
    let summary = summary(&settings, received.is_some(), active, &counters);
    if config.print {
        println!("\n{summary}");
    }
    if let Some(receiver) = receiver {
        if config.serve {
            println!(
                "\nlive view: open {}/ in a browser (serving until Ctrl-C)",
                receiver.endpoint()
            );
            loop {
                std::thread::park();
            }
        }
        if config.print {
            println!("(run with --serve to keep this in the browser's live view)");
        }
        receiver.shutdown();
    }
    Ok(DemoOutcome {
        received,
        queries: expected_queries(total),
        counters,
        summary,
    })
}

#[allow(dead_code)]
fn main() {
    let mut config = DemoConfig {
        requests: 30,
        workers: 4,
        print: true,
        html: None,
        serve: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--serve" {
            config.serve = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--requests", Some(n)) => config.requests = n.parse().unwrap_or(30),
            ("--workers", Some(n)) => config.workers = n.parse().unwrap_or(4),
            ("--html", Some(path)) => config.html = Some(path),
            _ => {
                eprintln!("usage: demo [--requests N] [--workers N] [--html PATH] [--serve]");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = run(config) {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}
