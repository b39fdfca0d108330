//! Nova's NumInstancesWeigher: the number of instances (default multiplier 0: off).

use super::{HostLoad, HostWeigher};

pub(crate) struct NumInstancesWeigher;

impl HostWeigher for NumInstancesWeigher {
    const NAME: &'static str = "NumInstancesWeigher";
    const DEFAULT_MULTIPLIER: f64 = 0.0;
    const LANE: usize = 4;
    const AGGREGATE_KEY: &'static str = "num_instances_weight_multiplier";
    fn value(h: &HostLoad) -> f64 {
        h.num_instances as f64
    }
}
