package freeze_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/latency"
	"github.com/lockstep-io/lockstep/internal/topology"
)

const manager = "bench"

// ackRecorder notes when the core sent each system its freeze and when
// the system acknowledged it.
type ackRecorder struct {
	hal.StorageSystem
	fb *freezeBench
}

func (a ackRecorder) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	fb := a.fb
	sent := time.Now()
	fb.mu.Lock()
	if _, ok := fb.sent[a.Serial()]; !ok {
		fb.sent[a.Serial()] = sent
	}
	fb.mu.Unlock()
	err := a.StorageSystem.Freeze(ctx, e, p)
	if err == nil {
		fb.mu.Lock()
		if _, ok := fb.acks[a.Serial()]; !ok {
			fb.acks[a.Serial()] = time.Now()
		}
		fb.mu.Unlock()
		fb.poke()
	}
	return err
}

// Heartbeat notes each heartbeat a system answered (the detection bench).
func (a ackRecorder) Heartbeat(ctx context.Context, e hal.Epoch, session string) error {
	err := a.StorageSystem.Heartbeat(ctx, e, session)
	if err == nil {
		fb := a.fb
		fb.mu.Lock()
		fb.beats[a.Serial()] = time.Now()
		fb.mu.Unlock()
		fb.poke()
	}
	return err
}

type freezeBench struct {
	fab     *emu.Fabric
	topo    *topology.Topology
	conns   map[hal.Serial]hal.StorageSystem // manager's, all systems
	setup   map[hal.Serial]hal.StorageSystem // in-process, for the untimed resets
	srv     *lab.Server                      // nil in-process
	core    *freeze.Core
	mu      sync.Mutex
	changed chan struct{}            // poked when an ack, a freeze or the trigger is recorded
	sent    map[hal.Serial]time.Time // when the core sent each system its freeze
	acks    map[hal.Serial]time.Time
	beats   map[hal.Serial]time.Time // when each system last answered a heartbeat
	frozen  map[hal.Serial]time.Time // storage side: when each system judged its freeze
	cmdSeq  uint64                   // the emulator's command log read up to here
	// Computed once: the bench's own garbage, made per sample, brought
	// the collector into the samples.
	sources  []hal.Serial
	lp       hal.LSSPair // the trigger's LSS pair
	resets   map[hal.Serial]resetSpec
	trigger  hal.Event
	hole     hal.Serial // black-holed system, "" for none
	blackout func(on bool)
}

// setupFreezeBench builds n primaries and n secondaries with 16 FB LSSs
// of one volume each, all in one consistency group, in-process or served
// by a lab over loopback TLS.
//
// A black-holed system's freeze is answered only at the request timeout,
// and the group is Freezing until then (Restart refuses it): such runs
// pass a short requestTimeout so that a sample costs that, not 2 s.
// Zero keeps the default.
//
// tune, if any, adjusts the core's options (the heartbeat bench).
func setupFreezeBench(b *testing.B, n int, overWire bool, requestTimeout time.Duration, tune ...func(*freeze.Options)) *freezeBench {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var lsss []emu.LSSConfig
	for l := range 16 {
		lsss = append(lsss, emu.LSSConfig{LSS: hal.LSS(0x10 + l), Type: hal.FB, Volumes: 1})
	}
	fb := &freezeBench{topo: topology.Standard(n, lsss), conns: map[hal.Serial]hal.StorageSystem{},
		setup:   map[hal.Serial]hal.StorageSystem{},
		changed: make(chan struct{}, 1), sent: map[hal.Serial]time.Time{},
		acks: map[hal.Serial]time.Time{}, beats: map[hal.Serial]time.Time{}, frozen: map[hal.Serial]time.Time{}}
	if overWire {
		cfg := &lab.Config{Speed: 1, Topology: fb.topo}
		for _, sc := range fb.topo.Systems {
			cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "u", Password: "p",
				Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
		}
		// The lab's goroutines carry the profiler label side=storage and
		// the manager's side=manager (goroutines inherit them), so that
		// `go tool pprof -tags` on a -cpuprofile of this bench splits the
		// CPU between the emulated storage and lockstep.
		var srv *lab.Server
		var err error
		pprof.Do(ctx, pprof.Labels("side", "storage"), func(ctx context.Context) {
			srv, err = lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(b.TempDir(), "lab.sock")})
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cancel(); srv.Wait() })
		fb.fab, fb.srv = srv.Fabric(), srv
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CAPEM())
		for _, st := range srv.Status() {
			var d *direct.System
			pprof.Do(b.Context(), pprof.Labels("side", "manager"), func(ctx context.Context) {
				d = direct.New(ctx, direct.Options{Serial: hal.Serial(st.Serial), Endpoints: st.Endpoints, Manager: manager,
					User: "u", Password: "p", TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
			})
			b.Cleanup(func() { d.Close() })
			fb.conns[d.Serial()] = d
		}
		fb.blackout = func(on bool) {
			mode := map[bool]string{true: "blackhole", false: "up"}[on]
			if err := srv.Inject(lab.Fault{Kind: "manager", System: string(fb.hole), Endpoint: -1, Mode: mode}); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		fb.fab = emu.NewFabric(emu.Options{})
		if err := fb.topo.Build(fb.fab); err != nil {
			b.Fatal(err)
		}
		for _, s := range fb.fab.Systems() {
			fb.conns[s.Serial()] = s.Connect(manager)
		}
		fb.blackout = func(on bool) {
			mode := map[bool]emu.LinkMode{true: emu.LinkBlackhole, false: emu.LinkUp}[on]
			fb.fab.System(fb.hole).SetManagerLink(manager, mode)
		}
	}
	for _, s := range fb.fab.Systems() {
		// Not through the manager's connections: over the wire, with an
		// injected latency, every reset would cost a round of commands
		// per system, sequentially.
		fb.setup[s.Serial()] = s.Connect("bench-setup")
	}
	if err := fb.topo.Establish(ctx, clock.Real(), fb.conns, 1, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range fb.topo.Sources() {
		sources[serial] = ackRecorder{StorageSystem: fb.conns[serial], fb: fb}
	}
	t := freeze.DefaultTimings()
	t.PollInterval = time.Hour // the bench measures the pushed event path
	if requestTimeout > 0 {
		t.RequestTimeout = requestTimeout
	}
	opts := freeze.Options{Timings: t, Systems: sources, Epoch: 1}
	for _, f := range tune {
		f(&opts)
	}
	fb.core = freeze.New(opts)
	pprof.Do(ctx, pprof.Labels("side", "manager"), func(ctx context.Context) { go fb.core.Run(ctx) })
	if err := fb.core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: fb.topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
		b.Fatal(err)
	}
	// The trigger, as the storage system stamped it. The storage side's
	// account of when each system froze is its command log (read after
	// the sample): an observer of every system's events, as before, woke
	// 64 goroutines for the 512 suspend events of each freeze, on the 2
	// cores the freeze was running on.
	events, _ := fb.fab.System(fb.topo.Sources()[0]).Connect("observer").Events(ctx)
	go func() {
		for ev := range events {
			if ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonPath {
				fb.mu.Lock()
				fb.trigger = ev
				fb.mu.Unlock()
				fb.poke()
			}
		}
	}()
	return fb
}

// resetSpec is what reset sends one primary.
type resetSpec struct {
	paths []hal.PathSpec
	lsss  []hal.LSS
	pairs []hal.PairSpec
}

// reset re-establishes every pair and puts the group back to mirroring.
func (fb *freezeBench) reset(b *testing.B) {
	ctx := context.Background()
	if fb.resets == nil {
		fb.sources = fb.topo.Sources()
		fb.lp = fb.topo.LSSPairs()[fb.sources[0]][0]
		fb.resets = map[hal.Serial]resetSpec{}
		for _, serial := range fb.sources {
			var r resetSpec
			for _, p := range fb.topo.Paths {
				if p.Source.Serial == serial {
					r.paths = append(r.paths, p)
					r.lsss = append(r.lsss, p.Source.LSS)
				}
			}
			for _, p := range fb.topo.Pairs {
				if p.Source.Serial == serial {
					r.pairs = append(r.pairs, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
				}
			}
			fb.resets[serial] = r
		}
	}
	for _, serial := range fb.sources {
		if serial == fb.hole {
			continue
		}
		c, r := fb.setup[serial], fb.resets[serial]
		if err := c.Thaw(ctx, 1, r.lsss); err != nil {
			b.Fatal(err)
		}
		if err := c.EstablishPaths(ctx, 1, r.paths); err != nil {
			b.Fatal(err)
		}
		if err := c.EstablishPairs(ctx, 1, r.pairs); err != nil {
			b.Fatal(err)
		}
	}
	for _, serial := range fb.sources {
		for serial != fb.hole {
			ps, err := fb.setup[serial].QueryPairs(ctx, 1)
			if err != nil {
				b.Fatal(err)
			}
			if !slices.ContainsFunc(ps, func(p hal.PairStatus) bool {
				return p.Source.Serial == serial && p.State != hal.FullDuplex
			}) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The last acknowledgement is recorded as the driver returns it, before
	// the core's loop takes the answer: the group may still be Freezing
	// (and with a black-holed system it is until that system's freeze
	// times out). Restart refuses a group whose fan-out runs; wait for it
	// to settle.
	restartSettled(b, fb.core)
	fb.cmdSeq = fb.fab.LastCommand() // the reset's own are of no sample
	fb.mu.Lock()
	clear(fb.sent)
	clear(fb.acks)
	clear(fb.frozen)
	fb.trigger = hal.Event{}
	fb.mu.Unlock()
}

// restartSettled puts the group back to mirroring once its freeze has
// settled: Restart refuses (ErrBusy) while the fan-out runs.
func restartSettled(b *testing.B, core *freeze.Core) {
	for {
		err := core.Restart(context.Background(), "cg")
		if err == nil {
			return
		}
		if !errors.Is(err, freeze.ErrBusy) {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
}

// span is the first and the last of the instants of m.
func span(m map[hal.Serial]time.Time) (first, last time.Time) {
	for _, t := range m {
		if first.IsZero() || t.Before(first) {
			first = t
		}
		if t.After(last) {
			last = t
		}
	}
	return first, last
}

// await waits until done (called with fb.mu held) holds, woken by what
// the recorders poke rather than by polling, or until deadline.
func (fb *freezeBench) await(deadline <-chan time.Time, done func() bool) bool {
	for {
		fb.mu.Lock()
		ok := done()
		fb.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-fb.changed:
		case <-deadline:
			return false
		}
	}
}

// poke tells once that something it waits for was recorded.
func (fb *freezeBench) poke() {
	select {
	case fb.changed <- struct{}{}:
	default:
	}
}

// sample is one freeze, split where the core and the storage hand over.
type sample struct {
	latency  time.Duration // trigger event stamped -> last acknowledgement
	skew     time.Duration // first -> last system frozen, storage side
	detect   time.Duration // trigger event stamped -> first freeze sent (delivery, the core's decision)
	dispatch time.Duration // first -> last freeze sent (the fan-out)
	ret      time.Duration // last system frozen -> last acknowledgement (the way back)
	// cpu is the CPU time the whole process (manager, emulator, lab,
	// runtime) used from the trigger to the last acknowledgement seen:
	// the work of a freeze, which the machine's load does not change.
	cpu time.Duration
	// gc: the garbage collector ended a cycle within the sample (one
	// still running at its end is not seen).
	gc bool
}

// gcCycles is how many cycles the garbage collector has completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// collectBefore, in a layout's name "-gc", runs the garbage collector at
// the end of each untimed reset. In this process the manager shares its
// heap with the emulated storage and the bench's resets, whose garbage
// (78 % of the bytes allocated, by the memory profile) starts most of
// the collector's cycles; a cycle marks for 6-7 ms, on a share of the 2
// cores: back to back, a cycle was marking for an eighth of the run
// (GODEBUG=gctrace=1: 19 cycles in 0.94 s of 200 samples). After a
// collection, what a freeze allocates itself is far from the next
// cycle's trigger: such a layout measures the freeze without the garbage
// of its neighbours (gc-samples counts the samples within which a cycle
// still ended).
func collectBefore(on bool) {
	if on {
		runtime.GC()
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// once fails one path of the first primary and waits until every system
// but the black-holed one acknowledged the freeze. It waits on what the
// recorders poke, not by polling: a poll every 50 µs took its share of
// the 2 cores the freeze runs on.
func (fb *freezeBench) once(b *testing.B) (sample, bool) {
	lp := fb.lp // set by reset, which runs first
	cpu0, gc0 := cpuTime(b), gcCycles()
	fb.fab.SetPath(lp, false)
	defer fb.fab.SetPath(lp, true)
	want := len(fb.sources)
	if fb.hole != "" {
		want--
	}
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	if !fb.await(deadline.C, func() bool { return len(fb.acks) == want && !fb.trigger.At.IsZero() }) {
		fb.mu.Lock()
		b.Logf("sample lost: %d acks, %d frozen of %d, trigger seen %v",
			len(fb.acks), len(fb.frozen), want, !fb.trigger.At.IsZero())
		fb.mu.Unlock()
		return sample{}, false
	}
	fb.mu.Lock()
	defer fb.mu.Unlock()
	// Every acknowledged freeze was judged, and logged, before its
	// answer left the storage system.
	recs, dropped := fb.fab.Commands(fb.cmdSeq)
	if dropped > 0 {
		b.Fatalf("the emulator's command log dropped %d records: make it longer", dropped)
	}
	for _, r := range recs {
		if _, ok := fb.frozen[r.Serial]; !ok && r.Op == emu.OpFreeze && r.Manager == manager && r.Outcome == emu.OutcomeOK {
			fb.frozen[r.Serial] = r.At
		}
	}
	if len(recs) > 0 {
		fb.cmdSeq = recs[len(recs)-1].Seq
	}
	_, lastAck := span(fb.acks)
	firstFrozen, lastFrozen := span(fb.frozen)
	firstSent, lastSent := span(fb.sent)
	return sample{latency: lastAck.Sub(fb.trigger.At), skew: lastFrozen.Sub(firstFrozen),
		detect: firstSent.Sub(fb.trigger.At), dispatch: lastSent.Sub(firstSent), ret: lastAck.Sub(lastFrozen),
		cpu: cpuTime(b) - cpu0, gc: gcCycles() != gc0}, true
}

// report prints the samples' figures: freeze (event -> last ack) and
// skew, the targets of docs/performance.md, and the parts of the freeze
// (detect, dispatch, return) that say where its time went.
func report(b *testing.B, samples []sample) {
	latency.Report(b, "freeze", part(samples, func(s sample) time.Duration { return s.latency }))
	latency.Report(b, "skew", part(samples, func(s sample) time.Duration { return s.skew }))
	latency.Report(b, "detect", part(samples, func(s sample) time.Duration { return s.detect }))
	latency.Report(b, "dispatch", part(samples, func(s sample) time.Duration { return s.dispatch }))
	latency.Report(b, "return", part(samples, func(s sample) time.Duration { return s.ret }))
	latency.Report(b, "cpu", part(samples, func(s sample) time.Duration { return s.cpu }))
	b.ReportMetric(float64(gcSamples(samples)), "gc-samples")
}

// gcSamples counts the samples within which the collector ended a cycle.
func gcSamples(samples []sample) int {
	n := 0
	for _, s := range samples {
		if s.gc {
			n++
		}
	}
	return n
}

// part is one figure of every sample.
func part(samples []sample, f func(sample) time.Duration) []time.Duration {
	out := make([]time.Duration, len(samples))
	for i, s := range samples {
		out[i] = f(s)
	}
	return out
}

// BenchmarkEventToFrozen prints, per layout, the time from the
// emulator-stamped suspend event to the last freeze acknowledged (p50,
// p99) and the freeze skew between the first and the last storage system
// (p99), with and without one black-holed system.
//
// A layout with a black-holed system waits out that system's freeze (the
// request timeout, 250 ms) before each sample: the process is idle, and
// an idle process freezes slower (its threads asleep, its caches cold:
// in-process p50 about twice the back-to-back figure). The figure it is
// compared with, "adds 0 ms to the others' p99", is therefore
// blackhole=false-idle: no black hole, the same 250 ms of idleness
// before each sample. blackhole=false takes its samples back to back;
// blackhole=false-gc too, with the garbage of the resets collected before
// each (collectBefore).
func BenchmarkEventToFrozen(b *testing.B) {
	const holeTimeout = 250 * time.Millisecond
	variants := []struct {
		name    string
		hole    bool
		idle    time.Duration
		collect bool
	}{{"blackhole=false", false, 0, false}, {"blackhole=false-gc", false, 0, true},
		{"blackhole=false-idle", false, holeTimeout, false}, {"blackhole=true", true, 0, false}}
	for _, overWire := range []bool{false, true} {
		for _, n := range []int{8, 32, 128} {
			for _, v := range variants {
				name := fmt.Sprintf("%s/%dsystems-x16LSS/%s",
					map[bool]string{false: "in-process", true: "loopback"}[overWire], n, v.name)
				b.Run(name, func(b *testing.B) {
					var rt time.Duration
					if v.hole {
						rt = holeTimeout
					}
					fb := setupFreezeBench(b, n, overWire, rt)
					if v.hole {
						fb.hole = fb.topo.Sources()[n-1]
						fb.blackout(true)
					}
					samples := 200
					if n == 128 || v.hole || v.idle > 0 {
						samples = 60
					}
					var got []sample
					lost := 0
					for b.Loop() {
						for range samples {
							b.StopTimer()
							fb.reset(b)
							collectBefore(v.collect)
							time.Sleep(v.idle)
							b.StartTimer()
							s, ok := fb.once(b)
							if !ok {
								lost++
								continue
							}
							got = append(got, s)
						}
					}
					b.ReportMetric(float64(lost), "lost-samples")
					report(b, got)
				})
			}
		}
	}
}

// profileWindow, when LOCKSTEP_BENCH_WINDOW_PROFILES names a directory,
// profiles the CPU of one sample of the 32-system layout, from its
// trigger to its last acknowledgement only, at 1 kHz, into
// DIR/32sys-N.pprof: what the process spends on the freeze itself,
// without the untimed resets between samples. With the bench's labels,
// `go tool pprof -tags freeze.test DIR/*.pprof` splits it between the
// emulated storage and the manager. It returns the stop.
func profileWindow(b *testing.B, n, i int) func() {
	dir := os.Getenv("LOCKSTEP_BENCH_WINDOW_PROFILES")
	if dir == "" || n != 32 {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("32sys-%d.pprof", i)))
	if err != nil {
		b.Fatal(err)
	}
	runtime.SetCPUProfileRate(1000) // StartCPUProfile then warns that it cannot set 100 Hz, and keeps 1 kHz
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

// BenchmarkFreezeLimit is docs/performance.md's closeness to the limit: with
// 1 ms of one-way latency on every storage connection (the lab's latency
// fault, loopback TLS), the p99 of event -> last acknowledgement for 32
// systems × 16 LSSs over the same for 1 system × 16 LSSs. The latency is
// the floor of any freeze; a core that fans out concurrently, with one
// command per system, freezes 32 about as fast as one (target ratio
// <= 1.5). The samples of the two layouts alternate, so that the load of
// the machine falls on both alike.
func BenchmarkFreezeLimit(b *testing.B) { freezeLimit(b, false) }

// BenchmarkFreezeLimitGC is FreezeLimit with the resets' garbage
// collected before each sample (collectBefore), as EventToFrozen's
// blackhole=false-gc. A bench of its own: collections interleaved with
// FreezeLimit's samples would spare those too.
func BenchmarkFreezeLimitGC(b *testing.B) { freezeLimit(b, true) }

func freezeLimit(b *testing.B, collect bool) {
	const oneWay = time.Millisecond
	layouts := []struct {
		n    int
		fb   *freezeBench
		got  []sample
		lost int
	}{{n: 1}, {n: 32}}
	for i := range layouts {
		fb := setupFreezeBench(b, layouts[i].n, true, 0)
		for _, sc := range fb.topo.Systems {
			if err := fb.srv.Inject(lab.Fault{Kind: "latency", System: string(sc.Serial), Endpoint: -1,
				Latency: oneWay.String()}); err != nil {
				b.Fatal(err)
			}
		}
		layouts[i].fb = fb
	}
	samples := 200
	for b.Loop() {
		for range samples {
			for i := range layouts {
				l := &layouts[i]
				b.StopTimer()
				l.fb.reset(b)
				collectBefore(collect)
				b.StartTimer()
				stop := profileWindow(b, l.n, len(l.got))
				s, ok := l.fb.once(b)
				stop()
				if !ok {
					l.lost++
					continue
				}
				l.got = append(l.got, s)
			}
		}
	}
	reportRatio(b, layouts[0].got, layouts[1].got, layouts[0].lost+layouts[1].lost)
}

// reportRatio prints the closeness-to-the-limit figures: the freezes of
// 1 and of 32 systems, and the ratio of their p99s.
func reportRatio(b *testing.B, one, many []sample, lost int) {
	b.ReportMetric(float64(lost), "lost-samples")
	lat := func(s sample) time.Duration { return s.latency }
	latency.Report(b, "freeze-1sys", part(one, lat))
	latency.Report(b, "freeze-32sys", part(many, lat))
	b.ReportMetric(float64(gcSamples(one)+gcSamples(many)), "gc-samples")
	if len(one) > 0 && len(many) > 0 {
		p1, p32 := latency.Quantile(part(one, lat), 0.99), latency.Quantile(part(many, lat), 0.99)
		b.ReportMetric(float64(p32)/float64(p1), "p99-ratio-32v1")
	}
}

// BenchmarkHeartbeatLossDetection is §11's heartbeat loss detection on
// the real clock (the fake-clock tests prove the rule): 8 systems
// in-process, the heartbeat on at an interval of 100 ms with the
// default detection window of two intervals. One system is black-holed
// right after it answered a heartbeat; the figure is the time from that
// answer to the first freeze the core sends the others (freeze on
// doubt). Target: 3 × interval + 50 ms (350 ms): the window, up to one
// interval until the next tick looks, and the scheduling of a real
// clock.
func BenchmarkHeartbeatLossDetection(b *testing.B) {
	const interval = 100 * time.Millisecond
	fb := setupFreezeBench(b, 8, false, 250*time.Millisecond, func(o *freeze.Options) {
		o.Heartbeat = true
		o.Timings.Interval = interval
		o.Timings.DetectionWindow = 2 * interval
		o.Timings.RetryInterval = 50 * time.Millisecond
	})
	victim := fb.topo.Sources()[len(fb.topo.Sources())-1]
	var got []time.Duration
	lost := 0
	for b.Loop() {
		for range 20 {
			b.StopTimer()
			fb.reset(b)
			b.StartTimer()
			d, ok := fb.detectOnce(b, victim)
			if !ok {
				lost++
				continue
			}
			got = append(got, d)
		}
	}
	b.ReportMetric(float64(lost), "lost-samples")
	latency.Report(b, "detect", got)
	b.ReportMetric(float64((3*interval + 50*time.Millisecond).Milliseconds()), "target-ms")
}

// detectOnce waits for a heartbeat answer from victim, black-holes it at
// once, and returns the time from that answer to the first freeze the
// core sent; then it lets the victim answer again and waits until every
// system acknowledged the freeze, so that the next reset finds the group
// settled.
func (fb *freezeBench) detectOnce(b *testing.B, victim hal.Serial) (time.Duration, bool) {
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	wait := func(done func() bool) bool { return fb.await(deadline.C, done) }
	fb.mu.Lock()
	before := fb.beats[victim]
	fb.mu.Unlock()
	if !wait(func() bool { return fb.beats[victim].After(before) }) {
		b.Logf("sample lost: no heartbeat answered by %s", victim)
		return 0, false
	}
	fb.hole = victim
	fb.blackout(true)
	fb.mu.Lock()
	lastReply := fb.beats[victim]
	fb.mu.Unlock()
	if !wait(func() bool { return len(fb.sent) > 0 }) {
		fb.blackout(false)
		fb.hole = ""
		b.Logf("sample lost: no freeze sent after %s went silent", victim)
		return 0, false
	}
	fb.mu.Lock()
	first, _ := span(fb.sent)
	fb.mu.Unlock()
	fb.blackout(false)
	fb.hole = ""
	if !wait(func() bool { return len(fb.acks) == len(fb.sources) }) {
		b.Logf("sample lost: the freeze did not settle")
		return 0, false
	}
	return first.Sub(lastReply), true
}
