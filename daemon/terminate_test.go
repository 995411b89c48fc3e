package daemon

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
)

// labPairing lists what the lab's storage systems hold, read from the
// emulator itself (not through lockstepd): every pair any system shows
// and every path.
func (r *labRig) labPairing(ctx context.Context) (pairs, paths []string) {
	r.t.Helper()
	for _, sys := range r.lab.Fabric().Systems() {
		conn := sys.Connect("terminate-check")
		ps, err := conn.QueryPairs(ctx, sys.Epoch())
		if err != nil {
			r.t.Fatal(err)
		}
		for _, p := range ps {
			pairs = append(pairs, fmt.Sprintf("%s: %s %s", sys.Serial(), p.VolumePair, p.State))
		}
		pt, err := conn.QueryPaths(ctx, sys.Epoch())
		if err != nil {
			r.t.Fatal(err)
		}
		for _, p := range pt {
			paths = append(paths, fmt.Sprintf("%s: %s", sys.Serial(), p.LSSPair))
		}
	}
	return pairs, paths
}

func mustCommand(t *testing.T, c *client.Client, name string, cmd api.SessionCommand) api.SessionDoc {
	t.Helper()
	d, err := c.SessionCommand(context.Background(), name, cmd)
	if err != nil {
		t.Fatalf("%s %s: %v", cmd, name, err)
	}
	return d
}

// TestTerminateOverTheLab: lockstepd against the lab over the direct
// driver. Session prod (first primary) is frozen holding I/O: terminate
// is refused, naming release-io, and storage keeps its pairs; after
// release-io it terminates. Session test (second primary) terminates
// from Prepared. Then every volume of the lab is simplex and no path is
// left, as the lab's own state shows; a terminate repeated is a success.
func TestTerminateOverTheLab(t *testing.T) {
	r := newLabRig(t, 5*time.Second)
	ctx := context.Background()
	c, _ := r.start(safeFor5s, &countingNotifier{})
	r.defineSession(c, "prod", "", 0)
	r.defineSession(c, "test", "", 1)

	mustCommand(t, c, "prod", api.CmdSuspend)
	_, err := c.SessionCommand(ctx, "prod", api.CmdTerminate)
	if err == nil || !strings.Contains(err.Error(), "I/O is held: release it first (release-io)") {
		t.Fatalf("terminate while I/O held: %v, want a refusal naming release-io", err)
	}
	if pairs, _ := r.labPairing(ctx); len(pairs) == 0 {
		t.Fatal("a refused terminate removed the pairs")
	}
	mustCommand(t, c, "prod", api.CmdReleaseIO)
	if d := mustCommand(t, c, "prod", api.CmdTerminate); d.State != api.StateDefined {
		t.Fatalf("prod after terminate: %s (%s)", d.State, d.Reason)
	}
	if d := mustCommand(t, c, "test", api.CmdTerminate); d.State != api.StateDefined {
		t.Fatalf("test after terminate: %s (%s)", d.State, d.Reason)
	}
	pairs, paths := r.labPairing(ctx)
	if len(pairs) > 0 || len(paths) > 0 {
		t.Fatalf("after terminating every session the lab holds pairs %v and paths %v, want every volume simplex and no path", pairs, paths)
	}
	if d := mustCommand(t, c, "test", api.CmdTerminate); d.State != api.StateDefined {
		t.Fatalf("test after a repeated terminate: %s", d.State)
	}
	// Simplex volumes can be started again from scratch.
	if d := mustCommand(t, c, "test", api.CmdStartH1H2); d.State != api.StatePreparing {
		t.Fatalf("test started again: %s (%s)", d.State, d.Reason)
	}
}
