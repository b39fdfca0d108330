package drover

import (
	"context"
	"errors"
	"io"
	"time"

	droverv1 "github.com/drover/drover/clients/go/gen/drover/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Final says whether a server has settled: ACTIVE, ERROR or STOPPED with no task, or DELETED
// (where WatchServer without follow ends).
func Final(s *droverv1.Server) bool {
	switch s.GetVmState() {
	case droverv1.VmState_VM_STATE_DELETED:
		return true
	case droverv1.VmState_VM_STATE_ACTIVE, droverv1.VmState_VM_STATE_ERROR, droverv1.VmState_VM_STATE_STOPPED:
		return s.GetTaskState() == droverv1.TaskState_TASK_STATE_UNSPECIFIED
	}
	return false
}

// WatchServer streams server id's changes and notifications to onEvent until it settles and
// returns it as it ended. sinceRevision (e.g. CreateServerResponse's server.revision) replays
// the changes after it; 0 starts from the server as it is now. When the stream breaks
// (UNAVAILABLE), the watch reopens from the last revision it saw, so no step is lost or repeated.
func (c *Client) WatchServer(ctx context.Context, id string, sinceRevision int64,
	onEvent func(*droverv1.WatchServerResponse)) (*droverv1.Server, error) {
	last := sinceRevision
	var latest *droverv1.Server
	failures := 0
	for {
		err := c.watchOnce(ctx, id, &last, &latest, onEvent)
		if err == nil {
			return latest, nil
		}
		if status.Code(err) != codes.Unavailable || failures >= c.opts.watchResumes {
			return latest, decode(err)
		}
		backoff := c.opts.resumeBackoff << failures
		failures++
		select {
		case <-ctx.Done():
			return latest, decode(ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// watchOnce follows one stream; nil when it ended with the server settled.
func (c *Client) watchOnce(ctx context.Context, id string, last *int64, latest **droverv1.Server,
	onEvent func(*droverv1.WatchServerResponse)) error {
	stream, err := c.API.WatchServer(ctx, &droverv1.WatchServerRequest{Id: id, SinceRevision: *last})
	if err != nil {
		return err
	}
	resumed := *last > 0
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if *latest == nil {
				return status.Error(codes.Unavailable, "watch ended before any event")
			}
			return nil
		}
		if err != nil {
			return err
		}
		s := ev.GetServer()
		// A reopened stream starts with the current state when the API no longer holds the
		// changes: not news if this watch has already seen that revision.
		if resumed && s.GetRevision() <= *last && ev.GetNotification() == nil {
			*latest = s
			continue
		}
		*latest = s
		*last = max(*last, s.GetRevision())
		onEvent(ev)
	}
}
