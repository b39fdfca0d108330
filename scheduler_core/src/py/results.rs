//! Result objects: selections, the explanation, `NoValidHost`, host rows.

use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate as core;

/// One placed instance: its host and the alternates (Nova's Selection objects).
#[pyclass(module = "drover.scheduler_core", frozen, get_all, name = "Selection")]
#[derive(Clone)]
pub struct Selection {
    pub instance_id: String,
    pub host: String,
    pub alternate_hosts: Vec<String>,
}

#[pymethods]
impl Selection {
    fn __repr__(&self) -> String {
        format!(
            "Selection(instance_id={:?}, host={:?}, alternate_hosts={:?})",
            self.instance_id, self.host, self.alternate_hosts
        )
    }
}

/// Hosts rejected by one filter (each host counted under the first filter that rejected it).
#[pyclass(
    module = "drover.scheduler_core",
    frozen,
    get_all,
    name = "FilterRejection"
)]
#[derive(Clone)]
pub struct FilterRejection {
    pub filter: &'static str,
    pub rejected: usize,
    pub sample_reasons: Vec<String>,
}

#[pymethods]
impl FilterRejection {
    fn __repr__(&self) -> String {
        format!(
            "FilterRejection(filter={:?}, rejected={})",
            self.filter, self.rejected
        )
    }
}

/// A candidate with its total weight and each weigher's contribution (multiplier × normalised).
#[pyclass(module = "drover.scheduler_core", frozen, name = "WeighedHost")]
#[derive(Clone)]
pub struct WeighedHost {
    #[pyo3(get)]
    pub host: String,
    #[pyo3(get)]
    pub weight: f64,
    pub weights: Vec<(&'static str, f64)>,
}

#[pymethods]
impl WeighedHost {
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.weights {
            d.set_item(k, *v)?;
        }
        Ok(d)
    }
    fn __repr__(&self) -> String {
        format!("WeighedHost(host={:?}, weight={})", self.host, self.weight)
    }
}

/// Why a select chose what it chose (or found nothing).
#[pyclass(module = "drover.scheduler_core", frozen, name = "Explanation")]
pub struct Explanation {
    pub inner: core::Explanation,
}

#[pymethods]
impl Explanation {
    #[getter]
    fn hosts_total(&self) -> usize {
        self.inner.hosts_total
    }
    #[getter]
    fn hosts_passed(&self) -> usize {
        self.inner.hosts_passed
    }
    #[getter]
    fn rejections(&self) -> Vec<FilterRejection> {
        self.inner
            .rejections
            .iter()
            .map(|r| FilterRejection {
                filter: r.filter,
                rejected: r.rejected,
                sample_reasons: r.sample_reasons.clone(),
            })
            .collect()
    }
    #[getter]
    fn top_hosts(&self) -> Vec<WeighedHost> {
        self.inner
            .top_hosts
            .iter()
            .map(|t| WeighedHost {
                host: t.host.clone(),
                weight: t.weight,
                weights: t.weights.clone(),
            })
            .collect()
    }
    #[getter]
    fn summary(&self) -> String {
        self.inner.summary.clone()
    }
    #[getter]
    fn elapsed_us(&self) -> f64 {
        self.inner.elapsed_us
    }
    fn __str__(&self) -> String {
        self.inner.summary.clone()
    }
    fn __repr__(&self) -> String {
        format!("Explanation({:?})", self.inner.summary)
    }
}

/// Result of `HostTable.select` / `HostTable.explain`.
#[pyclass(module = "drover.scheduler_core", frozen, name = "SelectionResult")]
pub struct SelectionResult {
    pub(super) selections: Vec<Selection>,
    pub(super) explanation: Py<Explanation>,
}

#[pymethods]
impl SelectionResult {
    #[getter]
    fn selections(&self) -> Vec<Selection> {
        self.selections.clone()
    }
    #[getter]
    fn explanation(&self, py: Python<'_>) -> Py<Explanation> {
        self.explanation.clone_ref(py)
    }
    fn __repr__(&self) -> String {
        format!("SelectionResult(selections={})", self.selections.len())
    }
}

/// Raised by `HostTable.select` when the request cannot be placed; `.explanation` says why.
#[pyclass(module = "drover.scheduler_core", extends = PyException, name = "NoValidHost")]
pub struct NoValidHost {
    pub(super) explanation: Py<Explanation>,
}

#[pymethods]
impl NoValidHost {
    #[new]
    fn new(explanation: Py<Explanation>) -> Self {
        NoValidHost { explanation }
    }
    #[getter]
    fn explanation(&self, py: Python<'_>) -> Py<Explanation> {
        self.explanation.clone_ref(py)
    }
    fn __str__(&self, py: Python<'_>) -> String {
        self.explanation.borrow(py).inner.summary.clone()
    }
}

/// A row of `HostTable.hosts()`.
#[pyclass(module = "drover.scheduler_core", frozen, get_all, name = "HostInfo")]
pub struct HostInfo {
    pub host: String,
    pub enabled: bool,
    pub up: bool,
    pub availability_zone: String,
    pub vcpus: i64,
    pub vcpus_used: i64,
    pub memory_mb: i64,
    pub memory_mb_used: i64,
    pub disk_gb: i64,
    pub disk_gb_used: i64,
    pub reserved_vcpus: i64,
    pub reserved_memory_mb: i64,
    pub reserved_disk_gb: i64,
    pub free_vcpus: f64,
    pub free_memory_mb: f64,
    pub free_disk_gb: f64,
    pub num_instances: i64,
    pub io_ops: i64,
    pub failed_builds: i64,
    pub cpu_allocation_ratio: f64,
    pub ram_allocation_ratio: f64,
    pub disk_allocation_ratio: f64,
    pub hypervisor_type: String,
    pub hypervisor_version: i64,
    pub cpu_arch: String,
    pub aggregates: Vec<String>,
    pub generation: i64,
    pub traits: Vec<String>,
    pub cpu_info: String,
    pub supported_instances: Vec<(String, String, String)>,
}

#[pymethods]
impl HostInfo {
    fn __repr__(&self) -> String {
        format!(
            "HostInfo(host={:?}, vcpus={}/{}, memory_mb={}/{}, disk_gb={}/{})",
            self.host,
            self.vcpus_used,
            self.vcpus,
            self.memory_mb_used,
            self.memory_mb,
            self.disk_gb_used,
            self.disk_gb
        )
    }
}

impl From<core::HostView> for HostInfo {
    fn from(v: core::HostView) -> Self {
        HostInfo {
            host: v.host,
            enabled: v.enabled,
            up: v.up,
            availability_zone: v.availability_zone,
            vcpus: v.vcpus,
            vcpus_used: v.vcpus_used,
            memory_mb: v.memory_mb,
            memory_mb_used: v.memory_mb_used,
            disk_gb: v.disk_gb,
            disk_gb_used: v.disk_gb_used,
            reserved_vcpus: v.reserved_vcpus,
            reserved_memory_mb: v.reserved_memory_mb,
            reserved_disk_gb: v.reserved_disk_gb,
            free_vcpus: v.free_vcpus,
            free_memory_mb: v.free_memory_mb,
            free_disk_gb: v.free_disk_gb,
            num_instances: v.num_instances,
            io_ops: v.io_ops,
            failed_builds: v.failed_builds,
            cpu_allocation_ratio: v.cpu_allocation_ratio,
            ram_allocation_ratio: v.ram_allocation_ratio,
            disk_allocation_ratio: v.disk_allocation_ratio,
            hypervisor_type: v.hypervisor_type,
            hypervisor_version: v.hypervisor_version,
            cpu_arch: v.cpu_arch,
            aggregates: v.aggregates,
            generation: v.generation,
            traits: v.traits,
            cpu_info: v.cpu_info,
            supported_instances: v.supported_instances,
        }
    }
}

pub(super) fn to_py_result(
    py: Python<'_>,
    out: core::Outcome,
) -> PyResult<(SelectionResult, bool)> {
    let selections = out
        .selections
        .into_iter()
        .map(|s| Selection {
            instance_id: s.instance_id,
            host: s.host,
            alternate_hosts: s.alternate_hosts,
        })
        .collect();
    let explanation = Py::new(
        py,
        Explanation {
            inner: out.explanation,
        },
    )?;
    Ok((
        SelectionResult {
            selections,
            explanation,
        },
        out.ok,
    ))
}
