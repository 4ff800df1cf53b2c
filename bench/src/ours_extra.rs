//! Histogram and log workloads through plain-connect.

use crate::{median_ns, Workload};
use plain_connect::{metrics, KeyValue};

pub fn run(workload: Workload, rounds: usize, per_round: u64) -> f64 {
    let attributes = [
        KeyValue::new("db.system.name", "postgresql"),
        KeyValue::new("db.operation.name", "SELECT"),
        KeyValue::new("db.collection.name", "users"),
    ];
    match workload {
        Workload::Histogram | Workload::HistogramBound => {
            let histogram = metrics::histogram("db.client.operation.duration")
                .unit("s")
                .boundaries(metrics::DB_CLIENT_DURATION_BOUNDS.to_vec())
                .build()
                .unwrap();
            if workload == Workload::HistogramBound {
                let bound = histogram.bind(&attributes);
                median_ns(rounds, per_round, |i| bound.record(0.001 * (i % 50) as f64))
            } else {
                median_ns(rounds, per_round, |i| {
                    histogram.record(0.001 * (i % 50) as f64, &attributes)
                })
            }
        }
        Workload::Log => {
            plain_connect::logs::install(None).expect("first logger in this process");
            median_ns(rounds, per_round, |i| log::info!("order {i} placed"))
        }
        Workload::LogFiltered => {
            // An app logger that wants everything widens `log`'s max level, so DEBUG records
            // reach the bridge, which must drop them for the export at about the same cost.
            plain_connect::logs::install(None).expect("first logger in this process");
            log::set_max_level(log::LevelFilter::Trace);
            median_ns(rounds, per_round, |i| log::debug!("order {i} looked up"))
        }
        _ => unreachable!(),
    }
}
