package memsoak

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"time"

	"github.com/lockstep-io/lockstep/daemon/engine"
	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/persist"
)

// ErrCycle: a suspend/resync cycle did not end as it must (the session
// Suspended after the suspend, Prepared after the resync).
var ErrCycle = errors.New("memsoak: cycle")

// Options of a soak. The zero value of each field is the soak of DESIGN
// §11: 24 hours, a cycle a minute.
type Options struct {
	Dir   string      // the state directory (the journal and snapshots)
	Clock clock.Clock // nil: real time (a synctest bubble makes it virtual)
	Hours int         // simulated hours (0: 24)
	Cycle time.Duration
	// Persist configures the journal (zero: lockstepd's defaults).
	Persist persist.Options
	// CommandLogSize bounds the emulator's command log (0: 256).
	CommandLogSize int
	// ProfileDir, if set, receives heap-h<N>.pprof at the first and last
	// hour (go tool pprof -diff_base heap-h1.pprof heap-h24.pprof).
	ProfileDir string
}

// Sample is what the soak measured at the end of one simulated hour.
type Sample struct {
	Hour int
	// LiveHeap is the heap the last GC found live (runtime/metrics
	// /gc/heap/live:bytes), after two forced GCs.
	LiveHeap uint64
	// Goroutines: a goroutine that leaks keeps its stack, outside the heap.
	Goroutines int
	// JournalBytes is the size of every file of the state directory
	// (segments and snapshots).
	JournalBytes int64
	Records      uint64 // the journal's last index
	Cycles       int    // suspend/resync cycles done
}

// Result is a soak's samples, one per hour, hour 1 first.
type Result struct {
	Samples []Sample
}

// First and Last are the samples of the first and the last hour.
func (r Result) First() Sample { return r.Samples[0] }
func (r Result) Last() Sample  { return r.Samples[len(r.Samples)-1] }

// Manager is the name the soak's manager gives the storage systems.
const Manager = "lockstepd"

// Run runs the soak: one primary and one secondary emulated system, one
// session "db" over every volume (16 copy sets, hold-io, heartbeat on),
// started; then every Cycle, alternately, a path failure (the systems
// suspend the pairs, the core freezes on the event) or a suspend
// command, followed by the resync (start-h1-h2 once the paths are back)
// and a refresh until the session is Prepared again.
func Run(ctx context.Context, opt Options) (Result, error) {
	if opt.Hours <= 0 {
		opt.Hours = 24
	}
	if opt.Cycle <= 0 {
		opt.Cycle = time.Minute
	}
	if opt.CommandLogSize <= 0 {
		opt.CommandLogSize = 256
	}
	if opt.ProfileDir != "" {
		// Every allocation sampled: the growth looked for is a few
		// hundred bytes a cycle.
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	clk := clock.OrReal(opt.Clock)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	topo := topology.Standard(1, topology.DefaultLSSs())
	fab := emu.NewFabric(emu.Options{Clock: clk, CommandLogSize: opt.CommandLogSize})
	if err := topo.Build(fab); err != nil {
		return Result{}, err
	}
	po := opt.Persist
	po.Clock = clk
	store, err := state.Open(opt.Dir, po)
	if err != nil {
		return Result{}, err
	}
	defer store.Close()

	// The wiring of an acting period (daemon/duties.go): core, engine,
	// manager over the journal-backed store.
	systems := map[hal.Serial]hal.StorageSystem{}
	for _, s := range fab.Systems() {
		systems[s.Serial()] = s.Connect(Manager)
	}
	tm := freeze.DefaultTimings()
	var eng *engine.Engine
	core := freeze.New(freeze.Options{Clock: clk, Timings: tm, Systems: systems, Epoch: 1, Heartbeat: true,
		Observer: observer{&eng}})
	eng = engine.New(engine.Options{Core: core, Systems: systems, Epoch: func() hal.Epoch { return 1 }, Clock: clk,
		RequestTimeout: func() time.Duration { return tm.RequestTimeout }})
	mgr := session.NewManager(store, eng, clk)
	eng.Attach(mgr)
	done := make(chan struct{}, 2)
	go func() { core.Run(ctx); done <- struct{}{} }()
	go func() { eng.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	const name = "db"
	if err := mgr.Create(ctx, name, session.MetroMirrorFailoverFailback, "cg1", session.HoldIO); err != nil {
		return Result{}, err
	}
	for _, p := range topo.Pairs {
		if err := mgr.AddCopySet(ctx, name, session.CopySet{H1: p.Source, H2: p.Target}); err != nil {
			return Result{}, err
		}
	}
	sleep := func(d time.Duration) error {
		t := clk.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C():
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// waitFor polls the session every 100 ms for at most a minute.
	waitFor := func(what string, ok func(*session.Session) bool) error {
		for range 600 {
			if s, found := mgr.DB().Session(name); found && ok(s) {
				return nil
			}
			if err := sleep(100 * time.Millisecond); err != nil {
				return err
			}
		}
		s, _ := mgr.DB().Session(name)
		return fmt.Errorf("%w: %s: session %s (%s)", ErrCycle, what, s.State, s.Reason)
	}
	// prepared refreshes until the copy is done.
	prepared := func(what string) error {
		for range 600 {
			if err := mgr.Command(ctx, name, session.CmdRefresh); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCycle, what, err)
			}
			if s, _ := mgr.DB().Session(name); s.State == session.Prepared {
				return nil
			}
			if err := sleep(500 * time.Millisecond); err != nil {
				return err
			}
		}
		s, _ := mgr.DB().Session(name)
		return fmt.Errorf("%w: %s: not prepared: %s (%s)", ErrCycle, what, s.State, s.Reason)
	}
	if err := mgr.Command(ctx, name, session.CmdStartH1H2); err != nil {
		return Result{}, err
	}
	if err := prepared("start"); err != nil {
		return Result{}, err
	}

	perHour := int(time.Hour / opt.Cycle)
	res := Result{Samples: make([]Sample, 0, opt.Hours)}
	LiveHeap() // runtime/metrics allocates on its first read: not in hour 1's sample
	begin := clk.Now()
	primary := topology.PrimarySerial(0)
	for n := 1; n <= opt.Hours*perHour; n++ {
		what := fmt.Sprintf("cycle %d", n)
		if n%2 == 1 {
			// An event: the primary loses its paths, suspends its pairs
			// and tells; the core freezes the group.
			fab.SetSystemPaths(primary, false)
			err := waitFor(what+": path failure", func(s *session.Session) bool {
				return s.State == session.Suspended && s.IOHeld
			})
			fab.SetSystemPaths(primary, true)
			if err != nil {
				return res, err
			}
		} else if err := mgr.Command(ctx, name, session.CmdSuspend); err != nil {
			return res, fmt.Errorf("%w: %s: suspend: %w", ErrCycle, what, err)
		}
		if err := mgr.Command(ctx, name, session.CmdStartH1H2); err != nil {
			return res, fmt.Errorf("%w: %s: resync: %w", ErrCycle, what, err)
		}
		if err := prepared(what + ": resync"); err != nil {
			return res, err
		}
		if n%perHour == 0 {
			hour := n / perHour
			if hour == 1 || hour == opt.Hours {
				if err := writeProfile(opt.ProfileDir, hour); err != nil {
					return res, err
				}
			}
			s, err := sample(hour, n, store)
			if err != nil {
				return res, err
			}
			res.Samples = append(res.Samples, s)
		}
		if err := sleep(begin.Add(time.Duration(n) * opt.Cycle).Sub(clk.Now())); err != nil {
			return res, err
		}
	}
	return res, nil
}

// observer lets the core be built before the engine that observes it.
type observer struct{ eng **engine.Engine }

func (o observer) Freezing(g, r string, at time.Time)     { (*o.eng).Freezing(g, r, at) }
func (o observer) Settled(g string, st freeze.Settlement) { (*o.eng).Settled(g, st) }
func (o observer) Thawed(g string, at time.Time)          { (*o.eng).Thawed(g, at) }
func (o observer) Fenced(e hal.Epoch)                     { (*o.eng).Fenced(e) }

// LiveHeap forces two GCs (the second frees what the first's
// finalizers and sync.Pools released) and returns the heap found live.
func LiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

func sample(hour, cycles int, store *state.Store) (Sample, error) {
	var size int64
	err := filepath.WalkDir(store.Dir(), func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size += info.Size()
		return nil
	})
	if err != nil {
		return Sample{}, err
	}
	return Sample{Hour: hour, LiveHeap: LiveHeap(), Goroutines: runtime.NumGoroutine(), JournalBytes: size,
		Records: store.LastIndex(), Cycles: cycles}, nil
}

func writeProfile(dir string, hour int) error {
	if dir == "" {
		return nil
	}
	runtime.GC()
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("heap-h%d.pprof", hour)))
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
