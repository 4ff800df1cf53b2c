//! What arrived, shown the way a person wants to look at it: traces as waterfalls, histograms with
//! estimated percentiles and bucket bars, log records in time order — as terminal text or as one
//! self-contained HTML page.

use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
use crate::proto::metrics::v1::{metric::Data, number_data_point};
use crate::proto::trace::v1::{span::SpanKind, status::StatusCode};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

const BAR_WIDTH: usize = 40;
const NAME_WIDTH: usize = 44;

/// Attributes worth a glance in a waterfall row.
const KEY_ATTRIBUTES: [&str; 10] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "url.path",
    "db.system.name",
    "db.query.summary",
    "db.query.text",
    "db.namespace",
    "error.type",
    "server.address",
];

pub(crate) fn any_to_string(value: &Option<AnyValue>) -> String {
    use any_value::Value as V;
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(V::StringValue(s)) => s.clone(),
        Some(V::BoolValue(b)) => b.to_string(),
        Some(V::IntValue(i)) => i.to_string(),
        Some(V::DoubleValue(d)) => d.to_string(),
        Some(V::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| any_to_string(&Some(v.clone())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(V::KvlistValue(kv)) => format!("{{{}}}", attributes_inline(&kv.values)),
        Some(V::BytesValue(b)) => format!("<{} bytes>", b.len()),
        Some(V::StringValueStrindex(i)) => format!("<string #{i}>"),
        None => String::new(),
    }
}

fn attributes_inline(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .map(|kv| format!("{}={}", kv.key, any_to_string(&kv.value)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `HH:MM:SS.mmm` UTC.
fn clock(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let millis = (unix_nanos / 1_000_000) % 1000;
    format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Server) => "SERVER",
        Ok(SpanKind::Client) => "CLIENT",
        Ok(SpanKind::Producer) => "PRODUCER",
        Ok(SpanKind::Consumer) => "CONSUMER",
        Ok(SpanKind::Internal) => "INTERNAL",
        _ => "UNSPECIFIED",
    }
}

/// One span, ready to draw.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) depth: usize,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) error: Option<String>,
    pub(crate) attributes: String,
    pub(crate) exceptions: Vec<String>,
}

/// One trace: its rows in tree order, on a shared time axis.
#[derive(Clone, Debug)]
pub(crate) struct TraceView {
    pub(crate) trace_id: String,
    pub(crate) service: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) rows: Vec<Row>,
}

struct FlatSpan {
    span_id: Vec<u8>,
    parent: Vec<u8>,
    service: String,
    span: crate::proto::trace::v1::Span,
}

fn service_of(resource: &Option<crate::proto::resource::v1::Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .map(|kv| any_to_string(&kv.value))
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn traces(requests: &[&ExportTraceServiceRequest]) -> Vec<TraceView> {
    let mut by_trace: BTreeMap<Vec<u8>, Vec<FlatSpan>> = BTreeMap::new();
    for request in requests {
        for rs in &request.resource_spans {
            let service = service_of(&rs.resource);
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                let spans = by_trace.entry(span.trace_id.clone()).or_default();
                // A batch retried after a lost response arrives twice: show each span once.
                if spans.iter().any(|s| s.span_id == span.span_id) {
                    continue;
                }
                spans.push(FlatSpan {
                    span_id: span.span_id.clone(),
                    parent: span.parent_span_id.clone(),
                    service: service.clone(),
                    span: span.clone(),
                });
            }
        }
    }
    let mut views: Vec<TraceView> = by_trace
        .into_iter()
        .map(|(trace_id, mut spans)| {
            spans.sort_by_key(|s| s.span.start_time_unix_nano);
            let ids: std::collections::HashSet<Vec<u8>> =
                spans.iter().map(|s| s.span_id.clone()).collect();
            let mut rows = Vec::with_capacity(spans.len());
            // Roots: no parent, or a parent that never arrived (shown at the root, not lost).
            let roots: Vec<usize> = (0..spans.len())
                .filter(|&i| spans[i].parent.is_empty() || !ids.contains(&spans[i].parent))
                .collect();
            let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
            let mut visited = vec![false; spans.len()];
            while let Some((i, depth)) = stack.pop() {
                if std::mem::replace(&mut visited[i], true) {
                    continue;
                }
                rows.push(row(&spans[i].span, depth));
                let children: Vec<usize> = (0..spans.len())
                    .filter(|&c| spans[c].parent == spans[i].span_id && c != i)
                    .collect();
                stack.extend(children.into_iter().rev().map(|c| (c, depth + 1)));
            }
            // Cycles (a hostile exporter) leave spans unvisited: show them flat.
            for (i, seen) in visited.iter().enumerate() {
                if !seen {
                    rows.push(row(&spans[i].span, 0));
                }
            }
            let start = spans
                .iter()
                .map(|s| s.span.start_time_unix_nano)
                .min()
                .unwrap_or(0);
            let end = spans
                .iter()
                .map(|s| s.span.end_time_unix_nano.max(s.span.start_time_unix_nano))
                .max()
                .unwrap_or(start);
            TraceView {
                trace_id: hex(&trace_id),
                service: spans.first().map(|s| s.service.clone()).unwrap_or_default(),
                start,
                end,
                rows,
            }
        })
        .collect();
    views.sort_by_key(|t| t.start);
    views
}

fn row(span: &crate::proto::trace::v1::Span, depth: usize) -> Row {
    let error = span
        .status
        .as_ref()
        .filter(|s| s.code == StatusCode::Error as i32)
        .map(|s| s.message.clone());
    let attributes = span
        .attributes
        .iter()
        .filter(|kv| KEY_ATTRIBUTES.contains(&kv.key.as_str()))
        .map(|kv| format!("{}={}", kv.key, any_to_string(&kv.value)))
        .collect::<Vec<_>>()
        .join(" ");
    let exceptions = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| {
            let get = |k: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key == k)
                    .map(|kv| any_to_string(&kv.value))
                    .unwrap_or_default()
            };
            format!("{}: {}", get("exception.type"), get("exception.message"))
        })
        .collect();
    Row {
        depth,
        name: span.name.clone(),
        kind: kind_name(span.kind),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano.max(span.start_time_unix_nano),
        error,
        attributes,
        exceptions,
    }
}

/// A histogram series merged over every export window that arrived.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HistogramView {
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) attributes: String,
    pub(crate) count: u64,
    pub(crate) sum: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) bounds: Vec<f64>,
    pub(crate) buckets: Vec<u64>,
}

impl HistogramView {
    /// The q-quantile estimated from the buckets: linear within the bucket that holds it, the
    /// bucket's edges clamped to the observed min and max.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || self.buckets.len() != self.bounds.len() + 1 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * self.count as f64;
        let mut seen = 0.0;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if seen + n as f64 >= rank {
                let lower = if i == 0 {
                    self.min
                } else {
                    self.bounds[i - 1].max(self.min)
                };
                let upper = if i == self.bounds.len() {
                    self.max
                } else {
                    self.bounds[i].min(self.max)
                };
                let fraction = ((rank - seen) / n as f64).clamp(0.0, 1.0);
                return Some(lower + (upper - lower) * fraction);
            }
            seen += n as f64;
        }
        Some(self.max)
    }
}

/// A counter or gauge: the sum of deltas (or the last value) per attribute set.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NumberView {
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) kind: &'static str,
    pub(crate) attributes: String,
    pub(crate) value: f64,
}

pub(crate) fn metrics(
    requests: &[&ExportMetricsServiceRequest],
) -> (Vec<HistogramView>, Vec<NumberView>) {
    let mut histograms: Vec<HistogramView> = Vec::new();
    let mut numbers: Vec<NumberView> = Vec::new();
    let metrics = requests
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics);
    for metric in metrics {
        match &metric.data {
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    let attributes = attributes_inline(&p.attributes);
                    let existing = histograms.iter_mut().find(|v| {
                        v.name == metric.name
                            && v.attributes == attributes
                            && v.bounds == p.explicit_bounds
                    });
                    match existing {
                        Some(v) if v.buckets.len() == p.bucket_counts.len() => {
                            v.count += p.count;
                            v.sum += p.sum.unwrap_or(0.0);
                            v.min = v.min.min(p.min.unwrap_or(f64::INFINITY));
                            v.max = v.max.max(p.max.unwrap_or(f64::NEG_INFINITY));
                            v.buckets
                                .iter_mut()
                                .zip(&p.bucket_counts)
                                .for_each(|(a, b)| *a += b);
                        }
                        _ => histograms.push(HistogramView {
                            name: metric.name.clone(),
                            unit: metric.unit.clone(),
                            attributes,
                            count: p.count,
                            sum: p.sum.unwrap_or(0.0),
                            min: p.min.unwrap_or(f64::NAN),
                            max: p.max.unwrap_or(f64::NAN),
                            bounds: p.explicit_bounds.clone(),
                            buckets: p.bucket_counts.clone(),
                        }),
                    }
                }
            }
            Some(Data::Sum(s)) => {
                let cumulative = s.aggregation_temporality
                    == crate::proto::metrics::v1::AggregationTemporality::Cumulative as i32;
                for p in &s.data_points {
                    let value = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => 0.0,
                    };
                    merge_number(
                        &mut numbers,
                        metric,
                        "sum",
                        &p.attributes,
                        value,
                        !cumulative,
                    );
                }
            }
            Some(Data::Gauge(g)) => {
                for p in &g.data_points {
                    let value = match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => 0.0,
                    };
                    merge_number(&mut numbers, metric, "gauge", &p.attributes, value, false);
                }
            }
            _ => {}
        }
    }
    (histograms, numbers)
}

fn merge_number(
    numbers: &mut Vec<NumberView>,
    metric: &crate::proto::metrics::v1::Metric,
    kind: &'static str,
    attributes: &[KeyValue],
    value: f64,
    add: bool,
) {
    let attributes = attributes_inline(attributes);
    match numbers
        .iter_mut()
        .find(|n| n.name == metric.name && n.attributes == attributes)
    {
        Some(n) if add => n.value += value,
        Some(n) => n.value = value,
        None => numbers.push(NumberView {
            name: metric.name.clone(),
            unit: metric.unit.clone(),
            kind,
            attributes,
            value,
        }),
    }
}

/// One log record, ready to print.
#[derive(Clone, Debug)]
pub(crate) struct LogView {
    pub(crate) time: u64,
    pub(crate) severity: String,
    pub(crate) body: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) scope: String,
}

pub(crate) fn logs(requests: &[&ExportLogsServiceRequest]) -> Vec<LogView> {
    let mut out: Vec<LogView> = requests
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| {
            let scope = sl
                .scope
                .as_ref()
                .map(|s| s.name.clone())
                .unwrap_or_default();
            sl.log_records.iter().map(move |r| LogView {
                time: if r.time_unix_nano > 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                },
                severity: if r.severity_text.is_empty() {
                    format!("SEV{}", r.severity_number)
                } else {
                    r.severity_text.clone()
                },
                body: any_to_string(&r.body),
                trace_id: hex(&r.trace_id),
                span_id: hex(&r.span_id),
                scope: scope.clone(),
            })
        })
        .collect();
    out.sort_by_key(|l| l.time);
    out
}

fn duration_ms(start: u64, end: u64) -> f64 {
    end.saturating_sub(start) as f64 / 1e6
}

/// Cells of a duration bar on the trace's time axis.
fn bar_cells(trace: &TraceView, row: &Row) -> (usize, usize) {
    let total = trace.end.saturating_sub(trace.start).max(1) as f64;
    let offset =
        ((row.start.saturating_sub(trace.start)) as f64 / total * BAR_WIDTH as f64) as usize;
    let offset = offset.min(BAR_WIDTH - 1);
    let width =
        ((row.end.saturating_sub(row.start)) as f64 / total * BAR_WIDTH as f64).round() as usize;
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

/// Plain text: the console view.
pub(crate) fn render_text(
    out: &mut dyn Write,
    color: bool,
    summary: &str,
    traces: &[TraceView],
    histograms: &[HistogramView],
    numbers: &[NumberView],
    logs: &[LogView],
) -> io::Result<()> {
    let (red, dim, bold, reset) = if color {
        ("\x1b[31m", "\x1b[2m", "\x1b[1m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    writeln!(out, "{bold}{summary}{reset}")?;
    writeln!(out)?;
    writeln!(out, "{bold}== Traces ({}) =={reset}", traces.len())?;
    for trace in traces {
        let root = trace.rows.first().map(|r| r.name.as_str()).unwrap_or("");
        writeln!(
            out,
            "{bold}trace {}{reset}  {}  {:.2} ms  [{}]",
            &trace.trace_id[..trace.trace_id.len().min(16)],
            root,
            duration_ms(trace.start, trace.end),
            trace.service
        )?;
        for row in &trace.rows {
            let marker = if row.error.is_some() { "✗ " } else { "" };
            let label = truncate(
                &format!("{}{marker}{}", "  ".repeat(row.depth + 1), row.name),
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
            writeln!(
                out,
                "{color_on}{label:<NAME_WIDTH$} {:<8} |{bar}| {:>9.2} ms{reset} {dim}{}{reset}",
                row.kind,
                duration_ms(row.start, row.end),
                row.attributes
            )?;
            if let Some(message) = &row.error {
                writeln!(
                    out,
                    "{red}{:indent$}ERROR: {message}{reset}",
                    "",
                    indent = 2 * row.depth + 4
                )?;
            }
            for exception in &row.exceptions {
                writeln!(
                    out,
                    "{red}{:indent$}exception {exception}{reset}",
                    "",
                    indent = 2 * row.depth + 4
                )?;
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "{bold}== Metrics =={reset}")?;
    for h in histograms {
        let unit = if h.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", h.unit)
        };
        writeln!(
            out,
            "{bold}{}{reset} ({}) histogram {{{}}}",
            h.name, h.unit, h.attributes
        )?;
        let q = |p: f64| {
            h.quantile(p)
                .map_or("-".into(), |v| format!("{v:.4}{unit}"))
        };
        writeln!(
            out,
            "  count={} sum={:.4}{unit} min={:.4} max={:.4}  p50≈{} p95≈{} p99≈{} (estimated from buckets)",
            h.count,
            h.sum,
            h.min,
            h.max,
            q(0.5),
            q(0.95),
            q(0.99)
        )?;
        let peak = h.buckets.iter().copied().max().unwrap_or(0).max(1);
        for (i, n) in h.buckets.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let label = match h.bounds.get(i) {
                Some(b) => format!("≤{b}"),
                None => format!(">{}", h.bounds.last().copied().unwrap_or(0.0)),
            };
            let cells = ((*n as f64 / peak as f64) * 30.0).ceil() as usize;
            writeln!(out, "    {label:>10} {} {n}", "▇".repeat(cells.max(1)))?;
        }
    }
    for n in numbers {
        writeln!(
            out,
            "{bold}{}{reset} ({}) {} {{{}}} = {}",
            n.name, n.unit, n.kind, n.attributes, n.value
        )?;
    }
    writeln!(out)?;
    writeln!(out, "{bold}== Logs ({}) =={reset}", logs.len())?;
    for log in logs {
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
        writeln!(
            out,
            "{}  {color_on}{:<5}{reset}  {}  {dim}{} [{}]{reset}",
            clock(log.time),
            log.severity,
            log.body,
            trace,
            log.scope
        )?;
    }
    Ok(())
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One self-contained HTML page (inline CSS, no script, no external resources).
pub(crate) fn render_html(
    summary: &str,
    traces: &[TraceView],
    histograms: &[HistogramView],
    numbers: &[NumberView],
    logs: &[LogView],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>plain-connect receiver</title><style>\
body{{font:14px system-ui,sans-serif;margin:24px;color:#222}}h2{{margin-top:28px}}\
.row{{display:grid;grid-template-columns:380px 80px 1fr 90px;gap:8px;align-items:center;font-family:ui-monospace,monospace;font-size:12px}}\
.track{{position:relative;height:12px;background:#f1f3f5}}.bar{{position:absolute;height:12px;background:#4c6ef5}}\
.err .bar{{background:#e03131}}.err{{color:#c92a2a}}.attrs{{grid-column:1/5;color:#868e96;font-size:11px;margin:0 0 4px 24px}}\
details{{border:1px solid #dee2e6;border-radius:6px;padding:6px 10px;margin:8px 0}}summary{{cursor:pointer;font-weight:600}}\
table{{border-collapse:collapse}}td,th{{padding:2px 8px;text-align:left;font-size:12px}}.hb{{background:#74c0fc;height:10px;display:inline-block}}\
</style></head><body><h1>plain-connect receiver</h1><p>{}</p><h2>Traces ({})</h2>",
        escape(summary),
        traces.len()
    );
    for trace in traces {
        let root = trace.rows.first().map(|r| r.name.as_str()).unwrap_or("");
        let failed = trace.rows.iter().any(|r| r.error.is_some());
        let _ = write!(
            h,
            "<details open><summary class=\"{}\">{}{} — {:.2} ms — trace {} [{}]</summary>",
            if failed { "err" } else { "" },
            if failed { "✗ " } else { "" },
            escape(root),
            duration_ms(trace.start, trace.end),
            escape(&trace.trace_id),
            escape(&trace.service)
        );
        let total = trace.end.saturating_sub(trace.start).max(1) as f64;
        for row in &trace.rows {
            let left = row.start.saturating_sub(trace.start) as f64 / total * 100.0;
            let width = (row.end.saturating_sub(row.start) as f64 / total * 100.0).max(0.3);
            let _ = write!(
                h,
                "<div class=\"row{}\"><span style=\"padding-left:{}px\">{}{}</span><span>{}</span>\
<span class=\"track\"><span class=\"bar\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span><span>{:.2} ms</span>\
<div class=\"attrs\">{}{}{}</div></div>",
                if row.error.is_some() { " err" } else { "" },
                row.depth * 16,
                if row.error.is_some() { "✗ " } else { "" },
                escape(&row.name),
                row.kind,
                duration_ms(row.start, row.end),
                escape(&row.attributes),
                row.error.as_ref().map(|m| format!(" — ERROR: {}", escape(m))).unwrap_or_default(),
                row.exceptions.iter().map(|e| format!(" — exception {}", escape(e))).collect::<String>(),
            );
        }
        h.push_str("</details>");
    }
    h.push_str("<h2>Metrics</h2>");
    for m in histograms {
        let q = |p: f64| m.quantile(p).map_or("-".into(), |v| format!("{v:.4}"));
        let _ = write!(
            h,
            "<details open><summary>{} ({}) {{{}}}</summary><p>count={} sum={:.4} min={:.4} max={:.4} — p50≈{} p95≈{} p99≈{} (estimated from buckets)</p><table>",
            escape(&m.name), escape(&m.unit), escape(&m.attributes), m.count, m.sum, m.min, m.max, q(0.5), q(0.95), q(0.99)
        );
        let peak = m.buckets.iter().copied().max().unwrap_or(0).max(1);
        for (i, n) in m.buckets.iter().enumerate() {
            let label = match m.bounds.get(i) {
                Some(b) => format!("≤ {b}"),
                None => format!("&gt; {}", m.bounds.last().copied().unwrap_or(0.0)),
            };
            let _ = write!(h, "<tr><td>{label}</td><td><span class=\"hb\" style=\"width:{}px\"></span> {n}</td></tr>", n * 300 / peak);
        }
        h.push_str("</table></details>");
    }
    if !numbers.is_empty() {
        h.push_str("<table><tr><th>metric</th><th>kind</th><th>attributes</th><th>value</th></tr>");
        for n in numbers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&n.name),
                n.kind,
                escape(&n.attributes),
                n.value
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(h, "<h2>Logs ({})</h2><table><tr><th>time (UTC)</th><th>severity</th><th>body</th><th>trace / span</th><th>scope</th></tr>", logs.len());
    for log in logs {
        let _ = write!(
            h,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if log.severity.starts_with("ERROR") {
                "err"
            } else {
                ""
            },
            clock(log.time),
            escape(&log.severity),
            escape(&log.body),
            if log.trace_id.is_empty() {
                "-".into()
            } else {
                format!(
                    "{} / {}",
                    escape(&log.trace_id[..8.min(log.trace_id.len())]),
                    escape(&log.span_id[..8.min(log.span_id.len())])
                )
            },
            escape(&log.scope)
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bounds: Vec<f64>, buckets: Vec<u64>, min: f64, max: f64) -> HistogramView {
        HistogramView {
            name: "h".into(),
            unit: "s".into(),
            attributes: String::new(),
            count: buckets.iter().sum(),
            sum: 0.0,
            min,
            max,
            bounds,
            buckets,
        }
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 100 values: 50 in (0,1], 50 in (1,2].
        let h = view(vec![1.0, 2.0], vec![50, 50, 0], 0.0, 2.0);
        assert_eq!(h.quantile(0.5), Some(1.0));
        assert_eq!(h.quantile(0.25), Some(0.5));
        assert_eq!(h.quantile(0.75), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(2.0));
        // The open-ended bucket ends at the observed max.
        let tail = view(vec![1.0], vec![0, 10], 3.0, 5.0);
        assert_eq!(tail.quantile(0.5), Some(4.0));
        assert_eq!(view(vec![1.0], vec![0, 0], 0.0, 0.0).quantile(0.5), None);
    }

    #[test]
    fn escaping() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
    }
}
