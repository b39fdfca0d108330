//! Nova's weighers, one file each behind `HostWeigher`, and the `Weigher` dispatch enum.
//!
//! Each weigher reads one number per host (its lane of the host's weigher `Row`); Nova's
//! normalisation (`normalise.rs`) and the ranking (`rank.rs`) are shared by all.

use crate::model::GroupPolicy;

mod normalise;
mod rank;

pub(crate) use normalise::{breakdown, exact_weight, exact_weight_at, weigher_stats, WeigherStat};
pub(crate) use rank::top_k;

pub(crate) const LANES: usize = 8;
/// Per-host weigher values, one lane per weigher (the soft-affinity pair shares one).
pub(crate) type Row = [f64; LANES];

/// A host's numbers as one request sees them (its batch's earlier picks applied).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostLoad {
    /// memory_mb - reserved
    pub ram_base: i64,
    pub ram_used: i64,
    /// vcpus * cpu_allocation_ratio
    pub cpu_base: f64,
    pub cpu_used: i64,
    /// disk_gb - reserved
    pub disk_base: i64,
    pub disk_used: i64,
    pub io_ops: i64,
    pub num_instances: i64,
    pub failed_builds: i64,
    pub hv_version: i64,
    /// instances of the request's server group on this host
    pub group_members: f64,
    pub policy: GroupPolicy,
}

/// One Nova weigher: the per-host value it normalises.
pub(crate) trait HostWeigher {
    const NAME: &'static str;
    /// Nova's default `*_weight_multiplier`.
    const DEFAULT_MULTIPLIER: f64;
    /// Its lane in `Row`.
    const LANE: usize;
    /// The aggregate metadata key whose value overrides the multiplier for the aggregate's
    /// hosts (Nova's `utils.get_weight_multiplier`).
    const AGGREGATE_KEY: &'static str;
    /// Nova's `BaseWeigher.minval`: raw values are clamped at it and normalised as
    /// `(v - minval) / (max - minval)`; `None`: min-max over the candidates.
    const MINVAL: Option<f64> = None;
    fn value(h: &HostLoad) -> f64;
    /// The multiplier applied for a configured (or aggregate) one.
    fn multiplier(configured: f64) -> f64 {
        configured
    }
    /// false: contributes exactly 0 to every host for requests with this group policy.
    fn applies(_policy: GroupPolicy) -> bool {
        true
    }
}

macro_rules! weighers {
    ($( $variant:ident => $module:ident :: $ty:ident, )*) => {
        $( mod $module; )*

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Weigher {
            $( $variant, )*
        }

        impl Weigher {
            /// Every weigher, in Nova's default order.
            pub const ALL: &'static [Weigher] = &[ $( Weigher::$variant, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Weigher::$variant => <$module::$ty as HostWeigher>::NAME, )* }
            }

            pub fn default_multiplier(self) -> f64 {
                match self {
                    $( Weigher::$variant => <$module::$ty as HostWeigher>::DEFAULT_MULTIPLIER, )*
                }
            }

            pub(crate) fn lane(self) -> usize {
                match self { $( Weigher::$variant => <$module::$ty as HostWeigher>::LANE, )* }
            }

            pub(crate) fn applies(self, policy: GroupPolicy) -> bool {
                match self { $( Weigher::$variant => <$module::$ty as HostWeigher>::applies(policy), )* }
            }

            pub(crate) fn aggregate_key(self) -> &'static str {
                match self { $( Weigher::$variant => <$module::$ty as HostWeigher>::AGGREGATE_KEY, )* }
            }

            pub(crate) fn minval(self) -> Option<f64> {
                match self { $( Weigher::$variant => <$module::$ty as HostWeigher>::MINVAL, )* }
            }

            pub(crate) fn multiplier(self, configured: f64) -> f64 {
                match self {
                    $( Weigher::$variant => <$module::$ty as HostWeigher>::multiplier(configured), )*
                }
            }
        }

        /// The weigher row of a host: every weigher's value (clamped at its `MINVAL`) in its lane.
        pub(crate) fn row(h: &HostLoad) -> Row {
            let mut r = [0.0; LANES];
            $(
                let v = <$module::$ty as HostWeigher>::value(h);
                r[<$module::$ty as HostWeigher>::LANE] += match <$module::$ty as HostWeigher>::MINVAL {
                    Some(m) if v < m => m,
                    _ => v,
                };
            )*
            r
        }
    };
}

weighers! {
    Ram => ram::RamWeigher,
    Cpu => cpu::CpuWeigher,
    Disk => disk::DiskWeigher,
    IoOps => io_ops::IoOpsWeigher,
    NumInstances => num_instances::NumInstancesWeigher,
    SoftAffinity => soft_affinity::SoftAffinityWeigher,
    SoftAntiAffinity => soft_anti_affinity::SoftAntiAffinityWeigher,
    BuildFailure => build_failure::BuildFailureWeigher,
    HypervisorVersion => hypervisor_version::HypervisorVersionWeigher,
}

impl Weigher {
    pub fn from_name(s: &str) -> Option<Weigher> {
        Weigher::ALL.iter().copied().find(|w| w.name() == s)
    }

    /// Position in `ALL` (the index of per-host multiplier overrides).
    pub(crate) fn index(self) -> usize {
        Weigher::ALL.iter().position(|&w| w == self).unwrap_or(0)
    }
}

/// Per-weigher multipliers a host's aggregates set (indexed by `Weigher::index`), as Nova's
/// `utils.get_weight_multiplier` reads them: the least of the distinct values of the
/// weigher's key over the host's aggregates; none if no aggregate has the key or one of the
/// values is not a number (then the configured multiplier applies).
pub(crate) fn aggregate_multipliers(
    aggs: &[(String, Vec<(String, String)>)],
) -> Option<Vec<Option<f64>>> {
    let out: Vec<Option<f64>> = Weigher::ALL
        .iter()
        .map(|w| {
            let key = w.aggregate_key();
            let mut values: Vec<&str> = Vec::new();
            for (_, meta) in aggs {
                for (k, v) in meta {
                    if k == key && !values.contains(&v.as_str()) {
                        values.push(v);
                    }
                }
            }
            let mut least: Option<f64> = None;
            for v in values {
                let x = crate::ops::py_float(v)?;
                least = Some(match least {
                    Some(l) if l <= x => l,
                    _ => x,
                });
            }
            least
        })
        .collect();
    out.iter().any(Option::is_some).then_some(out)
}
