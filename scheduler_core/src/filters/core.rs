//! Nova's CoreFilter (Placement's VCPU check): free vCPUs × allocation ratio cover the flavor.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::explain::fmt_num;
use crate::table::HostTable;

pub(crate) struct CoreFilter;

impl HostFilter for CoreFilter {
    const NAME: &'static str = "CoreFilter";
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        ctx.picks
            .is_empty()
            .then(|| Term::AtLeast(&t.cols.free_vcpu, ctx.req.vcpus as f64))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        t.free_vcpu_at(i, ctx.pc(i), ctx.req.vcpus) >= ctx.req.vcpus as f64
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: free vcpus {} < {} requested",
            t.name(i),
            fmt_num(t.free_vcpu_at(i, ctx.pc(i), ctx.req.vcpus)),
            ctx.req.vcpus
        )
    }
}
