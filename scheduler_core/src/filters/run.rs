//! Running filters over the host table: the fused first pass, then one filter at a time.

use super::{Filter, Term};
use crate::ctx::Ctx;
use crate::kernels::{self, Scan, ScanOut, PASS};
use crate::model::Rejection;
use crate::table::HostTable;

/// Keep the slots passing `pred` (all slots when `all`, else the current candidates, in
/// order); up to 3 rejected slots are kept for sample reasons.
#[inline(always)]
fn retain(
    n: usize,
    cands: &mut Vec<u32>,
    all: bool,
    rejected: &mut Vec<u32>,
    mut pred: impl FnMut(usize) -> bool,
) {
    if all {
        cands.clear();
        for i in 0..n {
            if pred(i) {
                cands.push(i as u32);
            } else if rejected.len() < 3 {
                rejected.push(i as u32);
            }
        }
    } else {
        let mut w = 0;
        for r in 0..cands.len() {
            let i = cands[r];
            if pred(i as usize) {
                cands[w] = i;
                w += 1;
            } else if rejected.len() < 3 {
                rejected.push(i);
            }
        }
        cands.truncate(w);
    }
}

/// Run one filter over the candidates (or all slots when `all` is set), keeping passing
/// hosts in order and recording the rejected count and up to 3 sample reasons.
pub(crate) fn run_filter(
    t: &HostTable,
    f: Filter,
    cands: &mut Vec<u32>,
    all: bool,
    ctx: &mut Ctx,
    rej: &mut Rejection,
) {
    let n = t.len();
    let mut rejected: Vec<u32> = Vec::new();
    let before = if all { n } else { cands.len() };
    // a column test runs as a tight loop over its array; the others per host
    match f.term(t, ctx) {
        Some(Term::AtLeast(col, v)) => retain(n, cands, all, &mut rejected, |i| col[i] >= v),
        Some(Term::FlagsSet(col, m)) => retain(n, cands, all, &mut rejected, |i| col[i] & m == m),
        Some(Term::Equals(col, v)) => retain(n, cands, all, &mut rejected, |i| col[i] == v),
        Some(Term::Below(col, v)) => retain(n, cands, all, &mut rejected, |i| col[i] < v),
        None => retain(n, cands, all, &mut rejected, |i| f.passes(t, i, ctx)),
    }
    rej.rejected += before - cands.len();
    for s in rejected {
        if rej.sample_reasons.len() < 3 {
            rej.sample_reasons.push(f.reason(t, s as usize, ctx));
        }
    }
}

/// First pass over all hosts for the leading run of filters that are column tests (`term`):
/// all tests evaluated branch-free, the configured order only consulted to attribute a
/// rejected host to its first failing filter. Returns how many leading entries of
/// `cfg.filters` were handled (0: none).
#[inline(never)]
pub(crate) fn fused_prefix(
    t: &HostTable,
    cands: &mut Vec<u32>,
    ctx: &Ctx,
    rejections: &mut [Rejection],
) -> usize {
    let n = t.len();
    let c = &t.cols;
    // unused slots read a real column and never reject (position PASS / empty mask)
    let mut p = Scan {
        at_least: [(&c.free_ram[..n], 0.0, PASS); 3],
        flags: (&c.flags[..n], 0, PASS),
        equals: (&c.az[..n], 0, PASS),
        use_equals: false,
        below: [(&c.io_ops[..n], 0, PASS); 2],
        n_below: 0,
        npos: 0,
    };
    let mut n_at_least = 0;
    let mut count = 0;
    let mut order: Vec<(usize, Filter, Term)> = Vec::new();
    for (fi, &f) in t.cfg.filters.iter().enumerate() {
        if f.inactive(t, ctx) {
            count += 1;
            continue;
        }
        let Some(term) = f.term(t, ctx) else { break };
        let pos = order.len() as u8;
        match term {
            Term::AtLeast(col, v) if n_at_least < p.at_least.len() => {
                p.at_least[n_at_least] = (&col[..n], v, pos);
                n_at_least += 1;
            }
            Term::FlagsSet(col, m) if p.flags.2 == PASS => p.flags = (&col[..n], m, pos),
            Term::Equals(col, v) if !p.use_equals => {
                p.equals = (&col[..n], v, pos);
                p.use_equals = true;
            }
            Term::Below(col, v) if p.n_below < p.below.len() => {
                p.below[p.n_below] = (&col[..n], v, pos);
                p.n_below += 1;
            }
            _ => break, // no free slot of its kind: the rest runs filter by filter
        }
        order.push((fi, f, term));
        count += 1;
    }
    if order.is_empty() {
        return 0;
    }
    p.npos = order.len();
    let mut mm: ScanOut = [0; 8];
    cands.clear();
    cands.resize(n + 8, 0);
    let mut failed: Vec<u32> = vec![0; n + 8];
    let (w, nf) = kernels::scan(&p, n, cands, &mut failed, &mut mm);
    cands.truncate(w);
    failed.truncate(nf);
    // counts per first failing filter (configured order), then up to 3 sample reasons each
    let mut need: usize = 0;
    for (j, &(fi, _, _)) in order.iter().enumerate() {
        let k = mm[j] as usize;
        rejections[fi].rejected += k;
        need += k.min(3);
    }
    for &i in &failed {
        if need == 0 {
            break;
        }
        let i = i as usize;
        if let Some(&(fi, f, _)) = order.iter().find(|(_, _, term)| !term.holds(i)) {
            let r = &mut rejections[fi];
            if r.sample_reasons.len() < 3 {
                r.sample_reasons.push(f.reason(t, i, ctx));
                need -= 1;
            }
        }
    }
    count
}
