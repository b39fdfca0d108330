//! Nova's AggregateInstanceExtraSpecsFilter: the flavor's extra specs match the metadata of
//! the host's aggregates.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::Request;
use crate::ops::match_spec;
use crate::table::HostTable;

pub(crate) struct AggregateInstanceExtraSpecsFilter;

/// (metadata key, requirement) pairs: unscoped keys and `aggregate_instance_extra_specs:` ones.
pub(crate) fn requirements(req: &Request) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in &req.flavor_extra_specs {
        let key = match k.split_once(':') {
            Some((scope, rest)) => {
                if scope != "aggregate_instance_extra_specs" {
                    continue;
                }
                rest.to_string()
            }
            None => k.clone(),
        };
        out.push((key, v.clone()));
    }
    out
}

fn set_passes(t: &HostTable, set: u32, ctx: &Ctx) -> bool {
    let a = &t.sets.agg_sets[set as usize];
    ctx.agg_reqs.iter().all(|(k, req)| match a.get(k) {
        Some(vals) if !vals.is_empty() => vals.iter().any(|v| match_spec(v, req)),
        _ => false,
    })
}

impl HostFilter for AggregateInstanceExtraSpecsFilter {
    const NAME: &'static str = "AggregateInstanceExtraSpecsFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.agg_reqs.is_empty()
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        if ctx.agg_reqs.is_empty() {
            return true;
        }
        // one evaluation per distinct aggregate set
        let set = t.cols.agg_set[i];
        if ctx.agg_cache.is_empty() {
            ctx.agg_cache = vec![0; t.sets.agg_sets.len()];
        }
        match ctx.agg_cache[set as usize] {
            1 => true,
            2 => false,
            _ => {
                let ok = set_passes(t, set, ctx);
                ctx.agg_cache[set as usize] = if ok { 1 } else { 2 };
                ok
            }
        }
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        let name = t.name(i);
        let a = t.agg_set(i);
        for (k, r) in &ctx.agg_reqs {
            match a.get(k) {
                Some(vals) if vals.iter().any(|v| match_spec(v, r)) => {}
                Some(vals) => {
                    return format!(
                        "{name}: aggregate metadata {k}={:?} does not match {r:?}",
                        vals.join(",")
                    )
                }
                None => return format!("{name}: aggregate metadata {k:?} missing (requires {r:?})"),
            }
        }
        format!("{name}: aggregate metadata does not match")
    }
}
