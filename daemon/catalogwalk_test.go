package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/config"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/notify"
	"github.com/lockstep-io/lockstep/drivers/direct"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/lab"
	"github.com/lockstep-io/lockstep/internal/snmpagent"
	"github.com/lockstep-io/lockstep/internal/topology"
)

// provenElsewhere are the notifications that need two lockstepd
// processes (an HA pair): the named test causes each and asserts its
// receipt at a real snmptrapd.
var provenElsewhere = map[notify.Event]string{
	notify.HAStateChanged: "internal/hapair TestBothServersSendHAStateTraps",
	notify.Takeover:       "internal/hapair TestTakeoverAndDemotionAreTrapped",
	notify.Demoted:        "internal/hapair TestTakeoverAndDemotionAreTrapped",
	// A full disk needs root to mount a small tmpfs.
	notify.StateUnwritable: "daemon TestDaemonOnAFullDisk",
	notify.StateWritable:   "daemon TestDaemonOnAFullDisk",
}

// armRefuser is a driver that refuses to arm the heartbeat while refuse
// is set: a storage system that will not take the heartbeat (issue 18
// §1's heartbeatUnprotected) cannot be made in the lab otherwise.
type armRefuser struct {
	hal.Driver
	refuse *atomic.Bool
}

func (a armRefuser) EnableHeartbeat(ctx context.Context, e hal.Epoch, spec hal.HeartbeatSpec) error {
	if a.refuse.Load() {
		return fmt.Errorf("%w: enable-heartbeat: heartbeat not licensed on this system (test)", hal.ErrRefused)
	}
	return a.Driver.EnableHeartbeat(ctx, e, spec)
}

// TestEveryNotificationHasASender (issue 18 §1) walks the event
// catalogue against what a real snmptrapd received: each notification
// is caused through its real path in a lab (a heartbeat that expires
// while lockstepd is stopped, a wedged core through the watchdog's test
// hook, a storage system out of contact, a freeze that cannot reach one
// system, a reload refused, ...) and the test fails naming every
// notification snmptrapd did not receive, unless provenElsewhere names
// the test that proves it.
func TestEveryNotificationHasASender(t *testing.T) {
	trapd := snmpagent.StartTrapd(t)
	r := newLabRigN(t, 3, 5*time.Second)
	community := filepath.Join(r.dir, "nms.community")
	if err := os.WriteFile(community, []byte("public\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.extra = fmt.Sprintf("[[snmp.manager]]\naddress = \"udp://127.0.0.1:%d\"\nversion = \"v2c\"\nnotification = \"trap\"\n"+
		"community_file = %q\n", trapd.Port, community)
	p0, p1, p2 := topology.PrimarySerial(0), topology.PrimarySerial(1), topology.PrimarySerial(2)
	refuse := new(atomic.Bool)
	r.drivers = Drivers{hal.Direct: func(ctx context.Context, spec hal.ConnectionSpec) (hal.Driver, error) {
		d, err := direct.Factory(ctx, spec)
		if err != nil || spec.Serial != p0 {
			return d, err
		}
		return armRefuser{Driver: d, refuse: refuse}, nil
	}}
	var srv atomic.Pointer[Server]
	r.tweak = func(s *Server) {
		s.watchdogEvery = time.Second // the core ticks every 200 ms
		srv.Store(s)
	}
	ctx := context.Background()
	oid := func(e notify.Event) string {
		return fmt.Sprintf("OID: .%s.1.0.%d", config.DefaultEnterpriseOID, e.Code)
	}
	received := func(e notify.Event, contains string) func(string) bool {
		return func(l string) bool {
			i := strings.Index(l, oid(e))
			if i < 0 {
				return false
			}
			rest := l[i+len(oid(e)):]
			return (rest == "" || rest[0] == '\t') && strings.Contains(l, contains)
		}
	}
	// wait is a step's sync point; what did not come is named by the
	// walk at the end, with everything else that did not.
	wait := func(e notify.Event, contains string) {
		t.Helper()
		if err := trapd.Wait(ctx, 20*time.Second, received(e, contains)); err != nil {
			t.Logf("%s (%s, %q) not received by snmptrapd: %v", notify.NotificationName(e), e.ID(), contains, err)
		}
	}
	sessionIs := func(c interface {
		SessionShow(context.Context, string) (api.SessionDoc, error)
	}, name string, state api.SessionState) {
		t.Helper()
		if err := eventuallyWithin(30*time.Second, func() bool {
			d, err := c.SessionShow(ctx, name)
			return err == nil && d.State == state
		}); err != nil {
			d, _ := c.SessionShow(ctx, name)
			t.Fatalf("session %s is %s (%s), want %s", name, d.State, d.Reason, state)
		}
	}
	inject := func(fs ...lab.Fault) {
		t.Helper()
		for _, f := range fs {
			if err := r.lab.Inject(f); err != nil {
				t.Fatal(err)
			}
		}
	}

	c, stop := r.start(safeFor5s, &countingNotifier{})
	if _, err := c.SNMPTest(ctx); err != nil {
		t.Fatal(err)
	}
	wait(notify.SNMPTest, "")
	// Two consistency groups: cge (primary 0) for the heartbeat's
	// expiry, cgp (primaries 1 and 2) for a partial freeze.
	r.defineSession(c, "exp", "cge", 0)
	r.defineSession(c, "par", "cgp", 1, 2)
	wait(notify.ConfigChanged, string(p0)) // a storage system added
	wait(notify.SessionPreparing, "session=par")
	wait(notify.SessionPrepared, "session=par")

	// Primary 2 out of contact (its paths fail with it, S1) past the
	// lowest CG timeout, heartbeat off: groupOutOfContact, Severe.
	inject(lab.Fault{Kind: "manager", System: string(p2), Endpoint: -1, Mode: "down", Manager: "t"},
		lab.Fault{Kind: "paths", System: string(p2)})
	wait(notify.StorageCommFailure, string(p2))
	wait(notify.GroupOutOfContact, string(p2)) // (the long contact field cuts the group off)
	wait(notify.SessionSevere, "session=par")
	// Then a path of primary 1 fails: the freeze cannot reach primary 2.
	inject(lab.Fault{Kind: "paths", System: string(p1)})
	wait(notify.SuspendingEvent, "group=cg:cgp")
	wait(notify.SessionSuspending, "session=par")
	wait(notify.GroupPartial, "group=cg:cgp")
	wait(notify.SessionSuspendedPartial, "session=par")
	inject(lab.Fault{Kind: "manager", System: string(p2), Endpoint: -1, Mode: "up", Manager: "t"})
	wait(notify.StorageCommRecovered, string(p2))

	// A wedged core: the watchdog withholds its ping and says so once.
	srv.Load().wedged.Store(true)
	wait(notify.WatchdogWithheld, "progress=0 ") // the hook's counter, not a slow tick
	srv.Load().wedged.Store(false)

	// A storage system reachable only through z/OS, and primary 0
	// refusing the arm, when the heartbeat is switched on.
	if _, err := c.ZOSAdd(ctx, api.ZOSSpec{Name: "zos", Addresses: []string{"127.0.0.1:9"}, Sysplex: "PLEX1",
		Systems: []hal.Serial{"LAB.2107-75Z0001"}}); err != nil {
		t.Fatal(err)
	}
	refuse.Store(true)
	if _, err := c.HeartbeatSet(ctx, true); err != nil {
		t.Fatal(err)
	}
	wait(notify.HeartbeatSwitched, "")
	wait(notify.HeartbeatNoIP, "LAB.2107-75Z0001")
	wait(notify.HeartbeatUnprotected, string(p0))
	refuse.Store(false)
	if err := eventuallyWithin(10*time.Second, func() bool {
		hb, err := c.HeartbeatShow(ctx)
		if err != nil {
			return false
		}
		for _, g := range hb.Groups {
			if g.Name == "cg:cge" {
				return len(g.Systems) == 1 && g.Systems[0].Armed
			}
		}
		return false
	}); err != nil {
		t.Fatal("primary 0 never armed once it accepted the heartbeat")
	}
	// A reload whose timings would take the heartbeat's protection from
	// cge is refused (SIGHUP reaches Reload so).
	unsafe := *srv.Load().cfg.Load()
	unsafe.Heartbeat.Interval, unsafe.Heartbeat.DetectionWindow, unsafe.Heartbeat.RequestTimeout =
		500*time.Millisecond, 2*time.Second, time.Second
	srv.Load().Reload(&unsafe)
	wait(notify.ConfigRefused, "")

	// lockstepd stops longer than H: primary 0 froze itself. Started
	// again (with timings unsafe for cge's 5 s CG timeout: the group is
	// not protected by the heartbeat), lockstepd learns of the expiry, and
	// the NMS hears how long primary 0 holds.
	stop()
	time.Sleep(6 * time.Second) // H is 3.7 s
	c, stop = r.start(unsafeFor5s, &countingNotifier{})
	defer stop()
	wait(notify.GroupUnprotected, "") // (its why holds UTF-8: snmptrapd shows the fields in hex)
	wait(notify.HeartbeatExpired, "hold=5s")
	wait(notify.GroupFrozen, "group=cg:cge")
	sessionIs(c, "exp", api.StateSuspended)
	wait(notify.SessionSuspended, "session=exp")
	if _, err := c.SessionCommand(ctx, "exp", api.CmdReleaseIO); err != nil {
		t.Fatal(err)
	}
	wait(notify.GroupThawed, "group=cg:cge")
	if _, err := c.SessionCommand(ctx, "exp", api.CmdRecover); err != nil {
		t.Fatal(err)
	}
	wait(notify.SessionRecovering, "session=exp")
	wait(notify.SessionTargetAvailable, "session=exp")
	wait(notify.RecoverableChanged, "")
	if _, err := c.SessionCommand(ctx, "exp", api.CmdTerminate); err != nil {
		t.Fatal(err)
	}
	wait(notify.SessionDefined, "session=exp")

	// Scheduled tasks run now: one whose step holds (exp is Defined),
	// one whose wait times out.
	for _, tk := range []struct{ name, step string }{
		{"holds", "wait exp defined timeout 5s"},
		{"times-out", "wait exp prepared timeout 1s"},
	} {
		if _, err := c.TaskCreate(ctx, api.TaskSpec{Name: tk.name, Schedule: "daily 02:00", Zone: "UTC",
			Steps: []string{tk.step}}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.TaskRun(ctx, tk.name, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	wait(notify.TaskSucceeded, "holds")
	wait(notify.TaskFailed, "times-out")

	// The state restored from a backup.
	b, err := c.BackupCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.BackupRestore(ctx, b.Name); err != nil {
		t.Fatal(err)
	}
	wait(notify.BackupRestored, "")

	// The walk: every notification of the catalogue was received, or is
	// proven by the test named.
	lines := trapd.Lines()
	for _, e := range notify.Notifications() {
		if test, ok := provenElsewhere[e]; ok {
			t.Logf("%s (%s): proven by %s", notify.NotificationName(e), e.ID(), test)
			continue
		}
		got := false
		for _, l := range lines {
			if received(e, "")(l) {
				got = true
				break
			}
		}
		if !got {
			t.Errorf("%s (%s) has no sender: snmptrapd never received it", notify.NotificationName(e), e.ID())
		}
	}
}
