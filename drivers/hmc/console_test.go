package hmc_test

import (
	"context"
	"crypto/x509"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// reachLog records a Driver's reachability reports.
type reachLog struct {
	mu  sync.Mutex
	ups []bool
}

func (r *reachLog) hear(up, _ bool, _ string) { r.mu.Lock(); r.ups = append(r.ups, up); r.mu.Unlock() }
func (r *reachLog) get() []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bool(nil), r.ups...)
}

// waitFor polls cond on wall time: what is waited for (an HMC
// connecting) happens over real sockets.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := ctxFor(t, 20*time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func openConsole(t *testing.T, srv *lab.Server, name string, hmcs []string, changed func()) hal.Console {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	spec := hal.ConsoleSpec{ConnectionSpec: hal.ConnectionSpec{Name: name, Manager: "test-manager",
		User: "hmcuser", Password: "hmc-pw", Roots: pool}, Changed: changed}
	for _, h := range hmcs {
		for _, st := range srv.HMCStatus() {
			if st.Name == h {
				spec.Addresses = append(spec.Addresses, st.Endpoint)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c, err := hmc.OpenConsole(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	return c
}

// TestConsoleSharedBySystems: one dual HMC connection hands out a driver
// per system it fronts; an HMC failing moves Via to the other and the
// system stays reachable; with both down the system is reported
// unreachable once; closing one system's driver leaves the others.
func TestConsoleSharedBySystems(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	var changes sync.WaitGroup
	changes.Add(2) // each HMC connecting
	var once [2]sync.Once
	n := 0
	var mu sync.Mutex
	c := openConsole(t, srv, "HMCS", []string{"HMC1", "HMC2"}, func() {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if i < 2 {
			once[i].Do(changes.Done)
		}
	})
	changes.Wait()
	if got := c.Attached(); len(got) != 2 || got[0] != haltest.Primary {
		t.Fatalf("attached %v", got)
	}
	var pr, sr reachLog
	p, s := c.Driver(haltest.Primary, pr.hear), c.Driver(haltest.Secondary, sr.hear)
	if !strings.Contains(p.Via(), "HMC1") {
		t.Fatalf("via %q, want HMC1", p.Via())
	}
	if _, err := p.QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "down"})
	waitFor(t, "HMC2 to carry the primary", func() bool { return strings.Contains(p.Via(), "HMC2") })
	if _, err := p.QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("through HMC2: %v", err)
	}
	if got := pr.get(); len(got) != 1 || !got[0] {
		t.Fatalf("primary reach %v with one HMC left, want [true]", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "down"})
	waitFor(t, "the primary unreachable", func() bool { return len(pr.get()) == 2 })
	if got := pr.get(); got[1] || p.Via() != "" {
		t.Fatalf("primary reach %v via %q with both HMCs down", got, p.Via())
	}
	if got := sr.get(); len(got) != 1 {
		t.Fatalf("closed secondary driver heard %v", got)
	}
	for _, e := range c.Endpoints() {
		if e.Up || e.Detail == "" {
			t.Fatalf("endpoint %+v, want down with a reason", e)
		}
	}
}

// TestConsoleSingleHMCNamed: a single HMC must be named as the
// connection; another name is refused before the password goes.
func TestConsoleSingleHMCNamed(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}))
	good := openConsole(t, srv, "HMC1", []string{"HMC1"}, nil)
	bad := openConsole(t, srv, "HMC7", []string{"HMC1"}, nil)
	waitFor(t, "HMC1 up", func() bool { return good.Endpoints()[0].Up })
	waitFor(t, "the misnamed HMC refused", func() bool { return bad.Endpoints()[0].Detail != "not connected yet" })
	if e := bad.Endpoints()[0]; e.Up || !strings.Contains(e.Detail, "HMC7") {
		t.Fatalf("misnamed HMC: %+v", e)
	}
}
