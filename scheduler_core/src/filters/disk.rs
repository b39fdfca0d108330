//! Nova's DiskFilter (Placement's DISK_GB check): root + ephemeral + swap fit the free disk.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::explain::fmt_num;
use crate::table::HostTable;

pub(crate) struct DiskFilter;

impl HostFilter for DiskFilter {
    const NAME: &'static str = "DiskFilter";
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        ctx.picks
            .is_empty()
            .then(|| Term::AtLeast(&t.cols.free_disk, ctx.disk as f64))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        t.free_disk_at(i, ctx.pc(i), ctx.disk) >= ctx.disk as f64
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: free disk {} GB < {} GB requested",
            t.name(i),
            fmt_num(t.free_disk_at(i, ctx.pc(i), ctx.disk)),
            ctx.disk
        )
    }
}
