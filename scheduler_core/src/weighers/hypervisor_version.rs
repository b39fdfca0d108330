//! Nova's HypervisorVersionWeigher: a newer hypervisor is better.

use super::{HostLoad, HostWeigher};

pub(crate) struct HypervisorVersionWeigher;

impl HostWeigher for HypervisorVersionWeigher {
    const NAME: &'static str = "HypervisorVersionWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 6;
    const AGGREGATE_KEY: &'static str = "hypervisor_version_weight_multiplier";
    fn value(h: &HostLoad) -> f64 {
        h.hv_version as f64
    }
}
