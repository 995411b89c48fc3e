package engine_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// countThaws counts the thaws a system is sent.
type countThaws struct {
	hal.StorageSystem
	n *atomic.Int32
}

func (c countThaws) Thaw(ctx context.Context, e hal.Epoch, l []hal.LSS) error {
	c.n.Add(1)
	return c.StorageSystem.Thaw(ctx, e, l)
}

// TestReleaseIOIsHonest is issue 12 §2's release-io: with one primary
// unreachable, release-io thaws what it reaches and fails naming the
// other; I/O held stays true; a retry sends the thaw again to the
// primary that did not release, and says released only once it did.
func TestReleaseIOIsHonest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p2 := topology.PrimarySerial(1)
		var thaws atomic.Int32
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), func(serial hal.Serial, sys hal.StorageSystem) hal.StorageSystem {
			if serial == p2 {
				return countThaws{sys, &thaws}
			}
			return sys
		})
		w.define(t, ctx, "a", "cg", 0)
		w.define(t, ctx, "b", "cg", 1)
		must(t, w.mgr.Command(ctx, "a", session.CmdStartH1H2))
		must(t, w.mgr.Command(ctx, "b", session.CmdStartH1H2))
		w.prepared(t, ctx, "a")
		w.prepared(t, ctx, "b")
		must(t, w.mgr.Command(ctx, "a", session.CmdSuspend))
		if s := w.session(t, "a"); s.State != session.Suspended || !s.IOHeld {
			t.Fatalf("after suspend: %s held=%v", s.State, s.IOHeld)
		}
		w.fab.System(p2).SetManagerLink("lockstepd", emu.LinkDown)
		err := w.mgr.Command(ctx, "a", session.CmdReleaseIO)
		if err == nil || !strings.Contains(err.Error(), string(p2)) {
			t.Fatalf("release-io with %s unreachable = %v, want a failure naming it", p2, err)
		}
		if s := w.session(t, "a"); !s.IOHeld {
			t.Fatal("I/O held false while an unreachable primary still holds I/O")
		}
		before := thaws.Load()
		time.Sleep(500 * time.Millisecond)
		if err := w.mgr.Command(ctx, "a", session.CmdReleaseIO); err == nil {
			t.Fatal("a retry said released while the primary still holds I/O")
		}
		if thaws.Load() == before {
			t.Fatal("the retry sent no thaw to the primary that had not released")
		}
		if s := w.session(t, "a"); !s.IOHeld {
			t.Fatal("I/O held false after the failed retry")
		}
		w.fab.System(p2).SetManagerLink("lockstepd", emu.LinkUp)
		must(t, w.mgr.Command(ctx, "a", session.CmdReleaseIO))
		synctest.Wait()
		for _, n := range []string{"a", "b"} {
			if s := w.session(t, n); s.IOHeld {
				t.Errorf("%s: I/O held after every primary released", n)
			}
		}
		ls, err := w.fab.System(p2).Connect("check").QueryLSSs(ctx, 1)
		must(t, err)
		for _, l := range ls {
			if !l.ELBUntil.IsZero() {
				t.Fatalf("%s LSS %s still holds I/O", p2, l.LSS)
			}
		}
	})
}
