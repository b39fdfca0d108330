//! Nova's ServerGroupSoftAntiAffinityWeigher: fewer members of the group on a host is better.

use super::{HostLoad, HostWeigher};
use crate::model::GroupPolicy;

pub(crate) struct SoftAntiAffinityWeigher;

impl HostWeigher for SoftAntiAffinityWeigher {
    const NAME: &'static str = "ServerGroupSoftAntiAffinityWeigher";
    const DEFAULT_MULTIPLIER: f64 = 1.0;
    const LANE: usize = 7; // shared with the affinity one: a request has one policy
    const AGGREGATE_KEY: &'static str = "soft_anti_affinity_weight_multiplier";
    fn value(h: &HostLoad) -> f64 {
        if h.policy == GroupPolicy::SoftAntiAffinity {
            0.0 - h.group_members // no -0.0
        } else {
            0.0
        }
    }
    fn applies(policy: GroupPolicy) -> bool {
        policy == GroupPolicy::SoftAntiAffinity
    }
}
