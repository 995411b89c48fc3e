package hmc_test

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// speed makes storage time run faster than the test's wall time, so CG
// timeouts and heartbeats of the conformance suite take milliseconds.
const speed = 10

// front is an HMC of a test lab and the systems it fronts.
type front struct {
	name    string
	systems []hal.Serial
}

// labFile is a lab of systems with two FB and CKD LSSs of two volumes,
// each on two loopback clusters, behind the HMCs given.
func labFile(serials []hal.Serial, hmcs ...front) string {
	var b strings.Builder
	fmt.Fprintf(&b, "speed = %d\ncopy_per_block = \"10us\"\n", speed)
	for _, s := range serials {
		fmt.Fprintf(&b, `
[[system]]
serial = %q
user = "lockstep"
password = "pw-%s"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2
  [[system.lss]]
  id = "20"
  type = "CKD"
  volumes = 2
`, s, s)
	}
	for _, h := range hmcs {
		var quoted []string
		for _, s := range h.systems {
			quoted = append(quoted, fmt.Sprintf("%q", s))
		}
		fmt.Fprintf(&b, `
[[hmc]]
name = %q
user = "hmcuser"
password = "hmc-pw"
endpoint = "127.0.0.1:0"
systems = [%s]
`, h.name, strings.Join(quoted, ", "))
	}
	return b.String()
}

func startLab(t testing.TB, file string) *lab.Server {
	t.Helper()
	cfg, err := lab.ParseConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	return srv
}

var both = []hal.Serial{haltest.Primary, haltest.Secondary}

// connFor is an HMC connection to the named HMCs of srv, in that order.
func connFor(t testing.TB, srv *lab.Server, names []string, tweak func(*hmc.Options)) *hmc.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM()) {
		t.Fatal("lab CA does not parse")
	}
	opt := hmc.Options{Manager: "test-manager", User: "hmcuser", Password: "hmc-pw",
		TLS: wire.ClientTLSConfig(pool, "127.0.0.1"), BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	for _, name := range names {
		for _, st := range srv.HMCStatus() {
			if st.Name == name {
				opt.Consoles = append(opt.Consoles, hmc.Console{Addr: st.Endpoint, Name: name})
			}
		}
	}
	if tweak != nil {
		tweak(&opt)
	}
	c, err := hmc.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func inject(t testing.TB, srv *lab.Server, f lab.Fault) {
	t.Helper()
	if err := srv.Inject(f); err != nil {
		t.Fatal(err)
	}
}

// conformance runs haltest through the named HMCs; cutting the manager
// off the primary takes down every HMC's private link to it.
func conformance(t *testing.T, names ...string) {
	haltest.Run(t, func(t *testing.T) *haltest.Lab {
		var hmcs []front
		for _, n := range names {
			hmcs = append(hmcs, front{n, both})
		}
		srv := startLab(t, labFile(both, hmcs...))
		c := connFor(t, srv, names, nil)
		fab := srv.Fabric()
		return &haltest.Lab{
			Primary:   c.System(haltest.Primary),
			Secondary: c.System(haltest.Secondary),
			Write:     fab.Write,
			Read:      fab.Read,
			CutPaths:  func(up bool) { fab.SetSystemPaths(haltest.Primary, up) },
			CutManager: func(up bool) {
				for _, n := range names {
					inject(t, srv, lab.Fault{Kind: "hmc-link", HMC: n, System: string(haltest.Primary), Up: up})
				}
			},
			Pass: func(d time.Duration) { time.Sleep(d / speed) },
		}
	})
}

func TestConformanceOneHMC(t *testing.T)  { conformance(t, "HMC1") }
func TestConformanceTwoHMCs(t *testing.T) { conformance(t, "HMC1", "HMC2") }

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mirror establishes a CG path and pair 0 of the FB LSS pair, and waits
// until it is full-duplex.
func mirror(t *testing.T, p hal.StorageSystem) {
	t.Helper()
	lp := haltest.LSSPair(haltest.FBLSS)
	if err := p.EstablishPaths(ctxFor(t, 10*time.Second), 1, []hal.PathSpec{{LSSPair: lp, ConsistencyGroup: true}}); err != nil {
		t.Fatal(err)
	}
	if err := p.EstablishPairs(ctxFor(t, 10*time.Second), 1, []hal.PairSpec{{VolumePair: haltest.Pair(haltest.FBLSS, 0)}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		ps, err := p.QueryPairs(ctxFor(t, 10*time.Second), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) == 1 && ps[0].State == hal.FullDuplex {
			return
		}
		if i == 1000 {
			t.Fatalf("pair never full-duplex: %+v", ps)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func wantFrozen(t *testing.T, p hal.StorageSystem) {
	t.Helper()
	ps, err := p.QueryPairs(ctxFor(t, 10*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].State != hal.Suspended || ps[0].Reason != hal.ReasonFreeze {
		t.Fatalf("pairs %+v, want suspended by the freeze", ps)
	}
}

// freezesRun counts the freezes the fabric carried out.
func freezesRun(srv *lab.Server) int {
	recs, _ := srv.Fabric().Commands(0)
	n := 0
	for _, r := range recs {
		if r.Op == "freeze" && r.Accepted() {
			n++
		}
	}
	return n
}

// held is how many commands the named HMC of srv swallowed black-holed.
func held(srv *lab.Server, name string) int {
	for _, st := range srv.HMCStatus() {
		if st.Name == name {
			return st.Held
		}
	}
	return 0
}

// TestFailoverWhenHMCDiesWithCommandInFlight: HMC1 holds a freeze
// unanswered, then dies; the freeze is sent again through HMC2, within
// its deadline, and carried out once.
func TestFailoverWhenHMCDiesWithCommandInFlight(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, func(o *hmc.Options) { o.KeepAlive = time.Hour })
	p := c.System(haltest.Primary)
	mirror(t, p)
	// Until HMC1 is connected the freeze would rightly go to HMC2 and
	// never be in flight at HMC1.
	waitFor(t, "both HMCs connected", func() bool { return allUp(c) })
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "blackhole"})
	done := make(chan error, 1)
	go func() { done <- p.Freeze(ctxFor(t, 20*time.Second), 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}) }()
	waitFor(t, "HMC1 holding the freeze", func() bool {
		select {
		case err := <-done:
			t.Fatalf("the freeze ended (%v) before HMC1 held it", err)
		default:
		}
		return held(srv, "HMC1") == 1
	})
	if n := freezesRun(srv); n != 0 {
		t.Fatalf("%d freezes ran through a black-holed HMC", n)
	}
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "down"})
	// The freeze's own deadline is the bound the contract sets.
	if err := <-done; err != nil {
		t.Fatalf("freeze after HMC1 died: %v, want it carried out through HMC2", err)
	}
	wantFrozen(t, p)
	if n := freezesRun(srv); n != 1 {
		t.Fatalf("%d freezes ran, want 1", n)
	}
}

// TestBlackholedHMCGivesBackItsCommands: the keepalive closes the
// connection to a silent HMC, and its commands go to the other.
func TestBlackholedHMCGivesBackItsCommands(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, func(o *hmc.Options) { o.KeepAlive = 100 * time.Millisecond })
	p := c.System(haltest.Primary)
	mirror(t, p)
	waitFor(t, "both HMCs connected", func() bool { return allUp(c) })
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "blackhole"})
	start := time.Now()
	if err := p.Freeze(ctxFor(t, 20*time.Second), 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}); err != nil {
		t.Fatalf("freeze with HMC1 black-holed: %v", err)
	}
	t.Logf("freeze carried out through HMC2 after %v", time.Since(start))
	wantFrozen(t, p)
}

// TestBothHMCsDie: with no HMC the command fails retryably at its
// deadline; when one comes back, commands flow again.
func TestBothHMCsDie(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, nil)
	p := c.System(haltest.Primary)
	waitFor(t, "both HMCs connected", func() bool { return allUp(c) })
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "down"})
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "down"})
	_, err := p.QueryLSSs(ctxFor(t, 500*time.Millisecond), 1)
	if !errors.Is(err, hal.ErrUnreachable) || !hal.Retryable(err) {
		t.Fatalf("query with both HMCs down: %v, want unreachable", err)
	}
	// The connection loops record why a little after the drop.
	waitFor(t, "both consoles down with a reason", func() bool {
		for _, st := range c.Consoles() {
			if st.Up || st.Err == nil {
				return false
			}
		}
		return true
	})
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "up"})
	if _, err := p.QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("query once HMC2 is back: %v", err)
	}
}

// TestPrivateLinkDownForOneSystem: one HMC whose private link to the
// primary is down answers at once that it cannot reach it (no wait for a
// deadline) and still serves the secondary; a second HMC carries the
// primary's commands.
func TestPrivateLinkDownForOneSystem(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	one := connFor(t, srv, []string{"HMC1"}, nil)
	dual := connFor(t, srv, []string{"HMC1", "HMC2"}, nil)
	inject(t, srv, lab.Fault{Kind: "hmc-link", HMC: "HMC1", System: string(haltest.Primary), Up: false})
	start := time.Now()
	_, err := one.System(haltest.Primary).QueryLSSs(ctxFor(t, 10*time.Second), 1)
	if !errors.Is(err, hal.ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Fatalf("query over a down private link: %v after %v, want unreachable at once", err, time.Since(start))
	}
	if _, err := one.System(haltest.Secondary).QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("the other system through the same HMC: %v", err)
	}
	if _, err := dual.System(haltest.Primary).QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("through the dual HMC: %v, want HMC2 to carry it", err)
	}
	att, err := one.Attachments(ctxFor(t, 10*time.Second), 0)
	if err != nil || len(att) != 2 || att[0].LinkUp || !att[1].LinkUp {
		t.Fatalf("attachments %+v, %v", att, err)
	}
}

// TestPrivateLinkBlackholedForOneSystem: an HMC that answers (its pings
// too) but whose private link to the primary is black-holed holds the
// primary's commands until their deadline. With a second HMC reaching the
// primary, a freeze is carried out there within its deadline: the first
// HMC gets its share of the deadline, not all of it.
//
// The lab runs on the real clock here: on a faster one the HMC would
// answer "timeout" before the driver's own deadline, which is not the
// case this test is about (an HMC that holds the command to its end).
func TestPrivateLinkBlackholedForOneSystem(t *testing.T) {
	t.Parallel()
	file := strings.Replace(labFile(both, front{"HMC1", both}, front{"HMC2", both}),
		fmt.Sprintf("speed = %d\n", speed), "speed = 1\n", 1)
	srv := startLab(t, file)
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, nil)
	only2 := connFor(t, srv, []string{"HMC2"}, nil)
	p := c.System(haltest.Primary)
	mirror(t, p)
	waitFor(t, "both HMCs connected", func() bool { return allUp(c) })
	inject(t, srv, lab.Fault{Kind: "hmc-link", HMC: "HMC1", System: string(haltest.Primary), Mode: "blackhole"})
	start := time.Now()
	if err := p.Freeze(ctxFor(t, 2*time.Second), 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}); err != nil {
		t.Fatalf("freeze with HMC1's link to the primary black-holed: %v, want it carried out through HMC2", err)
	}
	t.Logf("freeze carried out through HMC2 after %v", time.Since(start))
	wantFrozen(t, only2.System(haltest.Primary))
	if n := freezesRun(srv); n != 1 {
		t.Fatalf("%d freezes ran, want 1", n)
	}
	if !allUp(c) {
		t.Fatalf("consoles %+v: HMC1 answers its pings and stays connected", c.Consoles())
	}
	// The secondary, which HMC1 still reaches, is not held up.
	if _, err := c.System(haltest.Secondary).QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("the secondary through HMC1: %v", err)
	}
	// With HMC2's link down too, the freeze fails; it went out through
	// HMC1 and may have run there, and the error says so (not only that
	// HMC2 could not deliver it).
	inject(t, srv, lab.Fault{Kind: "hmc-link", HMC: "HMC2", System: string(haltest.Primary), Up: false})
	err := p.Freeze(ctxFor(t, 2*time.Second), 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)})
	if !errors.Is(err, hal.ErrTimeout) || !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("freeze with HMC1 silent and HMC2 cut off: %v, want it to say it may have run (timeout) and why not sent again", err)
	}
}

// TestEventsDeduplicated: a suspend forwarded by both HMCs reaches the
// subscriber once.
func TestEventsDeduplicated(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}, front{"HMC2", both}))
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, nil)
	p := c.System(haltest.Primary)
	events, err := p.Events(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Other systems' events are not this subscriber's.
	otherEvents, err := c.System(haltest.Secondary).Events(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both HMCs connected", func() bool { return allUp(c) })
	mirror(t, p)
	srv.Fabric().SetSystemPaths(haltest.Primary, false)
	select {
	case ev := <-events:
		if ev.Kind != hal.EventSuspend || ev.Serial != haltest.Primary || ev.Reason != hal.ReasonPath {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no suspend event")
	}
	for i := 0; c.DuplicateEvents() == 0; i++ {
		if i == 1000 {
			t.Fatal("the second HMC's copy never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case ev := <-events:
		t.Fatalf("a second event %+v, want the copy dropped", ev)
	case ev := <-otherEvents:
		t.Fatalf("the secondary's subscriber got %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

func allUp(c *hmc.Conn) bool {
	for _, st := range c.Consoles() {
		if !st.Up {
			return false
		}
	}
	return true
}

func TestConnectionChecks(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both}))
	tests := []struct {
		name  string
		tweak func(*hmc.Options)
		want  error
	}{
		{"wrong-password", func(o *hmc.Options) { o.Password = "nope" }, hal.ErrAuth},
		{"wrong-hmc-name", func(o *hmc.Options) { o.Consoles[0].Name = "HMC9" }, wire.ErrIdentity},
		{"wrong-pin", func(o *hmc.Options) { o.Consoles[0].Pin = make([]byte, 32) }, wire.ErrIdentity},
		{"any-hmc-name", func(o *hmc.Options) { o.Consoles[0].Name = "" }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := connFor(t, srv, []string{"HMC1"}, tc.tweak)
			_, err := c.System(haltest.Primary).QueryLSSs(ctxFor(t, 2*time.Second), 1)
			if !errors.Is(err, tc.want) {
				t.Fatalf("query: %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				if st := c.Consoles()[0]; st.Name != "HMC1" || len(st.Attached) != 2 {
					t.Fatalf("console %+v", st)
				}
				if got := c.Attached(); len(got) != 2 || got[0] != haltest.Primary {
					t.Fatalf("attached %v", got)
				}
			}
		})
	}
	// A system the HMC does not front fails at once.
	c := connFor(t, srv, []string{"HMC1"}, nil)
	start := time.Now()
	if _, err := c.System("LAB.NOPE").QueryLSSs(ctxFor(t, 10*time.Second), 1); !errors.Is(err, hal.ErrUnreachable) || time.Since(start) > 5*time.Second {
		t.Fatalf("a system no HMC fronts: %v after %v", err, time.Since(start))
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	pool := x509.NewCertPool()
	tests := []struct {
		name string
		opt  hmc.Options
		want error
	}{
		{"no-console", hmc.Options{TLS: wire.ClientTLSConfig(pool, "x")}, hmc.ErrConsoles},
		{"three-consoles", hmc.Options{TLS: wire.ClientTLSConfig(pool, "x"),
			Consoles: []hmc.Console{{Addr: "a:1"}, {Addr: "b:1"}, {Addr: "c:1"}}}, hmc.ErrConsoles},
		{"no-ca", hmc.Options{Consoles: []hmc.Console{{Addr: "a:1"}}}, hmc.ErrNoCA},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := hmc.New(tc.opt); !errors.Is(err, tc.want) {
				t.Fatalf("New: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := hmc.New(hmc.Options{TLS: wire.ClientTLSConfig(pool, "x"), Consoles: []hmc.Console{{Addr: "no-port"}}}); err == nil {
		t.Fatal("an address without a port accepted")
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		attempt int
		want    time.Duration
	}{
		{"first", 1, 100 * time.Millisecond},
		{"second", 2, 200 * time.Millisecond},
		{"capped", 20, 10 * time.Second},
	} {
		if got := hmc.Backoff(tc.attempt, 100*time.Millisecond, 10*time.Second); got != tc.want {
			t.Errorf("%s: Backoff(%d) = %v, want %v", tc.name, tc.attempt, got, tc.want)
		}
	}
}

// TestHMCsFrontingDifferentSystems: in one connection, each system's
// commands and events go through the HMC that fronts it.
func TestHMCsFrontingDifferentSystems(t *testing.T) {
	t.Parallel()
	srv := startLab(t, labFile(both, front{"HMC1", both[:1]}, front{"HMC2", both[1:]}))
	var changes []string
	var mu sync.Mutex
	c := connFor(t, srv, []string{"HMC1", "HMC2"}, func(o *hmc.Options) {
		o.StateChanged = func(i int, up bool, _ string) {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%d:%v", i, up))
			mu.Unlock()
		}
	})
	for _, s := range both {
		if _, err := c.System(s).QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if got := c.Attached(); !slices.Equal(got, both) {
		t.Fatalf("attached %v, want %v", got, both)
	}
	// HMC2 down: the secondary is unreachable (HMC1 does not front it),
	// the primary is not.
	inject(t, srv, lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "down"})
	if _, err := c.System(haltest.Secondary).QueryLSSs(ctxFor(t, 300*time.Millisecond), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("secondary with its HMC down: %v", err)
	}
	if _, err := c.System(haltest.Primary).QueryLSSs(ctxFor(t, 10*time.Second), 1); err != nil {
		t.Fatalf("primary: %v", err)
	}
	// HMC2's connection loop reports the loss a little after the drop.
	waitFor(t, "HMC2 reported down", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(changes, "1:false")
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(changes, "1:true") || slices.Contains(changes, "0:false") {
		t.Fatalf("state changes %v, want HMC2 up then down, HMC1 never down", changes)
	}
}
