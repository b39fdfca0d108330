//! AVX2 versions of the kernels (x86_64; chosen at run time when the CPU has AVX2).

use super::{approx_score, Scan, ScanOut};
use crate::weighers::{Row, LANES};

/// # Safety
/// The CPU must support AVX2 (checked by the caller).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn minmax_rows(rows: &[Row], cands: &[u32]) -> (Row, Row) {
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
/// add (the lane sums' order differs from `approx_score`: still within the error bound).
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn approx_scores(
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
        *o = approx_score(&rows[c as usize], mv, kv);
    }
}

/// The scalar scan recompiled with AVX2 enabled (its phase A auto-vectorises).
///
/// # Safety
/// The CPU must support AVX2 (checked by the caller).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn scan(
    p: &Scan,
    n: usize,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    super::scalar::scan(p, n, cands, failed, mm)
}
