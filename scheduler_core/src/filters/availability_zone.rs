//! Nova's AvailabilityZoneFilter: the host is in the requested zone (its aggregates' zones if
//! any aggregate sets one, else its own).

use super::{HostFilter, Term};
use crate::ctx::Ctx;
use crate::table::{HostTable, NO_ID};

pub(crate) struct AvailabilityZoneFilter;

impl HostFilter for AvailabilityZoneFilter {
    const NAME: &'static str = "AvailabilityZoneFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.az_req.is_none()
    }
    fn term<'t>(t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
        t.sets
            .plain_zones()
            .then(|| Term::Equals(&t.cols.az, ctx.az_req.unwrap_or(NO_ID)))
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        let want = match ctx.az_req {
            Some(w) => w,
            None => return true,
        };
        match &t.agg_set(i).azs {
            Some(azs) => azs.iter().any(|a| a == &ctx.req.availability_zone),
            None => t.cols.az[i] == want,
        }
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        let have = match &t.agg_set(i).azs {
            Some(a) => a.join(","),
            None => t.strings.str(t.cols.az[i]).to_string(),
        };
        format!(
            "{}: availability zone {have:?} != {:?} requested",
            t.name(i),
            ctx.req.availability_zone
        )
    }
}
