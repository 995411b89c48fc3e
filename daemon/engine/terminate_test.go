package engine_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// defineVolumes creates session name (single direction, policy p, group
// cg) over the standard pairs of LSS lss on primary i whose volume number
// is in nums.
func (w *cgWorld) defineVolumes(t *testing.T, ctx context.Context, name, cg string, p session.Policy, i int, lss hal.LSS, nums ...uint8) {
	t.Helper()
	must(t, w.mgr.Create(ctx, name, session.MetroMirrorSingleDirection, cg, p))
	for _, vp := range w.topo.Pairs {
		if vp.Source.Serial == topology.PrimarySerial(i) && vp.Source.Volume.LSS() == lss &&
			slices.Contains(nums, vp.Source.Volume.Number()) {
			must(t, w.mgr.AddCopySet(ctx, name, session.CopySet{H1: vp.Source, H2: vp.Target}))
		}
	}
}

// notSimplex lists the volumes of the session's copy sets that storage
// (read directly, both sites) shows in a pair.
func (w *cgWorld) notSimplex(t *testing.T, ctx context.Context, s *session.Session) []string {
	t.Helper()
	var out []string
	for _, cs := range s.CopySets {
		for _, ref := range []hal.VolumeRef{cs.H1, cs.H2} {
			ps, err := w.fab.System(ref.Serial).Connect("check").QueryPairs(ctx, 1)
			must(t, err)
			for _, p := range ps {
				if p.Source == ref || p.Target == ref {
					out = append(out, fmt.Sprintf("%s: %s %s", ref, p.VolumePair, p.State))
				}
			}
		}
	}
	return out
}

// pathsOf lists the LSS pairs of the paths storage holds on serial.
func (w *cgWorld) pathsOf(t *testing.T, ctx context.Context, serial hal.Serial) []hal.LSSPair {
	t.Helper()
	ps, err := w.fab.System(serial).Connect("check").QueryPaths(ctx, 1)
	must(t, err)
	var out []hal.LSSPair
	for _, p := range ps {
		out = append(out, p.LSSPair)
	}
	return out
}

func stdLSSPair(i int, lss hal.LSS) hal.LSSPair {
	return hal.LSSPair{Source: hal.LSSRef{Serial: topology.PrimarySerial(i), LSS: lss},
		Target: hal.LSSRef{Serial: topology.SecondarySerial(i), LSS: lss}}
}

// TestTerminateRemovesPairsAndPaths: terminate leaves every volume of
// the session simplex, on both sites, and the session Defined; it removes
// the paths only it used and keeps the one another session still uses
// (same LSS pair, another consistency group), whose pairs mirror on,
// covered. It freezes nothing. A second terminate (a lost answer) is a
// success; terminating the other session then removes the shared path.
func TestTerminateRemovesPairsAndPaths(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), nil)
		p0 := topology.PrimarySerial(0)
		w.defineVolumes(t, ctx, "beta1", "", session.HoldIO, 0, 0x10, 0, 1)
		w.defineVolumes(t, ctx, "beta2", "", session.HoldIO, 0, 0x10, 2, 3)
		for _, vp := range w.topo.Pairs { // beta1 alone on LSS 11
			if vp.Source.Serial == p0 && vp.Source.Volume.LSS() == 0x11 {
				must(t, w.mgr.AddCopySet(ctx, "beta1", session.CopySet{H1: vp.Source, H2: vp.Target}))
			}
		}
		must(t, w.mgr.Command(ctx, "beta1", session.CmdStartH1H2))
		must(t, w.mgr.Command(ctx, "beta2", session.CmdStartH1H2))
		w.prepared(t, ctx, "beta1")
		w.prepared(t, ctx, "beta2")
		before := lastSeq(w.fab)
		if err := w.mgr.Command(ctx, "beta1", session.CmdTerminate); err != nil {
			t.Fatalf("terminate: %v", err)
		}
		time.Sleep(5 * time.Second) // polls
		b1 := w.session(t, "beta1")
		if b1.State != session.Defined {
			t.Fatalf("beta1 after its terminate: %s (%s)", b1.State, b1.Reason)
		}
		if left := w.notSimplex(t, ctx, b1); len(left) > 0 {
			t.Fatalf("after terminate, volumes still paired: %v", left)
		}
		paths := w.pathsOf(t, ctx, p0)
		if slices.Contains(paths, stdLSSPair(0, 0x11)) || !slices.Contains(paths, stdLSSPair(0, 0x10)) {
			t.Fatalf("paths on %s after terminating beta1: %v, want LSS 10's (beta2 uses it), not LSS 11's", p0, paths)
		}
		if ops := changing(w.fab, p0, before); slices.Contains(ops, "freeze") || slices.Contains(ops, "suspend") || slices.Contains(ops, "thaw") {
			t.Fatalf("terminate sent %v to %s: it removes, nothing else", ops, p0)
		}
		if s := w.session(t, "beta2"); s.State != session.Prepared {
			t.Fatalf("beta2 after terminating beta1: %s (%s)", s.State, s.Reason)
		}
		if g := groupPhase(t, ctx, w.core, "session:beta2"); g.Phase != freeze.Mirroring {
			t.Fatalf("beta2's group after terminating beta1: %s", g.Phase)
		}
		if st, _ := w.core.Status(ctx); slices.ContainsFunc(st, func(g freeze.GroupStatus) bool { return g.Name == "session:beta1" }) {
			t.Fatal("beta1's group is still in the core after its terminate")
		}
		if n := w.uncovered(t, ctx); len(n) > 0 {
			t.Fatalf("mirroring outside any freeze: %v", n)
		}
		rev := b1.Rev
		if err := w.mgr.Command(ctx, "beta1", session.CmdTerminate); err != nil {
			t.Fatalf("terminate repeated: %v", err)
		}
		if s := w.session(t, "beta1"); s.Rev != rev {
			t.Fatalf("a repeated terminate recorded something: rev %d -> %d", rev, s.Rev)
		}
		must(t, w.mgr.Command(ctx, "beta2", session.CmdTerminate))
		if paths := w.pathsOf(t, ctx, p0); slices.Contains(paths, stdLSSPair(0, 0x10)) {
			t.Fatalf("paths on %s after terminating both: %v", p0, paths)
		}
		if left := w.notSimplex(t, ctx, w.session(t, "beta2")); len(left) > 0 {
			t.Fatalf("beta2's volumes after its terminate: %v", left)
		}
	})
}

// TestTerminateRefusedWhileIOHeld: a hold-io session frozen holds I/O;
// terminate is refused, saying to release it first, and sends nothing
// to storage: the pairs stay and the hold stays. After release-io the
// terminate removes them.
func TestTerminateRefusedWhileIOHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), nil)
		w.define(t, ctx, "gamma", "", 0)
		must(t, w.mgr.Command(ctx, "gamma", session.CmdStartH1H2))
		w.prepared(t, ctx, "gamma")
		must(t, w.mgr.Command(ctx, "gamma", session.CmdSuspend))
		p0 := topology.PrimarySerial(0)
		before := lastSeq(w.fab)
		err := w.mgr.Command(ctx, "gamma", session.CmdTerminate)
		if !errors.Is(err, session.ErrNotAllowed) || !strings.Contains(err.Error(), "release-io") {
			t.Fatalf("terminate while I/O held: %v, want not allowed, naming release-io", err)
		}
		if ops := changing(w.fab, p0, before); len(ops) > 0 {
			t.Fatalf("a refused terminate sent %v", ops)
		}
		if !heldOn(t, w.fab, p0) {
			t.Fatal("the hold ended with a refused terminate")
		}
		if left := w.notSimplex(t, ctx, w.session(t, "gamma")); len(left) == 0 {
			t.Fatal("a refused terminate removed the pairs")
		}
		must(t, w.mgr.Command(ctx, "gamma", session.CmdReleaseIO))
		must(t, w.mgr.Command(ctx, "gamma", session.CmdTerminate))
		if left := w.notSimplex(t, ctx, w.session(t, "gamma")); len(left) > 0 {
			t.Fatalf("after release-io and terminate: %v", left)
		}
	})
}

// failingRemove makes RemovePairs fail while set: a storage system that
// stops answering in the middle of a terminate.
type failingRemove struct {
	hal.StorageSystem
	fail *atomic.Bool
}

func (f failingRemove) RemovePairs(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if f.fail.Load() {
		return fmt.Errorf("%w: injected", hal.ErrUnreachable)
	}
	return f.StorageSystem.RemovePairs(ctx, e, p)
}

// TestTerminateFailedMidwayKeepsPairsCovered: a terminate that removed
// the pairs of one primary and failed on the other fails (the session
// keeps its state, with the error), and the pairs it did not remove stay
// in the core's scope: a path failure under them freezes the group. The
// next terminate (after release-io) finishes the work.
func TestTerminateFailedMidwayKeepsPairsCovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var fail atomic.Bool
		p0, p1 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), func(serial hal.Serial, sys hal.StorageSystem) hal.StorageSystem {
			if serial == p1 {
				return failingRemove{StorageSystem: sys, fail: &fail}
			}
			return sys
		})
		w.defineLSS(t, ctx, "delta", "", session.HoldIO, 0x10, 0, 1)
		must(t, w.mgr.Command(ctx, "delta", session.CmdStartH1H2))
		w.prepared(t, ctx, "delta")
		fail.Store(true)
		if err := w.mgr.Command(ctx, "delta", session.CmdTerminate); !errors.Is(err, hal.ErrUnreachable) {
			t.Fatalf("terminate with %s failing: %v", p1, err)
		}
		s := w.session(t, "delta")
		if s.State != session.Prepared || !s.Error {
			t.Fatalf("delta after the failed terminate: %s error=%v (%s)", s.State, s.Error, s.Reason)
		}
		left := w.notSimplex(t, ctx, s)
		if len(left) == 0 || slices.ContainsFunc(left, func(l string) bool { return strings.HasPrefix(l, string(p0)) }) {
			t.Fatalf("after failing on %s: paired %v, want only %s's", p1, left, p1)
		}
		time.Sleep(3 * time.Second) // polls find p0's pairs gone: no sign
		if g := groupPhase(t, ctx, w.core, "session:delta"); g.Phase != freeze.Mirroring {
			t.Fatalf("the failed terminate froze the group: %s (%s)", g.Phase, g.Reason)
		}
		if n := w.uncovered(t, ctx); len(n) > 0 {
			t.Fatalf("after the failed terminate, mirroring outside any freeze: %v", n)
		}
		w.fab.SetSystemPaths(p1, false)
		time.Sleep(2 * time.Second)
		if g := groupPhase(t, ctx, w.core, "session:delta"); g.Phase == freeze.Mirroring {
			t.Fatal("a path failure under the pairs the terminate left froze nothing")
		}
		w.fab.SetSystemPaths(p1, true)
		time.Sleep(2 * time.Second)
		if s := w.session(t, "delta"); s.IOHeld {
			must(t, w.mgr.Command(ctx, "delta", session.CmdReleaseIO))
		}
		fail.Store(false)
		must(t, w.mgr.Command(ctx, "delta", session.CmdTerminate))
		s = w.session(t, "delta")
		if s.State != session.Defined {
			t.Fatalf("after the second terminate: %s (%s)", s.State, s.Reason)
		}
		if left := w.notSimplex(t, ctx, s); len(left) > 0 {
			t.Fatalf("after the second terminate: %v", left)
		}
	})
}

// freezeDuringRemove runs hook once, before the first RemovePairs: a
// fault that makes the core freeze the group while a terminate runs.
type freezeDuringRemove struct {
	hal.StorageSystem
	hook *atomic.Pointer[func()]
}

func (f freezeDuringRemove) RemovePairs(ctx context.Context, e hal.Epoch, p []hal.VolumePair) error {
	if h := f.hook.Swap(nil); h != nil {
		(*h)()
	}
	return f.StorageSystem.RemovePairs(ctx, e, p)
}

// TestTerminateWhileItsGroupFreezes is the admin schedules' seed 13: a
// path failure under the other session of the group froze the group
// while alpha1's terminate removed its pairs. The freeze held alpha1's
// source LSSs too; alpha1 then left the group, so the group's thaw
// (release-io) did not end that hold, and alpha1 said I/O not held while
// storage held its writes until the CG timeout. Now the terminate fails
// (the group froze under it), alpha1 stays in the group, the thaw ends
// every hold, and the next terminate ends alpha1.
func TestTerminateWhileItsGroupFreezes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var hook atomic.Pointer[func()]
		p0, p1 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), func(serial hal.Serial, sys hal.StorageSystem) hal.StorageSystem {
			if serial == p0 {
				return freezeDuringRemove{StorageSystem: sys, hook: &hook}
			}
			return sys
		})
		w.defineLSS(t, ctx, "alpha1", "alpha", session.ReleaseIO, 0x10, 0)
		w.defineLSS(t, ctx, "alpha2", "alpha", session.ReleaseIO, 0x11, 1)
		must(t, w.mgr.Command(ctx, "alpha1", session.CmdStartH1H2))
		must(t, w.mgr.Command(ctx, "alpha2", session.CmdStartH1H2))
		w.prepared(t, ctx, "alpha1")
		w.prepared(t, ctx, "alpha2")
		fault := func() {
			// The second primary answers slowly: the group's freeze is
			// still out there when alpha1 leaves the group, and its thaw
			// (release-io) comes after.
			w.fab.System(p1).SetLatency("lockstepd", 500*time.Millisecond)
			w.fab.SetSystemPaths(p1, false)
			time.Sleep(100 * time.Millisecond) // the suspend event reaches the core, which freezes the group
		}
		hook.Store(&fault)
		err := w.mgr.Command(ctx, "alpha1", session.CmdTerminate)
		if !errors.Is(err, engine.ErrGroupFroze) && !errors.Is(err, session.ErrConflict) {
			t.Fatalf("terminate while the group froze: %v, want it to fail", err)
		}
		time.Sleep(2 * time.Second) // the freeze settles; release-io thaws the group
		w.fab.System(p1).SetLatency("lockstepd", 0)
		if s := w.session(t, "alpha1"); s.State == session.Defined {
			t.Fatalf("alpha1 after a terminate its group's freeze interrupted: %s (%s)", s.State, s.Reason)
		}
		if heldOn(t, w.fab, p0) {
			t.Fatalf("%s still holds writes after the group was released (cg timeout 8 s)", p0)
		}
		if s := w.session(t, "alpha1"); s.IOHeld {
			t.Fatalf("alpha1 says I/O held after the release: %s (%s)", s.State, s.Reason)
		}
		must(t, w.mgr.Command(ctx, "alpha1", session.CmdTerminate))
		s := w.session(t, "alpha1")
		if s.State != session.Defined {
			t.Fatalf("alpha1 after the second terminate: %s (%s)", s.State, s.Reason)
		}
		if left := w.notSimplex(t, ctx, s); len(left) > 0 {
			t.Fatalf("alpha1's volumes: %v", left)
		}
		w.fab.SetSystemPaths(p1, true)
		time.Sleep(2 * time.Second) // the commands sent while p1 was slow end before the bubble does
	})
}
