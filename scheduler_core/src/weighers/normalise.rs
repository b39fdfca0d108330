//! Nova's weight normalisation (`nova.weights.normalize`), written once for every weigher.

use super::{Row, Weigher, LANES};
use crate::ctx::Ctx;
use crate::kernels;
use crate::table::HostTable;

/// A weigher that contributes for this request: its lane, multiplier (as applied: Nova's
/// BuildFailureWeigher negates it), and min/range over the candidates (min is the weigher's
/// `minval` where it has one).
pub(crate) struct WeigherStat {
    pub w: Weigher,
    pub lane: usize,
    pub mult: f64,
    pub min: f64,
    pub range: f64,
}

/// Min/max of every lane over the candidates, then Nova's per-weigher normalisation stats
/// for the weighers that contribute (multiplier != 0 and max != min), in config order.
pub(crate) fn weigher_stats(t: &HostTable, cands: &[u32], ctx: &Ctx) -> Vec<WeigherStat> {
    let (lo, hi) = if ctx.special.is_empty() {
        kernels::minmax_rows(&t.cols.rows, cands)
    } else {
        let mut lo = [f64::INFINITY; LANES];
        let mut hi = [f64::NEG_INFINITY; LANES];
        let mut tmp = [0.0; LANES];
        for &c in cands {
            let r = t.row(c as usize, ctx, &mut tmp);
            kernels::minmax_fold(&mut lo, &mut hi, r);
        }
        (lo, hi)
    };
    let mut stats = Vec::new();
    if cands.len() <= 1 {
        return stats; // Nova does not weigh a single host: its weight stays 0
    }
    let overrides = t.multipliers_vary(cands);
    for &(w, mult) in &t.cfg.weighers {
        if (mult == 0.0 && !overrides) || !w.applies(ctx.policy) {
            continue; // contributes exactly 0 to every host
        }
        let l = w.lane();
        let (min, max) = (w.minval().unwrap_or(lo[l]), hi[l]);
        if min == max {
            continue; // Nova's normalize: all 0
        }
        stats.push(WeigherStat {
            w,
            lane: l,
            mult: w.multiplier(mult),
            min,
            range: max - min,
        });
    }
    stats
}

/// The multiplier of `s` for host `i`: its aggregates' value for the weigher, if any.
#[inline]
pub(crate) fn host_multiplier(t: &HostTable, s: &WeigherStat, i: usize) -> f64 {
    match &t.agg_set(i).multipliers {
        Some(m) => match m[s.w.index()] {
            Some(x) => s.w.multiplier(x),
            None => s.mult,
        },
        None => s.mult,
    }
}

/// Nova's weight of host `i` when aggregates set multipliers per host.
pub(crate) fn exact_weight_at(t: &HostTable, stats: &[WeigherStat], r: &Row, i: usize) -> f64 {
    let mut w = 0.0;
    for s in stats {
        w += host_multiplier(t, s, i) * ((r[s.lane] - s.min) / s.range);
    }
    w
}

/// Nova's weight, bit for bit: 0.0, then += multiplier * ((v - min) / range) in weigher order.
#[inline]
pub(crate) fn exact_weight(stats: &[WeigherStat], r: &Row) -> f64 {
    let mut w = 0.0;
    for s in stats {
        w += s.mult * ((r[s.lane] - s.min) / s.range);
    }
    w
}

/// Each configured weigher's contribution to host `i`'s weight (0 where it does not contribute).
pub(crate) fn breakdown(
    t: &HostTable,
    stats: &[WeigherStat],
    i: usize,
    ctx: &Ctx,
) -> Vec<(&'static str, f64)> {
    let r = t.fresh_row(i, ctx);
    t.cfg
        .weighers
        .iter()
        .map(|&(w, _)| {
            let v = match stats.iter().find(|s| s.w == w) {
                Some(s) => host_multiplier(t, s, i) * ((r[s.lane] - s.min) / s.range) + 0.0, // no -0.0
                None => 0.0,
            };
            (w.name(), v)
        })
        .collect()
}
