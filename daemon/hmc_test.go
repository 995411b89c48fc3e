package daemon

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
)

// hmcLabFile is two storage systems with direct endpoints of their own,
// both behind two HMCs.
const hmcLabFile = `
[[system]]
serial = "LAB.HMC-A"
user = "lockstep"
password = "pw-a"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2

[[system]]
serial = "LAB.HMC-B"
user = "lockstep"
password = "pw-b"
endpoints = ["127.0.0.1:0", "127.0.0.1:0"]
  [[system.lss]]
  id = "10"
  type = "FB"
  volumes = 2

[[hmc]]
name = "HMC1"
user = "hmcuser"
password = "hmc-pw"
endpoint = "127.0.0.1:0"
systems = ["LAB.HMC-A", "LAB.HMC-B"]

[[hmc]]
name = "HMC2"
user = "hmcuser"
password = "hmc-pw"
endpoint = "127.0.0.1:0"
systems = ["LAB.HMC-A", "LAB.HMC-B"]
`

func newHMCRig(t *testing.T) *labRig {
	t.Helper()
	r := newLabRig(t, 5*time.Second) // the dbus-daemon check and the bus; its lab is not used
	cfg, err := lab.ParseConfig(hmcLabFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(dir, "lab.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	r.lab = srv
	r.consoles = Consoles{hal.HMC: hmc.OpenConsole}
	return r
}

func (r *labRig) hmcAddrs(names ...string) []string {
	var out []string
	for _, n := range names {
		for _, st := range r.lab.HMCStatus() {
			if st.Name == n {
				out = append(out, st.Endpoint)
			}
		}
	}
	return out
}

func (r *labRig) secret(name, value string) string {
	p := filepath.Join(r.dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

func viaOf(ctx context.Context, c *client.Client, serial hal.Serial) string {
	d, err := c.StorageShow(ctx, serial)
	if err != nil {
		return "error: " + err.Error()
	}
	return d.Via
}

// TestHMCConnectionEndToEnd: lockstepd with the hmc console factory. A
// dual HMC connection is added; the storage systems behind it are
// discovered (no storage add) and reached through it; one HMC failing
// moves them to the other; a direct connection added to one system
// carries it first; with the heartbeat on, removing the HMC connection
// (the last TCP/IP connection of the other system, which no session
// uses) is not refused, and the discovered system goes with it.
func TestHMCConnectionEndToEnd(t *testing.T) {
	r := newHMCRig(t)
	ctx := context.Background()
	c, stop := r.start(safeFor5s, &countingNotifier{})
	defer stop()
	a, b := hal.Serial("LAB.HMC-A"), hal.Serial("LAB.HMC-B")
	pw := r.secret("hmc.pw", "hmc-pw")
	if _, err := c.HMCAdd(ctx, api.HMCSpec{Name: "HMCS", Addresses: r.hmcAddrs("HMC1", "HMC2"), User: "hmcuser",
		PasswordFile: pw}); err != nil {
		t.Fatal(err)
	}
	if err := eventuallyWithin(20*time.Second, func() bool {
		return strings.Contains(viaOf(ctx, c, a), "HMC1") && strings.Contains(viaOf(ctx, c, b), "HMC1")
	}); err != nil {
		list, _ := c.StorageList(ctx)
		t.Fatalf("systems not discovered and reached through HMC1: %+v", list)
	}
	var h api.HMCDoc
	if err := eventuallyWithin(20*time.Second, func() bool {
		h, _ = c.HMCShow(ctx, "HMCS")
		return len(h.Consoles) == 2 && h.Consoles[1].State == "connected"
	}); err != nil {
		t.Fatalf("HMC2 not connected: %+v", h)
	}
	if !slices.Equal(h.Attached, []hal.Serial{a, b}) || len(h.Consoles) != 2 || h.Consoles[0].State != "connected" ||
		h.Consoles[0].Name != "HMC1" || h.Consoles[1].Name != "HMC2" {
		t.Fatalf("hmc show %+v", h)
	}
	if err := r.lab.Inject(lab.Fault{Kind: "hmc", HMC: "HMC1", Mode: "down"}); err != nil {
		t.Fatal(err)
	}
	if err := eventuallyWithin(20*time.Second, func() bool { return strings.Contains(viaOf(ctx, c, a), "HMC2") }); err != nil {
		t.Fatalf("not failed over to HMC2: via %q", viaOf(ctx, c, a))
	}
	if d, _ := c.StorageShow(ctx, a); !d.Reachable {
		t.Fatalf("%s unreachable with HMC2 up: %+v", a, d)
	}
	// Both HMCs down: readiness names the HMCs this server cannot reach.
	if err := r.lab.Inject(lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "down"}); err != nil {
		t.Fatal(err)
	}
	var ha api.HADoc
	if err := eventuallyWithin(20*time.Second, func() bool {
		ha, _ = c.HAStatus(ctx)
		return len(ha.Readiness) == 2 && strings.Contains(ha.Readiness[1].Reason, "only through HMC connection HMCS") &&
			strings.Contains(ha.Readiness[1].Reason, "HMC2")
	}); err != nil {
		t.Fatalf("readiness with both HMCs down: %+v", ha.Readiness)
	}
	if err := r.lab.Inject(lab.Fault{Kind: "hmc", HMC: "HMC2", Mode: "up"}); err != nil {
		t.Fatal(err)
	}
	if err := eventuallyWithin(20*time.Second, func() bool { return strings.Contains(viaOf(ctx, c, b), "HMC2") }); err != nil {
		t.Fatalf("HMC2 back: via %q", viaOf(ctx, c, b))
	}
	st := r.lab.Status()
	if _, err := c.StorageAdd(ctx, api.StorageSpec{Serial: a, Connections: []api.ConnectionSpec{{Name: "direct",
		Kind: api.Direct, Addresses: []string{st[0].Endpoints[0], st[0].Endpoints[1]}, User: "lockstep",
		PasswordFile: r.secret("a.pw", "pw-a")}}}); err != nil {
		t.Fatal(err)
	}
	if err := eventuallyWithin(20*time.Second, func() bool { return strings.HasPrefix(viaOf(ctx, c, a), "direct direct") }); err != nil {
		t.Fatalf("the direct connection does not carry %s first: via %q", a, viaOf(ctx, c, a))
	}
	if _, err := c.HeartbeatSet(ctx, true); err != nil {
		t.Fatal(err)
	}
	// B, reached only through HMCS, goes with it; no session uses it, so
	// losing its last TCP/IP connection suspends nothing: not refused
	// (TestForcedRemovalOfTheLastTCPIPConnectionSuspendsAtOnce refuses
	// one that sessions use).
	ws, err := c.HMCRemove(ctx, "HMCS", false)
	if err != nil || len(ws) != 0 {
		t.Fatalf("hmc remove: %v, warnings %q", err, ws)
	}
	list, _ := c.StorageList(ctx)
	if len(list) != 1 || list[0].Serial != a {
		t.Fatalf("after hmc remove: %+v, want %s only", list, a)
	}
	if l, _ := c.HMCList(ctx); len(l) != 0 {
		t.Fatalf("hmc list after remove: %+v", l)
	}
	// A restart replays the registry: A keeps its direct connection.
	stop()
	c, stop = r.start(safeFor5s, &countingNotifier{})
	defer stop()
	if err := eventuallyWithin(20*time.Second, func() bool { return strings.HasPrefix(viaOf(ctx, c, a), "direct") }); err != nil {
		t.Fatalf("after restart: via %q", viaOf(ctx, c, a))
	}

}
