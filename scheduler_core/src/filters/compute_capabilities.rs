//! Nova's ComputeCapabilitiesFilter (`_satisfies_extra_specs`): the flavor's extra specs match
//! what the host has.
//!
//! A key `capabilities:a:b:c` (or an unscoped key the host has) is resolved the way Nova's
//! `_get_capabilities` walks a `HostState`: the first step is one of the host's own attributes
//! (`hypervisor_version`, `cpu_info`, `free_ram_mb`, ...) or else a compute stat (drover: the
//! reported capabilities); each further step looks into the value, JSON text parsed first (a
//! host's `cpu_info` is a JSON object). The value found is compared as Python's `str()` of it.
//! `hw:maxphysaddr_bits=N` is Nova's shorthand for `capabilities:cpu_info:maxphysaddr:bits >= N`.

use serde_json::{json, Value};

use super::HostFilter;
use crate::ctx::Ctx;
use crate::model::Request;
use crate::ops::match_spec;
use crate::pyvalue::py_str;
use crate::table::HostTable;

pub(crate) struct ComputeCapabilitiesFilter;

/// What a requirement's value depends on, so its result can be shared by hosts alike.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// the compute stats: one result per capability set
    Stats,
    /// hypervisor type/version, cpu_info, supported instances: one result per `Details`
    Details,
    /// the host's own numbers or name: evaluated per host
    Host,
}

/// One extra spec this filter checks.
#[derive(Clone, Debug)]
pub(crate) struct CapReq {
    /// the key's steps after `capabilities:` (or the unscoped key)
    pub scope: Vec<String>,
    pub req: String,
    /// `capabilities:`-scoped: binds every host; unscoped: only hosts that have the key
    pub scoped: bool,
    pub source: Source,
}

fn source(first: &str) -> Source {
    match first {
        "hypervisor_type" | "hypervisor_version" | "cpu_info" | "supported_instances" => Source::Details,
        k if ATTRIBUTES.contains(&k) => Source::Host,
        _ => Source::Stats,
    }
}

/// The host attributes Nova's lookup finds before the stats (`HostState` fields drover has).
const ATTRIBUTES: &[&str] = &[
    "host",
    "nodename",
    "hypervisor_hostname",
    "hypervisor_type",
    "hypervisor_version",
    "cpu_info",
    "supported_instances",
    "total_usable_ram_mb",
    "total_usable_disk_gb",
    "free_ram_mb",
    "free_disk_mb",
    "disk_mb_used",
    "vcpus_total",
    "vcpus_used",
    "num_instances",
    "num_io_ops",
    "failed_builds",
    "cpu_allocation_ratio",
    "ram_allocation_ratio",
    "disk_allocation_ratio",
];

pub(crate) fn requirements(req: &Request) -> Vec<CapReq> {
    let mut out = Vec::new();
    let maxphys = req.flavor_extra_specs.iter().find(|(k, _)| k == "hw:maxphysaddr_bits");
    for (k, v) in &req.flavor_extra_specs {
        if k == "hw:maxphysaddr_bits" {
            continue;
        }
        let scope: Vec<&str> = k.split(':').collect();
        if scope.len() > 1 {
            if scope[0] != "capabilities" {
                continue;
            }
            let scope: Vec<String> = scope[1..].iter().map(|s| s.to_string()).collect();
            let source = source(&scope[0]);
            out.push(CapReq { scope, req: v.clone(), scoped: true, source });
        } else {
            out.push(CapReq { scope: vec![k.clone()], req: v.clone(), scoped: false, source: source(k) });
        }
    }
    if let Some((_, bits)) = maxphys {
        // Nova replaces the key in the dict: it takes the place of an explicit one
        out.retain(|r| r.scope != ["cpu_info", "maxphysaddr", "bits"]);
        out.push(CapReq {
            scope: ["cpu_info", "maxphysaddr", "bits"].map(String::from).to_vec(),
            req: format!(">= {bits}"),
            scoped: true,
            source: Source::Details,
        });
    }
    out
}


/// A value found on the way: text (maybe JSON to look into) or a decoded value.
enum Found {
    Text(String),
    Json(Value),
}

fn attribute(t: &HostTable, i: usize, key: &str) -> Option<Found> {
    let c = &t.cols;
    let cold = &c.cold[i];
    let int = |x: i64| Some(Found::Json(json!(x)));
    let float = |x: f64| Some(Found::Json(json!(x)));
    match key {
        "host" | "nodename" | "hypervisor_hostname" => Some(Found::Text(cold.name.to_string())),
        "hypervisor_type" => {
            let s = t.strings.str(t.details(i).hv_type_raw);
            (!s.is_empty()).then(|| Found::Text(s.to_string()))
        }
        "hypervisor_version" => {
            let v = t.details(i).hv_version;
            (v != 0).then(|| Found::Json(json!(v)))
        }
        "cpu_info" => {
            let raw = &t.details(i).cpu_info_raw;
            (!raw.is_empty()).then(|| Found::Text(raw.clone()))
        }
        "supported_instances" => Some(Found::Json(Value::Array(
            t.details(i)
                .supported
                .iter()
                .map(|e| Value::Array(e.iter().map(|&x| json!(t.strings.str(x))).collect()))
                .collect(),
        ))),
        "total_usable_ram_mb" => int(cold.memory_mb),
        "total_usable_disk_gb" => int(cold.disk_gb),
        "free_ram_mb" => int(cold.memory_mb - cold.reserved_memory_mb - c.used_ram[i]),
        "free_disk_mb" => int((cold.disk_gb - cold.reserved_disk_gb - c.used_disk[i]) * 1024),
        "disk_mb_used" => int((c.used_disk[i] + cold.reserved_disk_gb) * 1024),
        "vcpus_total" => int(cold.vcpus),
        "vcpus_used" => int(c.used_vcpu[i]),
        "num_instances" => int(c.num_instances[i]),
        "num_io_ops" => int(c.io_ops[i]),
        "failed_builds" => int(c.failed_builds[i]),
        "cpu_allocation_ratio" => float(cold.cpu_ratio),
        "ram_allocation_ratio" => float(cold.ram_ratio),
        "disk_allocation_ratio" => float(cold.disk_ratio),
        _ => None,
    }
}

/// Nova's `_get_capabilities` followed by `str()`: None where Nova's lookup gives None.
fn lookup(t: &HostTable, i: usize, scope: &[String]) -> Option<String> {
    let first = scope[0].as_str();
    let mut found = if first == "cpu_info" && scope.len() > 1 {
        // the object parsed once per kind of host (JSON text that is not one has no keys)
        Found::Json(t.details(i).cpu_info.clone()?)
    } else if ATTRIBUTES.contains(&first) {
        attribute(t, i, first)?
    } else {
        let caps = &t.sets.cap_sets[t.cols.cap_set[i] as usize];
        Found::Text(caps.get(first)?.to_string())
    };
    for key in &scope[1..] {
        let value = match found {
            Found::Text(s) => serde_json::from_str::<Value>(&s).ok()?,
            Found::Json(Value::String(s)) => serde_json::from_str::<Value>(&s).ok()?,
            Found::Json(v) => v,
        };
        found = Found::Json(value.as_object()?.get(key.as_str())?.clone());
    }
    match found {
        Found::Text(s) => Some(s),
        Found::Json(v) => py_str(&v),
    }
}

fn has_key(t: &HostTable, i: usize, key: &str) -> bool {
    ATTRIBUTES.contains(&key) || t.sets.cap_sets[t.cols.cap_set[i] as usize].get(key).is_some()
}

/// The first requirement host `i` fails, with the value it has (None: it has none).
fn first_failure<'c>(
    t: &HostTable,
    i: usize,
    reqs: &'c [CapReq],
    from: Option<Source>,
) -> Option<(&'c CapReq, Option<String>)> {
    for r in reqs.iter().filter(|r| from.is_none_or(|s| r.source == s)) {
        if !r.scoped && !has_key(t, i, &r.scope[0]) {
            continue; // an unscoped key the host does not have may be meant for another filter
        }
        match lookup(t, i, &r.scope) {
            Some(v) if match_spec(&v, &r.req) => {}
            other => return Some((r, other)),
        }
    }
    None
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
        // stats: one evaluation per capability set; details: one per kind of host
        let set = t.cols.cap_set[i] as usize;
        if ctx.cap_cache.is_empty() {
            ctx.cap_cache = vec![0; t.sets.cap_sets.len()];
        }
        let reqs = &ctx.cap_reqs;
        if !cached(&mut ctx.cap_cache[set], || first_failure(t, i, reqs, Some(Source::Stats)).is_none()) {
            return false;
        }
        let d = t.cols.cold[i].details as usize;
        if ctx.cap_details_cache.is_empty() {
            ctx.cap_details_cache = vec![0; t.sets.details.len()];
        }
        if !cached(&mut ctx.cap_details_cache[d], || first_failure(t, i, reqs, Some(Source::Details)).is_none()) {
            return false;
        }
        !ctx.cap_reads_host || first_failure(t, i, reqs, Some(Source::Host)).is_none()
    }
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String {
        let name = t.name(i);
        match first_failure(t, i, &ctx.cap_reqs, None) {
            Some((r, None)) => format!("{name}: capability {:?} missing (requires {:?})", r.scope.join(":"), r.req),
            Some((r, Some(v))) => format!("{name}: capability {}={v:?} does not match {:?}", r.scope.join(":"), r.req),
            None => format!("{name}: capabilities do not match"),
        }
    }
}

/// A per-request cache slot: 0 unknown, 1 passes, 2 fails.
fn cached(slot: &mut u8, eval: impl FnOnce() -> bool) -> bool {
    match *slot {
        1 => true,
        2 => false,
        _ => {
            let ok = eval();
            *slot = if ok { 1 } else { 2 };
            ok
        }
    }
}
