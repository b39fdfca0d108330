//! Nova's NumInstancesFilter: fewer than `max_instances_per_host` instances on the host.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::table::HostTable;

pub(crate) struct NumInstancesFilter;

impl HostFilter for NumInstancesFilter {
    const NAME: &'static str = "NumInstancesFilter";
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        ctx.picks
            .is_empty()
            .then(|| Term::Below(&t.cols.num_instances, t.cfg.max_instances_per_host))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        t.cols.num_instances[i] + ctx.pc(i) < t.cfg.max_instances_per_host
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: instances {} >= max {}",
            t.name(i),
            t.cols.num_instances[i] + ctx.pc(i),
            t.cfg.max_instances_per_host
        )
    }
}
