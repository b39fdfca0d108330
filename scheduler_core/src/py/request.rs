//! `RequestSpec`: what to place.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::dict_items;
use crate::Request;

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
        different_host=None, ignore_hosts=None, min_count=0, group_max_server_per_host=1))]
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
        group_max_server_per_host: i64,
    ) -> PyResult<Self> {
        let req = Request {
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
            group_max_server_per_host,
        };
        req.check().map_err(PyValueError::new_err)?;
        Ok(RequestSpec { req })
    }

    #[getter]
    fn group_max_server_per_host(&self) -> i64 {
        self.req.group_max_server_per_host
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
