//! The top candidates by Nova's exact weight, found through a cheap approximate pass.

use super::normalise::exact_weight_at;
use super::{exact_weight, WeigherStat, LANES};
use crate::ctx::Ctx;
use crate::kernels;
use crate::table::HostTable;

#[inline(always)]
fn chunk_max(c: &[f64]) -> f64 {
    c.iter()
        .fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

/// The k-th largest value (k >= 1) or -inf if there are fewer than k values.
#[inline(never)]
fn kth_largest(v: &[f64], k: usize) -> f64 {
    if v.len() < k {
        return f64::NEG_INFINITY;
    }
    let mut best: Vec<f64> = Vec::with_capacity(k + 1);
    let insert = |best: &mut Vec<f64>, a: f64| {
        if best.len() < k || a > best[best.len() - 1] {
            let pos = best.partition_point(|&b| b >= a);
            best.insert(pos, a);
            if best.len() > k {
                best.pop();
            }
        }
    };
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        // one comparison per 8 values once the k best are known
        let m = chunk_max(c);
        if best.len() < k || m > best[best.len() - 1] {
            for &a in c {
                insert(&mut best, a);
            }
        }
    }
    for &a in rest {
        insert(&mut best, a);
    }
    best[k - 1]
}

/// Top `k` candidates by (weight desc, slot asc) with Nova's exact weights.
///
/// Fast path: an approximate weight (multiply by mult/range, no divisions) for every
/// candidate, then the exact weight only for candidates whose approximation is within a
/// rigorous error bound of the k-th best; the result equals a full exact sort's prefix.
pub(crate) fn top_k(
    t: &HostTable,
    cands: &[u32],
    ctx: &Ctx,
    stats: &[WeigherStat],
    k: usize,
    approx: &mut Vec<f64>,
) -> Vec<(f64, u32)> {
    let mut top: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
    let mut tmp = [0.0; LANES];
    if stats.is_empty() {
        // all weights are 0: table order
        return cands.iter().take(k).map(|&c| (0.0, c)).collect();
    }
    if t.multipliers_vary(cands) {
        return top_k_exact(t, cands, ctx, stats, k);
    }
    let mut kv = [0.0; LANES];
    let mut mv = [0.0; LANES];
    let mut abs_sum = 0.0;
    for s in stats {
        kv[s.lane] = s.mult / s.range;
        mv[s.lane] = s.min;
        abs_sum += s.mult.abs();
    }
    // |approx - exact| <= (3 + lanes) * eps * sum|mult|; use a generous margin.
    let err = 64.0 * f64::EPSILON * abs_sum;
    if ctx.special.is_empty() {
        kernels::approx_scores(&t.cols.rows, cands, &mv, &kv, approx);
    } else {
        approx.clear();
        for &c in cands {
            let r = t.row(c as usize, ctx, &mut tmp);
            approx.push(kernels::approx_score(r, &mv, &kv));
        }
    }
    let threshold = kth_largest(approx, k) - 2.0 * err;
    let mut last_row = [f64::NAN; LANES];
    let mut last_w = 0.0;
    let mut consider = |p: usize| {
        let (a, c) = (approx[p], cands[p]);
        if a < threshold {
            return;
        }
        if top.len() == k && a < top[k - 1].0 - 2.0 * err {
            return;
        }
        let r = t.row(c as usize, ctx, &mut tmp);
        let w = if *r == last_row {
            last_w
        } else {
            last_row = *r;
            last_w = exact_weight(stats, r);
            last_w
        };
        if top.len() < k || w > top[top.len() - 1].0 {
            let pos = top.partition_point(|&(tw, _)| tw >= w);
            top.insert(pos, (w, c));
            if top.len() > k {
                top.pop();
            }
        }
    };
    // In candidate order; most candidates are far below the threshold, so 8 at a time are
    // skipped with one vectorised test when all are below it (a NaN is never skipped).
    let mut p = 0;
    while p < cands.len() {
        let end = (p + 8).min(cands.len());
        #[allow(clippy::neg_cmp_op_on_partial_ord)] // exactly "not below": NaN is not skipped
        let any_reaches = approx[p..end]
            .iter()
            .fold(false, |acc, &a| acc | !(a < threshold));
        if any_reaches {
            (p..end).for_each(&mut consider);
        }
        p = end;
    }
    top
}

/// Top `k` by exact weight, every candidate weighed: where aggregates set per-host multipliers
/// (the approximate pass assumes one multiplier per weigher).
fn top_k_exact(
    t: &HostTable,
    cands: &[u32],
    ctx: &Ctx,
    stats: &[WeigherStat],
    k: usize,
) -> Vec<(f64, u32)> {
    let mut top: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
    let mut tmp = [0.0; LANES];
    for &c in cands {
        let r = t.row(c as usize, ctx, &mut tmp);
        let w = exact_weight_at(t, stats, r, c as usize);
        if top.len() < k || w > top[top.len() - 1].0 {
            let pos = top.partition_point(|&(tw, _)| tw >= w);
            top.insert(pos, (w, c));
            if top.len() > k {
                top.pop();
            }
        }
    }
    top
}
