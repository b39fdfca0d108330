use std::fmt;

use tonic::{Code, Status};
use tonic_types::{FieldViolation, PreconditionViolation, QuotaViolation, ResourceInfo, StatusExt};

use crate::pb::{Explanation, Server, VmState};

/// A failed call: its gRPC code and message with the google.rpc details decoded.
#[derive(Debug, Clone)]
pub struct Error {
    pub code: Code,
    pub message: String,
    /// From google.rpc.BadRequest (INVALID_ARGUMENT): which field, and why.
    pub field_violations: Vec<FieldViolation>,
    /// From google.rpc.ResourceInfo (NOT_FOUND): what was not found.
    pub resource: Option<ResourceInfo>,
    pub precondition_violations: Vec<PreconditionViolation>,
    pub quota_violations: Vec<QuotaViolation>,
}

impl Error {
    pub(crate) fn local(code: Code, message: impl Into<String>) -> Error {
        Error {
            code,
            message: message.into(),
            field_violations: Vec::new(),
            resource: None,
            precondition_violations: Vec::new(),
            quota_violations: Vec::new(),
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        let details = status.get_error_details();
        Error {
            code: status.code(),
            message: status.message().to_owned(),
            field_violations: details
                .bad_request()
                .map(|b| b.field_violations.clone())
                .unwrap_or_default(),
            resource: details.resource_info().cloned(),
            precondition_violations: details
                .precondition_failure()
                .map(|p| p.violations.clone())
                .unwrap_or_default(),
            quota_violations: details
                .quota_failure()
                .map(|q| q.violations.clone())
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drover: {:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// The scheduler's explanation when the server went to ERROR because no host could take it.
pub fn no_valid_host(server: &Server) -> Option<&Explanation> {
    (server.vm_state() == VmState::Error)
        .then_some(server.scheduler_explanation.as_ref())
        .flatten()
}

/// The explanation in lines: the summary, then each filter that rejected hosts.
pub fn explain_no_valid_host(x: &Explanation) -> String {
    let mut out = x.summary.clone();
    for r in x.rejections.iter().filter(|r| r.rejected > 0) {
        out.push_str(&format!("\n  {} rejected {}", r.filter, r.rejected));
        if let Some(sample) = r.sample_reasons.first() {
            out.push_str(&format!(" ({sample})"));
        }
    }
    out
}
