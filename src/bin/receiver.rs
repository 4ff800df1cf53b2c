//! `plain-connect-receiver`: a local OTLP/HTTP endpoint that shows what any exporter sends.
//!
//! ```text
//! plain-connect-receiver [--listen 127.0.0.1:4318] [--html PATH] [--exit-after SECONDS]
//! ```
//! Serves the live view at its own address (`GET /`, open it in a browser), prints a fresh text
//! view whenever new telemetry arrived (checked every second); with `--html` also writes the
//! page there. `PLAIN_CONNECT_RECEIVER_LISTEN` sets the address too.

use plain_connect::receiver::Receiver;
use std::time::{Duration, Instant};

struct Args {
    listen: String,
    html: Option<String>,
    exit_after: Option<Duration>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: std::env::var("PLAIN_CONNECT_RECEIVER_LISTEN")
            .unwrap_or_else(|_| "127.0.0.1:4318".into()),
        html: None,
        exit_after: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => args.listen = value()?,
            "--html" => args.html = Some(value()?),
            "--exit-after" | "--once-after" => {
                let secs: f64 = value()?
                    .parse()
                    .map_err(|_| format!("{flag} takes seconds"))?;
                args.exit_after = Some(Duration::from_secs_f64(secs.max(0.0)));
            }
            "-h" | "--help" => {
                println!(
                    "plain-connect-receiver [--listen ADDR] [--html PATH] [--exit-after SECONDS]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("plain-connect-receiver: {e}");
            std::process::exit(2);
        }
    };
    let receiver = match Receiver::start(&args.listen) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "plain-connect-receiver: cannot listen on {}: {e}",
                args.listen
            );
            std::process::exit(1);
        }
    };
    println!(
        "plain-connect-receiver listening on {0} (OTLP/HTTP protobuf: /v1/traces, /v1/metrics, /v1/logs)\nlive view: open {0}/ in a browser",
        receiver.endpoint()
    );
    let started = Instant::now();
    let mut last_requests = 0;
    loop {
        std::thread::sleep(Duration::from_millis(1000));
        let finished = args.exit_after.is_some_and(|d| started.elapsed() >= d);
        let requests = receiver.counts().requests;
        if requests != last_requests || finished {
            last_requests = requests;

            let stdout = std::io::stdout();
            let _ = receiver.render_text(&mut stdout.lock(), false);
            if let Some(path) = &args.html {
                if let Err(e) = std::fs::write(path, receiver.render_html()) {
                    eprintln!("plain-connect-receiver: cannot write {path}: {e}");
                }
            }
        }
        if finished {
            return;
        }
    }
}
