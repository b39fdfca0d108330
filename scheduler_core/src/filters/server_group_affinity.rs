//! Nova's ServerGroupAffinityFilter: once the group has members, only their hosts.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::GroupPolicy;
use crate::table::HostTable;

pub(crate) struct ServerGroupAffinityFilter;

impl HostFilter for ServerGroupAffinityFilter {
    const NAME: &'static str = "ServerGroupAffinityFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.policy != GroupPolicy::Affinity || !ctx.group_nonempty
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        Self::inactive(t, ctx) || ctx.group_count.contains_key(&(i as u32))
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        format!("{}: not a host of the affinity group", t.name(i))
    }
}
