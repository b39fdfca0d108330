//! Nova's RamFilter (Placement's MEMORY_MB check): free RAM × allocation ratio covers the flavor.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::explain::fmt_num;
use crate::table::HostTable;

pub(crate) struct RamFilter;

impl HostFilter for RamFilter {
    const NAME: &'static str = "RamFilter";
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        ctx.picks
            .is_empty()
            .then(|| Term::AtLeast(&t.cols.free_ram, ctx.req.memory_mb as f64))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        t.free_ram_at(i, ctx.pc(i), ctx.req.memory_mb) >= ctx.req.memory_mb as f64
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: free ram {} MB < {} MB requested",
            t.name(i),
            fmt_num(t.free_ram_at(i, ctx.pc(i), ctx.req.memory_mb)),
            ctx.req.memory_mb
        )
    }
}
