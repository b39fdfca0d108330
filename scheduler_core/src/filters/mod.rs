//! Nova's filters, one file each behind `HostFilter`, and the `Filter` dispatch enum.
//!
//! Adding a filter: a new file with a unit struct implementing `HostFilter`, and one line in
//! the `filters!` list below (which declares the module, the enum variant and the dispatch).

use crate::ctx::Ctx;
use crate::table::HostTable;

mod run;

pub(crate) use run::{fused_prefix, run_filter};

/// A filter's test as one column comparison, valid for the request it was made for. Filters
/// that have one run in the fused branch-free first pass and in tight loops afterwards.
#[derive(Clone, Copy)]
pub(crate) enum Term<'t> {
    /// column >= value
    AtLeast(&'t [f64], f64),
    /// column & mask == mask
    FlagsSet(&'t [u8], u8),
    /// column == value
    Equals(&'t [u32], u32),
    /// column < value
    Below(&'t [i64], i64),
}

impl Term<'_> {
    #[inline]
    pub(crate) fn holds(&self, i: usize) -> bool {
        match *self {
            Term::AtLeast(c, v) => c[i] >= v,
            Term::FlagsSet(c, m) => c[i] & m == m,
            Term::Equals(c, v) => c[i] == v,
            Term::Below(c, v) => c[i] < v,
        }
    }
}

/// One Nova filter.
pub(crate) trait HostFilter {
    /// Nova's class name.
    const NAME: &'static str;
    /// Every host passes for this request: the filter is skipped.
    fn inactive(_t: &HostTable, _ctx: &Ctx) -> bool {
        false
    }
    /// The columns it reads, as a `Term` equivalent to `passes` for this request, if any.
    fn term<'t>(_t: &'t HostTable, _ctx: &Ctx) -> Option<Term<'t>> {
        None
    }
    /// Does host `i` pass? (`ctx` is mutable for per-request caches.)
    fn passes(t: &HostTable, i: usize, ctx: &mut Ctx) -> bool;
    /// Why host `i` does not pass, for the explanation.
    fn reason(t: &HostTable, i: usize, ctx: &Ctx) -> String;
}

macro_rules! filters {
    ($( $variant:ident => $module:ident :: $ty:ident, )*) => {
        $( mod $module; )*

        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Filter {
            $( $variant, )*
        }

        impl Filter {
            /// Every filter this build knows.
            pub const ALL: &'static [Filter] = &[ $( Filter::$variant, )* ];

            pub fn name(self) -> &'static str {
                match self { $( Filter::$variant => <$module::$ty as HostFilter>::NAME, )* }
            }

            pub(crate) fn inactive(self, t: &HostTable, ctx: &Ctx) -> bool {
                match self { $( Filter::$variant => <$module::$ty as HostFilter>::inactive(t, ctx), )* }
            }

            pub(crate) fn term<'t>(self, t: &'t HostTable, ctx: &Ctx) -> Option<Term<'t>> {
                match self { $( Filter::$variant => <$module::$ty as HostFilter>::term(t, ctx), )* }
            }

            pub(crate) fn passes(self, t: &HostTable, i: usize, ctx: &mut Ctx) -> bool {
                match self { $( Filter::$variant => <$module::$ty as HostFilter>::passes(t, i, ctx), )* }
            }

            pub(crate) fn reason(self, t: &HostTable, i: usize, ctx: &Ctx) -> String {
                match self { $( Filter::$variant => <$module::$ty as HostFilter>::reason(t, i, ctx), )* }
            }
        }
    };
}

filters! {
    Ram => ram::RamFilter,
    Core => core::CoreFilter,
    Disk => disk::DiskFilter,
    Traits => traits::TraitsFilter,
    Compute => compute::ComputeFilter,
    AvailabilityZone => availability_zone::AvailabilityZoneFilter,
    ComputeCapabilities => compute_capabilities::ComputeCapabilitiesFilter,
    ImageProperties => image_properties::ImagePropertiesFilter,
    ServerGroupAffinity => server_group_affinity::ServerGroupAffinityFilter,
    ServerGroupAntiAffinity => server_group_anti_affinity::ServerGroupAntiAffinityFilter,
    SameHost => same_host::SameHostFilter,
    DifferentHost => different_host::DifferentHostFilter,
    IoOps => io_ops::IoOpsFilter,
    NumInstances => num_instances::NumInstancesFilter,
    AggregateInstanceExtraSpecs => aggregate_instance_extra_specs::AggregateInstanceExtraSpecsFilter,
    AggregateMultiTenancyIsolation => aggregate_multi_tenancy_isolation::AggregateMultiTenancyIsolation,
    IsolatedHosts => isolated_hosts::IsolatedHostsFilter,
}

impl Filter {
    pub fn from_name(s: &str) -> Option<Filter> {
        Filter::ALL.iter().copied().find(|f| f.name() == s)
    }
}

/// Nova's default enabled filters, with the checks Placement does for Nova (resources, traits)
/// first.
pub const DEFAULT_FILTERS: [Filter; 10] = [
    Filter::Ram,
    Filter::Core,
    Filter::Disk,
    Filter::Traits,
    Filter::Compute,
    Filter::AvailabilityZone,
    Filter::ComputeCapabilities,
    Filter::ImageProperties,
    Filter::ServerGroupAntiAffinity,
    Filter::ServerGroupAffinity,
];

pub(crate) use aggregate_instance_extra_specs::requirements as aggregate_requirements;
pub(crate) use compute_capabilities::{
    requirements as capability_requirements, CapReq, Source as CapSource,
};
pub(crate) use image_properties::{
    requested_maxphysaddr_bits, requested_properties, requested_version,
};
pub(crate) use same_host::instance_slots;
pub(crate) use traits::requested_traits;
