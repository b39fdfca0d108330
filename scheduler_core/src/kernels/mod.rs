//! The hot loops, each in a portable scalar version (`scalar.rs`) and an AVX2 one (`avx2.rs`),
//! chosen at run time. `tests.rs` runs both on the same data and compares.

use crate::weighers::{Row, LANES};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod scalar;
#[cfg(test)]
mod tests;

/// Position code of a host that fails none of the fused filters.
pub(crate) const PASS: u8 = 31;

/// Rejections per first-failing position of the fused scan.
pub(crate) type ScanOut = [u32; 8];

/// One fused filter's test over a column: the column, the value it is compared with, and the
/// filter's position among the fused ones (`PASS` for an unused slot).
pub(crate) type Slot<'a, T> = (&'a [T], T, u8);

/// Inputs of the fused first filter pass: fixed slots per kind of column test, so the kernel
/// stays branch-free and vectorisable whatever the configured filters are.
pub(crate) struct Scan<'a> {
    /// column >= value (free RAM, vCPUs, disk)
    pub at_least: [Slot<'a, f64>; 3],
    /// column & mask == mask (value = mask)
    pub flags: Slot<'a, u8>,
    /// column == value (plain availability zone); read only when `use_equals`
    pub equals: Slot<'a, u32>,
    pub use_equals: bool,
    /// column < value (io ops, instances); the first `n_below` are read
    pub below: [Slot<'a, i64>; 2],
    pub n_below: usize,
    /// number of fused filters (positions 0..npos)
    pub npos: usize,
}

/// The approximate weight of one row: sum over lanes of (v - min) * (mult / range), summed
/// pairwise. The one formula for every path that computes it lane by lane.
#[inline(always)]
pub(crate) fn approx_score(r: &Row, mv: &Row, kv: &Row) -> f64 {
    let mut p = [0.0; LANES];
    for k in 0..LANES {
        p[k] = (r[k] - mv[k]) * kv[k];
    }
    ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]))
}

/// Fold one row into lane-wise minima and maxima.
#[inline(always)]
pub(crate) fn minmax_fold(lo: &mut Row, hi: &mut Row, r: &Row) {
    for k in 0..LANES {
        lo[k] = if r[k] < lo[k] { r[k] } else { lo[k] };
        hi[k] = if r[k] > hi[k] { r[k] } else { hi[k] };
    }
}

#[inline]
pub(crate) fn has_avx2() -> bool {
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
pub(crate) fn minmax_rows(rows: &[Row], cands: &[u32]) -> (Row, Row) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::minmax_rows(rows, cands) };
    }
    scalar::minmax_rows(rows, cands)
}

/// Approximate weights of the candidates (see `approx_score`).
pub(crate) fn approx_scores(rows: &[Row], cands: &[u32], mv: &Row, kv: &Row, out: &mut Vec<f64>) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::approx_scores(rows, cands, mv, kv, out) };
    }
    scalar::approx_scores(rows, cands, mv, kv, out)
}

/// Branch-free scan over all hosts: passing slots go to `cands`, the others to `failed`
/// (both need `n + 8` slots); returns how many of each.
pub(crate) fn scan(
    p: &Scan,
    n: usize,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 support was just checked.
        return unsafe { avx2::scan(p, n, cands, failed, mm) };
    }
    scalar::scan(p, n, cands, failed, mm)
}
