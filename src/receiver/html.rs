//! The page: services, traces as waterfalls, metric series with percentiles and exemplars, logs
//! joined to their traces, what was not shown. Served live at `GET /` (a few lines of inline
//! script poll `/changes` and swap the page in place; no framework, nothing from the network)
//! or written as one static file. Every received string is escaped here; the model bounded it.

use super::model::{Model, SeriesValue, TraceView, MAX_BINS, MAX_INDENT};
use super::text::{clock, duration_ms, indent, merged, percentiles, value as value_text};
use std::fmt::Write as _;

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

/// Escapes text for a query-string value (then for the attribute it sits in).
fn query_value(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

const STYLE: &str = "\
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa;--accent:#0969da;--err:#cf222e}\
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:var(--fg);background:#fff}\
header{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}h1{font-size:18px;margin:0 0 4px}\
main{padding:8px 24px 40px}h2{font-size:16px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}\
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}.muted{color:var(--muted)}\
nav{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-top:8px}.chip{border:1px solid var(--line);border-radius:12px;padding:1px 10px;background:#fff}\
.chip.on{background:var(--accent);color:#fff;border-color:var(--accent)}form{display:inline-flex;gap:4px;margin-left:12px}\
input{font:inherit;padding:1px 6px;border:1px solid var(--line);border-radius:6px;width:22em}button{font:inherit;border:1px solid var(--line);border-radius:6px;background:#fff}\
table{border-collapse:collapse;width:100%}td,th{padding:3px 8px;text-align:left;font-size:13px;border-bottom:1px solid #eaeef2;vertical-align:top}th{color:var(--muted);font-weight:600}\
.mono,td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}\
details.trace{border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:6px 10px}details.trace>summary{cursor:pointer;font-weight:600}\
.row{display:grid;grid-template-columns:minmax(260px,34%) 76px 1fr 84px;gap:8px;align-items:center;font:12px ui-monospace,monospace;padding:2px 0}\
.track{position:relative;height:14px;background:var(--bg);border-radius:3px}.bar{position:absolute;top:0;height:14px;background:#54aeff;border-radius:3px;min-width:2px}\
.row.err .bar{background:var(--err)}.err{color:var(--err)}.detail{grid-column:1/5;color:var(--muted);font-size:11px;margin:0 0 2px 0;overflow-wrap:anywhere}\
.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;margin:10px 0}.card h3{font-size:14px;margin:0}\
.hist td{border:0;padding:1px 8px}.hb{background:#54aeff;height:10px;display:inline-block;border-radius:2px;vertical-align:middle}\
.kind{font-size:11px;border:1px solid var(--line);border-radius:10px;padding:0 6px;color:var(--muted)}";

/// Refreshes the page in place when `/changes` moves, keeping which traces are open.
const LIVE_SCRIPT: &str = "(function(){var last=null;var status=document.getElementById('status');\
function swap(){return fetch(location.href,{cache:'no-store'}).then(function(r){return r.text()}).then(function(html){\
var next=new DOMParser().parseFromString(html,'text/html').getElementById('live');if(!next)return;\
var open={};document.querySelectorAll('details[id]').forEach(function(d){open[d.id]=d.open});\
document.getElementById('live').replaceWith(next);\
document.querySelectorAll('details[id]').forEach(function(d){if(d.id in open)d.open=open[d.id]});})}\
function tick(){fetch('/changes',{cache:'no-store'}).then(function(r){return r.text()}).then(function(t){\
var changed=last!==null&&t!==last;last=t;status.textContent='live \\u2014 checked '+new Date().toLocaleTimeString();\
return changed?swap():null}).catch(function(){status.textContent='receiver not reachable'})\
.then(function(){setTimeout(tick,1000)})}tick()})();";

/// Whether the page is served live (with the refresh script) or written as a file.
pub(crate) enum Mode<'a> {
    /// The script may run only with this nonce (the response's Content-Security-Policy).
    Live {
        nonce: &'a str,
    },
    Static,
}

fn trace_link(trace_id: &str) -> String {
    format!("?trace={0}#trace-{0}", query_value(trace_id))
}

fn waterfall(h: &mut String, trace: &TraceView, open: bool) {
    let _ = write!(
        h,
        "<details class=\"trace\" id=\"trace-{id}\"{open}><summary><span class=\"{err}\">{mark}{root}</span> \
<span class=\"muted\">— {ms:.2} ms — {spans} spans — {service} — trace <a class=\"mono\" href=\"{link}\">{id}</a></span></summary>",
        id = escape(&trace.trace_id),
        open = if open { " open" } else { "" },
        err = if trace.errors > 0 { "err" } else { "" },
        mark = if trace.errors > 0 { "✗ " } else { "" },
        root = escape(trace.root_name()),
        ms = duration_ms(trace.start, trace.end),
        spans = trace.spans,
        service = escape(&trace.service),
        link = escape(&trace_link(&trace.trace_id)),
    );
    let total = trace.end.saturating_sub(trace.start).max(1) as f64;
    for row in &trace.rows {
        let left = row.start.saturating_sub(trace.start) as f64 / total * 100.0;
        let width =
            (row.end.saturating_sub(row.start) as f64 / total * 100.0).clamp(0.0, 100.0 - left);
        let (depth, deep) = indent(row.depth);
        let _ = write!(
            h,
            "<div class=\"row{err}\" title=\"span {span}\"><span style=\"padding-left:{pad}px\">{deep}{mark}{name}</span><span class=\"muted\">{kind}</span>\
<span class=\"track\"><span class=\"bar\" style=\"left:{left:.2}%;width:{width:.2}%\"></span></span><span>{ms:.2} ms</span>",
            err = if row.error.is_some() { " err" } else { "" },
            span = escape(&row.span_id),
            pad = depth.min(MAX_INDENT) * 14,
            deep = escape(&deep),
            mark = if row.error.is_some() { "✗ " } else { "" },
            name = escape(&row.name),
            kind = row.kind,
            ms = duration_ms(row.start, row.end),
        );
        let mut detail = String::new();
        if row.service != trace.service {
            let _ = write!(detail, "[{}] ", escape(&row.service));
        }
        detail.push_str(&escape(&row.attributes));
        if let Some(m) = &row.error {
            let _ = write!(
                detail,
                "<br><span class=\"err\">ERROR: {}</span>",
                escape(m)
            );
        }
        for e in &row.events {
            if e.exception {
                let _ = write!(
                    detail,
                    "<br><span class=\"err\">exception {}</span>",
                    escape(&e.text)
                );
            } else {
                let at = duration_ms(row.start, e.time.max(row.start));
                let _ = write!(detail, "<br>event +{at:.2} ms {}", escape(&e.text));
            }
        }
        for l in &row.links {
            let _ = write!(
                detail,
                "<br>link → <a class=\"mono\" href=\"{}\">trace {}</a> span {} {}",
                escape(&trace_link(&l.trace_id)),
                escape(&l.trace_id),
                escape(&l.span_id),
                escape(&l.attributes)
            );
        }
        if !detail.is_empty() {
            let _ = write!(h, "<div class=\"detail\">{detail}</div>");
        }
        h.push_str("</div>");
    }
    if !trace.logs.is_empty() {
        let _ = write!(
            h,
            "<table><tr><th>+ms</th><th>severity</th><th>log record</th><th>span</th></tr>"
        );
        for log in &trace.logs {
            let _ = write!(
                h,
                "<tr><td>{:.2}</td><td>{}</td><td>{} <span class=\"muted\">{}</span></td><td class=\"mono\">{}</td></tr>",
                duration_ms(trace.start, log.time.max(trace.start)),
                escape(&log.severity),
                escape(&log.body),
                escape(&log.attributes),
                escape(&log.span_id)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</details>");
}

fn metrics(h: &mut String, model: &Model) {
    let _ = write!(
        h,
        "<section id=\"metrics\"><h2>Metrics ({})</h2>",
        model.series.len()
    );
    let mut numbers = String::new();
    for s in &model.series {
        let Some(value) = &s.value else { continue };
        if let SeriesValue::Number(v) = value {
            let _ = write!(
                numbers,
                "<tr><td>{}</td><td><span class=\"kind\">{}</span></td><td class=\"mono\">{}</td><td>{v} {}</td><td class=\"muted\">{}</td><td>{}</td></tr>",
                escape(&s.name),
                s.kind,
                escape(&s.attributes),
                escape(&s.unit),
                escape(&merged(s)),
                escape(&s.service)
            );
            continue;
        }
        let _ = write!(
            h,
            "<div class=\"card metric\"><h3 title=\"{}\">{} <span class=\"kind\">{}</span> <span class=\"muted\">{} {{{}}} — {}</span></h3><div class=\"mono\">{} <span class=\"muted\">[{}]</span></div>",
            escape(&s.description),
            escape(&s.name),
            s.kind,
            escape(&s.unit),
            escape(&s.attributes),
            escape(&s.service),
            escape(&value_text(s)),
            escape(&merged(s)),
        );
        if let Some(p) = percentiles(s) {
            let _ = write!(h, "<div class=\"mono percentiles\">{}</div>", escape(&p));
        }
        if let SeriesValue::Histogram(v) = value {
            let bins: Vec<_> = v.bins().into_iter().filter(|b| b.count > 0).collect();
            let peak = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1);
            h.push_str("<table class=\"hist\">");
            for bin in bins.iter().take(MAX_BINS) {
                let _ = write!(
                    h,
                    "<tr><td class=\"mono\">({:.4}, {:.4}]</td><td><span class=\"hb\" style=\"width:{}px\"></span> {}</td></tr>",
                    bin.lower,
                    bin.upper,
                    (bin.count as f64 / peak as f64 * 320.0).ceil() as u64,
                    bin.count
                );
            }
            if bins.len() > MAX_BINS {
                let _ = write!(
                    h,
                    "<tr><td colspan=\"2\">… {} more buckets</td></tr>",
                    bins.len() - MAX_BINS
                );
            }
            h.push_str("</table>");
        }
        if !s.exemplars.is_empty() {
            h.push_str("<div class=\"exemplars\">exemplars:<ul>");
            for e in &s.exemplars {
                let target = if e.trace_kept {
                    format!(
                        "<a class=\"mono exemplar\" href=\"{}\">trace {}</a>",
                        escape(&trace_link(&e.trace_id)),
                        escape(&e.trace_id)
                    )
                } else {
                    format!(
                        "<span class=\"mono\">trace {}</span> (not received)",
                        escape(&e.trace_id)
                    )
                };
                let _ = write!(
                    h,
                    "<li>{} {} at {} — {target} span <span class=\"mono\">{}</span> {}</li>",
                    e.value,
                    escape(&s.unit),
                    clock(e.time),
                    escape(&e.span_id),
                    escape(&e.attributes)
                );
            }
            h.push_str("</ul></div>");
        }
        h.push_str("</div>");
    }
    if !numbers.is_empty() {
        let _ = write!(
            h,
            "<table><tr><th>metric</th><th>kind</th><th>attributes</th><th>value</th><th>merged</th><th>service</th></tr>{numbers}</table>"
        );
    }
    h.push_str("</section>");
}

/// The whole page.
pub(crate) fn render(model: &Model, mode: Mode<'_>) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>plain-connect receiver</title><style>{STYLE}</style></head><body><div id=\"live\"><header><h1>plain-connect receiver</h1>\
<div class=\"summary muted\">{}</div><nav><span class=\"muted\">service:</span><a class=\"chip{}\" href=\"?\">all</a>",
        escape(&model.summary()),
        if model.filter.service.is_none() { " on" } else { "" },
    );
    for s in &model.services {
        let on = model.filter.service.as_deref() == Some(s.name.as_str());
        let _ = write!(
            h,
            "<a class=\"chip{}\" href=\"?service={}\" title=\"{} spans, {} metrics, {} log records\">{}</a>",
            if on { " on" } else { "" },
            escape(&query_value(&s.name)),
            s.spans,
            s.points,
            s.logs,
            escape(&s.name)
        );
    }
    let _ = write!(
        h,
        "<form method=\"get\" action=\"\">{}<input name=\"trace\" placeholder=\"trace id (or its start)\" value=\"{}\"><button>show</button></form></nav></header><main>",
        model
            .filter
            .service
            .as_ref()
            .map(|s| format!("<input type=\"hidden\" name=\"service\" value=\"{}\">", escape(s)))
            .unwrap_or_default(),
        escape(model.filter.trace.as_deref().unwrap_or("")),
    );
    if !model.filter.is_empty() {
        h.push_str("<p class=\"muted\">Filtered: ");
        if let Some(s) = &model.filter.service {
            let _ = write!(h, "service {} ", escape(s));
        }
        if let Some(t) = &model.filter.trace {
            let _ = write!(h, "trace {} ", escape(t));
        }
        h.push_str("— <a href=\"?\">show everything</a></p>");
    }
    let _ = write!(
        h,
        "<section id=\"traces\"><h2>Traces ({})</h2>",
        model.traces.len()
    );
    if !model.traces.is_empty() {
        h.push_str("<table class=\"trace-list\"><tr><th>start (UTC)</th><th>root span</th><th>service</th><th>spans</th><th>duration</th><th>trace id</th></tr>");
        for t in model.traces.iter().rev() {
            let _ = write!(
                h,
                "<tr class=\"{}\"><td>{}</td><td><a href=\"#trace-{}\">{}{}</a></td><td>{}</td><td>{}</td><td>{:.2} ms</td><td class=\"mono\"><a href=\"{}\">{}</a></td></tr>",
                if t.errors > 0 { "err" } else { "" },
                clock(t.start),
                escape(&t.trace_id),
                if t.errors > 0 { "✗ " } else { "" },
                escape(t.root_name()),
                escape(&t.service),
                t.spans,
                duration_ms(t.start, t.end),
                escape(&trace_link(&t.trace_id)),
                escape(&t.trace_id[..t.trace_id.len().min(16)]),
            );
        }
        h.push_str("</table>");
    }
    // Newest first; the newest (or the one asked for) open.
    for (i, t) in model.traces.iter().rev().enumerate() {
        waterfall(&mut h, t, i == 0 || model.filter.trace.is_some());
    }
    h.push_str("</section>");
    metrics(&mut h, model);
    let _ = write!(
        h,
        "<section id=\"logs\"><h2>Logs ({})</h2><table><tr><th>time (UTC)</th><th>severity</th><th>body</th><th>service</th><th>trace / span</th></tr>",
        model.logs.len()
    );
    for log in model.logs.iter().rev() {
        let severe = log.severity.starts_with("ERROR") || log.severity.starts_with("FATAL");
        let trace = if log.trace_id.is_empty() {
            "-".to_owned()
        } else {
            format!(
                "<a href=\"{}\">{}</a> / {}",
                escape(&trace_link(&log.trace_id)),
                escape(&log.trace_id[..8.min(log.trace_id.len())]),
                escape(&log.span_id[..8.min(log.span_id.len())])
            )
        };
        let _ = write!(
            h,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{} <span class=\"muted\">{}</span></td><td>{}</td><td class=\"mono\">{trace}</td></tr>",
            if severe { "err" } else { "" },
            clock(log.time),
            escape(&log.severity),
            escape(&log.body),
            escape(&log.attributes),
            escape(&log.service),
        );
    }
    h.push_str("</table></section>");
    if !model.not_shown.is_empty() {
        h.push_str("<section id=\"not-shown\"><h2>Received but not shown</h2><ul>");
        for (reason, n) in model.not_shown.iter() {
            let _ = write!(h, "<li>{n} {}</li>", escape(reason));
        }
        h.push_str("</ul></section>");
    }
    h.push_str("</main></div>");
    match mode {
        Mode::Live { nonce } => {
            let _ = write!(
                h,
                "<footer class=\"muted\" style=\"padding:0 24px 16px\" id=\"status\">live</footer><script nonce=\"{}\">{LIVE_SCRIPT}</script>",
                escape(nonce)
            );
        }
        Mode::Static => h.push_str("<footer class=\"muted\" style=\"padding:0 24px 16px\">a snapshot written by plain-connect-receiver</footer>"),
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape("<script>\"&'"), "&lt;script&gt;&quot;&amp;&#39;");
        assert_eq!(query_value("a b&c=\"d\""), "a%20b%26c%3D%22d%22");
    }
}
