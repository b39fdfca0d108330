//! Nova's ImagePropertiesFilter: the host supports the image's architecture, hypervisor type,
//! VM mode and requested hypervisor version.

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

fn host_supports(t: &HostTable, i: usize, ctx: &Ctx) -> bool {
    let (arch, hvt) = (t.cols.arch[i], t.cols.hv_type[i]);
    if arch == t.empty_id && hvt == t.empty_id {
        return false; // host advertises no supported instances
    }
    for &p in &ctx.img_props {
        if p == NO_ID || (p != arch && p != hvt && p != t.hvm_id) {
            return false;
        }
    }
    let ver = t.cols.hv_version[i];
    match &ctx.img_version {
        Some(pred) if ver != 0 => match pred {
            Some(p) => predicate_satisfied(p, &version_parts(ver)),
            None => false,
        },
        _ => true,
    }
}

impl HostFilter for ImagePropertiesFilter {
    const NAME: &'static str = "ImagePropertiesFilter";
    fn inactive(_t: &HostTable, ctx: &Ctx) -> bool {
        ctx.img_props.is_empty()
    }
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
        ctx.img_props.is_empty() || host_supports(t, i, ctx)
    }
    fn reason(t: &HostTable, i: usize, _ctx: &Ctx) -> String {
        format!(
            "{}: image properties not supported by host (arch {:?}, hypervisor {:?} {})",
            t.name(i),
            t.strings.str(t.cols.arch[i]),
            t.strings.str(t.cols.hv_type[i]),
            t.cols.hv_version[i]
        )
    }
}
