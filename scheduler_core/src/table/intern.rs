//! Interning: host strings to ids, and distinct capability / aggregate sets shared by hosts.

use std::collections::HashMap;

#[derive(Default, Debug)]
pub(crate) struct Interner {
    map: HashMap<String, u32>,
    strings: Vec<String>,
}

impl Interner {
    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.map.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_string());
        self.map.insert(s.to_string(), id);
        id
    }
    pub(crate) fn get(&self, s: &str) -> Option<u32> {
        self.map.get(s).copied()
    }
    pub(crate) fn str(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }
    pub(crate) fn bytes(&self) -> usize {
        self.strings.iter().map(|s| 2 * s.capacity() + 80).sum()
    }
}

/// A distinct capabilities dict (sorted by key).
#[derive(Debug)]
pub(crate) struct CapSet {
    pub(crate) caps: Vec<(String, String)>,
}

impl CapSet {
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.caps
            .binary_search_by(|(a, _)| a.as_str().cmp(k))
            .ok()
            .map(|i| self.caps[i].1.as_str())
    }

    fn bytes(&self) -> usize {
        64 + self
            .caps
            .iter()
            .map(|(k, v)| 48 + k.capacity() + v.capacity())
            .sum::<usize>()
    }
}

/// A distinct set of aggregates (with their metadata), merged the way Nova's
/// `utils.aggregate_metadata_get_by_host` does: key -> set of comma-split, stripped values.
#[derive(Debug)]
pub(crate) struct AggSet {
    pub(crate) names: Vec<String>,
    pub(crate) metadata: Vec<(String, Vec<String>)>, // sorted by key
    /// values of "availability_zone" if any aggregate has it
    pub(crate) azs: Option<Vec<String>>,
    /// union of "filter_tenant_id*" values
    pub(crate) tenants: Vec<String>,
    /// weight multipliers the aggregates set (see `weighers::aggregate_multipliers`)
    pub(crate) multipliers: Option<Vec<Option<f64>>>,
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
            multipliers: crate::weighers::aggregate_multipliers(aggs),
        }
    }

    pub(crate) fn get(&self, k: &str) -> Option<&Vec<String>> {
        self.metadata
            .binary_search_by(|(a, _)| a.as_str().cmp(k))
            .ok()
            .map(|i| &self.metadata[i].1)
    }

    fn bytes(&self) -> usize {
        128 + self
            .metadata
            .iter()
            .map(|(k, v)| 48 + k.capacity() + v.iter().map(|s| 24 + s.capacity()).sum::<usize>())
            .sum::<usize>()
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

/// What a host reports besides its numbers: placement traits (interned, sorted), Nova's
/// cpu_info (the JSON text, and the object it holds) and supported instances (canonical
/// arch, hypervisor type, vm mode, interned). Hosts of one kind share one.
#[derive(Debug)]
pub(crate) struct Details {
    /// hypervisor type as reported (interned) and version: capabilities read them here
    pub(crate) hv_type_raw: u32,
    pub(crate) hv_version: i64,
    pub(crate) traits: Vec<u32>,
    pub(crate) cpu_info_raw: String,
    pub(crate) cpu_info: Option<serde_json::Value>,
    pub(crate) supported: Vec<[u32; 3]>,
}

impl Details {
    fn bytes(&self) -> usize {
        96 + 4 * self.traits.capacity()
            + 2 * self.cpu_info_raw.capacity()
            + 12 * self.supported.capacity()
    }
}

/// (hypervisor type, version, traits, cpu_info text, supported instances): what makes two
/// hosts' `Details` one.
type DetailsKey = (u32, i64, Vec<u32>, String, Vec<[u32; 3]>);

/// Distinct capability and aggregate sets, each stored once and referenced by id.
#[derive(Default, Debug)]
pub(crate) struct SetInterner {
    pub(crate) cap_sets: Vec<CapSet>,
    cap_set_ids: HashMap<String, u32>,
    pub(crate) agg_sets: Vec<AggSet>,
    agg_set_ids: HashMap<String, u32>,
    /// some aggregate set overrides a weight multiplier
    pub(crate) any_multipliers: bool,
    pub(crate) details: Vec<Details>,
    details_ids: HashMap<DetailsKey, u32>,
}

impl SetInterner {
    pub(crate) fn intern_caps(&mut self, caps: &[(String, String)]) -> u32 {
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

    pub(crate) fn intern_aggs(&mut self, aggs: &[(String, Vec<(String, String)>)]) -> u32 {
        let key = agg_key(aggs);
        if let Some(&id) = self.agg_set_ids.get(&key) {
            return id;
        }
        let id = self.agg_sets.len() as u32;
        let set = AggSet::build(aggs);
        self.any_multipliers |= set.multipliers.is_some();
        self.agg_sets.push(set);
        self.agg_set_ids.insert(key, id);
        id
    }

    pub(crate) fn intern_details(
        &mut self,
        (hv_type_raw, hv_version): (u32, i64),
        traits: Vec<u32>,
        cpu_info: &str,
        supported: Vec<[u32; 3]>,
    ) -> u32 {
        let key = (
            hv_type_raw,
            hv_version,
            traits,
            cpu_info.to_string(),
            supported,
        );
        if let Some(&id) = self.details_ids.get(&key) {
            return id;
        }
        let id = self.details.len() as u32;
        let cpu = serde_json::from_str::<serde_json::Value>(cpu_info)
            .ok()
            .filter(serde_json::Value::is_object);
        self.details.push(Details {
            hv_type_raw,
            hv_version,
            traits: key.2.clone(),
            cpu_info_raw: key.3.clone(),
            cpu_info: cpu,
            supported: key.4.clone(),
        });
        self.details_ids.insert(key, id);
        id
    }

    /// No aggregate carries an `availability_zone`: a host's zone is its own column.
    pub(crate) fn plain_zones(&self) -> bool {
        self.agg_sets.iter().all(|a| a.azs.is_none())
    }

    pub(crate) fn bytes(&self) -> usize {
        let keys = |m: &HashMap<String, u32>| m.keys().map(|k| k.capacity() + 40).sum::<usize>();
        self.cap_sets.iter().map(CapSet::bytes).sum::<usize>()
            + keys(&self.cap_set_ids)
            + self.agg_sets.iter().map(AggSet::bytes).sum::<usize>()
            + keys(&self.agg_set_ids)
            + 2 * self.details.iter().map(Details::bytes).sum::<usize>()
    }
}
