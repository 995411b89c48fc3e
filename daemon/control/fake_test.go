package control

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// backendCall is one call the fake saw: the Backend method and its
// arguments after the context.
type backendCall struct {
	Method string
	Args   []any
}

func (c backendCall) String() string { return fmt.Sprintf("%s%#v", c.Method, c.Args) }

// fakeBackend records every call and answers canned documents, or err
// when set.
type fakeBackend struct {
	mu    sync.Mutex
	calls []backendCall
	err   error
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) record(method string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, backendCall{method, args})
	return f.err
}

func (f *fakeBackend) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// took returns and forgets the calls seen so far.
func (f *fakeBackend) took() []backendCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeBackend) methods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Method)
	}
	return out
}

func (f *fakeBackend) called(method string) bool { return slices.Contains(f.methods(), method) }

// Canned answers.
var (
	testTime    = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	testStatus  = api.StatusDoc{Server: "mgr1", Version: "1.2.3", Role: "active", HAState: "Synchronized", Epoch: 7, Heartbeat: true, Sessions: api.SessionCounts{Total: 2, Normal: 1, Severe: 1}, Storage: api.StorageCounts{Total: 8, Reachable: 7}}
	testStorage = api.StorageDoc{Serial: "LAB.2107-75P0001", Reachable: true, Heartbeat: true, Connections: []api.ConnectionDoc{{Name: "direct", Kind: api.Direct, Addresses: []string{"127.0.0.1:7001", "127.0.0.1:7002"}, Heartbeat: true, State: "connected"}}, Sessions: []string{"s1"}}
	testSession = api.SessionDoc{Name: "s1", Type: api.MetroMirrorFailoverFailback, CG: "cg1", Policy: api.HoldIO, State: api.StateSuspended, Status: api.StatusSevere, Recoverable: true, IOHeld: true, ActiveSite: api.H1, Direction: api.H1ToH2,
		CopySets: []api.CopySet{{H1: hal.VolumeRef{Serial: "A", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "B", Volume: 0x1001}}}, AvailableCommands: []api.SessionCommand{api.CmdReleaseIO, api.CmdRecover}, Reason: "freeze: path down", LastChange: testTime}
	testHeartbeat = api.HeartbeatDoc{Enabled: true, Interval: api.Duration(time.Second), Groups: []api.HeartbeatGroupDoc{{Name: "cg1", Phase: "mirroring", H: api.Duration(55 * time.Second), Systems: []api.HeartbeatSystemDoc{{Serial: "A", Armed: true, LastSent: testTime}}}}, Warnings: []string{}}
	testBackup    = api.BackupDoc{Name: "lockstep-20250304T050607Z.zip", Created: testTime, Size: 4096, Version: "1.2.3", Epoch: 7, LastIndex: 99}
	testFirewall  = api.FirewallDoc{Format: api.FirewallNft, Rules: "tcp dport 7400 accept", Hints: []api.FirewallHintDoc{{Direction: "in", Protocol: "tcp", LocalPorts: "7400", RemotePorts: "32768-60999", Purpose: "HA peer"}}}
	testHMC       = api.HMCDoc{Name: "HMCS", Addresses: []string{"hmc1:1751", "hmc2:1751"}, User: "lockstep",
		Attached: []hal.Serial{"LAB.2107-75P0001"}, Consoles: []api.HMCConsoleDoc{
			{Addr: "hmc1:1751", Name: "LAB-HMC1", State: "connected", Attached: []hal.Serial{"LAB.2107-75P0001"}},
			{Addr: "hmc2:1751", State: "disconnected", Detail: "connection refused", Attached: []hal.Serial{}}},
		PartnerDetail: "no partner"}
	testZOS = api.ZOSDoc{Name: "SYSA", Addresses: []string{"zos1:5858"}, Sysplex: "PLEX1", User: "lockstep",
		Systems: []api.ZOSSystemDoc{{Serial: "LAB.2107-75ZOS01", State: "unusable", Detail: "not in sysplex PLEX1"}}}
	zosSpec = api.ZOSSpec{Name: "SYSA", Addresses: []string{"zos1:5858"}, Sysplex: "PLEX1", User: "lockstep",
		PasswordFile: "/etc/lockstep/zos.pw", Systems: []hal.Serial{"LAB.2107-75ZOS01"}}
	hmcSpec = api.HMCSpec{Name: "HMCS", Addresses: []string{"hmc1:1751", "hmc2:1751"}, User: "lockstep", PasswordFile: "/etc/lockstep/hmc.pw"}
	testHA  = api.HADoc{Edition: "full", Role: "active", State: "Synchronized", Epoch: 7, Partner: "tcp://mgr2:7400", PartnerRole: "standby", ReconnectLimit: 10, Unreachable: []hal.Serial{},
		Readiness: []api.ReadinessDoc{}}
	testTakeover = api.TakeoverDoc{Epoch: 8, Unreachable: []hal.Serial{"ZOSONLY"},
		Readiness: []api.ReadinessDoc{{Serial: "ZOSONLY", Reason: "only a z/OS connection (sysplex PLEX1)"}},
		Warnings:  []string{"ZOSONLY: z/OS connection outside this sysplex"}}
	testWarnings = []string{"heartbeat cannot reach ZOSONLY: no TCP/IP connection"}
)

func (f *fakeBackend) Status(ctx context.Context) (api.StatusDoc, error) {
	return testStatus, f.record("Status")
}

func (f *fakeBackend) StorageList(ctx context.Context) ([]api.StorageDoc, error) {
	return []api.StorageDoc{testStorage}, f.record("StorageList")
}

func (f *fakeBackend) StorageShow(ctx context.Context, serial hal.Serial) (api.StorageDoc, error) {
	return testStorage, f.record("StorageShow", serial)
}

func (f *fakeBackend) SessionList(ctx context.Context) ([]api.SessionDoc, error) {
	return nil, f.record("SessionList") // nil must arrive as []
}

func (f *fakeBackend) SessionShow(ctx context.Context, name string) (api.SessionDoc, error) {
	return testSession, f.record("SessionShow", name)
}

func (f *fakeBackend) HeartbeatShow(ctx context.Context) (api.HeartbeatDoc, error) {
	return testHeartbeat, f.record("HeartbeatShow")
}

func (f *fakeBackend) BackupList(ctx context.Context) ([]api.BackupDoc, error) {
	return []api.BackupDoc{testBackup}, f.record("BackupList")
}

func (f *fakeBackend) FirewallHints(ctx context.Context, format api.FirewallFormat) (api.FirewallDoc, error) {
	return testFirewall, f.record("FirewallHints", format)
}

func (f *fakeBackend) HAStatus(ctx context.Context) (api.HADoc, error) {
	return testHA, f.record("HAStatus")
}

func (f *fakeBackend) HMCList(ctx context.Context) ([]api.HMCDoc, error) {
	return []api.HMCDoc{testHMC}, f.record("HMCList")
}

func (f *fakeBackend) HMCShow(ctx context.Context, name string) (api.HMCDoc, error) {
	return testHMC, f.record("HMCShow", name)
}

func (f *fakeBackend) ZOSList(ctx context.Context) ([]api.ZOSDoc, error) {
	return []api.ZOSDoc{testZOS}, f.record("ZOSList")
}

func (f *fakeBackend) ZOSShow(ctx context.Context, name string) (api.ZOSDoc, error) {
	return testZOS, f.record("ZOSShow", name)
}

func (f *fakeBackend) ZOSAdd(ctx context.Context, spec api.ZOSSpec) ([]string, error) {
	return testWarnings, f.record("ZOSAdd", spec)
}

func (f *fakeBackend) ZOSRemove(ctx context.Context, name string) ([]string, error) {
	return nil, f.record("ZOSRemove", name)
}

func (f *fakeBackend) HMCAdd(ctx context.Context, spec api.HMCSpec) ([]string, error) {
	return testWarnings, f.record("HMCAdd", spec)
}

func (f *fakeBackend) HMCRemove(ctx context.Context, name string, force bool) ([]string, error) {
	return nil, f.record("HMCRemove", name, force)
}

func (f *fakeBackend) StorageAdd(ctx context.Context, spec api.StorageSpec) ([]string, error) {
	return testWarnings, f.record("StorageAdd", spec)
}

func (f *fakeBackend) StorageRemove(ctx context.Context, serial hal.Serial, connection string, force bool) ([]string, error) {
	return nil, f.record("StorageRemove", serial, connection, force)
}

func (f *fakeBackend) SessionCreate(ctx context.Context, name string, t session.Type, cg string, p session.Policy) error {
	return f.record("SessionCreate", name, t, cg, p)
}

func (f *fakeBackend) SessionAddCopySet(ctx context.Context, name string, cs session.CopySet) error {
	return f.record("SessionAddCopySet", name, cs)
}

func (f *fakeBackend) SessionCommand(ctx context.Context, name string, cmd session.Command) (api.SessionDoc, error) {
	return testSession, f.record("SessionCommand", name, cmd)
}

func (f *fakeBackend) SessionRemove(ctx context.Context, name string) error {
	return f.record("SessionRemove", name)
}

func (f *fakeBackend) HeartbeatSet(ctx context.Context, on bool) ([]string, error) {
	return testWarnings, f.record("HeartbeatSet", on)
}

func (f *fakeBackend) BackupCreate(ctx context.Context) (api.BackupDoc, error) {
	return testBackup, f.record("BackupCreate")
}

func (f *fakeBackend) BackupRestore(ctx context.Context, name string) error {
	return f.record("BackupRestore", name)
}

func (f *fakeBackend) HASetStandby(ctx context.Context, addr, name string) error {
	return f.record("HASetStandby", addr, name)
}

func (f *fakeBackend) HASetAsStandby(ctx context.Context, addr, name string) error {
	return f.record("HASetAsStandby", addr, name)
}

func (f *fakeBackend) HATakeover(ctx context.Context) (api.TakeoverDoc, error) {
	return testTakeover, f.record("HATakeover")
}

func (f *fakeBackend) HAReconnect(ctx context.Context) error { return f.record("HAReconnect") }

func (f *fakeBackend) HARemoveStandby(ctx context.Context) error { return f.record("HARemoveStandby") }

func (f *fakeBackend) HARemoveActive(ctx context.Context) error { return f.record("HARemoveActive") }

var testSNMPTest = api.SNMPTestDoc{Managers: []api.SNMPTestManagerDoc{
	{Address: "udp://nms1:162", Version: "v2c", Notification: "inform", Seq: 4, Outcome: "acknowledged"},
	{Address: "udp://nms2:162", Version: "v3", Notification: "inform", Seq: 9, Outcome: "failed", Error: "request timeout"},
}}

func (f *fakeBackend) SNMPTest(ctx context.Context) (api.SNMPTestDoc, error) {
	return testSNMPTest, f.record("SNMPTest")
}

var testTask = api.TaskDoc{Name: "nightly", Schedule: "daily 02:30", Zone: "Europe/Berlin", Steps: []string{"suspend s1", "start-h1-h2 s1"},
	Enabled: true, Created: testTime, Next: testTime.Add(24 * time.Hour),
	Last: &api.OccurrenceDoc{Scheduled: testTime, Started: testTime, Finished: testTime.Add(time.Minute), Epoch: 7, Result: "success", Message: "2 step(s) done"}}

func (f *fakeBackend) TaskList(ctx context.Context) ([]api.TaskDoc, error) {
	return []api.TaskDoc{testTask}, f.record("TaskList")
}

func (f *fakeBackend) TaskShow(ctx context.Context, name string) (api.TaskDoc, error) {
	return testTask, f.record("TaskShow", name)
}

func (f *fakeBackend) TaskCreate(ctx context.Context, spec api.TaskSpec) (api.TaskDoc, error) {
	return testTask, f.record("TaskCreate", spec)
}

func (f *fakeBackend) TaskEnable(ctx context.Context, name string, on bool) (api.TaskDoc, error) {
	return testTask, f.record("TaskEnable", name, on)
}

func (f *fakeBackend) TaskRun(ctx context.Context, name string, at time.Time) (api.TaskDoc, error) {
	return testTask, f.record("TaskRun", name, at)
}

func (f *fakeBackend) TaskRemove(ctx context.Context, name string) error {
	return f.record("TaskRemove", name)
}
