//! The explanation of a planning run: rejection counts, sample reasons, the summary line.

use crate::model::{Rejection, TopHost};

/// A number as the reasons print it: integral values without decimals.
pub(crate) fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

/// One rejection counter per configured filter name.
pub(crate) fn rejection(filter: &'static str) -> Rejection {
    Rejection {
        filter,
        rejected: 0,
        sample_reasons: Vec::new(),
    }
}

/// What a planning run did, in one line.
pub(crate) struct Summary<'a> {
    pub ok: bool,
    pub placed: usize,
    pub n_inst: usize,
    pub required: usize,
    pub hosts: usize,
    pub hosts_passed: usize,
    pub rejections: &'a [Rejection],
    pub best: Option<&'a TopHost>,
}

impl Summary<'_> {
    pub(crate) fn text(&self) -> String {
        let parts: Vec<String> = self
            .rejections
            .iter()
            .filter(|r| r.rejected > 0)
            .map(|r| format!("{} rejected {}", r.filter, r.rejected))
            .collect();
        let (placed, n_inst, n) = (self.placed, self.n_inst, self.hosts);
        if self.ok {
            let best = self
                .best
                .map(|t| format!("; best {} (weight {:.4})", t.host, t.weight));
            format!(
                "placed {placed} of {n_inst} instance{}: {n} hosts, {} passed{}{}",
                if n_inst == 1 { "" } else { "s" },
                self.hosts_passed,
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("; {}", parts.join(", "))
                },
                best.unwrap_or_default()
            )
        } else {
            let mut s = format!("no valid host: {n} hosts");
            if !parts.is_empty() {
                s.push_str("; ");
                s.push_str(&parts.join(", "));
            }
            if n_inst > 1 {
                s.push_str(&format!(
                    "; only {placed} of {n_inst} instances could be placed (need {})",
                    self.required
                ));
            }
            s
        }
    }
}
