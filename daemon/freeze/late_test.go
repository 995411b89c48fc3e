package freeze_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// stallingObserver holds the core's loop for stall when group stallOn
// starts freezing: a stand-in for a core starved of CPU or stopped
// (SIGSTOP) while storage carries on.
type stallingObserver struct {
	stallOn string
	stall   time.Duration
	once    sync.Once
	mu      sync.Mutex
	freezes []string
}

func (o *stallingObserver) Freezing(group, reason string, _ time.Time) {
	o.mu.Lock()
	o.freezes = append(o.freezes, group+": "+reason)
	o.mu.Unlock()
	if group == o.stallOn {
		o.once.Do(func() { time.Sleep(o.stall) })
	}
}
func (o *stallingObserver) Settled(string, freeze.Settlement) {}
func (o *stallingObserver) Thawed(string, time.Time)          {}
func (o *stallingObserver) Fenced(hal.Epoch)                  {}

func (o *stallingObserver) frozen(group string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, f := range o.freezes {
		if strings.HasPrefix(f, group+": ") {
			return f
		}
	}
	return ""
}

// twoGroups runs a core with the heartbeat on over two groups: "a" on the
// first primary, "b" on the second.
func twoGroups(t *testing.T, ctx context.Context, obs freeze.Observer) (*freeze.Core, *topology.Topology, func(hal.LSSPair, bool)) {
	t.Helper()
	topo, fab, conns := establishedLab(t, ctx)
	p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
	core := freeze.New(freeze.Options{Epoch: 1, Heartbeat: true, Observer: obs,
		Systems: map[hal.Serial]hal.StorageSystem{p1: conns[p1], p2: conns[p2]}})
	done := make(chan error)
	go func() { done <- core.Run(ctx) }()
	t.Cleanup(func() { <-done })
	lps := topo.LSSPairs()
	if err := core.SetGroups(ctx, []freeze.Group{
		{Name: "a", Pairs: map[hal.Serial][]hal.LSSPair{p1: lps[p1]}, LowestCG: time.Minute},
		{Name: "b", Pairs: map[hal.Serial][]hal.LSSPair{p2: lps[p2]}, LowestCG: time.Minute},
	}); err != nil {
		t.Fatal(err)
	}
	return core, topo, fab.SetPath
}

// TestLateCoreRechecksInsteadOfFreezing: the core's loop is held for 3 s,
// longer than the detection window (2 s) but far shorter than H (53 s),
// while storage is healthy. Its own lateness is no sign of trouble: it
// heartbeats again and judges the answers; the healthy group is not
// frozen.
// It holds as well when the loop is held before its first tick (found by
// the real-process test: a core armed and stopped within an interval).
func TestLateCoreRechecksInsteadOfFreezing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before time.Duration
	}{{"after a few ticks", 3 * time.Second}, {"before the first tick", 100 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) { lateCoreRechecks(t, tc.before) })
	}
}

func lateCoreRechecks(t *testing.T, before time.Duration) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		obs := &stallingObserver{stallOn: "b", stall: 3 * time.Second}
		core, topo, setPath := twoGroups(t, ctx, obs)
		time.Sleep(before) // armed (and refreshed)
		setPath(topo.LSSPairs()[topology.PrimarySerial(1)][0], false)
		time.Sleep(10 * time.Second)
		if f := obs.frozen("a"); f != "" {
			t.Fatalf("the healthy group froze on the core's own lateness: %s", f)
		}
		st, err := core.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Phase != freeze.Mirroring || !st[0].Systems[0].Armed || time.Since(st[0].Systems[0].LastReply) > 2*time.Second {
			t.Fatalf("group a: %s, armed %v, last reply %v ago", st[0].Phase, st[0].Systems[0].Armed,
				time.Since(st[0].Systems[0].LastReply))
		}
	})
}

// TestLateCoreStillFreezesOncePastH: the same, held for 60 s: the last
// acknowledged heartbeat + H (53 s) has passed, so the storage system may
// have frozen itself, and the group must be frozen as when it is silent.
func TestLateCoreStillFreezesOncePastH(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		obs := &stallingObserver{stallOn: "b", stall: 60 * time.Second}
		_, topo, setPath := twoGroups(t, ctx, obs)
		time.Sleep(3 * time.Second)
		setPath(topo.LSSPairs()[topology.PrimarySerial(1)][0], false)
		time.Sleep(63 * time.Second)
		if f := obs.frozen("a"); f == "" {
			t.Fatal("group a not frozen although its storage system may have frozen itself")
		}
	})
}
