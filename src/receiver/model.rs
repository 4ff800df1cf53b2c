//! What arrived, shaped the way a person wants to look at it: traces as trees on a time axis,
//! metric series merged the way their temporality says, log records in time order, and a
//! tally of everything received but not shown. Both views (terminal text and HTML) draw this.
//!
//! Everything here is bounded: how many traces, rows, series, buckets, exemplars and log records
//! are shown, and how long each string is; what is left out is counted in [`Model::not_shown`].

use super::clean::{self, LONG, SHORT};
use super::store::Counts;
use crate::proto::collector::logs::v1::ExportLogsServiceRequest;
use crate::proto::collector::metrics::v1::ExportMetricsServiceRequest;
use crate::proto::collector::trace::v1::ExportTraceServiceRequest;
use crate::proto::common::v1::KeyValue;
use crate::proto::metrics::v1::{
    exemplar, metric::Data, number_data_point, AggregationTemporality,
};
use crate::proto::trace::v1::{span::SpanKind, status::StatusCode, Span};
use std::collections::{BTreeMap, HashMap, HashSet};

pub(crate) const MAX_TRACES: usize = 200;
pub(crate) const MAX_ROWS: usize = 500;
pub(crate) const MAX_EVENTS: usize = 16;
pub(crate) const MAX_LINKS: usize = 8;
pub(crate) const MAX_ATTRIBUTES: usize = 32;
pub(crate) const MAX_SERIES: usize = 300;
pub(crate) const MAX_BINS: usize = 64;
pub(crate) const MAX_EXEMPLARS: usize = 8;
pub(crate) const MAX_LOGS: usize = 1000;
/// Indentation stops growing here; the row says how deep it really is.
pub(crate) const MAX_INDENT: usize = 24;
/// Exponential histograms merged wider than this many buckets are not drawn.
const MAX_EXPONENTIAL_SPAN: i64 = 1 << 14;

/// Attributes worth a glance in a waterfall row of the terminal view.
pub(crate) const KEY_ATTRIBUTES: [&str; 10] = [
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

/// What the page shows: everything, or one service, or one trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    pub(crate) service: Option<String>,
    /// A trace id in hex, or its first characters.
    pub(crate) trace: Option<String>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u8::from_str_radix(d, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Filter {
    /// From a query string: `service=NAME&trace=HEX`; unknown keys and empty values ignored.
    pub(crate) fn parse(query: &str) -> Filter {
        let mut filter = Filter::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).trim().to_owned();
            if value.is_empty() {
                continue;
            }
            match key {
                "service" => filter.service = Some(value),
                "trace" => filter.trace = Some(value.to_ascii_lowercase()),
                _ => {}
            }
        }
        filter
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.service.is_none() && self.trace.is_none()
    }

    fn service_matches(&self, service: &str) -> bool {
        self.service.as_deref().is_none_or(|s| s == service)
    }

    fn trace_matches(&self, trace_hex: &str) -> bool {
        self.trace
            .as_deref()
            .is_none_or(|t| !trace_hex.is_empty() && trace_hex.starts_with(t))
    }
}

/// Things received but not shown, by reason, in the order they were met.
#[derive(Clone, Debug, Default)]
pub(crate) struct NotShown(BTreeMap<&'static str, u64>);

impl NotShown {
    pub(crate) fn add(&mut self, reason: &'static str, n: u64) {
        if n > 0 {
            *self.0.entry(reason).or_default() += n;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn service_of(resource: &Option<crate::proto::resource::v1::Resource>) -> String {
    resource
        .iter()
        .flat_map(|r| &r.attributes)
        .find(|kv| kv.key == "service.name")
        .map(|kv| clean::value(kv.value.as_ref(), SHORT))
        .unwrap_or_else(|| "unknown".into())
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

/// A span event: exceptions read as `type: message`, others as a name and attributes.
#[derive(Clone, Debug)]
pub(crate) struct EventView {
    pub(crate) time: u64,
    pub(crate) exception: bool,
    pub(crate) text: String,
}

/// A link to another span (often in another trace: a batch, a queue message).
#[derive(Clone, Debug)]
pub(crate) struct LinkView {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) attributes: String,
}

/// One span, ready to draw.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) depth: usize,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) service: String,
    pub(crate) span_id: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) error: Option<String>,
    /// The attributes in [`KEY_ATTRIBUTES`], for the terminal.
    pub(crate) key_attributes: String,
    /// Every attribute (bounded), for the page.
    pub(crate) attributes: String,
    pub(crate) events: Vec<EventView>,
    pub(crate) links: Vec<LinkView>,
}

/// One trace: its rows in tree order on a shared time axis, and its log records.
#[derive(Clone, Debug)]
pub(crate) struct TraceView {
    pub(crate) trace_id: String,
    pub(crate) service: String,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) spans: usize,
    pub(crate) errors: usize,
    pub(crate) rows: Vec<Row>,
    pub(crate) logs: Vec<LogView>,
}

impl TraceView {
    pub(crate) fn root_name(&self) -> &str {
        self.rows.first().map_or("", |r| r.name.as_str())
    }
}

struct Candidate<'a, 's> {
    trace_id: &'a [u8],
    spans: Vec<(&'a Span, &'s str)>,
    start: u64,
}

/// `type: message`, or whichever of the two the event carries (both are optional in the
/// conventions: a trait-object error has no knowable type), or the bare word when neither is.
fn exception_text(exception_type: &str, message: &str) -> String {
    match (exception_type.is_empty(), message.is_empty()) {
        (false, false) => format!("{exception_type}: {message}"),
        (false, true) => exception_type.to_owned(),
        (true, false) => message.to_owned(),
        (true, true) => "exception".to_owned(),
    }
}

fn event_view(event: &crate::proto::trace::v1::span::Event) -> EventView {
    if event.name == "exception" {
        let get = |k: &str| {
            event
                .attributes
                .iter()
                .find(|kv| kv.key == k)
                .map(|kv| clean::value(kv.value.as_ref(), LONG))
                .unwrap_or_default()
        };
        EventView {
            time: event.time_unix_nano,
            exception: true,
            text: exception_text(&get("exception.type"), &get("exception.message")),
        }
    } else {
        let mut text = clean::Bounded::new(LONG);
        text.push(&event.name);
        if !event.attributes.is_empty() {
            text.push(" {");
            text.attributes(&event.attributes, 0, ", ");
            text.push("}");
        }
        EventView {
            time: event.time_unix_nano,
            exception: false,
            text: text.finish(),
        }
    }
}

fn row(span: &Span, service: &str, depth: usize, not_shown: &mut NotShown) -> Row {
    let error = span
        .status
        .as_ref()
        .filter(|s| s.code == StatusCode::Error as i32)
        .map(|s| clean::text(&s.message, LONG));
    let key: Vec<KeyValue> = span
        .attributes
        .iter()
        .filter(|kv| KEY_ATTRIBUTES.contains(&kv.key.as_str()))
        .cloned()
        .collect();
    let shown = &span.attributes[..span.attributes.len().min(MAX_ATTRIBUTES)];
    not_shown.add(
        "span attributes past 32 on a span",
        (span.attributes.len() - shown.len()) as u64,
    );
    not_shown.add(
        "span events past 16 on a span",
        span.events.len().saturating_sub(MAX_EVENTS) as u64,
    );
    not_shown.add(
        "span links past 8 on a span",
        span.links.len().saturating_sub(MAX_LINKS) as u64,
    );
    not_shown.add(
        "attributes, events and links the exporter dropped (its counts)",
        u64::from(span.dropped_attributes_count)
            + u64::from(span.dropped_events_count)
            + u64::from(span.dropped_links_count),
    );
    Row {
        depth,
        name: clean::text(&span.name, SHORT),
        kind: kind_name(span.kind),
        service: service.to_owned(),
        span_id: clean::hex(&span.span_id),
        start: span.start_time_unix_nano,
        end: span.end_time_unix_nano.max(span.start_time_unix_nano),
        error,
        key_attributes: clean::attributes(&key, LONG, " "),
        attributes: clean::attributes(shown, LONG, " "),
        events: span
            .events
            .iter()
            .take(MAX_EVENTS)
            .map(event_view)
            .collect(),
        links: span
            .links
            .iter()
            .take(MAX_LINKS)
            .map(|l| LinkView {
                trace_id: clean::hex(&l.trace_id),
                span_id: clean::hex(&l.span_id),
                attributes: clean::attributes(&l.attributes, LONG, " "),
            })
            .collect(),
    }
}

/// Rows of one trace in tree order: each span under its parent, roots (and spans whose parent
/// never arrived) at the top; a cycle from a hostile exporter is shown flat, never looped.
fn tree(candidate: Candidate<'_, '_>, not_shown: &mut NotShown) -> TraceView {
    let mut spans = candidate.spans;
    spans.sort_by_key(|(s, _)| s.start_time_unix_nano);
    let index: HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (s.span_id.as_slice(), i))
        .collect();
    let mut children: HashMap<&[u8], Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, (s, _)) in spans.iter().enumerate() {
        let parent = s.parent_span_id.as_slice();
        if parent.is_empty() || parent == s.span_id.as_slice() || !index.contains_key(parent) {
            roots.push(i);
        } else {
            children.entry(parent).or_default().push(i);
        }
    }
    let mut rows = Vec::new();
    let mut visited = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&i| (i, 0)).collect();
    let mut order = Vec::with_capacity(spans.len());
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        order.push((i, depth));
        if let Some(kids) = children.get(spans[i].0.span_id.as_slice()) {
            stack.extend(kids.iter().rev().map(|&c| (c, depth + 1)));
        }
    }
    order.extend((0..spans.len()).filter(|&i| !visited[i]).map(|i| (i, 0)));
    not_shown.add(
        "spans past 500 in one trace",
        order.len().saturating_sub(MAX_ROWS) as u64,
    );
    for &(i, depth) in order.iter().take(MAX_ROWS) {
        rows.push(row(spans[i].0, spans[i].1, depth, not_shown));
    }
    let end = spans
        .iter()
        .map(|(s, _)| s.end_time_unix_nano.max(s.start_time_unix_nano))
        .max()
        .unwrap_or(candidate.start);
    let errors = spans
        .iter()
        .filter(|(s, _)| {
            s.status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32)
        })
        .count();
    TraceView {
        trace_id: clean::hex(candidate.trace_id),
        service: rows.first().map(|r| r.service.clone()).unwrap_or_default(),
        start: candidate.start,
        end,
        spans: spans.len(),
        errors,
        rows,
        logs: Vec::new(),
    }
}

fn traces<'a, 's>(
    requests: impl Iterator<Item = &'a ExportTraceServiceRequest>,
    resource_services: &'s [String],
    filter: &Filter,
    not_shown: &mut NotShown,
) -> Vec<TraceView> {
    // Group by trace, each span once (a batch retried after a lost response arrives twice).
    let mut by_trace: HashMap<&'a [u8], Candidate<'a, 's>> = HashMap::new();
    let mut seen: HashSet<(&'a [u8], &'a [u8])> = HashSet::new();
    let mut duplicates = 0;
    let mut resource_index = 0;
    for request in requests {
        for rs in &request.resource_spans {
            let service = resource_services
                .get(resource_index)
                .map_or("unknown", String::as_str);
            resource_index += 1;
            for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                if !seen.insert((&span.trace_id, &span.span_id)) {
                    duplicates += 1;
                    continue;
                }
                let candidate = by_trace.entry(&span.trace_id).or_insert_with(|| Candidate {
                    trace_id: &span.trace_id,
                    spans: Vec::new(),
                    start: u64::MAX,
                });
                candidate.start = candidate.start.min(span.start_time_unix_nano);
                candidate.spans.push((span, service));
            }
        }
    }
    not_shown.add("duplicate spans (a retried batch; shown once)", duplicates);
    let mut candidates: Vec<Candidate<'a, 's>> = by_trace
        .into_values()
        .filter(|c| filter.trace_matches(&clean::hex(c.trace_id)))
        .filter(|c| {
            c.spans
                .iter()
                .any(|(_, service)| filter.service_matches(service))
        })
        .collect();
    // The most recent traces are shown, oldest first.
    candidates.sort_by_key(|c| std::cmp::Reverse(c.start));
    for hidden in candidates.iter().skip(MAX_TRACES) {
        not_shown.add("older traces past the 200 shown", 1);
        not_shown.add("spans in those traces", hidden.spans.len() as u64);
    }
    candidates.truncate(MAX_TRACES);
    candidates.reverse();
    candidates.into_iter().map(|c| tree(c, not_shown)).collect()
}

/// A data kind and, where it has one, its temporality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Temporality {
    Delta,
    Cumulative,
    Unspecified,
    /// Gauges: each point is a reading.
    Reading,
}

impl Temporality {
    fn of(value: i32) -> Temporality {
        match AggregationTemporality::try_from(value) {
            Ok(AggregationTemporality::Delta) => Temporality::Delta,
            Ok(AggregationTemporality::Cumulative) => Temporality::Cumulative,
            _ => Temporality::Unspecified,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Temporality::Delta => "delta: windows added up",
            Temporality::Cumulative => "cumulative: latest value",
            Temporality::Unspecified => "temporality unspecified: latest value",
            Temporality::Reading => "gauge: latest reading",
        }
    }
}

/// One bucket of a histogram, explicit or exponential, as a value range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bin {
    pub(crate) lower: f64,
    pub(crate) upper: f64,
    pub(crate) count: u64,
}

/// Buckets of either histogram kind, in a form that merges.
#[derive(Clone, Debug, PartialEq)]
enum Buckets {
    Explicit {
        bounds: Vec<f64>,
        counts: Vec<u64>,
    },
    Exponential {
        scale: i32,
        zero_count: u64,
        zero_threshold: f64,
        positive: (i32, Vec<u64>),
        negative: (i32, Vec<u64>),
    },
}

/// Folds exponential bucket counts from `offset` at a finer scale into `shift` steps coarser.
fn downscale((offset, counts): &(i32, Vec<u64>), shift: u32) -> (i32, Vec<u64>) {
    if shift == 0 || counts.is_empty() {
        return (*offset, counts.clone());
    }
    let shift = shift.min(62);
    let first = (i64::from(*offset) >> shift) as i32;
    let mut out: Vec<u64> = Vec::new();
    for (i, &n) in counts.iter().enumerate() {
        let index = (i64::from(*offset) + i as i64) >> shift;
        let at = (index - i64::from(first)) as usize;
        if out.len() <= at {
            out.resize(at + 1, 0);
        }
        out[at] = out[at].saturating_add(n);
    }
    (first, out)
}

/// Adds two bucket ranges at the same scale; None if the result would be absurdly wide.
fn add_ranges(a: &(i32, Vec<u64>), b: &(i32, Vec<u64>)) -> Option<(i32, Vec<u64>)> {
    if a.1.is_empty() {
        return Some(b.clone());
    }
    if b.1.is_empty() {
        return Some(a.clone());
    }
    let first = i64::from(a.0.min(b.0));
    let last = (i64::from(a.0) + a.1.len() as i64).max(i64::from(b.0) + b.1.len() as i64);
    if last - first > MAX_EXPONENTIAL_SPAN {
        return None;
    }
    let mut out = vec![0u64; (last - first) as usize];
    for (offset, counts) in [a, b] {
        for (i, &n) in counts.iter().enumerate() {
            let at = (i64::from(*offset) - first) as usize + i;
            out[at] = out[at].saturating_add(n);
        }
    }
    Some((first as i32, out))
}

impl Buckets {
    fn valid(&self) -> bool {
        match self {
            Buckets::Explicit { bounds, counts } => {
                counts.len() == bounds.len() + 1
                    && bounds.windows(2).all(|w| w[0] < w[1])
                    && bounds.iter().all(|b| b.is_finite())
            }
            Buckets::Exponential {
                scale,
                positive,
                negative,
                ..
            } => {
                (-10..=20).contains(scale)
                    && [positive, negative]
                        .iter()
                        .all(|r| r.1.len() as i64 <= MAX_EXPONENTIAL_SPAN)
            }
        }
    }

    /// Adds `other` in; false (and unchanged) when they cannot be added.
    fn add(&mut self, other: &Buckets) -> bool {
        match (self, other) {
            (
                Buckets::Explicit { bounds, counts },
                Buckets::Explicit {
                    bounds: other_bounds,
                    counts: other_counts,
                },
            ) => {
                if bounds != other_bounds || counts.len() != other_counts.len() {
                    return false;
                }
                counts
                    .iter_mut()
                    .zip(other_counts)
                    .for_each(|(a, b)| *a = a.saturating_add(*b));
                true
            }
            (
                this @ Buckets::Exponential { .. },
                Buckets::Exponential {
                    scale: b_scale,
                    zero_count: b_zero,
                    zero_threshold: b_threshold,
                    positive: b_positive,
                    negative: b_negative,
                },
            ) => {
                let Buckets::Exponential {
                    scale,
                    zero_count,
                    zero_threshold,
                    positive,
                    negative,
                } = &*this
                else {
                    return false;
                };
                let common = (*scale).min(*b_scale);
                let merged = (|| {
                    let positive = add_ranges(
                        &downscale(positive, (*scale - common) as u32),
                        &downscale(b_positive, (*b_scale - common) as u32),
                    )?;
                    let negative = add_ranges(
                        &downscale(negative, (*scale - common) as u32),
                        &downscale(b_negative, (*b_scale - common) as u32),
                    )?;
                    Some(Buckets::Exponential {
                        scale: common,
                        zero_count: zero_count.saturating_add(*b_zero),
                        zero_threshold: zero_threshold.max(*b_threshold),
                        positive,
                        negative,
                    })
                })();
                match merged {
                    Some(m) => {
                        *this = m;
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    /// Every bucket as a value range, lowest values first.
    fn bins(&self, min: Option<f64>, max: Option<f64>) -> Vec<Bin> {
        let (lowest, highest) = (
            min.unwrap_or(f64::NEG_INFINITY),
            max.unwrap_or(f64::INFINITY),
        );
        match self {
            Buckets::Explicit { bounds, counts } => counts
                .iter()
                .enumerate()
                .map(|(i, &count)| Bin {
                    lower: if i == 0 {
                        lowest
                    } else {
                        bounds[i - 1].max(lowest)
                    },
                    upper: bounds.get(i).map_or(highest, |b| b.min(highest)),
                    count,
                })
                .collect(),
            Buckets::Exponential {
                scale,
                zero_count,
                zero_threshold,
                positive,
                negative,
            } => {
                let base = 2f64.powf(2f64.powi(-scale));
                let edge = |index: i64| base.powf(index as f64);
                let mut bins: Vec<Bin> = negative
                    .1
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, &count)| {
                        let index = i64::from(negative.0) + i as i64;
                        Bin {
                            lower: -edge(index + 1),
                            upper: -edge(index),
                            count,
                        }
                    })
                    .collect();
                bins.push(Bin {
                    lower: -zero_threshold,
                    upper: *zero_threshold,
                    count: *zero_count,
                });
                bins.extend(positive.1.iter().enumerate().map(|(i, &count)| {
                    let index = i64::from(positive.0) + i as i64;
                    Bin {
                        lower: edge(index),
                        upper: edge(index + 1),
                        count,
                    }
                }));
                bins
            }
        }
    }
}

/// A histogram's value: totals and buckets.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HistogramValue {
    pub(crate) count: u64,
    pub(crate) sum: Option<f64>,
    pub(crate) min: Option<f64>,
    pub(crate) max: Option<f64>,
    buckets: Buckets,
}

impl HistogramValue {
    fn add(&mut self, other: &HistogramValue) -> bool {
        if !self.buckets.add(&other.buckets) {
            return false;
        }
        self.count = self.count.saturating_add(other.count);
        self.sum = match (self.sum, other.sum) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.min = [self.min, other.min].into_iter().flatten().reduce(f64::min);
        self.max = [self.max, other.max].into_iter().flatten().reduce(f64::max);
        true
    }

    /// Non-empty buckets as value ranges, edges clamped to the observed min and max.
    pub(crate) fn bins(&self) -> Vec<Bin> {
        self.buckets.bins(self.min, self.max)
    }

    /// The q-quantile estimated from the buckets: linear within the bucket that holds it.
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
        let bins = self.bins();
        let total: u64 = bins.iter().map(|b| b.count).fold(0, u64::saturating_add);
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut seen = 0.0;
        for bin in bins.iter().filter(|b| b.count > 0) {
            if seen + bin.count as f64 >= rank {
                let fraction = ((rank - seen) / bin.count as f64).clamp(0.0, 1.0);
                let (lower, upper) = (bin.lower, bin.upper);
                let estimate = match (lower.is_finite(), upper.is_finite()) {
                    (true, true) => lower + (upper - lower) * fraction,
                    (true, false) => lower,
                    (false, true) => upper,
                    (false, false) => return None,
                };
                return Some(estimate);
            }
            seen += bin.count as f64;
        }
        self.max
    }
}

/// What a series shows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SeriesValue {
    Number(f64),
    Histogram(HistogramValue),
    Summary {
        count: u64,
        sum: f64,
        quantiles: Vec<(f64, f64)>,
    },
}

impl SeriesValue {
    fn add(&mut self, other: &SeriesValue) -> bool {
        match (self, other) {
            (SeriesValue::Number(a), SeriesValue::Number(b)) => {
                *a += b;
                true
            }
            (SeriesValue::Histogram(a), SeriesValue::Histogram(b)) => a.add(b),
            (
                SeriesValue::Summary {
                    count,
                    sum,
                    quantiles,
                },
                SeriesValue::Summary {
                    count: c,
                    sum: s,
                    quantiles: q,
                },
            ) => {
                // Quantiles do not add: the latest window's stand.
                *count = count.saturating_add(*c);
                *sum += s;
                quantiles.clone_from(q);
                true
            }
            _ => false,
        }
    }
}

/// An exemplar: one measurement with the trace it was recorded in.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExemplarView {
    pub(crate) value: f64,
    pub(crate) time: u64,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) attributes: String,
    /// The trace arrived and is kept, so its waterfall can be opened.
    pub(crate) trace_kept: bool,
}

/// One metric series (service, name, attributes), merged over the windows that arrived.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub(crate) service: String,
    pub(crate) name: String,
    pub(crate) unit: String,
    pub(crate) description: String,
    /// counter, up-down counter, gauge, histogram, exponential histogram, summary
    pub(crate) kind: &'static str,
    pub(crate) temporality: Temporality,
    pub(crate) attributes: String,
    /// None only before the first point is merged.
    pub(crate) value: Option<SeriesValue>,
    /// Start of the window the value covers (cumulative), or of the first window (delta).
    pub(crate) since: u64,
    pub(crate) latest: u64,
    pub(crate) windows: u64,
    /// Cumulative series whose start time moved: the exporter restarted and counts began again.
    pub(crate) resets: u64,
    pub(crate) exemplars: Vec<ExemplarView>,
    seen_windows: HashSet<(u64, u64)>,
}

/// A data point, reduced to what merging needs.
struct Point<'a> {
    attributes: &'a [KeyValue],
    start: u64,
    time: u64,
    flags: u32,
    value: SeriesValue,
    exemplars: &'a [crate::proto::metrics::v1::Exemplar],
}

const NO_RECORDED_VALUE: u32 = 1;

fn number(value: Option<number_data_point::Value>) -> f64 {
    match value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => 0.0,
    }
}

fn points(data: &Data) -> (&'static str, Temporality, Vec<Point<'_>>) {
    match data {
        Data::Gauge(g) => (
            "gauge",
            Temporality::Reading,
            g.data_points
                .iter()
                .map(|p| Point {
                    attributes: &p.attributes,
                    start: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    flags: p.flags,
                    value: SeriesValue::Number(number(p.value)),
                    exemplars: &p.exemplars,
                })
                .collect(),
        ),
        Data::Sum(s) => (
            if s.is_monotonic {
                "counter"
            } else {
                "up-down counter"
            },
            Temporality::of(s.aggregation_temporality),
            s.data_points
                .iter()
                .map(|p| Point {
                    attributes: &p.attributes,
                    start: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    flags: p.flags,
                    value: SeriesValue::Number(number(p.value)),
                    exemplars: &p.exemplars,
                })
                .collect(),
        ),
        Data::Histogram(h) => (
            "histogram",
            Temporality::of(h.aggregation_temporality),
            h.data_points
                .iter()
                .map(|p| Point {
                    attributes: &p.attributes,
                    start: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    flags: p.flags,
                    value: SeriesValue::Histogram(HistogramValue {
                        count: p.count,
                        sum: p.sum,
                        min: p.min,
                        max: p.max,
                        buckets: Buckets::Explicit {
                            bounds: p.explicit_bounds.clone(),
                            counts: p.bucket_counts.clone(),
                        },
                    }),
                    exemplars: &p.exemplars,
                })
                .collect(),
        ),
        Data::ExponentialHistogram(h) => (
            "exponential histogram",
            Temporality::of(h.aggregation_temporality),
            h.data_points
                .iter()
                .map(|p| {
                    let range = |b: &Option<
                        crate::proto::metrics::v1::exponential_histogram_data_point::Buckets,
                    >| {
                        b.as_ref()
                            .map(|b| (b.offset, b.bucket_counts.clone()))
                            .unwrap_or_default()
                    };
                    Point {
                        attributes: &p.attributes,
                        start: p.start_time_unix_nano,
                        time: p.time_unix_nano,
                        flags: p.flags,
                        value: SeriesValue::Histogram(HistogramValue {
                            count: p.count,
                            sum: p.sum,
                            min: p.min,
                            max: p.max,
                            buckets: Buckets::Exponential {
                                scale: p.scale,
                                zero_count: p.zero_count,
                                zero_threshold: p.zero_threshold,
                                positive: range(&p.positive),
                                negative: range(&p.negative),
                            },
                        }),
                        exemplars: &p.exemplars,
                    }
                })
                .collect(),
        ),
        Data::Summary(s) => (
            "summary",
            // OTLP summaries carry no temporality field; the data model defines them cumulative.
            Temporality::Cumulative,
            s.data_points
                .iter()
                .map(|p| Point {
                    attributes: &p.attributes,
                    start: p.start_time_unix_nano,
                    time: p.time_unix_nano,
                    flags: p.flags,
                    value: SeriesValue::Summary {
                        count: p.count,
                        sum: p.sum,
                        quantiles: p
                            .quantile_values
                            .iter()
                            .take(MAX_BINS)
                            .map(|q| (q.quantile, q.value))
                            .collect(),
                    },
                    exemplars: &[],
                })
                .collect(),
        ),
    }
}

fn exemplar_views(
    exemplars: &[crate::proto::metrics::v1::Exemplar],
    kept_traces: &HashSet<String>,
) -> Vec<ExemplarView> {
    exemplars
        .iter()
        .map(|e| {
            let trace_id = clean::hex(&e.trace_id);
            ExemplarView {
                value: match e.value {
                    Some(exemplar::Value::AsDouble(d)) => d,
                    Some(exemplar::Value::AsInt(i)) => i as f64,
                    None => f64::NAN,
                },
                time: e.time_unix_nano,
                trace_kept: kept_traces.contains(&trace_id),
                trace_id,
                span_id: clean::hex(&e.span_id),
                attributes: clean::attributes(&e.filtered_attributes, SHORT, " "),
            }
        })
        .collect()
}

impl Series {
    /// Folds a point in the way its temporality says.
    fn merge(&mut self, point: Point<'_>, exemplars: Vec<ExemplarView>, not_shown: &mut NotShown) {
        let window = (point.start, point.time);
        match self.temporality {
            Temporality::Delta => {
                if !self.seen_windows.insert(window) {
                    not_shown.add("delta windows received twice (shown once)", 1);
                    return;
                }
                let added = match &mut self.value {
                    None => {
                        self.value = Some(point.value);
                        true
                    }
                    Some(value) => value.add(&point.value),
                };
                if !added {
                    not_shown.add(
                        "points whose buckets do not match the series' earlier ones",
                        1,
                    );
                    return;
                }
                self.since = self.since.min(point.start);
                self.latest = self.latest.max(point.time);
            }
            Temporality::Cumulative | Temporality::Unspecified | Temporality::Reading => {
                if point.time < self.latest {
                    not_shown.add("points older than the series' latest (superseded)", 1);
                    return;
                }
                if self.temporality != Temporality::Reading
                    && point.start != 0
                    && self.since != 0
                    && point.start != self.since
                {
                    self.resets += 1;
                }
                self.value = Some(point.value);
                self.since = point.start;
                self.latest = point.time;
            }
        }
        self.windows += 1;
        for e in exemplars {
            if !self.exemplars.contains(&e) {
                self.exemplars.push(e);
            }
        }
        if self.exemplars.len() > MAX_EXEMPLARS {
            self.exemplars.sort_by_key(|e| std::cmp::Reverse(e.time));
            let past = self.exemplars.len() - MAX_EXEMPLARS;
            not_shown.add("exemplars past the 8 latest of a series", past as u64);
            self.exemplars.truncate(MAX_EXEMPLARS);
        }
    }
}

fn metrics<'a>(
    requests: impl Iterator<Item = &'a ExportMetricsServiceRequest>,
    filter: &Filter,
    kept_traces: &HashSet<String>,
    not_shown: &mut NotShown,
) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    let mut index: HashMap<(String, String, String, &'static str), usize> = HashMap::new();
    for rm in requests.flat_map(|r| &r.resource_metrics) {
        let service = service_of(&rm.resource);
        if !filter.service_matches(&service) {
            continue;
        }
        for metric in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            let Some(data) = &metric.data else {
                not_shown.add("metrics with no data", 1);
                continue;
            };
            let (kind, temporality, points) = points(data);
            for point in points {
                if point.flags & NO_RECORDED_VALUE != 0 {
                    not_shown.add("points flagged \"no recorded value\"", 1);
                    continue;
                }
                if let SeriesValue::Histogram(h) = &point.value {
                    if !h.buckets.valid() {
                        not_shown.add("histogram points with malformed buckets", 1);
                        continue;
                    }
                }
                let mut sorted: Vec<&KeyValue> = point.attributes.iter().collect();
                sorted.sort_by(|a, b| a.key.cmp(&b.key));
                let sorted: Vec<KeyValue> = sorted.into_iter().cloned().collect();
                let attributes = clean::attributes(&sorted, SHORT, ", ");
                let key = (
                    service.clone(),
                    metric.name.clone(),
                    attributes.clone(),
                    kind,
                );
                let exemplars = exemplar_views(point.exemplars, kept_traces);
                let at = match index.get(&key) {
                    Some(&at) => at,
                    None if series.len() >= MAX_SERIES => {
                        not_shown.add("points of series past the 300 shown", 1);
                        continue;
                    }
                    None => {
                        index.insert(key, series.len());
                        series.push(Series {
                            service: service.clone(),
                            name: clean::text(&metric.name, SHORT),
                            unit: clean::text(&metric.unit, SHORT),
                            description: clean::text(&metric.description, SHORT),
                            kind,
                            temporality,
                            attributes,
                            value: None,
                            since: point.start,
                            latest: 0,
                            windows: 0,
                            resets: 0,
                            exemplars: Vec::new(),
                            seen_windows: HashSet::new(),
                        });
                        series.len() - 1
                    }
                };
                series[at].merge(point, exemplars, not_shown);
            }
        }
    }
    series
}

/// One log record, ready to print.
#[derive(Clone, Debug)]
pub(crate) struct LogView {
    pub(crate) time: u64,
    pub(crate) severity: String,
    pub(crate) body: String,
    pub(crate) attributes: String,
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    pub(crate) service: String,
    pub(crate) scope: String,
}

fn logs<'a>(
    requests: impl Iterator<Item = &'a ExportLogsServiceRequest>,
    filter: &Filter,
    not_shown: &mut NotShown,
) -> Vec<LogView> {
    let mut out = Vec::new();
    for rl in requests.flat_map(|r| &r.resource_logs) {
        let service = service_of(&rl.resource);
        if !filter.service_matches(&service) {
            continue;
        }
        for sl in &rl.scope_logs {
            let scope = sl
                .scope
                .as_ref()
                .map(|s| clean::text(&s.name, SHORT))
                .unwrap_or_default();
            for r in &sl.log_records {
                let trace_id = clean::hex(&r.trace_id);
                if filter.trace.is_some() && !filter.trace_matches(&trace_id) {
                    continue;
                }
                let mut attributes = clean::Bounded::new(LONG);
                if !r.event_name.is_empty() {
                    attributes.push("event.name=");
                    attributes.push(&r.event_name);
                    if !r.attributes.is_empty() {
                        attributes.push(" ");
                    }
                }
                attributes.attributes(&r.attributes, 0, " ");
                not_shown.add(
                    "log attributes the exporter dropped (its counts)",
                    u64::from(r.dropped_attributes_count),
                );
                out.push(LogView {
                    time: if r.time_unix_nano > 0 {
                        r.time_unix_nano
                    } else {
                        r.observed_time_unix_nano
                    },
                    severity: if r.severity_text.is_empty() {
                        format!("SEV{}", r.severity_number)
                    } else {
                        clean::text(&r.severity_text, 16)
                    },
                    body: clean::value(r.body.as_ref(), LONG),
                    attributes: attributes.finish(),
                    trace_id,
                    span_id: clean::hex(&r.span_id),
                    service: service.clone(),
                    scope: scope.clone(),
                });
            }
        }
    }
    out.sort_by_key(|l| l.time);
    if out.len() > MAX_LOGS {
        let past = out.len() - MAX_LOGS;
        not_shown.add("older log records past the 1000 shown", past as u64);
        out.drain(..past);
    }
    out
}

/// A service and what it sent (what is kept).
#[derive(Clone, Debug, Default)]
pub(crate) struct ServiceView {
    pub(crate) name: String,
    pub(crate) spans: u64,
    pub(crate) points: u64,
    pub(crate) logs: u64,
}

/// Everything a view draws.
#[derive(Clone, Debug)]
pub(crate) struct Model {
    pub(crate) counts: Counts,
    pub(crate) filter: Filter,
    pub(crate) services: Vec<ServiceView>,
    pub(crate) traces: Vec<TraceView>,
    pub(crate) series: Vec<Series>,
    pub(crate) logs: Vec<LogView>,
    pub(crate) not_shown: NotShown,
}

impl Model {
    pub(crate) fn build<'a>(
        traces_in: impl Iterator<Item = &'a ExportTraceServiceRequest> + Clone,
        metrics_in: impl Iterator<Item = &'a ExportMetricsServiceRequest> + Clone,
        logs_in: impl Iterator<Item = &'a ExportLogsServiceRequest> + Clone,
        counts: Counts,
        filter: Filter,
    ) -> Model {
        let mut not_shown = NotShown::default();
        not_shown.add(
            "requests evicted to stay under the memory caps",
            counts.evicted_requests,
        );
        let mut services: BTreeMap<String, ServiceView> = BTreeMap::new();
        let mut resource_services: Vec<String> = Vec::new();
        for rs in traces_in.clone().flat_map(|r| &r.resource_spans) {
            let name = service_of(&rs.resource);
            let view = services.entry(name.clone()).or_insert_with(|| ServiceView {
                name: name.clone(),
                ..Default::default()
            });
            view.spans += rs
                .scope_spans
                .iter()
                .map(|s| s.spans.len() as u64)
                .sum::<u64>();
            resource_services.push(name);
        }
        for rm in metrics_in.clone().flat_map(|r| &r.resource_metrics) {
            let name = service_of(&rm.resource);
            let view = services.entry(name.clone()).or_insert_with(|| ServiceView {
                name,
                ..Default::default()
            });
            view.points += rm
                .scope_metrics
                .iter()
                .map(|s| s.metrics.len() as u64)
                .sum::<u64>();
        }
        for rl in logs_in.clone().flat_map(|r| &r.resource_logs) {
            let name = service_of(&rl.resource);
            let view = services.entry(name.clone()).or_insert_with(|| ServiceView {
                name,
                ..Default::default()
            });
            view.logs += rl
                .scope_logs
                .iter()
                .map(|s| s.log_records.len() as u64)
                .sum::<u64>();
        }
        let mut traces = traces(traces_in, &resource_services, &filter, &mut not_shown);
        let kept: HashSet<String> = traces.iter().map(|t| t.trace_id.clone()).collect();
        let series = if filter.trace.is_some() {
            Vec::new()
        } else {
            metrics(metrics_in, &filter, &kept, &mut not_shown)
        };
        let logs = logs(logs_in, &filter, &mut not_shown);
        // Logs joined to their traces.
        let position: HashMap<String, usize> = traces
            .iter()
            .enumerate()
            .map(|(i, t)| (t.trace_id.clone(), i))
            .collect();
        for log in &logs {
            if let Some(&i) = position.get(&log.trace_id) {
                traces[i].logs.push(log.clone());
            }
        }
        Model {
            counts,
            filter,
            services: services.into_values().collect(),
            traces,
            series,
            logs,
            not_shown,
        }
    }

    /// One line: services, and what arrived.
    pub(crate) fn summary(&self) -> String {
        let names: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
        let c = &self.counts;
        format!(
            "services: {} | {} traces, {} spans | {} metric points | {} log records | {} requests ({} rejected)",
            if names.is_empty() { "-".to_owned() } else { names.join(", ") },
            self.traces.len(),
            c.spans,
            c.data_points,
            c.log_records,
            c.requests,
            c.rejected_requests
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_event_shows_what_it_carries_and_no_stray_separator() {
        use crate::proto::common::v1::{any_value, AnyValue, KeyValue};
        let exception = |attributes: &[(&str, &str)]| {
            let event = crate::proto::trace::v1::span::Event {
                name: "exception".into(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: (*k).into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue((*v).into())),
                        }),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            event_view(&event).text
        };
        let both = [
            ("exception.type", "io::Error"),
            ("exception.message", "gone"),
        ];
        assert_eq!(exception(&both), "io::Error: gone");
        assert_eq!(exception(&both[1..]), "gone");
        assert_eq!(exception(&both[..1]), "io::Error");
        assert_eq!(exception(&[]), "exception");
    }

    fn explicit(bounds: Vec<f64>, counts: Vec<u64>, min: f64, max: f64) -> HistogramValue {
        HistogramValue {
            count: counts.iter().sum(),
            sum: None,
            min: Some(min),
            max: Some(max),
            buckets: Buckets::Explicit { bounds, counts },
        }
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        // 100 values: 50 in (0,1], 50 in (1,2].
        let h = explicit(vec![1.0, 2.0], vec![50, 50, 0], 0.0, 2.0);
        assert_eq!(h.quantile(0.5), Some(1.0));
        assert_eq!(h.quantile(0.25), Some(0.5));
        assert_eq!(h.quantile(0.75), Some(1.5));
        assert_eq!(h.quantile(1.0), Some(2.0));
        // The open-ended bucket ends at the observed max.
        let tail = explicit(vec![1.0], vec![0, 10], 3.0, 5.0);
        assert_eq!(tail.quantile(0.5), Some(4.0));
        assert_eq!(
            explicit(vec![1.0], vec![0, 0], 0.0, 0.0).quantile(0.5),
            None
        );
    }

    #[test]
    fn exponential_buckets_merge_across_scales() {
        let at = |scale, offset, counts: Vec<u64>| Buckets::Exponential {
            scale,
            zero_count: 0,
            zero_threshold: 0.0,
            positive: (offset, counts),
            negative: (0, Vec::new()),
        };
        // Scale 1: buckets (√2^i, √2^(i+1)]; indices 2,3 fold into scale-0 index 1: (2, 4].
        let mut a = at(1, 2, vec![3, 4]);
        assert!(a.add(&at(0, 1, vec![5])));
        assert_eq!(a, at(0, 1, vec![12]));
        let bins = a.bins(None, None);
        let bin = bins.iter().find(|b| b.count == 12).unwrap();
        assert_eq!((bin.lower, bin.upper), (2.0, 4.0));
    }

    #[test]
    fn filters_parse_from_a_query() {
        let f = Filter::parse("service=my%20svc&trace=ABCD&x=1");
        assert_eq!(f.service.as_deref(), Some("my svc"));
        assert_eq!(f.trace.as_deref(), Some("abcd"));
        assert_eq!(
            Filter::parse("service=&trace=%zz%"),
            Filter {
                service: None,
                trace: Some("%zz%".into())
            }
        );
    }
}
