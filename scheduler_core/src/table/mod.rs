//! The host table: per-host columns (`columns.rs`), interned strings and sets (`intern.rs`),
//! weigher rows (`row.rs`), claims, and host reports.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use crate::model::{check_amount, Config, HostSpec, HostView, MAX_USED};
use crate::ops::{canon_arch, canon_hv_type, canon_vm_mode};

mod columns;
mod intern;
mod row;

pub(crate) use columns::{Cold, Columns, ENABLED, ISOLATED, UP};
pub(crate) use intern::{AggSet, Details, Interner, SetInterner};

/// An interned id no string has.
pub(crate) const NO_ID: u32 = u32::MAX;

/// Resources an instance holds on a host.
#[derive(Debug, Clone)]
struct Claim {
    host: Arc<str>,
    vcpus: i64,
    memory_mb: i64,
    disk_gb: i64,
    /// the host's report sequence number when the claim was made
    seq: u64,
}

#[derive(Debug)]
pub struct HostTable {
    pub cfg: Config,
    index: HashMap<Arc<str>, u32>,
    pub(crate) cols: Columns,
    pub(crate) strings: Interner,
    pub(crate) sets: SetInterner,
    claims: HashMap<String, Claim>,
    rng: AtomicU64,
    seq: u64,
    pub(crate) isolated_images: HashSet<String>,
    pub(crate) isolated_hosts: HashSet<String>,
    pub(crate) hvm_id: u32,
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
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
        strings.intern("");
        let hvm_id = strings.intern("hvm");
        HostTable {
            isolated_images: cfg.isolated_images.iter().cloned().collect(),
            isolated_hosts: cfg.isolated_hosts.iter().cloned().collect(),
            cfg,
            index: HashMap::new(),
            cols: Columns::default(),
            strings,
            sets: SetInterner::default(),
            claims: HashMap::new(),
            rng: AtomicU64::new(seed),
            seq: 0,
            hvm_id,
        }
    }

    pub fn len(&self) -> usize {
        self.cols.cold.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cols.cold.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).map(|&i| i as usize)
    }

    /// Host name of slot `i`.
    pub(crate) fn name(&self, i: usize) -> &Arc<str> {
        &self.cols.cold[i].name
    }

    pub(crate) fn details(&self, i: usize) -> &Details {
        &self.sets.details[self.cols.cold[i].details as usize]
    }

    pub(crate) fn agg_set(&self, i: usize) -> &AggSet {
        &self.sets.agg_sets[self.cols.agg_set[i] as usize]
    }

    /// Do aggregates set a weight multiplier for any of these candidates?
    pub(crate) fn multipliers_vary(&self, cands: &[u32]) -> bool {
        self.sets.any_multipliers
            && cands
                .iter()
                .any(|&c| self.agg_set(c as usize).multipliers.is_some())
    }

    pub fn num_claims(&self) -> usize {
        self.claims.len()
    }

    pub(crate) fn next_random(&self) -> u64 {
        let s = self
            .rng
            .fetch_add(0x9e3779b97f4a7c15, AtomicOrdering::Relaxed);
        splitmix64(s.wrapping_add(0x9e3779b97f4a7c15))
    }

    /// Insert or update a host. Returns false (and changes nothing) for a stale generation;
    /// an error (and no change) for amounts out of range (`HostSpec::check`).
    pub fn upsert(&mut self, h: &HostSpec) -> Result<bool, String> {
        h.check()?;
        let existing = self.slot(&h.name);
        if let Some(i) = existing {
            if h.generation < self.cols.cold[i].generation {
                return Ok(false);
            }
        }
        self.seq += 1;
        let seq = self.seq;
        let az_raw = self.strings.intern(&h.availability_zone);
        let hv_type_raw = self.strings.intern(&h.hypervisor_type);
        let arch_raw = self.strings.intern(&h.cpu_arch);
        let arch = self.strings.intern(&canon_arch(&h.cpu_arch));
        let hv_type = self.strings.intern(&canon_hv_type(&h.hypervisor_type));
        let cap_set = self.sets.intern_caps(&h.capabilities);
        let mut traits: Vec<u32> = h.traits.iter().map(|x| self.strings.intern(x)).collect();
        traits.sort_unstable();
        traits.dedup();
        let mut supported: Vec<[u32; 3]> = Vec::new();
        for (a, t, m) in &h.supported_instances {
            let e = [
                self.strings.intern(&canon_arch(a)),
                self.strings.intern(&canon_hv_type(t)),
                self.strings.intern(&canon_vm_mode(m)),
            ];
            supported.push(e);
        }
        if supported.is_empty() && !(h.cpu_arch.is_empty() && h.hypervisor_type.is_empty()) {
            // an agent that reports no list: its one architecture and hypervisor type
            supported.push([arch, hv_type, self.hvm_id]);
        }
        let details = self.sets.intern_details(
            (hv_type_raw, h.hypervisor_version),
            traits,
            &h.cpu_info,
            supported,
        );
        let agg_set = self.sets.intern_aggs(&h.aggregates);
        let name: Arc<str> = match existing {
            Some(i) => self.cols.cold[i].name.clone(),
            None => Arc::from(h.name.as_str()),
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
                let i = self.cols.push();
                self.index.insert(name.clone(), i as u32);
                i
            }
        };
        let c = &mut self.cols;
        c.cold[i] = Cold {
            name,
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
            details,
        };
        c.cap_vcpu[i] = (h.vcpus - h.reserved_vcpus) as f64 * h.cpu_allocation_ratio;
        c.cap_ram[i] = (h.memory_mb - h.reserved_memory_mb) as f64 * h.ram_allocation_ratio;
        c.cap_disk[i] = (h.disk_gb - h.reserved_disk_gb) as f64 * h.disk_allocation_ratio;
        c.cpu_weigh_base[i] = h.vcpus as f64 * h.cpu_allocation_ratio;
        c.ram_weigh_base[i] = h.memory_mb - h.reserved_memory_mb;
        c.disk_weigh_base[i] = h.disk_gb - h.reserved_disk_gb;
        c.flags[i] = flags;
        c.io_ops[i] = h.io_ops;
        c.num_instances[i] = h.num_instances;
        c.failed_builds[i] = h.failed_builds;
        c.hv_version[i] = h.hypervisor_version;
        c.az[i] = az_raw;
        c.arch[i] = arch;
        c.hv_type[i] = hv_type;
        c.cap_set[i] = cap_set;
        c.agg_set[i] = agg_set;
        self.refresh_free(i);
        Ok(true)
    }

    /// Remove a host (and its claims). The last host moves into its slot.
    pub fn remove(&mut self, name: &str) -> bool {
        let i = match self.slot(name) {
            Some(i) => i,
            None => return false,
        };
        let host = self.cols.cold[i].name.clone();
        self.index.remove(name);
        self.cols.swap_remove(i);
        if i < self.len() {
            let moved = self.cols.cold[i].name.clone();
            self.index.insert(moved, i as u32);
        }
        self.claims.retain(|_, c| c.host != host);
        true
    }

    fn set_flag(&mut self, name: &str, flag: u8, on: bool) -> bool {
        match self.slot(name) {
            Some(i) => {
                if on {
                    self.cols.flags[i] |= flag;
                } else {
                    self.cols.flags[i] &= !flag;
                }
                true
            }
            None => false,
        }
    }

    pub fn set_up(&mut self, name: &str, up: bool) -> bool {
        self.set_flag(name, UP, up)
    }

    pub fn set_enabled(&mut self, name: &str, enabled: bool) -> bool {
        self.set_flag(name, ENABLED, enabled)
    }

    /// Can slot `i` take `times` more claims of these amounts without a summed usage leaving
    /// 0..=MAX_USED? (Checked arithmetic: an error says which resource would overflow.)
    pub(crate) fn check_claim(
        &self,
        i: usize,
        times: i64,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) -> Result<(), String> {
        let c = &self.cols;
        let used = [
            ("vcpus", c.used_vcpu[i], vcpus),
            ("memory_mb", c.used_ram[i], memory_mb),
            ("disk_gb", c.used_disk[i], disk_gb),
        ];
        for (field, have, per) in used {
            let total = per.checked_mul(times).and_then(|x| x.checked_add(have));
            if !matches!(total, Some(t) if t <= MAX_USED) {
                return Err(format!(
                    "claiming {times} x {per} {field} on host {:?} would take its usage past {MAX_USED}",
                    self.name(i)
                ));
            }
        }
        Ok(())
    }

    /// Claim on slot `i` (amounts already checked by `check_claim`).
    pub(crate) fn apply_claim(
        &mut self,
        instance_id: &str,
        i: usize,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) {
        self.release(instance_id);
        let c = &mut self.cols;
        c.used_vcpu[i] += vcpus;
        c.used_ram[i] += memory_mb;
        c.used_disk[i] += disk_gb;
        c.num_instances[i] += 1;
        c.io_ops[i] += 1;
        self.refresh_free(i);
        let c = Claim {
            host: self.cols.cold[i].name.clone(),
            vcpus,
            memory_mb,
            disk_gb,
            seq: self.cols.cold[i].seq,
        };
        self.claims.insert(instance_id.to_string(), c);
    }

    /// Record an existing allocation (e.g. after a service restart). May overcommit, but
    /// amounts out of range or a usage that would overflow are an error (nothing changes).
    /// Ok(false): unknown host.
    pub fn claim(
        &mut self,
        instance_id: &str,
        host: &str,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) -> Result<bool, String> {
        check_amount("vcpus", vcpus)?;
        check_amount("memory_mb", memory_mb)?;
        check_amount("disk_gb", disk_gb)?;
        let Some(i) = self.slot(host) else {
            return Ok(false);
        };
        // a claim of the same instance is replaced: its old amounts do not count
        let (mut v, mut m, mut d) = (vcpus, memory_mb, disk_gb);
        if let Some(old) = self.claims.get(instance_id).filter(|c| *c.host == *host) {
            (v, m, d) = (v - old.vcpus, m - old.memory_mb, d - old.disk_gb);
        }
        self.check_claim(i, 1, v.max(0), m.max(0), d.max(0))?;
        self.apply_claim(instance_id, i, vcpus, memory_mb, disk_gb);
        Ok(true)
    }

    /// Return a claim's resources; false if the instance holds no claim.
    pub fn release(&mut self, instance_id: &str) -> bool {
        let cl = match self.claims.remove(instance_id) {
            Some(c) => c,
            None => return false,
        };
        if let Some(i) = self.slot(&cl.host) {
            let c = &mut self.cols;
            c.used_vcpu[i] -= cl.vcpus;
            c.used_ram[i] -= cl.memory_mb;
            c.used_disk[i] -= cl.disk_gb;
            if c.cold[i].seq == cl.seq {
                // no report since the claim: undo its bump of the counters
                c.num_instances[i] = (c.num_instances[i] - 1).max(0);
                c.io_ops[i] = (c.io_ops[i] - 1).max(0);
            }
            self.refresh_free(i);
        }
        true
    }

    pub fn claim_host(&self, instance_id: &str) -> Option<&str> {
        self.claims.get(instance_id).map(|c| &*c.host)
    }

    /// Free RAM of slot `i` after `pc` more instances of `per` MB each.
    #[inline]
    pub(crate) fn free_ram_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        let c = &self.cols;
        if pc == 0 {
            c.free_ram[i]
        } else {
            c.cap_ram[i] - (c.used_ram[i] + pc * per) as f64
        }
    }
    #[inline]
    pub(crate) fn free_vcpu_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        let c = &self.cols;
        if pc == 0 {
            c.free_vcpu[i]
        } else {
            c.cap_vcpu[i] - (c.used_vcpu[i] + pc * per) as f64
        }
    }
    #[inline]
    pub(crate) fn free_disk_at(&self, i: usize, pc: i64, per: i64) -> f64 {
        let c = &self.cols;
        if pc == 0 {
            c.free_disk[i]
        } else {
            c.cap_disk[i] - (c.used_disk[i] + pc * per) as f64
        }
    }

    pub fn view(&self, i: usize) -> HostView {
        let c = &self.cols;
        let cold = &c.cold[i];
        HostView {
            host: cold.name.to_string(),
            enabled: c.flags[i] & ENABLED != 0,
            up: c.flags[i] & UP != 0,
            availability_zone: self.strings.str(cold.az_raw).to_string(),
            vcpus: cold.vcpus,
            vcpus_used: c.used_vcpu[i],
            memory_mb: cold.memory_mb,
            memory_mb_used: c.used_ram[i],
            disk_gb: cold.disk_gb,
            disk_gb_used: c.used_disk[i],
            reserved_vcpus: cold.reserved_vcpus,
            reserved_memory_mb: cold.reserved_memory_mb,
            reserved_disk_gb: cold.reserved_disk_gb,
            free_vcpus: c.free_vcpu[i],
            free_memory_mb: c.free_ram[i],
            free_disk_gb: c.free_disk[i],
            num_instances: c.num_instances[i],
            io_ops: c.io_ops[i],
            failed_builds: c.failed_builds[i],
            cpu_allocation_ratio: cold.cpu_ratio,
            ram_allocation_ratio: cold.ram_ratio,
            disk_allocation_ratio: cold.disk_ratio,
            hypervisor_type: self.strings.str(cold.hv_type_raw).to_string(),
            hypervisor_version: c.hv_version[i],
            cpu_arch: self.strings.str(cold.arch_raw).to_string(),
            aggregates: self.agg_set(i).names.clone(),
            generation: cold.generation,
            traits: self
                .details(i)
                .traits
                .iter()
                .map(|&x| self.strings.str(x).to_string())
                .collect(),
            cpu_info: self.details(i).cpu_info_raw.clone(),
            supported_instances: self
                .details(i)
                .supported
                .iter()
                .map(|e| {
                    let [a, h, m] = e.map(|x| self.strings.str(x).to_string());
                    (a, h, m)
                })
                .collect(),
        }
    }

    /// Approximate heap + inline bytes held by the table.
    pub fn memory_bytes(&self) -> usize {
        let names: usize = self.cols.cold.iter().map(|c| c.name.len() + 16).sum();
        let index = self.index.capacity() * (std::mem::size_of::<(Arc<str>, u32)>() + 1);
        let claims: usize = self.claims.capacity() * (std::mem::size_of::<(String, Claim)>() + 1)
            + self.claims.keys().map(|k| k.capacity()).sum::<usize>();
        std::mem::size_of::<Self>()
            + self.cols.bytes()
            + names
            + index
            + claims
            + self.sets.bytes()
            + self.strings.bytes()
    }

    pub fn host_names(&self) -> impl Iterator<Item = &str> {
        self.cols.cold.iter().map(|c| &*c.name)
    }
}
