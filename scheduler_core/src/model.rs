//! What goes in and out of the core: configuration, a request, a host report, the outcome.

use crate::filters::{Filter, DEFAULT_FILTERS};
use crate::weighers::Weigher;

/// The largest resource amount the core accepts anywhere (a host's vCPUs / MB / GB, reserved
/// amounts and counters; a request's or claim's per-instance amounts): 2^40, i.e. 1 EiB of RAM
/// in MB. With `MAX_INSTANCES` and `MAX_USED` it keeps every sum the core forms (usage plus a
/// batch, free disk in MB for the DiskWeigher) well inside i64: larger inputs are rejected
/// with an error, never wrapped.
pub const MAX_AMOUNT: i64 = 1 << 40;
/// The most instances one request may place (the API allows 1000).
pub const MAX_INSTANCES: usize = 1 << 10;
/// The most a host's summed claims of one resource may reach.
pub const MAX_USED: i64 = 1 << 50;

/// `value` if it is within 0..=MAX_AMOUNT, else an error naming `field`.
pub(crate) fn check_amount(field: &str, value: i64) -> Result<(), String> {
    if (0..=MAX_AMOUNT).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{field} must be between 0 and {MAX_AMOUNT} (got {value})"
        ))
    }
}

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

/// A server group's policy (Nova's `InstanceGroup.policy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum GroupPolicy {
    #[default]
    None,
    Affinity,
    AntiAffinity,
    SoftAffinity,
    SoftAntiAffinity,
}

impl GroupPolicy {
    /// Nova's spelling; anything else (including "") is no policy.
    pub fn from_name(s: &str) -> GroupPolicy {
        match s {
            "affinity" => GroupPolicy::Affinity,
            "anti-affinity" => GroupPolicy::AntiAffinity,
            "soft-affinity" => GroupPolicy::SoftAffinity,
            "soft-anti-affinity" => GroupPolicy::SoftAntiAffinity,
            _ => GroupPolicy::None,
        }
    }

    /// Soft policies weigh group members instead of filtering.
    pub fn is_soft(self) -> bool {
        matches!(
            self,
            GroupPolicy::SoftAffinity | GroupPolicy::SoftAntiAffinity
        )
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
    /// the anti-affinity group's `max_server_per_host` rule (0 or 1: one member per host)
    pub group_max_server_per_host: i64,
}

impl Request {
    /// Placement's DISK_GB for a flavor: root + ephemeral + swap rounded up to GiB
    /// (saturating: `check` rejects a request whose sum leaves the accepted range).
    pub fn disk_gb(&self) -> i64 {
        let swap_gb = self.swap_mb.max(0).saturating_add(1023) / 1024;
        self.root_gb
            .saturating_add(self.ephemeral_gb)
            .saturating_add(swap_gb)
    }

    /// Every amount within 0..=MAX_AMOUNT (the disk sum included), at most MAX_INSTANCES
    /// instances: what the core's arithmetic is proven safe for.
    pub fn check(&self) -> Result<(), String> {
        check_amount("vcpus", self.vcpus)?;
        check_amount("memory_mb", self.memory_mb)?;
        check_amount("root_gb", self.root_gb)?;
        check_amount("ephemeral_gb", self.ephemeral_gb)?;
        check_amount("swap_mb", self.swap_mb)?;
        let disk = self.disk_gb();
        if disk > MAX_AMOUNT {
            return Err(format!(
                "root_gb + ephemeral_gb + swap_mb / 1024 must be at most {MAX_AMOUNT} GB (got {disk})"
            ));
        }
        if self.instance_ids.len() > MAX_INSTANCES {
            return Err(format!(
                "at most {MAX_INSTANCES} instances per request (got {})",
                self.instance_ids.len()
            ));
        }
        Ok(())
    }

    /// Required and forbidden traits, as Nova's ResourceRequest reads them: flavor extra specs
    /// `trait:X=required|forbidden`, image properties `trait:X=required`.
    pub fn traits(&self) -> (Vec<&str>, Vec<&str>) {
        let mut required = Vec::new();
        let mut forbidden = Vec::new();
        for (k, v) in &self.flavor_extra_specs {
            match (k.strip_prefix("trait:"), v.as_str()) {
                (Some(t), "required") if !t.is_empty() => required.push(t),
                (Some(t), "forbidden") if !t.is_empty() => forbidden.push(t),
                _ => {}
            }
        }
        for (k, v) in &self.image_properties {
            if let (Some(t), "required") = (k.strip_prefix("trait:"), v.as_str()) {
                if !t.is_empty() {
                    required.push(t);
                }
            }
        }
        (required, forbidden)
    }

    /// An image property by its current key, else by its legacy key.
    pub(crate) fn image_prop(&self, key: &str, legacy: &str) -> Option<&str> {
        let get = |k: &str| {
            self.image_properties
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, v)| v.as_str())
        };
        get(key).or_else(|| get(legacy))
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
    /// placement traits (os-traits names)
    pub traits: Vec<String>,
    /// Nova's ComputeNode.cpu_info: a JSON object ("" if not reported)
    pub cpu_info: String,
    /// Nova's supported_instances: (arch, hypervisor type, vm mode); empty: the one of
    /// `cpu_arch` and `hypervisor_type`
    pub supported_instances: Vec<(String, String, String)>,
}

impl HostSpec {
    /// Every amount within 0..=MAX_AMOUNT and finite, non-negative allocation ratios.
    pub fn check(&self) -> Result<(), String> {
        let amounts = [
            ("vcpus", self.vcpus),
            ("memory_mb", self.memory_mb),
            ("disk_gb", self.disk_gb),
            ("reserved_vcpus", self.reserved_vcpus),
            ("reserved_memory_mb", self.reserved_memory_mb),
            ("reserved_disk_gb", self.reserved_disk_gb),
            ("io_ops", self.io_ops),
            ("num_instances", self.num_instances),
            ("failed_builds", self.failed_builds),
        ];
        for (field, v) in amounts {
            check_amount(field, v).map_err(|e| format!("host {:?}: {e}", self.name))?;
        }
        let ratios = [
            ("cpu_allocation_ratio", self.cpu_allocation_ratio),
            ("ram_allocation_ratio", self.ram_allocation_ratio),
            ("disk_allocation_ratio", self.disk_allocation_ratio),
        ];
        for (field, r) in ratios {
            if !(r.is_finite() && r >= 0.0) {
                return Err(format!(
                    "host {:?}: {field} must be a finite number >= 0 (got {r})",
                    self.name
                ));
            }
        }
        Ok(())
    }

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
            traits: Vec::new(),
            cpu_info: String::new(),
            supported_instances: Vec::new(),
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
    pub traits: Vec<String>,
    pub cpu_info: String,
    /// canonical (arch, hypervisor type, vm mode)
    pub supported_instances: Vec<(String, String, String)>,
}

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
