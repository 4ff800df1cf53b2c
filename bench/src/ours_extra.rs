//! Histogram and log workloads through plain-connect (filled in once those signals land).

use crate::Workload;

pub fn run(_workload: Workload, _rounds: usize, _per_round: u64) -> f64 {
    0.0
}
