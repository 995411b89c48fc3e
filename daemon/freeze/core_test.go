package freeze_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// countingSystem counts the freezes a system receives.
type countingSystem struct {
	hal.StorageSystem
	mu      *sync.Mutex
	freezes map[hal.Serial]int
}

func (c countingSystem) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	c.mu.Lock()
	c.freezes[c.Serial()]++
	c.mu.Unlock()
	return c.StorageSystem.Freeze(ctx, e, p)
}

// blockingObserver wedges the loop on its first Freezing call until
// released: a stand-in for a core stuck in a call that never returns.
type blockingObserver struct {
	release chan struct{}
	once    sync.Once
}

func (o *blockingObserver) Freezing(string, string, time.Time) {
	o.once.Do(func() { <-o.release })
}
func (o *blockingObserver) Settled(string, freeze.Settlement) {}
func (o *blockingObserver) Thawed(string, time.Time)          {}
func (o *blockingObserver) Fenced(hal.Epoch)                  {}

type rig struct {
	fab     *emu.Fabric
	topo    *topology.Topology
	core    *freeze.Core
	mu      sync.Mutex
	freezes map[hal.Serial]int
	cancel  context.CancelFunc
	done    chan error
}

// newRig: 2 primaries and 2 secondaries, one group, the core running.
func newRig(t *testing.T, heartbeat bool, obs freeze.Observer) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{topo: topology.Standard(2, topology.DefaultLSSs()), freezes: map[hal.Serial]int{},
		cancel: cancel, done: make(chan error, 1)}
	r.fab = emu.NewFabric(emu.Options{Clock: clock.Real()})
	if err := r.topo.Build(r.fab); err != nil {
		t.Fatal(err)
	}
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range r.fab.Systems() {
		conns[s.Serial()] = s.Connect("m")
	}
	if err := r.topo.Establish(ctx, clock.Real(), conns, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range r.topo.Sources() {
		sources[serial] = countingSystem{StorageSystem: conns[serial], mu: &r.mu, freezes: r.freezes}
	}
	r.core = freeze.New(freeze.Options{Systems: sources, Epoch: 1, Heartbeat: heartbeat, Observer: obs})
	go func() { r.done <- r.core.Run(ctx) }()
	if err := r.core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: r.topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *rig) phase(t *testing.T) freeze.GroupStatus {
	t.Helper()
	st, err := r.core.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st[0]
}

// TestThawRefusedUntilCertain: a primary the core cannot reach makes a
// thaw unsafe until its heartbeat expiry has certainly happened.
func TestThawRefusedUntilCertain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, nil)
		ctx := context.Background()
		time.Sleep(2 * time.Second) // armed and refreshed
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		r.fab.System(p2).SetManagerLink("m", emu.LinkDown)
		lastSent := time.Now() // no heartbeat reaches p2 after this instant... at the latest the next tick
		err := r.core.Freeze(ctx, "cg", "test: suspend")
		if err == nil || !strings.Contains(err.Error(), string(p2)) {
			t.Fatalf("Freeze = %v, want a partial freeze naming %s", err, p2)
		}
		err = r.core.Thaw(ctx, "cg")
		if !errors.Is(err, freeze.ErrNotSafe) || !strings.Contains(err.Error(), string(p2)) {
			t.Fatalf("Thaw right after the freeze = %v, want ErrNotSafe naming %s", err, p2)
		}
		if r.phase(t).Phase != freeze.Partial {
			t.Fatalf("phase %s, want partial", r.phase(t).Phase)
		}
		// H = 60s - 7s margin; certain at last heartbeat sent + H + 2s.
		time.Sleep(lastSent.Add(53*time.Second+2*time.Second).Sub(time.Now()) + 2*time.Second)
		if got := r.phase(t).Phase; got != freeze.Frozen {
			t.Fatalf("phase %s after SafeAt, want frozen", got)
		}
		if err := r.core.Thaw(ctx, "cg"); err == nil || !strings.Contains(err.Error(), "not reached") {
			t.Fatalf("Thaw after SafeAt = %v, want done but %s not reached", err, p2)
		}
		ls, _ := r.fab.System(p1).Connect("m").QueryLSSs(ctx, 1)
		if !ls[0].ELBUntil.IsZero() {
			t.Fatalf("%s still in ELB after the thaw", p1)
		}
	})
}

// TestEventSourcesAreDeduplicated: the pushed event, the poll and the
// echo of the freeze's own events lead to one freeze per system.
func TestEventSourcesAreDeduplicated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		lp := r.topo.LSSPairs()[topology.PrimarySerial(0)][0]
		r.fab.SetPath(lp, false)
		time.Sleep(30 * time.Second) // several polls and retry ticks
		synctest.Wait()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, serial := range r.topo.Sources() {
			if r.freezes[serial] != 1 {
				t.Errorf("%s received %d freezes, want 1", serial, r.freezes[serial])
			}
		}
		if got := r.phase(t).Phase; got != freeze.Frozen {
			t.Errorf("phase %s, want frozen", got)
		}
	})
}

// TestPollAloneFreezes: with the event lost (the manager's connection
// was down when the pair suspended), the periodic poll finds the
// suspended pair and freezes the group.
func TestPollAloneFreezes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		p1 := topology.PrimarySerial(0)
		r.fab.System(p1).SetManagerLink("m", emu.LinkDown)
		r.fab.SetSystemPaths(p1, false)
		r.fab.System(p1).SetManagerLink("m", emu.LinkUp)
		time.Sleep(time.Second)
		if got := r.phase(t).Phase; got != freeze.Mirroring {
			t.Fatalf("phase %s before any poll, want mirroring (the event was lost)", got)
		}
		time.Sleep(5 * time.Second) // one poll interval
		if st := r.phase(t); st.Phase != freeze.Frozen || !strings.Contains(st.Reason, "poll") {
			t.Fatalf("phase %s (%s), want frozen by the poll", st.Phase, st.Reason)
		}
	})
}

// TestProgressStopsWhenWedged: the watchdog signal moves while the loop
// runs and stops when it is stuck.
func TestProgressStopsWhenWedged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		obs := &blockingObserver{release: make(chan struct{})}
		r := newRig(t, false, obs)
		before := r.core.Progress()
		time.Sleep(5 * time.Second)
		if r.core.Progress() <= before {
			t.Fatal("progress did not move while the loop was idle but healthy")
		}
		r.fab.SetPath(r.topo.LSSPairs()[topology.PrimarySerial(0)][0], false) // Freezing blocks in the observer
		time.Sleep(time.Second)
		wedged := r.core.Progress()
		time.Sleep(10 * time.Second)
		if got := r.core.Progress(); got != wedged {
			t.Fatalf("progress moved from %d to %d while the loop was wedged", wedged, got)
		}
		close(obs.release)
		time.Sleep(2 * time.Second)
		if r.core.Progress() <= wedged {
			t.Fatal("progress did not resume")
		}
	})
}

// TestSystemsAddedAtRunTime: a storage system defined while the core runs
// is subscribed to: its suspend event freezes the group, and it receives
// the freeze.
func TestSystemsAddedAtRunTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		core := freeze.New(freeze.Options{Systems: map[hal.Serial]hal.StorageSystem{p1: conns[p1]}, Epoch: 1})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		if err := core.SetSystems(ctx, map[hal.Serial]hal.StorageSystem{p1: conns[p1], p2: conns[p2]}); err != nil {
			t.Fatal(err)
		}
		fab.SetSystemPaths(p2, false)
		time.Sleep(time.Second)
		st, err := core.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Phase != freeze.Frozen || !strings.Contains(st[0].Reason, string(p2)) {
			t.Fatalf("phase %s (%s), want frozen on %s's event", st[0].Phase, st[0].Reason, p2)
		}
		cancel()
		<-done
	})
}

// slowFreezer answers freezes only after a delay.
type slowFreezer struct {
	hal.StorageSystem
	delay time.Duration
}

func (s slowFreezer) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.StorageSystem.Freeze(ctx, e, p)
}

// lagging delays a system's commands, as a loaded manager or network
// may, once on is set (nil: always): each is carried out its *Before
// after it was sent, and an arm or disarm answered its *After later
// (the tests keep both within the request timeout).
type lagging struct {
	hal.StorageSystem
	on                                             *atomic.Bool
	freezeBefore, thawBefore                       time.Duration
	armBefore, armAfter, disarmBefore, disarmAfter time.Duration
}

func (l lagging) lag(d time.Duration) {
	if l.on == nil || l.on.Load() {
		time.Sleep(d)
	}
}

func (l lagging) Freeze(ctx context.Context, e hal.Epoch, pairs []hal.LSSPair) error {
	l.lag(l.freezeBefore)
	return l.StorageSystem.Freeze(ctx, e, pairs)
}

func (l lagging) Thaw(ctx context.Context, e hal.Epoch, lsss []hal.LSS) error {
	l.lag(l.thawBefore)
	return l.StorageSystem.Thaw(ctx, e, lsss)
}

func (l lagging) EnableHeartbeat(ctx context.Context, e hal.Epoch, hb hal.HeartbeatSpec) error {
	l.lag(l.armBefore)
	err := l.StorageSystem.EnableHeartbeat(ctx, e, hb)
	l.lag(l.armAfter)
	return err
}

func (l lagging) DisableHeartbeat(ctx context.Context, e hal.Epoch, session string) error {
	l.lag(l.disarmBefore)
	err := l.StorageSystem.DisableHeartbeat(ctx, e, session)
	l.lag(l.disarmAfter)
	return err
}

// TestStopFinishesFreezesInFlight: a stop (SIGTERM) that comes while a
// freeze is on its way waits for it: every storage system ends frozen.
func TestStopFinishesFreezesInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		topo, fab, conns := establishedLab(t, ctx)
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		core := freeze.New(freeze.Options{Epoch: 1, Systems: map[hal.Serial]hal.StorageSystem{
			p1: conns[p1], p2: slowFreezer{conns[p2], 1500 * time.Millisecond}}})
		done := make(chan error)
		go func() { done <- core.Run(ctx) }()
		if err := core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
			t.Fatal(err)
		}
		fab.SetSystemPaths(p1, false) // the event starts the freeze; p2 answers in 1.5 s
		time.Sleep(100 * time.Millisecond)
		cancel() // SIGTERM
		<-done
		ps, _ := conns[p2].QueryPairs(context.Background(), 1)
		for _, p := range ps {
			if p.Source.Serial == p2 && p.State != hal.Suspended {
				t.Fatalf("%s: pair %s is %s after the stop: the freeze in flight was abandoned", p2, p.VolumePair, p.State)
			}
		}
	})
}

// TestSetTimingsRearmsWithTheNewH: a reload of the heartbeat timings
// changes H on the storage systems; timings without a safe H are refused.
func TestSetTimingsRearmsWithTheNewH(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, true, nil)
		ctx := context.Background()
		time.Sleep(2 * time.Second)
		st, _ := r.core.Status(ctx)
		if st[0].H != 53*time.Second {
			t.Fatalf("H %v, want 53s", st[0].H)
		}
		faster := freeze.DefaultTimings()
		faster.Interval, faster.DetectionWindow, faster.RequestTimeout = 500*time.Millisecond, time.Second, time.Second
		if err := r.core.SetTimings(ctx, faster); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		st, _ = r.core.Status(ctx)
		if st[0].H != 56500*time.Millisecond || !st[0].Systems[0].Armed || st[0].Phase != freeze.Mirroring {
			t.Fatalf("after the reload: H %v armed %v phase %s", st[0].H, st[0].Systems[0].Armed, st[0].Phase)
		}
		bad := freeze.DefaultTimings()
		bad.Interval, bad.DetectionWindow = 20*time.Second, 40*time.Second
		if err := r.core.SetTimings(ctx, bad); err == nil {
			t.Fatal("timings without a safe H were accepted")
		}
	})
}

// establishedLab is 2 primaries and 2 secondaries with every pair
// full-duplex, and manager "m"'s connections to all of them.
func establishedLab(t *testing.T, ctx context.Context) (*topology.Topology, *emu.Fabric, map[hal.Serial]hal.StorageSystem) {
	t.Helper()
	topo := topology.Standard(2, topology.DefaultLSSs())
	fab := emu.NewFabric(emu.Options{Clock: clock.Real()})
	if err := topo.Build(fab); err != nil {
		t.Fatal(err)
	}
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range fab.Systems() {
		conns[s.Serial()] = s.Connect("m")
	}
	if err := topo.Establish(ctx, clock.Real(), conns, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	return topo, fab, conns
}

// TestEventsDeduplicatedPerSource: an event already seen from one source
// does nothing when that source repeats it (a reconnected stream, a
// retransmitted trap), even after the group is mirroring again. The same
// sequence number from another source is that source's own event: no
// source can make another's event a duplicate (docs/architecture.md, Trust), so it
// freezes, which at worst is a freeze sooner.
func TestEventsDeduplicatedPerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		ctx := context.Background()
		lp := r.topo.LSSPairs()[topology.PrimarySerial(0)][0]
		ev := hal.Event{Kind: hal.EventSuspend, Serial: topology.PrimarySerial(0), Seq: 7, LSSPair: lp, Reason: hal.ReasonPath}
		r.core.Observe(ev, "trap")
		time.Sleep(time.Second)
		if st := r.phase(t); st.Phase == freeze.Mirroring || !strings.Contains(st.Reason, "trap") {
			t.Fatalf("phase %s (%s): the trap did not freeze", st.Phase, st.Reason)
		}
		if err := r.core.Restart(ctx, "cg"); err != nil {
			t.Fatal(err)
		}
		r.core.Observe(ev, "trap") // the same event, again, from the same source
		time.Sleep(time.Second)
		if st := r.phase(t); st.Phase != freeze.Mirroring {
			t.Fatalf("phase %s (%s): a repeated event froze the group again", st.Phase, st.Reason)
		}
		r.core.Observe(ev, "another source")
		time.Sleep(time.Second)
		if st := r.phase(t); st.Phase == freeze.Mirroring {
			t.Fatal("an event from another source was taken for a duplicate")
		}
	})
}

// TestStatusShowsEachSystemsScope: the status names, per system, the LSS
// pairs a freeze of the group covers there: what a test compares with
// the pairs storage shows mirroring.
func TestStatusShowsEachSystemsScope(t *testing.T) {
	r := newRig(t, false, nil)
	want := r.topo.LSSPairs()
	st := r.phase(t)
	if len(st.Systems) != len(want) {
		t.Fatalf("%d systems in the status, want %d", len(st.Systems), len(want))
	}
	for _, m := range st.Systems {
		if !slices.Equal(m.Pairs, want[m.Serial]) {
			t.Errorf("%s: pairs %v, want %v", m.Serial, m.Pairs, want[m.Serial])
		}
	}
}

// TestFreezeEchoesNeverReachTheLoop: the suspend events a freeze raises
// (reason freeze, one per LSS pair on every system frozen) are never a
// sign, so they cost the loop nothing: no hand-off, no deduplication.
// Handed to the loop one batch per system, the 512 echoes of freezing
// 32 systems × 16 LSSs took the CPU that the last systems' freezes
// waited for (issue 20's profile: onEvent was 16 % of the bench's CPU).
// Progress counts the loop's iterations: it must not move for them.
func TestFreezeEchoesNeverReachTheLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, false, nil)
		ctx := context.Background()
		synctest.Wait()
		before := r.core.Progress()
		// Echoes pushed on the core's own event streams: a freeze sent by
		// another manager (what the core's own freeze raises, without
		// the group freezing) reaches every connected manager.
		for _, serial := range r.topo.Sources() {
			if err := r.fab.System(serial).Connect("other").Freeze(ctx, 1, r.topo.LSSPairs()[serial]); err != nil {
				t.Fatal(err)
			}
		}
		// And through Observe (a trap, an HMC's forwarded event).
		for seq := range uint64(1000) {
			r.core.Observe(hal.Event{Kind: hal.EventSuspend, Serial: topology.PrimarySerial(1), Seq: seq + 1,
				LSSPair: r.topo.LSSPairs()[topology.PrimarySerial(1)][0], Reason: hal.ReasonFreeze}, "trap")
		}
		synctest.Wait()
		if got := r.core.Progress() - before; got != 0 {
			t.Errorf("the loop ran %d times for freeze echoes, want 0", got)
		}
		if got := r.phase(t).Phase; got != freeze.Mirroring {
			t.Errorf("phase %s after freeze echoes alone, want mirroring", got)
		}
	})
}
