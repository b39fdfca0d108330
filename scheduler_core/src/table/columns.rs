//! The host table's per-slot columns, listed once: the macro below generates the struct, the
//! push of a new slot, the swap-remove of a slot and the memory accounting from that one list,
//! so a column cannot be forgotten in one of them (which would misalign slots).

use std::sync::Arc;

use crate::weighers::Row;

/// Rarely read per-host data (array of structs).
#[derive(Debug, Clone)]
pub(crate) struct Cold {
    pub(crate) name: Arc<str>,
    pub(crate) generation: i64,
    pub(crate) vcpus: i64,
    pub(crate) memory_mb: i64,
    pub(crate) disk_gb: i64,
    pub(crate) reserved_vcpus: i64,
    pub(crate) reserved_memory_mb: i64,
    pub(crate) reserved_disk_gb: i64,
    pub(crate) cpu_ratio: f64,
    pub(crate) ram_ratio: f64,
    pub(crate) disk_ratio: f64,
    pub(crate) az_raw: u32,
    pub(crate) hv_type_raw: u32,
    pub(crate) arch_raw: u32,
    /// report sequence number: a claim made since the last report undoes its counter bumps
    pub(crate) seq: u64,
    /// traits, cpu_info and supported instances (`intern::Details`), shared by hosts alike
    pub(crate) details: u32,
}

impl Default for Cold {
    fn default() -> Self {
        Cold {
            name: Arc::from(""),
            generation: 0,
            vcpus: 0,
            memory_mb: 0,
            disk_gb: 0,
            reserved_vcpus: 0,
            reserved_memory_mb: 0,
            reserved_disk_gb: 0,
            cpu_ratio: 0.0,
            ram_ratio: 0.0,
            disk_ratio: 0.0,
            az_raw: 0,
            hv_type_raw: 0,
            arch_raw: 0,
            seq: 0,
            details: 0,
        }
    }
}

/// Host flag bits (`flags` column).
pub(crate) const ENABLED: u8 = 1;
pub(crate) const UP: u8 = 2;
pub(crate) const ISOLATED: u8 = 4;

macro_rules! columns {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty = $init:expr, )*) => {
        /// Struct of arrays indexed by slot.
        #[derive(Debug, Default)]
        pub(crate) struct Columns {
            $( $(#[$doc])* pub(crate) $name: Vec<$ty>, )*
        }

        impl Columns {
            /// Append a slot with every column at its initial value; returns its index.
            pub(crate) fn push(&mut self) -> usize {
                $( self.$name.push($init); )*
                self.cold.len() - 1
            }

            /// Remove slot `i`; the last slot moves into it (in every column alike).
            pub(crate) fn swap_remove(&mut self, i: usize) {
                $( self.$name.swap_remove(i); )*
            }

            /// Bytes of every column as allocated (capacity: what the process really holds).
            pub(crate) fn bytes(&self) -> usize {
                0 $( + self.$name.capacity() * std::mem::size_of::<$ty>() )*
            }
        }
    };
}

columns! {
    cold: Cold = Cold::default(),
    /// (total - reserved) * allocation ratio
    cap_vcpu: f64 = 0.0,
    cap_ram: f64 = 0.0,
    cap_disk: f64 = 0.0,
    /// sum of claims
    used_vcpu: i64 = 0,
    used_ram: i64 = 0,
    used_disk: i64 = 0,
    /// cap - used
    free_vcpu: f64 = 0.0,
    free_ram: f64 = 0.0,
    free_disk: f64 = 0.0,
    /// vcpus * ratio (Nova's CPUWeigher)
    cpu_weigh_base: f64 = 0.0,
    /// memory_mb - reserved (Nova's free_ram_mb before usage)
    ram_weigh_base: i64 = 0,
    disk_weigh_base: i64 = 0,
    /// weigher values with no request applied (see `weighers::Row`)
    rows: Row = [0.0; crate::weighers::LANES],
    flags: u8 = 0,
    io_ops: i64 = 0,
    num_instances: i64 = 0,
    failed_builds: i64 = 0,
    hv_version: i64 = 0,
    az: u32 = 0,
    /// canonical, interned
    arch: u32 = 0,
    /// canonical, interned
    hv_type: u32 = 0,
    cap_set: u32 = 0,
    agg_set: u32 = 0,
}
