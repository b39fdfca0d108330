//! Nova's SameHostFilter: only hosts holding one of the `same_host` instances.

use std::collections::HashSet;

use super::HostFilter;
use crate::ctx::Ctx;
use crate::table::HostTable;

pub(crate) struct SameHostFilter;

/// Slots of the hosts holding any of the given instances (by their claims).
pub(crate) fn instance_slots(t: &HostTable, ids: &[String]) -> HashSet<u32> {
    ids.iter()
        .filter_map(|id| t.claim_host(id))
        .filter_map(|h| t.slot(h))
        .map(|i| i as u32)
        .collect()
}

impl HostFilter for SameHostFilter {
    const NAME: &'static str = "SameHostFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.same.is_none()
    }
    fn passes(_t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        ctx.same.as_ref().is_none_or(|s| s.contains(&(i as u32)))
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        format!("{}: none of the same_host instances is on this host", t.name(i))
    }
}
