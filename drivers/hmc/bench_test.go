package hmc_test

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
	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/latency"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// The HMC bench of docs/performance.md: event -> every storage system
// frozen, 32 primaries × 16 LSSs in one consistency group, through two
// HMCs fronting 16 primaries each at the default HMC timing, beside the
// same 32 systems reached directly. Each layout has its own lab (loopback
// TLS, real clock) and its own freeze core (daemon/freeze), driven as
// daemon/freeze's BenchmarkEventToFrozen drives it; the samples of the
// two alternate, so that the load of the machine falls on both alike.

const benchManager = "bench"

// benchAcks notes when each system first acknowledged a freeze.
type benchAcks struct {
	hal.StorageSystem
	mu   *sync.Mutex
	acks map[hal.Serial]time.Time
}

func (a benchAcks) Freeze(ctx context.Context, e hal.Epoch, p []hal.LSSPair) error {
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

type layout struct {
	name    string
	topo    *topology.Topology
	fab     *emu.Fabric
	setup   map[hal.Serial]hal.StorageSystem // direct, for the untimed resets
	core    *freeze.Core
	mu      sync.Mutex
	acks    map[hal.Serial]time.Time
	trigger time.Time // the path failure, stamped by the emulator
}

// newLayout starts a lab of n primaries and n secondaries; with viaHMC
// the freeze core reaches the primaries through two HMCs fronting n/2
// each, otherwise directly.
//
// oneWay > 0 adds that latency, one way, on every storage connection of
// the core: the systems' endpoints (direct) or the HMCs' (through HMCs),
// as the lab's latency faults.
func newLayout(b *testing.B, n int, viaHMC bool, oneWay time.Duration) *layout {
	ctx, cancel := context.WithCancel(context.Background())
	var lsss []emu.LSSConfig
	for l := range 16 {
		lsss = append(lsss, emu.LSSConfig{LSS: hal.LSS(0x10 + l), Type: hal.FB, Volumes: 1})
	}
	ly := &layout{name: map[bool]string{false: "direct", true: "hmc"}[viaHMC], topo: topology.Standard(n, lsss),
		setup: map[hal.Serial]hal.StorageSystem{}, acks: map[hal.Serial]time.Time{}}
	cfg := &lab.Config{Speed: 1, Topology: ly.topo}
	for _, sc := range ly.topo.Systems {
		cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "u", Password: "p",
			Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
	}
	sources := ly.topo.Sources()
	if viaHMC {
		for i, half := range [][]hal.Serial{sources[:n/2], sources[n/2:]} {
			h := lab.HMC{User: "hmcuser", Password: "hmc-pw", Endpoint: "127.0.0.1:0"}
			h.Name, h.Systems = fmt.Sprintf("HMC%d", i+1), half
			h.Processing, h.LinkLatency = emu.DefaultHMCProcessing, emu.DefaultHMCLinkLatency
			cfg.HMCs = append(cfg.HMCs, h)
		}
	}
	srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(b.TempDir(), "lab.sock")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cancel(); srv.Wait() })
	ly.fab = srv.Fabric()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	for _, st := range srv.Status() {
		d := direct.New(ctx, direct.Options{Serial: hal.Serial(st.Serial), Endpoints: st.Endpoints, Manager: benchManager,
			User: "u", Password: "p", TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
		b.Cleanup(func() { d.Close() })
		ly.setup[d.Serial()] = d
	}
	if err := ly.topo.Establish(ctx, clock.Real(), ly.setup, 1, 5*time.Minute); err != nil {
		b.Fatal(err)
	}
	systems := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range sources {
		systems[serial] = ly.setup[serial]
	}
	if viaHMC {
		for _, st := range srv.HMCStatus() {
			c, err := hmc.New(hmc.Options{Consoles: []hmc.Console{{Addr: st.Endpoint, Name: st.Name}},
				Manager: benchManager, User: "hmcuser", Password: "hmc-pw", TLS: wire.ClientTLSConfig(pool, "127.0.0.1")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			for _, l := range st.Systems {
				systems[hal.Serial(l.Serial)] = c.System(hal.Serial(l.Serial))
			}
		}
	}
	core := map[hal.Serial]hal.StorageSystem{}
	for serial, s := range systems {
		core[serial] = benchAcks{StorageSystem: s, mu: &ly.mu, acks: ly.acks}
	}
	t := freeze.DefaultTimings()
	t.PollInterval = time.Hour // the bench measures the pushed event path
	ly.core = freeze.New(freeze.Options{Timings: t, Systems: core, Epoch: 1})
	go ly.core.Run(ctx)
	if err := ly.core.SetGroups(ctx, []freeze.Group{{Name: "cg", Pairs: ly.topo.LSSPairs(), LowestCG: time.Minute}}); err != nil {
		b.Fatal(err)
	}
	if oneWay > 0 {
		if viaHMC {
			for _, st := range srv.HMCStatus() {
				if err := srv.Inject(lab.Fault{Kind: "hmc", HMC: st.Name, Latency: oneWay.String()}); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			for _, serial := range sources {
				if err := srv.Inject(lab.Fault{Kind: "latency", System: string(serial), Endpoint: -1,
					Latency: oneWay.String()}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	// The resets go through in-process connections: untimed, and not
	// slowed by the latency faults.
	for serial := range ly.setup {
		ly.setup[serial] = ly.fab.System(serial).Connect("bench-setup")
	}
	// The emulator's stamp of the path failure that triggers each freeze.
	events, _ := ly.fab.System(sources[0]).Connect("observer").Events(ctx)
	go func() {
		for ev := range events {
			if ev.Kind == hal.EventSuspend && ev.Reason == hal.ReasonPath {
				ly.mu.Lock()
				ly.trigger = ev.At
				ly.mu.Unlock()
			}
		}
	}()
	return ly
}

// reset re-establishes every pair (directly, untimed) and puts the group
// back to mirroring.
func (ly *layout) reset(b *testing.B) {
	ctx := context.Background()
	for _, serial := range ly.topo.Sources() {
		c := ly.setup[serial]
		var paths []hal.PathSpec
		var lsss []hal.LSS
		var pairs []hal.PairSpec
		for _, p := range ly.topo.Paths {
			if p.Source.Serial == serial {
				paths, lsss = append(paths, p), append(lsss, p.Source.LSS)
			}
		}
		for _, p := range ly.topo.Pairs {
			if p.Source.Serial == serial {
				pairs = append(pairs, hal.PairSpec{VolumePair: p, Mode: hal.Resync})
			}
		}
		for _, err := range []error{c.Thaw(ctx, 1, lsss), c.EstablishPaths(ctx, 1, paths), c.EstablishPairs(ctx, 1, pairs)} {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, serial := range ly.topo.Sources() {
		for {
			ps, err := ly.setup[serial].QueryPairs(ctx, 1)
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
	// The last acknowledgement is recorded as the driver returns it,
	// before the core's loop takes the answer: Restart refuses the group
	// while its fan-out runs (ErrBusy). Wait for it to settle.
	for {
		err := ly.core.Restart(ctx, "cg")
		if err == nil {
			break
		}
		if !errors.Is(err, freeze.ErrBusy) {
			b.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	ly.mu.Lock()
	clear(ly.acks)
	ly.trigger = time.Time{}
	ly.mu.Unlock()
}

// once fails one path of the first primary and returns the time from
// the emulator's event to the last system's freeze acknowledgement.
func (ly *layout) once(b *testing.B) (time.Duration, bool) {
	lp := ly.topo.LSSPairs()[ly.topo.Sources()[0]][0]
	ly.fab.SetPath(lp, false)
	defer ly.fab.SetPath(lp, true)
	want := len(ly.topo.Sources())
	deadline := time.Now().Add(5 * time.Second)
	for {
		ly.mu.Lock()
		done := len(ly.acks) == want && !ly.trigger.IsZero()
		var last time.Time
		for _, t := range ly.acks {
			if t.After(last) {
				last = t
			}
		}
		trigger := ly.trigger
		ly.mu.Unlock()
		if done {
			return last.Sub(trigger), true
		}
		if time.Now().After(deadline) {
			b.Logf("%s: sample lost: %d of %d acks", ly.name, len(ly.acks), want)
			return 0, false
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// BenchmarkEventToFrozenHMCvsDirect prints p50 and p99 of event -> all
// frozen for 32 systems × 16 LSSs directly and through two HMCs (16
// systems each, default timing), and the ratio of the p99s (target:
// at most 1.5).
func BenchmarkEventToFrozenHMCvsDirect(b *testing.B) {
	const n, samples = 32, 200
	layouts := []*layout{newLayout(b, n, false, 0), newLayout(b, n, true, 0)}
	lat := make([][]time.Duration, len(layouts))
	lost := 0
	for b.Loop() {
		for range samples {
			for i, ly := range layouts {
				b.StopTimer()
				ly.reset(b)
				b.StartTimer()
				d, ok := ly.once(b)
				if !ok {
					lost++
					continue
				}
				lat[i] = append(lat[i], d)
			}
		}
	}
	b.ReportMetric(float64(lost), "lost-samples")
	latency.Report(b, "direct", lat[0])
	latency.Report(b, "hmc", lat[1])
	p99d, p99h := latency.Quantile(lat[0], 0.99), latency.Quantile(lat[1], 0.99)
	if p99d > 0 {
		b.ReportMetric(float64(p99h)/float64(p99d), "p99-hmc/direct")
	}
	b.Logf("event -> %d systems x 16 LSS frozen: direct p50 %v p99 %v; via 2 HMCs p50 %v p99 %v; p99 ratio %.2f (target <= 1.5)",
		n, latency.Quantile(lat[0], 0.5), p99d, latency.Quantile(lat[1], 0.5), p99h, float64(p99h)/float64(max(p99d, 1)))
}

// BenchmarkFreezeLimitHMC is BenchmarkEventToFrozenHMCvsDirect with 1 ms
// of one-way latency on every storage connection of the core
// (docs/performance.md: through two HMCs fronting 16 systems each, p99 at most 1.5 ×
// direct, beside daemon/freeze's BenchmarkFreezeLimit).
func BenchmarkFreezeLimitHMC(b *testing.B) {
	const n, samples = 32, 200
	layouts := []*layout{newLayout(b, n, false, time.Millisecond), newLayout(b, n, true, time.Millisecond)}
	lat := make([][]time.Duration, len(layouts))
	lost := 0
	for b.Loop() {
		for range samples {
			for i, ly := range layouts {
				b.StopTimer()
				ly.reset(b)
				b.StartTimer()
				d, ok := ly.once(b)
				if !ok {
					lost++
					continue
				}
				lat[i] = append(lat[i], d)
			}
		}
	}
	b.ReportMetric(float64(lost), "lost-samples")
	latency.Report(b, "direct-1ms", lat[0])
	latency.Report(b, "hmc-1ms", lat[1])
	if p99d := latency.Quantile(lat[0], 0.99); p99d > 0 {
		b.ReportMetric(float64(latency.Quantile(lat[1], 0.99))/float64(p99d), "p99-hmc/direct-1ms")
	}
}
