//! Nova's RAMWeigher: more free RAM is better (spread).

use super::{HostLoad, HostWeigher};

pub(crate) struct RamWeigher;

impl HostWeigher for RamWeigher {
    const NAME: &'static str = "RAMWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 0;
    const AGGREGATE_KEY: &'static str = "ram_weight_multiplier";
    const MINVAL: Option<f64> = Some(0.0); // Nova 22+ (bug 1870096): no negative weights
    fn value(h: &HostLoad) -> f64 {
        (h.ram_base - h.ram_used) as f64
    }
}
