package freeze_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// TestNoHeartbeatGroupGetsNoHeartbeatCommand: a group the heartbeat does
// not cover (HyperSwap) beside one it does, the heartbeat switched on
// and off with both in the core, and the core run long enough to arm,
// refresh and disarm: the storage command log shows heartbeat commands
// to the covered group's system and none to the other's, whose unknown
// CG timeouts neither refuse the switch nor make it "unprotected". A
// suspend event on its pairs still freezes it.
func TestNoHeartbeatGroupGetsNoHeartbeatCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		lps := topo.LSSPairs()
		hs := freeze.Group{Name: "session:hs", Pairs: map[hal.Serial][]hal.LSSPair{p1: lps[p1]}, NoHeartbeat: true} // CG timeouts unknown
		cg := freeze.Group{Name: "cg", Pairs: map[hal.Serial][]hal.LSSPair{p2: lps[p2]}, LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p2: 10 * time.Second}}
		obs := &healthObserver{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Observer: obs})
		if err := core.SetGroups(ctx, []freeze.Group{hs, cg}); err != nil {
			t.Fatal(err)
		}
		start, _ := fab.Commands(0)
		after := uint64(len(start))
		if len(start) > 0 {
			after = start[len(start)-1].Seq
		}
		if err := core.SetHeartbeat(ctx, true); err != nil {
			t.Fatalf("heartbeat on with a HyperSwap group of unknown CG timeouts: %v", err)
		}
		time.Sleep(5 * time.Second) // armed, refreshed every 500 ms
		if why := obs.unprotected("session:hs"); why != "" {
			t.Errorf("the HyperSwap group is reported unprotected: %s", why)
		}
		if err := core.Admit(ctx, hs); err != nil {
			t.Errorf("Admit(HyperSwap group) = %v: the heartbeat has nothing to say about it", err)
		}
		if err := core.SetHeartbeat(ctx, false); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := core.SetHeartbeat(ctx, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		recs, dropped := fab.Commands(after)
		if dropped > 0 {
			t.Fatalf("%d records dropped", dropped)
		}
		beats := map[hal.Serial]map[string]int{}
		for _, r := range recs {
			switch r.Op {
			case emu.OpEnableHeartbeat, emu.OpHeartbeat, emu.OpDisableHeartbeat:
				if beats[r.Serial] == nil {
					beats[r.Serial] = map[string]int{}
				}
				beats[r.Serial][r.Op]++
			}
		}
		if len(beats[p1]) != 0 {
			t.Errorf("heartbeat commands to %s, the HyperSwap group's system: %v", p1, beats[p1])
		}
		for _, op := range []string{emu.OpEnableHeartbeat, emu.OpHeartbeat, emu.OpDisableHeartbeat} {
			if beats[p2][op] == 0 {
				t.Errorf("no %s to %s, the covered group's system (%v): the test proves nothing", op, p2, beats[p2])
			}
		}
		st := groupStatus(t, core, "session:hs")
		if !st.NoHeartbeat || st.Unprotected != "" || st.Phase != freeze.Mirroring {
			t.Errorf("HyperSwap group status: no heartbeat %v, unprotected %q, phase %s", st.NoHeartbeat, st.Unprotected, st.Phase)
		}
		core.Observe(hal.Event{Kind: hal.EventSuspend, Serial: p1, Seq: 1, LSSPair: lps[p1][0], Reason: hal.ReasonPath}, "test")
		time.Sleep(2 * time.Second)
		if st := groupStatus(t, core, "session:hs"); st.Phase == freeze.Mirroring {
			t.Error("a suspend event did not freeze the HyperSwap group")
		}
	})
}
