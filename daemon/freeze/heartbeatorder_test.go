package freeze_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The tests of this file hold the order in which a storage system gets
// the commands that set the heartbeat it holds for a group: an arm and a
// disarm sent side by side may be carried out in either order, and the
// storage system then holds what the core does not think it holds.

// lagRig is a core over the lab whose group "cg" is armed, the first
// primary's commands delayed as its lagging says once on is set.
type lagRig struct {
	core  *freeze.Core
	topo  *topology.Topology
	fab   *emu.Fabric
	conns map[hal.Serial]hal.StorageSystem
	on    *atomic.Bool
}

func armedWithLag(t *testing.T, ctx context.Context, lag lagging) lagRig {
	t.Helper()
	topo, fab, conns := establishedLab(t, ctx)
	p1 := topology.PrimarySerial(0)
	lag.StorageSystem, lag.on = conns[p1], new(atomic.Bool)
	conns[p1] = lag
	core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: true})
	if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // armed
	return lagRig{core: core, topo: topo, fab: fab, conns: conns, on: lag.on}
}

// restart starts the frozen group "cg" again, as start-h1-h2 does: back
// to mirroring in the core, then its paths established again (a freeze
// ends them) and its pairs resynchronized.
func restart(t *testing.T, ctx context.Context, core *freeze.Core, topo *topology.Topology, conns map[hal.Serial]hal.StorageSystem) {
	t.Helper()
	if err := core.Restart(ctx, "cg"); err != nil {
		t.Fatal(err)
	}
	for _, serial := range topo.Sources() {
		var paths []hal.PathSpec
		for _, p := range topo.Paths {
			if p.Source.Serial == serial {
				paths = append(paths, p)
			}
		}
		if err := conns[serial].EstablishPaths(ctx, 1, paths); err != nil {
			t.Fatal(err)
		}
		var resync []hal.PairSpec
		for _, p := range volumePairs(topo, serial) {
			resync = append(resync, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
		}
		if err := conns[serial].EstablishPairs(ctx, 1, resync); err != nil {
			t.Fatal(err)
		}
	}
}

// TestArmWaitsForTheDisarmOut: a group frozen with the heartbeat on is
// disarmed on the primary that acknowledged its freeze; started again at
// once, it is armed anew at the next tick, while that disarm, sent first,
// has not reached the primary yet. Sent side by side, the disarm was
// carried out after the arm: the primary held no heartbeat, refused every
// refresh, and the group froze a detection window later on a primary
// that was fine (make test under load, the daemon's story: the nightly
// task's resync froze the session again). Now the arm waits for the
// disarm's answer, and the group mirrors on, armed.
func TestArmWaitsForTheDisarmOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p1 := topology.PrimarySerial(0)
		r := armedWithLag(t, ctx, lagging{disarmBefore: 900 * time.Millisecond})
		core, topo, fab, conns := r.core, r.topo, r.fab, r.conns
		r.on.Store(true)
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		restart(t, ctx, core, topo, conns)
		time.Sleep(5 * time.Second) // more than a detection window
		if g := groupStatus(t, core, "cg"); g.Phase != freeze.Mirroring {
			t.Fatalf("group %s (%s) after a restart while its disarm was out; want it mirroring", g.Phase, g.Reason)
		}
		if hbs := fab.System(p1).Heartbeats(); len(hbs) != 1 || hbs[0].Spec.Session != "cg" || hbs[0].Expired {
			t.Fatalf("%s holds %+v; want the group's heartbeat, armed anew after the disarm", p1, hbs)
		}
	})
}

// TestDisarmWaitsForTheArmOut: a group started again is armed at the
// next tick, and frozen while that arm is out. The freeze's disarm,
// sent beside it, was carried out first but answered last: the arm's
// answer found the disarm out and left it to it, and the disarm's answer
// said disarmed, while the primary held the arm, which nobody refreshed:
// it would freeze itself at its expiry, after a thaw too, unheard. Now
// the disarm waits for the arm's answer, and the primary ends disarmed.
func TestDisarmWaitsForTheArmOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p1 := topology.PrimarySerial(0)
		r := armedWithLag(t, ctx, lagging{armBefore: 900 * time.Millisecond, disarmAfter: 950 * time.Millisecond})
		core, topo, fab, conns := r.core, r.topo, r.fab, r.conns
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // disarmed
		r.on.Store(true)
		restart(t, ctx, core, topo, conns)
		time.Sleep(600 * time.Millisecond) // the arm is out
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Second) // every answer in
		if hbs := fab.System(p1).Heartbeats(); len(hbs) != 0 {
			t.Fatalf("%s holds %+v after the group froze; want it disarmed", p1, hbs)
		}
	})
}
