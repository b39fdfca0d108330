//! Nova's weighers, one file each behind `HostWeigher`, and the `Weigher` dispatch enum.
//!
//! Each weigher reads one number per host (its lane of the host's weigher `Row`); Nova's
//! normalisation (`normalise.rs`) and the ranking (`rank.rs`) are shared by all.

use crate::model::GroupPolicy;

mod normalise;
mod rank;

pub(crate) use normalise::{breakdown, exact_weight, weigher_stats, WeigherStat};
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
    fn value(h: &HostLoad) -> f64;
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
        }

        /// The weigher row of a host: every weigher's value in its lane.
        pub(crate) fn row(h: &HostLoad) -> Row {
            let mut r = [0.0; LANES];
            $( r[<$module::$ty as HostWeigher>::LANE] += <$module::$ty as HostWeigher>::value(h); )*
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
}
