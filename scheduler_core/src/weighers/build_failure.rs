//! Nova's BuildFailureWeigher: hosts with recent failed builds sink (value: the failures, with
//! the multiplier negated, so Nova's weights are 0 down to -multiplier).

use super::{HostLoad, HostWeigher};

pub(crate) struct BuildFailureWeigher;

impl HostWeigher for BuildFailureWeigher {
    const NAME: &'static str = "BuildFailureWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1_000_000.0;
    const LANE: usize = 5;
    const AGGREGATE_KEY: &'static str = "build_failure_weight_multiplier";
    fn value(h: &HostLoad) -> f64 {
        h.failed_builds as f64
    }
    fn multiplier(configured: f64) -> f64 {
        -configured
    }
}
