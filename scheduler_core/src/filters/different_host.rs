//! Nova's DifferentHostFilter: no host holding one of the `different_host` instances.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::table::HostTable;

pub(crate) struct DifferentHostFilter;

impl HostFilter for DifferentHostFilter {
    const NAME: &'static str = "DifferentHostFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.diff.is_none()
    }
    fn passes(_t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        ctx.diff.as_ref().is_none_or(|s| !s.contains(&(i as u32)))
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        format!("{}: a different_host instance is on this host", t.name(i))
    }
}
