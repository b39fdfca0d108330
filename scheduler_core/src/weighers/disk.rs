//! Nova's DiskWeigher: more free disk (in MB, as Nova's free_disk_mb) is better.

use super::{HostLoad, HostWeigher};

pub(crate) struct DiskWeigher;

impl HostWeigher for DiskWeigher {
    const NAME: &'static str = "DiskWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 2;
    const AGGREGATE_KEY: &'static str = "disk_weight_multiplier";
    const MINVAL: Option<f64> = Some(0.0); // Nova 22+ (bug 1870096): no negative weights
    fn value(h: &HostLoad) -> f64 {
        ((h.disk_base - h.disk_used) * 1024) as f64
    }
}
