package zos_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// speed makes storage time run faster than the test's wall time, so CG
// timeouts of the conformance suite take milliseconds.
const speed = 10

const (
	host    = "SYSA"
	sysplex = "PLEX1"
)

// labFile is the standard haltest topology, direct endpoints for both
// systems, and z/OS host SYSA of sysplex PLEX1 with both online.
func labFile() string {
	var b strings.Builder
	fmt.Fprintf(&b, "speed = %d\ncopy_per_block = \"10us\"\n", speed)
	for _, s := range []hal.Serial{haltest.Primary, haltest.Secondary} {
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
	fmt.Fprintf(&b, `
[[zos]]
name = %q
sysplex = %q
endpoint = "127.0.0.1:0"
user = "zosuser"
password = "zos-pw"
lpars = ["SYSA1", "SYSA2"]
  [[zos.online]]
  system = %q
  channels = ["40", "41"]
  [[zos.online]]
  system = %q
  channels = ["42"]
  lpars = ["SYSA2"]
`, host, sysplex, haltest.Primary, haltest.Secondary)
	return b.String()
}

func startLab(t testing.TB) *lab.Server {
	t.Helper()
	cfg, err := lab.ParseConfig(labFile())
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

func pool(t testing.TB, srv *lab.Server) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(srv.CAPEM()) {
		t.Fatal("lab CA does not parse")
	}
	return p
}

func driverFor(t testing.TB, srv *lab.Server, serial hal.Serial, tweak func(*zos.Options)) *zos.System {
	t.Helper()
	opt := zos.Options{Serial: serial, Host: host, Addr: srv.ZOSEndpoint(host), Sysplex: sysplex,
		Manager: "test-manager", User: "zosuser", Password: "zos-pw",
		TLS:        wire.ClientTLSConfig(pool(t, srv), "127.0.0.1"),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	if tweak != nil {
		tweak(&opt)
	}
	d := zos.New(t.Context(), opt)
	t.Cleanup(func() { d.Close() })
	return d
}

func inject(t testing.TB, srv *lab.Server, f lab.Fault) {
	t.Helper()
	if err := srv.Inject(f); err != nil {
		t.Fatal(err)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestConformanceThroughZOS: both systems through the z/OS host pass the
// suite; the heartbeat cases skip by capability. The manager's cut is a
// channel fault: the host loses its channels to the primary only.
func TestConformanceThroughZOS(t *testing.T) {
	haltest.Run(t, func(t *testing.T) *haltest.Lab {
		srv := startLab(t)
		fab := srv.Fabric()
		mode := func(up bool) string {
			if up {
				return "up"
			}
			return "down"
		}
		return &haltest.Lab{
			Primary:   driverFor(t, srv, haltest.Primary, nil),
			Secondary: driverFor(t, srv, haltest.Secondary, nil),
			Write:     fab.Write,
			Read:      fab.Read,
			CutPaths:  func(up bool) { fab.SetSystemPaths(haltest.Primary, up) },
			CutManager: func(up bool) {
				inject(t, srv, lab.Fault{Kind: "channel", Host: host, System: string(haltest.Primary), Mode: mode(up)})
			},
			Pass: func(d time.Duration) { time.Sleep(d / speed) },
		}
	})
}

// TestHeartbeatRefusedClearly: the driver refuses the heartbeat without a
// round trip, saying why; the host refuses it too when asked directly.
func TestHeartbeatRefusedClearly(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	d := driverFor(t, srv, haltest.Primary, nil)
	ctx := ctxFor(t, 10*time.Second)
	if d.Capabilities().Heartbeat {
		t.Fatal("a z/OS connection claims the heartbeat")
	}
	err := d.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s1", Timeout: time.Minute,
		Pairs: []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}})
	if !errors.Is(err, hal.ErrUnsupported) || !errors.Is(err, zos.ErrNoHeartbeat) ||
		!strings.Contains(err.Error(), "heartbeat does not work through a z/OS connection") {
		t.Fatalf("enable heartbeat: %v", err)
	}
	if d.Dials() > 1 {
		t.Fatalf("%d dials", d.Dials())
	}

	// The host itself, asked by a raw client.
	c := rawClient(t, srv, haltest.Primary, sysplex)
	err = c.EnableHeartbeat(ctx, 1, hal.HeartbeatSpec{Session: "s1", Timeout: time.Minute,
		Pairs: []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}})
	if !errors.Is(err, hal.ErrUnsupported) || !strings.Contains(err.Error(), "heartbeat") {
		t.Fatalf("host: enable heartbeat: %v", err)
	}
	if _, err := c.QueryLSSs(ctx, 1); err != nil {
		t.Fatalf("the connection must survive the refusal: %v", err)
	}
	if len(srv.Fabric().System(haltest.Primary).Heartbeats()) != 0 {
		t.Fatal("a heartbeat was armed through z/OS")
	}
}

// rawClient is a wire client to the lab's z/OS host for serial.
func rawClient(t *testing.T, srv *lab.Server, serial hal.Serial, plex string) *wire.Client {
	t.Helper()
	c, err := dialRaw(t, srv, serial, plex)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func dialRaw(t *testing.T, srv *lab.Server, serial hal.Serial, plex string) (*wire.Client, error) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	d := tls.Dialer{Config: wire.ClientTLSConfig(pool(t, srv), "127.0.0.1")}
	conn, err := d.DialContext(ctx, "tcp", srv.ZOSEndpoint(host))
	if err != nil {
		return nil, err
	}
	c, _, err := wire.NewClient(ctx, conn, wire.Hello{Manager: "raw", Serial: serial, User: "zosuser",
		Password: "zos-pw", Sysplex: plex}, wire.ClientOptions{StateChanges: 64,
		Identity: func(cs tls.ConnectionState) error { return wire.VerifyZOSHost(cs, host, nil) }})
	return c, err
}

// establish sets up the paths (CG option) and the pairs of LSS 10 through
// sys and waits until they are full-duplex.
func establish(t *testing.T, sys hal.StorageSystem) {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	if err := sys.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: haltest.LSSPair(haltest.FBLSS), ConsistencyGroup: true}}); err != nil {
		t.Fatal(err)
	}
	var specs []hal.PairSpec
	for n := range uint8(haltest.Volumes) {
		specs = append(specs, hal.PairSpec{VolumePair: haltest.Pair(haltest.FBLSS, n)})
	}
	if err := sys.EstablishPairs(ctx, 1, specs); err != nil {
		t.Fatal(err)
	}
	for range 500 {
		ps, err := sys.QueryPairs(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range ps {
			if p.State == hal.FullDuplex {
				n++
			}
		}
		if n == haltest.Volumes {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("pairs never full-duplex")
}

// TestMessagesOncePerChangeNamingTheLPARs: a freeze through the host
// raises, to the manager, pair suspending then pair suspended (once each,
// naming every LPAR with the devices online) and extended long busy; full
// duplex was reported when the copy ended.
func TestMessagesOncePerChangeNamingTheLPARs(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	c := rawClient(t, srv, haltest.Primary, sysplex)
	msgs := c.StateChanges()
	establish(t, driverFor(t, srv, haltest.Primary, nil))
	ctx := ctxFor(t, 10*time.Second)
	lp := haltest.LSSPair(haltest.FBLSS)
	if err := c.Freeze(ctx, 1, []hal.LSSPair{lp}); err != nil {
		t.Fatal(err)
	}
	var got []wire.StateChange
	for len(got) == 0 || got[len(got)-1].Kind != wire.StateExtendedLongBusy {
		select {
		case m := <-msgs:
			got = append(got, m)
		case <-ctx.Done():
			t.Fatalf("messages so far: %v", got)
		}
	}
	var kinds []wire.StateKind
	for _, m := range got {
		kinds = append(kinds, m.Kind)
		if m.Host != host || m.Serial != haltest.Primary || strings.Join(m.LPARs, ",") != "SYSA1,SYSA2" {
			t.Fatalf("message %v", m)
		}
	}
	want := []wire.StateKind{wire.StatePairPending, wire.StatePairPending, wire.StatePairFullDuplex, wire.StatePairFullDuplex,
		wire.StatePairSuspending, wire.StatePairSuspended, wire.StateExtendedLongBusy}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	sus := got[5]
	if sus.Reason != hal.ReasonFreeze || sus.Volumes.Len() != haltest.Volumes || sus.EventSeq == 0 || sus.LSSPair != lp {
		t.Fatalf("suspended message %+v", sus)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("message numbers not increasing: %v", got)
		}
	}
}

// TestChannelDownForOneSystem: with the host's channels to the primary
// down, commands to the primary fail unreachable (retryable) and say so,
// its state changes are lost, and the secondary is served as before.
func TestChannelDownForOneSystem(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	p := driverFor(t, srv, haltest.Primary, nil)
	sec := driverFor(t, srv, haltest.Secondary, nil)
	establish(t, p)
	ctx := ctxFor(t, 20*time.Second)
	events, _ := p.Events(ctx)
	inject(t, srv, lab.Fault{Kind: "channel", Host: host, System: string(haltest.Primary), Mode: "down"})
	_, err := p.QueryPairs(ctx, 1)
	if !errors.Is(err, hal.ErrUnreachable) || !hal.Retryable(err) || !strings.Contains(err.Error(), "channel") {
		t.Fatalf("command over a downed channel: %v", err)
	}
	if _, err := sec.QueryPairs(ctx, 1); err != nil {
		t.Fatalf("the secondary's channel is up: %v", err)
	}
	srv.Fabric().SetSystemPaths(haltest.Primary, false) // suspends the primary's pairs: nobody on the channel hears it
	inject(t, srv, lab.Fault{Kind: "channel", Host: host, System: string(haltest.Primary), Mode: "up"})
	ps, err := p.QueryPairs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].State != hal.Suspended || ps[0].Reason != hal.ReasonPath {
		t.Fatalf("pairs %+v", ps)
	}
	select {
	case ev := <-events:
		t.Fatalf("an event crossed a downed channel: %+v", ev)
	default:
	}
	// Once the channel is back, state changes flow again.
	if err := p.Freeze(ctx, 1, []hal.LSSPair{haltest.LSSPair(haltest.CKDLSS)}); err != nil {
		t.Fatal(err)
	}
	srv.Fabric().SetSystemPaths(haltest.Primary, true)
	if err := p.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: haltest.LSSPair(haltest.FBLSS), ConsistencyGroup: true}}); err != nil {
		t.Fatal(err)
	}
	if err := p.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: haltest.Pair(haltest.FBLSS, 0), Mode: hal.Resync}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Suspend(ctx, 1, []hal.VolumePair{haltest.Pair(haltest.FBLSS, 0)}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Kind != hal.EventSuspend || ev.Serial != haltest.Primary || ev.Reason != hal.ReasonCommand {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event once the channel was back")
	}
}

// TestHostDown: a host that goes down takes every system it fronts with
// it; commands fail retryably; when it comes back the driver reconnects.
// A black-holed host answers nothing: commands time out, until the
// keep-alive finds it silent and closes the connection: the driver then
// says it is not connected (Via), and a composed system (hal/compose)
// gives the host no share of a command's deadline.
func TestHostDownAndBlackholed(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	keepAlive := func(o *zos.Options) { o.KeepAlive = 100 * time.Millisecond }
	p := driverFor(t, srv, haltest.Primary, keepAlive)
	sec := driverFor(t, srv, haltest.Secondary, keepAlive)
	ctx := ctxFor(t, 20*time.Second)
	if _, err := p.QueryLSSs(ctx, 1); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "down"})
	for _, d := range []*zos.System{p, sec} {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := d.QueryLSSs(short, 1)
		cancel()
		if !hal.Retryable(err) {
			t.Fatalf("%s with the host down: %v, want retryable", d.Serial(), err)
		}
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "up"})
	for _, d := range []*zos.System{p, sec} {
		if _, err := d.QueryLSSs(ctx, 1); err != nil {
			t.Fatalf("%s after the host came back: %v", d.Serial(), err)
		}
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "blackhole"})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := sec.QueryLSSs(short, 1)
	cancel()
	if !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("black-holed host: %v, want timeout", err)
	}
	for end := time.Now().Add(5 * time.Second); sec.Via() != ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the keep-alive did not close the connection to the silent host")
		}
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "up"})
	if _, err := sec.QueryLSSs(ctx, 1); err != nil {
		t.Fatalf("after the black hole: %v", err)
	}
}

// TestRefusals: a manager outside the host's sysplex (or in none), a
// system the host does not have online, and a certificate that does not
// name the host are refused, clearly and without retrying.
func TestRefusals(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	tests := []struct {
		name  string
		tweak func(*zos.Options)
		want  error
		text  string
	}{
		{"other sysplex", func(o *zos.Options) { o.Sysplex = "PLEX2" }, wire.ErrSysplex, `states sysplex "PLEX2"; z/OS host SYSA is in sysplex PLEX1`},
		{"no sysplex", func(o *zos.Options) { o.Sysplex = "" }, wire.ErrSysplex, "states no sysplex"},
		{"wrong password", func(o *zos.Options) { o.Password = "guess" }, hal.ErrAuth, "wrong user or password"},
		{"another host's name", func(o *zos.Options) { o.Host = "SYSB" }, wire.ErrIdentity, "names z/OS host SYSA, not SYSB"},
		{"not online", func(o *zos.Options) { o.Serial = "LAB.2107-75X0009" }, wire.ErrUnknownSerial, "has no device"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := driverFor(t, srv, haltest.Primary, tc.tweak)
			ctx := ctxFor(t, 5*time.Second)
			_, err := d.QueryLSSs(ctx, 1)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.text)
			}
			if tc.want != wire.ErrUnknownSerial {
				if hal.Retryable(err) {
					t.Fatalf("%v is retryable", err)
				}
				// No second logon: a host revokes users that keep failing.
				if n := d.Dials(); n != 1 {
					t.Fatalf("%d dials after a refusal, want 1", n)
				}
			}
		})
	}
}

// TestFreezeGoesOutThroughZOSWhenIPFails: the S5 mechanics at the driver
// level. With every IP connection to the primary cut, a freeze on the
// direct driver fails, the same freeze through the z/OS host is carried
// out in-band, and the suspend it causes is heard through z/OS.
func TestFreezeGoesOutThroughZOSWhenIPFails(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	z := driverFor(t, srv, haltest.Primary, nil)
	roots := pool(t, srv)
	dopt := direct.Options{Serial: haltest.Primary, Manager: "test-manager", User: "lockstep",
		Password: "pw-" + string(haltest.Primary), TLS: wire.ClientTLSConfig(roots, "127.0.0.1")}
	for _, st := range srv.Status() {
		if st.Serial == string(haltest.Primary) {
			dopt.Endpoints = st.Endpoints
		}
	}
	ctx := ctxFor(t, 20*time.Second)
	d := direct.New(ctx, dopt)
	t.Cleanup(func() { d.Close() })
	establish(t, d)
	events, _ := z.Events(ctx)
	inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: -1, Mode: "down"})
	lp := haltest.LSSPair(haltest.FBLSS)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := d.Freeze(short, 1, []hal.LSSPair{lp})
	cancel()
	if !hal.Retryable(err) {
		t.Fatalf("freeze over cut IP connections: %v, want unreachable", err)
	}
	if err := z.Freeze(ctx, 1, []hal.LSSPair{lp}); err != nil {
		t.Fatalf("freeze through z/OS: %v", err)
	}
	ps, err := z.QueryPairs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.VolumePair.Source.Volume.LSS() == haltest.FBLSS && (p.State != hal.Suspended || p.Reason != hal.ReasonFreeze) {
			t.Fatalf("pair %+v after the freeze through z/OS", p)
		}
	}
	select {
	case ev := <-events:
		if ev.Kind != hal.EventSuspend || ev.Reason != hal.ReasonFreeze || ev.LSSPair != lp || ev.Seq == 0 {
			t.Fatalf("event %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("the freeze was not heard through z/OS")
	}
	ls, err := z.QueryLSSs(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ls[0].LSS != haltest.FBLSS || ls[0].ELBUntil.IsZero() {
		t.Fatalf("LSSs %+v: the freeze must hold writes (ELB)", ls)
	}
}

// TestDiscovery: the systems a host has online are discovered from it,
// with their channel state; the sysplex is checked as for any connection.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	opt := zos.Options{Host: host, Addr: srv.ZOSEndpoint(host), Sysplex: sysplex, Manager: "m",
		User: "zosuser", Password: "zos-pw", TLS: wire.ClientTLSConfig(pool(t, srv), "127.0.0.1")}
	ctx := ctxFor(t, 10*time.Second)
	inject(t, srv, lab.Fault{Kind: "channel", Host: host, System: string(haltest.Secondary), Mode: "down"})
	got, err := zos.Discover(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []wire.OnlineSystem{{Serial: haltest.Primary, ChannelsUp: true}, {Serial: haltest.Secondary}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("online %v, want %v", got, want)
	}
	d := driverFor(t, srv, haltest.Primary, nil)
	if again, err := d.Online(ctx); err != nil || fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("online through a system's connection: %v, %v", again, err)
	}
	opt.Sysplex = "PLEX9"
	if _, err := zos.Discover(ctx, opt); !errors.Is(err, wire.ErrSysplex) {
		t.Fatalf("discovery from another sysplex: %v", err)
	}
	// A discovery connection carries no storage command.
	c := rawClient(t, srv, "", sysplex)
	if _, err := c.QueryPairs(ctx, 1); !errors.Is(err, hal.ErrRefused) || !strings.Contains(err.Error(), "names no storage system") {
		t.Fatalf("query-pairs on a discovery connection: %v", err)
	}
}

// TestStateChangedReportsReachability: the driver says once when the
// system becomes reachable through the host and once when it is not.
func TestStateChangedReportsReachability(t *testing.T) {
	t.Parallel()
	srv := startLab(t)
	type change struct {
		up     bool
		detail string
	}
	changes := make(chan change, 16)
	driverFor(t, srv, haltest.Primary, func(o *zos.Options) {
		o.StateChanged = func(up, _ bool, detail string) { changes <- change{up, detail} }
	})
	next := func() change {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no reachability change")
		}
		return change{}
	}
	if c := next(); !c.up {
		t.Fatalf("first change %+v, want up", c)
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "down"})
	if c := next(); c.up || !strings.Contains(c.detail, "z/OS host SYSA") {
		t.Fatalf("after the host went down: %+v", c)
	}
	inject(t, srv, lab.Fault{Kind: "zos", Host: host, Mode: "up"})
	if c := next(); !c.up {
		t.Fatalf("after the host came back: %+v", c)
	}
}
