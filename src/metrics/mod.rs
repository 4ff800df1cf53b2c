//! Metrics: instruments aggregated in-process (no allocation for an attribute set already seen,
//! no global lock on the record path), collected by the exporter every interval and on flush,
//! with delta temporality for counters and histograms. Trace sampling never affects them.
//!
//! ```
//! use plain_connect::{metrics, KeyValue};
//! let queries = metrics::histogram("db.client.operation.duration")
//!     .unit("s")
//!     .boundaries(metrics::DB_CLIENT_DURATION_BOUNDS.to_vec())
//!     .build()
//!     .unwrap();
//! queries.record(0.003, &[KeyValue::new("db.system.name", "postgresql")]);
//! ```

mod aggregate;
mod buckets;
mod data;
mod exemplar;
mod instrument;
mod name;
mod process;

pub use crate::settings::ExemplarFilter;
pub(crate) use data::{Exemplar, MetricData, MetricPoints, Number, NumberPoint, Temporality};
pub(crate) use exemplar::recording_mode;
pub(crate) use instrument::collect;
pub use instrument::{
    counter, default_boundaries, f64_counter, f64_up_down_counter, histogram, invalid_measurements,
    observable_counter, observable_gauge, observable_up_down_counter, u64_histogram,
    up_down_counter, BoundHistogram, Counter, Histogram, InstrumentBuilder, Measure, Observable,
    ObservableBuilder, ObservableCounter, ObservableGauge, ObservableUpDownCounter, Observer,
    UpDownCounter, DB_CLIENT_DURATION_BOUNDS, DEFAULT_BOUNDS, DEFAULT_CARDINALITY_LIMIT,
    SECONDS_BOUNDS,
};
pub use name::MetricsError;
pub(crate) use process::enable as enable_process_metrics;
