package freeze_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// TestUnsafeGroupIsInScopeButNotArmed: with the heartbeat on, a group
// whose lowest CG timeout is too short for the heartbeat timings is
// installed anyway: it is not heartbeat-armed, it is reported as
// unprotected, and any sign of trouble freezes it like any other group.
// The safe group beside it is armed as usual.
func TestUnsafeGroupIsInScopeButNotArmed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		obs := &healthObserver{}
		core := freeze.New(freeze.Options{Epoch: 1, Heartbeat: true, Observer: obs,
			Systems: map[hal.Serial]hal.StorageSystem{p1: conns[p1], p2: conns[p2]}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		lps := topo.LSSPairs()
		err := core.SetGroups(ctx, []freeze.Group{
			{Name: "safe", Pairs: map[hal.Serial][]hal.LSSPair{p1: lps[p1]}, LowestCG: time.Minute},
			{Name: "unsafe", Pairs: map[hal.Serial][]hal.LSSPair{p2: lps[p2]}, LowestCG: 5 * time.Second},
		})
		if err != nil {
			t.Fatalf("SetGroups refused: %v (every group must be in scope)", err)
		}
		time.Sleep(3 * time.Second)
		st, err := core.Status(ctx)
		if err != nil || len(st) != 2 {
			t.Fatalf("status %v, %v: want both groups", st, err)
		}
		safe, unsafe := st[0], st[1]
		if !safe.Systems[0].Armed || safe.Unprotected != "" {
			t.Fatalf("safe group: armed %v, unprotected %q", safe.Systems[0].Armed, safe.Unprotected)
		}
		if unsafe.Systems[0].Armed || !strings.Contains(unsafe.Unprotected, "unsafe heartbeat timing") {
			t.Fatalf("unsafe group: armed %v, unprotected %q", unsafe.Systems[0].Armed, unsafe.Unprotected)
		}
		if why := obs.unprotected("unsafe"); !strings.Contains(why, "5s") {
			t.Fatalf("unprotected report %q, want the reason", why)
		}
		if unsafe.Phase != freeze.Mirroring {
			t.Fatalf("unsafe group %s: its silence (not armed) must not freeze it", unsafe.Phase)
		}
		fab.SetPath(lps[p2][0], false)
		time.Sleep(time.Second)
		if st, _ = core.Status(ctx); st[1].Phase != freeze.Frozen || st[0].Phase != freeze.Mirroring {
			t.Fatalf("after a path failure in the unsafe group: safe %s, unsafe %s; want mirroring, frozen",
				st[0].Phase, st[1].Phase)
		}
	})
}

// healthObserver records the core's health reports.
type healthObserver struct {
	mu       sync.Mutex
	unprot   map[string]string
	contacts map[string][]freeze.Contact
	freezes  []string
}

func (o *healthObserver) Freezing(group, reason string, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.freezes = append(o.freezes, group+": "+reason)
}
func (o *healthObserver) Settled(string, freeze.Settlement) {}
func (o *healthObserver) Thawed(string, time.Time)          {}
func (o *healthObserver) Fenced(hal.Epoch)                  {}
func (o *healthObserver) Unprotected(group, why string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.unprot == nil {
		o.unprot = map[string]string{}
	}
	o.unprot[group] = why
}
func (o *healthObserver) Contact(group string, c freeze.Contact) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.contacts == nil {
		o.contacts = map[string][]freeze.Contact{}
	}
	o.contacts[group] = append(o.contacts[group], c)
}
func (o *healthObserver) unprotected(group string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.unprot[group]
}
func (o *healthObserver) contactReports(group string) []freeze.Contact {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.contacts[group])
}

// TestContactLossIsReported: without the heartbeat, a primary that stops
// answering (S1: its paths and its connection to the manager fail at
// once) is reported out of contact at the first failed poll, then out of
// contact longer than the lowest CG timeout; contact regained is reported
// too. Nothing is frozen on silence alone: the manager cannot know.
func TestContactLossIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		obs := &healthObserver{}
		core := freeze.New(freeze.Options{Epoch: 1, Observer: obs,
			Systems: map[hal.Serial]hal.StorageSystem{p1: conns[p1], p2: conns[p2]}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 20 * time.Second}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // a poll that answers
		lostAt := time.Now()
		fab.System(p1).SetManagerLink("m", emu.LinkDown)
		time.Sleep(6 * time.Second) // the next poll fails
		rs := obs.contactReports("cg")
		if len(rs) != 1 || len(rs[0].Lost) != 1 || rs[0].Lost[0].Serial != p1 || rs[0].Severe() {
			t.Fatalf("reports %+v, want %s lost, not yet severe", rs, p1)
		}
		time.Sleep(time.Until(lostAt.Add(20*time.Second)) + 2*time.Second)
		rs = obs.contactReports("cg")
		if len(rs) != 2 || !rs[1].Severe() || !strings.Contains(rs[1].String(), "lowest CG timeout") {
			t.Fatalf("reports %+v, want a severe one once out of contact for the lowest CG timeout", rs)
		}
		fab.System(p1).SetManagerLink("m", emu.LinkUp)
		time.Sleep(6 * time.Second)
		rs = obs.contactReports("cg")
		if len(rs) != 3 || len(rs[2].Lost) != 0 {
			t.Fatalf("reports %+v, want contact regained", rs)
		}
		if st, _ := core.Status(ctx); st[0].Phase != freeze.Mirroring {
			t.Fatalf("phase %s: silence alone froze without the heartbeat", st[0].Phase)
		}
	})
}
