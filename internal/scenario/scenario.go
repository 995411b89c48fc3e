package scenario

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	labsrv "github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// Names are the scenarios Run knows, in order (S1 first); HMCNames
// those of the HMC connection, which need Via ViaHMC.
var (
	Names    = []string{"S1", "S2", "S3", "S6"}
	HMCNames = []string{"H1", "H2", "H3", "H4"}
	// DirectNames need Via ViaDirect: they fail one cluster endpoint.
	DirectNames = []string{"S7", "S8"}
	// ZOSNames need Via ViaDirect: the z/OS host is reached over
	// loopback TLS through drivers/zos (Options.NoZOS leaves it out, the
	// control case).
	ZOSNames = []string{"S5"}
)

// Descriptions say what each scenario injects.
var Descriptions = map[string]string{
	"S1": "one primary loses its paths and its connection to the manager at once",
	"S2": "one primary loses its paths; at the same time another primary loses its connection to the manager",
	"S3": "the manager dies; the storage systems stay healthy",
	"S5": "one primary loses its paths and every TCP/IP connection to the manager at once; a z/OS host still reaches it in-band",
	"S6": "one primary loses its paths (plain path failure)",
	"H1": "one primary loses its paths; the HMC carrying the freeze dies under it (the other HMC of the dual HMC remains)",
	"H2": "both HMCs die: no storage system can be reached; they come back after the heartbeat timeout H",
	"H3": "one primary loses its paths while one HMC's private link to it dies (the other HMC still reaches it)",
	"H4": "one primary loses its paths while one HMC's private link to another primary goes silent (black-holed: the HMC still answers; the other HMC still reaches it)",
	"S7": "one primary loses its paths while the cluster carrying another primary's connection goes silent (black-holed: the connection stays open, nothing is answered; the other cluster still answers)",
	"S8": "one primary loses its paths while the cluster carrying its own connection goes silent (its suspend event is lost; the other cluster still answers)",
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
	// Via is how the core reaches storage: in-process (""), or over
	// loopback TLS through the direct driver (ViaDirect) or a dual HMC
	// (ViaHMC). Speed scales storage time of those runs (0: WireSpeed);
	// Clock is not used by them.
	Via   string
	Speed float64
	// NoZOS leaves the z/OS connection out of a z/OS scenario (the
	// control case: the same fault, reached by TCP/IP only).
	NoZOS bool
	// hmcs: in-process, every system reached only through two emulated
	// HMCs, composed (RunSchedule sets it for ViaHMCs seeds).
	hmcs bool
	// zos: over the wire, each system also reached through a z/OS host
	// (Run sets it for ZOSNames unless NoZOS).
	zos bool
	// hyperswap: the workload runs on an in-process z/OS host holding
	// the HyperSwap session (Run sets it for HyperSwapNames).
	hyperswap bool
	// io, when set, is the host the workload writes through, built from
	// the lab (a test's broken host).
	io func(l *lab) workload.Host
	// swapLatency is the time the hyperswap command takes between its two
	// steps (a manager under load).
	swapLatency time.Duration
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
	// FaultAt is when the fault was injected, RecoverableAt when the
	// core first said Recoverable (storage time since the start; 0:
	// never). A system the core cannot reach is safe only once its
	// heartbeat expiry has certainly happened (daemon/freeze/doc.go): H2 checks
	// that RecoverableAt comes no sooner than H after FaultAt.
	FaultAt, RecoverableAt time.Duration
	// MaxWait is the longest one application write waited, from its
	// first attempt to its acknowledgement (what the ELB cost the
	// applications).
	MaxWait time.Duration
	// Swapped: a HyperSwap scenario's z/OS host swapped to H2, for
	// SwapTrigger; the workload had WritesAtSwap acknowledged writes then.
	Swapped      bool
	SwapTrigger  string
	WritesAtSwap uint64
	// AtSwap is the oracle's verdict on H2 at the instant of the swap
	// (once H1 was frozen and H2 recovered, before the host wrote to it),
	// when AtSwapChecked.
	AtSwap        workload.Report
	AtSwapChecked bool
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
	ctx      context.Context
	wire     *wireLab   // nil in-process
	hmcs     []*emu.HMC // in-process dual HMC, when the run has one
	zos      *zosHost   // in-process z/OS host, when the run has one
	host     *emu.Host  // the HyperSwap z/OS host the workload runs on, when the run has one
	// layout and run are the workload's once it started; swapLatency is
	// Options.swapLatency (read by the hyperswap command).
	layout      *workload.Layout
	run         *workload.Run
	swapLatency time.Duration
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
	if st.Recoverable && o.l.res.RecoverableAt == 0 {
		o.l.res.RecoverableAt = o.l.clk.Since(o.l.start)
	}
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
	if opt.hmcs {
		var err error
		if conns, err = l.behindDualHMC(); err != nil {
			return nil, err
		}
	}
	if opt.zos {
		var err error
		if conns, err = l.withZOS(conns); err != nil {
			return nil, err
		}
	}
	if err := l.topo.Establish(ctx, clk, conns, 1, time.Minute); err != nil {
		return nil, err
	}
	l.logf("%d pairs full-duplex, 4 primaries -> 4 secondaries, one consistency group", len(l.topo.Pairs))
	// "Heartbeat on" means armed on every storage system: a system that
	// fails before it is armed is not protected by it (startCore waits).
	if err := l.startCore(ctx, opt, clk, conns); err != nil {
		return nil, err
	}
	if opt.hyperswap {
		if err := l.withHost(ctx); err != nil {
			l.stopCore()
			return nil, err
		}
	}
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
	if isHyperSwap(name) {
		if opt.Via != ViaInProcess {
			return nil, fmt.Errorf("scenario: %s runs in-process only (no --via)", name)
		}
		if opt.Heartbeat {
			return nil, fmt.Errorf("scenario: %s: the heartbeat does not cover a HyperSwap session", name)
		}
		opt.hyperswap = true
		if opt.After == 0 {
			opt.After = hyperSwapAfter
		}
	}
	opt.defaults()
	inject, ok := faults[name]
	if !ok {
		inject, ok = hyperSwapFaults[name]
	}
	if !ok {
		return nil, fmt.Errorf("scenario: unknown scenario %q (known: %v, and with --via hmc %v)", name, Names, HMCNames)
	}
	if slices.Contains(HMCNames, name) && opt.Via != ViaHMC {
		return nil, fmt.Errorf("%w: %s", errNeedsHMC, name)
	}
	if slices.Contains(DirectNames, name) && opt.Via != ViaDirect {
		return nil, fmt.Errorf("%w: %s", errNeedsDirect, name)
	}
	if slices.Contains(ZOSNames, name) {
		if opt.Via != ViaDirect {
			return nil, fmt.Errorf("%w: %s", errNeedsDirect, name)
		}
		opt.zos = !opt.NoZOS
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var l *lab
	var err error
	if opt.Via == ViaInProcess {
		l, err = setup(ctx, opt)
	} else {
		l, err = setupWire(ctx, opt)
	}
	if err != nil {
		return nil, err
	}
	if l.wire != nil {
		defer l.wire.close()
	}
	l.ctx = ctx
	return l.play(ctx, opt, func() { inject(l) })
}

// play runs the workload, calls fault after opt.Before, waits opt.After,
// and reads the secondary image.
func (l *lab) play(ctx context.Context, opt Options, fault func()) (*Result, error) {
	layout, err := workload.NewLayout(l.topo.Pairs, opt.Chains, 8)
	if err != nil {
		return nil, err
	}
	var io workload.Host = l.fab
	if l.host != nil {
		io = l.host
		defer l.host.Close()
	}
	if opt.io != nil {
		io = opt.io(l)
	}
	run := workload.Start(ctx, io, layout, workload.Options{Clock: l.clk, Think: opt.Think})
	l.mu.Lock()
	l.layout, l.run, l.swapLatency = layout, run, opt.swapLatency
	l.mu.Unlock()
	if l.host != nil {
		l.watchSwaps(ctx, run)
	}
	l.logf("workload: %d chains of dependent writes across the 4 primaries", opt.Chains)
	if err := clock.Sleep(ctx, l.clk, opt.Before); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.res.FaultAt = l.clk.Since(l.start)
	l.mu.Unlock()
	fault()
	if err := clock.Sleep(ctx, l.clk, opt.After); err != nil {
		return nil, err
	}
	run.Stop()
	l.stopCore()
	<-l.coreDone
	st := run.Status()
	l.res.Writes, l.res.MaxWait = st.Writes, st.MaxWait
	l.logf("workload stopped after %d acknowledged writes", st.Writes)
	snap, err := l.fab.Snapshot(layout.Targets())
	if err != nil {
		return nil, err
	}
	img, err := workload.Capture(snap, layout)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	swapped := l.res.Swapped
	l.mu.Unlock()
	if !swapped {
		l.res.Report = workload.Check(layout, img)
	} else if l.res.Report, err = workload.CheckAcked(layout, img, st.Acked); err != nil {
		// The application moved to H2: every write it was told is done
		// must be there. (Unswapped, it still runs on H1, and H2 is the
		// frozen image the prefix rule judges.)
		return nil, err
	}
	l.res.Mirroring = l.mirroringPairs(ctx)
	// A command the core sent before it stopped runs to its deadline, and
	// one that a black-holed link holds takes all of it: wait them out, so
	// that none outlives the run (a synctest bubble may not end with
	// goroutines blocked). After the image was read: the wait changes
	// nothing that is judged.
	if err := clock.Sleep(ctx, l.clk, opt.Timings.RequestTimeout); err != nil {
		return nil, err
	}
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
		l.cutManager(p)
		l.cutPaths(p)
		l.logf("FAULT: %s loses its paths and its manager connection%s at once", p, l.throughHMCs())
	},
	"S2": func(l *lab) {
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		l.cutManager(p2)
		l.cutPaths(p1)
		l.logf("FAULT: %s loses its paths; %s loses its manager connection%s", p1, p2, l.throughHMCs())
	},
	"S3": func(l *lab) {
		l.stopCore()
		l.logf("FAULT: the manager dies (its heartbeats stop, nothing is disarmed)")
	},
	"S5": func(l *lab) {
		p := topology.PrimarySerial(0)
		// As S1, but a z/OS host still has the primary online: its
		// state-change message tells the core of the suspend, and the
		// freeze goes out in-band through it (hal/compose fails over).
		l.cutManager(p)
		l.cutPaths(p)
		through := "; no z/OS connection (control case)"
		if l.wire.zos {
			through = "; z/OS host " + labZOSHost + " still has it online"
		}
		l.logf("FAULT: %s loses its paths and both its TCP/IP (direct) connections at once%s", p, through)
	},
	"S6": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.cutPaths(p)
		l.logf("FAULT: %s loses its paths", p)
	},
	"H1": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.cutPaths(p)
		// The core is told at once (the suspend event) and freezes the
		// group through HMC1, the first of the connection: it dies now,
		// with the freeze in flight.
		l.inject(labsrv.Fault{Kind: "hmc", HMC: labHMCs[0], Mode: "down"})
		l.logf("FAULT: %s loses its paths; %s dies during the freeze", p, labHMCs[0])
	},
	"H2": func(l *lab) {
		for _, h := range labHMCs {
			l.inject(labsrv.Fault{Kind: "hmc", HMC: h, Mode: "down"})
		}
		l.logf("FAULT: both HMCs die: the manager reaches no storage system")
		back := 2 * lowestCG(l.topo)
		go func() {
			if clock.Sleep(l.ctx, l.clk, back) != nil {
				return
			}
			for _, h := range labHMCs {
				l.inject(labsrv.Fault{Kind: "hmc", HMC: h, Mode: "up"})
			}
			l.logf("REPAIR: both HMCs back after %v", back)
		}()
	},
	"H3": func(l *lab) {
		p := topology.PrimarySerial(0)
		l.inject(labsrv.Fault{Kind: "hmc-link", HMC: labHMCs[0], System: string(p), Up: false})
		l.cutPaths(p)
		l.logf("FAULT: %s loses its paths; %s's private link to it dies at once", p, labHMCs[0])
	},
	"H4": func(l *lab) {
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		// HMC1, the first of the connection, still answers (its pings
		// too) but holds whatever it relays to p2: p2's freeze must go
		// through HMC2 within its deadline, or p2 mirrors on.
		l.inject(labsrv.Fault{Kind: "hmc-link", HMC: labHMCs[0], System: string(p2), Mode: "blackhole"})
		l.cutPaths(p1)
		l.logf("FAULT: %s loses its paths; %s's private link to %s goes silent at once", p1, labHMCs[0], p2)
	},
	"S7": func(l *lab) {
		p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1)
		// The cluster p2's driver is connected to goes silent: TCP would
		// not tell for many minutes, and p2's freeze must go through the
		// other cluster, or p2 mirrors on.
		cluster := max(l.wire.direct[p2].Cluster(), 0)
		l.inject(labsrv.Fault{Kind: "manager", System: string(p2), Endpoint: cluster, Mode: "blackhole", Manager: manager})
		l.cutPaths(p1)
		l.logf("FAULT: %s loses its paths; cluster %d of %s, which carries its connection, goes silent at once", p1, cluster, p2)
	},
	"S8": func(l *lab) {
		p := topology.PrimarySerial(0)
		// The silent cluster swallows the suspend event: the core learns
		// of the suspension only through the other cluster (its poll), or
		// by the heartbeat, before the primary's extended long busy ends.
		cluster := max(l.wire.direct[p].Cluster(), 0)
		l.inject(labsrv.Fault{Kind: "manager", System: string(p), Endpoint: cluster, Mode: "blackhole", Manager: manager})
		l.cutPaths(p)
		l.logf("FAULT: %s loses its paths; cluster %d, which carries its connection, goes silent at once", p, cluster)
	},
}

// throughHMCs words where the manager connection runs, for the timeline.
func (l *lab) throughHMCs() string {
	if l.wire != nil && l.wire.via == ViaHMC {
		return " (the private links of both its HMCs)"
	}
	return ""
}
