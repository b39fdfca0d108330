//! Nova's ServerGroupSoftAffinityWeigher: more members of the group on a host is better.

use super::{HostLoad, HostWeigher};
use crate::model::GroupPolicy;

pub(crate) struct SoftAffinityWeigher;

impl HostWeigher for SoftAffinityWeigher {
    const NAME: &'static str = "ServerGroupSoftAffinityWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 7; // shared with the anti-affinity one: a request has one policy
    const AGGREGATE_KEY: &'static str = "soft_affinity_weight_multiplier";
    fn value(h: &HostLoad) -> f64 {
        if h.policy == GroupPolicy::SoftAffinity {
            h.group_members
        } else {
            0.0
        }
    }
    fn applies(policy: GroupPolicy) -> bool {
        policy == GroupPolicy::SoftAffinity
    }
}
