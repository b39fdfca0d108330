//! drover's scheduler core: a faithful, fast Nova FilterScheduler.
//!
//! * `model`    — Config, Request, HostSpec, Outcome (what goes in and out)
//! * `table`    — the struct-of-arrays host table: columns, interning, weigher rows, claims
//! * `filters`  — one file per Nova filter behind `HostFilter`, the fused first pass
//! * `weighers` — one file per Nova weigher behind `HostWeigher`, normalisation, ranking
//! * `kernels`  — the hot loops, scalar and AVX2 side by side
//! * `plan`     — filter, weigh, choose, claim; `explain` — the explanation text
//! * `ops`      — Nova's extra_specs_ops and image-property helpers
//! * `py`       — PyO3 bindings (`drover.scheduler_core`), behind the default `python` feature

mod ctx;
mod explain;
pub mod filters;
mod kernels;
pub mod model;
pub mod ops;
mod plan;
mod pyvalue;
pub mod table;
pub mod weighers;

pub use filters::{Filter, DEFAULT_FILTERS};
pub use model::*;
pub use table::HostTable;
pub use weighers::Weigher;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
pub use py::scheduler_core;
