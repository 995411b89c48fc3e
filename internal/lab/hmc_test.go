package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/drivers/wire"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
)

func TestShippedLabFileHMCs(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig("../../etc/lab.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.HMCs) != 2 {
		t.Fatalf("%d HMCs, want a dual HMC", len(cfg.HMCs))
	}
	for _, h := range cfg.HMCs {
		if len(h.Systems) != len(cfg.Systems) {
			t.Errorf("%s fronts %d systems, want all %d", h.Name, len(h.Systems), len(cfg.Systems))
		}
		if h.Processing != emu.DefaultHMCProcessing || h.LinkLatency != emu.DefaultHMCLinkLatency {
			t.Errorf("%s: processing %v, link latency %v, want the defaults", h.Name, h.Processing, h.LinkLatency)
		}
		host, _, err := net.SplitHostPort(h.Endpoint)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			t.Errorf("%s: endpoint %q is not a loopback address", h.Name, h.Endpoint)
		}
		for _, s := range cfg.Systems {
			for _, ep := range s.Endpoints {
				if sh, _, _ := net.SplitHostPort(ep); sh == host {
					t.Errorf("%s shares the address %s with %s", h.Name, host, s.Serial)
				}
			}
		}
	}
}

const goodHMC = `
[[hmc]]
name = "H"
user = "u"
password = "p"
endpoint = "127.0.0.1:0"
systems = ["A"]
`

func TestBadHMCLabFiles(t *testing.T) {
	t.Parallel()
	other := strings.Replace(goodSystem, `"A"`, `"B"`, 1)
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no name", goodSystem + strings.Replace(goodHMC, `name = "H"`, "", 1), "name is required"},
		{"twice", goodSystem + goodHMC + goodHMC, "name defined twice"},
		{"no password", goodSystem + strings.Replace(goodHMC, `password = "p"`, "", 1), "user and password are required"},
		{"no endpoint", goodSystem + strings.Replace(goodHMC, `endpoint = "127.0.0.1:0"`, "", 1), "endpoint is required"},
		{"fronts nothing", goodSystem + strings.Replace(goodHMC, `["A"]`, `[]`, 1), "systems must list"},
		{"unknown system", goodSystem + strings.Replace(goodHMC, `["A"]`, `["Z"]`, 1), `system "Z" is not defined`},
		{"system twice", goodSystem + other + strings.Replace(goodHMC, `["A"]`, `["A", "B", "A"]`, 1), `system "A" listed twice`},
		{"three HMCs", goodSystem + goodHMC + strings.Replace(goodHMC, `"H"`, `"H2"`, 1) + strings.Replace(goodHMC, `"H"`, `"H3"`, 1),
			`system "A" sits behind 3 HMCs`},
		{"bare duration", goodSystem + goodHMC + "processing = 200\n", `must be a string such as "60s"`},
		{"unknown key", goodSystem + goodHMC + "colour = 1\n", `unknown key "hmc.colour"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfig(tc.text)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	cfg, err := ParseConfig(goodSystem + goodHMC + "processing = \"0s\"\nlink_latency = \"1ms\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.HMCs[0]; h.Processing != 0 || h.LinkLatency != time.Millisecond {
		t.Fatalf("timing %v, %v: want the file's", h.Processing, h.LinkLatency)
	}
}

const hmcLab = `
[[system]]
serial = "A"
user = "u"
password = "pa"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2
[[system]]
serial = "B"
user = "u"
password = "pb"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2
[[hmc]]
name = "H1"
user = "hmc"
password = "ph"
endpoint = "127.0.0.1:0"
systems = ["A", "B"]
`

func startHMCLab(t *testing.T) *Server {
	t.Helper()
	cfg, err := ParseConfig(hmcLab)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := Start(ctx, cfg, Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	return srv
}

func dialLab(t *testing.T, srv *Server, addr string, hello wire.Hello) (*wire.Client, wire.HelloOK, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, wire.HelloOK{}, err
	}
	c, ok, err := wire.NewClient(ctx, tls.Client(raw, wire.ClientTLSConfig(pool, "127.0.0.1")), hello, wire.ClientOptions{})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, ok, err
}

func hmcAddr(srv *Server) string { return srv.HMCStatus()[0].Endpoint }

func callCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestHMCServedOverTheWire(t *testing.T) {
	t.Parallel()
	srv := startHMCLab(t)
	c, ok, err := dialLab(t, srv, hmcAddr(srv), wire.Hello{ToHMC: true, HMC: "H1", Manager: "m", User: "hmc", Password: "ph"})
	if err != nil {
		t.Fatal(err)
	}
	if ok.HMC != "H1" || len(ok.Attached) != 2 || ok.Serial != "" || !ok.Capabilities.Heartbeat {
		t.Fatalf("HelloOK %+v", ok)
	}
	for _, s := range []hal.Serial{"A", "B"} {
		lsss, err := c.To(s).QueryLSSs(callCtx(t, 5*time.Second), 1)
		if err != nil || len(lsss) != 1 {
			t.Fatalf("query %s through the HMC: %v, %v", s, lsss, err)
		}
	}
	if _, err := c.To("Z").QueryLSSs(callCtx(t, 5*time.Second), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("a system the HMC does not front: %v, want unreachable", err)
	}
	if _, err := c.QueryLSSs(callCtx(t, 5*time.Second), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("a request naming no system: %v, want unreachable", err)
	}
	recs, _ := srv.Fabric().Commands(0)
	if len(recs) != 2 || recs[0].Manager != "m" {
		t.Fatalf("command log %+v, want the two queries, by manager m", recs)
	}

	// hmc-link down for A: A unreachable through the HMC, B not, and the
	// HMC says so; A's direct endpoints are untouched.
	inject(t, srv, Fault{Kind: "hmc-link", HMC: "H1", System: "A", Up: false})
	if _, err := c.To("A").QueryLSSs(callCtx(t, 5*time.Second), 1); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("query over a down private link: %v, want unreachable", err)
	}
	if _, err := c.To("B").QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	att, err := c.Attached(callCtx(t, 5*time.Second))
	if err != nil || len(att) != 2 || att[0] != (wire.AttachedSystem{Serial: "A"}) || !att[1].LinkUp {
		t.Fatalf("attached %+v, %v", att, err)
	}
	direct := srv.Status()[0].Endpoints[0]
	d, _, err := dialLab(t, srv, direct, wire.Hello{Serial: "A", Manager: "m", User: "u", Password: "pa"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil {
		t.Fatalf("direct query while the HMC's link is down: %v", err)
	}
	inject(t, srv, Fault{Kind: "hmc-link", HMC: "H1", System: "A", Up: true})
	if _, err := c.To("A").QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}

	// hmc-link black-holed for A: the HMC still answers, for B and about
	// its links (A's looks up to it), but A's commands hang to their
	// deadline; the lab's status tells the truth.
	inject(t, srv, Fault{Kind: "hmc-link", HMC: "H1", System: "A", Mode: "blackhole"})
	if _, err := c.To("A").QueryLSSs(callCtx(t, 300*time.Millisecond), 1); !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("query over a black-holed private link: %v, want a timeout", err)
	}
	if _, err := c.To("B").QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if att, err := c.Attached(callCtx(t, 5*time.Second)); err != nil || len(att) != 2 || !att[0].LinkUp {
		t.Fatalf("attached %+v, %v: a black-holed link looks up to the HMC", att, err)
	}
	if st := srv.HMCStatus()[0].Systems[0]; st.Mode != "blackhole" || !st.Up {
		t.Fatalf("lab status of A's link %+v, want mode blackhole, up to the HMC", st)
	}
	inject(t, srv, Fault{Kind: "hmc-link", HMC: "H1", System: "A", Up: true})
	if _, err := c.To("A").QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil {
		t.Fatal(err)
	}

	// Black hole: no answer; latency: answers later; down: the
	// connection closes and new ones are refused; up: back.
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Mode: "blackhole"})
	if _, err := c.To("A").QueryLSSs(callCtx(t, 200*time.Millisecond), 1); !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("query through a black-holed HMC: %v, want timeout", err)
	}
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Mode: "up"})
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Latency: "50ms"})
	start := time.Now()
	if _, err := c.To("A").QueryLSSs(callCtx(t, 5*time.Second), 1); err != nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("query through a slow HMC: %v after %v", err, time.Since(start))
	}
	if st := srv.HMCStatus()[0]; st.Latency != "50ms" {
		t.Fatalf("status %+v, want the latency", st)
	}
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Latency: "0s"})
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Mode: "down"})
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection outlived its HMC")
	}
	if _, _, err := dialLab(t, srv, hmcAddr(srv), wire.Hello{ToHMC: true, Manager: "m", User: "hmc", Password: "ph"}); !errors.Is(err, hal.ErrUnreachable) {
		t.Fatalf("connect to a down HMC: %v, want unreachable", err)
	}
	inject(t, srv, Fault{Kind: "hmc", HMC: "H1", Mode: "up"})
	if _, _, err := dialLab(t, srv, hmcAddr(srv), wire.Hello{ToHMC: true, Manager: "m", User: "hmc", Password: "ph"}); err != nil {
		t.Fatalf("connect after the HMC came back: %v", err)
	}
	if srv.HMC("H1") == nil || srv.HMC("nope") != nil {
		t.Fatal("HMC lookup")
	}
}

func TestHMCHandshakeRefusals(t *testing.T) {
	t.Parallel()
	srv := startHMCLab(t)
	direct := srv.Status()[0].Endpoints[0]
	tests := []struct {
		name  string
		addr  string
		hello wire.Hello
		want  error
	}{
		{"wrong-password", hmcAddr(srv), wire.Hello{ToHMC: true, User: "hmc", Password: "nope"}, hal.ErrAuth},
		{"other-hmc", hmcAddr(srv), wire.Hello{ToHMC: true, HMC: "H2", User: "hmc", Password: "ph"}, wire.ErrIdentity},
		{"system-credentials-at-the-hmc", hmcAddr(srv), wire.Hello{Serial: "A", User: "u", Password: "pa"}, wire.ErrIdentity},
		{"hmc-hello-at-a-system", direct, wire.Hello{ToHMC: true, User: "hmc", Password: "ph"}, wire.ErrIdentity},
		{"bad-fault", "", wire.Hello{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.addr == "" {
				for _, f := range []Fault{{Kind: "hmc", HMC: "nope", Mode: "down"}, {Kind: "hmc", HMC: "H1", Mode: "sideways"},
					{Kind: "hmc", HMC: "H1", Mode: "down", Latency: "1ms"}, {Kind: "hmc", HMC: "H1", Latency: "soon"},
					{Kind: "hmc-link", HMC: "H1", System: "Z"}, {Kind: "hmc-link", HMC: "H1", System: "A", Mode: "sideways"}} {
					if err := srv.Inject(f); err == nil {
						t.Errorf("fault %+v accepted", f)
					}
				}
				return
			}
			_, _, err := dialLab(t, srv, tc.addr, tc.hello)
			if !errors.Is(err, tc.want) {
				t.Fatalf("handshake: %v, want %v", err, tc.want)
			}
		})
	}
}

func inject(t *testing.T, srv *Server, f Fault) {
	t.Helper()
	if err := srv.Inject(f); err != nil {
		t.Fatal(err)
	}
}
