package hapair

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
)

// The tests of this file stop a real lockstepd (SIGSTOP) while the lab's
// storage systems carry on: the manager's own lateness must not be taken
// for a storage system's silence (issue 12 §2), unless the storage
// systems may have frozen themselves meanwhile.
//
// The lab's CG timeouts are 10 s; the heartbeat runs every 500 ms with a
// detection window of 1 s and a request timeout of 1 s, so H = 10 s − 3.5 s
// = 6.5 s.

// standalone starts server a alone with session "prod" Prepared and the
// heartbeat on and armed.
func standalone(t *testing.T) *Pair {
	t.Helper()
	ctx := context.Background()
	p, err := New(ctx, Options{Bin: bin, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- log of a (tail)\n%s", tail(p.A.Log(), 80))
		}
		p.Close()
	})
	if err := p.A.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.DefineSession(ctx, p.A, true); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, 10*time.Second, func() error {
		hb, err := p.A.Client().HeartbeatShow(ctx)
		if err != nil {
			return err
		}
		for _, g := range hb.Groups {
			for _, s := range g.Systems {
				if !s.Armed {
					return errString("heartbeat not armed on " + string(s.Serial))
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

type errString string

func (e errString) Error() string { return string(e) }

// stop holds the process stopped for d (wall time).
func stop(t *testing.T, n *Node, d time.Duration) {
	t.Helper()
	if err := n.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	if err := n.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// mirroring counts the source pairs the storage systems themselves report
// full-duplex, and all of them.
func mirroring(t *testing.T, p *Pair) (fd, all int) {
	t.Helper()
	for _, sys := range p.Lab.Fabric().Systems() {
		ps, err := sys.Connect("test-check").QueryPairs(context.Background(), hal.Epoch(sys.Epoch()))
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range ps {
			if st.Source.Serial != sys.Serial() {
				continue
			}
			all++
			if st.State == hal.FullDuplex {
				fd++
			}
		}
	}
	return fd, all
}

func freezeEvents(t *testing.T, n *Node) []string {
	t.Helper()
	evs, err := n.Client().Events(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.ID == "LS2101W" { // suspendingEvent: the core began a freeze
			out = append(out, e.Text)
		}
	}
	return out
}

// TestStoppedManagerDoesNotFreezeAHealthyGroup: lockstepd is stopped for
// 3 s — three times the detection window, half of H — while every
// storage system is healthy. When it runs again its heartbeat replies are
// older than the detection window, but the silence was its own: it
// re-checks, the storage systems answer, and nothing is frozen.
func TestStoppedManagerDoesNotFreezeAHealthyGroup(t *testing.T) {
	p := standalone(t)
	ctx := context.Background()
	stop(t, p.A, 3*time.Second)
	time.Sleep(4 * time.Second) // several detection windows after it resumed
	if evs := freezeEvents(t, p.A); len(evs) > 0 {
		t.Fatalf("the manager's own stop froze the group: %q", evs)
	}
	if fd, all := mirroring(t, p); fd != all || all == 0 {
		t.Fatalf("%d of %d pairs full-duplex after the stop", fd, all)
	}
	d, err := p.A.Client().SessionShow(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != api.StatePrepared {
		t.Fatalf("session %s (%s)", d.State, d.Reason)
	}
	if !strings.Contains(p.A.Log(), "the freeze core itself was late") {
		t.Fatal("the core did not notice its own lateness (a stop of 3 s must show)")
	}
	requireArmed(t, p.A.Client())
}

// TestManagerStoppedPastHStillFreezes: stopped for 9 s, past H plus a
// request timeout: the storage systems froze themselves. When lockstepd
// runs again it freezes the group (their last acknowledged heartbeat + H
// has passed, and they say their heartbeat expired), and the session
// shows it without a refresh.
func TestManagerStoppedPastHStillFreezes(t *testing.T) {
	p := standalone(t)
	ctx := context.Background()
	stop(t, p.A, 9*time.Second)
	if fd, _ := mirroring(t, p); fd != 0 {
		t.Fatalf("%d pairs still full-duplex 9 s after the manager stopped: the storage systems did not freeze themselves", fd)
	}
	var d api.SessionDoc
	if err := Eventually(ctx, 10*time.Second, func() error {
		var err error
		if d, err = p.A.Client().SessionShow(ctx, "prod"); err != nil {
			return err
		}
		if d.State != api.StateSuspended {
			return errString("session is " + d.State.Label())
		}
		return nil
	}); err != nil {
		t.Fatalf("after the stop: %v (%s)", err, d.Reason)
	}
	if len(freezeEvents(t, p.A)) == 0 {
		t.Fatal("no freeze event")
	}
}

func requireArmed(t *testing.T, c *client.Client) {
	t.Helper()
	hb, err := c.HeartbeatShow(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range hb.Groups {
		if g.Phase != "mirroring" {
			t.Fatalf("group %s is %s", g.Name, g.Phase)
		}
		for _, s := range g.Systems {
			if !s.Armed || time.Since(s.LastReply) > 2*time.Second {
				t.Fatalf("%s: armed %v, last reply %v ago", s.Serial, s.Armed, time.Since(s.LastReply))
			}
		}
	}
}
