package scenario

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// Names are the scenarios Run knows, in DESIGN.md §6 order.
var Names = []string{"S1", "S2", "S3", "S6"}

// Descriptions say what each scenario injects.
var Descriptions = map[string]string{
	"S1": "one primary loses its paths and its connection to the manager at once",
	"S2": "one primary loses its paths; at the same time another primary loses its connection to the manager",
	"S3": "the manager dies; the storage systems stay healthy",
	"S6": "one primary loses its paths (plain path failure)",
}

// Options shape a run.
type Options struct {
	Clock     clock.Clock
	Heartbeat bool
	Seed      uint64 // for Schedule runs
	Chains    int
	Think     time.Duration
	Before    time.Duration // workload time before the fault
	After     time.Duration // time after the fault before the oracle reads
	Timings   freeze.Timings
	ReleaseIO bool
}

// Result is what a run proved.
type Result struct {
	Report      workload.Report
	Writes      uint64
	Recoverable bool     // the core's last word: every freeze certain and in time
	Why         string   // why not recoverable
	Froze       bool     // the core froze the group
	SelfFrozen  []string // storage systems whose heartbeat expired
	Mirroring   int      // source pairs still full-duplex at the end
	Timeline    []string
}

// Consistent is the oracle's verdict.
func (r *Result) Consistent() bool { return r.Report.Consistent }

// Lab is a running scenario: fabric, core and workload.
type lab struct {
	clk      clock.Clock
	fab      *emu.Fabric
	topo     *topology.Topology
	core     *freeze.Core
	stopCore context.CancelFunc
	coreDone chan error
	res      *Result
	mu       sync.Mutex
	start    time.Time
}

const (
	manager = "lockstepd"
	group   = "cg1"
)

func (l *lab) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.res.Timeline = append(l.res.Timeline,
		fmt.Sprintf("t=%8.3fs  %s", l.clk.Since(l.start).Seconds(), fmt.Sprintf(format, args...)))
}

// observer records what the core does to the group.
type observer struct{ l *lab }

func (o observer) Freezing(g, reason string, _ time.Time) {
	o.l.mu.Lock()
	o.l.res.Froze = true
	o.l.mu.Unlock()
	o.l.logf("core: freezing %s: %s", g, reason)
}

func (o observer) Settled(g string, st freeze.Settlement) {
	o.l.mu.Lock()
	o.l.res.Recoverable, o.l.res.Why = st.Recoverable, st.Why
	o.l.mu.Unlock()
	switch {
	case st.Recoverable:
		o.l.logf("core: %s frozen on every storage system in time: Recoverable", g)
	case st.Certain:
		o.l.logf("core: %s frozen everywhere, but too late to vouch for the image: not recoverable: %s", g, st.Why)
	default:
		o.l.logf("core: %s Suspended (Partial): %s: not recoverable", g, st.Why)
	}
}

func (o observer) Thawed(g string, _ time.Time) { o.l.logf("core: %s thawed (I/O released)", g) }

func (o observer) Unprotected(g, why string) {
	if why != "" {
		o.l.logf("core: %s not protected by the heartbeat: %s", g, why)
	}
}

func (o observer) Contact(g string, c freeze.Contact) {
	switch {
	case c.Severe():
		o.l.logf("core: %s: session Severe, not recoverable: %s", g, c)
	case len(c.Lost) > 0:
		o.l.logf("core: %s out of contact: session Warning (still Prepared: the manager cannot know more): %s", g, c)
	default:
		o.l.logf("core: %s in contact with every storage system again", g)
	}
}
func (o observer) Fenced(e hal.Epoch) { o.l.logf("core: fenced by epoch %d", e) }

func (o *Options) defaults() {
	if o.Chains == 0 {
		o.Chains = 16
	}
	if o.Think == 0 {
		// Applications think between dependent writes; without a pause
		// the chains would saturate the CPU and, on a scaled clock, delay
		// the core by whole heartbeat intervals of storage time.
		o.Think = 200 * time.Millisecond
	}
	if o.Before == 0 {
		o.Before = 5 * time.Second
	}
	if o.After == 0 {
		o.After = 150 * time.Second
	}
	if o.Timings == (freeze.Timings{}) {
		o.Timings = freeze.DefaultTimings()
	}
}

// setup builds the lab, establishes the pairs and starts the core.
func setup(ctx context.Context, opt Options) (*lab, error) {
	clk := clock.OrReal(opt.Clock)
	l := &lab{clk: clk, res: &Result{}, start: clk.Now()}
	l.topo = topology.Standard(4, topology.DefaultLSSs())
	l.fab = emu.NewFabric(emu.Options{Clock: clk})
	if err := l.topo.Build(l.fab); err != nil {
		return nil, err
	}
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, s := range l.fab.Systems() {
		conns[s.Serial()] = s.Connect(manager)
	}
	if err := l.topo.Establish(ctx, clk, conns, 1, time.Minute); err != nil {
		return nil, err
	}
	l.logf("%d pairs full-duplex, 4 primaries -> 4 secondaries, one consistency group", len(l.topo.Pairs))
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range l.topo.Sources() {
		sources[serial] = conns[serial]
	}
	l.core = freeze.New(freeze.Options{Clock: clk, Timings: opt.Timings, Systems: sources, Epoch: 1,
		Heartbeat: opt.Heartbeat, Observer: observer{l}})
	coreCtx, stop := context.WithCancel(ctx)
	l.stopCore, l.coreDone = stop, make(chan error, 1)
	go func() { l.coreDone <- l.core.Run(coreCtx) }()
	g := freeze.Group{Name: group, Pairs: l.topo.LSSPairs(), ReleaseIO: opt.ReleaseIO, LowestCG: lowestCG(l.topo)}
	if err := l.core.SetGroups(ctx, []freeze.Group{g}); err != nil {
		stop()
		return nil, err
	}
	if opt.Heartbeat {
		// "Heartbeat on" means armed on every storage system: a system
		// that fails before it is armed is not protected by it.
		if err := l.waitArmed(ctx); err != nil {
			stop()
			return nil, err
		}
		h, _ := freeze.DeriveH(g.LowestCG, opt.Timings)
		l.logf("heartbeat armed on every primary: every %v, storage timeout H = %v (lowest CG timeout %v - margin %v)",
			opt.Timings.Interval, h, g.LowestCG, opt.Timings.Margin())
	}
	observeStorage(ctx, l)
	return l, nil
}

func (l *lab) waitArmed(ctx context.Context) error {
	for range 1000 {
		st, err := l.core.Status(ctx)
		if err != nil {
			return err
		}
		armed := 0
		for _, m := range st[0].Systems {
			if m.Armed {
				armed++
			}
		}
		if armed == len(st[0].Systems) {
			return nil
		}
		if err := clock.Sleep(ctx, l.clk, time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("scenario: heartbeat not armed on every primary")
}

func lowestCG(t *topology.Topology) time.Duration {
	var low time.Duration
	for _, s := range t.Systems {
		for _, lc := range s.LSSs {
			cg := lc.CGTimeout
			if cg <= 0 {
				cg = hal.DefaultCGTimeout(lc.Type)
			}
			if low == 0 || cg < low {
				low = cg
			}
		}
	}
	return low
}

// observeStorage logs what the storage systems do on their own, through a
// lab connection that no fault ever cuts.
func observeStorage(ctx context.Context, l *lab) {
	for _, s := range l.fab.Systems() {
		events, err := s.Connect("lab-observer").Events(ctx)
		if err != nil {
			continue
		}
		go func() {
			seen := map[string]bool{}
			for ev := range events {
				key := fmt.Sprintf("%s %s", ev.Kind, ev.Reason)
				switch {
				case ev.Kind == hal.EventHeartbeatExpiry:
					l.mu.Lock()
					l.res.SelfFrozen = append(l.res.SelfFrozen, string(ev.Serial))
					l.mu.Unlock()
					l.logf("storage %s: heartbeat expired: it froze its pairs itself", ev.Serial)
				case ev.Kind == hal.EventSuspend && !seen[key]:
					seen[key] = true
					l.logf("storage %s: pairs suspended (%s)", ev.Serial, ev.Reason)
				}
			}
		}()
	}
}

// Run runs one named scenario.
func Run(ctx context.Context, name string, opt Options) (*Result, error) {
	opt.defaults()
	inject, ok := faults[name]
	if !ok {
		return nil, fmt.Errorf("scenario: unknown scenario %q (known: %v)", name, Names)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l, err := setup(ctx, opt)
	if err != nil {
		return nil, err
	}
	return l.play(ctx, opt, func() { inject(l) })
}

// play runs the workload, calls fault after opt.Before, waits opt.After,
// and reads the secondary image.
func (l *lab) play(ctx context.Context, opt Options, fault func()) (*Result, error) {
	layout, err := workload.NewLayout(l.topo.Pairs, opt.Chains, 8)
	if err != nil {
		return nil, err
	}
	run := workload.Start(ctx, l.fab, layout, workload.Options{Clock: l.clk, Think: opt.Think})
	l.logf("workload: %d chains of dependent writes across the 4 primaries", opt.Chains)
	if err := clock.Sleep(ctx, l.clk, opt.Before); err != nil {
		return nil, err
	}
	fault()
	if err := clock.Sleep(ctx, l.clk, opt.After); err != nil {
		return nil, err
	}
	run.Stop()
	l.stopCore()
	<-l.coreDone
	st := run.Status()
	l.res.Writes = st.Writes
	l.logf("workload stopped after %d acknowledged writes", st.Writes)
	snap, err := l.fab.Snapshot(layout.Targets())
	if err != nil {
		return nil, err
	}
	img, err := workload.Capture(snap, layout)
	if err != nil {
		return nil, err
	}
	l.res.Report = workload.Check(layout, img)
	l.res.Mirroring = l.mirroringPairs(ctx)
	return l.res, nil
}

func (l *lab) mirroringPairs(ctx context.Context) int {
	n := 0
	for _, serial := range l.topo.Sources() {
		ps, err := l.fab.System(serial).Connect("lab-observer").QueryPairs(ctx, l.fab.System(serial).Epoch())
		if err != nil {
			continue
		}
		for _, p := range ps {
			if p.Source.Serial == serial && p.State == hal.FullDuplex {
				n++
			}
		}
	}
	return n
}

var faults = map[string]func(l *lab){
	"S1": func(l *lab) {
		p := topology.PrimarySerial(0)
		// The connection goes first so that not even the suspend event
		// of the path failure reaches the manager.
		l.fab.System(p).SetManagerLink(manager, emu.LinkDown)
		l.fab.SetSystemPaths(p, false)
		l.logf("FAULT: %s loses its paths and its manager connection at once", p)
	},
	"S2": func(l *lab) {
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		l.fab.System(p2).SetManagerLink(manager, emu.LinkDown)
		l.fab.SetSystemPaths(p1, false)
		l.logf("FAULT: %s loses its paths; %s loses its manager connection", p1, p2)
	},
	"S3": func(l *lab) {
		l.stopCore()
		l.logf("FAULT: the manager dies (its heartbeats stop, nothing is disarmed)")
	},
	"S6": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.fab.SetSystemPaths(p, false)
		l.logf("FAULT: %s loses its paths", p)
	},
}
