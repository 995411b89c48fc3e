package daemon

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/drivers/direct"
	hmcdriver "github.com/lockstep-io/lockstep/drivers/hmc"
	"github.com/lockstep-io/lockstep/drivers/zos"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/emu"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// newZOSRig is a lab rig whose lab also runs z/OS host SYSA of sysplex
// PLEX1 with every system online, and whose lockstepd is of PLEX1 and
// links the direct and z/OS drivers. The systems are newLabRig's (two
// primaries, two secondaries, the same serials and password files).
// With hmc, the lab also runs HMC1 fronting every system, and lockstepd
// links the hmc console.
func newZOSRig(t *testing.T, cg time.Duration, hmc bool) *labRig {
	t.Helper()
	r := newLabRig(t, cg) // the bus and the password files; its lab is replaced
	var lsss []emu.LSSConfig
	for _, l := range topology.DefaultLSSs() {
		l.CGTimeout = cg
		lsss = append(lsss, l)
	}
	topo := topology.Standard(2, lsss)
	cfg := &lab.Config{Speed: 1, Topology: topo}
	h := lab.ZOSHost{Name: "SYSA", Sysplex: "PLEX1", Endpoint: "127.0.0.1:0", User: "zosuser", Password: "zos-pw",
		LPARs: []string{"SYSA1"}}
	for _, sc := range topo.Systems {
		cfg.Systems = append(cfg.Systems, lab.System{SystemConfig: sc, User: "lockstep",
			Password: "pw-" + string(sc.Serial), Endpoints: [2]string{"127.0.0.1:0", "127.0.0.1:0"}})
		h.Online = append(h.Online, lab.ZOSOnline{Serial: sc.Serial, Channels: []string{"40"}})
	}
	cfg.ZOSHosts = []lab.ZOSHost{h}
	if hmc {
		withHMC(cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := lab.Start(ctx, cfg, lab.Options{ControlSocket: filepath.Join(t.TempDir(), "lab.sock")})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Wait() })
	r.lab = srv
	r.drivers = Drivers{hal.Direct: direct.Factory, hal.ZOS: zos.Factory}
	r.server = "sysplex = \"PLEX1\"\n"
	if hmc {
		r.consoles = Consoles{hal.HMC: hmcdriver.OpenConsole}
	}
	return r
}

// addZOS defines z/OS connection SYSA (zos add) with serials online.
func (r *labRig) addZOS(c *client.Client, serials ...hal.Serial) {
	r.t.Helper()
	if _, err := c.ZOSAdd(context.Background(), api.ZOSSpec{Name: "SYSA", Addresses: []string{r.lab.ZOSEndpoint("SYSA")},
		Sysplex: "PLEX1", User: "zosuser", PasswordFile: r.secret("zos.pw", "zos-pw"), Systems: serials}); err != nil {
		r.t.Fatal(err)
	}
}

func zosState(ctx context.Context, c *client.Client, serial hal.Serial) string {
	d, err := c.StorageShow(ctx, serial)
	if err != nil {
		return err.Error()
	}
	for _, cd := range d.Connections {
		if cd.Kind == api.ZOS {
			return cd.State + " " + cd.Detail
		}
	}
	return "none"
}

// TestZOSRulesEndToEnd: lockstepd of sysplex PLEX1 with the direct and
// z/OS drivers, against the lab over loopback TLS. The seed's rules:
//   - with the heartbeat on and every TCP/IP connection of a primary cut
//     (with its paths), the session is Suspended and Recoverable: the
//     freeze went out to that primary through the z/OS host (the lab's
//     command log holds it) — S5;
//   - a system left reachable only through z/OS makes heartbeat on
//     warn, against its real connection;
//   - removing the last TCP/IP connection of a system with the heartbeat
//     on is refused without --force, and with it the admin is told that
//     applications see ELB until the storage timer expires, and the
//     session over it is suspended;
//   - restarted outside the sysplex, the server's takeover readiness
//     lists the system reachable only through z/OS: not in sysplex PLEX1.
func TestZOSRulesEndToEnd(t *testing.T) {
	r := newZOSRig(t, 5*time.Second, false)
	ctx := context.Background()
	c, stop := r.start(safeFor5s, &countingNotifier{})
	defer stop()
	r.defineSession(c, "prod", "cgz", 0)
	r.defineSession(c, "test", "cgt", 1)
	var serials []hal.Serial
	for _, st := range r.lab.Status() {
		serials = append(serials, hal.Serial(st.Serial))
	}
	r.addZOS(c, serials...)
	if _, err := c.StorageAdd(ctx, api.StorageSpec{Serial: serials[0], Connections: []api.ConnectionSpec{{Name: "z",
		Kind: api.ZOS, Addresses: []string{r.lab.ZOSEndpoint("SYSA")}, Sysplex: "PLEX1"}}}); err == nil ||
		!strings.Contains(err.Error(), "zos add") {
		t.Fatalf("storage add --kind zos: %v, want refused with a pointer to zos add", err)
	}
	for _, s := range serials {
		if err := eventuallyWithin(20*time.Second, func() bool { return strings.HasPrefix(zosState(ctx, c, s), "connected") }); err != nil {
			t.Fatalf("%s: z/OS connection %q", s, zosState(ctx, c, s))
		}
	}
	ws, err := c.HeartbeatSet(ctx, true)
	if err != nil || len(ws) != 0 {
		t.Fatalf("heartbeat on: %v, warnings %q (every system has a TCP/IP connection)", err, ws)
	}

	// S5: primary 0 loses its paths and both cluster connections.
	p0 := topology.PrimarySerial(0)
	before := commandsSince(r.lab, 0)
	after := uint64(0)
	if len(before) > 0 {
		after = before[len(before)-1].Seq
	}
	if err := r.lab.Inject(lab.Fault{Kind: "manager", System: string(p0), Endpoint: -1, Mode: "down", Manager: "t"}); err != nil {
		t.Fatal(err)
	}
	if err := r.lab.Inject(lab.Fault{Kind: "paths", System: string(p0)}); err != nil {
		t.Fatal(err)
	}
	var doc api.SessionDoc
	if err := eventuallyWithin(30*time.Second, func() bool {
		doc, _ = c.SessionShow(ctx, "prod")
		return doc.State == api.StateSuspended && doc.Recoverable
	}); err != nil {
		t.Fatalf("prod after S5: %+v, want Suspended and Recoverable", doc)
	}
	if !slices.ContainsFunc(commandsSince(r.lab, after), func(rec emu.CommandRecord) bool {
		return rec.Serial == p0 && rec.Op == emu.OpFreeze && rec.Outcome == emu.OutcomeOK
	}) {
		t.Fatalf("no freeze reached %s (its TCP/IP connections cut): the z/OS host did not carry it", p0)
	}

	// The last TCP/IP connection of primary 1 (session test): refused
	// while the heartbeat is on, unless forced.
	p1 := topology.PrimarySerial(1)
	if _, err := c.StorageRemove(ctx, p1, "direct", false); err == nil || !strings.Contains(err.Error(), "heartbeat") {
		t.Fatalf("removing the last TCP/IP connection with the heartbeat on: %v, want refused", err)
	}
	ws, err = c.StorageRemove(ctx, p1, "direct", true)
	if err != nil || !slices.ContainsFunc(ws, func(w string) bool {
		return strings.Contains(w, "suspended") && strings.Contains(w, "extended long busy until the storage timer expires")
	}) {
		t.Fatalf("storage remove --force: %v, warnings %q: want the sessions suspended and ELB until the storage timer", err, ws)
	}
	if err := eventuallyWithin(30*time.Second, func() bool {
		doc, _ = c.SessionShow(ctx, "test")
		return doc.State == api.StateSuspended || doc.State == api.StateSuspendedPartial
	}); err != nil {
		t.Fatalf("test after its primary's last TCP/IP connection was removed: %+v, want suspended", doc)
	}
	// p1 is now reachable only through z/OS, over a real connection:
	// heartbeat on warns of it.
	if err := eventuallyWithin(20*time.Second, func() bool {
		d, _ := c.StorageShow(ctx, p1)
		return d.Reachable && strings.HasPrefix(d.Via, "zos SYSA")
	}); err != nil {
		d, _ := c.StorageShow(ctx, p1)
		t.Fatalf("%s not reached through z/OS: %+v", p1, d)
	}
	ws, err = c.HeartbeatSet(ctx, true)
	if err != nil || !slices.ContainsFunc(ws, func(w string) bool {
		return strings.Contains(w, string(p1)) && strings.Contains(w, "only through z/OS")
	}) {
		t.Fatalf("heartbeat on with %s reachable only through z/OS: %v, warnings %q", p1, err, ws)
	}
	// zos show lists every system online through SYSA, connected here;
	// storage list says p1 is reached through it.
	zd, err := c.ZOSShow(ctx, "SYSA")
	if err != nil || zd.Sysplex != "PLEX1" || len(zd.Systems) != len(serials) {
		t.Fatalf("zos show SYSA: %+v, %v", zd, err)
	}
	for _, sd := range zd.Systems {
		if sd.Serial != p0 && sd.State != "connected" {
			t.Fatalf("zos show SYSA: %s %s %q, want connected", sd.Serial, sd.State, sd.Detail)
		}
	}
	if zl, err := c.ZOSList(ctx); err != nil || len(zl) != 1 || zl[0].Name != "SYSA" {
		t.Fatalf("zos list: %+v, %v", zl, err)
	}
	// SYSA is p1's only connection and session test uses p1: zos remove
	// is refused; storage remove of the connection points at zos remove.
	if _, err := c.ZOSRemove(ctx, "SYSA"); err == nil || !strings.Contains(err.Error(), "session test uses "+string(p1)) {
		t.Fatalf("zos remove of the only connection of a system in use: %v, want refused", err)
	}
	if _, err := c.StorageRemove(ctx, p1, "SYSA", false); err == nil || !strings.Contains(err.Error(), "zos remove") {
		t.Fatalf("storage remove of a z/OS connection: %v, want a pointer to zos remove", err)
	}

	// Takeover readiness of a server outside the sysplex (the same
	// state, [server] sysplex unset): it lists the system it could reach
	// only through z/OS and says why; storage show says the z/OS
	// connections are unusable.
	stop()
	r.server = ""
	c, stop = r.start(safeFor5s, &countingNotifier{})
	defer stop()
	ha, err := c.HAStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ha.Readiness, func(d api.ReadinessDoc) bool { return d.Serial == p1 })
	if i < 0 || !strings.Contains(ha.Readiness[i].Reason, "not in sysplex PLEX1") {
		t.Fatalf("readiness outside the sysplex: %+v, want %s: not in sysplex PLEX1", ha.Readiness, p1)
	}
	if st := zosState(ctx, c, p0); !strings.HasPrefix(st, "unusable not in sysplex PLEX1") {
		t.Fatalf("%s's z/OS connection outside the sysplex: %q", p0, st)
	}
	if zd, err := c.ZOSShow(ctx, "SYSA"); err != nil || len(zd.Systems) == 0 ||
		zd.Systems[0].State != "unusable" || !strings.Contains(zd.Systems[0].Detail, "not in sysplex PLEX1") {
		t.Fatalf("zos show SYSA outside the sysplex: %+v, %v", zd, err)
	}
}

// commandsSince is every command the lab's systems judged after seq.
func commandsSince(l *lab.Server, seq uint64) []emu.CommandRecord {
	var out []emu.CommandRecord
	for {
		recs, _, more := l.Commands(lab.CommandsParam{After: seq})
		out = append(out, recs...)
		if len(recs) > 0 {
			seq = recs[len(recs)-1].Seq
		}
		if !more {
			return out
		}
	}
}
