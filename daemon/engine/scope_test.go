package engine_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The tests of this file hold issue 12's promise: every pair that may be
// mirroring is inside the freeze core's scope, always.

// issueTimings are the heartbeat timings of the issue's lab: safe for an
// 8 s CG timeout, not for 5 s (margin 4.5 s, H at least 2.5 s).
func issueTimings() freeze.Timings {
	return freeze.Timings{Interval: 500 * time.Millisecond, DetectionWindow: 2 * time.Second,
		RequestTimeout: time.Second, PollInterval: 2 * time.Second, RetryInterval: 250 * time.Millisecond}
}

// cgWorld is newWorld with the first primary's LSSs at an 8 s CG timeout
// and the second's at 5 s, and a core with the heartbeat and timings
// given. store, if not nil, is the sessions' journal (a restart).
type cgWorld struct {
	*world
	store   *session.MemoryStore
	systems map[hal.Serial]hal.StorageSystem
	eng     *engine.Engine
	obs     *recorder
}

func newCGWorld(t *testing.T, ctx context.Context, fab *emu.Fabric, topo *topology.Topology, store *session.MemoryStore,
	heartbeat bool, tm freeze.Timings, wrap func(hal.Serial, hal.StorageSystem) hal.StorageSystem) *cgWorld {
	t.Helper()
	if fab == nil {
		topo = topology.Standard(2, topology.DefaultLSSs())
		for i := range topo.Systems {
			cg := 8 * time.Second
			if topo.Systems[i].Serial == topology.PrimarySerial(1) {
				cg = 5 * time.Second
			}
			lsss := slices.Clone(topo.Systems[i].LSSs)
			for j := range lsss {
				lsss[j].CGTimeout = cg
			}
			topo.Systems[i].LSSs = lsss
		}
		fab = emu.NewFabric(emu.Options{Clock: clock.Real()})
		if err := topo.Build(fab); err != nil {
			t.Fatal(err)
		}
	}
	if store == nil {
		store = session.NewMemoryStore()
	}
	w := &cgWorld{world: &world{fab: fab, topo: topo}, store: store, systems: map[hal.Serial]hal.StorageSystem{},
		obs: &recorder{}}
	for _, s := range fab.Systems() {
		var sys hal.StorageSystem = s.Connect("lockstepd")
		if wrap != nil {
			sys = wrap(s.Serial(), sys)
		}
		w.systems[s.Serial()] = sys
	}
	w.core = freeze.New(freeze.Options{Systems: w.systems, Epoch: 1, Heartbeat: heartbeat, Timings: tm,
		Observer: w.obs})
	w.eng = engine.New(engine.Options{Core: w.core, Systems: w.systems, Epoch: func() hal.Epoch { return 1 },
		RequestTimeout: func() time.Duration { return tm.RequestTimeout }})
	w.obs.next = w.eng
	w.mgr = session.NewManager(store, w.eng, clock.Real())
	w.eng.Attach(w.mgr)
	done := make(chan struct{}, 2)
	go func() { w.core.Run(ctx); done <- struct{}{} }()
	go func() { w.eng.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { <-done; <-done })
	return w
}

// recorder passes the core's reports to the engine and keeps the
// unprotected ones.
type recorder struct {
	next  *engine.Engine
	mu    sync.Mutex
	unpro map[string]string
}

func (r *recorder) Freezing(g, reason string, at time.Time) { r.next.Freezing(g, reason, at) }
func (r *recorder) Settled(g string, st freeze.Settlement)  { r.next.Settled(g, st) }
func (r *recorder) Thawed(g string, at time.Time)           { r.next.Thawed(g, at) }
func (r *recorder) Fenced(e hal.Epoch)                      { r.next.Fenced(e) }
func (r *recorder) Contact(g string, c freeze.Contact)      { r.next.Contact(g, c) }
func (r *recorder) unprotected(g string) string             { r.mu.Lock(); defer r.mu.Unlock(); return r.unpro[g] }
func (r *recorder) Unprotected(g, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.unpro == nil {
		r.unpro = map[string]string{}
	}
	r.unpro[g] = why
	r.next.Unprotected(g, why)
}

// define creates session name in consistency group cg over the pairs
// whose source is on primary i.
func (w *cgWorld) define(t *testing.T, ctx context.Context, name, cg string, i int) {
	t.Helper()
	must(t, w.mgr.Create(ctx, name, session.MetroMirrorSingleDirection, cg, session.HoldIO))
	for _, p := range w.topo.Pairs {
		if p.Source.Serial == topology.PrimarySerial(i) {
			must(t, w.mgr.AddCopySet(ctx, name, session.CopySet{H1: p.Source, H2: p.Target}))
		}
	}
}

func (w *cgWorld) prepared(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	time.Sleep(time.Second) // the copy of empty volumes
	must(t, w.mgr.Command(ctx, name, session.CmdRefresh))
	if s := w.session(t, name); s.State != session.Prepared {
		t.Fatalf("%s after start and refresh: %s (%s)", name, s.State, s.Reason)
	}
}

// changing reports whether the fabric's command log, after seq, holds a
// command that changes serial's state.
func changing(fab *emu.Fabric, serial hal.Serial, after uint64) []string {
	recs, _ := fab.Commands(after)
	var out []string
	for _, r := range recs {
		if r.Serial == serial && !strings.HasPrefix(r.Op, "query") {
			out = append(out, r.Op)
		}
	}
	return out
}

func lastSeq(fab *emu.Fabric) uint64 {
	recs, _ := fab.Commands(0)
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Seq
}

// TestRefusedStartChangesNothing is issue 12 §1's reproduction: with the
// heartbeat on and armed for session alpha's group (8 s CG timeout), a
// start of session delta in the same group on a primary whose CG timeout
// is 5 s (too short for the timings) is refused before any command
// changes storage, and the session stays Defined.
func TestRefusedStartChangesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newCGWorld(t, ctx, nil, nil, nil, true, issueTimings(), nil)
		w.define(t, ctx, "alpha", "cgx", 0)
		must(t, w.mgr.Command(ctx, "alpha", session.CmdStartH1H2))
		w.prepared(t, ctx, "alpha")
		w.define(t, ctx, "delta", "cgx", 1)
		p2 := topology.PrimarySerial(1)
		seq := lastSeq(w.fab)
		err := w.mgr.Command(ctx, "delta", session.CmdStartH1H2)
		if !errors.Is(err, session.ErrVetoed) || !strings.Contains(err.Error(), "unsafe heartbeat timing") {
			t.Fatalf("start of delta = %v, want a refusal for unsafe heartbeat timing", err)
		}
		if ops := changing(w.fab, p2, seq); len(ops) > 0 {
			t.Fatalf("the refused start sent %v to %s", ops, p2)
		}
		if s := w.session(t, "delta"); s.State != session.Defined || s.Error {
			t.Fatalf("delta after the refusal: %s error=%v (%s)", s.State, s.Error, s.Reason)
		}
		st, err := w.core.Status(ctx)
		must(t, err)
		if len(st) != 1 || st[0].Unprotected != "" || !st[0].Systems[0].Armed {
			t.Fatalf("core groups after the refusal: %+v", st)
		}
	})
}

// blockingEstablish holds EstablishPairs on one system until released.
type blockingEstablish struct {
	hal.StorageSystem
	entered chan struct{}
	release chan struct{}
	fail    bool
}

func (b *blockingEstablish) EstablishPairs(ctx context.Context, e hal.Epoch, specs []hal.PairSpec) error {
	close(b.entered)
	<-b.release
	if b.fail {
		return errors.New("establish refused by the test")
	}
	return b.StorageSystem.EstablishPairs(ctx, e, specs)
}

// TestStartCoversPairsWhileEstablishing: the session's pairs are in the
// core's scope before the first pair is established, so a sign of
// trouble while the start runs freezes them; a start that fails midway
// leaves its pairs in the scope, and its session Preparing with the
// error.
func TestStartCoversPairsWhileEstablishing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		block := &blockingEstablish{entered: make(chan struct{}), release: make(chan struct{}), fail: true}
		w := newCGWorld(t, ctx, nil, nil, nil, false, issueTimings(), func(serial hal.Serial, sys hal.StorageSystem) hal.StorageSystem {
			if serial == p2 {
				block.StorageSystem = sys
				return block
			}
			return sys
		})
		must(t, w.mgr.Create(ctx, "db", session.MetroMirrorSingleDirection, "cg1", session.HoldIO))
		for _, p := range w.topo.Pairs {
			must(t, w.mgr.AddCopySet(ctx, "db", session.CopySet{H1: p.Source, H2: p.Target}))
		}
		done := make(chan error, 1)
		go func() { done <- w.mgr.Command(ctx, "db", session.CmdStartH1H2) }()
		<-block.entered
		st, err := w.core.Status(ctx)
		close(block.release)
		must(t, err)
		if len(st) != 1 || len(st[0].Systems) != 2 {
			<-done
			t.Fatalf("core scope while establishing: %+v, want the group of both primaries", st)
		}
		if err := <-done; err == nil {
			t.Fatal("the start succeeded although the second primary refused")
		}
		s := w.session(t, "db")
		if s.State != session.Preparing || !s.Error {
			t.Fatalf("after the failed start: %s error=%v", s.State, s.Error)
		}
		// The pairs it established on the first primary (the engine goes
		// through the primaries in serial order) are covered: a path
		// failure there freezes the group.
		time.Sleep(time.Second)
		w.fab.SetSystemPaths(p1, false)
		time.Sleep(time.Second)
		synctest.Wait()
		if st, _ = w.core.Status(ctx); st[0].Phase == freeze.Mirroring {
			t.Fatalf("path failure on %s, group still %s", p1, st[0].Phase)
		}
		if s := w.session(t, "db"); s.State != session.Suspended && s.State != session.SuspendedPartial {
			t.Fatalf("after the path failure: %s (%s)", s.State, s.Reason)
		}
	})
}

// TestRestartWithUnsafeGroupKeepsItInScope: lockstepd restarts (a new
// core over the same journal) with timings that leave the group of alpha
// and delta without a safe H. The group is in the core all the same:
// not heartbeat-armed, reported unprotected, and frozen on the first
// sign: the sessions show what storage shows, without a refresh.
func TestRestartWithUnsafeGroupKeepsItInScope(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx1, cancel1 := context.WithCancel(context.Background())
		fast := freeze.Timings{Interval: 200 * time.Millisecond, DetectionWindow: 400 * time.Millisecond,
			RequestTimeout: 300 * time.Millisecond, PollInterval: 2 * time.Second, RetryInterval: 250 * time.Millisecond}
		w1 := newCGWorld(t, ctx1, nil, nil, nil, true, fast, nil)
		w1.define(t, ctx1, "alpha", "cgx", 0)
		w1.define(t, ctx1, "delta", "cgx", 1)
		must(t, w1.mgr.Command(ctx1, "alpha", session.CmdStartH1H2))
		must(t, w1.mgr.Command(ctx1, "delta", session.CmdStartH1H2))
		w1.prepared(t, ctx1, "alpha")
		w1.prepared(t, ctx1, "delta")
		cancel1()
		synctest.Wait()

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newCGWorld(t, ctx, w1.fab, w1.topo, w1.store, true, issueTimings(), nil)
		if err := w.eng.SyncGroups(ctx); err != nil {
			t.Fatalf("SyncGroups at start: %v", err)
		}
		time.Sleep(3 * time.Second)
		st, err := w.core.Status(ctx)
		must(t, err)
		if len(st) != 1 || st[0].Phase != freeze.Mirroring || !strings.Contains(st[0].Unprotected, "unsafe heartbeat timing") {
			t.Fatalf("core groups after the restart: %+v", st)
		}
		if why := w.obs.unprotected("cg:cgx"); why == "" {
			t.Fatal("the unprotected group was not reported")
		}
		p2 := topology.PrimarySerial(1)
		// S1 on delta's primary, its event lost: the poll must find it.
		w.fab.System(p2).SetManagerLink("lockstepd", emu.LinkDown)
		w.fab.SetSystemPaths(p2, false)
		w.fab.System(p2).SetManagerLink("lockstepd", emu.LinkUp)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		for _, n := range []string{"alpha", "delta"} {
			if s := w.session(t, n); s.State != session.Suspended {
				t.Errorf("%s: %s (%s), want Suspended without a refresh", n, s.State, s.Reason)
			}
		}
	})
}

// TestUnknownCGTimeoutsAreNotGuessed: lockstepd restarts while a primary
// cannot be asked its CG timeouts. Its group's lowest CG timeout is
// unknown — the primary's may be the lowest of all — so the heartbeat
// does not pretend to protect the group (it is reported unprotected);
// that primary may still hold the heartbeat the previous run armed, and
// would freeze itself with it, so its silence freezes the group as the
// heartbeat rule would. Once the primary answers, the engine asks again:
// the group's H is known and it is protected again.
func TestUnknownCGTimeoutsAreNotGuessed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx1, cancel1 := context.WithCancel(context.Background())
		fast := freeze.Timings{Interval: 200 * time.Millisecond, DetectionWindow: 400 * time.Millisecond,
			RequestTimeout: 300 * time.Millisecond, PollInterval: 2 * time.Second, RetryInterval: 250 * time.Millisecond}
		w1 := newCGWorld(t, ctx1, nil, nil, nil, true, fast, nil)
		w1.define(t, ctx1, "alpha", "cgx", 0)
		w1.define(t, ctx1, "delta", "cgx", 1)
		must(t, w1.mgr.Command(ctx1, "alpha", session.CmdStartH1H2))
		must(t, w1.mgr.Command(ctx1, "delta", session.CmdStartH1H2))
		w1.prepared(t, ctx1, "alpha")
		w1.prepared(t, ctx1, "delta")
		cancel1()
		synctest.Wait()

		p2 := topology.PrimarySerial(1)
		w1.fab.System(p2).SetManagerLink("lockstepd", emu.LinkDown)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newCGWorld(t, ctx, w1.fab, w1.topo, w1.store, true, fast, nil)
		must(t, w.eng.SyncGroups(ctx))
		st, err := w.core.Status(ctx)
		must(t, err)
		if len(st) != 1 || !strings.Contains(st[0].Unprotected, "unknown") || st[0].H != 0 {
			t.Fatalf("group with a CG timeout unknown: %+v", st)
		}
		time.Sleep(time.Second)
		if st, _ = w.core.Status(ctx); st[0].Phase == freeze.Mirroring || !strings.Contains(st[0].Reason, "armed before") {
			t.Fatalf("group after %s stayed silent: %s (%s), want it frozen: %s may hold the previous run's heartbeat",
				p2, st[0].Phase, st[0].Reason, p2)
		}
		w1.fab.System(p2).SetManagerLink("lockstepd", emu.LinkUp)
		w.eng.Reachable(p2) // what the daemon says when its driver connects again
		time.Sleep(time.Second)
		st, _ = w.core.Status(ctx)
		if st[0].Unprotected != "" || st[0].H != 5*time.Second-1200*time.Millisecond {
			t.Fatalf("after the primary answers: unprotected %q, H %v", st[0].Unprotected, st[0].H)
		}
		for _, n := range []string{"alpha", "delta"} {
			if s := w.session(t, n); s.State != session.Suspended && s.State != session.SuspendedPartial {
				t.Fatalf("%s %s (%s), want the freeze recorded", n, s.State, s.Reason)
			}
		}
	})
}
