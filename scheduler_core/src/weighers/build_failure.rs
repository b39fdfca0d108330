//! Nova's BuildFailureWeigher: hosts with recent failed builds sink (value: −failures).

use super::{HostLoad, HostWeigher};

pub(crate) struct BuildFailureWeigher;

impl HostWeigher for BuildFailureWeigher {
    const NAME: &'static str = "BuildFailureWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1_000_000.0;
    const LANE: usize = 5;
    fn value(h: &HostLoad) -> f64 {
        (-h.failed_builds) as f64
    }
}
