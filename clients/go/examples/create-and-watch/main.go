// create-and-watch creates one server and prints every state change and notification until it
// settles; when no host can take it, it prints the scheduler's explanation.
//
//	go run ./examples/create-and-watch -addr 127.0.0.1:8774 -image drover-tiny
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/drover/drover/clients/go/drover"
	droverv1 "github.com/drover/drover/clients/go/gen/drover/v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8774", "drover API address")
	token := flag.String("token", os.Getenv("DROVER_TOKEN"), "bearer token (default $DROVER_TOKEN)")
	name := flag.String("name", "demo", "server name")
	flavor := flag.String("flavor", "m1.tiny", "flavor id or name")
	image := flag.String("image", "drover-tiny", "image id or name")
	flag.Parse()
	if err := run(*addr, *token, *name, *flavor, *image); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		if e := drover.AsError(err); e != nil {
			for _, v := range e.FieldViolations {
				fmt.Fprintf(os.Stderr, "  %s: %s\n", v.GetField(), v.GetDescription())
			}
		}
		os.Exit(1)
	}
}

func run(addr, token, name, flavor, image string) error {
	client, err := drover.Dial(addr, drover.WithToken(token))
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	created, err := client.CreateServer(ctx, &droverv1.CreateServerRequest{Name: name, FlavorRef: flavor, ImageRef: image})
	if err != nil {
		return err
	}
	s := created.GetServer()
	fmt.Printf("created %s (revision %d)\n", s.GetId(), s.GetRevision())
	final, err := client.WatchServer(ctx, s.GetId(), s.GetRevision(), func(ev *droverv1.WatchServerResponse) {
		s := ev.GetServer()
		fmt.Printf("revision %d: %s / %s\n", s.GetRevision(), s.GetStatus(), s.GetTaskState())
		if n := ev.GetNotification(); n != nil {
			fmt.Printf("  notification %s %v\n", n.GetEventType(), n.GetPayload())
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("final: %s on %q\n", final.GetStatus().String()[len("SERVER_STATUS_"):], final.GetHost())
	if x := drover.NoValidHost(final); x != nil {
		fmt.Println(drover.ExplainNoValidHost(x))
	}
	return nil
}
