//! Planning a request: filter, weigh, choose for each instance of the batch; then claim.

use std::cell::RefCell;
use std::time::Instant;

use crate::ctx::Ctx;
use crate::explain::{rejection, Summary};
use crate::filters::{fused_prefix, run_filter, Filter};
use crate::model::{Explanation, Outcome, Request, SelectionOut, TopHost};
use crate::table::HostTable;
use crate::weighers::{self, exact_weight_at, top_k, weigher_stats};

/// Per-thread buffers reused by every plan on the thread (no allocation or page faults for
/// the per-host arrays on the hot path).
#[derive(Default)]
struct Scratch {
    cands: Vec<u32>,
    failed: Vec<u32>,
    approx: Vec<f64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl HostTable {
    /// Filter + weigh + choose for every instance of the request, without claiming.
    /// Returns the outcome and the chosen slots. `req` must pass `Request::check` (the
    /// Python `RequestSpec` and `select` ensure it).
    pub fn plan(&self, req: &Request) -> (Outcome, Vec<usize>) {
        let t0 = Instant::now();
        let n = self.len();
        let mut ctx = Ctx::new(self, req);
        let n_inst = req.instance_ids.len().max(1);
        let required = if req.min_count > 0 {
            (req.min_count as usize).min(n_inst)
        } else {
            n_inst
        };
        let max_alts = self.cfg.max_attempts.saturating_sub(1);
        let subset = self.cfg.host_subset_size.max(1);
        let k = subset.max(5).max(max_alts + n_inst);

        let mut rejections: Vec<_> = self
            .cfg
            .filters
            .iter()
            .map(|f| rejection(f.name()))
            .collect();
        let mut ignored = rejection("ignore_hosts");

        // taken out of the thread's scratch for this plan and put back at its end
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let mut cands = std::mem::take(&mut scratch.cands);
        cands.clear();
        cands.reserve(n);
        let mut approx = std::mem::take(&mut scratch.approx);
        let mut first = true;
        let mut picks: Vec<usize> = Vec::new();
        let mut top_hosts: Vec<TopHost> = Vec::new();
        let mut last_top: Vec<(f64, u32)> = Vec::new();

        for _inst in 0..n_inst {
            // ---- filter ----
            let mut all = first;
            if !ctx.ignore.is_empty() {
                if all {
                    cands.clear();
                    cands.extend((0..n as u32).filter(|i| !ctx.ignore.contains(i)));
                    all = false;
                    ignored.rejected = n - cands.len();
                }
                if ignored.sample_reasons.is_empty() {
                    let mut seen: Vec<&str> = Vec::new();
                    for h in req.ignore_hosts.iter().filter(|h| self.contains(h)) {
                        if seen.len() < 3 && !seen.contains(&h.as_str()) {
                            seen.push(h);
                            ignored.sample_reasons.push(format!("{h}: in ignore_hosts"));
                        }
                    }
                }
            }
            let mut fused = 0;
            if all {
                fused = fused_prefix(self, &mut cands, &mut scratch.failed, &ctx, &mut rejections);
                if fused > 0 {
                    all = false;
                }
            }
            for (fi, &f) in self.cfg.filters.iter().enumerate() {
                if fi < fused || f.inactive(self, &ctx) {
                    continue;
                }
                run_filter(self, f, &mut cands, all, &mut ctx, &mut rejections[fi]);
                all = false;
            }
            if all {
                cands.clear();
                cands.extend(0..n as u32);
            }
            first = false;
            if cands.is_empty() {
                break;
            }
            // ---- weigh ----
            let stats = weigher_stats(self, &cands, &ctx);
            let top = top_k(self, &cands, &ctx, &stats, k, &mut approx);
            if top_hosts.is_empty() {
                for &(w, s) in top.iter().take(5) {
                    top_hosts.push(TopHost {
                        host: self.name(s as usize).to_string(),
                        weight: w,
                        weights: weighers::breakdown(self, &stats, s as usize, &ctx),
                    });
                }
            }
            // ---- choose ----
            let pool = subset.min(top.len());
            let idx = if pool <= 1 {
                0
            } else {
                (self.next_random() % pool as u64) as usize
            };
            let chosen = top[idx].1 as usize;
            picks.push(chosen);
            last_top = top;
            // ---- consume (Nova's _consume_selected_host), for the next instance ----
            if n_inst > 1 {
                if ctx.picks.is_empty() {
                    ctx.picks = vec![0; n];
                }
                ctx.picks[chosen] += 1;
                if ctx.special.is_empty() {
                    ctx.special = vec![false; n];
                }
                ctx.special[chosen] = true;
                if ctx.policy != crate::model::GroupPolicy::None {
                    *ctx.group_count.entry(chosen as u32).or_insert(0) += 1;
                    ctx.group_nonempty = true;
                }
            }
        }

        let placed = picks.len();
        let ok = placed >= required && n_inst > 0;
        let hosts_passed = cands.len();
        let mut selections = Vec::new();
        if ok {
            let alts: Vec<String> = last_top
                .iter()
                .filter(|(_, s)| !picks.contains(&(*s as usize)))
                .take(max_alts)
                .map(|(_, s)| self.name(*s as usize).to_string())
                .collect();
            for (j, &slot) in picks.iter().enumerate() {
                selections.push(SelectionOut {
                    instance_id: req.instance_ids.get(j).cloned().unwrap_or_default(),
                    host: self.name(slot).to_string(),
                    alternate_hosts: alts.clone(),
                });
            }
        }
        let mut all_rej = Vec::new();
        if ignored.rejected > 0 {
            all_rej.push(ignored);
        }
        all_rej.extend(rejections);
        let summary = Summary {
            ok,
            placed,
            n_inst,
            required,
            hosts: n,
            hosts_passed,
            rejections: &all_rej,
            best: top_hosts.first(),
        }
        .text();
        let explanation = Explanation {
            hosts_total: n,
            hosts_passed,
            rejections: all_rej,
            top_hosts,
            summary,
            elapsed_us: t0.elapsed().as_secs_f64() * 1e6,
        };
        scratch.cands = cands;
        scratch.approx = approx;
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        let chosen = if ok { picks } else { Vec::new() };
        (
            Outcome {
                selections,
                explanation,
                ok,
            },
            chosen,
        )
    }

    /// Plan and, if enough instances can be placed, claim them (all or none). An error (and
    /// no claim) for a request out of range (`Request::check`) or claims whose summed usage
    /// would overflow.
    pub fn select(&mut self, req: &Request) -> Result<Outcome, String> {
        req.check()?;
        let (mut out, slots) = self.plan(req);
        if out.ok {
            let disk = req.disk_gb();
            let mut times: Vec<(usize, i64)> = Vec::new();
            for &slot in &slots {
                match times.iter_mut().find(|(s, _)| *s == slot) {
                    Some(e) => e.1 += 1,
                    None => times.push((slot, 1)),
                }
            }
            for &(slot, k) in &times {
                self.check_claim(slot, k, req.vcpus, req.memory_mb, disk)?;
            }
            for (j, &slot) in slots.iter().enumerate() {
                if let Some(id) = req.instance_ids.get(j) {
                    self.apply_claim(id, slot, req.vcpus, req.memory_mb, disk);
                }
            }
        }
        out.explanation.elapsed_us = out.explanation.elapsed_us.max(0.0);
        Ok(out)
    }

    /// Which hosts pass one filter, ignoring the others (for tests against the oracle).
    pub fn hosts_passing(&self, f: Filter, req: &Request) -> Vec<String> {
        let mut ctx = Ctx::new(self, req);
        (0..self.len())
            .filter(|&i| f.passes(self, i, &mut ctx))
            .map(|i| self.name(i).to_string())
            .collect()
    }

    /// Combined weights of the given hosts (all assumed candidates), in Nova's way.
    pub fn weigh_hosts(&self, names: &[String], req: &Request) -> Vec<(String, f64)> {
        let ctx = Ctx::new(self, req);
        let mut slots: Vec<u32> = names
            .iter()
            .filter_map(|h| self.slot(h))
            .map(|i| i as u32)
            .collect();
        slots.sort_unstable();
        slots.dedup();
        let stats = weigher_stats(self, &slots, &ctx);
        slots
            .iter()
            .map(|&s| {
                (
                    self.name(s as usize).to_string(),
                    exact_weight_at(self, &stats, &self.fresh_row(s as usize, &ctx), s as usize),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
