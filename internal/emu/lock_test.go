package emu

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// TestFreezesOfManySystemsAtOnce runs what the fabric lets run side by
// side (freezes, thaws, queries and heartbeats of systems that mirror to
// each other both ways, so that their lock sets overlap in both orders)
// against host writes and path faults, which hold the fabric alone. The
// race detector checks the locking; a deadlock ends at the test's
// deadline; once every system froze, no source pair mirrors.
func TestFreezesOfManySystemsAtOnce(t *testing.T) {
	t.Parallel()
	// The real clock: the fake one's mutex, taken by every command, would
	// order the commands for the race detector and hide a missing lock.
	fab := NewFabric(Options{CopyPerBlock: time.Nanosecond})
	serials := []hal.Serial{"LAB.2107-75X0001", "LAB.2107-75X0002", "LAB.2107-75X0003"}
	var lsss []LSSConfig
	for l := range hal.LSS(4) {
		lsss = append(lsss, LSSConfig{LSS: 0x10 + l, Type: hal.FB, Volumes: 2})
	}
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range serials {
		sys, err := fab.AddSystem(SystemConfig{Serial: s, LSSs: lsss})
		if err != nil {
			t.Fatal(err)
		}
		conns[s] = sys.Connect(mgr)
	}
	// Each system mirrors LSS 10 to 11 of the next, and 12 to 13 of the
	// previous.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	outgoing := map[hal.Serial][]hal.LSSPair{}
	for i, s := range serials {
		next, prev := serials[(i+1)%len(serials)], serials[(i+len(serials)-1)%len(serials)]
		for _, lp := range []hal.LSSPair{
			{Source: hal.LSSRef{Serial: s, LSS: 0x10}, Target: hal.LSSRef{Serial: next, LSS: 0x11}},
			{Source: hal.LSSRef{Serial: s, LSS: 0x12}, Target: hal.LSSRef{Serial: prev, LSS: 0x13}},
		} {
			outgoing[s] = append(outgoing[s], lp)
		}
	}
	establish := func(mode hal.CopyMode) {
		for _, s := range serials {
			var paths []hal.PathSpec
			var pairs []hal.PairSpec
			for _, lp := range outgoing[s] {
				paths = append(paths, hal.PathSpec{LSSPair: lp, ConsistencyGroup: true})
				for n := range uint8(2) {
					pairs = append(pairs, hal.PairSpec{VolumePair: hal.VolumePair{
						Source: hal.VolumeRef{Serial: s, Volume: hal.NewVolume(lp.Source.LSS, n)},
						Target: hal.VolumeRef{Serial: lp.Target.Serial, Volume: hal.NewVolume(lp.Target.LSS, n)},
					}, Mode: mode})
				}
			}
			if err := conns[s].Thaw(ctx, 1, []hal.LSS{0x10, 0x12}); err != nil {
				t.Fatal(err)
			}
			if err := conns[s].EstablishPaths(ctx, 1, paths); err != nil {
				t.Fatal(err)
			}
			if err := conns[s].EstablishPairs(ctx, 1, pairs); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range serials { // the copies end
			for {
				ps, err := conns[s].QueryPairs(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(ps, func(p hal.PairStatus) bool { return p.State == hal.CopyPending }) {
					break
				}
				runtime.Gosched()
			}
		}
	}
	for round := range 50 {
		establish(map[bool]hal.CopyMode{true: hal.FullCopy, false: hal.Resync}[round == 0])
		var wg sync.WaitGroup
		for _, s := range serials {
			wg.Go(func() {
				if err := conns[s].Freeze(ctx, 1, outgoing[s]); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if _, err := conns[s].QueryPairs(ctx, 1); err != nil {
					t.Error(err)
				}
			})
		}
		// Host writes to the sources, held by ELB once frozen: only the
		// ones that complete before the freeze of their LSS are waited
		// for (the others end with the context).
		wctx, wcancel := context.WithCancel(ctx)
		for _, s := range serials {
			wg.Go(func() {
				_ = fab.Write(wctx, hal.VolumeRef{Serial: s, Volume: hal.NewVolume(0x10, 0)}, uint32(round), []byte("x"))
			})
		}
		if round%10 == 0 {
			fab.SetPath(outgoing[serials[0]][0], false)
			fab.SetPath(outgoing[serials[0]][0], true)
		}
		for _, s := range serials {
			for _, lp := range outgoing[s] {
				if err := conns[s].Freeze(ctx, 1, []hal.LSSPair{lp}); err != nil {
					t.Fatal(err)
				}
			}
		}
		wcancel()
		wg.Wait()
		for _, s := range serials {
			ps, err := conns[s].QueryPairs(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				// A target is told of a suspension only over a live link:
				// one cut by the path fault keeps what it last heard.
				if p.Source.Serial == s && p.State.Mirroring() {
					t.Fatalf("round %d: %s: pair %s still %s after every system froze", round, s, p.VolumePair, p.State)
				}
			}
		}
	}
}
