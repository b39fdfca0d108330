//! Nova's CPUWeigher: more free vCPUs (total × ratio − used) is better.

use super::{HostLoad, HostWeigher};

pub(crate) struct CpuWeigher;

impl HostWeigher for CpuWeigher {
    const NAME: &'static str = "CPUWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 1;
    const AGGREGATE_KEY: &'static str = "cpu_weight_multiplier";
    const MINVAL: Option<f64> = Some(0.0); // Nova 22+ (bug 1870096): no negative weights
    fn value(h: &HostLoad) -> f64 {
        h.cpu_base - h.cpu_used as f64
    }
}
