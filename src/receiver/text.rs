//! The terminal view. Every field it prints was cleaned by the model (bounded, controls made
//! visible); the only escape sequences in the output are the colours written here.

use super::model::{Model, Row, Series, SeriesValue, TraceView, MAX_BINS, MAX_INDENT};
use std::io::{self, Write};

const BAR_WIDTH: usize = 40;
const NAME_WIDTH: usize = 44;

pub(crate) fn duration_ms(start: u64, end: u64) -> f64 {
    end.saturating_sub(start) as f64 / 1e6
}

/// `HH:MM:SS.mmm` UTC.
pub(crate) fn clock(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos / 1_000_000) % 1000;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Cells of a duration bar on the trace's time axis.
fn bar_cells(trace: &TraceView, row: &Row) -> (usize, usize) {
    let total = trace.end.saturating_sub(trace.start).max(1) as f64;
    let offset = (row.start.saturating_sub(trace.start) as f64 / total * BAR_WIDTH as f64) as usize;
    let offset = offset.min(BAR_WIDTH - 1);
    let width =
        (row.end.saturating_sub(row.start) as f64 / total * BAR_WIDTH as f64).round() as usize;
    (offset, width.clamp(1, BAR_WIDTH - offset))
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The indentation of a row, bounded: a chain thousands deep stays on the screen.
pub(crate) fn indent(depth: usize) -> (usize, String) {
    if depth > MAX_INDENT {
        (MAX_INDENT, format!("[depth {depth}] "))
    } else {
        (depth, String::new())
    }
}

/// `p50≈… p95≈… p99≈…` of a histogram, or nothing.
pub(crate) fn percentiles(series: &Series) -> Option<String> {
    let Some(SeriesValue::Histogram(h)) = &series.value else {
        return None;
    };
    let unit = if series.unit.is_empty() {
        String::new()
    } else {
        format!(" {}", series.unit)
    };
    let q = |p: f64| {
        h.quantile(p)
            .map_or("-".into(), |v| format!("{v:.4}{unit}"))
    };
    Some(format!(
        "p50≈{} p95≈{} p99≈{} (estimated from buckets)",
        q(0.5),
        q(0.95),
        q(0.99)
    ))
}

/// How a series' windows were merged: its temporality, windows, restarts.
pub(crate) fn merged(series: &Series) -> String {
    let windows = match (series.temporality, series.windows) {
        (_, 1) => "1 window".to_owned(),
        (super::model::Temporality::Delta, n) => format!("{n} windows added"),
        (_, n) => format!("latest of {n} windows"),
    };
    let resets = match series.resets {
        0 => String::new(),
        n => format!(", restarted {n}× (counts since the last restart)"),
    };
    format!("{}; {windows}{resets}", series.temporality.label())
}

/// A series' value: the number, or count, sum, min, max, or a summary's quantiles.
pub(crate) fn value(series: &Series) -> String {
    match &series.value {
        Some(SeriesValue::Number(v)) => format!("{v}"),
        Some(SeriesValue::Histogram(h)) => format!(
            "count={} sum={} min={} max={}",
            h.count,
            h.sum.map_or("-".into(), |s| format!("{s:.4}")),
            h.min.map_or("-".into(), |s| format!("{s:.4}")),
            h.max.map_or("-".into(), |s| format!("{s:.4}")),
        ),
        Some(SeriesValue::Summary {
            count,
            sum,
            quantiles,
        }) => format!(
            "count={count} sum={sum:.4} {}",
            quantiles
                .iter()
                .map(|(q, v)| format!("q{q}={v:.4}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        None => "-".into(),
    }
}

pub(crate) fn render(out: &mut dyn Write, color: bool, model: &Model) -> io::Result<()> {
    let (red, dim, bold, reset) = if color {
        ("\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    writeln!(out, "{bold}{}{reset}", model.summary())?;
    writeln!(out)?;
    writeln!(out, "{bold}== Traces ({}) =={reset}", model.traces.len())?;
    for trace in &model.traces {
        writeln!(
            out,
            "{bold}trace {}{reset}  {}  {:.2} ms  [{}]",
            &trace.trace_id[..trace.trace_id.len().min(16)],
            trace.root_name(),
            duration_ms(trace.start, trace.end),
            trace.service
        )?;
        for row in &trace.rows {
            let marker = if row.error.is_some() { "✗ " } else { "" };
            let (depth, deep) = indent(row.depth);
            let label = truncate(
                &format!("{}{deep}{marker}{}", "  ".repeat(depth + 1), row.name),
                NAME_WIDTH,
            );
            let (offset, width) = bar_cells(trace, row);
            let bar = format!(
                "{}{}{}",
                " ".repeat(offset),
                "█".repeat(width),
                " ".repeat(BAR_WIDTH - offset - width)
            );
            let color_on = if row.error.is_some() { red } else { "" };
            let service = if row.service != trace.service {
                format!(" [{}]", row.service)
            } else {
                String::new()
            };
            writeln!(
                out,
                "{color_on}{label:<NAME_WIDTH$} {:<8} |{bar}| {:>9.2} ms{reset} {dim}{}{service}{reset}",
                row.kind,
                duration_ms(row.start, row.end),
                row.key_attributes
            )?;
            let pad = 2 * depth + 4;
            if let Some(message) = &row.error {
                writeln!(out, "{red}{:pad$}ERROR: {message}{reset}", "")?;
            }
            for event in &row.events {
                let at = duration_ms(row.start, event.time.max(row.start));
                if event.exception {
                    writeln!(out, "{red}{:pad$}exception {}{reset}", "", event.text)?;
                } else {
                    writeln!(
                        out,
                        "{dim}{:pad$}event +{at:.2} ms {}{reset}",
                        "", event.text
                    )?;
                }
            }
            for link in &row.links {
                writeln!(
                    out,
                    "{dim}{:pad$}link → trace {} span {} {}{reset}",
                    "", link.trace_id, link.span_id, link.attributes
                )?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "{bold}== Metrics ({}) =={reset}", model.series.len())?;
    for series in &model.series {
        writeln!(
            out,
            "{bold}{}{reset} ({}) {} {{{}}} [{}]",
            series.name, series.unit, series.kind, series.attributes, series.service
        )?;
        writeln!(out, "  {}  [{}]", value(series), merged(series))?;
        if let Some(p) = percentiles(series) {
            writeln!(out, "  {p}")?;
        }
        if let Some(SeriesValue::Histogram(h)) = &series.value {
            let bins: Vec<_> = h.bins().into_iter().filter(|b| b.count > 0).collect();
            let peak = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
            for bin in bins.iter().take(MAX_BINS) {
                let cells = ((bin.count as f64 / peak as f64) * 30.0).ceil() as usize;
                writeln!(
                    out,
                    "    {:>22} {} {}",
                    format!("({:.4}, {:.4}]", bin.lower, bin.upper),
                    "▇".repeat(cells.clamp(1, 30)),
                    bin.count
                )?;
            }
            if bins.len() > MAX_BINS {
                writeln!(out, "    … {} more buckets", bins.len() - MAX_BINS)?;
            }
        }
        for e in &series.exemplars {
            writeln!(
                out,
                "  {dim}exemplar {} at {} trace={} span={}{}{}{reset}",
                e.value,
                clock(e.time),
                &e.trace_id[..e.trace_id.len().min(16)],
                e.span_id,
                if e.attributes.is_empty() {
                    String::new()
                } else {
                    format!(" {{{}}}", e.attributes)
                },
                if e.trace_kept {
                    ""
                } else {
                    " (trace not received)"
                }
            )?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{bold}== Logs ({}) =={reset}", model.logs.len())?;
    for log in &model.logs {
        let trace = if log.trace_id.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "trace={} span={}",
                &log.trace_id[..8.min(log.trace_id.len())],
                &log.span_id[..8.min(log.span_id.len())]
            )
        };
        let color_on = if log.severity.starts_with("ERROR") || log.severity.starts_with("FATAL") {
            red
        } else {
            ""
        };
        let attributes = if log.attributes.is_empty() {
            String::new()
        } else {
            format!(" {{{}}}", log.attributes)
        };
        writeln!(
            out,
            "{}  {color_on}{:<5}{reset}  {}{dim}{attributes}  {} [{}]{reset}",
            clock(log.time),
            log.severity,
            log.body,
            trace,
            log.scope
        )?;
    }
    if !model.not_shown.is_empty() {
        writeln!(out)?;
        writeln!(out, "{bold}== Received but not shown =={reset}")?;
        for (reason, n) in model.not_shown.iter() {
            writeln!(out, "  {n} {reason}")?;
        }
    }
    Ok(())
}
