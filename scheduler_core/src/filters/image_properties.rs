//! Nova's ImagePropertiesFilter: one of the host's supported instances has the image's
//! architecture, hypervisor type and VM mode, and the host has the requested hypervisor version
//! and physical address bits.

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::Request;
use crate::ops::{
    canon_arch, canon_hv_type, canon_vm_mode, parse_version_predicate, predicate_satisfied,
    version_parts, VersionPredicate,
};
use crate::table::{HostTable, NO_ID};

pub(crate) struct ImagePropertiesFilter;

/// Requested canonical arch / hypervisor type / VM mode, interned (`NO_ID`: no host has it).
pub(crate) fn requested_properties(t: &HostTable, req: &Request) -> Vec<u32> {
    let arch = req.image_prop("hw_architecture", "architecture").map(canon_arch);
    let hvt = req.image_prop("img_hv_type", "hypervisor_type").map(canon_hv_type);
    let vmm = req.image_prop("hw_vm_mode", "vm_mode").map(canon_vm_mode);
    [arch, hvt, vmm]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .map(|p| t.strings.get(&p).unwrap_or(NO_ID))
        .collect()
}

/// The requested hypervisor version predicate: None if not asked, Some(None) if malformed.
pub(crate) fn requested_version(req: &Request) -> Option<Option<VersionPredicate>> {
    match req.image_prop("img_hv_requested_version", "hypervisor_version_requires") {
        Some(v) if !v.is_empty() => Some(parse_version_predicate(v)),
        _ => None,
    }
}

/// `hw_maxphysaddr_bits` as a number (Nova's ImageMetaProps field); None if absent, 0 or not one.
pub(crate) fn requested_maxphysaddr_bits(req: &Request) -> Option<i64> {
    let v = req.image_properties.iter().find(|(k, _)| k == "hw_maxphysaddr_bits")?;
    v.1.trim().parse::<i64>().ok().filter(|&b| b != 0)
}

/// The host's `cpu_info.maxphysaddr.bits`, if it reports a number there.
fn maxphysaddr_bits(t: &HostTable, i: usize) -> Option<i64> {
    let info = t.details(i).cpu_info.as_ref()?;
    info.get("maxphysaddr")?.get("bits")?.as_i64().filter(|&b| b != 0)
}

fn host_supports(t: &HostTable, i: usize, ctx: &Ctx) -> bool {
    let supported = &t.details(i).supported;
    if supported.is_empty() {
        return false; // host advertises no supported instances
    }
    let ver = t.details(i).hv_version;
    let version_ok = match &ctx.img_version {
        Some(pred) if ver != 0 => match pred {
            Some(p) => predicate_satisfied(p, &version_parts(ver)),
            None => false,
        },
        _ => true,
    };
    let bits_ok = match (ctx.img_maxphysaddr_bits, maxphysaddr_bits(t, i)) {
        (Some(want), Some(have)) => have >= want,
        _ => true,
    };
    version_ok
        && bits_ok
        && supported
            .iter()
            .any(|e| ctx.img_props.iter().all(|&p| p != NO_ID && e.contains(&p)))
}

impl HostFilter for ImagePropertiesFilter {
    const NAME: &'static str = "ImagePropertiesFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.img_props.is_empty()
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        if ctx.img_props.is_empty() {
            return true;
        }
        // everything it reads is the host's `Details`: one evaluation per kind of host
        let d = t.cols.cold[i].details as usize;
        if ctx.img_cache.is_empty() {
            ctx.img_cache = vec![0; t.sets.details.len()];
        }
        match ctx.img_cache[d] {
            1 => true,
            2 => false,
            _ => {
                let ok = host_supports(t, i, ctx);
                ctx.img_cache[d] = if ok { 1 } else { 2 };
                ok
            }
        }
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        let supported: Vec<String> = t
            .details(i)
            .supported
            .iter()
            .map(|e| e.map(|x| t.strings.str(x)).join("/"))
            .collect();
        format!(
            "{}: image properties not supported by host (supports {}, hypervisor version {}{})",
            t.name(i),
            if supported.is_empty() { "nothing".to_string() } else { supported.join(", ") },
            t.cols.hv_version[i],
            match maxphysaddr_bits(t, i) {
                Some(b) => format!(", {b} physical address bits"),
                None => String::new(),
            }
        )
    }
}
