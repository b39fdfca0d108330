//! Placement's required and forbidden traits (Nova asks Placement for hosts with them; drover
//! holds each host's traits and checks them here, so the explanation can name them).

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::Request;
use crate::table::{HostTable, NO_ID};

pub(crate) struct TraitsFilter;

/// (required, forbidden) trait ids; a required trait no host has is `NO_ID` (every host lacks
/// it), a forbidden one no host has is left out.
pub(crate) fn requested_traits(t: &HostTable, req: &Request) -> (Vec<(u32, String)>, Vec<u32>) {
    let (required, forbidden) = req.traits();
    let required = required
        .into_iter()
        .map(|x| (t.strings.get(x).unwrap_or(NO_ID), x.to_string()))
        .collect();
    let forbidden = forbidden.into_iter().filter_map(|x| t.strings.get(x)).collect();
    (required, forbidden)
}

fn has(t: &HostTable, i: usize, id: u32) -> bool {
    t.details(i).traits.binary_search(&id).is_ok()
}

impl HostFilter for TraitsFilter {
    const NAME: &'static str = "TraitsFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.traits_required.is_empty() && ctx.traits_forbidden.is_empty()
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        ctx.traits_required.iter().all(|&(id, _)| has(t, i, id))
            && !ctx.traits_forbidden.iter().any(|&id| has(t, i, id))
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        let name = t.name(i);
        if let Some((_, x)) = ctx.traits_required.iter().find(|&&(id, _)| !has(t, i, id)) {
            return format!("{name}: lacks trait {x}");
        }
        match ctx.traits_forbidden.iter().find(|&&id| has(t, i, id)) {
            Some(&id) => format!("{name}: has forbidden trait {}", t.strings.str(id)),
            None => format!("{name}: traits do not match"),
        }
    }
}
