//! Nova's ComputeFilter: the host's compute service is enabled and up.

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::table::{HostTable, ENABLED, UP};

pub(crate) struct ComputeFilter;

impl HostFilter for ComputeFilter {
    const NAME: &'static str = "ComputeFilter";
    fn term<'t>(t: &'t HostTable, _ctx: &Ctx) -> Option<Term<'t>> {
        Some(Term::FlagsSet(&t.cols.flags, ENABLED | UP))
    }
    fn passes(t: &HostTable, i: usize, _ctx: &mut Ctx) -> bool {
        t.cols.flags[i] & (ENABLED | UP) == (ENABLED | UP)
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        if t.cols.flags[i] & ENABLED == 0 {
            format!("{}: compute service disabled", t.name(i))
        } else {
            format!("{}: compute service down", t.name(i))
        }
    }
}
