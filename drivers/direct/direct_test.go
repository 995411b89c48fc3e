package direct_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/hal/haltest"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// speed makes storage time run faster than the test's wall time, so CG
// timeouts and heartbeats of the conformance suite take milliseconds.
const speed = 10

func labFile(serials ...hal.Serial) string {
	return labFileAt([2]string{"127.0.0.1", "127.0.0.1"}, serials...)
}

// labFileAt is labFile with the two clusters of every system on hosts.
func labFileAt(hosts [2]string, serials ...hal.Serial) string {
	var b strings.Builder
	fmt.Fprintf(&b, "speed = %d\ncopy_per_block = \"10us\"\n", speed)
	for _, s := range serials {
		fmt.Fprintf(&b, `
[[system]]
serial = %q
user = "lockstep"
password = "pw-%s"
endpoints = ["%s:0", "%s:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2
  [[system.lss]]
  id = "20"
  type = "CKD"
  volumes = 2
`, s, s, hosts[0], hosts[1])
	}
	return b.String()
}

func startLab(t *testing.T, serials ...hal.Serial) *lab.Server {
	t.Helper()
	return startLabFile(t, labFile(serials...))
}

func startLabFile(t *testing.T, file string) *lab.Server {
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

func driverFor(t testing.TB, srv *lab.Server, serial hal.Serial, tweak func(*direct.Options)) *direct.System {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(srv.CAPEM()) {
		t.Fatal("lab CA does not parse")
	}
	opt := direct.Options{Serial: serial, Manager: "test-manager", User: "lockstep",
		Password: "pw-" + string(serial), TLS: wire.ClientTLSConfig(pool, "127.0.0.1"),
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}
	for _, st := range srv.Status() {
		if st.Serial == string(serial) {
			opt.Endpoints = st.Endpoints
		}
	}
	if tweak != nil {
		tweak(&opt)
	}
	d := direct.New(t.Context(), opt)
	t.Cleanup(func() { d.Close() })
	return d
}

func inject(t *testing.T, srv *lab.Server, f lab.Fault) {
	t.Helper()
	if err := srv.Inject(f); err != nil {
		t.Fatal(err)
	}
}

func TestConformanceOverTheWire(t *testing.T) {
	haltest.Run(t, func(t *testing.T) *haltest.Lab {
		srv := startLab(t, haltest.Primary, haltest.Secondary)
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
				inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: -1, Mode: mode(up)})
			},
			Pass: func(d time.Duration) { time.Sleep(d / speed) },
		}
	})
}

func TestFailoverToTheOtherCluster(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary, haltest.Secondary)
	d := driverFor(t, srv, haltest.Primary, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lp := haltest.LSSPair(haltest.FBLSS)
	if err := d.EstablishPaths(ctx, 1, []hal.PathSpec{{LSSPair: lp}}); err != nil {
		t.Fatal(err)
	}
	if err := d.EstablishPairs(ctx, 1, []hal.PairSpec{{VolumePair: haltest.Pair(haltest.FBLSS, 0)}}); err != nil {
		t.Fatal(err)
	}
	first := d.Cluster()
	if first < 0 {
		t.Fatal("no live cluster after a successful command")
	}
	events, _ := d.Events(ctx)
	inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: first, Mode: "down"})
	// The next command is served by the other cluster, within its deadline.
	if _, err := d.QueryLSSs(ctx, 1); err != nil {
		t.Fatalf("command after cluster %d went down: %v", first, err)
	}
	if got := d.Cluster(); got != 1-first {
		t.Fatalf("live cluster %d, want %d", got, 1-first)
	}
	// Events flow on the new connection.
	if err := d.Freeze(ctx, 1, []hal.LSSPair{lp}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		if ev.Kind != hal.EventSuspend || ev.LSSPair != lp || ev.Reason != hal.ReasonFreeze {
			t.Fatalf("event after failover: %+v", ev)
		}
	case <-ctx.Done():
		t.Fatal("no event after failover")
	}
}

// TestFailoverWithEachClustersOwnCertificate: the two clusters of a
// storage system have their own addresses and certificates, as on a real
// array; when cluster 0 dies the driver fails over to cluster 1, whose
// certificate names cluster 1's address, not cluster 0's.
func TestFailoverWithEachClustersOwnCertificate(t *testing.T) {
	t.Parallel()
	srv := startLabFile(t, labFileAt([2]string{"127.0.0.21", "127.0.0.22"}, haltest.Primary))
	// A config naming cluster 0, as a caller that knows one host would
	// write it: the driver still checks cluster 1 against its own.
	d := driverFor(t, srv, haltest.Primary, func(o *direct.Options) { o.TLS.ServerName = "127.0.0.21" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.QueryLSSs(ctx, 1); err != nil {
		t.Fatalf("cluster 0: %v", err)
	}
	if got := d.Cluster(); got != 0 {
		t.Fatalf("live cluster %d, want 0 first", got)
	}
	inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: 0, Mode: "down"})
	if _, err := d.QueryLSSs(ctx, 1); err != nil {
		t.Fatalf("command after cluster 0 went down: %v", err)
	}
	if got := d.Cluster(); got != 1 {
		t.Fatalf("live cluster %d, want 1", got)
	}
}

// TestNoStorageCANoConnection: without a CA the driver does not dial at
// all rather than trust the system roots.
func TestNoStorageCANoConnection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		tls  *tls.Config
	}{{"no-tls", nil}, {"system-roots", &tls.Config{MinVersion: tls.VersionTLS13}}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startLab(t, haltest.Primary)
			d := driverFor(t, srv, haltest.Primary, func(o *direct.Options) { o.TLS = tc.tls })
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			if _, err := d.QueryLSSs(ctx, 1); !errors.Is(err, direct.ErrNoCA) {
				t.Fatalf("query without a CA: %v, want ErrNoCA", err)
			}
		})
	}
}

// TestCertificateOfAnotherSystemRefused: an endpoint whose certificate
// names another storage system gets no password and no command; a pin of
// its certificate makes it acceptable.
func TestCertificateOfAnotherSystemRefused(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary, haltest.Secondary)
	var secondary [2]string
	for _, st := range srv.Status() {
		if st.Serial == string(haltest.Secondary) {
			secondary = st.Endpoints
		}
	}
	// A driver for the primary pointed at the secondary's endpoints.
	d := driverFor(t, srv, haltest.Primary, func(o *direct.Options) { o.Endpoints = secondary })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := d.QueryLSSs(ctx, 1)
	if !errors.Is(err, wire.ErrIdentity) || ctx.Err() != nil {
		t.Fatalf("query through the wrong system's endpoints: %v, want an identity refusal at once", err)
	}
}

// TestReconnectBackoff checks the dial schedule exactly: both clusters
// refuse, so every round is two dials, then a pause of Backoff(n).
func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.Real() // virtual inside the bubble
		start := clk.Now()
		var mu sync.Mutex
		var dials []time.Duration
		d := direct.New(t.Context(), direct.Options{
			Serial: "LAB.X", Endpoints: [2]string{"a:1", "b:1"}, Clock: clk,
			TLS:        wire.ClientTLSConfig(x509.NewCertPool(), ""),
			BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				mu.Lock()
				dials = append(dials, clk.Since(start))
				mu.Unlock()
				return nil, errors.New("connection refused")
			},
		})
		time.Sleep(10 * time.Second)
		d.Close()
		mu.Lock()
		defer mu.Unlock()
		var want []time.Duration
		at := time.Duration(0)
		for n := 1; at <= 10*time.Second; n++ {
			want = append(want, at, at)
			at += direct.Backoff(n, 100*time.Millisecond, 2*time.Second)
		}
		if fmt.Sprint(dials) != fmt.Sprint(want) {
			t.Fatalf("dials at\n %v\nwant\n %v", dials, want)
		}
	})
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{7, 6400 * time.Millisecond}, {8, 10 * time.Second}, {100, 10 * time.Second}} {
		if got := direct.Backoff(tc.attempt, 100*time.Millisecond, 10*time.Second); got != tc.want {
			t.Errorf("Backoff(%d) = %v, want %v", tc.attempt, got, tc.want)
		}
	}
}

// TestBlackholedSystemDoesNotDelayOthers: a command to a black-holed
// system waits for its deadline; meanwhile commands to another system are
// all answered.
func TestBlackholedSystemDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary, haltest.Secondary)
	hole := driverFor(t, srv, haltest.Primary, nil)
	other := driverFor(t, srv, haltest.Secondary, nil)
	ctx := context.Background()
	if _, err := hole.QueryLSSs(ctx, 1); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: -1, Mode: "blackhole"})

	holeCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	holeDone := make(chan error, 1)
	go func() { holeDone <- hole.Freeze(holeCtx, 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}) }()
	for i := range 50 {
		if _, err := other.QueryPairs(ctx, 1); err != nil {
			t.Fatalf("call %d to the healthy system: %v", i, err)
		}
		select {
		case err := <-holeDone:
			t.Fatalf("the black-holed call ended (%v) before the healthy system's calls", err)
		default:
		}
	}
	if err := <-holeDone; !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("black-holed call: %v, want timeout", err)
	}
	if got := srv.Fabric().System(haltest.Primary); got.Epoch() != 1 {
		t.Fatalf("epoch %d", got.Epoch())
	}
	// Nothing was executed: the pairs are not frozen.
	if st := srv.Fabric().System(haltest.Primary).Stats(); st.EventsRaised != 0 {
		t.Fatalf("the black-holed freeze was executed: %+v", st)
	}
}

// TestSilentClusterIsLeftForTheOther: the cluster the driver is
// connected to goes silent (black-holed: the connection stays open,
// nothing is answered, as when a cluster's network dies without a word).
// TCP would not tell for many minutes; the keep-alive closes the
// connection, the driver fails over to the other cluster, and a freeze
// sent meanwhile is carried out there within its deadline, once.
func TestSilentClusterIsLeftForTheOther(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary)
	d := driverFor(t, srv, haltest.Primary, func(o *direct.Options) { o.KeepAlive = 200 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.QueryLSSs(ctx, 1); err != nil {
		t.Fatal(err)
	}
	silent := d.Cluster()
	inject(t, srv, lab.Fault{Kind: "manager", System: string(haltest.Primary), Endpoint: silent, Mode: "blackhole"})
	fctx, fcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer fcancel()
	start := time.Now()
	if err := d.Freeze(fctx, 1, []hal.LSSPair{haltest.LSSPair(haltest.FBLSS)}); err != nil {
		t.Fatalf("freeze with cluster %d silent: %v, want it carried out through cluster %d", silent, err, 1-silent)
	}
	t.Logf("freeze carried out through cluster %d after %v", d.Cluster(), time.Since(start))
	if c := d.Cluster(); c != 1-silent {
		t.Fatalf("connected to cluster %d, want %d", c, 1-silent)
	}
	recs, _ := srv.Fabric().Commands(0)
	n := 0
	for _, r := range recs {
		if r.Op == "freeze" && r.Accepted() {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d freezes ran, want 1", n)
	}
}

func TestWrongCredentialsRefused(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary)
	d := driverFor(t, srv, haltest.Primary, func(o *direct.Options) { o.Password = "wrong" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := d.QueryPairs(ctx, 42)
	if ctx.Err() != nil {
		t.Fatal("a refused login must fail the command at once, not at its deadline")
	}
	if !errors.Is(err, hal.ErrAuth) || hal.Retryable(err) {
		t.Fatalf("wrong password: %v, want a non-retryable auth error", err)
	}
	if e := srv.Fabric().System(haltest.Primary).Epoch(); e != 0 {
		t.Fatalf("a command was executed without credentials (epoch %d)", e)
	}
}

func TestCrashRefusesThenRestartReconnects(t *testing.T) {
	t.Parallel()
	srv := startLab(t, haltest.Primary)
	d := driverFor(t, srv, haltest.Primary, nil)
	ctx := context.Background()
	if _, err := d.QueryLSSs(ctx, 1); err != nil {
		t.Fatal(err)
	}
	inject(t, srv, lab.Fault{Kind: "crash", System: string(haltest.Primary)})
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := d.QueryLSSs(short, 1); !hal.Retryable(err) {
		t.Fatalf("query of a crashed system: %v, want unreachable", err)
	}
	inject(t, srv, lab.Fault{Kind: "restart", System: string(haltest.Primary)})
	long, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if _, err := d.QueryLSSs(long, 1); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

// TestDialTimeoutIsReported: a connect that gets no answer (a firewall
// dropping it) is reported for the firewall hint; a refusal is not.
func TestDialTimeoutIsReported(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var reported []string
	d := direct.New(t.Context(), direct.Options{Serial: "X", Endpoints: [2]string{"blackhole:1", "refused:1"},
		TLS:            wire.ClientTLSConfig(x509.NewCertPool(), ""),
		ConnectTimeout: 50 * time.Millisecond, BackoffMin: time.Hour,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			if addr == "refused:1" {
				return nil, errors.New("connection refused")
			}
			<-ctx.Done()
			return nil, ctx.Err()
		},
		DialTimedOut: func(addr string) {
			mu.Lock()
			reported = append(reported, addr)
			mu.Unlock()
		}})
	defer d.Close()
	deadline := time.Now().Add(5 * time.Second)
	for d.Dials() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || reported[0] != "blackhole:1" {
		t.Fatalf("reported %v, want only the silent endpoint", reported)
	}
}
