//! Nova's ServerGroupAntiAffinityFilter: fewer of the group's members on the host than the
//! group's `max_server_per_host` rule (default 1: none).

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
        Self::inactive(t, ctx) || members_on(ctx, i) < ctx.max_server_per_host
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        if ctx.max_server_per_host == 1 {
            format!("{}: already a host of the anti-affinity group", t.name(i))
        } else {
            format!(
                "{}: already runs {} members of the anti-affinity group (max_server_per_host {})",
                t.name(i),
                members_on(ctx, i),
                ctx.max_server_per_host
            )
        }
    }
}

fn members_on(ctx: &Ctx, i: usize) -> u32 {
    ctx.group_count.get(&(i as u32)).copied().unwrap_or(0)
}
