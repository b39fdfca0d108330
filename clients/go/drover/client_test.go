package drover_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drover/drover/clients/go/drover"
	droverv1 "github.com/drover/drover/clients/go/gen/drover/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

func dial(t *testing.T, opts ...drover.Option) *drover.Client {
	t.Helper()
	c, err := drover.Dial(mesh.API, append([]drover.Option{drover.WithToken(mesh.token())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func create(t *testing.T, c *drover.Client, name, flavor string) *droverv1.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.CreateServer(ctx, &droverv1.CreateServerRequest{Name: name, FlavorRef: flavor, ImageRef: mesh.Image})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetServer()
}

// watch follows the server to its final state and returns it with every event seen.
func watch(t *testing.T, c *drover.Client, s *droverv1.Server, onEvent func(*droverv1.WatchServerResponse)) (
	*droverv1.Server, []*droverv1.WatchServerResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var events []*droverv1.WatchServerResponse
	final, err := c.WatchServer(ctx, s.GetId(), s.GetRevision(), func(ev *droverv1.WatchServerResponse) {
		events = append(events, ev)
		if onEvent != nil {
			onEvent(ev)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return final, events
}

func taskStates(events []*droverv1.WatchServerResponse) []droverv1.TaskState {
	var seen []droverv1.TaskState
	for _, ev := range events {
		ts := ev.GetServer().GetTaskState()
		if len(seen) == 0 || seen[len(seen)-1] != ts {
			seen = append(seen, ts)
		}
	}
	return seen
}

func notifications(events []*droverv1.WatchServerResponse) []string {
	var types []string
	for _, ev := range events {
		if n := ev.GetNotification(); n != nil {
			types = append(types, n.GetEventType())
		}
	}
	return types
}

var buildSteps = []droverv1.TaskState{
	droverv1.TaskState_TASK_STATE_SCHEDULING,
	droverv1.TaskState_TASK_STATE_NETWORKING,
	droverv1.TaskState_TASK_STATE_BLOCK_DEVICE_MAPPING,
	droverv1.TaskState_TASK_STATE_SPAWNING,
	droverv1.TaskState_TASK_STATE_UNSPECIFIED,
}

func TestCreateToActiveSeesEveryStep(t *testing.T) {
	c := dial(t)
	final, events := watch(t, c, create(t, c, "go-active", mesh.Flavor), nil)
	if final.GetStatus() != droverv1.ServerStatus_SERVER_STATUS_ACTIVE || !drover.Final(final) {
		t.Fatalf("final server %v, want ACTIVE", final)
	}
	if got := taskStates(events); !slices.Equal(got, buildSteps) {
		t.Errorf("task states %v, want %v", got, buildSteps)
	}
	if got := notifications(events); !slices.Contains(got, "instance.create.start") || !slices.Contains(got, "instance.create.end") {
		t.Errorf("notifications %v, want instance.create.start and .end", got)
	}
	if drover.NoValidHost(final) != nil {
		t.Errorf("an ACTIVE server has a NoValidHost explanation")
	}
}

func TestNoValidHostExplained(t *testing.T) {
	c := dial(t)
	final, events := watch(t, c, create(t, c, "go-novalidhost", mesh.HugeFlavor), nil)
	x := drover.NoValidHost(final)
	if final.GetVmState() != droverv1.VmState_VM_STATE_ERROR || x == nil {
		t.Fatalf("final server %v, want ERROR with an explanation", final)
	}
	if !strings.Contains(x.GetSummary(), "no valid host") || x.GetHostsTotal() < 1 {
		t.Errorf("explanation %v", x)
	}
	if !slices.ContainsFunc(x.GetRejections(), func(r *droverv1.FilterRejection) bool {
		return r.GetFilter() == "RamFilter" && r.GetRejected() == x.GetHostsTotal()
	}) {
		t.Errorf("RamFilter did not reject every host: %v", x.GetRejections())
	}
	if !strings.Contains(drover.ExplainNoValidHost(x), "RamFilter rejected") {
		t.Errorf("rendered explanation: %q", drover.ExplainNoValidHost(x))
	}
	if !slices.Contains(notifications(events), "instance.create.error") {
		t.Errorf("notifications %v, want instance.create.error", notifications(events))
	}
}

func TestInvalidArgumentFieldViolations(t *testing.T) {
	c := dial(t)
	_, err := c.CreateServer(context.Background(), &droverv1.CreateServerRequest{Name: " ", FlavorRef: mesh.Flavor,
		ImageRef: mesh.Image, MinCount: -1})
	e := drover.AsError(err)
	if e == nil || e.Code != codes.InvalidArgument {
		t.Fatalf("error %v, want INVALID_ARGUMENT", err)
	}
	fields := map[string]string{}
	for _, v := range e.FieldViolations {
		fields[v.GetField()] = v.GetDescription()
	}
	if fields["name"] == "" || fields["min_count"] == "" {
		t.Errorf("field violations %v, want name and min_count", fields)
	}
}

func TestNotFound(t *testing.T) {
	c := dial(t)
	_, err := c.GetServer(context.Background(), "00000000-0000-0000-0000-000000000000")
	e := drover.AsError(err)
	if e == nil || e.Code != codes.NotFound {
		t.Fatalf("error %v, want NOT_FOUND", err)
	}
	if e.Resource == nil || e.Resource.GetResourceName() != "00000000-0000-0000-0000-000000000000" {
		t.Errorf("resource info %v", e.Resource)
	}
}

func TestWatchResumesFromLastRevisionAfterDisconnect(t *testing.T) {
	var opened atomic.Int32
	countWatches := grpc.WithChainStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc,
		cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		opened.Add(1)
		return streamer(ctx, desc, cc, method, opts...)
	})
	c := dial(t, drover.WithDialOptions(countWatches))
	server := create(t, c, "go-resume", mesh.Flavor)
	cut := false
	final, events := watch(t, c, server, func(*droverv1.WatchServerResponse) {
		if !cut { // after the first step, drop the connection under the open stream
			cut = true
			mesh.cut(t)
		}
	})
	if opened.Load() < 2 {
		t.Fatalf("the watch was opened %d time(s): the cut did not break it", opened.Load())
	}
	if final.GetStatus() != droverv1.ServerStatus_SERVER_STATUS_ACTIVE {
		t.Fatalf("final server %v, want ACTIVE", final)
	}
	if got := taskStates(events); !slices.Equal(got, buildSteps) {
		t.Errorf("task states across the reconnect %v, want %v", got, buildSteps)
	}
	// Nothing replayed twice: a resume starts after the last revision seen.
	seen := map[string]bool{}
	for i, ev := range events {
		key := fmt.Sprintf("%d %s", ev.GetServer().GetRevision(), ev.GetNotification().GetEventType())
		if seen[key] {
			t.Errorf("event %d (revision, notification %q) delivered twice", i, key)
		}
		seen[key] = true
		if i > 0 && ev.GetServer().GetRevision() < events[i-1].GetServer().GetRevision() {
			t.Errorf("revision went back after the reconnect: %d then %d", events[i-1].GetServer().GetRevision(),
				ev.GetServer().GetRevision())
		}
	}
	if n := notifications(events); !slices.Contains(n, "instance.create.end") {
		t.Errorf("notifications %v, want instance.create.end", n)
	}
}

func TestExampleCreateAndWatch(t *testing.T) {
	run := func(flavor string) string {
		cmd := exec.Command("go", "run", "../examples/create-and-watch", "-addr", mesh.API, "-token", mesh.token(),
			"-image", mesh.Image, "-flavor", flavor, "-name", "go-example-"+flavor)
		out, err := cmd.CombinedOutput()
		if err != nil && flavor == mesh.Flavor {
			t.Fatalf("example failed: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(mesh.Flavor); !strings.Contains(out, "SPAWNING") || !strings.Contains(out, "final: ACTIVE") ||
		!strings.Contains(out, "instance.create.end") {
		t.Errorf("example output:\n%s", out)
	}
	if out := run(mesh.HugeFlavor); !strings.Contains(out, "no valid host") || !strings.Contains(out, "RamFilter rejected") {
		t.Errorf("example output on NoValidHost:\n%s", out)
	}
}

func TestBadTokenRefused(t *testing.T) {
	if mesh.token() == "" {
		t.Skip("the API does not authenticate yet (no admin.token in the mesh's data dir)")
	}
	c, err := drover.Dial(mesh.API, drover.WithToken("not-a-valid-token"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.GetServer(context.Background(), "00000000-0000-0000-0000-000000000000")
	if e := drover.AsError(err); e == nil || e.Code != codes.Unauthenticated {
		t.Fatalf("error %v, want UNAUTHENTICATED", err)
	}
}
