//! drover's scheduler core: a faithful, fast Nova FilterScheduler.
//!
//! * `core` — struct-of-arrays host table, filters, weighers, claims, explain (pure Rust)
//! * `ops`  — Nova's extra_specs_ops and image-property helpers (pure Rust)
//! * `py`   — PyO3 bindings (`drover.scheduler_core`), behind the default `python` feature

pub mod core;
pub mod ops;

#[cfg(feature = "python")]
mod py;

#[cfg(feature = "python")]
pub use py::scheduler_core;
