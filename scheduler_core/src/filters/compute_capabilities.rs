//! Nova's ComputeCapabilitiesFilter: the flavor's extra specs match the host's capabilities.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::Request;
use crate::ops::match_spec;
use crate::table::HostTable;

pub(crate) struct ComputeCapabilitiesFilter;

/// (capability key, requirement, scoped). As in Nova, a `capabilities:` key binds every host,
/// while an unscoped key binds only the hosts that report that capability (the others skip
/// it: the key may be meant for another filter).
pub(crate) fn requirements(req: &Request) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    for (k, v) in &req.flavor_extra_specs {
        let scope: Vec<&str> = k.split(':').collect();
        if scope.len() > 1 {
            if scope[0] != "capabilities" {
                continue;
            }
            out.push((scope[1..].join(":"), v.clone(), true));
        } else {
            out.push((k.clone(), v.clone(), false));
        }
    }
    out
}

fn set_passes(t: &HostTable, set: u32, ctx: &Ctx) -> bool {
    let cs = &t.sets.cap_sets[set as usize];
    ctx.cap_reqs.iter().all(|(k, req, scoped)| match cs.get(k) {
        Some(v) => match_spec(v, req),
        None => !scoped,
    })
}

impl HostFilter for ComputeCapabilitiesFilter {
    const NAME: &'static str = "ComputeCapabilitiesFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.cap_reqs.is_empty()
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        if ctx.cap_reqs.is_empty() {
            return true;
        }
        // one evaluation per distinct capability set
        let set = t.cols.cap_set[i];
        if ctx.cap_cache.is_empty() {
            ctx.cap_cache = vec![0; t.sets.cap_sets.len()];
        }
        match ctx.cap_cache[set as usize] {
            1 => true,
            2 => false,
            _ => {
                let ok = set_passes(t, set, ctx);
                ctx.cap_cache[set as usize] = if ok { 1 } else { 2 };
                ok
            }
        }
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        let name = t.name(i);
        let cs = &t.sets.cap_sets[t.cols.cap_set[i] as usize];
        for (k, r, scoped) in &ctx.cap_reqs {
            match cs.get(k) {
                None if *scoped => return format!("{name}: capability {k:?} missing (requires {r:?})"),
                Some(v) if !match_spec(v, r) => {
                    return format!("{name}: capability {k}={v:?} does not match {r:?}")
                }
                _ => {}
            }
        }
        format!("{name}: capabilities do not match")
    }
}
