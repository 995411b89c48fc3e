package scenario

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/freeze"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	labsrv "github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// wireSpeed scales storage time for the runs over real sockets: the CG
// timeouts of 60 s and 120 s last 3 s and 6 s of wall time.
const wireSpeed = 20

// setupOverWire serves the standard layout from a lab server on loopback
// TLS and points the real core at it through direct drivers. The lab and
// the core run on clocks of the same scale, so that durations (heartbeat
// timeout, request deadlines) mean the same on both sides of the wire.
func setupOverWire(ctx context.Context, t *testing.T, opt Options) (*lab, *labsrv.Server) {
	t.Helper()
	topo := topology.Standard(4, topology.DefaultLSSs())
	cfg := &labsrv.Config{Speed: wireSpeed, Topology: topo}
	for _, sc := range topo.Systems {
		cfg.Systems = append(cfg.Systems, labsrv.System{SystemConfig: sc, User: "lockstep",
			Password: "pw-" + string(sc.Serial), Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
	}
	labClk, coreClk := clock.NewScaled(wireSpeed), clock.NewScaled(wireSpeed)
	srv, err := labsrv.Start(ctx, cfg, labsrv.Options{Clock: labClk,
		ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Wait)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	conns := map[hal.Serial]hal.StorageSystem{}
	for _, st := range srv.Status() {
		serial := hal.Serial(st.Serial)
		d := direct.New(ctx, direct.Options{Serial: serial, Endpoints: st.Endpoints, Manager: manager,
			User: "lockstep", Password: "pw-" + st.Serial, TLS: wire.ClientTLSConfig(pool, "127.0.0.1"),
			Clock: coreClk, BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
		t.Cleanup(func() { d.Close() })
		conns[serial] = d
	}
	l := &lab{clk: labClk, fab: srv.Fabric(), topo: topo, res: &Result{}, start: labClk.Now()}
	// Setup, not the scenario: on a loaded host the connections and the
	// establish calls take longer than the drivers' default deadline
	// (a few seconds of storage time, a fraction of a second of wall
	// time at this speed), so wait for the connections and give the
	// calls ten minutes of storage time (30 s of wall time).
	for _, c := range conns {
		for end := time.Now().Add(30 * time.Second); c.(*direct.System).Cluster() < 0; {
			if time.Now().After(end) {
				t.Fatalf("%s: not connected after 30 s", c.Serial())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	setupCtx, cancelSetup := clock.WithTimeout(ctx, coreClk, 10*time.Minute)
	defer cancelSetup()
	if err := topo.Establish(setupCtx, coreClk, conns, 1, time.Minute); err != nil {
		t.Fatal(err)
	}
	sources := map[hal.Serial]hal.StorageSystem{}
	for _, serial := range topo.Sources() {
		sources[serial] = conns[serial]
	}
	l.core = freeze.New(freeze.Options{Clock: coreClk, Timings: opt.Timings, Systems: sources, Epoch: 1,
		Heartbeat: opt.Heartbeat, Observer: observer{l}})
	coreCtx, stop := context.WithCancel(ctx)
	l.stopCore, l.coreDone = stop, make(chan error, 1)
	go func() { l.coreDone <- l.core.Run(coreCtx) }()
	g := freeze.Group{Name: group, Pairs: topo.LSSPairs(), LowestCG: lowestCG(topo)}
	if err := l.core.SetGroups(ctx, []freeze.Group{g}); err != nil {
		t.Fatal(err)
	}
	if opt.Heartbeat {
		if err := l.waitArmed(ctx); err != nil {
			t.Fatal(err)
		}
	}
	observeStorage(ctx, l)
	return l, srv
}

func inject(t *testing.T, srv *labsrv.Server, f labsrv.Fault) {
	if err := srv.Inject(f); err != nil {
		t.Error(err)
	}
}

// TestScenariosOverTheWire runs S1 and S6 with the core driving the lab
// across real TLS sockets: the core is proven over the wire, not only
// in-process.
func TestScenariosOverTheWire(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for seconds of wall time")
	}
	p1 := string(topology.PrimarySerial(0))
	for _, tc := range []struct {
		name       string
		heartbeat  bool
		consistent bool
		fault      func(t *testing.T, srv *labsrv.Server)
	}{
		{"S1 heartbeat off", false, false, s1OverWire},
		{"S1 heartbeat on", true, true, s1OverWire},
		{"S6 heartbeat on", true, true, func(t *testing.T, srv *labsrv.Server) {
			inject(t, srv, labsrv.Fault{Kind: "paths", System: p1})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opt := Options{Heartbeat: tc.heartbeat, After: 80 * time.Second}
			opt.defaults()
			l, srv := setupOverWire(ctx, t, opt)
			r, err := l.play(ctx, opt, func() { tc.fault(t, srv) })
			if err != nil {
				t.Fatal(err)
			}
			timeline := strings.Join(r.Timeline, "\n")
			if r.Consistent() != tc.consistent {
				t.Fatalf("consistent = %v, want %v: %s\n%s", r.Consistent(), tc.consistent, r.Report, timeline)
			}
			if r.Recoverable && !r.Consistent() {
				t.Fatalf("Recoverable for an inconsistent image\n%s", timeline)
			}
			if r.Writes < 100 {
				t.Fatalf("only %d writes\n%s", r.Writes, timeline)
			}
			t.Logf("%s: %s, recoverable=%v, %d writes", tc.name, r.Report, r.Recoverable, r.Writes)
		})
	}
}

// s1OverWire cuts the manager's connections to primary 1 on both cluster
// endpoints, then its paths.
func s1OverWire(t *testing.T, srv *labsrv.Server) {
	p1 := string(topology.PrimarySerial(0))
	inject(t, srv, labsrv.Fault{Kind: "manager", System: p1, Endpoint: -1, Mode: "down", Manager: manager})
	inject(t, srv, labsrv.Fault{Kind: "paths", System: p1})
}
