package drover

import (
	"errors"
	"fmt"
	"strings"

	droverv1 "github.com/drover/drover/clients/go/gen/drover/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed call with its google.rpc details decoded.
type Error struct {
	Code    codes.Code
	Message string
	// FieldViolations come from google.rpc.BadRequest (INVALID_ARGUMENT): which field, and why.
	FieldViolations []*errdetails.BadRequest_FieldViolation
	// Resource comes from google.rpc.ResourceInfo (NOT_FOUND): what was not found.
	Resource *errdetails.ResourceInfo
	// PreconditionViolations and QuotaViolations: FAILED_PRECONDITION and RESOURCE_EXHAUSTED.
	PreconditionViolations []*errdetails.PreconditionFailure_Violation
	QuotaViolations        []*errdetails.QuotaFailure_Violation
	status                 *status.Status
}

func (e *Error) Error() string { return fmt.Sprintf("drover: %s: %s", e.Code, e.Message) }

// GRPCStatus lets status.FromError and status.Code see through an *Error.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// AsError returns err's *Error (nil when err is not a gRPC error).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if d, ok := decode(err).(*Error); ok {
		return d
	}
	return nil
}

// decode turns a gRPC error into an *Error; other errors (and nil) pass through.
func decode(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	e := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			e.FieldViolations = append(e.FieldViolations, d.GetFieldViolations()...)
		case *errdetails.ResourceInfo:
			e.Resource = d
		case *errdetails.PreconditionFailure:
			e.PreconditionViolations = append(e.PreconditionViolations, d.GetViolations()...)
		case *errdetails.QuotaFailure:
			e.QuotaViolations = append(e.QuotaViolations, d.GetViolations()...)
		}
	}
	return e
}

// NoValidHost is the scheduler's explanation when a server went to ERROR because no host could
// take it (nil otherwise): the summary a person reads and, filter by filter, what it rejected.
func NoValidHost(s *droverv1.Server) *droverv1.Explanation {
	if s.GetVmState() != droverv1.VmState_VM_STATE_ERROR || s.GetSchedulerExplanation() == nil {
		return nil
	}
	return s.GetSchedulerExplanation()
}

// ExplainNoValidHost renders the explanation in lines: the summary, then each filter that rejected hosts.
func ExplainNoValidHost(x *droverv1.Explanation) string {
	var b strings.Builder
	b.WriteString(x.GetSummary())
	for _, r := range x.GetRejections() {
		if r.GetRejected() == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n  %s rejected %d", r.GetFilter(), r.GetRejected())
		if len(r.GetSampleReasons()) > 0 {
			fmt.Fprintf(&b, " (%s)", r.GetSampleReasons()[0])
		}
	}
	return b.String()
}
