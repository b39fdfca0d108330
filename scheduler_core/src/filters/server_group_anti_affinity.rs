//! Nova's ServerGroupAntiAffinityFilter: never a host of the group's members.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::GroupPolicy;
use crate::table::HostTable;

pub(crate) struct ServerGroupAntiAffinityFilter;

impl HostFilter for ServerGroupAntiAffinityFilter {
    const NAME: &'static str = "ServerGroupAntiAffinityFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.policy != GroupPolicy::AntiAffinity || !ctx.group_nonempty
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        Self::inactive(t, ctx) || !ctx.group_count.contains_key(&(i as u32))
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        format!("{}: already a host of the anti-affinity group", t.name(i))
    }
}
