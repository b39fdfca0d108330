//! Nova's IoOpsWeigher: the number of io ops (negative default multiplier: fewer is better).

use super::{HostLoad, HostWeigher};

pub(crate) struct IoOpsWeigher;

impl HostWeigher for IoOpsWeigher {
    const NAME: &'static str = "IoOpsWeigher";
    const DEFAULT_MULTIPLIER: f64 = -1.0;
    const LANE: usize = 3;
    const AGGREGATE_KEY: &'static str = "io_ops_weight_multiplier";
    const MINVAL: Option<f64> = Some(0.0); // Nova 22+ (bug 1870096): no negative weights
    fn value(h: &HostLoad) -> f64 {
        h.io_ops as f64
    }
}
