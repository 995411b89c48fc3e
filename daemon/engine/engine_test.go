package engine_test

import (
	"context"
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

type world struct {
	fab  *emu.Fabric
	topo *topology.Topology
	mgr  *session.Manager
	core *freeze.Core
}

func newWorld(t *testing.T, ctx context.Context) *world {
	t.Helper()
	w := &world{topo: topology.Standard(2, topology.DefaultLSSs())}
	w.fab = emu.NewFabric(emu.Options{Clock: clock.Real()})
	if err := w.topo.Build(w.fab); err != nil {
		t.Fatal(err)
	}
	systems := map[hal.Serial]hal.StorageSystem{}
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, s := range w.fab.Systems() {
		systems[s.Serial()] = s.Connect("lockstepd")
	}
	for _, serial := range w.topo.Sources() {
		sources[serial] = systems[serial]
	}
	epoch := func() hal.Epoch { return 1 }
	var eng *engine.Engine
	w.core = freeze.New(freeze.Options{Systems: systems, Epoch: 1, Observer: observerFunc(func() freeze.Observer { return eng })})
	eng = engine.New(engine.Options{Core: w.core, Systems: systems, Epoch: epoch})
	w.mgr = session.NewManager(session.NewMemoryStore(), eng, clock.Real())
	eng.Attach(w.mgr)
	go w.core.Run(ctx)
	go eng.Run(ctx)
	return w
}

// observerFunc lets the core be built before the engine that observes it.
type observerFunc func() freeze.Observer

func (f observerFunc) Freezing(g, r string, at time.Time)     { f().Freezing(g, r, at) }
func (f observerFunc) Settled(g string, st freeze.Settlement) { f().Settled(g, st) }
func (f observerFunc) Thawed(g string, at time.Time)          { f().Thawed(g, at) }
func (f observerFunc) Fenced(e hal.Epoch)                     { f().Fenced(e) }

func (w *world) session(t *testing.T, name string) *session.Session {
	t.Helper()
	s, ok := w.mgr.DB().Session(name)
	if !ok {
		t.Fatalf("no session %s", name)
	}
	return s
}

// startSession defines session "db" over every pair of the layout and
// starts it H1 -> H2.
func (w *world) startSession(t *testing.T, ctx context.Context, typ session.Type, cg string) {
	t.Helper()
	must(t, w.mgr.Create(ctx, "db", typ, cg, session.HoldIO))
	for _, p := range w.topo.Pairs {
		must(t, w.mgr.AddCopySet(ctx, "db", session.CopySet{H1: p.Source, H2: p.Target}))
	}
	must(t, w.mgr.Command(ctx, "db", session.CmdStartH1H2))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSessionLifecycleOnEmulatedStorage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newWorld(t, ctx)
		w.startSession(t, ctx, session.MetroMirrorFailoverFailback, "cg1")
		time.Sleep(time.Second) // the copy of empty volumes
		must(t, w.mgr.Command(ctx, "db", session.CmdRefresh))
		if s := w.session(t, "db"); s.State != session.Prepared {
			t.Fatalf("after start and refresh: %s (%s)", s.State, s.Reason)
		}

		// A path failure: the core freezes on the event, the engine
		// records it: Suspended, recoverable, I/O held.
		w.fab.SetSystemPaths(topology.PrimarySerial(1), false)
		time.Sleep(time.Second)
		synctest.Wait()
		s := w.session(t, "db")
		if s.State != session.Suspended || !s.Recoverable || !s.IOHeld {
			t.Fatalf("after a path failure: %s recoverable=%v held=%v (%s)", s.State, s.Recoverable, s.IOHeld, s.Reason)
		}
		must(t, w.mgr.Command(ctx, "db", session.CmdReleaseIO))
		if s := w.session(t, "db"); s.IOHeld {
			t.Fatal("I/O still held after release-io")
		}

		// Failover to H2, then fail back H2 -> H1.
		must(t, w.mgr.Command(ctx, "db", session.CmdRecover))
		if s := w.session(t, "db"); s.State != session.TargetAvailable {
			t.Fatalf("after recover: %s (%s)", s.State, s.Reason)
		}
		must(t, w.fab.Write(ctx, w.topo.Pairs[0].Target, 0, []byte("written at site 2")))
		w.fab.SetSystemPaths(topology.PrimarySerial(1), true)
		must(t, w.mgr.Command(ctx, "db", session.CmdStartH2H1))
		time.Sleep(time.Second)
		must(t, w.mgr.Command(ctx, "db", session.CmdRefresh))
		if s := w.session(t, "db"); s.State != session.Prepared || s.Direction != session.H2ToH1 {
			t.Fatalf("after start-h2-h1: %s %s (%s)", s.State, s.Direction, s.Reason)
		}
		got, err := w.fab.Read(w.topo.Pairs[0].Source, 0)
		must(t, err)
		if string(got) != "written at site 2" {
			t.Fatalf("H1 after failback holds %q", got)
		}
	})
}

func TestSuspendCommandWithUnreachableSystemIsPartial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newWorld(t, ctx)
		w.startSession(t, ctx, session.MetroMirrorSingleDirection, "")
		time.Sleep(time.Second)
		w.fab.System(topology.PrimarySerial(0)).SetManagerLink("lockstepd", emu.LinkDown)
		err := w.mgr.Command(ctx, "db", session.CmdSuspend)
		if err == nil {
			t.Fatal("suspend with an unreachable primary reported success")
		}
		synctest.Wait()
		if s := w.session(t, "db"); s.State != session.SuspendedPartial || s.Recoverable {
			t.Fatalf("%s recoverable=%v, want Suspended (Partial), not recoverable", s.State, s.Recoverable)
		}
	})
}
