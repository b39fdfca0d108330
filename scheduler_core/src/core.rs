//! Pure-Rust scheduler core: a struct-of-arrays host table, Nova's filters and weighers, claims
//! and explain. No PyO3 in here (see `py.rs` for the bindings).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Instant;

use crate::ops::{
    canon_arch, canon_hv_type, canon_vm_mode, match_spec, parse_version_predicate,
    predicate_satisfied, version_parts, VersionPredicate,
};

// ---------------------------------------------------------------------------------------------
// Filters and weighers (names, defaults)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Filter {
    Ram,
    Core,
    Disk,
    Compute,
    AvailabilityZone,
    ComputeCapabilities,
    ImageProperties,
    ServerGroupAffinity,
    ServerGroupAntiAffinity,
    SameHost,
    DifferentHost,
    IoOps,
    NumInstances,
    AggregateInstanceExtraSpecs,
    AggregateMultiTenancyIsolation,
    IsolatedHosts,
}

impl Filter {
    pub const ALL: [Filter; 16] = [
        Filter::Ram,
        Filter::Core,
        Filter::Disk,
        Filter::Compute,
        Filter::AvailabilityZone,
        Filter::ComputeCapabilities,
        Filter::ImageProperties,
        Filter::ServerGroupAffinity,
        Filter::ServerGroupAntiAffinity,
        Filter::SameHost,
        Filter::DifferentHost,
        Filter::IoOps,
        Filter::NumInstances,
        Filter::AggregateInstanceExtraSpecs,
        Filter::AggregateMultiTenancyIsolation,
        Filter::IsolatedHosts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Filter::Ram => "RamFilter",
            Filter::Core => "CoreFilter",
            Filter::Disk => "DiskFilter",
            Filter::Compute => "ComputeFilter",
            Filter::AvailabilityZone => "AvailabilityZoneFilter",
            Filter::ComputeCapabilities => "ComputeCapabilitiesFilter",
            Filter::ImageProperties => "ImagePropertiesFilter",
            Filter::ServerGroupAffinity => "ServerGroupAffinityFilter",
            Filter::ServerGroupAntiAffinity => "ServerGroupAntiAffinityFilter",
            Filter::SameHost => "SameHostFilter",
            Filter::DifferentHost => "DifferentHostFilter",
            Filter::IoOps => "IoOpsFilter",
            Filter::NumInstances => "NumInstancesFilter",
            Filter::AggregateInstanceExtraSpecs => "AggregateInstanceExtraSpecsFilter",
            Filter::AggregateMultiTenancyIsolation => "AggregateMultiTenancyIsolation",
            Filter::IsolatedHosts => "IsolatedHostsFilter",
        }
    }

    pub fn from_name(s: &str) -> Option<Filter> {
        Filter::ALL.iter().copied().find(|f| f.name() == s)
    }
}

/// Nova's default enabled filters, with the resource checks Placement does for Nova first.
pub const DEFAULT_FILTERS: [Filter; 9] = [
    Filter::Ram,
    Filter::Core,
    Filter::Disk,
    Filter::Compute,
    Filter::AvailabilityZone,
    Filter::ComputeCapabilities,
    Filter::ImageProperties,
    Filter::ServerGroupAntiAffinity,
    Filter::ServerGroupAffinity,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Weigher {
    Ram,
    Cpu,
    Disk,
    IoOps,
    NumInstances,
    SoftAffinity,
    SoftAntiAffinity,
    BuildFailure,
    HypervisorVersion,
}

impl Weigher {
    pub const ALL: [Weigher; 9] = [
        Weigher::Ram,
        Weigher::Cpu,
        Weigher::Disk,
        Weigher::IoOps,
        Weigher::NumInstances,
        Weigher::SoftAffinity,
        Weigher::SoftAntiAffinity,
        Weigher::BuildFailure,
        Weigher::HypervisorVersion,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Weigher::Ram => "RAMWeigher",
            Weigher::Cpu => "CPUWeigher",
            Weigher::Disk => "DiskWeigher",
            Weigher::IoOps => "IoOpsWeigher",
            Weigher::NumInstances => "NumInstancesWeigher",
            Weigher::SoftAffinity => "ServerGroupSoftAffinityWeigher",
            Weigher::SoftAntiAffinity => "ServerGroupSoftAntiAffinityWeigher",
            Weigher::BuildFailure => "BuildFailureWeigher",
            Weigher::HypervisorVersion => "HypervisorVersionWeigher",
        }
    }

    /// Nova's default `*_weight_multiplier`.
    pub fn default_multiplier(self) -> f64 {
        match self {
            Weigher::Ram | Weigher::Cpu | Weigher::Disk => 1.0,
            Weigher::IoOps => -1.0,
            Weigher::NumInstances => 0.0,
            Weigher::SoftAffinity | Weigher::SoftAntiAffinity => 1.0,
            Weigher::BuildFailure => 1_000_000.0,
            Weigher::HypervisorVersion => 1.0,
        }
    }

    pub fn from_name(s: &str) -> Option<Weigher> {
        Weigher::ALL.iter().copied().find(|w| w.name() == s)
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and request
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Config {
    pub filters: Vec<Filter>,
    pub weighers: Vec<(Weigher, f64)>,
    pub host_subset_size: usize,
    pub max_attempts: usize,
    pub max_io_ops_per_host: i64,
    pub max_instances_per_host: i64,
    pub isolated_images: Vec<String>,
    pub isolated_hosts: Vec<String>,
    pub restrict_isolated_hosts_to_isolated_images: bool,
    pub seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            filters: DEFAULT_FILTERS.to_vec(),
            weighers: Weigher::ALL
                .iter()
                .map(|w| (*w, w.default_multiplier()))
                .collect(),
            host_subset_size: 1,
            max_attempts: 3,
            max_io_ops_per_host: 8,
            max_instances_per_host: 50,
            isolated_images: Vec::new(),
            isolated_hosts: Vec::new(),
            restrict_isolated_hosts_to_isolated_images: true,
            seed: None,
        }
    }
}

impl Config {
    /// Build from names; unknown names are an error.
    pub fn with_names(
        filters: Option<&[String]>,
        weighers: Option<&[(String, f64)]>,
    ) -> Result<Config, String> {
        let mut cfg = Config::default();
        if let Some(fs) = filters {
            let mut out = Vec::new();
            for f in fs {
                let k = Filter::from_name(f).ok_or_else(|| format!("unknown filter {f:?}"))?;
                if !out.contains(&k) {
                    out.push(k);
                }
            }
            cfg.filters = out;
        }
        if let Some(ws) = weighers {
            let mut out: Vec<(Weigher, f64)> = Vec::new();
            for (w, m) in ws {
                let k = Weigher::from_name(w).ok_or_else(|| format!("unknown weigher {w:?}"))?;
                if let Some(e) = out.iter_mut().find(|e| e.0 == k) {
                    e.1 = *m;
                } else {
                    out.push((k, *m));
                }
            }
            cfg.weighers = out;
        }
        Ok(cfg)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub instance_ids: Vec<String>,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub root_gb: i64,
    pub ephemeral_gb: i64,
    pub swap_mb: i64,
    pub project_id: String,
    pub availability_zone: String,
    pub flavor_extra_specs: Vec<(String, String)>,
    pub image_id: String,
    pub image_properties: Vec<(String, String)>,
    pub group_policy: String,
    pub group_hosts: Vec<String>,
    pub same_host: Vec<String>,
    pub different_host: Vec<String>,
    pub ignore_hosts: Vec<String>,
    pub min_count: i64,
}

impl Request {
    /// Placement's DISK_GB for a flavor: root + ephemeral + swap rounded up to GiB.
    pub fn disk_gb(&self) -> i64 {
        self.root_gb + self.ephemeral_gb + (self.swap_mb.max(0) + 1023) / 1024
    }

    fn image_prop(&self, key: &str, legacy: &str) -> Option<&str> {
        let get = |k: &str| {
            self.image_properties
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        };
        get(key).or_else(|| get(legacy))
    }

    /// (capability key, requirement, scoped) for ComputeCapabilitiesFilter. As in Nova, a
    /// `capabilities:` key binds every host, while an unscoped key binds only the hosts that
    /// report that capability (the others skip it: the key may be meant for another filter).
    pub fn capability_reqs(&self) -> Vec<(String, String, bool)> {
        let mut out = Vec::new();
        for (k, v) in &self.flavor_extra_specs {
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

    /// (metadata key, requirement) pairs for AggregateInstanceExtraSpecsFilter.
    pub fn aggregate_reqs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, v) in &self.flavor_extra_specs {
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
}

/// Input of `upsert_host`.
#[derive(Clone, Debug)]
pub struct HostSpec {
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
    pub reserved_vcpus: i64,
    pub reserved_memory_mb: i64,
    pub reserved_disk_gb: i64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub availability_zone: String,
    pub enabled: bool,
    pub up: bool,
    pub io_ops: i64,
    pub num_instances: i64,
    pub failed_builds: i64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub cpu_arch: String,
    pub capabilities: Vec<(String, String)>,
    pub aggregates: Vec<(String, Vec<(String, String)>)>,
    pub generation: i64,
}

impl HostSpec {
    pub fn new(name: &str, vcpus: i64, memory_mb: i64, disk_gb: i64) -> HostSpec {
        HostSpec {
            name: name.to_string(),
            vcpus,
            memory_mb,
            disk_gb,
            reserved_vcpus: 0,
            reserved_memory_mb: 0,
            reserved_disk_gb: 0,
            cpu_allocation_ratio: 16.0,
            ram_allocation_ratio: 1.5,
            disk_allocation_ratio: 1.0,
            availability_zone: "nova".to_string(),
            enabled: true,
            up: true,
            io_ops: 0,
            num_instances: 0,
            failed_builds: 0,
            hypervisor_type: String::new(),
            hypervisor_version: 0,
            cpu_arch: String::new(),
            capabilities: Vec::new(),
            aggregates: Vec::new(),
            generation: 0,
        }
    }
}

/// Output of `hosts()`.
#[derive(Clone, Debug)]
pub struct HostView {
    pub host: String,
    pub enabled: bool,
    pub up: bool,
    pub availability_zone: String,
    pub vcpus: i64,
    pub vcpus_used: i64,
    pub memory_mb: i64,
    pub memory_mb_used: i64,
    pub disk_gb: i64,
    pub disk_gb_used: i64,
    pub reserved_vcpus: i64,
    pub reserved_memory_mb: i64,
    pub reserved_disk_gb: i64,
    pub free_vcpus: f64,
    pub free_memory_mb: f64,
    pub free_disk_gb: f64,
    pub num_instances: i64,
    pub io_ops: i64,
    pub failed_builds: i64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub cpu_arch: String,
    pub aggregates: Vec<String>,
    pub generation: i64,
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Rejection {
    pub filter: &'static str,
    pub rejected: usize,
    pub sample_reasons: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct TopHost {
    pub host: String,
    pub weight: f64,
    pub weights: Vec<(&'static str, f64)>,
}

#[derive(Clone, Debug, Default)]
pub struct Explanation {
    pub hosts_total: usize,
    pub hosts_passed: usize,
    pub rejections: Vec<Rejection>,
    pub top_hosts: Vec<TopHost>,
    pub summary: String,
    pub elapsed_us: f64,
}

#[derive(Clone, Debug)]
pub struct SelectionOut {
    pub instance_id: String,
    pub host: String,
    pub alternate_hosts: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub selections: Vec<SelectionOut>,
    pub explanation: Explanation,
    /// false: fewer instances than required could be placed (select raises NoValidHost)
    pub ok: bool,
}

// ---------------------------------------------------------------------------------------------
// Interning
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Interner {
    map: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.map.insert(s.to_string(), id);
        id
    }
    fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
    fn str(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }
    fn bytes(&self) -> usize {
        self.strings.iter().map(|s| 2 * s.capacity() + 80).sum()
    }
}

/// A distinct capabilities dict (sorted by key).
#[derive(Debug)]
struct CapSet {
    caps: Vec<(String, String)>,
}

impl CapSet {
    fn get(&self, k: &str) -> Option<&str> {
        self.caps
            .binary_search_by(|(a, _)| a.as_str().cmp(k))
            .ok()
            .map(|i| self.caps[i].1.as_str())
    }
}

/// A distinct set of aggregates (with their metadata), merged the way Nova's
/// `utils.aggregate_metadata_get_by_host` does: key -> set of comma-split, stripped values.
#[derive(Debug)]
struct AggSet {
    names: Vec<String>,
    metadata: Vec<(String, Vec<String>)>, // sorted by key
    azs: Option<Vec<String>>,             // values of "availability_zone" if any aggregate has it
    tenants: Vec<String>,                 // union of "filter_tenant_id*" values
}

impl AggSet {
    fn build(aggs: &[(String, Vec<(String, String)>)]) -> AggSet {
        let mut md: Vec<(String, Vec<String>)> = Vec::new();
        for (_, meta) in aggs {
            for (k, v) in meta {
                let idx = match md.iter().position(|(a, _)| a == k) {
                    Some(i) => i,
                    None => {
                        md.push((k.clone(), Vec::new()));
                        md.len() - 1
                    }
                };
                for part in v.split(',') {
                    let p = part.trim().to_string();
                    if !md[idx].1.contains(&p) {
                        md[idx].1.push(p);
                    }
                }
            }
        }
        md.sort_by(|a, b| a.0.cmp(&b.0));
        let azs = md
            .iter()
            .find(|(k, _)| k == "availability_zone")
            .map(|(_, v)| v.clone());
        let mut tenants = Vec::new();
        for (k, v) in &md {
            if k.starts_with("filter_tenant_id") {
                for t in v {
                    if !tenants.contains(t) {
                        tenants.push(t.clone());
                    }
                }
            }
        }
        AggSet {
            names: aggs.iter().map(|(n, _)| n.clone()).collect(),
            metadata: md,
            azs,
            tenants,
        }
    }

    fn get(&self, k: &str) -> Option<&Vec<String>> {
        self.metadata
            .binary_search_by(|(a, _)| a.as_str().cmp(k))
            .ok()
            .map(|i| &self.metadata[i].1)
    }
}

fn cap_key(caps: &[(String, String)]) -> String {
    let mut s = String::new();
    for (k, v) in caps {
        s.push_str(k);
        s.push('\u{1}');
        s.push_str(v);
        s.push('\u{2}');
    }
    s
}

fn agg_key(aggs: &[(String, Vec<(String, String)>)]) -> String {
    let mut sorted: Vec<(String, Vec<(String, String)>)> = aggs
        .iter()
        .map(|(n, m)| {
            let mut m = m.clone();
            m.sort();
            (n.clone(), m)
        })
        .collect();
    sorted.sort();
    let mut s = String::new();
    for (n, m) in &sorted {
        s.push_str(n);
        s.push('\u{3}');
        s.push_str(&cap_key(m));
        s.push('\u{4}');
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Host table
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Claim {
    host: Arc<str>,
    vcpus: i64,
    memory_mb: i64,
    disk_gb: i64,
    seq: u64,
}

/// Rarely read per-host data (array of structs).
#[derive(Debug, Clone)]
struct Cold {
    name: Arc<str>,
    generation: i64,
    vcpus: i64,
    memory_mb: i64,
    disk_gb: i64,
    reserved_vcpus: i64,
    reserved_memory_mb: i64,
    reserved_disk_gb: i64,
    cpu_ratio: f64,
    ram_ratio: f64,
    disk_ratio: f64,
    az_raw: u32,
    hv_type_raw: u32,
    arch_raw: u32,
    seq: u64,
}

const ENABLED: u8 = 1;
const UP: u8 = 2;
const ISOLATED: u8 = 4;
const NO_ID: u32 = u32::MAX;

#[derive(Debug)]
pub struct HostTable {
    pub cfg: Config,
    index: HashMap<Arc<str>, u32>,
    cold: Vec<Cold>,
    // --- hot struct-of-arrays, indexed by slot ---
    cap_vcpu: Vec<f64>, // (total - reserved) * ratio
    cap_ram: Vec<f64>,
    cap_disk: Vec<f64>,
    used_vcpu: Vec<i64>, // sum of claims
    used_ram: Vec<i64>,
    used_disk: Vec<i64>,
    free_vcpu: Vec<f64>, // cap - used
    free_ram: Vec<f64>,
    free_disk: Vec<f64>,
    cpu_weigh_base: Vec<f64>, // vcpus * ratio (Nova's CPUWeigher)
    ram_weigh_base: Vec<i64>, // memory_mb - reserved (Nova's free_ram_mb before usage)
    disk_weigh_base: Vec<i64>,
    rows: Vec<Row>, // weigher values (see `lane`)
    flags: Vec<u8>,
    io_ops: Vec<i64>,
    num_instances: Vec<i64>,
    failed_builds: Vec<i64>,
    hv_version: Vec<i64>,
    az: Vec<u32>,
    arch: Vec<u32>,    // canonical, interned
    hv_type: Vec<u32>, // canonical, interned
    cap_set: Vec<u32>,
    agg_set: Vec<u32>,
    // --- shared ---
    strings: Interner,
    cap_sets: Vec<CapSet>,
    cap_set_ids: HashMap<String, u32>,
    agg_sets: Vec<AggSet>,
    agg_set_ids: HashMap<String, u32>,
    claims: HashMap<String, Claim>,
    rng: AtomicU64,
    seq: u64,
    isolated_images: HashSet<String>,
    isolated_hosts: HashSet<String>,
    empty_id: u32,
    hvm_id: u32,
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

macro_rules! for_each_array {
    ($self:ident, $m:ident $(, $arg:expr)*) => {
        $self.cold.$m($($arg),*);
        $self.cap_vcpu.$m($($arg),*);
        $self.cap_ram.$m($($arg),*);
        $self.cap_disk.$m($($arg),*);
        $self.used_vcpu.$m($($arg),*);
        $self.used_ram.$m($($arg),*);
        $self.used_disk.$m($($arg),*);
        $self.free_vcpu.$m($($arg),*);
        $self.free_ram.$m($($arg),*);
        $self.free_disk.$m($($arg),*);
        $self.cpu_weigh_base.$m($($arg),*);
        $self.ram_weigh_base.$m($($arg),*);
        $self.disk_weigh_base.$m($($arg),*);
        $self.rows.$m($($arg),*);
        $self.flags.$m($($arg),*);
        $self.io_ops.$m($($arg),*);
        $self.num_instances.$m($($arg),*);
        $self.failed_builds.$m($($arg),*);
        $self.hv_version.$m($($arg),*);
        $self.az.$m($($arg),*);
        $self.arch.$m($($arg),*);
        $self.hv_type.$m($($arg),*);
        $self.cap_set.$m($($arg),*);
        $self.agg_set.$m($($arg),*);
    };
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

const LANES: usize = 8;
/// Per-host weigher values: RAM, CPU, disk, io ops, instances, -failed builds, hypervisor
/// version, soft (anti-)affinity (0 in the table; per request).
type Row = [f64; LANES];

#[inline(always)]
fn minmax_rows_body(rows: &[Row], cands: &[u32]) -> (Row, Row) {
    let mut lo = [f64::INFINITY; LANES];
    let mut hi = [f64::NEG_INFINITY; LANES];
    for &c in cands {
        let r = &rows[c as usize];
        for k in 0..LANES {
            lo[k] = if r[k] < lo[k] { r[k] } else { lo[k] };
            hi[k] = if r[k] > hi[k] { r[k] } else { hi[k] };
        }
    }
    (lo, hi)
}

#[inline(always)]
fn approx_scores_body(rows: &[Row], cands: &[u32], mv: &Row, kv: &Row, out: &mut Vec<f64>) {
    out.clear();
    out.resize(cands.len(), 0.0);
    for (o, &c) in out.iter_mut().zip(cands) {
        let r = &rows[c as usize];
        let mut p = [0.0; LANES];
        for k in 0..LANES {
            p[k] = (r[k] - mv[k]) * kv[k];
        }
        *o = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
    }
}

/// PACK[mask] lists the set bit positions of `mask` first (left-pack permutation).
static PACK: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut b = 0;
        while b < 8 {
            if m & (1 << b) != 0 {
                t[m][k] = b as u8;
                k += 1;
            }
            b += 1;
        }
        m += 1;
    }
    t
};

/// Output of the fused scan: rejections per first-failing position.
type ScanOut = [u32; 8];

/// Inputs of the fused first filter pass.
struct Scan<'a> {
    ram: bool,
    cpu: bool,
    disk: bool,
    comp: bool,
    want_ram: f64,
    want_cpu: f64,
    want_disk: f64,
    want_az: u32,
    max_io: i64,
    max_num: i64,
    fr: &'a [f64],
    fc: &'a [f64],
    fd: &'a [f64],
    fl: &'a [u8],
    fa: &'a [u32],
    fi: &'a [i64],
    fn_: &'a [i64],
    /// bit position (= order among the fused filters) of ram, cpu, disk, compute, az, io, num
    pos: [u32; 7],
    /// number of fused filters (positions 0..npos)
    npos: usize,
}

/// Branch-free scan over all hosts; passing slots go to `cands`, the others to `failed`.
/// Phase A (vectorisable): per host, the position of its first failing filter (31 = passes).
/// Phase B: compaction and counts.
#[inline(always)]
fn scan_body<const AZ: bool, const IO: bool, const NUM: bool>(
    p: &Scan,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    let n = p.fr.len();
    let (fr, fc, fd, fl) = (&p.fr[..n], &p.fc[..n], &p.fd[..n], &p.fl[..n]);
    assert!(cands.len() >= n + 8 && failed.len() >= n + 8);
    let (pr, pc, pd, pf) = (
        if p.ram { p.pos[0] } else { 31 },
        if p.cpu { p.pos[1] } else { 31 },
        if p.disk { p.pos[2] } else { 31 },
        if p.comp { p.pos[3] } else { 31 },
    );
    let mut w = 0usize;
    let mut f = 0usize;
    let mut cnt = [0u32; 8];
    let mut codes = [0u8; 256];
    let mut base = 0;
    while base < n {
        let m = (n - base).min(256);
        // phase A
        for (j, code) in codes[..m].iter_mut().enumerate() {
            let i = base + j;
            let mut c = 31u8;
            c = c.min(if fr[i] >= p.want_ram { 31 } else { pr as u8 });
            c = c.min(if fc[i] >= p.want_cpu { 31 } else { pc as u8 });
            c = c.min(if fd[i] >= p.want_disk { 31 } else { pd as u8 });
            c = c.min(if fl[i] & (ENABLED | UP) == (ENABLED | UP) {
                31
            } else {
                pf as u8
            });
            if AZ {
                c = c.min(if p.fa[i] == p.want_az {
                    31
                } else {
                    p.pos[4] as u8
                });
            }
            if IO {
                c = c.min(if p.fi[i] < p.max_io {
                    31
                } else {
                    p.pos[5] as u8
                });
            }
            if NUM {
                c = c.min(if p.fn_[i] < p.max_num {
                    31
                } else {
                    p.pos[6] as u8
                });
            }
            *code = c;
        }
        // phase A2: rejections per first-failing position (vectorised byte counts)
        for (k, x) in cnt.iter_mut().enumerate().take(p.npos) {
            *x += codes[..m].iter().filter(|&&c| c == k as u8).count() as u32;
        }
        // phase B: left-pack the passing / failing slots, 8 hosts at a time (LUT permutation)
        let mut j = 0;
        while j < m {
            let g = (m - j).min(8);
            let mut okm = 0usize;
            for t in 0..8 {
                let c = if t < g { codes[j + t] } else { 0 };
                okm |= ((c == 31) as usize) << t;
            }
            let valid = (1usize << g) - 1;
            let failm = !okm & valid;
            let i0 = (base + j) as u32;
            let (po, pf) = (&PACK[okm], &PACK[failm]);
            // SAFETY: w + f == base + j hosts so far, and both buffers have n + 8 slots, so the
            // 8 writes at w (resp. f) stay in bounds; only the first popcount ones are kept.
            unsafe {
                for t in 0..8 {
                    *cands.get_unchecked_mut(w + t) = i0 + po[t] as u32;
                    *failed.get_unchecked_mut(f + t) = i0 + pf[t] as u32;
                }
            }
            w += okm.count_ones() as usize;
            f += failm.count_ones() as usize;
            j += g;
        }
        base += m;
    }
    *mm = cnt;
    (w, f)
}

#[inline(always)]
fn scan_dispatch(
    p: &Scan,
    az: bool,
    io: bool,
    num: bool,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    match (az, io, num) {
        (false, false, false) => scan_body::<false, false, false>(p, cands, failed, mm),
        (true, false, false) => scan_body::<true, false, false>(p, cands, failed, mm),
        (false, true, false) => scan_body::<false, true, false>(p, cands, failed, mm),
        (true, true, false) => scan_body::<true, true, false>(p, cands, failed, mm),
        (false, false, true) => scan_body::<false, false, true>(p, cands, failed, mm),
        (true, false, true) => scan_body::<true, false, true>(p, cands, failed, mm),
        (false, true, true) => scan_body::<false, true, true>(p, cands, failed, mm),
        (true, true, true) => scan_body::<true, true, true>(p, cands, failed, mm),
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::*;

    /// # Safety
    /// The CPU must support AVX2 (checked by the caller).
    #[target_feature(enable = "avx2")]
    pub unsafe fn minmax_rows(rows: &[Row], cands: &[u32]) -> (Row, Row) {
        use std::arch::x86_64::*;
        let inf = _mm256_set1_pd(f64::INFINITY);
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        // two independent accumulator sets to overlap the min/max latencies
        let (mut lo0, mut lo1, mut hi0, mut hi1) = (inf, inf, ninf, ninf);
        let (mut lo2, mut lo3, mut hi2, mut hi3) = (inf, inf, ninf, ninf);
        let pairs = cands.chunks_exact(2);
        let rest = pairs.remainder();
        for q in pairs {
            let (r, t) = (&rows[q[0] as usize], &rows[q[1] as usize]); // bounds-checked
            let (a, b) = (
                _mm256_loadu_pd(r.as_ptr()),
                _mm256_loadu_pd(r.as_ptr().add(4)),
            );
            let (c, d) = (
                _mm256_loadu_pd(t.as_ptr()),
                _mm256_loadu_pd(t.as_ptr().add(4)),
            );
            lo0 = _mm256_min_pd(lo0, a);
            lo1 = _mm256_min_pd(lo1, b);
            hi0 = _mm256_max_pd(hi0, a);
            hi1 = _mm256_max_pd(hi1, b);
            lo2 = _mm256_min_pd(lo2, c);
            lo3 = _mm256_min_pd(lo3, d);
            hi2 = _mm256_max_pd(hi2, c);
            hi3 = _mm256_max_pd(hi3, d);
        }
        for &c in rest {
            let r = &rows[c as usize];
            let (a, b) = (
                _mm256_loadu_pd(r.as_ptr()),
                _mm256_loadu_pd(r.as_ptr().add(4)),
            );
            lo0 = _mm256_min_pd(lo0, a);
            lo1 = _mm256_min_pd(lo1, b);
            hi0 = _mm256_max_pd(hi0, a);
            hi1 = _mm256_max_pd(hi1, b);
        }
        let mut lo = [0.0; LANES];
        let mut hi = [0.0; LANES];
        _mm256_storeu_pd(lo.as_mut_ptr(), _mm256_min_pd(lo0, lo2));
        _mm256_storeu_pd(lo.as_mut_ptr().add(4), _mm256_min_pd(lo1, lo3));
        _mm256_storeu_pd(hi.as_mut_ptr(), _mm256_max_pd(hi0, hi2));
        _mm256_storeu_pd(hi.as_mut_ptr().add(4), _mm256_max_pd(hi1, hi3));
        (lo, hi)
    }

    /// Four candidates at a time: two 4-wide halves per row, then a transposing horizontal
    /// add (the lane sums' order differs from the scalar version: still within the error bound).
    ///
    /// # Safety
    /// The CPU must support AVX2 (checked by the caller).
    #[target_feature(enable = "avx2")]
    pub unsafe fn approx_scores(
        rows: &[Row],
        cands: &[u32],
        mv: &Row,
        kv: &Row,
        out: &mut Vec<f64>,
    ) {
        use std::arch::x86_64::*;
        out.clear();
        out.resize(cands.len(), 0.0);
        let (m0, m1) = (
            _mm256_loadu_pd(mv.as_ptr()),
            _mm256_loadu_pd(mv.as_ptr().add(4)),
        );
        let (k0, k1) = (
            _mm256_loadu_pd(kv.as_ptr()),
            _mm256_loadu_pd(kv.as_ptr().add(4)),
        );
        let row_sum = |c: u32| -> __m256d {
            let r = &rows[c as usize]; // bounds-checked
            let a = _mm256_mul_pd(_mm256_sub_pd(_mm256_loadu_pd(r.as_ptr()), m0), k0);
            let b = _mm256_mul_pd(_mm256_sub_pd(_mm256_loadu_pd(r.as_ptr().add(4)), m1), k1);
            _mm256_add_pd(a, b)
        };
        let chunks = cands.chunks_exact(4);
        let rest = chunks.remainder();
        for (q, o) in chunks.zip(out.chunks_exact_mut(4)) {
            let (s0, s1, s2, s3) = (row_sum(q[0]), row_sum(q[1]), row_sum(q[2]), row_sum(q[3]));
            // [s0a+s0b, s1a+s1b, s0c+s0d, s1c+s1d] and the same for s2, s3
            let h01 = _mm256_hadd_pd(s0, s1);
            let h23 = _mm256_hadd_pd(s2, s3);
            let lo = _mm256_permute2f128_pd(h01, h23, 0x20);
            let hi = _mm256_permute2f128_pd(h01, h23, 0x31);
            _mm256_storeu_pd(o.as_mut_ptr(), _mm256_add_pd(lo, hi));
        }
        let done = cands.len() - rest.len();
        for (o, &c) in out[done..].iter_mut().zip(rest) {
            let r = &rows[c as usize];
            let mut p = [0.0; LANES];
            for k in 0..LANES {
                p[k] = (r[k] - mv[k]) * kv[k];
            }
            *o = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        }
    }

    /// # Safety
    /// The CPU must support AVX2 (checked by the caller).
    #[target_feature(enable = "avx2")]
    pub unsafe fn scan(
        p: &Scan,
        az: bool,
        io: bool,
        num: bool,
        cands: &mut [u32],
        failed: &mut [u32],
        mm: &mut ScanOut,
    ) -> (usize, usize) {
        scan_dispatch(p, az, io, num, cands, failed, mm)
    }
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Lane-wise min and max of the candidates' rows.
fn minmax_rows(rows: &[Row], cands: &[u32]) -> (Row, Row) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::minmax_rows(rows, cands) };
    }
    minmax_rows_body(rows, cands)
}

/// Approximate weights: sum over lanes of (v - min) * (mult / range), pairwise summed.
fn approx_scores(rows: &[Row], cands: &[u32], mv: &Row, kv: &Row, out: &mut Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::approx_scores(rows, cands, mv, kv, out) };
    }
    approx_scores_body(rows, cands, mv, kv, out)
}

fn scan(
    p: &Scan,
    az: bool,
    io: bool,
    num: bool,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::scan(p, az, io, num, cands, failed, mm) };
    }
    scan_dispatch(p, az, io, num, cands, failed, mm)
}

/// The k-th largest value (k >= 1) or -inf if there are fewer than k values.
#[inline(never)]
fn kth_largest(v: &[f64], k: usize) -> f64 {
    if v.len() < k {
        return f64::NEG_INFINITY;
    }
    let mut best: Vec<f64> = Vec::with_capacity(k + 1);
    let insert = |best: &mut Vec<f64>, a: f64| {
        if best.len() < k || a > best[best.len() - 1] {
            let pos = best.partition_point(|&b| b >= a);
            best.insert(pos, a);
            if best.len() > k {
                best.pop();
            }
        }
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        // one comparison per 8 values once the k best are known
        let m = c
            .iter()
            .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a });
        if best.len() < k || m > best[best.len() - 1] {
            for &a in c {
                insert(&mut best, a);
            }
        }
    }
    for &a in rest {
        insert(&mut best, a);
    }
    best[k - 1]
}

fn lane(w: Weigher) -> usize {
    match w {
        Weigher::Ram => 0,
        Weigher::Cpu => 1,
        Weigher::Disk => 2,
        Weigher::IoOps => 3,
        Weigher::NumInstances => 4,
        Weigher::BuildFailure => 5,
        Weigher::HypervisorVersion => 6,
        Weigher::SoftAffinity | Weigher::SoftAntiAffinity => 7,
    }
}

/// Per-request state shared by the filters and weighers.
struct Ctx<'r> {
    req: &'r Request,
    disk: i64,
    picks: Vec<u32>, // per slot, instances of this batch already placed there (empty = none yet)
    special: Vec<bool>, // per slot: weigher row must be computed fresh (picked / soft group host)
    group_count: HashMap<u32, u32>,
    group_nonempty: bool,
    policy: u8, // 0 none, 1 affinity, 2 anti-affinity, 3 soft-affinity, 4 soft-anti-affinity
    ignore: HashSet<u32>,
    same: Option<HashSet<u32>>,
    diff: Option<HashSet<u32>>,
    az_req: Option<u32>, // requested AZ (NO_ID if unknown string)
    cap_reqs: Vec<(String, String, bool)>,
    cap_cache: Vec<u8>,
    agg_reqs: Vec<(String, String)>,
    agg_cache: Vec<u8>,
    img_props: Vec<u32>, // requested canonical arch/hv_type/vm_mode ids (NO_ID if unknown)
    img_version: Option<Option<VersionPredicate>>, // Some(None): malformed predicate
    image_isolated: bool,
}

impl Ctx<'_> {
    #[inline]
    fn pc(&self, i: usize) -> i64 {
        if self.picks.is_empty() {
            0
        } else {
            self.picks[i] as i64
        }
    }
}

struct WeigherStat {
    w: Weigher,
    lane: usize,
    mult: f64,
    min: f64,
    range: f64,
}

impl HostTable {
    pub fn new(cfg: Config) -> HostTable {
        let seed = cfg.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x1234_5678)
        });
        let mut strings = Interner::default();
        let empty_id = strings.intern("");
        let hvm_id = strings.intern("hvm");
        HostTable {
            isolated_images: cfg.isolated_images.iter().cloned().collect(),
            isolated_hosts: cfg.isolated_hosts.iter().cloned().collect(),
            cfg,
            index: HashMap::new(),
            cold: Vec::new(),
            cap_vcpu: Vec::new(),
            cap_ram: Vec::new(),
            cap_disk: Vec::new(),
            used_vcpu: Vec::new(),
            used_ram: Vec::new(),
            used_disk: Vec::new(),
            free_vcpu: Vec::new(),
            free_ram: Vec::new(),
            free_disk: Vec::new(),
            cpu_weigh_base: Vec::new(),
            ram_weigh_base: Vec::new(),
            disk_weigh_base: Vec::new(),
            rows: Vec::new(),
            flags: Vec::new(),
            io_ops: Vec::new(),
            num_instances: Vec::new(),
            failed_builds: Vec::new(),
            hv_version: Vec::new(),
            az: Vec::new(),
            arch: Vec::new(),
            hv_type: Vec::new(),
            cap_set: Vec::new(),
            agg_set: Vec::new(),
            strings,
            cap_sets: Vec::new(),
            cap_set_ids: HashMap::new(),
            agg_sets: Vec::new(),
            agg_set_ids: HashMap::new(),
            claims: HashMap::new(),
            rng: AtomicU64::new(seed),
            seq: 0,
            empty_id,
            hvm_id,
        }
    }

    pub fn len(&self) -> usize {
        self.cold.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cold.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).map(|&i| i as usize)
    }

    pub fn num_claims(&self) -> usize {
        self.claims.len()
    }

    fn next_random(&self) -> u64 {
        let s = self
            .rng
            .fetch_add(0x9e3779b97f4a7c15, AtomicOrdering::Relaxed);
        splitmix64(s.wrapping_add(0x9e3779b97f4a7c15))
    }

    fn intern_caps(&mut self, caps: &[(String, String)]) -> u32 {
        let mut c: Vec<(String, String)> = Vec::with_capacity(caps.len());
        for (k, v) in caps {
            if let Some(e) = c.iter_mut().find(|e| &e.0 == k) {
                e.1 = v.clone();
            } else {
                c.push((k.clone(), v.clone()));
            }
        }
        c.sort();
        let key = cap_key(&c);
        if let Some(&id) = self.cap_set_ids.get(&key) {
            return id;
        }
        let id = self.cap_sets.len() as u32;
        self.cap_sets.push(CapSet { caps: c });
        self.cap_set_ids.insert(key, id);
        id
    }

    fn intern_aggs(&mut self, aggs: &[(String, Vec<(String, String)>)]) -> u32 {
        let key = agg_key(aggs);
        if let Some(&id) = self.agg_set_ids.get(&key) {
            return id;
        }
        let id = self.agg_sets.len() as u32;
        self.agg_sets.push(AggSet::build(aggs));
        self.agg_set_ids.insert(key, id);
        id
    }

    fn refresh_free(&mut self, i: usize) {
        self.free_vcpu[i] = self.cap_vcpu[i] - self.used_vcpu[i] as f64;
        self.free_ram[i] = self.cap_ram[i] - self.used_ram[i] as f64;
        self.free_disk[i] = self.cap_disk[i] - self.used_disk[i] as f64;
        self.rows[i] = [
            (self.ram_weigh_base[i] - self.used_ram[i]) as f64,
            self.cpu_weigh_base[i] - self.used_vcpu[i] as f64,
            ((self.disk_weigh_base[i] - self.used_disk[i]) * 1024) as f64,
            self.io_ops[i] as f64,
            self.num_instances[i] as f64,
            (-self.failed_builds[i]) as f64,
            self.hv_version[i] as f64,
            0.0,
        ];
    }

    /// Insert or update a host. Returns false (and changes nothing) for a stale generation.
    pub fn upsert(&mut self, h: &HostSpec) -> bool {
        let existing = self.slot(&h.name);
        if let Some(i) = existing {
            if h.generation < self.cold[i].generation {
                return false;
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let az_raw = self.strings.intern(&h.availability_zone);
        let hv_type_raw = self.strings.intern(&h.hypervisor_type);
        let arch_raw = self.strings.intern(&h.cpu_arch);
        let arch = self.strings.intern(&canon_arch(&h.cpu_arch));
        let hv_type = self.strings.intern(&canon_hv_type(&h.hypervisor_type));
        let cap_set = self.intern_caps(&h.capabilities);
        let agg_set = self.intern_aggs(&h.aggregates);
        let name: Arc<str> = match existing {
            Some(i) => self.cold[i].name.clone(),
            None => Arc::from(h.name.as_str()),
        };
        let cold = Cold {
            name: name.clone(),
            generation: h.generation,
            vcpus: h.vcpus,
            memory_mb: h.memory_mb,
            disk_gb: h.disk_gb,
            reserved_vcpus: h.reserved_vcpus,
            reserved_memory_mb: h.reserved_memory_mb,
            reserved_disk_gb: h.reserved_disk_gb,
            cpu_ratio: h.cpu_allocation_ratio,
            ram_ratio: h.ram_allocation_ratio,
            disk_ratio: h.disk_allocation_ratio,
            az_raw,
            hv_type_raw,
            arch_raw,
            seq,
        };
        let mut flags = 0u8;
        if h.enabled {
            flags |= ENABLED;
        }
        if h.up {
            flags |= UP;
        }
        if self.isolated_hosts.contains(&h.name) {
            flags |= ISOLATED;
        }
        let i = match existing {
            Some(i) => i,
            None => {
                let i = self.cold.len();
                self.index.insert(name, i as u32);
                self.cold.push(cold.clone());
                self.cap_vcpu.push(0.0);
                self.cap_ram.push(0.0);
                self.cap_disk.push(0.0);
                self.used_vcpu.push(0);
                self.used_ram.push(0);
                self.used_disk.push(0);
                self.free_vcpu.push(0.0);
                self.free_ram.push(0.0);
                self.free_disk.push(0.0);
                self.cpu_weigh_base.push(0.0);
                self.ram_weigh_base.push(0);
                self.disk_weigh_base.push(0);
                self.rows.push([0.0; LANES]);
                self.flags.push(0);
                self.io_ops.push(0);
                self.num_instances.push(0);
                self.failed_builds.push(0);
                self.hv_version.push(0);
                self.az.push(0);
                self.arch.push(0);
                self.hv_type.push(0);
                self.cap_set.push(0);
                self.agg_set.push(0);
                i
            }
        };
        self.cold[i] = cold;
        self.cap_vcpu[i] = (h.vcpus - h.reserved_vcpus) as f64 * h.cpu_allocation_ratio;
        self.cap_ram[i] = (h.memory_mb - h.reserved_memory_mb) as f64 * h.ram_allocation_ratio;
        self.cap_disk[i] = (h.disk_gb - h.reserved_disk_gb) as f64 * h.disk_allocation_ratio;
        self.cpu_weigh_base[i] = h.vcpus as f64 * h.cpu_allocation_ratio;
        self.ram_weigh_base[i] = h.memory_mb - h.reserved_memory_mb;
        self.disk_weigh_base[i] = h.disk_gb - h.reserved_disk_gb;
        self.flags[i] = flags;
        self.io_ops[i] = h.io_ops;
        self.num_instances[i] = h.num_instances;
        self.failed_builds[i] = h.failed_builds;
        self.hv_version[i] = h.hypervisor_version;
        self.az[i] = az_raw;
        self.arch[i] = arch;
        self.hv_type[i] = hv_type;
        self.cap_set[i] = cap_set;
        self.agg_set[i] = agg_set;
        self.refresh_free(i);
        true
    }

    /// Remove a host (and its claims). The last host moves into its slot.
    pub fn remove(&mut self, name: &str) -> bool {
        let i = match self.slot(name) {
            Some(i) => i,
            None => return false,
        };
        let host = self.cold[i].name.clone();
        self.index.remove(name);
        for_each_array!(self, swap_remove, i);
        if i < self.cold.len() {
            let moved = self.cold[i].name.clone();
            self.index.insert(moved, i as u32);
        }
        self.claims.retain(|_, c| c.host != host);
        true
    }

    pub fn set_up(&mut self, name: &str, up: bool) -> bool {
        match self.slot(name) {
            Some(i) => {
                if up {
                    self.flags[i] |= UP;
                } else {
                    self.flags[i] &= !UP;
                }
                true
            }
            None => false,
        }
    }

    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> bool {
        match self.slot(name) {
            Some(i) => {
                if enabled {
                    self.flags[i] |= ENABLED;
                } else {
                    self.flags[i] &= !ENABLED;
                }
                true
            }
            None => false,
        }
    }

    fn apply_claim(
        &mut self,
        instance_id: &str,
        i: usize,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) {
        self.release(instance_id);
        self.used_vcpu[i] += vcpus;
        self.used_ram[i] += memory_mb;
        self.used_disk[i] += disk_gb;
        self.num_instances[i] += 1;
        self.io_ops[i] += 1;
        self.refresh_free(i);
        let c = Claim {
            host: self.cold[i].name.clone(),
            vcpus,
            memory_mb,
            disk_gb,
            seq: self.cold[i].seq,
        };
        self.claims.insert(instance_id.to_string(), c);
    }

    /// Record an existing allocation (e.g. after a service restart). May overcommit.
    pub fn claim(
        &mut self,
        instance_id: &str,
        host: &str,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) -> bool {
        match self.slot(host) {
            Some(i) => {
                self.apply_claim(instance_id, i, vcpus, memory_mb, disk_gb);
                true
            }
            None => false,
        }
    }

    /// Return a claim's resources; false if the instance holds no claim.
    pub fn release(&mut self, instance_id: &str) -> bool {
        let c = match self.claims.remove(instance_id) {
            Some(c) => c,
            None => return false,
        };
        if let Some(i) = self.slot(&c.host) {
            self.used_vcpu[i] -= c.vcpus;
            self.used_ram[i] -= c.memory_mb;
            self.used_disk[i] -= c.disk_gb;
            if self.cold[i].seq == c.seq {
                // no report since the claim: undo its bump of the counters
                self.num_instances[i] = (self.num_instances[i] - 1).max(0);
                self.io_ops[i] = (self.io_ops[i] - 1).max(0);
            }
            self.refresh_free(i);
        }
        true
    }

    pub fn claim_host(&self, instance_id: &str) -> Option<&str> {
        self.claims.get(instance_id).map(|c| &*c.host)
    }

    pub fn view(&self, i: usize) -> HostView {
        let c = &self.cold[i];
        HostView {
            host: c.name.to_string(),
            enabled: self.flags[i] & ENABLED != 0,
            up: self.flags[i] & UP != 0,
            availability_zone: self.strings.str(c.az_raw).to_string(),
            vcpus: c.vcpus,
            vcpus_used: self.used_vcpu[i],
            memory_mb: c.memory_mb,
            memory_mb_used: self.used_ram[i],
            disk_gb: c.disk_gb,
            disk_gb_used: self.used_disk[i],
            reserved_vcpus: c.reserved_vcpus,
            reserved_memory_mb: c.reserved_memory_mb,
            reserved_disk_gb: c.reserved_disk_gb,
            free_vcpus: self.free_vcpu[i],
            free_memory_mb: self.free_ram[i],
            free_disk_gb: self.free_disk[i],
            num_instances: self.num_instances[i],
            io_ops: self.io_ops[i],
            failed_builds: self.failed_builds[i],
            cpu_allocation_ratio: c.cpu_ratio,
            ram_allocation_ratio: c.ram_ratio,
            disk_allocation_ratio: c.disk_ratio,
            hypervisor_type: self.strings.str(c.hv_type_raw).to_string(),
            hypervisor_version: self.hv_version[i],
            cpu_arch: self.strings.str(c.arch_raw).to_string(),
            aggregates: self.agg_sets[self.agg_set[i] as usize].names.clone(),
            generation: c.generation,
        }
    }

    /// Approximate heap + inline bytes held by the table.
    pub fn memory_bytes(&self) -> usize {
        fn bytes<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        // Every hot column as allocated (capacity, not length: what the process really holds).
        let hot = bytes(&self.cap_vcpu)
            + bytes(&self.cap_ram)
            + bytes(&self.cap_disk)
            + bytes(&self.used_vcpu)
            + bytes(&self.used_ram)
            + bytes(&self.used_disk)
            + bytes(&self.free_vcpu)
            + bytes(&self.free_ram)
            + bytes(&self.free_disk)
            + bytes(&self.cpu_weigh_base)
            + bytes(&self.ram_weigh_base)
            + bytes(&self.disk_weigh_base)
            + bytes(&self.rows)
            + bytes(&self.flags)
            + bytes(&self.io_ops)
            + bytes(&self.num_instances)
            + bytes(&self.failed_builds)
            + bytes(&self.hv_version)
            + bytes(&self.az)
            + bytes(&self.arch)
            + bytes(&self.hv_type)
            + bytes(&self.cap_set)
            + bytes(&self.agg_set);
        let cold = bytes(&self.cold);
        let names: usize = self.cold.iter().map(|c| c.name.len() + 16).sum();
        let index = self.index.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1);
        let claims: usize = self.claims.capacity() * (std::mem::size_of::<(String, Claim)>() + 1)
            + self.claims.keys().map(|k| k.capacity()).sum::<usize>();
        let caps: usize = self
            .cap_sets
            .iter()
            .map(|c| {
                64 + c
                    .caps
                    .iter()
                    .map(|(k, v)| 48 + k.capacity() + v.capacity())
                    .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .cap_set_ids
                .keys()
                .map(|k| k.capacity() + 40)
                .sum::<usize>();
        let aggs: usize = self
            .agg_sets
            .iter()
            .map(|a| {
                128 + a
                    .metadata
                    .iter()
                    .map(|(k, v)| {
                        48 + k.capacity() + v.iter().map(|s| 24 + s.capacity()).sum::<usize>()
                    })
                    .sum::<usize>()
            })
            .sum::<usize>()
            + self
                .agg_set_ids
                .keys()
                .map(|k| k.capacity() + 40)
                .sum::<usize>();
        std::mem::size_of::<Self>()
            + hot
            + cold
            + names
            + index
            + claims
            + caps
            + aggs
            + self.strings.bytes()
    }

    // -----------------------------------------------------------------------------------------
    // Filters
    // -----------------------------------------------------------------------------------------

    fn ctx<'r>(&self, req: &'r Request) -> Ctx<'r> {
        let policy = match req.group_policy.as_str() {
            "affinity" => 1,
            "anti-affinity" => 2,
            "soft-affinity" => 3,
            "soft-anti-affinity" => 4,
            _ => 0,
        };
        let mut group_count = HashMap::new();
        for h in &req.group_hosts {
            if let Some(i) = self.slot(h) {
                *group_count.entry(i as u32).or_insert(0u32) += 1;
            }
        }
        let ignore: HashSet<u32> = req
            .ignore_hosts
            .iter()
            .filter_map(|h| self.slot(h))
            .map(|i| i as u32)
            .collect();
        let inst_slots = |ids: &[String]| -> HashSet<u32> {
            ids.iter()
                .filter_map(|id| self.claims.get(id))
                .filter_map(|c| self.slot(&c.host))
                .map(|i| i as u32)
                .collect()
        };
        let same = if req.same_host.is_empty() {
            None
        } else {
            Some(inst_slots(&req.same_host))
        };
        let diff = if req.different_host.is_empty() {
            None
        } else {
            Some(inst_slots(&req.different_host))
        };
        let az_req = if req.availability_zone.is_empty() {
            None
        } else {
            Some(self.strings.get(&req.availability_zone).unwrap_or(NO_ID))
        };
        let mut img_props = Vec::new();
        let arch = req
            .image_prop("hw_architecture", "architecture")
            .map(canon_arch);
        let hvt = req
            .image_prop("img_hv_type", "hypervisor_type")
            .map(canon_hv_type);
        let vmm = req.image_prop("hw_vm_mode", "vm_mode").map(canon_vm_mode);
        for p in [arch, hvt, vmm].into_iter().flatten() {
            if !p.is_empty() {
                img_props.push(self.strings.get(&p).unwrap_or(NO_ID));
            }
        }
        let img_version =
            match req.image_prop("img_hv_requested_version", "hypervisor_version_requires") {
                Some(v) if !v.is_empty() => Some(parse_version_predicate(v)),
                _ => None,
            };
        let image_isolated =
            !req.image_id.is_empty() && self.isolated_images.contains(&req.image_id);
        let mut special = Vec::new();
        if (policy == 3 || policy == 4) && !group_count.is_empty() {
            special = vec![false; self.len()];
            for &i in group_count.keys() {
                special[i as usize] = true;
            }
        }
        Ctx {
            req,
            disk: req.disk_gb(),
            picks: Vec::new(),
            special,
            group_nonempty: !req.group_hosts.is_empty(),
            group_count,
            policy,
            ignore,
            same,
            diff,
            az_req,
            cap_reqs: req.capability_reqs(),
            cap_cache: Vec::new(),
            agg_reqs: req.aggregate_reqs(),
            agg_cache: Vec::new(),
            img_props,
            img_version,
            image_isolated,
        }
    }

    /// Is the filter a no-op for this request (every host passes)?
    fn filter_inactive(&self, f: Filter, ctx: &Ctx) -> bool {
        match f {
            Filter::AvailabilityZone => ctx.az_req.is_none(),
            Filter::ComputeCapabilities => ctx.cap_reqs.is_empty(),
            Filter::AggregateInstanceExtraSpecs => ctx.agg_reqs.is_empty(),
            Filter::ImageProperties => ctx.img_props.is_empty(),
            Filter::ServerGroupAffinity => ctx.policy != 1 || !ctx.group_nonempty,
            Filter::ServerGroupAntiAffinity => ctx.policy != 2 || !ctx.group_nonempty,
            Filter::SameHost => ctx.same.is_none(),
            Filter::DifferentHost => ctx.diff.is_none(),
            Filter::IsolatedHosts => {
                // no isolated hosts configured and nothing restricted -> always passes
                self.isolated_hosts.is_empty()
                    && (self.isolated_images.is_empty() || !ctx.image_isolated)
            }
            _ => false,
        }
    }

    fn caps_pass(&self, set: u32, ctx: &Ctx) -> bool {
        let cs = &self.cap_sets[set as usize];
        ctx.cap_reqs.iter().all(|(k, req, scoped)| match cs.get(k) {
            Some(v) => match_spec(v, req),
            None => !scoped,
        })
    }

    fn aggs_pass(&self, set: u32, ctx: &Ctx) -> bool {
        let a = &self.agg_sets[set as usize];
        ctx.agg_reqs.iter().all(|(k, req)| match a.get(k) {
            Some(vals) if !vals.is_empty() => vals.iter().any(|v| match_spec(v, req)),
            _ => false,
        })
    }

    fn az_pass(&self, i: usize, ctx: &Ctx) -> bool {
        let want = match ctx.az_req {
            Some(w) => w,
            None => return true,
        };
        match &self.agg_sets[self.agg_set[i] as usize].azs {
            Some(azs) => azs.iter().any(|a| a == &ctx.req.availability_zone),
            None => self.az[i] == want,
        }
    }

    fn image_pass(&self, i: usize, ctx: &Ctx) -> bool {
        let (arch, hvt) = (self.arch[i], self.hv_type[i]);
        if arch == self.empty_id && hvt == self.empty_id {
            return false; // host advertises no supported instances
        }
        for &p in &ctx.img_props {
            if p == NO_ID || (p != arch && p != hvt && p != self.hvm_id) {
                return false;
            }
        }
        let ver = self.hv_version[i];
        match &ctx.img_version {
            Some(pred) if ver != 0 => match pred {
                Some(p) => predicate_satisfied(p, &version_parts(ver)),
                None => false,
            },
            _ => true,
        }
    }

    fn isolated_pass(&self, i: usize, ctx: &Ctx) -> bool {
        let host_isolated = self.flags[i] & ISOLATED != 0;
        let restrict = self.cfg.restrict_isolated_hosts_to_isolated_images;
        if self.isolated_images.is_empty() {
            return !restrict || !host_isolated;
        }
        if restrict {
            ctx.image_isolated == host_isolated
        } else {
            !ctx.image_isolated || host_isolated
        }
    }

    fn tenant_pass(&self, i: usize, ctx: &Ctx) -> bool {
        let t = &self.agg_sets[self.agg_set[i] as usize].tenants;
        t.is_empty() || t.iter().any(|x| x == &ctx.req.project_id)
    }

    /// Does host `i` pass filter `f`? (Used for the generic path and for the oracle tests.)
    fn passes(&self, f: Filter, i: usize, ctx: &mut Ctx) -> bool {
        let req = ctx.req;
        let pc = ctx.pc(i);
        match f {
            Filter::Ram => self.free_ram_at(i, pc, req.memory_mb) >= req.memory_mb as f64,
            Filter::Core => self.free_vcpu_at(i, pc, req.vcpus) >= req.vcpus as f64,
            Filter::Disk => self.free_disk_at(i, pc, ctx.disk) >= ctx.disk as f64,
            Filter::Compute => self.flags[i] & (ENABLED | UP) == (ENABLED | UP),
            Filter::AvailabilityZone => self.az_pass(i, ctx),
            Filter::ComputeCapabilities => {
                if ctx.cap_reqs.is_empty() {
                    return true;
                }
                let set = self.cap_set[i];
                if ctx.cap_cache.is_empty() {
                    ctx.cap_cache = vec![0; self.cap_sets.len()];
                }
                match ctx.cap_cache[set as usize] {
                    1 => true,
                    2 => false,
                    _ => {
                        let ok = self.caps_pass(set, ctx);
                        ctx.cap_cache[set as usize] = if ok { 1 } else { 2 };
                        ok
                    }
                }
            }
            Filter::AggregateInstanceExtraSpecs => {
                if ctx.agg_reqs.is_empty() {
                    return true;
                }
                let set = self.agg_set[i];
                if ctx.agg_cache.is_empty() {
                    ctx.agg_cache = vec![0; self.agg_sets.len()];
                }
                match ctx.agg_cache[set as usize] {
                    1 => true,
                    2 => false,
                    _ => {
                        let ok = self.aggs_pass(set, ctx);
                        ctx.agg_cache[set as usize] = if ok { 1 } else { 2 };
                        ok
                    }
                }
            }
            Filter::ImageProperties => ctx.img_props.is_empty() || self.image_pass(i, ctx),
            Filter::ServerGroupAffinity => {
                ctx.policy != 1 || !ctx.group_nonempty || ctx.group_count.contains_key(&(i as u32))
            }
            Filter::ServerGroupAntiAffinity => {
                ctx.policy != 2 || !ctx.group_nonempty || !ctx.group_count.contains_key(&(i as u32))
            }
            Filter::SameHost => ctx.same.as_ref().is_none_or(|s| s.contains(&(i as u32))),
            Filter::DifferentHost => ctx.diff.as_ref().is_none_or(|s| !s.contains(&(i as u32))),
            Filter::IoOps => self.io_ops[i] + pc < self.cfg.max_io_ops_per_host,
            Filter::NumInstances => self.num_instances[i] + pc < self.cfg.max_instances_per_host,
            Filter::AggregateMultiTenancyIsolation => self.tenant_pass(i, ctx),
            Filter::IsolatedHosts => self.isolated_pass(i, ctx),
        }
    }

    #[inline]
    fn free_ram_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        if pc == 0 {
            self.free_ram[i]
        } else {
            self.cap_ram[i] - (self.used_ram[i] + pc * per) as f64
        }
    }
    #[inline]
    fn free_vcpu_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        if pc == 0 {
            self.free_vcpu[i]
        } else {
            self.cap_vcpu[i] - (self.used_vcpu[i] + pc * per) as f64
        }
    }
    #[inline]
    fn free_disk_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        if pc == 0 {
            self.free_disk[i]
        } else {
            self.cap_disk[i] - (self.used_disk[i] + pc * per) as f64
        }
    }

    fn reason(&self, f: Filter, i: usize, ctx: &Ctx) -> String {
        let name = &self.cold[i].name;
        let req = ctx.req;
        let pc = ctx.pc(i);
        match f {
            Filter::Ram => format!(
                "{name}: free ram {} MB < {} MB requested",
                fmt_num(self.free_ram_at(i, pc, req.memory_mb)),
                req.memory_mb
            ),
            Filter::Core => format!(
                "{name}: free vcpus {} < {} requested",
                fmt_num(self.free_vcpu_at(i, pc, req.vcpus)),
                req.vcpus
            ),
            Filter::Disk => format!(
                "{name}: free disk {} GB < {} GB requested",
                fmt_num(self.free_disk_at(i, pc, ctx.disk)),
                ctx.disk
            ),
            Filter::Compute => {
                let f = self.flags[i];
                if f & ENABLED == 0 {
                    format!("{name}: compute service disabled")
                } else {
                    format!("{name}: compute service down")
                }
            }
            Filter::AvailabilityZone => {
                let have = match &self.agg_sets[self.agg_set[i] as usize].azs {
                    Some(a) => a.join(","),
                    None => self.strings.str(self.az[i]).to_string(),
                };
                format!(
                    "{name}: availability zone {have:?} != {:?} requested",
                    req.availability_zone
                )
            }
            Filter::ComputeCapabilities => {
                let cs = &self.cap_sets[self.cap_set[i] as usize];
                for (k, r, scoped) in &ctx.cap_reqs {
                    match cs.get(k) {
                        None if *scoped => {
                            return format!("{name}: capability {k:?} missing (requires {r:?})")
                        }
                        Some(v) if !match_spec(v, r) => {
                            return format!("{name}: capability {k}={v:?} does not match {r:?}")
                        }
                        _ => {}
                    }
                }
                format!("{name}: capabilities do not match")
            }
            Filter::AggregateInstanceExtraSpecs => {
                let a = &self.agg_sets[self.agg_set[i] as usize];
                for (k, r) in &ctx.agg_reqs {
                    match a.get(k) {
                        Some(vals) if vals.iter().any(|v| match_spec(v, r)) => {}
                        Some(vals) => {
                            return format!(
                                "{name}: aggregate metadata {k}={:?} does not match {r:?}",
                                vals.join(",")
                            )
                        }
                        None => {
                            return format!(
                                "{name}: aggregate metadata {k:?} missing (requires {r:?})"
                            )
                        }
                    }
                }
                format!("{name}: aggregate metadata does not match")
            }
            Filter::ImageProperties => format!(
                "{name}: image properties not supported by host (arch {:?}, hypervisor {:?} {})",
                self.strings.str(self.arch[i]),
                self.strings.str(self.hv_type[i]),
                self.hv_version[i]
            ),
            Filter::ServerGroupAffinity => format!("{name}: not a host of the affinity group"),
            Filter::ServerGroupAntiAffinity => {
                format!("{name}: already a host of the anti-affinity group")
            }
            Filter::SameHost => format!("{name}: none of the same_host instances is on this host"),
            Filter::DifferentHost => format!("{name}: a different_host instance is on this host"),
            Filter::IoOps => format!(
                "{name}: io ops {} >= max {}",
                self.io_ops[i] + pc,
                self.cfg.max_io_ops_per_host
            ),
            Filter::NumInstances => format!(
                "{name}: instances {} >= max {}",
                self.num_instances[i] + pc,
                self.cfg.max_instances_per_host
            ),
            Filter::AggregateMultiTenancyIsolation => {
                format!(
                    "{name}: aggregate isolated to other tenants (project {:?})",
                    req.project_id
                )
            }
            Filter::IsolatedHosts => {
                if self.flags[i] & ISOLATED != 0 {
                    format!(
                        "{name}: isolated host, image {:?} is not isolated",
                        req.image_id
                    )
                } else {
                    format!("{name}: image {:?} is isolated, host is not", req.image_id)
                }
            }
        }
    }

    /// Run one filter over the candidates (or all slots when `all` is set), keeping passing
    /// hosts in order and recording the rejected count and up to 3 sample reasons.
    fn run_filter(
        &self,
        f: Filter,
        cands: &mut Vec<u32>,
        all: bool,
        ctx: &mut Ctx,
        rej: &mut Rejection,
    ) {
        let n = self.len();
        let mut rejected_slots: Vec<u32> = Vec::new();
        let before = if all { n } else { cands.len() };
        // Fast paths for the hot resource/flag filters: tight loops over the arrays.
        macro_rules! scan {
            ($pred:expr) => {{
                let pred = $pred;
                if all {
                    cands.clear();
                    for i in 0..n {
                        if pred(i) {
                            cands.push(i as u32);
                        } else if rejected_slots.len() < 3 {
                            rejected_slots.push(i as u32);
                        }
                    }
                } else {
                    let mut w = 0;
                    for r in 0..cands.len() {
                        let i = cands[r];
                        if pred(i as usize) {
                            cands[w] = i;
                            w += 1;
                        } else if rejected_slots.len() < 3 {
                            rejected_slots.push(i);
                        }
                    }
                    cands.truncate(w);
                }
            }};
        }
        let no_picks = ctx.picks.is_empty();
        match f {
            Filter::Ram if no_picks => {
                let want = ctx.req.memory_mb as f64;
                let free = &self.free_ram;
                scan!(|i: usize| free[i] >= want)
            }
            Filter::Core if no_picks => {
                let want = ctx.req.vcpus as f64;
                let free = &self.free_vcpu;
                scan!(|i: usize| free[i] >= want)
            }
            Filter::Disk if no_picks => {
                let want = ctx.disk as f64;
                let free = &self.free_disk;
                scan!(|i: usize| free[i] >= want)
            }
            Filter::Compute => {
                let flags = &self.flags;
                scan!(|i: usize| flags[i] & (ENABLED | UP) == (ENABLED | UP))
            }
            Filter::AvailabilityZone if self.agg_sets.iter().all(|a| a.azs.is_none()) => {
                let want = ctx.az_req.unwrap_or(NO_ID);
                let az = &self.az;
                scan!(|i: usize| az[i] == want)
            }
            _ => {
                // generic path (needs &mut ctx for the per-set caches)
                let mut keep = |i: usize| self.passes(f, i, ctx);
                if all {
                    cands.clear();
                    for i in 0..n {
                        if keep(i) {
                            cands.push(i as u32);
                        } else if rejected_slots.len() < 3 {
                            rejected_slots.push(i as u32);
                        }
                    }
                } else {
                    let mut w = 0;
                    for r in 0..cands.len() {
                        let i = cands[r];
                        if keep(i as usize) {
                            cands[w] = i;
                            w += 1;
                        } else if rejected_slots.len() < 3 {
                            rejected_slots.push(i);
                        }
                    }
                    cands.truncate(w);
                }
            }
        }
        rej.rejected += before - cands.len();
        for s in rejected_slots {
            if rej.sample_reasons.len() < 3 {
                rej.sample_reasons.push(self.reason(f, s as usize, ctx));
            }
        }
    }

    /// First pass over all hosts for the leading run of simple array filters (resources,
    /// ComputeFilter, plain AZ, IoOps, NumInstances): all conditions evaluated branch-free, the
    /// configured order only consulted to attribute a rejected host to its first failing filter.
    /// Returns how many leading entries of `cfg.filters` were handled (0: none).
    #[inline(never)]
    fn fused_prefix(&self, cands: &mut Vec<u32>, ctx: &Ctx, rejections: &mut [Rejection]) -> usize {
        let simple_az = self.agg_sets.iter().all(|a| a.azs.is_none());
        let mut count = 0;
        let (mut ram, mut cpu, mut disk, mut comp, mut az, mut io, mut num) =
            (false, false, false, false, false, false, false);
        for &f in &self.cfg.filters {
            if self.filter_inactive(f, ctx) {
                count += 1;
                continue;
            }
            match f {
                Filter::Ram => ram = true,
                Filter::Core => cpu = true,
                Filter::Disk => disk = true,
                Filter::Compute => comp = true,
                Filter::AvailabilityZone if simple_az => az = true,
                Filter::IoOps => io = true,
                Filter::NumInstances => num = true,
                _ => break,
            }
            count += 1;
        }
        if !(ram || cpu || disk || comp || az || io || num) {
            return 0;
        }
        let order: Vec<(usize, Filter)> = self
            .cfg
            .filters
            .iter()
            .copied()
            .enumerate()
            .take(count)
            .filter(|&(_, f)| !self.filter_inactive(f, ctx))
            .collect();
        let mut pos = [31u32; 7];
        for (j, &(_, f)) in order.iter().enumerate() {
            let k = match f {
                Filter::Ram => 0,
                Filter::Core => 1,
                Filter::Disk => 2,
                Filter::Compute => 3,
                Filter::AvailabilityZone => 4,
                Filter::IoOps => 5,
                _ => 6,
            };
            pos[k] = j as u32;
        }
        let n = self.len();
        let p = Scan {
            pos,
            npos: order.len(),
            ram,
            cpu,
            disk,
            comp,
            want_ram: ctx.req.memory_mb as f64,
            want_cpu: ctx.req.vcpus as f64,
            want_disk: ctx.disk as f64,
            want_az: ctx.az_req.unwrap_or(NO_ID),
            max_io: self.cfg.max_io_ops_per_host,
            max_num: self.cfg.max_instances_per_host,
            fr: &self.free_ram[..n],
            fc: &self.free_vcpu[..n],
            fd: &self.free_disk[..n],
            fl: &self.flags[..n],
            fa: &self.az[..n],
            fi: &self.io_ops[..n],
            fn_: &self.num_instances[..n],
        };
        let mut mm: ScanOut = [0; 8];
        cands.clear();
        cands.resize(n + 8, 0);
        let mut failed: Vec<u32> = vec![0; n + 8];
        let (w, f) = scan(&p, az, io, num, cands, &mut failed, &mut mm);
        cands.truncate(w);
        failed.truncate(f);
        // counts per first failing filter (configured order), then up to 3 sample reasons each
        let order = &order;
        let mut need: usize = 0;
        for (j, &(fi, _)) in order.iter().enumerate() {
            let c = mm[j] as usize;
            rejections[fi].rejected += c;
            need += c.min(3);
        }
        for &i in &failed {
            if need == 0 {
                break;
            }
            let i = i as usize;
            for &(fi, f) in order.iter() {
                let ok = match f {
                    Filter::Ram => p.fr[i] >= p.want_ram,
                    Filter::Core => p.fc[i] >= p.want_cpu,
                    Filter::Disk => p.fd[i] >= p.want_disk,
                    Filter::Compute => p.fl[i] & (ENABLED | UP) == (ENABLED | UP),
                    Filter::AvailabilityZone => p.fa[i] == p.want_az,
                    Filter::IoOps => p.fi[i] < p.max_io,
                    Filter::NumInstances => p.fn_[i] < p.max_num,
                    _ => true,
                };
                if !ok {
                    let r = &mut rejections[fi];
                    if r.sample_reasons.len() < 3 {
                        r.sample_reasons.push(self.reason(f, i, ctx));
                        need -= 1;
                    }
                    break;
                }
            }
        }
        count
    }

    // -----------------------------------------------------------------------------------------
    // Weighers
    // -----------------------------------------------------------------------------------------

    /// Weigher values of host `i` as seen by this request (batch picks and soft-affinity
    /// group counts applied), one lane per weigher kind (see `lane`).
    fn fresh_row(&self, i: usize, ctx: &Ctx) -> Row {
        let pc = ctx.pc(i);
        let req = ctx.req;
        let g = ctx.group_count.get(&(i as u32)).copied().unwrap_or(0) as f64;
        [
            (self.ram_weigh_base[i] - (self.used_ram[i] + pc * req.memory_mb)) as f64,
            self.cpu_weigh_base[i] - (self.used_vcpu[i] + pc * req.vcpus) as f64,
            ((self.disk_weigh_base[i] - (self.used_disk[i] + pc * ctx.disk)) * 1024) as f64,
            (self.io_ops[i] + pc) as f64,
            (self.num_instances[i] + pc) as f64,
            (-self.failed_builds[i]) as f64,
            self.hv_version[i] as f64,
            match ctx.policy {
                3 => g,
                4 => 0.0 - g, // no -0.0
                _ => 0.0,
            },
        ]
    }

    #[inline]
    fn row<'a>(&'a self, i: usize, ctx: &Ctx, tmp: &'a mut Row) -> &'a Row {
        if !ctx.special.is_empty() && ctx.special[i] {
            *tmp = self.fresh_row(i, ctx);
            tmp
        } else {
            &self.rows[i]
        }
    }

    /// Min/max of every lane over the candidates, then Nova's per-weigher normalisation stats
    /// for the weighers that contribute (multiplier != 0 and max != min), in config order.
    fn weigher_stats(&self, cands: &[u32], ctx: &Ctx) -> Vec<WeigherStat> {
        let (lo, hi) = if ctx.special.is_empty() {
            minmax_rows(&self.rows, cands)
        } else {
            let mut lo = [f64::INFINITY; LANES];
            let mut hi = [f64::NEG_INFINITY; LANES];
            let mut tmp = [0.0; LANES];
            for &c in cands {
                let r = self.row(c as usize, ctx, &mut tmp);
                for k in 0..LANES {
                    lo[k] = if r[k] < lo[k] { r[k] } else { lo[k] };
                    hi[k] = if r[k] > hi[k] { r[k] } else { hi[k] };
                }
            }
            (lo, hi)
        };
        let mut stats = Vec::new();
        if cands.is_empty() {
            return stats;
        }
        for &(w, mult) in &self.cfg.weighers {
            if mult == 0.0
                || (w == Weigher::SoftAffinity && ctx.policy != 3)
                || (w == Weigher::SoftAntiAffinity && ctx.policy != 4)
            {
                continue; // contributes exactly 0 to every host
            }
            let l = lane(w);
            let (min, max) = (lo[l], hi[l]);
            if min == max {
                continue; // Nova's normalize: all 0
            }
            stats.push(WeigherStat {
                w,
                lane: l,
                mult,
                min,
                range: max - min,
            });
        }
        stats
    }

    /// Nova's weight, bit for bit: 0.0, then += multiplier * ((v - min) / range) in weigher order.
    #[inline]
    fn exact_weight(stats: &[WeigherStat], r: &Row) -> f64 {
        let mut w = 0.0;
        for s in stats {
            w += s.mult * ((r[s.lane] - s.min) / s.range);
        }
        w
    }

    /// Top `k` candidates by (weight desc, slot asc) with Nova's exact weights.
    ///
    /// Fast path: an approximate weight (multiply by mult/range, no divisions) for every
    /// candidate, then the exact weight only for candidates whose approximation is within a
    /// rigorous error bound of the k-th best; the result equals a full exact sort's prefix.
    fn top_k(
        &self,
        cands: &[u32],
        ctx: &Ctx,
        stats: &[WeigherStat],
        k: usize,
        approx: &mut Vec<f64>,
    ) -> Vec<(f64, u32)> {
        let mut top: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
        let mut tmp = [0.0; LANES];
        if stats.is_empty() {
            // all weights are 0: table order
            return cands.iter().take(k).map(|&c| (0.0, c)).collect();
        }
        let mut kv = [0.0; LANES];
        let mut mv = [0.0; LANES];
        let mut abs_sum = 0.0;
        for s in stats {
            kv[s.lane] = s.mult / s.range;
            mv[s.lane] = s.min;
            abs_sum += s.mult.abs();
        }
        // |approx - exact| <= (3 + lanes) * eps * sum|mult|; use a generous margin.
        let err = 64.0 * f64::EPSILON * abs_sum;
        if ctx.special.is_empty() {
            approx_scores(&self.rows, cands, &mv, &kv, approx);
        } else {
            approx.clear();
            for &c in cands {
                let r = self.row(c as usize, ctx, &mut tmp);
                let mut p = [0.0; LANES];
                for l in 0..LANES {
                    p[l] = (r[l] - mv[l]) * kv[l];
                }
                approx.push(((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7])));
            }
        }
        let threshold = kth_largest(approx, k) - 2.0 * err;
        let mut last_row = [f64::NAN; LANES];
        let mut last_w = 0.0;
        for (p, &c) in cands.iter().enumerate() {
            let a = approx[p];
            if a < threshold {
                continue;
            }
            if top.len() == k && a < top[k - 1].0 - 2.0 * err {
                continue;
            }
            let r = self.row(c as usize, ctx, &mut tmp);
            let w = if *r == last_row {
                last_w
            } else {
                last_row = *r;
                last_w = Self::exact_weight(stats, r);
                last_w
            };
            if top.len() < k || w > top[top.len() - 1].0 {
                let pos = top.partition_point(|&(tw, _)| tw >= w);
                top.insert(pos, (w, c));
                if top.len() > k {
                    top.pop();
                }
            }
        }
        top
    }

    fn weights_breakdown(
        &self,
        stats: &[WeigherStat],
        i: usize,
        ctx: &Ctx,
    ) -> Vec<(&'static str, f64)> {
        let r = self.fresh_row(i, ctx);
        self.cfg
            .weighers
            .iter()
            .map(|&(w, _)| {
                let v = match stats.iter().find(|s| s.w == w) {
                    Some(s) => s.mult * ((r[s.lane] - s.min) / s.range) + 0.0, // no -0.0
                    None => 0.0,
                };
                (w.name(), v)
            })
            .collect()
    }

    // -----------------------------------------------------------------------------------------
    // Select / explain
    // -----------------------------------------------------------------------------------------

    /// Filter + weigh + choose for every instance of the request, without claiming.
    /// Returns the outcome and the chosen slots.
    pub fn plan(&self, req: &Request) -> (Outcome, Vec<usize>) {
        let t0 = Instant::now();
        let n = self.len();
        let mut ctx = self.ctx(req);
        let n_inst = req.instance_ids.len().max(1);
        let required = if req.min_count > 0 {
            (req.min_count as usize).min(n_inst)
        } else {
            n_inst
        };
        let max_alts = self.cfg.max_attempts.saturating_sub(1);
        let subset = self.cfg.host_subset_size.max(1);
        let k = subset.max(5).max(max_alts + n_inst);

        let mut rejections: Vec<Rejection> = self
            .cfg
            .filters
            .iter()
            .map(|f| Rejection {
                filter: f.name(),
                rejected: 0,
                sample_reasons: Vec::new(),
            })
            .collect();
        let mut ignored = Rejection {
            filter: "ignore_hosts",
            rejected: 0,
            sample_reasons: Vec::new(),
        };

        let mut cands: Vec<u32> = Vec::with_capacity(n);
        let mut approx: Vec<f64> = Vec::new();
        let mut first = true;
        let mut picks: Vec<usize> = Vec::new();
        let mut top_hosts: Vec<TopHost> = Vec::new();
        let mut last_top: Vec<(f64, u32)> = Vec::new();

        for _inst in 0..n_inst {
            // ---- filter ----
            let mut all = first;
            if !ctx.ignore.is_empty() {
                if all {
                    cands.clear();
                    cands.extend((0..n as u32).filter(|i| !ctx.ignore.contains(i)));
                    all = false;
                    ignored.rejected = n - cands.len();
                }
                if ignored.sample_reasons.is_empty() {
                    let mut seen: Vec<&str> = Vec::new();
                    for h in req.ignore_hosts.iter().filter(|h| self.contains(h)) {
                        if seen.len() < 3 && !seen.contains(&h.as_str()) {
                            seen.push(h);
                            ignored.sample_reasons.push(format!("{h}: in ignore_hosts"));
                        }
                    }
                }
            }
            let mut fused = 0;
            if all {
                fused = self.fused_prefix(&mut cands, &ctx, &mut rejections);
                if fused > 0 {
                    all = false;
                }
            }
            for (fi, &f) in self.cfg.filters.iter().enumerate() {
                if fi < fused || self.filter_inactive(f, &ctx) {
                    continue;
                }
                self.run_filter(f, &mut cands, all, &mut ctx, &mut rejections[fi]);
                all = false;
            }
            if all {
                cands.clear();
                cands.extend(0..n as u32);
            }
            first = false;
            if cands.is_empty() {
                break;
            }
            // ---- weigh ----
            let stats = self.weigher_stats(&cands, &ctx);
            let top = self.top_k(&cands, &ctx, &stats, k, &mut approx);
            if top_hosts.is_empty() {
                for &(w, s) in top.iter().take(5) {
                    top_hosts.push(TopHost {
                        host: self.cold[s as usize].name.to_string(),
                        weight: w,
                        weights: self.weights_breakdown(&stats, s as usize, &ctx),
                    });
                }
            }
            // ---- choose ----
            let pool = subset.min(top.len());
            let idx = if pool <= 1 {
                0
            } else {
                (self.next_random() % pool as u64) as usize
            };
            let chosen = top[idx].1 as usize;
            picks.push(chosen);
            last_top = top;
            // ---- consume (Nova's _consume_selected_host), for the next instance ----
            if n_inst > 1 {
                if ctx.picks.is_empty() {
                    ctx.picks = vec![0; n];
                }
                ctx.picks[chosen] += 1;
                if ctx.special.is_empty() {
                    ctx.special = vec![false; n];
                }
                ctx.special[chosen] = true;
                if ctx.policy != 0 {
                    *ctx.group_count.entry(chosen as u32).or_insert(0) += 1;
                    ctx.group_nonempty = true;
                }
            }
        }

        let placed = picks.len();
        let ok = placed >= required && n_inst > 0;
        let hosts_passed = cands.len();
        let mut selections = Vec::new();
        if ok {
            let alts: Vec<String> = last_top
                .iter()
                .filter(|(_, s)| !picks.contains(&(*s as usize)))
                .take(max_alts)
                .map(|(_, s)| self.cold[*s as usize].name.to_string())
                .collect();
            for (j, &slot) in picks.iter().enumerate() {
                selections.push(SelectionOut {
                    instance_id: req.instance_ids.get(j).cloned().unwrap_or_default(),
                    host: self.cold[slot].name.to_string(),
                    alternate_hosts: alts.clone(),
                });
            }
        }
        let mut all_rej = Vec::new();
        if ignored.rejected > 0 {
            all_rej.push(ignored);
        }
        all_rej.extend(rejections);
        let parts: Vec<String> = all_rej
            .iter()
            .filter(|r| r.rejected > 0)
            .map(|r| format!("{} rejected {}", r.filter, r.rejected))
            .collect();
        let summary = if ok {
            let best = top_hosts
                .first()
                .map(|t| format!("; best {} (weight {:.4})", t.host, t.weight));
            format!(
                "placed {placed} of {n_inst} instance{}: {n} hosts, {} passed{}{}",
                if n_inst == 1 { "" } else { "s" },
                hosts_passed,
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("; {}", parts.join(", "))
                },
                best.unwrap_or_default()
            )
        } else {
            let mut s = format!("no valid host: {n} hosts");
            if !parts.is_empty() {
                s.push_str("; ");
                s.push_str(&parts.join(", "));
            }
            if n_inst > 1 {
                s.push_str(&format!(
                    "; only {placed} of {n_inst} instances could be placed (need {required})"
                ));
            }
            s
        };
        let explanation = Explanation {
            hosts_total: n,
            hosts_passed,
            rejections: all_rej,
            top_hosts,
            summary,
            elapsed_us: t0.elapsed().as_secs_f64() * 1e6,
        };
        let chosen = if ok { picks } else { Vec::new() };
        (
            Outcome {
                selections,
                explanation,
                ok,
            },
            chosen,
        )
    }

    /// Plan and, if enough instances can be placed, claim them (all or none).
    pub fn select(&mut self, req: &Request) -> Outcome {
        let (mut out, slots) = self.plan(req);
        if out.ok {
            let disk = req.disk_gb();
            for (j, &slot) in slots.iter().enumerate() {
                if let Some(id) = req.instance_ids.get(j) {
                    self.apply_claim(id, slot, req.vcpus, req.memory_mb, disk);
                }
            }
        }
        out.explanation.elapsed_us = out.explanation.elapsed_us.max(0.0);
        out
    }

    /// Which hosts pass one filter, ignoring the others (for tests against the oracle).
    pub fn hosts_passing(&self, f: Filter, req: &Request) -> Vec<String> {
        let mut ctx = self.ctx(req);
        (0..self.len())
            .filter(|&i| self.passes(f, i, &mut ctx))
            .map(|i| self.cold[i].name.to_string())
            .collect()
    }

    /// Combined weights of the given hosts (all assumed candidates), in Nova's way.
    pub fn weigh_hosts(&self, names: &[String], req: &Request) -> Vec<(String, f64)> {
        let ctx = self.ctx(req);
        let mut slots: Vec<u32> = names
            .iter()
            .filter_map(|h| self.slot(h))
            .map(|i| i as u32)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let stats = self.weigher_stats(&slots, &ctx);
        slots
            .iter()
            .map(|&s| {
                (
                    self.cold[s as usize].name.to_string(),
                    Self::exact_weight(&stats, &self.fresh_row(s as usize, &ctx)),
                )
            })
            .collect()
    }

    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.cold.iter().map(|c| &*c.name)
    }
}

#[cfg(test)]
mod tests;
