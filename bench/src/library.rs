//! What each compared library provides. Every workload is written once (workload.rs) against
//! [`Library`]; ours.rs, sdk.rs and fastrace.rs only say how their library does each step.

use crate::measure::Report;
use crate::workload::{Sizes, Workload};

/// Which signal a workload records, so a child starts only that library pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Traces,
    Metrics,
    Logs,
}

/// Where and how a child's pipeline exports: the library's default settings, except as named.
pub struct Pipeline<'a> {
    pub endpoint: &'a str,
    /// `service.name`, unique per child, so the receiver counts each child apart.
    pub service: &'a str,
    pub signal: Signal,
    /// False: every span is unsampled (sample rate 0, or an unsampled root context).
    pub sampled: bool,
    pub gzip: bool,
}

pub const SERVER_SPAN: &str = "GET /users/{id}";
pub const CHILD_SPAN: &str = "SELECT users";
pub const HISTOGRAM_NAME: &str = "db.client.operation.duration";
pub const HISTOGRAM_ATTRIBUTES: [(&str, &str); 3] = [
    ("db.system.name", "postgresql"),
    ("db.operation.name", "SELECT"),
    ("db.collection.name", "users"),
];

/// The attribute values that vary with the operation's index, as in a real service.
pub fn status_code(i: u64) -> i64 {
    200 + (i % 2) as i64
}

pub fn db_operation_name(i: u64) -> &'static str {
    if i.is_multiple_of(2) {
        "SELECT"
    } else {
        "select"
    }
}

/// One library's way of doing each step of the workloads. Spans: a server span
/// "GET /users/{id}" with `http.request.method`, `http.route`, `http.response.status_code`; a
/// child client span "SELECT users" with `db.system.name`, `db.collection.name`,
/// `db.operation.name`. Metrics: a histogram in seconds with 3 `db.*` attributes. Logs: the
/// library's bridge for the `log` crate.
pub trait Library: Sized {
    /// The signals this library records (fastrace: traces only).
    const SIGNALS: &'static [Signal];
    type Histogram;
    type BoundHistogram;

    fn start(pipeline: &Pipeline) -> Self;
    /// Flushes what was recorded and stops the pipeline (30 s at most).
    fn shutdown(self);

    fn server_span(&self, i: u64);
    /// Runs `body` with a server span (no attributes) open as the current span.
    fn under_parent(&self, body: &mut dyn FnMut());
    /// A client span with 3 attributes, a child of the current span.
    fn child_span(&self, i: u64);

    /// Installs the library's `log` bridge as the process's logger at INFO.
    fn install_log_bridge(&self);

    fn histogram(&self) -> Self::Histogram;
    /// Records `value` with the 3 attributes.
    fn record(histogram: &Self::Histogram, value: f64);
    /// A handle bound to the 3 attributes (the SDK: its experimental bound instrument).
    fn bind(histogram: &Self::Histogram) -> Self::BoundHistogram;
    fn record_bound(bound: &Self::BoundHistogram, value: f64);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lib {
    Ours,
    Sdk,
    Fastrace,
}

pub const LIBS: [Lib; 3] = [Lib::Ours, Lib::Sdk, Lib::Fastrace];

impl Lib {
    pub fn arg(self) -> &'static str {
        match self {
            Lib::Ours => "ours",
            Lib::Sdk => "sdk",
            Lib::Fastrace => "fastrace",
        }
    }

    pub fn parse(s: &str) -> Lib {
        LIBS.into_iter()
            .find(|l| l.arg() == s)
            .unwrap_or_else(|| panic!("unknown library {s}"))
    }

    pub fn records(self, signal: Signal) -> bool {
        match self {
            Lib::Ours => crate::ours::Ours::SIGNALS,
            Lib::Sdk => crate::sdk::Sdk::SIGNALS,
            Lib::Fastrace => crate::fastrace::Fastrace::SIGNALS,
        }
        .contains(&signal)
    }

    /// Runs `workload` through this library in this process (the child side).
    pub fn run(self, workload: Workload, pipeline: &Pipeline, sizes: &Sizes) -> Report {
        match self {
            Lib::Ours => crate::workload::run::<crate::ours::Ours>(workload, pipeline, sizes),
            Lib::Sdk => crate::workload::run::<crate::sdk::Sdk>(workload, pipeline, sizes),
            Lib::Fastrace => {
                crate::workload::run::<crate::fastrace::Fastrace>(workload, pipeline, sizes)
            }
        }
    }
}
