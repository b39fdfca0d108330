//! Nova's AggregateMultiTenancyIsolation: hosts in aggregates with `filter_tenant_id*` metadata
//! take only those projects.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::table::HostTable;

pub(crate) struct AggregateMultiTenancyIsolation;

impl HostFilter for AggregateMultiTenancyIsolation {
    const NAME: &'static str = "AggregateMultiTenancyIsolation";
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        let tenants = &t.agg_set(i).tenants;
        tenants.is_empty() || tenants.iter().any(|x| x == &ctx.req.project_id)
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: aggregate isolated to other tenants (project {:?})",
            t.name(i),
            ctx.req.project_id
        )
    }
}
