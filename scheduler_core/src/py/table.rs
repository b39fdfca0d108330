//! `HostTable`: the scheduler's host table for Python (the GIL released while it works).

use std::sync::RwLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::config::SchedulerConfig;
use super::request::RequestSpec;
use super::results::{to_py_result, HostInfo, NoValidHost, SelectionResult};
use super::{dict_items, unknown_host};
use crate as core;
use crate::{Filter, HostSpec};

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
        generation=0, traits=None, cpu_info=None, supported_instances=None))]
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
        traits: Option<Vec<String>>,
        cpu_info: Option<String>,
        supported_instances: Option<Vec<(String, String, String)>>,
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
            traits: traits.unwrap_or_default(),
            cpu_info: cpu_info.unwrap_or_default(),
            supported_instances: supported_instances.unwrap_or_default(),
        };
        py.allow_threads(|| self.write().upsert(&spec))
            .map_err(PyValueError::new_err)
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
        let out = py
            .allow_threads(|| self.write().select(req))
            .map_err(PyValueError::new_err)?;
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
        if py
            .allow_threads(|| {
                self.write()
                    .claim(instance_id, host, vcpus, memory_mb, disk_gb)
            })
            .map_err(PyValueError::new_err)?
        {
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
