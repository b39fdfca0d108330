//! PyO3 bindings: `drover.scheduler_core`.

use std::sync::RwLock;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate::core::{self, Config, Filter, HostSpec, Request, Weigher};

const MODULE: &str = "drover.scheduler_core";

static UNKNOWN_HOST: GILOnceCell<Py<PyType>> = GILOnceCell::new();

fn unknown_host(py: Python<'_>, host: &str) -> PyErr {
    match UNKNOWN_HOST.get(py) {
        Some(t) => PyErr::from_type(t.bind(py).clone(), format!("unknown host {host:?}")),
        None => PyValueError::new_err(format!("unknown host {host:?}")),
    }
}

/// (key, str(value)) pairs of a dict or any mapping, in iteration order.
fn dict_items(d: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(d) = d else { return Ok(out) };
    if d.is_none() {
        return Ok(out);
    }
    if let Ok(d) = d.downcast::<PyDict>() {
        for (k, v) in d.iter() {
            out.push((k.extract::<String>()?, v.str()?.extract::<String>()?));
        }
    } else {
        for item in d.call_method0("items")?.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            out.push((k.extract::<String>()?, v.str()?.extract::<String>()?));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// SchedulerConfig
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// RequestSpec
// ---------------------------------------------------------------------------------------------

/// What to place: a flavor's resources, image, hints and server-group info.
#[pyclass(module = "drover.scheduler_core", frozen, name = "RequestSpec")]
pub struct RequestSpec {
    pub req: Request,
}

#[pymethods]
impl RequestSpec {
    #[new]
    #[pyo3(signature = (instance_ids, vcpus, memory_mb, root_gb=0, ephemeral_gb=0, swap_mb=0,
        project_id=None, availability_zone=None, flavor_extra_specs=None, image_id=None,
        image_properties=None, group_policy=None, group_hosts=None, same_host=None,
        different_host=None, ignore_hosts=None, min_count=0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        instance_ids: Vec<String>,
        vcpus: i64,
        memory_mb: i64,
        root_gb: i64,
        ephemeral_gb: i64,
        swap_mb: i64,
        project_id: Option<String>,
        availability_zone: Option<String>,
        flavor_extra_specs: Option<&Bound<'_, PyAny>>,
        image_id: Option<String>,
        image_properties: Option<&Bound<'_, PyAny>>,
        group_policy: Option<String>,
        group_hosts: Option<Vec<String>>,
        same_host: Option<Vec<String>>,
        different_host: Option<Vec<String>>,
        ignore_hosts: Option<Vec<String>>,
        min_count: i64,
    ) -> PyResult<Self> {
        if vcpus < 0 || memory_mb < 0 || root_gb < 0 || ephemeral_gb < 0 || swap_mb < 0 {
            return Err(PyValueError::new_err("resource amounts must be >= 0"));
        }
        Ok(RequestSpec {
            req: Request {
                instance_ids,
                vcpus,
                memory_mb,
                root_gb,
                ephemeral_gb,
                swap_mb,
                project_id: project_id.unwrap_or_default(),
                availability_zone: availability_zone.unwrap_or_default(),
                flavor_extra_specs: dict_items(flavor_extra_specs)?,
                image_id: image_id.unwrap_or_default(),
                image_properties: dict_items(image_properties)?,
                group_policy: group_policy.unwrap_or_default(),
                group_hosts: group_hosts.unwrap_or_default(),
                same_host: same_host.unwrap_or_default(),
                different_host: different_host.unwrap_or_default(),
                ignore_hosts: ignore_hosts.unwrap_or_default(),
                min_count,
            },
        })
    }

    #[getter]
    fn instance_ids(&self) -> Vec<String> {
        self.req.instance_ids.clone()
    }
    #[getter]
    fn vcpus(&self) -> i64 {
        self.req.vcpus
    }
    #[getter]
    fn memory_mb(&self) -> i64 {
        self.req.memory_mb
    }
    #[getter]
    fn root_gb(&self) -> i64 {
        self.req.root_gb
    }
    #[getter]
    fn ephemeral_gb(&self) -> i64 {
        self.req.ephemeral_gb
    }
    #[getter]
    fn swap_mb(&self) -> i64 {
        self.req.swap_mb
    }
    /// DISK_GB claimed per instance: root + ephemeral + ceil(swap / 1024).
    #[getter]
    fn disk_gb(&self) -> i64 {
        self.req.disk_gb()
    }
    #[getter]
    fn project_id(&self) -> String {
        self.req.project_id.clone()
    }
    #[getter]
    fn availability_zone(&self) -> String {
        self.req.availability_zone.clone()
    }
    #[getter]
    fn flavor_extra_specs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.req.flavor_extra_specs {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn image_id(&self) -> String {
        self.req.image_id.clone()
    }
    #[getter]
    fn image_properties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.req.image_properties {
            d.set_item(k, v)?;
        }
        Ok(d)
    }
    #[getter]
    fn group_policy(&self) -> String {
        self.req.group_policy.clone()
    }
    #[getter]
    fn group_hosts(&self) -> Vec<String> {
        self.req.group_hosts.clone()
    }
    #[getter]
    fn same_host(&self) -> Vec<String> {
        self.req.same_host.clone()
    }
    #[getter]
    fn different_host(&self) -> Vec<String> {
        self.req.different_host.clone()
    }
    #[getter]
    fn ignore_hosts(&self) -> Vec<String> {
        self.req.ignore_hosts.clone()
    }
    #[getter]
    fn min_count(&self) -> i64 {
        self.req.min_count
    }
    fn __repr__(&self) -> String {
        format!(
            "RequestSpec(instance_ids={:?}, vcpus={}, memory_mb={}, disk_gb={})",
            self.req.instance_ids,
            self.req.vcpus,
            self.req.memory_mb,
            self.req.disk_gb()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------------

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
    selections: Vec<Selection>,
    explanation: Py<Explanation>,
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
    explanation: Py<Explanation>,
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
        }
    }
}

fn to_py_result(py: Python<'_>, out: core::Outcome) -> PyResult<(SelectionResult, bool)> {
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

// ---------------------------------------------------------------------------------------------
// HostTable
// ---------------------------------------------------------------------------------------------

/// The scheduler's host table: incremental host reports, claims, select/explain.
/// Thread-safe; the GIL is released while the table is locked.
#[pyclass(module = "drover.scheduler_core", frozen, name = "HostTable")]
pub struct HostTable {
    inner: RwLock<core::HostTable>,
}

impl HostTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, core::HostTable> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, core::HostTable> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl HostTable {
    #[new]
    #[pyo3(signature = (cfg=None))]
    fn new(cfg: Option<&Bound<'_, SchedulerConfig>>) -> Self {
        let cfg = cfg.map(|c| c.get().cfg.clone()).unwrap_or_default();
        HostTable {
            inner: RwLock::new(core::HostTable::new(cfg)),
        }
    }

    #[getter]
    fn config(&self) -> SchedulerConfig {
        SchedulerConfig {
            cfg: self.read().cfg.clone(),
        }
    }

    /// Insert or update a host from a resource report. Returns False (no change) if
    /// `generation` is older than the stored one. Claims are kept.
    #[pyo3(signature = (host, *, vcpus, memory_mb, disk_gb, reserved_vcpus=0, reserved_memory_mb=0,
        reserved_disk_gb=0, cpu_allocation_ratio=16.0, ram_allocation_ratio=1.5, disk_allocation_ratio=1.0,
        availability_zone=None, enabled=true, up=true, io_ops=0, num_instances=0, failed_builds=0,
        hypervisor_type=None, hypervisor_version=0, cpu_arch=None, capabilities=None, aggregates=None,
        generation=0))]
    #[allow(clippy::too_many_arguments)]
    fn upsert_host(
        &self,
        py: Python<'_>,
        host: String,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
        reserved_vcpus: i64,
        reserved_memory_mb: i64,
        reserved_disk_gb: i64,
        cpu_allocation_ratio: f64,
        ram_allocation_ratio: f64,
        disk_allocation_ratio: f64,
        availability_zone: Option<String>,
        enabled: bool,
        up: bool,
        io_ops: i64,
        num_instances: i64,
        failed_builds: i64,
        hypervisor_type: Option<String>,
        hypervisor_version: i64,
        cpu_arch: Option<String>,
        capabilities: Option<&Bound<'_, PyAny>>,
        aggregates: Option<Vec<(String, Option<Bound<'_, PyAny>>)>>,
        generation: i64,
    ) -> PyResult<bool> {
        let mut aggs = Vec::new();
        for (name, md) in aggregates.unwrap_or_default() {
            aggs.push((name, dict_items(md.as_ref())?));
        }
        let spec = HostSpec {
            name: host,
            vcpus,
            memory_mb,
            disk_gb,
            reserved_vcpus,
            reserved_memory_mb,
            reserved_disk_gb,
            cpu_allocation_ratio,
            ram_allocation_ratio,
            disk_allocation_ratio,
            availability_zone: availability_zone.unwrap_or_else(|| "nova".to_string()),
            enabled,
            up,
            io_ops,
            num_instances,
            failed_builds,
            hypervisor_type: hypervisor_type.unwrap_or_default(),
            hypervisor_version,
            cpu_arch: cpu_arch.unwrap_or_default(),
            capabilities: dict_items(capabilities)?,
            aggregates: aggs,
            generation,
        };
        Ok(py.allow_threads(|| self.write().upsert(&spec)))
    }

    /// Forget a host and its claims. False if unknown.
    fn remove_host(&self, py: Python<'_>, host: &str) -> bool {
        py.allow_threads(|| self.write().remove(host))
    }

    /// Mark a host up/down (missed heartbeats). Raises UnknownHostError.
    fn set_up(&self, py: Python<'_>, host: &str, up: bool) -> PyResult<()> {
        if py.allow_threads(|| self.write().set_up(host, up)) {
            Ok(())
        } else {
            Err(unknown_host(py, host))
        }
    }

    /// Enable/disable a host's compute service. Raises UnknownHostError.
    fn set_enabled(&self, py: Python<'_>, host: &str, enabled: bool) -> PyResult<()> {
        if py.allow_threads(|| self.write().set_enabled(host, enabled)) {
            Ok(())
        } else {
            Err(unknown_host(py, host))
        }
    }

    fn __len__(&self) -> usize {
        self.read().len()
    }

    fn __contains__(&self, host: &str) -> bool {
        self.read().contains(host)
    }

    /// Filter, weigh, choose and claim for every instance (all or none). Raises NoValidHost.
    fn select(&self, py: Python<'_>, spec: &Bound<'_, RequestSpec>) -> PyResult<SelectionResult> {
        let req = &spec.get().req;
        if req.instance_ids.is_empty() {
            return Err(PyValueError::new_err("instance_ids must not be empty"));
        }
        let out = py.allow_threads(|| self.write().select(req));
        let (res, ok) = to_py_result(py, out)?;
        if ok {
            Ok(res)
        } else {
            let exc = Bound::new(
                py,
                NoValidHost {
                    explanation: res.explanation,
                },
            )?;
            Err(PyErr::from_value(exc.into_any()))
        }
    }

    /// Same computation as select; claims nothing and never raises NoValidHost.
    fn explain(&self, py: Python<'_>, spec: &Bound<'_, RequestSpec>) -> PyResult<SelectionResult> {
        let req = &spec.get().req;
        let out = py.allow_threads(|| self.read().plan(req).0);
        Ok(to_py_result(py, out)?.0)
    }

    /// Restore an existing allocation (e.g. after a restart); may overcommit.
    /// Replaces an existing claim of the same instance. Raises UnknownHostError.
    #[pyo3(signature = (instance_id, host, *, vcpus, memory_mb, disk_gb))]
    fn claim(
        &self,
        py: Python<'_>,
        instance_id: &str,
        host: &str,
        vcpus: i64,
        memory_mb: i64,
        disk_gb: i64,
    ) -> PyResult<()> {
        if py.allow_threads(|| {
            self.write()
                .claim(instance_id, host, vcpus, memory_mb, disk_gb)
        }) {
            Ok(())
        } else {
            Err(unknown_host(py, host))
        }
    }

    /// Return an instance's claimed resources. False if it holds no claim.
    fn release(&self, py: Python<'_>, instance_id: &str) -> bool {
        py.allow_threads(|| self.write().release(instance_id))
    }

    /// The host an instance's claim is on, or None.
    fn claim_host(&self, instance_id: &str) -> Option<String> {
        self.read().claim_host(instance_id).map(|s| s.to_string())
    }

    /// Number of claims held.
    fn num_claims(&self) -> usize {
        self.read().num_claims()
    }

    /// Host rows (all, or the named ones that exist), in table order; `limit` > 0 caps the count.
    #[pyo3(signature = (names=None, limit=0))]
    fn hosts(&self, py: Python<'_>, names: Option<Vec<String>>, limit: usize) -> Vec<HostInfo> {
        let views = py.allow_threads(|| {
            let t = self.read();
            let cap = if limit == 0 { usize::MAX } else { limit };
            match names {
                Some(ns) => ns
                    .iter()
                    .filter_map(|h| t.slot(h))
                    .take(cap)
                    .map(|i| t.view(i))
                    .collect::<Vec<_>>(),
                None => (0..t.len()).take(cap).map(|i| t.view(i)).collect(),
            }
        });
        views.into_iter().map(HostInfo::from).collect()
    }

    /// Approximate bytes held by the table.
    fn memory_bytes(&self) -> usize {
        self.read().memory_bytes()
    }

    /// Debug/test helper: hosts (in table order) that pass one filter on its own.
    fn debug_filter_hosts(
        &self,
        filter: &str,
        spec: &Bound<'_, RequestSpec>,
    ) -> PyResult<Vec<String>> {
        let f = Filter::from_name(filter)
            .ok_or_else(|| PyValueError::new_err(format!("unknown filter {filter:?}")))?;
        Ok(self.read().hosts_passing(f, &spec.get().req))
    }

    /// Debug/test helper: Nova-normalised combined weights of the named hosts as candidates.
    fn debug_weigh(&self, names: Vec<String>, spec: &Bound<'_, RequestSpec>) -> Vec<(String, f64)> {
        self.read().weigh_hosts(&names, &spec.get().req)
    }

    fn __repr__(&self) -> String {
        format!("HostTable(hosts={})", self.read().len())
    }
}

#[pymodule]
pub fn scheduler_core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<SchedulerConfig>()?;
    m.add_class::<RequestSpec>()?;
    m.add_class::<HostTable>()?;
    m.add_class::<Selection>()?;
    m.add_class::<SelectionResult>()?;
    m.add_class::<Explanation>()?;
    m.add_class::<FilterRejection>()?;
    m.add_class::<WeighedHost>()?;
    m.add_class::<HostInfo>()?;
    m.add_class::<NoValidHost>()?;
    let builtins = py.import("builtins")?;
    let bases = PyTuple::new(
        py,
        [
            builtins.getattr("KeyError")?,
            builtins.getattr("ValueError")?,
        ],
    )?;
    let ns = PyDict::new(py);
    ns.set_item("__module__", MODULE)?;
    ns.set_item(
        "__doc__",
        "Unknown host name (both a KeyError and a ValueError).",
    )?;
    let cls = builtins
        .getattr("type")?
        .call1(("UnknownHostError", bases, ns))?;
    let cls = cls.downcast_into::<PyType>()?;
    let _ = UNKNOWN_HOST.set(py, cls.clone().unbind());
    m.add("UnknownHostError", cls)?;
    m.add(
        "DEFAULT_FILTERS",
        core::DEFAULT_FILTERS
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
