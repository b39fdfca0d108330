//! Per-request state shared by the filters and weighers while one request is planned.

use std::collections::{HashMap, HashSet};

use crate::filters;
use crate::model::{GroupPolicy, Request};
use crate::ops::VersionPredicate;
use crate::table::{HostTable, NO_ID};

pub(crate) struct Ctx<'r> {
    pub req: &'r Request,
    /// DISK_GB per instance
    pub disk: i64,
    /// per slot, instances of this batch already placed there (empty = none yet)
    pub picks: Vec<u32>,
    /// per slot: weigher row must be computed fresh (picked / soft group host)
    pub special: Vec<bool>,
    pub group_count: HashMap<u32, u32>,
    pub group_nonempty: bool,
    pub policy: GroupPolicy,
    pub ignore: HashSet<u32>,
    pub same: Option<HashSet<u32>>,
    pub diff: Option<HashSet<u32>>,
    /// requested AZ (`NO_ID` if no host has that string)
    pub az_req: Option<u32>,
    pub cap_reqs: Vec<filters::CapReq>,
    /// some capability requirement reads a host's own numbers or name (evaluated per host)
    pub cap_reads_host: bool,
    /// per `Details`: 0 unknown, 1 passes, 2 fails
    pub cap_details_cache: Vec<u8>,
    /// per capability set: 0 unknown, 1 passes, 2 fails
    pub cap_cache: Vec<u8>,
    pub agg_reqs: Vec<(String, String)>,
    /// per aggregate set: 0 unknown, 1 passes, 2 fails
    pub agg_cache: Vec<u8>,
    /// requested canonical arch/hv_type/vm_mode ids (`NO_ID` if unknown)
    pub img_props: Vec<u32>,
    /// Some(None): malformed predicate
    pub img_version: Option<Option<VersionPredicate>>,
    pub img_maxphysaddr_bits: Option<i64>,
    /// per `Details`: 0 unknown, 1 passes, 2 fails
    pub img_cache: Vec<u8>,
    pub image_isolated: bool,
    /// required (id, name) and forbidden trait ids
    pub traits_required: Vec<(u32, String)>,
    pub traits_forbidden: Vec<u32>,
    /// the anti-affinity group's members allowed per host (>= 1)
    pub max_server_per_host: u32,
}

impl<'r> Ctx<'r> {
    pub(crate) fn new(t: &HostTable, req: &'r Request) -> Ctx<'r> {
        let policy = GroupPolicy::from_name(&req.group_policy);
        let mut group_count = HashMap::new();
        for h in &req.group_hosts {
            if let Some(i) = t.slot(h) {
                *group_count.entry(i as u32).or_insert(0u32) += 1;
            }
        }
        let ignore: HashSet<u32> = req
            .ignore_hosts
            .iter()
            .filter_map(|h| t.slot(h))
            .map(|i| i as u32)
            .collect();
        let hosts_of = |ids: &[String]| (!ids.is_empty()).then(|| filters::instance_slots(t, ids));
        let az_req = (!req.availability_zone.is_empty())
            .then(|| t.strings.get(&req.availability_zone).unwrap_or(NO_ID));
        let mut special = Vec::new();
        if policy.is_soft() && !group_count.is_empty() {
            special = vec![false; t.len()];
            for &i in group_count.keys() {
                special[i as usize] = true;
            }
        }
        let (traits_required, traits_forbidden) = filters::requested_traits(t, req);
        let cap_reqs = filters::capability_requirements(req);
        Ctx {
            req,
            disk: req.disk_gb(),
            picks: Vec::new(),
            special,
            group_nonempty: !req.group_hosts.is_empty(),
            group_count,
            policy,
            ignore,
            same: hosts_of(&req.same_host),
            diff: hosts_of(&req.different_host),
            az_req,
            cap_reads_host: cap_reqs
                .iter()
                .any(|r| r.source == filters::CapSource::Host),
            cap_details_cache: Vec::new(),
            cap_reqs,
            cap_cache: Vec::new(),
            agg_reqs: filters::aggregate_requirements(req),
            agg_cache: Vec::new(),
            img_props: filters::requested_properties(t, req),
            img_version: filters::requested_version(req),
            img_maxphysaddr_bits: filters::requested_maxphysaddr_bits(req),
            img_cache: Vec::new(),
            traits_required,
            traits_forbidden,
            max_server_per_host: req.group_max_server_per_host.clamp(1, u32::MAX as i64) as u32,
            image_isolated: !req.image_id.is_empty() && t.isolated_images.contains(&req.image_id),
        }
    }

    /// Instances of this batch already placed on slot `i`.
    #[inline]
    pub(crate) fn pc(&self, i: usize) -> i64 {
        if self.picks.is_empty() {
            0
        } else {
            self.picks[i] as i64
        }
    }
}
