package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/daemon/registry"
	"github.com/lockstep-io/lockstep/daemon/state"
	"github.com/lockstep-io/lockstep/daemon/transitions"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/persist"
)

// syncBuffer is a log sink safe for the drivers' goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// retryConsole is an HMC connection's console that serves system A.
type retryConsole struct {
	fakeConsole
	drivers chan hal.Serial
}

func (c *retryConsole) Driver(serial hal.Serial, _ func(up, timeout bool, detail string)) hal.Driver {
	c.drivers <- serial
	return &fakeDriver{closed: make(chan struct{})}
}
func (c *retryConsole) Close() error { return nil }

// TestConsoleOpenRetriedWithBackoff: an HMC connection whose console
// does not open is opened again on the injected clock, with backoff
// (500 ms, 1 s, 2 s, ...), not only on the next registry change; each
// distinct error is logged once, not once per attempt; once it opens,
// the system behind it, which had no driver, is connected through it,
// and no retry is left armed.
func TestConsoleOpenRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		clk := clock.NewFake(time.Unix(1_000_000, 0))
		store, err := state.Open(t.TempDir(), persist.Options{Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		for _, r := range []registry.Record{
			{Kind: registry.KindHMCAdded, HMC: &registry.HMC{Name: "HMCS", Addresses: []string{"h1:1751"}}},
			{Kind: registry.KindHMCAttached, Name: "HMCS", Serials: []hal.Serial{"A"}},
		} {
			r.Version = registry.RecordVersion
			if err := store.ProposeRegistry(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		refused, unreadable := errors.New("password file: permission denied"), errors.New("HMC HMCS: no such host")
		fails := []error{refused, refused, refused, unreadable}
		attempts := 0
		con := &retryConsole{drivers: make(chan hal.Serial, 4)}
		open := func(context.Context, hal.ConsoleSpec) (hal.Console, error) {
			attempts++
			if attempts <= len(fails) {
				return nil, fails[attempts-1]
			}
			return con, nil
		}
		logs := &syncBuffer{}
		ds := newStorageDrivers(Drivers{}, Consoles{hal.HMC: open})
		ds.cfg = func() *config.Config { return &config.Config{} }
		ds.store, ds.roots, ds.clock = store, x509.NewCertPool(), clk
		ds.log = slog.New(slog.NewTextHandler(logs, nil))
		ds.acting, ds.track = &periods{}, transitions.New(clk)
		if ds.snmp, err = notify.NewSNMP(config.SNMP{}, "t", func() string { return "standalone" }, clk, ds.log); err != nil {
			t.Fatal(err)
		}
		ds.start(t.Context())
		defer ds.closeAll()

		ds.reconcile()
		synctest.Wait()
		if attempts != 1 {
			t.Fatalf("reconcile: %d attempts, want 1", attempts)
		}
		// The pauses: 500 ms, 1 s, 2 s, 4 s; one attempt at each, none
		// before.
		for i, pause := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
			clk.Advance(pause - time.Millisecond)
			synctest.Wait()
			if attempts != i+1 {
				t.Fatalf("%v after failure %d: %d attempts, want %d (not yet)", pause-time.Millisecond, i+1, attempts, i+1)
			}
			clk.Advance(time.Millisecond)
			synctest.Wait()
			if attempts != i+2 {
				t.Fatalf("%v after failure %d: %d attempts, want %d", pause, i+1, attempts, i+2)
			}
		}
		select {
		case serial := <-con.drivers:
			if serial != "A" {
				t.Fatalf("driver opened for %s, want A", serial)
			}
		default:
			t.Fatal("the console opened, but A was not connected through it")
		}
		if _, ok := ds.get("A"); !ok {
			t.Fatal("A has no driver once its HMC connection opened")
		}
		if n := clk.Pending(); n != 0 {
			t.Fatalf("%d timers armed after the console opened, want none", n)
		}
		out := logs.String()
		for _, e := range []error{refused, unreadable} {
			n := 0
			for line := range strings.Lines(out) {
				if strings.Contains(line, `msg="HMC connection not opened`) && strings.Contains(line, e.Error()) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%q logged %d times for the HMC connection, want once:\n%s", e, n, out)
			}
		}
	})
}
