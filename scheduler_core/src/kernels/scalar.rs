//! Portable versions of the kernels (also the bodies the AVX2 build recompiles for `scan`).

use super::{approx_score, minmax_fold, Scan, ScanOut, PASS};
use crate::weighers::{Row, LANES};

#[inline(always)]
pub(crate) fn minmax_rows(rows: &[Row], cands: &[u32]) -> (Row, Row) {
    let mut lo = [f64::INFINITY; LANES];
    let mut hi = [f64::NEG_INFINITY; LANES];
    for &c in cands {
        minmax_fold(&mut lo, &mut hi, &rows[c as usize]);
    }
    (lo, hi)
}

#[inline(always)]
pub(crate) fn approx_scores(rows: &[Row], cands: &[u32], mv: &Row, kv: &Row, out: &mut Vec<f64>) {
    out.clear();
    out.resize(cands.len(), 0.0);
    for (o, &c) in out.iter_mut().zip(cands) {
        *o = approx_score(&rows[c as usize], mv, kv);
    }
}

/// PACK[mask] lists the set bit positions of `mask` first (left-pack permutation).
static PACK: [[u8; 8]; 256] = {
    let mut t = [[0u8; 8]; 256];
    let mut m = 0;
    while m < 256 {
        let mut k = 0;
        let mut b = 0;
        while b < 8 {
            if m & (1 << b) != 0 {
                t[m][k] = b as u8;
                k += 1;
            }
            b += 1;
        }
        m += 1;
    }
    t
};

#[inline(always)]
fn code(ok: bool, pos: u8) -> u8 {
    if ok {
        PASS
    } else {
        pos
    }
}

/// Phase A (vectorisable): per host, the position of its first failing filter (`PASS` if
/// none). Phase B: counts per position, and compaction of passing / failing slots.
#[inline(always)]
fn scan_body<const EQ: bool, const BELOW: usize>(
    p: &Scan,
    n: usize,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    let [(a0, w0, p0), (a1, w1, p1), (a2, w2, p2)] = p.at_least;
    let (a0, a1, a2) = (&a0[..n], &a1[..n], &a2[..n]);
    let (fl, mask, pf) = p.flags;
    let fl = &fl[..n];
    let (eq, weq, peq) = p.equals;
    let eq = &eq[..n];
    let [(b0, m0, pb0), (b1, m1, pb1)] = p.below;
    let (b0, b1) = (&b0[..n], &b1[..n]);
    assert!(cands.len() >= n + 8 && failed.len() >= n + 8);
    let mut w = 0usize;
    let mut f = 0usize;
    let mut cnt = [0u32; 8];
    let mut codes = [0u8; 256];
    let mut base = 0;
    while base < n {
        let m = (n - base).min(256);
        // phase A
        for (j, c_out) in codes[..m].iter_mut().enumerate() {
            let i = base + j;
            let mut c = PASS;
            c = c.min(code(a0[i] >= w0, p0));
            c = c.min(code(a1[i] >= w1, p1));
            c = c.min(code(a2[i] >= w2, p2));
            c = c.min(code(fl[i] & mask == mask, pf));
            if EQ {
                c = c.min(code(eq[i] == weq, peq));
            }
            if BELOW >= 1 {
                c = c.min(code(b0[i] < m0, pb0));
            }
            if BELOW >= 2 {
                c = c.min(code(b1[i] < m1, pb1));
            }
            *c_out = c;
        }
        // phase A2: rejections per first-failing position (vectorised byte counts)
        for (k, x) in cnt.iter_mut().enumerate().take(p.npos) {
            *x += codes[..m].iter().filter(|&&c| c == k as u8).count() as u32;
        }
        // phase B: left-pack the passing / failing slots, 8 hosts at a time (LUT permutation)
        let mut j = 0;
        while j < m {
            let g = (m - j).min(8);
            let mut okm = 0usize;
            for t in 0..8 {
                let c = if t < g { codes[j + t] } else { 0 };
                okm |= ((c == PASS) as usize) << t;
            }
            let valid = (1usize << g) - 1;
            let failm = !okm & valid;
            let i0 = (base + j) as u32;
            let (po, pf) = (&PACK[okm], &PACK[failm]);
            // SAFETY: w + f == base + j hosts so far, and both buffers have n + 8 slots, so the
            // 8 writes at w (resp. f) stay in bounds; only the first popcount ones are kept.
            unsafe {
                for t in 0..8 {
                    *cands.get_unchecked_mut(w + t) = i0 + po[t] as u32;
                    *failed.get_unchecked_mut(f + t) = i0 + pf[t] as u32;
                }
            }
            w += okm.count_ones() as usize;
            f += failm.count_ones() as usize;
            j += g;
        }
        base += m;
    }
    *mm = cnt;
    (w, f)
}

#[inline(always)]
pub(crate) fn scan(
    p: &Scan,
    n: usize,
    cands: &mut [u32],
    failed: &mut [u32],
    mm: &mut ScanOut,
) -> (usize, usize) {
    match (p.use_equals, p.n_below) {
        (false, 0) => scan_body::<false, 0>(p, n, cands, failed, mm),
        (true, 0) => scan_body::<true, 0>(p, n, cands, failed, mm),
        (false, 1) => scan_body::<false, 1>(p, n, cands, failed, mm),
        (true, 1) => scan_body::<true, 1>(p, n, cands, failed, mm),
        (false, _) => scan_body::<false, 2>(p, n, cands, failed, mm),
        (true, _) => scan_body::<true, 2>(p, n, cands, failed, mm),
    }
}
