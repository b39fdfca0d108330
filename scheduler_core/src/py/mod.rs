//! PyO3 bindings: `drover.scheduler_core` (one file per Python class family).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyDict, PyTuple, PyType};

use crate as core;

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

mod config;
mod request;
mod results;
mod table;

use config::SchedulerConfig;
use request::RequestSpec;
use results::{
    Explanation, FilterRejection, HostInfo, NoValidHost, Selection, SelectionResult, WeighedHost,
};
use table::HostTable;

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
