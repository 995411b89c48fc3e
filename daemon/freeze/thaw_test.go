package freeze_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// thawCounter counts the thaws a system receives.
type thawCounter struct {
	hal.StorageSystem
	n *atomic.Int32
}

func (c thawCounter) Thaw(ctx context.Context, e hal.Epoch, l []hal.LSS) error {
	c.n.Add(1)
	return c.StorageSystem.Thaw(ctx, e, l)
}

// thawObserver records the core's Thawed reports.
type thawObserver struct {
	mu     sync.Mutex
	thawed []time.Time
}

func (o *thawObserver) Freezing(string, string, time.Time) {}
func (o *thawObserver) Settled(string, freeze.Settlement)  {}
func (o *thawObserver) Thawed(_ string, at time.Time) {
	o.mu.Lock()
	o.thawed = append(o.thawed, at)
	o.mu.Unlock()
}
func (o *thawObserver) Fenced(hal.Epoch) {}
func (o *thawObserver) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.thawed)
}

func held(t *testing.T, fab *emu.Fabric, serial hal.Serial) bool {
	t.Helper()
	ls, err := fab.System(serial).Connect("check").QueryLSSs(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		if !l.ELBUntil.IsZero() {
			return true
		}
	}
	return false
}

// TestThawIsDoneOnlyWhenEverySystemReleased: release-io with a system
// unreachable thaws what it reaches and says which system still holds
// I/O; a retry sends the thaw again to that system (and only reports
// success once it released, or its hold certainly ended); the core
// reports the group thawed only then.
func TestThawIsDoneOnlyWhenEverySystemReleased(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		var thaws atomic.Int32
		obs := &thawObserver{}
		core := freeze.New(freeze.Options{Epoch: 1, Observer: obs, Systems: map[hal.Serial]hal.StorageSystem{
			p1: conns[p1], p2: thawCounter{conns[p2], &thaws}}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		fab.System(p2).SetManagerLink("m", emu.LinkDown)
		if err := core.Thaw(ctx, "cg"); err == nil {
			t.Fatal("thaw with an unreachable system reported success")
		}
		if held(t, fab, p1) || !held(t, fab, p2) {
			t.Fatalf("after the first thaw: %s held %v, %s held %v; want only %s", p1, held(t, fab, p1), p2, held(t, fab, p2), p2)
		}
		if obs.count() != 0 {
			t.Fatal("the core reported the group thawed while a system still holds I/O")
		}
		first := thaws.Load()
		time.Sleep(500 * time.Millisecond)
		if err := core.Thaw(ctx, "cg"); err == nil {
			t.Fatal("a retry reported success while the system still holds I/O")
		}
		if thaws.Load() == first {
			t.Fatal("the retry sent no thaw to the system that had not released")
		}
		fab.System(p2).SetManagerLink("m", emu.LinkUp)
		if err := core.Thaw(ctx, "cg"); err != nil {
			t.Fatalf("thaw once reachable: %v", err)
		}
		if held(t, fab, p2) {
			t.Fatalf("%s still holds I/O after a successful thaw", p2)
		}
		time.Sleep(time.Second)
		if obs.count() != 1 {
			t.Fatalf("%d thawed reports, want 1", obs.count())
		}
	})
}

// TestThawIsDoneOnceTheHoldCertainlyEnded: the unreachable system is
// never reached, but its hold certainly ends a CG timeout after the last
// freeze could reach it; from then on I/O is not held anywhere.
func TestThawIsDoneOnceTheHoldCertainlyEnded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		obs := &thawObserver{}
		core := freeze.New(freeze.Options{Epoch: 1, Observer: obs, Systems: map[hal.Serial]hal.StorageSystem{
			p1: conns[p1], p2: conns[p2]}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		g := freeze.Group{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute,
			HighestCG: map[hal.Serial]time.Duration{p1: 2 * time.Minute, p2: 2 * time.Minute}}
		if err := core.SetGroups(ctx, []freeze.Group{g}); err != nil {
			t.Fatal(err)
		}
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		frozeAt := time.Now()
		fab.System(p2).SetManagerLink("m", emu.LinkDown)
		if err := core.Thaw(ctx, "cg"); err == nil {
			t.Fatal("thaw with an unreachable system reported success")
		}
		time.Sleep(time.Until(frozeAt.Add(2*time.Minute)) - time.Second)
		if obs.count() != 0 {
			t.Fatal("thawed reported before the hold of the unreachable system certainly ended")
		}
		time.Sleep(5 * time.Second) // freeze sent + request timeout + 2 min, and a tick
		if obs.count() != 1 {
			t.Fatalf("%d thawed reports once the hold certainly ended, want 1", obs.count())
		}
		if err := core.Thaw(ctx, "cg"); err != nil {
			t.Fatalf("thaw after the hold ended: %v", err)
		}
	})
}

// slowObserver takes a moment of the bubble's clock over each settlement
// and thaw it hears, and counts them.
type slowObserver struct {
	mu              sync.Mutex
	settled, thawed int
}

func (o *slowObserver) Freezing(string, string, time.Time) {}
func (o *slowObserver) Settled(string, freeze.Settlement) {
	time.Sleep(time.Millisecond)
	o.mu.Lock()
	o.settled++
	o.mu.Unlock()
}
func (o *slowObserver) Thawed(string, time.Time) {
	time.Sleep(time.Millisecond)
	o.mu.Lock()
	o.thawed++
	o.mu.Unlock()
}
func (o *slowObserver) Fenced(hal.Epoch) {}
func (o *slowObserver) counts() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.settled, o.thawed
}

// TestObserverHearsBeforeTheCaller: Freeze answers after the observer
// heard the settlement, and Thaw after it heard the thaw. The engine
// tells a command's own freeze (or thaw) from news by what the command
// is running when the report comes: answered first, the command could
// end before the report of its own action came, which was then recorded
// as news and the command's outcome dropped as a conflict.
func TestObserverHearsBeforeTheCaller(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, _, conns := establishedLab(t, ctx)
		obs := &slowObserver{}
		core := freeze.New(freeze.Options{Epoch: 1, Observer: obs, Systems: conns})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		if err := core.Freeze(ctx, "cg", "test"); err != nil {
			t.Fatal(err)
		}
		if s, _ := obs.counts(); s != 1 {
			t.Fatalf("Freeze answered with %d settlements heard, want 1", s)
		}
		if err := core.Thaw(ctx, "cg"); err != nil {
			t.Fatal(err)
		}
		if _, th := obs.counts(); th != 1 {
			t.Fatalf("Thaw answered with %d thaws heard, want 1", th)
		}
	})
}

// TestThawWaitsForTheFreezeOut: a primary that never acknowledged the
// group's freeze is certainly frozen once its heartbeat expired, and the
// group may be thawed; but a retry of its freeze is out when the thaw
// is sent. Sent side by side, the thaw was carried out first and the
// freeze after it: the primary held its writes again, for its CG
// timeout, while the core said the group thawed and no system held
// them. Now the thaw waits for the freeze's answer, and follows it.
func TestThawWaitsForTheFreezeOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		on := new(atomic.Bool)
		conns[p2] = lagging{StorageSystem: conns[p2], on: on, freezeBefore: 900 * time.Millisecond}
		obs := &thawObserver{}
		core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: true, Observer: obs})
		g := freeze.Group{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 10 * time.Second}}
		if err := core.SetGroups(ctx, []freeze.Group{g}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // armed
		fab.System(p2).SetManagerLink("m", emu.LinkDown)
		if err := core.Freeze(ctx, "cg", "test"); err == nil {
			t.Fatalf("freeze with %s unreachable answered certain", p2)
		}
		time.Sleep(8 * time.Second) // its heartbeat certainly expired
		fab.System(p2).SetManagerLink("m", emu.LinkUp)
		on.Store(true)
		time.Sleep(300 * time.Millisecond) // a retry of its freeze is out
		if err := core.Thaw(ctx, "cg"); err != nil {
			t.Fatalf("thaw: %v", err)
		}
		time.Sleep(2 * time.Second) // every answer in
		if held(t, fab, p2) && obs.count() != 0 {
			t.Fatalf("%s holds I/O while the core reported the group thawed", p2)
		}
		if held(t, fab, p1) || held(t, fab, p2) {
			t.Fatalf("held after the thaw: %s %v, %s %v; want neither", p1, held(t, fab, p1), p2, held(t, fab, p2))
		}
	})
}

// TestStopFinishesThawsInFlight: a release-io group is frozen, and its
// thaw is out when lockstepd stops. The stop waited for freezes in
// flight only: the daemon then closed its storage connections under the
// thaw, and the system held its writes for its CG timeout while the
// session, recorded released once the freeze was certain, said they were
// not held (admin schedules under load, seed 303). Run now returns once
// the thaw was answered.
func TestStopFinishesThawsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		core := freeze.New(freeze.Options{Epoch: 1, Timings: phaseTimings, Systems: map[hal.Serial]hal.StorageSystem{
			p1: conns[p1], p2: lagging{StorageSystem: conns[p2], thawBefore: 500 * time.Millisecond}}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute, ReleaseIO: true}})
		if err != nil {
			t.Fatal(err)
		}
		if err := core.Freeze(ctx, "cg", "suspend"); err != nil {
			t.Fatal(err)
		}
		cancel() // SIGTERM, the thaw out
		<-done
		if held(t, fab, p2) {
			t.Fatalf("%s holds writes after the stop: the thaw in flight was abandoned", p2)
		}
	})
}

// TestThawOfAThawedGroupIsSentAgainAtStart: a release-io session is
// recorded released once its freeze is certain, while its thaw may still
// be out; a manager killed then left the storage holding writes for its
// CG timeout, and the manager started next took the group for thawed and
// never thawed it (it said released while application I/O stood still).
// The thaw is now sent again at start, quietly (the group was reported
// thawed already), and never to an LSS a frozen group holds, whichever
// group is installed first. With the heartbeat on, the disarm after each
// probe's answer already sent it (the heartbeat armed before may have
// expired): that case is here so that it stays so.
func TestThawOfAThawedGroupIsSentAgainAtStart(t *testing.T) {
	for _, heartbeat := range []bool{false, true} {
		name := "heartbeat off"
		if heartbeat {
			name = "heartbeat on"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				topo, fab, conns := establishedLab(t, ctx)
				p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
				lps := topo.LSSPairs()
				for serial, l := range lps { // the freeze of the manager killed with its thaw out
					if err := conns[serial].Freeze(ctx, 1, l); err != nil {
						t.Fatal(err)
					}
				}
				obs := &freezeCounter{}
				core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: heartbeat, Observer: obs})
				err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: lps, LowestCG: 10 * time.Second,
					HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 10 * time.Second},
					Initial:   freeze.Thawed}})
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				if held(t, fab, p1) || held(t, fab, p2) {
					t.Fatalf("the storage holds writes (%v/%v) while the restarted manager says the group thawed",
						held(t, fab, p1), held(t, fab, p2))
				}
				st := groupStatus(t, core, "cg")
				for _, m := range st.Systems {
					if !m.Released {
						t.Errorf("%s not released: %+v", m.Serial, m)
					}
				}
				if f, th := obs.counts(); st.Phase != freeze.Thawed || f != 0 || th != 0 {
					t.Fatalf("%s, %d freezing and %d thawed reported; want thawed, quietly", st.Phase, f, th)
				}
			})
		})
	}
	t.Run("an LSS a frozen group holds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			topo, fab, conns := establishedLab(t, ctx)
			p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
			lps := topo.LSSPairs()
			shared := lps[p1][0]
			for serial, l := range map[hal.Serial][]hal.LSSPair{p1: {shared}, p2: lps[p2]} {
				if err := conns[serial].Freeze(ctx, 1, l); err != nil {
					t.Fatal(err)
				}
			}
			core := runCore(t, ctx, freeze.Options{Systems: conns})
			// The thawed group first: it is sent its thaw again before the
			// frozen one would be installed, were they not all installed
			// first.
			err := core.SetGroups(ctx, []freeze.Group{
				{Name: "a", Pairs: map[hal.Serial][]hal.LSSPair{p1: {shared}}, LowestCG: time.Minute,
					HighestCG: map[hal.Serial]time.Duration{p1: time.Minute}, Initial: freeze.Thawed},
				{Name: "b", Pairs: map[hal.Serial][]hal.LSSPair{p1: {shared}, p2: lps[p2]}, LowestCG: time.Minute,
					HighestCG: map[hal.Serial]time.Duration{p1: time.Minute, p2: time.Minute}, Initial: freeze.Frozen},
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if !held(t, fab, p1) {
				t.Fatal("the thaw sent again at start ended the hold of a frozen group")
			}
			if err := core.Thaw(ctx, "b"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if held(t, fab, p1) || held(t, fab, p2) {
				t.Fatal("held once both groups are thawed")
			}
		})
	})
	// A mirroring group shares an LSS: its system may have suspended on
	// its own while no manager was there, and hold writes until the
	// core, which has not polled yet, freezes the group; a thaw then
	// would let them go on unmirrored. The thaw waits for the first poll:
	// if the group's pairs are suspended, the poll freezes it and the
	// thaw keeps off the LSS; if they mirror, the thaw follows.
	for _, tc := range []struct {
		heartbeat, mirrors bool
	}{{false, false}, {false, true}, {true, false}, {true, true}} {
		name := fmt.Sprintf("an LSS a mirroring group has/heartbeat=%v/its pairs mirror=%v", tc.heartbeat, tc.mirrors)
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				core, fab := sharedLSSRestart(t, ctx, tc.heartbeat, tc.mirrors, freeze.Thawed)
				p1 := topology.PrimarySerial(0)
				time.Sleep(phaseTimings.PollInterval / 2) // the probes, disarms answered; no poll yet
				if !held(t, fab, p1) {
					t.Fatal("the thaw of a thawed group ended, before the first poll, the hold of an LSS a mirroring group shares")
				}
				time.Sleep(phaseTimings.PollInterval)
				b := groupStatus(t, core, "b")
				switch {
				case !tc.mirrors && (b.Phase == freeze.Mirroring || !held(t, fab, p1)):
					t.Fatalf("after the poll: b %s (%s), held %v; want b frozen and the LSS held", b.Phase, b.Reason, held(t, fab, p1))
				case tc.mirrors && (b.Phase != freeze.Mirroring || held(t, fab, p1)):
					t.Fatalf("after the poll: b %s (%s), held %v; want b mirroring and the thaw sent", b.Phase, b.Reason, held(t, fab, p1))
				}
			})
		})
	}
}

// sharedLSSRestart is a manager starting over two groups that share the
// first primary's first LSS pair: a in phase initial, b mirroring (with
// the second primary's pairs too). Before it, that LSS was frozen and
// holds writes (a's freeze, or b's system suspending on its own); with
// mirrors, b's pairs there mirror again while the LSS still holds.
func sharedLSSRestart(t *testing.T, ctx context.Context, heartbeat, mirrors bool, initial freeze.Phase) (*freeze.Core, *emu.Fabric) {
	t.Helper()
	topo, fab, conns := establishedLab(t, ctx)
	p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
	lps := topo.LSSPairs()
	shared := lps[p1][0]
	if err := conns[p1].Freeze(ctx, 1, []hal.LSSPair{shared}); err != nil {
		t.Fatal(err)
	}
	if mirrors {
		reestablish(t, ctx, topo, conns[p1], shared)
	}
	core := runCore(t, ctx, freeze.Options{Systems: conns, Heartbeat: heartbeat})
	err := core.SetGroups(ctx, []freeze.Group{
		{Name: "a", Pairs: map[hal.Serial][]hal.LSSPair{p1: {shared}}, LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second}, Initial: initial},
		{Name: "b", Pairs: map[hal.Serial][]hal.LSSPair{p1: {shared}, p2: lps[p2]}, LowestCG: 10 * time.Second,
			HighestCG: map[hal.Serial]time.Duration{p1: 10 * time.Second, p2: 10 * time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return core, fab
}

// reestablish restores the paths and pairs of one LSS pair of sys (after
// a freeze removed the paths and suspended the pairs) and waits until
// they mirror again.
func reestablish(t *testing.T, ctx context.Context, topo *topology.Topology, sys hal.StorageSystem, lp hal.LSSPair) {
	t.Helper()
	var paths []hal.PathSpec
	for _, p := range topo.Paths {
		if p.LSSPair == lp {
			paths = append(paths, p)
		}
	}
	var pairs []hal.PairSpec
	for _, p := range topo.Pairs {
		if p.LSSPair() == lp {
			pairs = append(pairs, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
		}
	}
	if err := sys.EstablishPaths(ctx, 1, paths); err != nil {
		t.Fatal(err)
	}
	if err := sys.EstablishPairs(ctx, 1, pairs); err != nil {
		t.Fatal(err)
	}
	for {
		ps, err := sys.QueryPairs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(ps, func(p hal.PairStatus) bool { return p.LSSPair() == lp && p.State != hal.FullDuplex }) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReleaseIOWaitsForTheFirstPollOfASharedLSS: an admin's release-io
// in the moments after a start is refused, saying why, while a
// mirroring group shares an LSS on a system the core has not polled: as
// for the core's own thaws, that group's system may hold writes it
// suspended on its own while no manager was there. After the poll it
// goes through.
func TestReleaseIOWaitsForTheFirstPollOfASharedLSS(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		core, fab := sharedLSSRestart(t, ctx, false, true, freeze.Frozen)
		p1 := topology.PrimarySerial(0)
		if err := core.Thaw(ctx, "a"); !errors.Is(err, freeze.ErrNotSafe) || !strings.Contains(err.Error(), "not polled") {
			t.Fatalf("release-io before the first poll = %v, want refused until the poll", err)
		}
		if !held(t, fab, p1) {
			t.Fatal("release-io before the first poll ended the hold of an LSS a mirroring group shares")
		}
		time.Sleep(phaseTimings.PollInterval + time.Second)
		if err := core.Thaw(ctx, "a"); err != nil {
			t.Fatalf("release-io after the poll: %v", err)
		}
		if held(t, fab, p1) {
			t.Fatal("held after release-io")
		}
	})
}
