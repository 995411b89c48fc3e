package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control"
	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/privbus"
)

// The exit codes lockstepctl promises (written here, not taken from the
// code under test).
const (
	wantOK    = 0
	wantFail  = 1
	wantUsage = 2
)

func ctl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String() + errb.String()
}

func TestUsageAndUnreachableDaemon(t *testing.T) {
	t.Parallel()
	nobus := "unix:path=" + filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, wantUsage, "usage: lockstepctl"},
		{[]string{"--nonsense"}, wantUsage, "usage"},
		{[]string{"--bus", nobus, "status"}, wantFail, "cannot reach the"},
		{[]string{"--bus", "nonsense", "status"}, wantUsage, "cannot reach the nonsense bus"},
	} {
		code, out := ctl(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, out, tc.code, tc.want)
		}
	}
}

// fake is a control.Backend that answers fixed documents and records the
// changes it is asked for.
type fake struct {
	mu    sync.Mutex
	calls []string
}

func (f *fake) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fake) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

var (
	at      = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	h1, _   = api.ParseVolumeRef("LAB.2107-75P0001/1001")
	h2, _   = api.ParseVolumeRef("LAB.2107-75P0002/1001")
	prodDoc = api.SessionDoc{Name: "prod", Type: api.MetroMirrorFailoverFailback, CG: "prod-cg",
		Policy: api.HoldIO, State: api.StatePrepared, Status: api.StatusNormal, Copying: true,
		ActiveSite: api.H1, Direction: api.H1ToH2,
		CopySets:          []api.CopySet{{H1: h1, H2: h2}},
		AvailableCommands: []api.SessionCommand{api.CmdSuspend, api.CmdTerminate}, Reason: "started", LastChange: at}
	storageDoc = api.StorageDoc{Serial: "LAB.2107-75P0001", Reachable: true, Heartbeat: true, Via: "direct direct: cluster 0",
		Connections: []api.ConnectionDoc{{Name: "direct", Kind: api.Direct,
			Addresses: []string{"127.0.0.1:1750", "127.0.0.1:1751"}, Heartbeat: true, State: "connected"}},
		Sessions: []string{"prod"}}
	lag = uint64(3)
)

func (f *fake) Status(context.Context) (api.StatusDoc, error) {
	return api.StatusDoc{Server: "lockstep-a", Version: "1.2.3", Role: "active", HAState: "Synchronized", Epoch: 7,
		Heartbeat: true, Sessions: api.SessionCounts{Total: 2, Normal: 1, Warning: 1, Recoverable: 1},
		Storage: api.StorageCounts{Total: 8, Reachable: 7}}, nil
}
func (f *fake) StorageList(context.Context) ([]api.StorageDoc, error) {
	return []api.StorageDoc{storageDoc}, nil
}
func (f *fake) StorageShow(_ context.Context, serial hal.Serial) (api.StorageDoc, error) {
	if serial != storageDoc.Serial {
		return api.StorageDoc{}, fmt.Errorf("%w: storage system %s", api.ErrNotFound, serial)
	}
	return storageDoc, nil
}
func (f *fake) SessionList(context.Context) ([]api.SessionDoc, error) {
	return []api.SessionDoc{prodDoc}, nil
}
func (f *fake) SessionShow(_ context.Context, name string) (api.SessionDoc, error) {
	return prodDoc, nil
}
func (f *fake) HeartbeatShow(context.Context) (api.HeartbeatDoc, error) {
	return api.HeartbeatDoc{Enabled: true, Interval: api.Duration(time.Second), Groups: []api.HeartbeatGroupDoc{{
		Name: "prod-cg", Phase: "mirroring", H: api.Duration(53 * time.Second),
		Systems: []api.HeartbeatSystemDoc{{Serial: "LAB.2107-75P0001", Armed: true, LastReply: at}}}},
		Warnings: []string{"LAB.2107-75P0009 has no TCP/IP connection"}}, nil
}
func (f *fake) BackupList(context.Context) ([]api.BackupDoc, error) {
	return []api.BackupDoc{{Name: "lockstep-20250301T120000Z-42.zip", Created: at, Size: 1234, Epoch: 7, LastIndex: 42}}, nil
}
func (f *fake) FirewallHints(_ context.Context, format api.FirewallFormat) (api.FirewallDoc, error) {
	f.record("firewall %s", format)
	return api.FirewallDoc{Format: format, Rules: "# rules in " + string(format) + "\n"}, nil
}
func (f *fake) HAStatus(context.Context) (api.HADoc, error) {
	return api.HADoc{Edition: "full", Role: "active", State: "Synchronized", Epoch: 7, Acting: true, LastIndex: 42,
		Listen: "tcp://127.0.0.1:9730", Partner: "tcp://127.0.0.1:9731", StandbyLag: &lag}, nil
}
func (f *fake) StorageAdd(_ context.Context, spec api.StorageSpec) ([]string, error) {
	b, _ := json.Marshal(spec)
	f.record("storage add %s", b)
	return []string{"added while the heartbeat is on"}, nil
}
func (f *fake) HMCList(context.Context) ([]api.HMCDoc, error) {
	f.record("hmc list")
	return []api.HMCDoc{{Name: "HMCS", Addresses: []string{"hmc1:1751", "hmc2:1751"}, Attached: []hal.Serial{"LAB.2107-75P0001"},
		Consoles: []api.HMCConsoleDoc{{Addr: "hmc1:1751", Name: "LAB-HMC1", State: "connected", Attached: []hal.Serial{"LAB.2107-75P0001"}},
			{Addr: "hmc2:1751", State: "disconnected", Detail: "connection refused", Attached: []hal.Serial{}}},
		Partner: []api.HMCConsoleDoc{{Addr: "hmc1:1751", Name: "LAB-HMC1", State: "disconnected", Detail: "no route to host",
			Attached: []hal.Serial{}}, {Addr: "hmc2:1751", State: "connected", Attached: []hal.Serial{}}}},
		{Name: "SOLO", Addresses: []string{"hmc3:1751"}, Attached: []hal.Serial{},
			Consoles:      []api.HMCConsoleDoc{{Addr: "hmc3:1751", State: "connected", Attached: []hal.Serial{}}},
			PartnerDetail: "not connected (HA state Disconnected Consistent): the partner's view is unknown"}}, nil
}
func (f *fake) HMCShow(ctx context.Context, name string) (api.HMCDoc, error) {
	f.record("hmc show %s", name)
	if name != "HMCS" {
		return api.HMCDoc{}, fmt.Errorf("%w: HMC connection %q", api.ErrNotFound, name)
	}
	l, _ := f.HMCList(ctx)
	return l[0], nil
}
func (f *fake) HMCAdd(_ context.Context, spec api.HMCSpec) ([]string, error) {
	b, _ := json.Marshal(spec)
	f.record("hmc add %s", b)
	return []string{}, nil
}
func (f *fake) HMCRemove(_ context.Context, name string, force bool) ([]string, error) {
	f.record("hmc remove %s %v", name, force)
	if !force {
		return nil, fmt.Errorf("%w: last TCP/IP connection while the heartbeat is on: use --force", api.ErrRefused)
	}
	return []string{"sessions will be suspended"}, nil
}
func (f *fake) ZOSList(context.Context) ([]api.ZOSDoc, error) {
	f.record("zos list")
	return []api.ZOSDoc{{Name: "SYSA", Addresses: []string{"zos1:5858"}, Sysplex: "PLEX1", Systems: []api.ZOSSystemDoc{
		{Serial: "LAB.2107-75P0001", State: "connected"},
		{Serial: "LAB.2107-75P0002", State: "unusable", Detail: "not in sysplex PLEX1"}}}}, nil
}
func (f *fake) ZOSShow(ctx context.Context, name string) (api.ZOSDoc, error) {
	f.record("zos show %s", name)
	if name != "SYSA" {
		return api.ZOSDoc{}, fmt.Errorf("%w: z/OS connection %q", api.ErrNotFound, name)
	}
	l, _ := f.ZOSList(ctx)
	return l[0], nil
}
func (f *fake) ZOSAdd(_ context.Context, spec api.ZOSSpec) ([]string, error) {
	b, _ := json.Marshal(spec)
	f.record("zos add %s", b)
	return []string{}, nil
}
func (f *fake) ZOSRemove(_ context.Context, name string) ([]string, error) {
	f.record("zos remove %s", name)
	return nil, fmt.Errorf("%w: session prod uses LAB.2107-75P0001, which z/OS connection SYSA is the only connection of", api.ErrRefused)
}
func (f *fake) StorageRemove(_ context.Context, serial hal.Serial, connection string, force bool) ([]string, error) {
	f.record("storage remove %s %q %v", serial, connection, force)
	if !force {
		return nil, fmt.Errorf("%w: the heartbeat is on: use --force", api.ErrRefused)
	}
	return []string{"sessions will be suspended"}, nil
}
func (f *fake) SessionCreate(_ context.Context, name string, t session.Type, cg string, p session.Policy) error {
	f.record("session create %s %s %q %s", name, t, cg, p)
	return nil
}
func (f *fake) SessionAddCopySet(_ context.Context, name string, cs session.CopySet) error {
	f.record("session add-copyset %s %s %s", name, cs.H1, cs.H2)
	return nil
}
func (f *fake) SessionCommand(_ context.Context, name string, cmd session.Command) (api.SessionDoc, error) {
	f.record("session cmd %s %s", name, cmd)
	if cmd == session.CmdRecover {
		return api.SessionDoc{}, fmt.Errorf("%w: recover is not allowed in state Prepared", session.ErrNotAllowed)
	}
	return prodDoc, nil
}
func (f *fake) SessionRemove(_ context.Context, name string) error {
	f.record("session remove %s", name)
	return nil
}
func (f *fake) HeartbeatSet(_ context.Context, on bool) ([]string, error) {
	f.record("heartbeat %v", on)
	return nil, nil
}
func (f *fake) BackupCreate(context.Context) (api.BackupDoc, error) {
	f.record("backup create")
	return api.BackupDoc{Name: "lockstep-20250301T120000Z-43.zip", Size: 999}, nil
}
func (f *fake) BackupRestore(_ context.Context, name string) error {
	f.record("backup restore %s", name)
	if strings.Contains(name, "/") {
		return fmt.Errorf("%w: backup name %q", api.ErrInvalid, name)
	}
	return nil
}
func (f *fake) HASetStandby(_ context.Context, addr, name string) error {
	f.record("ha set-standby %s %s", addr, name)
	return nil
}
func (f *fake) HASetAsStandby(_ context.Context, addr, name string) error {
	f.record("ha set-as-standby %s %s", addr, name)
	return nil
}
func (f *fake) HATakeover(context.Context) (api.TakeoverDoc, error) {
	f.record("ha takeover")
	return api.TakeoverDoc{Epoch: 8, Unreachable: []hal.Serial{"LAB.2107-75P0002"}}, nil
}
func (f *fake) HAReconnect(context.Context) error     { f.record("ha reconnect"); return nil }
func (f *fake) HARemoveStandby(context.Context) error { f.record("ha remove-standby"); return nil }
func (f *fake) SNMPTest(context.Context) (api.SNMPTestDoc, error) {
	f.record("snmp test")
	return api.SNMPTestDoc{Managers: []api.SNMPTestManagerDoc{
		{Address: "udp://nms1:162", Version: "v2c", Notification: "inform", Seq: 4, Outcome: "acknowledged"},
		{Address: "udp://nms2:162", Version: "v2c", Notification: "trap", Seq: 4, Outcome: "sent"},
	}}, nil
}
func (f *fake) HARemoveActive(context.Context) error {
	f.record("ha remove-active")
	return fmt.Errorf("%w: synchronized: remove the standby on the active instead", api.ErrRefused)
}

var taskDoc = api.TaskDoc{Name: "nightly", Schedule: "daily 02:30", Zone: "Europe/Berlin", Steps: []string{"suspend prod", "start-h1-h2 prod"},
	Enabled: true, Created: at, Next: time.Date(2025, 3, 2, 1, 30, 0, 0, time.UTC),
	Last: &api.OccurrenceDoc{Scheduled: at, Started: at, Finished: at.Add(time.Minute), Epoch: 7, Result: "failed", Message: "step 1 (suspend prod): refused"}}

func (f *fake) TaskList(context.Context) ([]api.TaskDoc, error) { return []api.TaskDoc{taskDoc}, nil }
func (f *fake) TaskShow(_ context.Context, name string) (api.TaskDoc, error) {
	if name != taskDoc.Name {
		return api.TaskDoc{}, fmt.Errorf("%w: task %s", api.ErrNotFound, name)
	}
	return taskDoc, nil
}
func (f *fake) TaskCreate(_ context.Context, spec api.TaskSpec) (api.TaskDoc, error) {
	f.record("task create %s %q %q %q %t", spec.Name, spec.Schedule, spec.Zone, spec.Steps, spec.Disabled)
	return taskDoc, nil
}
func (f *fake) TaskEnable(_ context.Context, name string, on bool) (api.TaskDoc, error) {
	f.record("task enable %s %t", name, on)
	return taskDoc, nil
}
func (f *fake) TaskRun(_ context.Context, name string, t time.Time) (api.TaskDoc, error) {
	f.record("task run %s %s", name, t.UTC().Format(time.RFC3339))
	d := taskDoc
	d.RunAt = t
	return d, nil
}
func (f *fake) TaskRemove(_ context.Context, name string) error {
	f.record("task remove %s", name)
	return nil
}

// serve starts a private dbus-daemon with the fake behind the admin API,
// and returns the bus address.
func serve(t *testing.T, b control.Backend) (string, *control.Server) {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dbus-daemon is not installed (Debian package dbus-daemon); CI must have it")
		}
		t.Skip("dbus-daemon is not installed (Debian package dbus-daemon)")
	}
	addr, stop, err := privbus.Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	conn, err := client.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := control.Serve(ctx, conn, b, control.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return addr, srv
}

// Every verb against a daemon: what it prints, what it asks the daemon
// for, and its exit code. The table was run against the hand-made parser
// before the cobra one replaced it.
func TestVerbs(t *testing.T) {
	t.Parallel()
	f := &fake{}
	bus, srv := serve(t, f)
	for i := range 3 {
		if _, err := srv.Emit(api.EventDoc{At: at, ID: fmt.Sprintf("LS-100%d-I", i), Severity: "info", Text: fmt.Sprintf("event %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		want  []string // substrings of the output, in order
		calls []string // what the daemon was asked, in order
	}{
		{name: "status", args: []string{"status"}, want: []string{"server", "lockstep-a (1.2.3)", "role", "active",
			"HA state", "Synchronized", "epoch", "7", "heartbeat", "on",
			"sessions", "2 (normal 1, warning 1, severe 0, inactive 0; recoverable 1)", "storage systems", "8 (7 reachable)"}},
		{name: "status json", args: []string{"--json", "status"}, want: []string{`"server": "lockstep-a"`, `"ha_state": "Synchronized"`}},
		// New with the cobra tree: global flags after the verb, and a
		// stray argument refused (the hand-made parser ignored it).
		{name: "json after the verb", args: []string{"status", "--json"}, want: []string{`"server": "lockstep-a"`}},
		{name: "status takes no argument", args: []string{"status", "x"}, code: wantUsage},
		{name: "unknown verb", args: []string{"frobnicate"}, code: wantUsage, want: []string{"frobnicate"}},

		{name: "storage list", args: []string{"storage", "list"}, want: []string{"SERIAL", "REACHABLE", "HEARTBEAT", "VIA", "CONNECTIONS", "SESSIONS", "ZOS",
			"LAB.2107-75P0001", "true", "true", "direct direct: cluster 0", "direct(direct:connected)", "prod"}},
		{name: "storage list json", args: []string{"--json", "storage", "list"}, want: []string{`"serial": "LAB.2107-75P0001"`, `"state": "connected"`}},
		{name: "storage show", args: []string{"storage", "show", "LAB.2107-75P0001"}, want: []string{"serial", "LAB.2107-75P0001",
			"reachable", "true", "heartbeat capable", "true", "via", "direct direct: cluster 0", "sessions", "prod", "connection direct", "direct 127.0.0.1:1750,127.0.0.1:1751 connected"}},
		{name: "storage show unknown", args: []string{"storage", "show", "LAB.2107-75P0099"}, code: wantFail, want: []string{"LAB.2107-75P0099"}},
		{name: "storage show needs a serial", args: []string{"storage", "show"}, code: wantUsage},
		{name: "storage add", args: []string{"storage", "add", "LAB.2107-75P0003", "--addr", "h1:1750,h2:1750", "--user", "u", "--password-file", "/etc/pw"},
			want:  []string{"warning: added while the heartbeat is on"},
			calls: []string{`storage add {"serial":"LAB.2107-75P0003","connections":[{"name":"direct","kind":"direct","addresses":["h1:1750","h2:1750"],"user":"u","password_file":"/etc/pw"}]}`}},
		{name: "storage add flags first", args: []string{"storage", "add", "--name", "d2", "--addr", "h:1750", "S"},
			want:  []string{"warning:"},
			calls: []string{`storage add {"serial":"S","connections":[{"name":"d2","kind":"direct","addresses":["h:1750"]}]}`}},
		{name: "storage add of a zos connection points at zos add", args: []string{"storage", "add", "--kind", "zos", "--name", "z", "--sysplex", "P1", "--addr", "zos:3000", "S"},
			code: wantUsage, want: []string{"zos add"}},
		{name: "zos add", args: []string{"zos", "add", "SYSA", "--addr", "zos1:5858", "--sysplex", "PLEX1", "--serial", "A,B", "--user", "u", "--password-file", "/etc/pw"},
			calls: []string{`zos add {"name":"SYSA","addresses":["zos1:5858"],"sysplex":"PLEX1","user":"u","password_file":"/etc/pw","systems":["A","B"]}`}},
		{name: "zos add without serial", args: []string{"zos", "add", "SYSA", "--addr", "zos1:5858", "--sysplex", "PLEX1"}, code: wantUsage},
		{name: "zos add without sysplex", args: []string{"zos", "add", "SYSA", "--addr", "zos1:5858", "--serial", "A"}, code: wantUsage},
		{name: "zos add serial twice", args: []string{"zos", "add", "SYSA", "--addr", "zos1:5858", "--sysplex", "P", "--serial", "A,A"}, code: wantUsage},
		{name: "zos list", args: []string{"zos", "list"}, want: []string{"HOST", "SYSPLEX", "SYSA", "PLEX1", "LAB.2107-75P0001(connected) LAB.2107-75P0002(unusable)"},
			calls: []string{"zos list"}},
		{name: "zos show", args: []string{"zos", "show", "SYSA"}, want: []string{"sysplex", "PLEX1", "system LAB.2107-75P0002", "unusable not in sysplex PLEX1"},
			calls: []string{"zos show SYSA", "zos list"}},
		{name: "zos show unknown", args: []string{"zos", "show", "NOPE"}, code: wantFail, calls: []string{"zos show NOPE"}},
		{name: "zos remove refused", args: []string{"zos", "remove", "SYSA"}, code: wantFail, want: []string{"only connection"},
			calls: []string{"zos remove SYSA"}},
		{name: "storage add without addr", args: []string{"storage", "add", "S"}, code: wantUsage},
		{name: "storage add of an hmc connection points at hmc add", args: []string{"storage", "add", "S", "--kind", "hmc", "--addr", "h:1751"},
			code: wantUsage, want: []string{"hmc add"}},
		{name: "hmc add dual", args: []string{"hmc", "add", "HMCS", "--addr", "hmc1:1751,hmc2:1751", "--user", "u", "--password-file", "/etc/pw"},
			calls: []string{`hmc add {"name":"HMCS","addresses":["hmc1:1751","hmc2:1751"],"user":"u","password_file":"/etc/pw"}`}},
		{name: "hmc add three addresses", args: []string{"hmc", "add", "H", "--addr", "a:1,b:1,c:1"}, code: wantUsage},
		{name: "hmc add without addr", args: []string{"hmc", "add", "H"}, code: wantUsage},
		{name: "hmc list", args: []string{"hmc", "list"}, want: []string{"HMCS", "hmc1:1751(connected) hmc2:1751(disconnected)",
			"hmc1:1751(disconnected) hmc2:1751(connected)", "LAB.2107-75P0001", "(not connected (HA state Disconnected Consistent)"},
			calls: []string{"hmc list"}},
		{name: "hmc show", args: []string{"hmc", "show", "HMCS"}, want: []string{"LAB-HMC1 connected", "connection refused",
			"partner hmc1:1751  LAB-HMC1 disconnected no route to host", "partner hmc2:1751  - connected"},
			calls: []string{"hmc show HMCS", "hmc list"}},
		{name: "hmc show unknown", args: []string{"hmc", "show", "NOPE"}, code: wantFail, calls: []string{"hmc show NOPE"}},
		{name: "hmc remove refused", args: []string{"hmc", "remove", "HMCS"}, code: wantFail, want: []string{"use --force"},
			calls: []string{"hmc remove HMCS false"}},
		{name: "hmc remove forced", args: []string{"hmc", "remove", "--force", "HMCS"}, want: []string{"warning: sessions will be suspended"},
			calls: []string{"hmc remove HMCS true"}},
		{name: "storage add two serials", args: []string{"storage", "add", "S", "T", "--addr", "h:1"}, code: wantUsage},
		{name: "storage remove refused", args: []string{"storage", "remove", "S", "--connection", "direct"}, code: wantFail,
			want: []string{"use --force"}, calls: []string{`storage remove S "direct" false`}},
		{name: "storage remove forced", args: []string{"storage", "remove", "--force", "S"}, want: []string{"warning: sessions will be suspended"},
			calls: []string{`storage remove S "" true`}},
		{name: "storage without subcommand", args: []string{"storage"}, code: wantUsage},
		{name: "storage unknown subcommand", args: []string{"storage", "frob"}, code: wantUsage},

		{name: "session list", args: []string{"session", "list"}, want: []string{"NAME", "TYPE", "STATE", "STATUS", "RECOVERABLE", "COPY SETS", "CG",
			"prod", "mm-failover-failback", "Prepared", "Normal", "false", "1", "prod-cg"}},
		{name: "session show", args: []string{"session", "show", "prod"}, want: []string{"session", "prod (mm-failover-failback)",
			"state", "Prepared", "status", "Normal", "recoverable", "false", "copying", "true", "I/O held", "false",
			"active site", "H1", "direction", "consistency group", "prod-cg", "policy", "hold-io", "copy sets", "1",
			"last change", "2025-03-01T12:00:00Z: started", "available commands", "suspend, terminate"}},
		{name: "session show json", args: []string{"--json", "session", "show", "prod"}, want: []string{`"copy_sets"`, `"available_commands"`}},
		{name: "session create defaults", args: []string{"session", "create", "prod"},
			calls: []string{`session create prod mm-failover-failback "" hold-io`}},
		{name: "session create", args: []string{"session", "create", "dev", "--type", "mm-single-direction", "--cg", "g", "--policy", "release-io"},
			calls: []string{`session create dev mm-single-direction "g" release-io`}},
		{name: "session create bad type", args: []string{"session", "create", "dev", "--type", "xrc"}, code: wantUsage, want: []string{"xrc"}},
		{name: "session create bad policy", args: []string{"session", "create", "dev", "--policy", "maybe"}, code: wantUsage, want: []string{"maybe"}},
		{name: "session add-copyset", args: []string{"session", "add-copyset", "prod", "LAB.2107-75P0001/1001", "LAB.2107-75P0002/1001"},
			calls: []string{"session add-copyset prod LAB.2107-75P0001/1001 LAB.2107-75P0002/1001"}},
		{name: "session add-copyset bad volume", args: []string{"session", "add-copyset", "prod", "LAB.2107-75P0001/zz", "LAB.2107-75P0002/1001"}, code: wantUsage},
		{name: "session add-copyset one volume", args: []string{"session", "add-copyset", "prod", "LAB.2107-75P0001/1001"}, code: wantUsage},
		{name: "session cmd", args: []string{"session", "cmd", "prod", "start-h1-h2"}, want: []string{"session", "prod", "available commands"},
			calls: []string{"session cmd prod start-h1-h2"}},
		{name: "session cmd not allowed", args: []string{"session", "cmd", "prod", "recover"}, code: wantFail, want: []string{"not allowed"},
			calls: []string{"session cmd prod recover"}},
		{name: "session cmd unknown", args: []string{"session", "cmd", "prod", "explode"}, code: wantUsage, want: []string{"explode"}},
		{name: "session remove", args: []string{"session", "remove", "prod"}, calls: []string{"session remove prod"}},
		{name: "session unknown subcommand", args: []string{"session", "frob"}, code: wantUsage},

		{name: "heartbeat on", args: []string{"heartbeat", "on"}, calls: []string{"heartbeat true"}},
		{name: "heartbeat off", args: []string{"heartbeat", "off"}, calls: []string{"heartbeat false"}},
		{name: "heartbeat show", args: []string{"heartbeat", "show"}, want: []string{"heartbeat", "on, every 1s",
			"group prod-cg", "mirroring, H 53s", "LAB.2107-75P0001", "armed true, frozen false, last reply 2025-03-01T12:00:00Z",
			"warning", "LAB.2107-75P0009 has no TCP/IP connection"}},
		{name: "heartbeat show json", args: []string{"--json", "heartbeat", "show"}, want: []string{`"enabled": true`, `"interval": "1s"`}},
		{name: "heartbeat maybe", args: []string{"heartbeat", "maybe"}, code: wantUsage},
		{name: "heartbeat without subcommand", args: []string{"heartbeat"}, code: wantUsage},

		{name: "backup create", args: []string{"backup", "create"}, want: []string{"backup lockstep-20250301T120000Z-43.zip created (999 bytes)"},
			calls: []string{"backup create"}},
		{name: "backup list", args: []string{"backup", "list"}, want: []string{"NAME", "CREATED", "EPOCH", "LAST INDEX", "SIZE",
			"lockstep-20250301T120000Z-42.zip", "2025-03-01T12:00:00Z", "7", "42", "1234"}},
		{name: "backup list json", args: []string{"--json", "backup", "list"}, want: []string{`"last_index": 42`}},
		{name: "backup restore", args: []string{"backup", "restore", "b.zip"}, calls: []string{"backup restore b.zip"}},
		{name: "backup restore invalid", args: []string{"backup", "restore", "../b.zip"}, code: wantUsage, calls: []string{"backup restore ../b.zip"}},
		{name: "backup restore needs a name", args: []string{"backup", "restore"}, code: wantUsage},

		{name: "task list", args: []string{"task", "list"}, want: []string{"NAME", "ENABLED", "SCHEDULE", "ZONE", "NEXT RUN", "LAST RUN", "LAST RESULT", "MESSAGE",
			"nightly", "yes", "daily 02:30", "Europe/Berlin", "2025-03-02 02:30:00 CET", "2025-03-01 13:01:00 CET", "failed", "step 1 (suspend prod): refused"}},
		{name: "task show", args: []string{"task", "show", "nightly"}, want: []string{"Step 1:", "suspend prod", "Step 2:", "start-h1-h2 prod", "Last result:", "failed"}},
		{name: "task show unknown", args: []string{"task", "show", "x"}, code: wantFail, want: []string{"task x"}},
		{name: "task create", args: []string{"task", "create", "nightly", "--schedule", "daily 02:30", "--zone", "Europe/Berlin", "--step", "suspend prod", "--step", "start-h1-h2 prod"},
			want:  []string{"task nightly created; next run 2025-03-02 02:30:00 CET"},
			calls: []string{`task create nightly "daily 02:30" "Europe/Berlin" ["suspend prod" "start-h1-h2 prod"] false`}},
		{name: "task create without schedule", args: []string{"task", "create", "n", "--step", "refresh prod"}, code: wantUsage},
		{name: "task create without step", args: []string{"task", "create", "n", "--schedule", "every 6h"}, code: wantUsage},
		{name: "task disable", args: []string{"task", "disable", "nightly"}, want: []string{"task nightly disabled"}, calls: []string{"task enable nightly false"}},
		{name: "task enable", args: []string{"task", "enable", "nightly"}, calls: []string{"task enable nightly true"}},
		{name: "task run at", args: []string{"task", "run", "nightly", "--at", "2025-03-01T14:00:00+01:00"},
			want: []string{"task nightly runs at 2025-03-01 14:00:00 CET"}, calls: []string{"task run nightly 2025-03-01T13:00:00Z"}},
		{name: "task run bad time", args: []string{"task", "run", "nightly", "--at", "tomorrow"}, code: wantUsage},
		{name: "task remove", args: []string{"task", "remove", "nightly"}, calls: []string{"task remove nightly"}},

		{name: "events", args: []string{"events"}, want: []string{"1 2025-03-01T12:00:00Z LS-1000-I event 0", "2 ", "LS-1001-I event 1", "3 ", "event 2"}},
		{name: "events since", args: []string{"events", "--since", "2"}, want: []string{"3 2025-03-01T12:00:00Z LS-1002-I event 2"}},
		{name: "events json", args: []string{"--json", "events", "--since", "2"}, want: []string{`{"seq":3,`, `"id":"LS-1002-I"`}},
		{name: "events bad since", args: []string{"events", "--since", "x"}, code: wantUsage},

		{name: "firewall hints", args: []string{"firewall-hints"}, want: []string{"# rules in text"}, calls: []string{"firewall text"}},
		{name: "firewall hints nft", args: []string{"firewall-hints", "--format", "nft"}, want: []string{"# rules in nft"}, calls: []string{"firewall nft"}},
		{name: "firewall hints json", args: []string{"--json", "firewall-hints", "--format", "iptables"}, want: []string{`"format": "iptables"`},
			calls: []string{"firewall iptables"}},
		{name: "firewall hints bad format", args: []string{"firewall-hints", "--format", "pf"}, code: wantUsage, want: []string{"pf"}},

		{name: "ha status", args: []string{"ha", "status"}, want: []string{"edition", "full", "role", "active", "HA state", "Synchronized",
			"epoch", "7", "acting", "true", "last record", "42", "listen", "tcp://127.0.0.1:9730", "partner", "tcp://127.0.0.1:9731",
			"standby lag", "3 records"}},
		{name: "ha status json", args: []string{"--json", "ha", "status"}, want: []string{`"standby_lag": 3`}},
		{name: "ha set-standby", args: []string{"ha", "set-standby", "tcp://b:9730"}, calls: []string{"ha set-standby tcp://b:9730 "}},
		{name: "ha set-standby --name", args: []string{"ha", "set-standby", "tcp://b:9730", "--name", "b"}, calls: []string{"ha set-standby tcp://b:9730 b"}},
		{name: "ha set-standby needs an address", args: []string{"ha", "set-standby"}, code: wantUsage},
		{name: "ha set-as-standby", args: []string{"ha", "set-as-standby", "tcp://a:9730"}, calls: []string{"ha set-as-standby tcp://a:9730 "}},
		{name: "ha takeover", args: []string{"ha", "takeover"}, want: []string{"active with epoch 8", "cannot reach", "LAB.2107-75P0002"},
			calls: []string{"ha takeover"}},
		{name: "ha reconnect", args: []string{"ha", "reconnect"}, calls: []string{"ha reconnect"}},
		{name: "ha remove-standby", args: []string{"ha", "remove-standby"}, calls: []string{"ha remove-standby"}},
		{name: "ha remove-active refused", args: []string{"ha", "remove-active"}, code: wantFail, want: []string{"synchronized"},
			calls: []string{"ha remove-active"}},
		{name: "ha unknown subcommand", args: []string{"ha", "promote"}, code: wantUsage},
		{name: "snmp test", args: []string{"snmp", "test"}, want: []string{"udp://nms1:162", "inform", "4", "acknowledged",
			"udp://nms2:162", "trap", "sent"}, calls: []string{"snmp test"}},
		{name: "snmp test json", args: []string{"--json", "snmp", "test"}, want: []string{`"outcome": "acknowledged"`},
			calls: []string{"snmp test"}},
		{name: "snmp needs a subcommand", args: []string{"snmp"}, code: wantUsage},
		{name: "snmp pass-persist takes no argument", args: []string{"snmp", "pass-persist", "x"}, code: wantUsage},
		{name: "snmp pass-persist bad enterprise oid", args: []string{"snmp", "pass-persist", "--enterprise-oid", "1.x"}, code: wantUsage,
			want: []string{"--enterprise-oid"}},
	} {
		// Not parallel: the fake's call log is shared.
		code, out := ctl(t, append([]string{"--bus", bus}, tc.args...)...)
		calls := f.take()
		if code != tc.code {
			t.Errorf("%s: %q exit %d, want %d; output:\n%s", tc.name, tc.args, code, tc.code, out)
			continue
		}
		rest := out
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: %q: output lacks %q (in order); output:\n%s", tc.name, tc.args, w, out)
				break
			}
			rest = rest[i+len(w):]
		}
		if !reflect.DeepEqual(calls, tc.calls) {
			t.Errorf("%s: %q: the daemon was asked %q, want %q", tc.name, tc.args, calls, tc.calls)
		}
	}
}

// events --follow prints the kept events, then the new ones, and stops
// when its context ends.
func TestEventsFollow(t *testing.T) {
	t.Parallel()
	bus, srv := serve(t, &fake{})
	if _, err := srv.Emit(api.EventDoc{At: at, ID: "LS-1000-I", Text: "before"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--bus", bus, "events", "--follow"}, pw, &errb)
		pw.Close()
	}()
	buf := make([]byte, 4096)
	var got string
	for !strings.Contains(got, "before") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("reading the output: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	// Subscribed before the history was read: an event emitted now is
	// printed.
	if _, err := srv.Emit(api.EventDoc{At: at, ID: "LS-1001-I", Text: "after"}); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(got, "after") {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("reading the output: %v (got %q)", err, got)
		}
		got += string(buf[:n])
	}
	cancel()
	if code := <-done; code != wantOK {
		t.Errorf("events --follow: exit %d after cancel, want 0; stderr %q", code, errb.String())
	}
	if strings.Count(got, "before") != 1 {
		t.Errorf("the kept event printed %d times:\n%s", strings.Count(got, "before"), got)
	}
}

// TestStorageAddCheckedBeforeTheCall: lockstepctl refuses an address or
// credentials that cannot work itself (exit 2, saying why), before any
// bus: here there is none, so a call would fail otherwise. The daemon
// checks again (daemon.TestRefusedStorageAddChangesNothing).
func TestStorageAddCheckedBeforeTheCall(t *testing.T) {
	t.Parallel()
	nobus := "unix:path=" + filepath.Join(t.TempDir(), "none")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "127.0.0.1:99999"}, "port 99999 is out of range"},
		{[]string{"--addr", "127.0.0.1:1750,127.0.0.1:1e9"}, `port "1e9" is not a decimal number`},
		{[]string{"--addr", "127.0.0.1:-1"}, `port "-1"`},
		{[]string{"--addr", "127.0.0.1:1750", "--user", "admin"}, "needs --password-file"},
		{[]string{"--addr", "127.0.0.1:1750", "--user", "admin", "--password-file", "pw"}, "absolute path"},
	} {
		args := append([]string{"--bus", nobus, "storage", "add", "LAB.2107-75P0001"}, tc.args...)
		code, out := ctl(t, args...)
		if code != wantUsage || !strings.Contains(out, tc.want) || strings.Contains(out, "cannot reach") {
			t.Errorf("%q: exit %d, output %q; want %d and %q, no bus", tc.args, code, out, wantUsage, tc.want)
		}
	}
}
