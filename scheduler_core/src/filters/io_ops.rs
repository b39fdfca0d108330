//! Nova's IoOpsFilter: fewer than `max_io_ops_per_host` io-heavy operations on the host.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::table::HostTable;

pub(crate) struct IoOpsFilter;

impl HostFilter for IoOpsFilter {
    const NAME: &'static str = "IoOpsFilter";
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        ctx.picks
            .is_empty()
            .then(|| Term::Below(&t.cols.io_ops, t.cfg.max_io_ops_per_host))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        t.cols.io_ops[i] + ctx.pc(i) < t.cfg.max_io_ops_per_host
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        format!(
            "{}: io ops {} >= max {}",
            t.name(i),
            t.cols.io_ops[i] + ctx.pc(i),
            t.cfg.max_io_ops_per_host
        )
    }
}
