//! A host's weigher row: the one place its weigher inputs are derived from the columns.

use super::HostTable;
use crate::ctx::Ctx;
use crate::model::GroupPolicy;
use crate::weighers::{self, HostLoad, Row};

/// What a request adds to a host's own numbers.
pub(crate) struct Extra {
    /// instances of the request's batch already placed there
    pub picks: i64,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub disk_gb: i64,
    pub group_members: f64,
    pub policy: GroupPolicy,
}

impl Extra {
    pub(crate) const NONE: Extra = Extra {
        picks: 0,
        vcpus: 0,
        memory_mb: 0,
        disk_gb: 0,
        group_members: 0.0,
        policy: GroupPolicy::None,
    };
}

impl HostTable {
    pub(crate) fn load(&self, i: usize, x: &Extra) -> HostLoad {
        let c = &self.cols;
        HostLoad {
            ram_base: c.ram_weigh_base[i],
            ram_used: c.used_ram[i] + x.picks * x.memory_mb,
            cpu_base: c.cpu_weigh_base[i],
            cpu_used: c.used_vcpu[i] + x.picks * x.vcpus,
            disk_base: c.disk_weigh_base[i],
            disk_used: c.used_disk[i] + x.picks * x.disk_gb,
            io_ops: c.io_ops[i] + x.picks,
            num_instances: c.num_instances[i] + x.picks,
            failed_builds: c.failed_builds[i],
            hv_version: c.hv_version[i],
            group_members: x.group_members,
            policy: x.policy,
        }
    }

    /// Weigher values of host `i` as seen by this request (batch picks and soft-affinity
    /// group counts applied).
    pub(crate) fn fresh_row(&self, i: usize, ctx: &Ctx) -> Row {
        let x = Extra {
            picks: ctx.pc(i),
            vcpus: ctx.req.vcpus,
            memory_mb: ctx.req.memory_mb,
            disk_gb: ctx.disk,
            group_members: ctx.group_count.get(&(i as u32)).copied().unwrap_or(0) as f64,
            policy: ctx.policy,
        };
        weighers::row(&self.load(i, &x))
    }

    /// The stored row, or a fresh one where this request changes it.
    #[inline]
    pub(crate) fn row<'a>(&'a self, i: usize, ctx: &Ctx, tmp: &'a mut Row) -> &'a Row {
        if !ctx.special.is_empty() && ctx.special[i] {
            *tmp = self.fresh_row(i, ctx);
            tmp
        } else {
            &self.cols.rows[i]
        }
    }

    /// Recompute slot `i`'s free capacities and stored weigher row after a change.
    pub(crate) fn refresh_free(&mut self, i: usize) {
        let row = weighers::row(&self.load(i, &Extra::NONE));
        let c = &mut self.cols;
        c.free_vcpu[i] = c.cap_vcpu[i] - c.used_vcpu[i] as f64;
        c.free_ram[i] = c.cap_ram[i] - c.used_ram[i] as f64;
        c.free_disk[i] = c.cap_disk[i] - c.used_disk[i] as f64;
        c.rows[i] = row;
    }
}
