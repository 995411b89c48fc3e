package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
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

// fakeSwapHost is a z/OS host's HyperSwap side over the emulated
// storage: it holds the loaded sessions, and a swap (planned, or
// unplanned by the test) freezes the session's LSS pairs on the source
// systems and recovers the target volumes, as a host does through its
// channels, then reports it.
type fakeSwapHost struct {
	name    string
	systems map[hal.Serial]hal.StorageSystem

	mu      sync.Mutex
	held    map[string]hal.SwapState
	calls   []string
	events  []chan hal.SwapEvent
	swapErr error
}

var _ hal.SwapHost = (*fakeSwapHost)(nil)

func newFakeSwapHost(name string, systems map[hal.Serial]hal.StorageSystem) *fakeSwapHost {
	return &fakeSwapHost{name: name, systems: systems, held: map[string]hal.SwapState{}}
}

func (h *fakeSwapHost) call(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *fakeSwapHost) Calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

func (h *fakeSwapHost) LoadSwap(ctx context.Context, epoch hal.Epoch, name string, pairs []hal.VolumePair) error {
	h.call(fmt.Sprintf("load %s %s", name, pairs[0]))
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held[name] = hal.SwapState{Session: name, Pairs: slices.Clone(pairs), Ready: true}
	return nil
}

func (h *fakeSwapHost) UnloadSwap(ctx context.Context, epoch hal.Epoch, name string) error {
	h.call("unload " + name)
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.held, name)
	return nil
}

func (h *fakeSwapHost) Swap(ctx context.Context, epoch hal.Epoch, name string) error {
	h.call("swap " + name)
	h.mu.Lock()
	err := h.swapErr
	h.mu.Unlock()
	if err != nil {
		return err
	}
	return h.swap(ctx, epoch, name, true, "hyperswap command")
}

// swap freezes the session's LSS pairs (the host's own freeze), recovers
// its target volumes and reports it.
func (h *fakeSwapHost) swap(ctx context.Context, epoch hal.Epoch, name string, planned bool, trigger string) error {
	h.mu.Lock()
	st, ok := h.held[name]
	h.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: session %s not loaded", hal.ErrRefused, name)
	}
	if !st.Swapped {
		lsss := map[hal.Serial][]hal.LSSPair{}
		targets := map[hal.Serial][]hal.VolumePair{}
		for _, p := range st.Pairs {
			if lp := p.LSSPair(); !slices.Contains(lsss[p.Source.Serial], lp) {
				lsss[p.Source.Serial] = append(lsss[p.Source.Serial], lp)
			}
			targets[p.Target.Serial] = append(targets[p.Target.Serial], p)
		}
		for _, serial := range slices.Sorted(maps.Keys(lsss)) {
			if err := h.systems[serial].Freeze(ctx, epoch, lsss[serial]); err != nil {
				return err
			}
		}
		for _, serial := range slices.Sorted(maps.Keys(targets)) {
			if err := h.systems[serial].Recover(ctx, epoch, targets[serial]); err != nil {
				return err
			}
		}
	}
	h.mu.Lock()
	st.Swapped = true
	h.held[name] = st
	subs := slices.Clone(h.events)
	h.mu.Unlock()
	for _, ch := range subs {
		ch <- hal.SwapEvent{Session: name, Planned: planned, Trigger: trigger, Host: h.name}
	}
	return nil
}

func (h *fakeSwapHost) SwapEvents(ctx context.Context) (<-chan hal.SwapEvent, error) {
	ch := make(chan hal.SwapEvent, 16)
	h.mu.Lock()
	h.events = append(h.events, ch)
	h.mu.Unlock()
	return ch, nil
}

func (h *fakeSwapHost) SwapStatus(ctx context.Context, epoch hal.Epoch) ([]hal.SwapState, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []hal.SwapState
	for _, name := range slices.Sorted(maps.Keys(h.held)) {
		out = append(out, h.held[name])
	}
	return out, nil
}

func (h *fakeSwapHost) state(name string) (hal.SwapState, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st, ok := h.held[name]
	return st, ok
}

type swapWorld struct {
	*world
	eng  *engine.Engine
	host *fakeSwapHost
}

// newSwapWorld is newWorld with a z/OS host; hosts decides which hosts a
// session gets (nil: the one host for every session).
func newSwapWorld(t *testing.T, ctx context.Context, policy session.Policy,
	hosts func(h *fakeSwapHost, serials []hal.Serial) ([]engine.SwapHost, error)) *swapWorld {
	t.Helper()
	w := &world{topo: topology.Standard(2, topology.DefaultLSSs())}
	w.fab = emu.NewFabric(emu.Options{Clock: clock.Real()})
	if err := w.topo.Build(w.fab); err != nil {
		t.Fatal(err)
	}
	systems := map[hal.Serial]hal.StorageSystem{}
	hostSystems := map[hal.Serial]hal.StorageSystem{}
	for _, s := range w.fab.Systems() {
		systems[s.Serial()] = s.Connect("lockstepd")
		hostSystems[s.Serial()] = s.Connect("SYS1")
	}
	sw := &swapWorld{world: w, host: newFakeSwapHost("SYS1", hostSystems)}
	if hosts == nil {
		hosts = func(h *fakeSwapHost, _ []hal.Serial) ([]engine.SwapHost, error) {
			return []engine.SwapHost{{Name: "SYS1", SwapHost: h}}, nil
		}
	}
	var eng *engine.Engine
	w.core = freeze.New(freeze.Options{Systems: systems, Epoch: 1, Observer: observerFunc(func() freeze.Observer { return eng })})
	eng = engine.New(engine.Options{Core: w.core, Systems: systems, Epoch: func() hal.Epoch { return 1 },
		SwapHosts: func(serials []hal.Serial) ([]engine.SwapHost, error) { return hosts(sw.host, serials) }})
	w.mgr = session.NewManager(session.NewMemoryStore(), eng, clock.Real())
	eng.Attach(w.mgr)
	sw.eng = eng
	go w.core.Run(ctx)
	go eng.Run(ctx)
	must(t, w.mgr.Create(ctx, "db", session.MetroMirrorHyperSwap, "", policy))
	for _, p := range w.topo.Pairs {
		must(t, w.mgr.AddCopySet(ctx, "db", session.CopySet{H1: p.Source, H2: p.Target}))
	}
	return sw
}

// prepared starts the session and waits for the copy: Prepared, and
// the host holds its pairs.
func (w *swapWorld) prepared(t *testing.T, ctx context.Context) {
	t.Helper()
	must(t, w.mgr.Command(ctx, "db", session.CmdStartH1H2))
	time.Sleep(time.Second)
	must(t, w.mgr.Command(ctx, "db", session.CmdRefresh))
	s := w.session(t, "db")
	if s.State != session.Prepared {
		t.Fatalf("after start and refresh: %s (%s)", s.State, s.Reason)
	}
	st, ok := w.host.state("db")
	if !ok || !slices.Equal(st.Pairs, s.VolumePairs()) {
		t.Fatalf("the z/OS host holds %v (%v), want the session's pairs %v", st.Pairs, ok, s.VolumePairs())
	}
}

func (w *swapWorld) phase(t *testing.T, ctx context.Context) freeze.GroupStatus {
	t.Helper()
	st, err := w.core.Status(ctx)
	must(t, err)
	for _, g := range st {
		if g.Name == "session:db" {
			return g
		}
	}
	t.Fatal("no group session:db in the core")
	return freeze.GroupStatus{}
}

// TestPlannedHyperSwapThroughTheEngine: start loads the pairs into the
// host; hyperswap has the host swap, then freezes the group through
// the core; the session is Target Available, H2 active, Normal and
// recoverable, and a refresh agrees. A start back H2->H1 makes the host
// forget the old direction before it changes the pairs and loads the new
// one once established; terminate unloads it.
func TestPlannedHyperSwapThroughTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.HoldIO, nil)
		w.prepared(t, ctx)
		if g := w.phase(t, ctx); !g.NoHeartbeat {
			t.Error("the HyperSwap session's group is heartbeat-covered")
		}
		must(t, w.mgr.Command(ctx, "db", session.CmdHyperSwap))
		s := w.session(t, "db")
		if s.State != session.TargetAvailable || s.ActiveSite != session.H2 || s.Status != session.Normal || !s.Recoverable {
			t.Fatalf("after hyperswap: %s %s active %s recoverable %v (%s)", s.State, s.Status, s.ActiveSite, s.Recoverable, s.Reason)
		}
		if !strings.Contains(s.Reason, "HyperSwap (planned) by z/OS host SYS1") {
			t.Errorf("reason %q", s.Reason)
		}
		if g := w.phase(t, ctx); g.Phase != freeze.Frozen {
			t.Errorf("group %s after hyperswap, want frozen (hold-io)", g.Phase)
		}
		must(t, w.mgr.Command(ctx, "db", session.CmdRefresh))
		if s := w.session(t, "db"); s.State != session.TargetAvailable || s.Error {
			t.Fatalf("refresh after hyperswap: %s error %v (%s)", s.State, s.Error, s.Reason)
		}

		must(t, w.mgr.Command(ctx, "db", session.CmdStartH2H1))
		time.Sleep(time.Second)
		must(t, w.mgr.Command(ctx, "db", session.CmdRefresh))
		s = w.session(t, "db")
		if s.State != session.Prepared || s.Direction != session.H2ToH1 {
			t.Fatalf("after start-h2-h1: %s %s (%s)", s.State, s.Direction, s.Reason)
		}
		st, ok := w.host.state("db")
		if !ok || st.Swapped || !slices.Equal(st.Pairs, s.VolumePairs()) {
			t.Fatalf("the host holds %+v (%v) after the start back, want the H2->H1 pairs, not swapped", st, ok)
		}
		must(t, w.mgr.Command(ctx, "db", session.CmdTerminate))
		if _, ok := w.host.state("db"); ok {
			t.Error("the host still holds the session after terminate")
		}
		p0 := w.topo.Pairs[0]
		want := []string{"load db " + p0.String(), "swap db", "unload db", "load db " + p0.Reversed().String(), "unload db"}
		if got := w.host.Calls(); !slices.Equal(got, want) {
			t.Errorf("host calls\n got %q\nwant %q", got, want)
		}
	})
}

// TestUnplannedHyperSwapReportBeforeTheFreeze: the host swaps on its own
// and its report reaches the engine before any sign reaches the core:
// the session is recorded Target Available with H2 active and the
// trigger, Severe; then the engine freezes the group, which holds the
// old production site's I/O and leaves the session swapped.
func TestUnplannedHyperSwapReportBeforeTheFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.HoldIO, nil)
		w.prepared(t, ctx)
		w.eng.Swapped(hal.SwapEvent{Session: "db", Trigger: "storage system LAB.2107-75P0001 crashed", Host: "SYS1"})
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		s := w.session(t, "db")
		if s.State != session.TargetAvailable || s.ActiveSite != session.H2 || s.Status != session.Severe || !s.IOHeld {
			t.Fatalf("after the report: %s %s active %s held %v (%s)", s.State, s.Status, s.ActiveSite, s.IOHeld, s.Reason)
		}
		if g := w.phase(t, ctx); g.Phase == freeze.Mirroring || !strings.Contains(g.Reason, "HyperSwap of session db") {
			t.Errorf("group %s (%s): the engine did not freeze it after the swap", g.Phase, g.Reason)
		}
		if !strings.Contains(s.Reason, "storage system LAB.2107-75P0001 crashed") &&
			!strings.Contains(s.Reason, "I/O held again") {
			t.Errorf("reason %q", s.Reason)
		}
	})
}

// TestUnplannedHyperSwapReportAfterTheFreeze: the host's swap freezes
// the pairs first (its own freeze: suspend events), the core freezes the
// group and the session is Suspended; the report arrives then and makes
// it Target Available with H2 active. The planned-looking report of a
// swap nobody commanded is not taken for one: only unplanned reports
// record.
func TestUnplannedHyperSwapReportAfterTheFreeze(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.ReleaseIO, nil)
		w.prepared(t, ctx)
		w.fab.SetSystemPaths(topology.PrimarySerial(0), false) // a path loss alone: a freeze, no swap
		time.Sleep(time.Second)
		synctest.Wait()
		if s := w.session(t, "db"); s.State != session.Suspended || !s.Recoverable {
			t.Fatalf("after the freeze: %s recoverable %v (%s)", s.State, s.Recoverable, s.Reason)
		}
		w.eng.Swapped(hal.SwapEvent{Session: "db", Planned: true, Trigger: "hyperswap command", Host: "SYS1"})
		synctest.Wait()
		if s := w.session(t, "db"); s.State != session.Suspended {
			t.Fatalf("a planned report nobody commanded was recorded: %s (%s)", s.State, s.Reason)
		}
		w.eng.Swapped(hal.SwapEvent{Session: "db", Trigger: "I/O to LAB.2107-75P0001 failed", Host: "SYS1"})
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		s := w.session(t, "db")
		if s.State != session.TargetAvailable || s.ActiveSite != session.H2 || !s.Recoverable || s.Status != session.Severe {
			t.Fatalf("after the report: %s %s active %s recoverable %v (%s)", s.State, s.Status, s.ActiveSite, s.Recoverable, s.Reason)
		}
		if !strings.Contains(s.Reason, "HyperSwap (unplanned) by z/OS host SYS1: I/O to LAB.2107-75P0001 failed") {
			t.Errorf("reason %q", s.Reason)
		}
	})
}

// TestSwapStatusIsTheBackstop: a swap the journal does not know (its
// report lost: the manager was down, or this server took over) is
// recorded from the host's status; a status that holds the other
// direction's pairs says nothing of the session.
func TestSwapStatusIsTheBackstop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.HoldIO, nil)
		w.prepared(t, ctx)
		pairs := w.session(t, "db").VolumePairs()
		reversed := make([]hal.VolumePair, len(pairs))
		for i, p := range pairs {
			reversed[i] = p.Reversed()
		}
		w.eng.FoundSwapped("SYS1", []hal.SwapState{{Session: "db", Pairs: reversed, Swapped: true}, {Session: "other", Swapped: true}})
		synctest.Wait()
		if s := w.session(t, "db"); s.State != session.Prepared {
			t.Fatalf("a status of the other direction's pairs was taken: %s (%s)", s.State, s.Reason)
		}
		must(t, w.host.swap(ctx, 1, "db", false, "storage system crashed")) // no subscriber: the report is lost
		st, err := w.host.SwapStatus(ctx, 1)
		must(t, err)
		w.eng.FoundSwapped("SYS1", st)
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		s := w.session(t, "db")
		if s.State != session.TargetAvailable || s.ActiveSite != session.H2 || !strings.Contains(s.Reason, "found swapped") &&
			!strings.Contains(s.Reason, "I/O held again") {
			t.Fatalf("after the backstop: %s active %s (%s)", s.State, s.ActiveSite, s.Reason)
		}
	})
}

// TestHyperSwapNeedsAZOSHost: without HyperSwap on the server, or
// without a z/OS connection that has the session's systems online, the
// start and the hyperswap are refused before anything is recorded, with
// the reason.
func TestHyperSwapNeedsAZOSHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		missing := errors.New("no z/OS connection of sysplex PLEX1 has LAB.2107-75S0001 online")
		w := newSwapWorld(t, ctx, session.HoldIO, func(*fakeSwapHost, []hal.Serial) ([]engine.SwapHost, error) {
			return nil, missing
		})
		rev := w.session(t, "db").Rev
		err := w.mgr.Command(ctx, "db", session.CmdStartH1H2)
		if !errors.Is(err, session.ErrVetoed) || !strings.Contains(err.Error(), "LAB.2107-75S0001") {
			t.Fatalf("start = %v, want a veto naming the system", err)
		}
		if got := w.session(t, "db").Rev; got != rev {
			t.Errorf("the refused start recorded something (rev %d -> %d)", rev, got)
		}

		w2 := &world{topo: w.topo, fab: w.fab}
		eng := engine.New(engine.Options{Core: w.core, Epoch: func() hal.Epoch { return 1 }})
		w2.mgr = session.NewManager(session.NewMemoryStore(), eng, clock.Real())
		eng.Attach(w2.mgr)
		must(t, w2.mgr.Create(ctx, "x", session.MetroMirrorHyperSwap, "", session.HoldIO))
		must(t, w2.mgr.AddCopySet(ctx, "x", session.CopySet{H1: w.topo.Pairs[0].Source, H2: w.topo.Pairs[0].Target}))
		err = w2.mgr.Command(ctx, "x", session.CmdStartH1H2)
		if !errors.Is(err, session.ErrVetoed) || !errors.Is(err, engine.ErrNoHyperSwap) {
			t.Fatalf("start without HyperSwap = %v, want ErrVetoed and ErrNoHyperSwap", err)
		}
	})
}

// TestHyperSwapKeepsItsLSSPairsFromTheHeartbeat: a session the heartbeat
// covers may not start on an LSS pair a started HyperSwap session uses.
func TestHyperSwapKeepsItsLSSPairsFromTheHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.HoldIO, nil)
		w.prepared(t, ctx)
		// Another volume on the first pair's LSS pair.
		p := w.topo.Pairs[0]
		src, dst := p.Source, p.Target
		src.Volume++
		dst.Volume++
		if slices.ContainsFunc(w.topo.Pairs, func(q hal.VolumePair) bool { return q.Source == src }) {
			src.Volume, dst.Volume = src.Volume+0x20, dst.Volume+0x20
		}
		must(t, w.mgr.Create(ctx, "fofb", session.MetroMirrorFailoverFailback, "", session.HoldIO))
		must(t, w.mgr.AddCopySet(ctx, "fofb", session.CopySet{H1: src, H2: dst}))
		err := w.mgr.Command(ctx, "fofb", session.CmdStartH1H2)
		if !errors.Is(err, session.ErrVetoed) || !strings.Contains(err.Error(), "session db") {
			t.Fatalf("start = %v, want a veto naming the HyperSwap session", err)
		}
	})
}

// TestBackstopWaitsOutARunningCommand: the host's status shows a swap
// the journal lacks while a command runs on the session (an admin's
// refresh): the status read could not record it then, and recorded
// nothing until the next read, which under back-to-back commands never
// came at a quiet moment. It is recorded once the command ends.
func TestBackstopWaitsOutARunningCommand(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := newSwapWorld(t, ctx, session.HoldIO, nil)
		w.prepared(t, ctx)
		must(t, w.host.swap(ctx, 1, "db", false, "storage system crashed")) // no subscriber: the report is lost
		st, err := w.host.SwapStatus(ctx, 1)
		must(t, err)
		for _, s := range w.fab.Systems() {
			s.SetLatency("lockstepd", 2*time.Second)
		}
		done := make(chan error, 1)
		go func() { done <- w.mgr.Command(ctx, "db", session.CmdRefresh) }()
		time.Sleep(100 * time.Millisecond) // the refresh waits for its queries
		w.eng.FoundSwapped("SYS1", st)
		<-done
		for _, s := range w.fab.Systems() {
			s.SetLatency("lockstepd", 0)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if s := w.session(t, "db"); s.State != session.TargetAvailable || s.ActiveSite != session.H2 {
			t.Fatalf("the swap the status showed during a refresh: %s active %s (%s)", s.State, s.ActiveSite, s.Reason)
		}
	})
}
