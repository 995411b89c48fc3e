package daemon

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/hapair"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/privbus"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// find is the first state sent to systemd that starts with prefix and
// contains contains ("" if none).
func (r *recordingNotifier) find(prefix, contains string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.states {
		if strings.HasPrefix(s, prefix) && strings.Contains(s, contains) {
			return s
		}
	}
	return ""
}

// labRig is an emulated lab (2 primaries, 2 secondaries, every LSS at the
// CG timeout given) and the folder of an in-process lockstepd's state,
// which a test can start, stop and start again (a restart).
type labRig struct {
	t     *testing.T
	dir   string
	lab   *lab.Server
	bus   string
	state string
	// drivers, if set, replace lockstepd's (a test wraps them);
	// consoles are lockstepd's console factories (none if nil).
	drivers  Drivers
	consoles Consoles
	// swapHosts is lockstepd's z/OS HyperSwap factory (none if nil).
	swapHosts hal.SwapHostFactory
	// extra is appended to the configuration (e.g. [[snmp.manager]]);
	// tweak, if set, sees each server before it runs (its test hooks).
	extra string
	tweak func(*Server)
	// server holds extra [server] keys of lockstepd's configuration.
	server string
}

func newLabRig(t *testing.T, cg time.Duration) *labRig {
	t.Helper()
	return newLabRigN(t, 2, cg)
}

// newLabRigN is newLabRig with primaries primaries (and as many
// secondaries).
func newLabRigN(t *testing.T, primaries int, cg time.Duration) *labRig {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("dbus-daemon missing (make deps installs it)")
		}
		t.Skip("dbus-daemon missing")
	}
	dir := t.TempDir()
	srv, stop, err := hapair.StartLab(context.Background(), dir, primaries, cg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	addr, stopBus, err := privbus.Start(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stopBus)
	return &labRig{t: t, dir: dir, lab: srv, bus: addr, state: filepath.Join(dir, "state")}
}

// start runs a lockstepd on the rig's state with the [heartbeat] table
// given, and returns its client and a stop function.
func (r *labRig) start(heartbeat string, n Notifier) (*client.Client, func()) {
	t := r.t
	t.Helper()
	ca := filepath.Join(r.dir, "storage-ca.pem")
	if err := os.WriteFile(ca, r.lab.CAPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("[server]\nname = \"t\"\nstate_dir = \"" + r.state + "\"\n" + r.server + "[heartbeat]\n" + heartbeat +
		"\n[control]\nbus = \"" + r.bus + "\"\n[storage]\nca_file = \"" + ca + "\"\n" + r.extra)
	if err != nil {
		t.Fatal(err)
	}
	drivers := r.drivers
	if drivers == nil {
		drivers = testDrivers()
	}
	srv, err := New(Options{Config: cfg, Notifier: n, Drivers: drivers, Consoles: r.consoles, SwapHosts: r.swapHosts})
	if err != nil {
		t.Fatal(err)
	}
	if r.tweak != nil {
		r.tweak(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	conn, err := client.Connect(r.bus)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(conn)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			conn.Close()
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	if err := eventually(func() bool { d, err := c.HAStatus(ctx); return err == nil && d.Acting }); err != nil {
		t.Fatal("lockstepd did not come up acting")
	}
	return c, stop
}

// defineSession adds every lab system and defines session name in
// consistency group cg over the pairs of the primaries given, then
// starts it and waits until it is Prepared.
func (r *labRig) defineSession(c *client.Client, name, cg string, primaries ...int) {
	t := r.t
	t.Helper()
	ctx := context.Background()
	for _, st := range r.lab.Status() {
		if sd, err := c.StorageShow(ctx, hal.Serial(st.Serial)); err == nil && sd.Serial != "" {
			continue
		}
		if _, err := c.StorageAdd(ctx, api.StorageSpec{Serial: hal.Serial(st.Serial), Connections: []api.ConnectionSpec{{
			Name: "direct", Kind: api.Direct, Addresses: []string{st.Endpoints[0], st.Endpoints[1]},
			User: "lockstep", PasswordFile: hapair.PasswordFile(r.dir, hal.Serial(st.Serial))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SessionCreate(ctx, name, api.MetroMirrorSingleDirection, cg, api.HoldIO); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.lab.Topology().Pairs {
		for _, i := range primaries {
			if p.Source.Serial == topology.PrimarySerial(i) {
				if err := c.SessionAddCopySet(ctx, name, api.CopySet{H1: p.Source, H2: p.Target}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var last error
	if err := eventually(func() bool { _, last = c.SessionCommand(ctx, name, api.CmdStartH1H2); return last == nil }); err != nil {
		t.Fatalf("start-h1-h2 %s: %v", name, last)
	}
	if err := eventually(func() bool {
		d, err := c.SessionCommand(ctx, name, api.CmdRefresh)
		return err == nil && d.State == api.StatePrepared
	}); err != nil {
		t.Fatalf("%s never Prepared", name)
	}
}

func hasEvent(c *client.Client, id, contains string) bool {
	evs, err := c.Events(context.Background(), 0)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(evs, func(e api.EventDoc) bool { return e.ID == id && strings.Contains(e.Text, contains) })
}

const (
	// safeFor5s leaves H = 3.7 s under a 5 s CG timeout (the floors of the
	// configuration: detection window 500 ms, poll 1 s).
	safeFor5s = "interval = \"200ms\"\ndetection_window = \"500ms\"\nrequest_timeout = \"300ms\"\npoll_interval = \"1s\"\nretry_interval = \"250ms\"\n"
	// unsafeFor5s is issue 12's: safe from a 7 s CG timeout on.
	unsafeFor5s = "interval = \"500ms\"\ndetection_window = \"2s\"\nrequest_timeout = \"1s\"\npoll_interval = \"1s\"\nretry_interval = \"250ms\"\n"
)

// TestRestartWithUnsafeTimingsIsReadyButDegraded: the journal says the
// heartbeat is on, and lockstepd restarts with timings that leave the
// session's group no safe H. It still gets ready (a start that never does
// would make systemd restart-loop), with a STATUS= that says DEGRADED and
// names the group and the reason, a trap, and lockstepctl status and
// heartbeat show saying it. The group is in the freeze core's scope: a
// path failure freezes it, and the session shows it without a refresh.
func TestRestartWithUnsafeTimingsIsReadyButDegraded(t *testing.T) {
	r := newLabRig(t, 5*time.Second)
	ctx := context.Background()
	c, stop := r.start(safeFor5s, &countingNotifier{})
	r.defineSession(c, "prod", "cgx", 0, 1)
	if _, err := c.HeartbeatSet(ctx, true); err != nil {
		t.Fatal(err)
	}
	stop()

	n := &recordingNotifier{}
	c, _ = r.start(unsafeFor5s, n)
	if err := eventually(func() bool { return n.find("STATUS=", "DEGRADED") != "" }); err != nil {
		t.Fatalf("no degraded STATUS=; sent %q", n.states)
	}
	if n.find("READY=1", "") == "" {
		t.Fatal("no READY=1")
	}
	if line := n.find("STATUS=", "DEGRADED"); !strings.Contains(line, "cg:cgx") || !strings.Contains(line, "unsafe heartbeat timing") {
		t.Fatalf("STATUS= %q does not name the group and the reason", line)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Degraded) != 1 || !strings.Contains(st.Degraded[0], "cg:cgx") {
		t.Fatalf("status degraded %q", st.Degraded)
	}
	if !hasEvent(c, "LS4005E", "cg:cgx") {
		t.Fatal("no groupUnprotected event")
	}
	hb, err := c.HeartbeatShow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(hb.Groups) != 1 || hb.Groups[0].Unprotected == "" || len(hb.Groups[0].Systems) != 2 {
		t.Fatalf("heartbeat show: %+v", hb.Groups)
	}
	if err := r.lab.Inject(lab.Fault{Kind: "paths", System: string(topology.PrimarySerial(1))}); err != nil {
		t.Fatal(err)
	}
	if err := eventually(func() bool {
		d, err := c.SessionShow(ctx, "prod")
		return err == nil && d.State == api.StateSuspended
	}); err != nil {
		d, _ := c.SessionShow(ctx, "prod")
		t.Fatalf("after a path failure: %s (%s), want Suspended without a refresh", d.State, d.Reason)
	}
}

// TestUnreachableMemberWithoutHeartbeat is issue 12 §2's S1 with the
// heartbeat off: while a primary is unreachable the session stays
// Prepared (the manager cannot know more) but its status is Warning with
// the reason; once the primary has been unreachable longer than the
// lowest CG timeout (5 s), Severe, not recoverable, with a trap. Contact
// regained gives Normal back.
func TestUnreachableMemberWithoutHeartbeat(t *testing.T) {
	r := newLabRig(t, 5*time.Second)
	ctx := context.Background()
	c, _ := r.start(safeFor5s, &countingNotifier{})
	r.defineSession(c, "prod", "cgx", 0, 1)
	p1 := string(topology.PrimarySerial(0))
	lost := time.Now()
	for _, f := range []lab.Fault{{Kind: "manager", System: p1, Endpoint: -1, Mode: "down", Manager: "t"}, {Kind: "paths", System: p1}} {
		if err := r.lab.Inject(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := eventually(func() bool {
		d, err := c.SessionShow(ctx, "prod")
		return err == nil && d.Status == api.StatusWarning
	}); err != nil {
		d, _ := c.SessionShow(ctx, "prod")
		t.Fatalf("with %s unreachable: %s %s (%s), want Prepared, Warning", p1, d.State, d.Status, d.Reason)
	}
	d, _ := c.SessionShow(ctx, "prod")
	if d.State != api.StatePrepared || !strings.Contains(d.Reason, p1) || time.Since(lost) > 5*time.Second {
		t.Fatalf("%s %s (%s) after %v", d.State, d.Status, d.Reason, time.Since(lost))
	}
	if err := eventuallyWithin(15*time.Second, func() bool {
		d, err := c.SessionShow(ctx, "prod")
		return err == nil && d.Status == api.StatusSevere
	}); err != nil {
		d, _ := c.SessionShow(ctx, "prod")
		t.Fatalf("unreachable for %v: %s %s (%s), want Severe", time.Since(lost), d.State, d.Status, d.Reason)
	}
	d, _ = c.SessionShow(ctx, "prod")
	if d.State != api.StatePrepared || d.Recoverable || !strings.Contains(d.Reason, "lowest CG timeout") {
		t.Fatalf("%s %s recoverable %v (%s)", d.State, d.Status, d.Recoverable, d.Reason)
	}
	if !hasEvent(c, "LS2106E", p1) {
		t.Fatal("no groupOutOfContact event")
	}
	st, _ := c.Status(ctx)
	if len(st.Degraded) != 1 || !strings.Contains(st.Degraded[0], p1) {
		t.Fatalf("status degraded %q", st.Degraded)
	}
}

// eventuallyWithin polls cond until it holds or within passed.
func eventuallyWithin(within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}
