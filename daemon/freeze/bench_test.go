package freeze_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
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

// ackRecorder notes when each system acknowledged a freeze.
type ackRecorder struct {
	hal.StorageSystem
	mu   *sync.Mutex
	acks map[hal.Serial]time.Time
}

func (a ackRecorder) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
	err := a.StorageSystem.Freeze(ctx, e, p)
	if err == nil {
		a.mu.Lock()
		if _, ok := a.acks[a.Serial()]; !ok {
			a.acks[a.Serial()] = time.Now()
		}
		a.mu.Unlock()
	}
	return err
}

type freezeBench struct {
	fab      *emu.Fabric
	topo     *topology.Topology
	conns    map[hal.Serial]hal.StorageSystem // manager's, all systems
	setup    map[hal.Serial]hal.StorageSystem // in-process, for the untimed resets
	srv      *lab.Server                      // nil in-process
	core     *freeze.Core
	mu       sync.Mutex
	acks     map[hal.Serial]time.Time
	frozen   map[hal.Serial]time.Time // storage side: first freeze event per system
	trigger  hal.Event
	since    time.Time  // the current sample's reset ended: older events are not of it
	stale    int        // freeze events of an earlier sample seen after it
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
func setupFreezeBench(b *testing.B, n int, overWire bool, requestTimeout time.Duration) *freezeBench {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var lsss []emu.LSSConfig
	for l := range 16 {
		lsss = append(lsss, emu.LSSConfig{LSS: hal.LSS(0x10 + l), Type: hal.FB, Volumes: 1})
	}
	fb := &freezeBench{topo: topology.Standard(n, lsss), conns: map[hal.Serial]hal.StorageSystem{},
		setup: map[hal.Serial]hal.StorageSystem{},
		acks:  map[hal.Serial]time.Time{}, frozen: map[hal.Serial]time.Time{}}
	if overWire {
		cfg := &lab.Config{Speed: 1, Topology: fb.topo}
		for _, sc := range fb.topo.Systems {
			cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "u", Password: "p",
				Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
		}
		srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(b.TempDir(), "lab.sock")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { cancel(); srv.Wait() })
		fb.fab, fb.srv = srv.Fabric(), srv
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(srv.CAPEM())
		for _, st := range srv.Status() {
			d := direct.New(b.Context(), direct.Options{Serial: hal.Serial(st.Serial), Endpoints: st.Endpoints, Manager: manager,
				User: "u", Password: "p", TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
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
		sources[serial] = ackRecorder{StorageSystem: fb.conns[serial], mu: &fb.mu, acks: fb.acks}
	}
	t := freeze.DefaultTimings()
	t.PollInterval = time.Hour // the bench measures the pushed event path
	if requestTimeout > 0 {
		t.RequestTimeout = requestTimeout
	}
	fb.core = freeze.New(freeze.Options{Timings: t, Systems: sources, Epoch: 1})
	go fb.core.Run(ctx)
	if err := fb.core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: fb.topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
		b.Fatal(err)
	}
	// The storage side's own account of when each system froze.
	for _, s := range fb.fab.Systems() {
		events, _ := s.Connect("observer").Events(ctx)
		go func() {
			for ev := range events {
				fb.mu.Lock()
				if ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonPath {
					fb.trigger = ev
				}
				// A freeze raises one event per LSS pair: those after the
				// first may still be on their way when the next sample
				// starts, and are not of it.
				if ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonFreeze && ev.At.Before(fb.since) {
					fb.stale++
				} else if _, ok := fb.frozen[ev.Serial]; !ok && ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonFreeze {
					fb.frozen[ev.Serial] = ev.At
				}
				fb.mu.Unlock()
			}
		}()
	}
	return fb
}

// reset re-establishes every pair and puts the group back to mirroring.
func (fb *freezeBench) reset(b *testing.B) {
	ctx := context.Background()
	for _, serial := range fb.topo.Sources() {
		if serial == fb.hole {
			continue
		}
		c := fb.setup[serial]
		var paths []hal.PathSpec
		var lsss []hal.LSS
		var pairs []hal.PairSpec
		for _, p := range fb.topo.Paths {
			if p.Source.Serial == serial {
				paths = append(paths, p)
				lsss = append(lsss, p.Source.LSS)
			}
		}
		for _, p := range fb.topo.Pairs {
			if p.Source.Serial == serial {
				pairs = append(pairs, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
			}
		}
		if err := c.Thaw(ctx, 1, lsss); err != nil {
			b.Fatal(err)
		}
		if err := c.EstablishPaths(ctx, 1, paths); err != nil {
			b.Fatal(err)
		}
		if err := c.EstablishPairs(ctx, 1, pairs); err != nil {
			b.Fatal(err)
		}
	}
	for _, serial := range fb.topo.Sources() {
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
	for {
		err := fb.core.Restart(ctx, "cg")
		if err == nil {
			break
		}
		if !errors.Is(err, freeze.ErrBusy) {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	fb.mu.Lock()
	clear(fb.acks)
	clear(fb.frozen)
	fb.trigger = hal.Event{}
	fb.since = time.Now() // the emulator's clock: real time
	fb.mu.Unlock()
}

// once fails one path of the first primary and waits until every system
// but the black-holed one acknowledged the freeze. It returns event ->
// last acknowledgement, and the skew between the first and the last
// system frozen (storage side).
func (fb *freezeBench) once(b *testing.B) (latency, skew time.Duration, ok bool) {
	p0 := fb.topo.Sources()[0]
	lp := fb.topo.LSSPairs()[p0][0]
	fb.fab.SetPath(lp, false)
	want := len(fb.topo.Sources())
	if fb.hole != "" {
		want--
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fb.mu.Lock()
		done := len(fb.acks) == want && len(fb.frozen) == want && !fb.trigger.At.IsZero()
		if done {
			var last time.Time
			first, lastFrozen := time.Time{}, time.Time{}
			for _, t := range fb.acks {
				if t.After(last) {
					last = t
				}
			}
			for _, t := range fb.frozen {
				if first.IsZero() || t.Before(first) {
					first = t
				}
				if t.After(lastFrozen) {
					lastFrozen = t
				}
			}
			latency, skew = last.Sub(fb.trigger.At), lastFrozen.Sub(first)
		}
		fb.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			b.Logf("sample lost: %d acks, %d frozen of %d, trigger seen %v",
				len(fb.acks), len(fb.frozen), want, !fb.trigger.At.IsZero())
			fb.fab.SetPath(lp, true)
			return 0, 0, false
		}
		time.Sleep(50 * time.Microsecond)
	}
	fb.fab.SetPath(lp, true)
	return latency, skew, true
}

// BenchmarkEventToFrozen prints, per layout, the time from the
// emulator-stamped suspend event to the last freeze acknowledged (p50,
// p99) and the freeze skew between the first and the last storage system
// (p99), with and without one black-holed system.
func BenchmarkEventToFrozen(b *testing.B) {
	for _, overWire := range []bool{false, true} {
		for _, n := range []int{8, 32, 128} {
			for _, hole := range []bool{false, true} {
				name := fmt.Sprintf("%s/%dsystems-x16LSS/blackhole=%v",
					map[bool]string{false: "in-process", true: "loopback"}[overWire], n, hole)
				b.Run(name, func(b *testing.B) {
					var rt time.Duration
					if hole {
						rt = 250 * time.Millisecond
					}
					fb := setupFreezeBench(b, n, overWire, rt)
					if hole {
						fb.hole = fb.topo.Sources()[n-1]
						fb.blackout(true)
					}
					samples := 200
					if n == 128 || hole {
						samples = 60
					}
					var lat, skew []time.Duration
					lost := 0
					for b.Loop() {
						for range samples {
							b.StopTimer()
							fb.reset(b)
							b.StartTimer()
							l, s, ok := fb.once(b)
							if !ok {
								lost++
								continue
							}
							lat, skew = append(lat, l), append(skew, s)
						}
					}
					b.ReportMetric(float64(lost), "lost-samples")
					fb.mu.Lock()
					b.ReportMetric(float64(fb.stale), "stale-freeze-events")
					fb.mu.Unlock()
					latency.Report(b, "freeze", lat)
					latency.Report(b, "skew", skew)
				})
			}
		}
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
func BenchmarkFreezeLimit(b *testing.B) {
	const oneWay = time.Millisecond
	layouts := []struct {
		n    int
		fb   *freezeBench
		lat  []time.Duration
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
				b.StartTimer()
				d, _, ok := l.fb.once(b)
				if !ok {
					l.lost++
					continue
				}
				l.lat = append(l.lat, d)
			}
		}
	}
	one, many := layouts[0], layouts[1]
	b.ReportMetric(float64(one.lost+many.lost), "lost-samples")
	latency.Report(b, "freeze-1sys", one.lat)
	latency.Report(b, "freeze-32sys", many.lat)
	if len(one.lat) > 0 && len(many.lat) > 0 {
		p1, p32 := latency.Quantile(one.lat, 0.99), latency.Quantile(many.lat, 0.99)
		b.ReportMetric(float64(p32)/float64(p1), "p99-ratio-32v1")
	}
}
