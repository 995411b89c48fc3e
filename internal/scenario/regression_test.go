package scenario

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// runCustom plays a fault of the test's own against the core.
func runCustom(t *testing.T, opt Options, fault func(l *lab)) *Result {
	t.Helper()
	opt.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := setup(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.play(ctx, opt, func() { fault(l) })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestLateFreezeIsNotRecoverable: S1 without the heartbeat, and the
// silent primary comes back after its CG timeout. The poll finds its
// suspended pairs and the core freezes everything, and every system
// acknowledges — but the held writes were released long before: the
// image is inconsistent and the core must not call it recoverable.
func TestLateFreezeIsNotRecoverable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := runCustom(t, Options{}, func(l *lab) {
			p := topology.PrimarySerial(0)
			l.fab.System(p).SetManagerLink(manager, emu.LinkDown)
			l.fab.SetSystemPaths(p, false)
			go func() {
				time.Sleep(90 * time.Second) // virtual: past the 60 s CG timeout
				l.fab.System(p).SetManagerLink(manager, emu.LinkUp)
				l.logf("FAULT: %s answers the manager again", p)
			}()
		})
		timeline := strings.Join(r.Timeline, "\n")
		if r.Consistent() {
			t.Fatalf("expected the documented inconsistency\n%s", timeline)
		}
		if !r.Froze || r.Recoverable || !strings.Contains(r.Why, "out of contact") {
			t.Fatalf("froze=%v recoverable=%v why=%q\n%s", r.Froze, r.Recoverable, r.Why, timeline)
		}
	})
}

// TestSilenceOfAnUnarmedSystemDoesNotFreeze (seed 121): a primary whose
// manager connection is down before its heartbeat could be armed is not
// protected by the heartbeat; freezing the others on its silence would
// make their CG timeouts release writes while it still mirrors. The core
// must leave the group mirroring — the image stays consistent.
func TestSilenceOfAnUnarmedSystemDoesNotFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		opt := Options{}
		opt.defaults()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// Cut the connection before the core arms anything: build the
		// lab without the heartbeat, cut, then switch it on.
		l, err := setup(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		p := topology.PrimarySerial(3)
		l.fab.System(p).SetManagerLink(manager, emu.LinkDown)
		if err := l.core.SetHeartbeat(ctx, true); err != nil {
			t.Fatal(err)
		}
		r, err := l.play(ctx, opt, func() {})
		if err != nil {
			t.Fatal(err)
		}
		timeline := strings.Join(r.Timeline, "\n")
		if r.Froze || !r.Consistent() || r.Mirroring != 64 {
			t.Fatalf("froze=%v consistent=%v mirroring=%d\n%s", r.Froze, r.Consistent(), r.Mirroring, timeline)
		}
	})
}
