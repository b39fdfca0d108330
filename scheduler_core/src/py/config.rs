//! `SchedulerConfig`: Nova's `[filter_scheduler]` options.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{Config, Filter, Weigher};

/// Scheduler configuration (Nova's `[filter_scheduler]` options).
#[pyclass(module = "drover.scheduler_core", frozen, name = "SchedulerConfig")]
pub struct SchedulerConfig {
    pub cfg: Config,
}

#[pymethods]
impl SchedulerConfig {
    #[new]
    #[pyo3(signature = (enabled_filters=None, weighers=None, host_subset_size=1, max_attempts=3,
        max_io_ops_per_host=8, max_instances_per_host=50, isolated_images=None, isolated_hosts=None,
        restrict_isolated_hosts_to_isolated_images=true, seed=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        enabled_filters: Option<Vec<String>>,
        weighers: Option<&Bound<'_, PyAny>>,
        host_subset_size: i64,
        max_attempts: i64,
        max_io_ops_per_host: i64,
        max_instances_per_host: i64,
        isolated_images: Option<Vec<String>>,
        isolated_hosts: Option<Vec<String>>,
        restrict_isolated_hosts_to_isolated_images: bool,
        seed: Option<u64>,
    ) -> PyResult<Self> {
        let ws = match weighers {
            Some(d) if !d.is_none() => {
                let mut v = Vec::new();
                for item in d.call_method0("items")?.try_iter()? {
                    let (k, m): (String, f64) = item?.extract()?;
                    v.push((k, m));
                }
                Some(v)
            }
            _ => None,
        };
        let mut cfg = Config::with_names(enabled_filters.as_deref(), ws.as_deref())
            .map_err(PyValueError::new_err)?;
        if host_subset_size < 1 {
            return Err(PyValueError::new_err("host_subset_size must be >= 1"));
        }
        if max_attempts < 1 {
            return Err(PyValueError::new_err("max_attempts must be >= 1"));
        }
        cfg.host_subset_size = host_subset_size as usize;
        cfg.max_attempts = max_attempts as usize;
        cfg.max_io_ops_per_host = max_io_ops_per_host;
        cfg.max_instances_per_host = max_instances_per_host;
        cfg.isolated_images = isolated_images.unwrap_or_default();
        cfg.isolated_hosts = isolated_hosts.unwrap_or_default();
        cfg.restrict_isolated_hosts_to_isolated_images = restrict_isolated_hosts_to_isolated_images;
        cfg.seed = seed;
        Ok(SchedulerConfig { cfg })
    }

    #[getter]
    fn enabled_filters(&self) -> Vec<&'static str> {
        self.cfg.filters.iter().map(|f| f.name()).collect()
    }
    #[getter]
    fn weighers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (w, m) in &self.cfg.weighers {
            d.set_item(w.name(), *m)?;
        }
        Ok(d)
    }
    #[getter]
    fn host_subset_size(&self) -> usize {
        self.cfg.host_subset_size
    }
    #[getter]
    fn max_attempts(&self) -> usize {
        self.cfg.max_attempts
    }
    #[getter]
    fn max_io_ops_per_host(&self) -> i64 {
        self.cfg.max_io_ops_per_host
    }
    #[getter]
    fn max_instances_per_host(&self) -> i64 {
        self.cfg.max_instances_per_host
    }
    #[getter]
    fn isolated_images(&self) -> Vec<String> {
        self.cfg.isolated_images.clone()
    }
    #[getter]
    fn isolated_hosts(&self) -> Vec<String> {
        self.cfg.isolated_hosts.clone()
    }
    #[getter]
    fn restrict_isolated_hosts_to_isolated_images(&self) -> bool {
        self.cfg.restrict_isolated_hosts_to_isolated_images
    }
    #[getter]
    fn seed(&self) -> Option<u64> {
        self.cfg.seed
    }
    /// All filter names this build knows, in Nova's spelling.
    #[staticmethod]
    fn all_filters() -> Vec<&'static str> {
        Filter::ALL.iter().map(|f| f.name()).collect()
    }
    /// All weigher names with Nova's default multipliers.
    #[staticmethod]
    fn all_weighers() -> Vec<(&'static str, f64)> {
        Weigher::ALL
            .iter()
            .map(|w| (w.name(), w.default_multiplier()))
            .collect()
    }
    fn __repr__(&self) -> String {
        format!(
            "SchedulerConfig(enabled_filters={:?}, host_subset_size={}, max_attempts={})",
            self.enabled_filters(),
            self.cfg.host_subset_size,
            self.cfg.max_attempts
        )
    }
}
