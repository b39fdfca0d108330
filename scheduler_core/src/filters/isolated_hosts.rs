//! Nova's IsolatedHostsFilter: isolated images on isolated hosts (and, when restricted, only
//! there).

use super::HostFilter;
use crate::ctx::Ctx;
use crate::table::{HostTable, ISOLATED};

pub(crate) struct IsolatedHostsFilter;

impl HostFilter for IsolatedHostsFilter {
    const NAME: &'static str = "IsolatedHostsFilter";
    fn inactive(t: &HostTable, ctx: &Ctx) -> bool {
        // no isolated hosts configured and nothing restricted -> always passes
        t.isolated_hosts.is_empty() && (t.isolated_images.is_empty() || !ctx.image_isolated)
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        let host_isolated = t.cols.flags[i] & ISOLATED != 0;
        let restrict = t.cfg.restrict_isolated_hosts_to_isolated_images;
        if t.isolated_images.is_empty() {
            return !restrict || !host_isolated;
        }
        if restrict {
            ctx.image_isolated == host_isolated
        } else {
            !ctx.image_isolated || host_isolated
        }
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        if t.cols.flags[i] & ISOLATED != 0 {
            format!(
                "{}: isolated host, image {:?} is not isolated",
                t.name(i),
                ctx.req.image_id
            )
        } else {
            format!("{}: image {:?} is isolated, host is not", t.name(i), ctx.req.image_id)
        }
    }
}
