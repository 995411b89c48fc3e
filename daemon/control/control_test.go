package control

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/lockstep-io/lockstep/daemon/control/api"
	"github.com/lockstep-io/lockstep/daemon/control/client"
	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/version"
)

// testCtx bounds a test's bus calls, so that a lost reply fails the test
// instead of hanging it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func diff(t *testing.T, what string, want, got any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Errorf("%s (-want +got):\n- %+v\n+ %+v", what, want, got)
	}
}

var (
	readMethods = []string{"Status", "StorageList", "StorageShow", "SessionList", "SessionShow",
		"HeartbeatShow", "BackupList", "Events", "FirewallHints", "HAStatus", "TaskList", "TaskShow", "HMCList", "HMCShow", "ZOSList", "ZOSShow"}
	adminMethods = []string{"StorageAdd", "StorageRemove", "HMCAdd", "HMCRemove", "ZOSAdd", "ZOSRemove", "SessionCreate", "SessionAddCopySet",
		"SessionCommand", "SessionRemove", "HeartbeatSet", "BackupCreate", "BackupRestore",
		"HASetStandby", "HASetAsStandby", "HATakeover", "HAReconnect", "HARemoveStandby", "HARemoveActive",
		"SNMPTest", "TaskCreate", "TaskEnable", "TaskRun", "TaskRemove"}
)

// TestMethodTableMatchesExports checks the table introspection is built
// from against the Go methods godbus exports: same names, same D-Bus
// types in and out.
func TestMethodTableMatchesExports(t *testing.T) {
	t.Parallel()
	exported := map[string][]introspect.Method{
		api.Interface:      introspect.Methods(reads{}),
		api.AdminInterface: introspect.Methods(admin{}),
	}
	sigs := func(args []introspect.Arg, dir string) string {
		var s string
		for _, a := range args {
			if a.Direction == dir {
				s += a.Type + ","
			}
		}
		return s
	}
	tableSigs := func(args []arg) string {
		var s string
		for _, a := range args {
			s += a.sig + ","
		}
		return s
	}
	table := map[string][]string{}
	for _, m := range apiMethods() {
		table[m.iface] = append(table[m.iface], m.name)
		i := slices.IndexFunc(exported[m.iface], func(e introspect.Method) bool { return e.Name == m.name })
		if i < 0 {
			t.Errorf("%s.%s is in the table but not exported", m.iface, m.name)
			continue
		}
		e := exported[m.iface][i]
		if got, want := sigs(e.Args, "in"), tableSigs(m.in); got != want {
			t.Errorf("%s.%s: Go takes %q, the table says %q", m.iface, m.name, got, want)
		}
		if got, want := sigs(e.Args, "out"), tableSigs(m.out); got != want {
			t.Errorf("%s.%s: Go returns %q, the table says %q", m.iface, m.name, got, want)
		}
	}
	for iface, ms := range exported {
		for _, m := range ms {
			if !slices.Contains(table[iface], m.Name) {
				t.Errorf("%s.%s is exported but not in the table", iface, m.Name)
			}
		}
	}
	diff(t, "reads", readMethods, table[api.Interface])
	diff(t, "admin", adminMethods, table[api.AdminInterface])
}

// xmlNode is the introspection format, decoded independently of godbus.
type xmlNode struct {
	Interfaces []struct {
		Name    string `xml:"name,attr"`
		Methods []struct {
			Name string   `xml:"name,attr"`
			Args []xmlArg `xml:"arg"`
		} `xml:"method"`
		Signals []struct {
			Name string   `xml:"name,attr"`
			Args []xmlArg `xml:"arg"`
		} `xml:"signal"`
		Properties []struct {
			Name   string `xml:"name,attr"`
			Type   string `xml:"type,attr"`
			Access string `xml:"access,attr"`
		} `xml:"property"`
	} `xml:"interface"`
}

type xmlArg struct {
	Name      string `xml:"name,attr"`
	Type      string `xml:"type,attr"`
	Direction string `xml:"direction,attr"`
}

func TestIntrospection(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var doc string
	if err := e.conn.Object(api.BusName, api.ObjectPath).CallWithContext(testCtx(t), ifaceIntrospect+".Introspect", 0).Store(&doc); err != nil {
		t.Fatal(err)
	}
	var node xmlNode
	if err := xml.Unmarshal([]byte(doc), &node); err != nil {
		t.Fatalf("introspection does not parse: %v\n%s", err, doc)
	}
	methods := map[string][]string{}
	var signals, props []string
	for _, i := range node.Interfaces {
		for _, m := range i.Methods {
			methods[i.Name] = append(methods[i.Name], m.Name)
		}
		for _, s := range i.Signals {
			var types []string
			for _, a := range s.Args {
				types = append(types, a.Name+":"+a.Type)
			}
			signals = append(signals, i.Name+"."+s.Name+"("+strings.Join(types, ",")+")")
		}
		for _, p := range i.Properties {
			props = append(props, i.Name+"."+p.Name+":"+p.Type+":"+p.Access)
		}
	}
	diff(t, "methods of "+api.Interface, readMethods, methods[api.Interface])
	diff(t, "methods of "+api.AdminInterface, adminMethods, methods[api.AdminInterface])
	diff(t, "methods of api.Properties", []string{"Get", "GetAll", "Set"}, methods[ifaceProperties])
	diff(t, "methods of Introspectable", []string{"Introspect"}, methods[ifaceIntrospect])
	diff(t, "signals", []string{
		api.Interface + ".Event(seq:t,id:s,severity:s,text:s,fields:s,at:t)",
		ifaceProperties + ".PropertiesChanged(interface:s,changed_properties:a{sv},invalidated_properties:as)",
	}, signals)
	diff(t, "properties", []string{
		api.Interface + ".Role:s:read", api.Interface + ".HAState:s:read", api.Interface + ".Heartbeat:b:read",
		api.Interface + ".Epoch:t:read", api.Interface + ".Version:s:read",
	}, props)

	// The parents of the object introspect to it, for busctl tree.
	var root string
	if err := e.conn.Object(api.BusName, "/org/lockstep").CallWithContext(testCtx(t), ifaceIntrospect+".Introspect", 0).Store(&root); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(root, `<node name="Manager1"/>`) {
		t.Errorf("introspection of /org/lockstep does not list Manager1:\n%s", root)
	}
}

// verb is one lockstepctl verb: the client call, and what the Backend
// must receive and the client return.
type verb struct {
	method   string // the Backend method
	call     func(context.Context, *client.Client) (any, error)
	wantArgs []any
	want     any
}

var taskSpec = api.TaskSpec{Name: "nightly", Schedule: "daily 02:30", Zone: "Europe/Berlin", Steps: []string{"suspend s1", "start-h1-h2 s1"}}

func verbs() []verb {
	spec := api.StorageSpec{Serial: "LAB.2107-75P0001", Connections: []api.ConnectionSpec{
		{Name: "direct", Kind: api.Direct, Addresses: []string{"10.0.0.1:1750", "10.0.0.2:1750"}},
	}}
	// The client sends the API's words; the backend receives the model's.
	cs := api.CopySet{H1: hal.VolumeRef{Serial: "LAB.2107-75P0001", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "LAB.2107-75P0005", Volume: 0x2001}}
	return []verb{
		{"Status", func(ctx context.Context, c *client.Client) (any, error) { return c.Status(ctx) }, nil, testStatus},
		{"StorageList", func(ctx context.Context, c *client.Client) (any, error) { return c.StorageList(ctx) }, nil, []api.StorageDoc{testStorage}},
		{"StorageShow", func(ctx context.Context, c *client.Client) (any, error) {
			return c.StorageShow(ctx, "LAB.2107-75P0001")
		},
			[]any{hal.Serial("LAB.2107-75P0001")}, testStorage},
		{"SessionList", func(ctx context.Context, c *client.Client) (any, error) { return c.SessionList(ctx) }, nil, []api.SessionDoc{}},
		{"SessionShow", func(ctx context.Context, c *client.Client) (any, error) { return c.SessionShow(ctx, "s1") }, []any{"s1"}, testSession},
		{"HeartbeatShow", func(ctx context.Context, c *client.Client) (any, error) { return c.HeartbeatShow(ctx) }, nil, testHeartbeat},
		{"BackupList", func(ctx context.Context, c *client.Client) (any, error) { return c.BackupList(ctx) }, nil, []api.BackupDoc{testBackup}},
		{"FirewallHints", func(ctx context.Context, c *client.Client) (any, error) { return c.FirewallHints(ctx, api.FirewallNft) },
			[]any{api.FirewallNft}, testFirewall},
		{"HAStatus", func(ctx context.Context, c *client.Client) (any, error) { return c.HAStatus(ctx) }, nil, testHA},

		{"HMCList", func(ctx context.Context, c *client.Client) (any, error) { return c.HMCList(ctx) }, nil, []api.HMCDoc{testHMC}},
		{"HMCShow", func(ctx context.Context, c *client.Client) (any, error) { return c.HMCShow(ctx, "HMCS") }, []any{"HMCS"}, testHMC},
		{"HMCAdd", func(ctx context.Context, c *client.Client) (any, error) { return c.HMCAdd(ctx, hmcSpec) }, []any{hmcSpec}, testWarnings},
		{"HMCRemove", func(ctx context.Context, c *client.Client) (any, error) { return c.HMCRemove(ctx, "HMCS", true) },
			[]any{"HMCS", true}, []string{}},
		{"ZOSList", func(ctx context.Context, c *client.Client) (any, error) { return c.ZOSList(ctx) }, nil, []api.ZOSDoc{testZOS}},
		{"ZOSShow", func(ctx context.Context, c *client.Client) (any, error) { return c.ZOSShow(ctx, "SYSA") }, []any{"SYSA"}, testZOS},
		{"ZOSAdd", func(ctx context.Context, c *client.Client) (any, error) { return c.ZOSAdd(ctx, zosSpec) }, []any{zosSpec}, testWarnings},
		{"ZOSRemove", func(ctx context.Context, c *client.Client) (any, error) { return c.ZOSRemove(ctx, "SYSA") },
			[]any{"SYSA"}, []string{}},

		{"StorageAdd", func(ctx context.Context, c *client.Client) (any, error) { return c.StorageAdd(ctx, spec) }, []any{spec}, testWarnings},
		{"StorageRemove", func(ctx context.Context, c *client.Client) (any, error) {
			return c.StorageRemove(ctx, "LAB.2107-75P0001", "zos-plex1", true)
		}, []any{hal.Serial("LAB.2107-75P0001"), "zos-plex1", true}, []string{}},
		{"SessionCreate", func(ctx context.Context, c *client.Client) (any, error) {
			return nil, c.SessionCreate(ctx, "s2", api.MetroMirrorFailoverFailback, "cg1", api.ReleaseIO)
		}, []any{"s2", session.MetroMirrorFailoverFailback, "cg1", session.ReleaseIO}, nil},
		{"SessionAddCopySet", func(ctx context.Context, c *client.Client) (any, error) {
			return nil, c.SessionAddCopySet(ctx, "s2", cs)
		},
			[]any{"s2", session.CopySet{H1: cs.H1, H2: cs.H2}}, nil},
		{"SessionCommand", func(ctx context.Context, c *client.Client) (any, error) {
			return c.SessionCommand(ctx, "s1", api.CmdRecover)
		},
			[]any{"s1", session.CmdRecover}, testSession},
		{"SessionRemove", func(ctx context.Context, c *client.Client) (any, error) { return nil, c.SessionRemove(ctx, "s2") }, []any{"s2"}, nil},
		{"HeartbeatSet", func(ctx context.Context, c *client.Client) (any, error) { return c.HeartbeatSet(ctx, true) }, []any{true}, testWarnings},
		{"BackupCreate", func(ctx context.Context, c *client.Client) (any, error) { return c.BackupCreate(ctx) }, nil, testBackup},
		{"BackupRestore", func(ctx context.Context, c *client.Client) (any, error) {
			return nil, c.BackupRestore(ctx, testBackup.Name)
		},
			[]any{testBackup.Name}, nil},
		{"HASetStandby", func(ctx context.Context, c *client.Client) (any, error) {
			return nil, c.HASetStandby(ctx, "tcp://mgr2:7400", "mgr2")
		},
			[]any{"tcp://mgr2:7400", "mgr2"}, nil},
		{"HASetAsStandby", func(ctx context.Context, c *client.Client) (any, error) {
			return nil, c.HASetAsStandby(ctx, "vsock://2:7400", "")
		},
			[]any{"vsock://2:7400", ""}, nil},
		{"HATakeover", func(ctx context.Context, c *client.Client) (any, error) { return c.HATakeover(ctx) }, nil, testTakeover},
		{"HAReconnect", func(ctx context.Context, c *client.Client) (any, error) { return nil, c.HAReconnect(ctx) }, nil, nil},
		{"HARemoveStandby", func(ctx context.Context, c *client.Client) (any, error) { return nil, c.HARemoveStandby(ctx) }, nil, nil},
		{"HARemoveActive", func(ctx context.Context, c *client.Client) (any, error) { return nil, c.HARemoveActive(ctx) }, nil, nil},
		{"SNMPTest", func(ctx context.Context, c *client.Client) (any, error) { return c.SNMPTest(ctx) }, nil, testSNMPTest},
		{"TaskList", func(ctx context.Context, c *client.Client) (any, error) { return c.TaskList(ctx) }, nil, []api.TaskDoc{testTask}},
		{"TaskShow", func(ctx context.Context, c *client.Client) (any, error) { return c.TaskShow(ctx, "nightly") }, []any{"nightly"}, testTask},
		{"TaskCreate", func(ctx context.Context, c *client.Client) (any, error) { return c.TaskCreate(ctx, taskSpec) }, []any{taskSpec}, testTask},
		{"TaskEnable", func(ctx context.Context, c *client.Client) (any, error) { return c.TaskEnable(ctx, "nightly", false) },
			[]any{"nightly", false}, testTask},
		{"TaskRun", func(ctx context.Context, c *client.Client) (any, error) { return c.TaskRun(ctx, "nightly", testTime) },
			[]any{"nightly", testTime}, testTask},
		{"TaskRemove", func(ctx context.Context, c *client.Client) (any, error) { return nil, c.TaskRemove(ctx, "nightly") }, []any{"nightly"}, nil},
	}
}

// TestEveryBackendMethodReachable calls every verb as root through the
// bus and checks that the Backend got the call with the right arguments
// and that the client decoded the answer; every Backend method must have
// a verb.
func TestEveryBackendMethodReachable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	covered := map[string]bool{}
	for _, v := range verbs() {
		covered[v.method] = true
		got, err := v.call(testCtx(t), e.client)
		if err != nil {
			t.Errorf("%s: %v", v.method, err)
			continue
		}
		diff(t, v.method+": backend calls", []backendCall{{v.method, v.wantArgs}}, e.backend.took())
		if v.want != nil {
			diff(t, v.method+": answer", v.want, got)
		}
	}
	bt := reflect.TypeFor[Backend]()
	for i := range bt.NumMethod() {
		if name := bt.Method(i).Name; !covered[name] {
			t.Errorf("Backend.%s has no verb in this test: is it reachable over D-Bus?", name)
		}
	}
}

// TestArgumentsChecked: malformed arguments are refused with InvalidArgs
// before the backend sees them.
func TestArgumentsChecked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	obj := e.conn.Object(api.BusName, api.ObjectPath)
	cs := api.CopySet{H1: hal.VolumeRef{Serial: "A", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "A", Volume: 0x1002}}
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"unknown session type", func(ctx context.Context) error {
			return e.client.SessionCreate(ctx, "s", "global-mirror", "", api.HoldIO)
		}},
		{"unknown policy", func(ctx context.Context) error {
			return e.client.SessionCreate(ctx, "s", api.MetroMirrorSingleDirection, "", "hold-everything")
		}},
		{"copy set on one storage system", func(ctx context.Context) error { return e.client.SessionAddCopySet(ctx, "s", cs) }},
		{"volume not SERIAL/VVVV", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".SessionAddCopySet", 0, "s", "A/10", "B/1001").Err
		}},
		{"unknown command", func(ctx context.Context) error {
			_, err := e.client.SessionCommand(ctx, "s", "explode")
			return err
		}},
		{"storage spec with an unknown field", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".StorageAdd", 0, `{"serial":"A","connections":[],"colour":"red"}`).Err
		}},
		{"task spec with an unknown field", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".TaskCreate", 0, `{"name":"t","schedule":"every 1h","steps":["refresh s"],"cron":"* * *"}`).Err
		}},
		{"task spec without steps", func(ctx context.Context) error {
			_, err := e.client.TaskCreate(ctx, api.TaskSpec{Name: "t", Schedule: "every 1h"})
			return err
		}},
		{"task run past year 9999", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".TaskRun", 0, "t", uint64(1)<<63).Err
		}},
		{"storage spec not JSON", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".StorageAdd", 0, `serial=A`).Err
		}},
		{"storage spec without connections", func(ctx context.Context) error {
			_, err := e.client.StorageAdd(ctx, api.StorageSpec{Serial: "A"})
			return err
		}},
		{"empty serial", func(ctx context.Context) error {
			_, err := e.client.StorageShow(ctx, "")
			return err
		}},
		{"serial with a space", func(ctx context.Context) error {
			_, err := e.client.StorageRemove(ctx, "LAB 1", "", false)
			return err
		}},
		{"firewall format", func(ctx context.Context) error {
			_, err := e.client.FirewallHints(ctx, "pf")
			return err
		}},
		{"empty HA address", func(ctx context.Context) error { return e.client.HASetStandby(ctx, "", "b") }},
		{"HA partner name with a space", func(ctx context.Context) error { return e.client.HASetAsStandby(ctx, "tcp://a:1", "db 1") }},
		{"wrong D-Bus argument type", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, api.AdminInterface+".HeartbeatSet", 0, "yes").Err
		}},
	}
	// A raw call's error reply is a dbus.Error; the client's is a
	// *client.RemoteError matching api.ErrInvalid.
	invalid := func(err error) bool {
		var de dbus.Error
		if errors.As(err, &de) {
			return de.Name == api.ErrorInvalidArgs || de.Name == "org.freedesktop.DBus.Error.InvalidArgs"
		}
		return errors.Is(err, api.ErrInvalid)
	}
	for _, tt := range tests {
		err := tt.call(testCtx(t))
		if !invalid(err) {
			t.Errorf("%s: got %v, want an error matching api.ErrInvalid", tt.name, err)
		}
		if calls := e.backend.took(); len(calls) > 0 {
			t.Errorf("%s: the backend was called: %v", tt.name, calls)
		}
	}

	// An empty firewall format means text.
	if _, err := e.client.FirewallHints(testCtx(t), ""); err != nil {
		t.Fatal(err)
	}
	diff(t, "FirewallHints(\"\")", []backendCall{{"FirewallHints", []any{api.FirewallText}}}, e.backend.took())
}

// TestErrorMapping: each error of the backend reaches the client under
// its D-Bus name, as an error errors.Is matches against the sentinel.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sentinels := []error{api.ErrNotFound, api.ErrInvalid, api.ErrRefused, api.ErrUnavailable, api.ErrFailed, api.ErrNotAllowed, api.ErrAccessDenied}
	tests := []struct {
		name     string
		err      error
		wantName string
		want     error
	}{
		{"not found", fmt.Errorf("%w: storage system %q", api.ErrNotFound, "X"), api.ErrorNotFound, api.ErrNotFound},
		{"invalid", fmt.Errorf("%w: serial too long", api.ErrInvalid), api.ErrorInvalidArgs, api.ErrInvalid},
		{"refused", fmt.Errorf("%w: disable the heartbeat first", api.ErrRefused), api.ErrorRefused, api.ErrRefused},
		{"unavailable", fmt.Errorf("%w: HA is not in the basic edition", api.ErrUnavailable), api.ErrorUnavailable, api.ErrUnavailable},
		{"not allowed", &session.NotAllowedError{Command: session.CmdRecover, State: session.Suspended, Unless: "not recoverable",
			Allowed: []session.Command{session.CmdTerminate}}, api.ErrorNotAllowed, api.ErrNotAllowed},
		{"not allowed, the API's sentinel", fmt.Errorf("%w: recover", api.ErrNotAllowed), api.ErrorNotAllowed, api.ErrNotAllowed},
		{"unknown session", fmt.Errorf("%w: %q", session.ErrUnknownSession, "s9"), api.ErrorNotFound, api.ErrNotFound},
		{"session exists", fmt.Errorf("%w: %q", session.ErrExists, "s1"), api.ErrorRefused, api.ErrRefused},
		{"session invalid", fmt.Errorf("%w: bad name", session.ErrInvalid), api.ErrorInvalidArgs, api.ErrInvalid},
		{"anything else", errors.New("journal: disk on fire"), api.ErrorFailed, api.ErrFailed},
	}
	for _, tt := range tests {
		e.backend.setErr(tt.err)
		_, err := e.client.SessionShow(testCtx(t), "s1")
		var re *client.RemoteError
		if !errors.As(err, &re) {
			t.Errorf("%s: got %T %v, want a *client.RemoteError", tt.name, err, err)
			continue
		}
		if re.Name != tt.wantName {
			t.Errorf("%s: D-Bus error name %q, want %q", tt.name, re.Name, tt.wantName)
		}
		if re.Message != tt.err.Error() {
			t.Errorf("%s: message %q, want %q", tt.name, re.Message, tt.err.Error())
		}
		for _, s := range sentinels {
			if errors.Is(err, s) != (s == tt.want) {
				t.Errorf("%s: errors.Is(err, %v) = %v", tt.name, s, errors.Is(err, s))
			}
		}
	}
	e.backend.setErr(nil)

	// Without a lockstepd on the bus: api.ErrUnavailable, saying so.
	if err := e.server.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Status(testCtx(t))
	if !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), "not running") {
		t.Errorf("no daemon: got %v, want api.ErrUnavailable saying lockstepd is not running", err)
	}
}

func TestServeNameTaken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := Serve(t.Context(), connect(t, e.addr), &fakeBackend{}, Options{})
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second Serve: got %v, want ErrNameTaken naming the owner's pid", err)
	}
	// The first server still answers.
	if _, err := e.client.Status(testCtx(t)); err != nil {
		t.Fatalf("first server after the refused second: %v", err)
	}
	// Once it closes, the name is free again.
	if err := e.server.Close(); err != nil {
		t.Fatal(err)
	}
	second := &fakeBackend{}
	srv, err := Serve(t.Context(), connect(t, e.addr), second, Options{})
	if err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	defer srv.Close()
	if _, err := e.client.Status(testCtx(t)); err != nil || !second.called("Status") {
		t.Fatalf("Status after the restart: err %v, second backend called: %v", err, second.called("Status"))
	}
}

func TestEventsAndFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	if none, err := e.client.Events(ctx, 0); err != nil || len(none) != 0 || none == nil {
		t.Errorf("Events(0) before any event = %#v, %v; want [] (not null)", none, err)
	}
	events, err := e.client.Follow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sent := []api.EventDoc{
		{At: testTime, ID: "LS-2001-W", Severity: "warning", Text: "session s1 suspending: path down",
			Fields: map[string]string{"session": "s1", "cause": "path"}},
		{ID: "LS-1001-I", Severity: "info", Text: "heartbeat on"},
	}
	var want []api.EventDoc
	for _, ev := range sent {
		got, err := e.server.Emit(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev.Seq = uint64(len(want) + 1)
		diff(t, "Emit's answer", ev, got)
		want = append(want, ev)
	}
	for i := range want {
		select {
		case got := <-events:
			diff(t, fmt.Sprintf("followed event %d", i), want[i], got)
		case <-ctx.Done():
			t.Fatalf("followed event %d never arrived", i)
		}
	}

	all, err := e.client.Events(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "Events(0)", want, all)
	after, err := e.client.Events(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "Events(1)", want[1:], after)
	none, err := e.client.Events(ctx, 2)
	if err != nil || len(none) != 0 || none == nil {
		t.Errorf("Events(2) = %#v, %v; want [] (not null)", none, err)
	}

	// Numbers given by the daemon must rise.
	if _, err := e.server.Emit(api.EventDoc{Seq: 2, ID: "LS-1001-I"}); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("Emit of seq 2 after 2: got %v, want api.ErrInvalid", err)
	}
	if got, err := e.server.Emit(api.EventDoc{Seq: 10, ID: "LS-1001-I"}); err != nil || got.Seq != 10 {
		t.Errorf("Emit of seq 10: got %d, %v", got.Seq, err)
	}
	if got, _ := e.server.Emit(api.EventDoc{ID: "LS-1001-I"}); got.Seq != 11 {
		t.Errorf("Emit after seq 10 numbered %d, want 11", got.Seq)
	}
}

func TestEventRingIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const extra = 5
	for i := range EventRingSize + extra {
		if _, err := e.server.Emit(api.EventDoc{ID: "LS-1001-I", Text: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := e.client.Events(testCtx(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != EventRingSize || all[0].Seq != extra+1 || all[len(all)-1].Seq != EventRingSize+extra {
		t.Fatalf("Events(0): %d events, seq %d to %d; want %d, %d to %d",
			len(all), all[0].Seq, all[len(all)-1].Seq, EventRingSize, extra+1, EventRingSize+extra)
	}
}

// TestInitialProperties: the properties given to Serve are there from
// the first read, with the build's version when none is given.
func TestInitialProperties(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		given, want api.Properties
	}{
		{"given", api.Properties{Role: "standby", HAState: "Synchronized", Heartbeat: true, Epoch: 9, Version: "9.9.9"},
			api.Properties{Role: "standby", HAState: "Synchronized", Heartbeat: true, Epoch: 9, Version: "9.9.9"}},
		{"without a version", api.Properties{Role: "active", HAState: "Standalone"},
			api.Properties{Role: "active", HAState: "Standalone", Version: version.Version}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnvPolicy(t, policyFile, Options{Properties: tc.given})
			got, err := e.client.Properties(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			diff(t, "initial properties", tc.want, got)
			// A later SetProperties without a version keeps the one given.
			p := tc.want
			p.Epoch++
			p.Version = ""
			if err := e.server.SetProperties(p); err != nil {
				t.Fatal(err)
			}
			if got, err = e.client.Properties(testCtx(t)); err != nil || got.Version != tc.want.Version || got.Epoch != tc.want.Epoch+1 {
				t.Errorf("after SetProperties without a version: %+v, %v", got, err)
			}
		})
	}
}

func TestProperties(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	got, err := e.client.Properties(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "initial properties", api.Properties{Role: "unknown", HAState: "Unknown", Version: version.Version}, got)

	match := []dbus.MatchOption{dbus.WithMatchObjectPath(api.ObjectPath), dbus.WithMatchInterface(ifaceProperties), dbus.WithMatchMember("PropertiesChanged")}
	if err := e.conn.AddMatchSignalContext(ctx, match...); err != nil {
		t.Fatal(err)
	}
	signals := make(chan *dbus.Signal, 16)
	e.conn.Signal(signals)
	next := func() (iface string, changed map[string]any) {
		t.Helper()
		select {
		case sig := <-signals:
			var c map[string]dbus.Variant
			var invalidated []string
			if err := dbus.Store(sig.Body, &iface, &c, &invalidated); err != nil {
				t.Fatalf("PropertiesChanged body %v: %v", sig.Body, err)
			}
			changed = map[string]any{}
			for k, v := range c {
				changed[k] = v.Value()
			}
			return iface, changed
		case <-ctx.Done():
			t.Fatal("no PropertiesChanged")
		}
		return "", nil
	}

	p := api.Properties{Role: "active", HAState: "Synchronized", Heartbeat: true, Epoch: 3}
	if err := e.server.SetProperties(p); err != nil {
		t.Fatal(err)
	}
	iface, changed := next()
	diff(t, "interface", api.Interface, iface)
	diff(t, "first change", map[string]any{"Role": "active", "HAState": "Synchronized", "Heartbeat": true, "Epoch": uint64(3)}, changed)

	// Setting the same values sends nothing: the next signal is the
	// next change alone.
	if err := e.server.SetProperties(p); err != nil {
		t.Fatal(err)
	}
	p.Epoch = 4
	if err := e.server.SetProperties(p); err != nil {
		t.Fatal(err)
	}
	_, changed = next()
	diff(t, "second change", map[string]any{"Epoch": uint64(4)}, changed)

	p.Version = version.Version
	got, err = e.client.Properties(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "properties read back", p, got)

	// Read-only, and only on our interface.
	obj := e.conn.Object(api.BusName, api.ObjectPath)
	var v dbus.Variant
	err = obj.CallWithContext(ctx, ifaceProperties+".Get", 0, api.Interface, "Epoch").Store(&v)
	if err != nil || v.Value() != uint64(4) {
		t.Errorf("Get Epoch: %v, %v", v, err)
	}
	for _, tt := range []struct {
		method   string
		args     []any
		wantName string
	}{
		{"Set", []any{api.Interface, "Role", dbus.MakeVariant("standby")}, "org.freedesktop.DBus.Error.PropertyReadOnly"},
		{"Get", []any{api.Interface, "Colour"}, "org.freedesktop.DBus.Error.UnknownProperty"},
		{"GetAll", []any{"org.example.Nothing"}, "org.freedesktop.DBus.Error.UnknownInterface"},
	} {
		err := obj.CallWithContext(ctx, ifaceProperties+"."+tt.method, 0, tt.args...).Err
		var de dbus.Error
		if !errors.As(err, &de) || de.Name != tt.wantName {
			t.Errorf("%s%v: got %v, want %s", tt.method, tt.args, err, tt.wantName)
		}
	}
}

// TestPolicy runs a client as uid 65534 against the shipped policy (it
// may read, not change, not own the name) and against the policy with
// group lockstep replaced by uid 65534's group (then it may change).
func TestPolicy(t *testing.T) {
	t.Parallel()
	needBus(t)
	bin := helperBinary(t)
	emitted := api.EventDoc{ID: "LS-2001-W", Severity: "warning", Text: "session s1 suspending"}
	run := func(t *testing.T, e *env) probes {
		t.Helper()
		if err := e.server.SetProperties(api.Properties{Role: "active", HAState: "Synchronized", Epoch: 3}); err != nil {
			t.Fatal(err)
		}
		got := runHelper(t, bin, e.addr, func() {
			if _, err := e.server.Emit(emitted); err != nil {
				t.Error(err)
			}
		})
		t.Logf("probes as uid %d: %v", helperUID, got)
		return got
	}
	check := func(t *testing.T, got probes, want map[string]string) {
		t.Helper()
		for name, w := range want {
			if got[name] != w {
				t.Errorf("as uid %d, %s: got %q, want %q", helperUID, name, got[name], w)
			}
		}
	}
	denied := "org.freedesktop.DBus.Error.AccessDenied"

	t.Run("shipped policy", func(t *testing.T) {
		e := newEnv(t)
		got := run(t, e)
		check(t, got, map[string]string{
			"uid":                 fmt.Sprint(helperUID),
			"status":              "ok " + testStatus.Server,
			"properties":          "ok active",
			"property-get":        "ok active",
			"introspect":          "ok",
			"events":              "ok",
			"admin":               denied,
			"admin-access-denied": "ok",
			"admin-no-interface":  denied,
			"properties-set":      denied,
			"serve":               "access-denied",
			"following":           "ok",
			"event":               "ok " + emitted.ID,
		})
		if e.backend.called("HeartbeatSet") {
			t.Errorf("the backend got HeartbeatSet from uid %d", helperUID)
		}
		if !e.backend.called("Status") {
			t.Errorf("the backend did not get Status from uid %d", helperUID)
		}
	})

	t.Run("member of group lockstep", func(t *testing.T) {
		g, err := user.LookupGroupId(fmt.Sprint(helperGID))
		if err != nil {
			t.Fatalf("group %d: %v", helperGID, err)
		}
		shipped, err := os.ReadFile(policyFile)
		if err != nil {
			t.Fatal(err)
		}
		policy := strings.ReplaceAll(string(shipped), `group="lockstep"`, `group="`+g.Name+`"`)
		if policy == string(shipped) {
			t.Fatal(`the shipped policy has no group="lockstep" rule`)
		}
		path := filepath.Join(worldDir(t), "org.lockstep.Manager1.conf")
		if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
			t.Fatal(err)
		}
		e := newEnvPolicy(t, path, Options{AdminGroup: g.Name})
		got := run(t, e)
		check(t, got, map[string]string{
			"uid":            fmt.Sprint(helperUID),
			"status":         "ok " + testStatus.Server,
			"admin":          "ok",
			"properties-set": "org.freedesktop.DBus.Error.PropertyReadOnly", // past the policy, refused by the server
			"serve":          "access-denied",
			"event":          "ok " + emitted.ID,
		})
		if !e.backend.called("HeartbeatSet") {
			t.Errorf("the backend did not get HeartbeatSet from a member of the group")
		}
	})

	// docs/architecture.md (Trust): the server checks the caller itself, whatever bus
	// it runs on. On a bus whose policy lets everyone call everything (a
	// session bus, a test bus), only the server's own check stands
	// between uid 65534 and the changes; reads stay open.
	openPolicy := filepath.Join(worldDir(t), "open.conf")
	if err := os.WriteFile(openPolicy, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy context="default">
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("open bus: the server refuses", func(t *testing.T) {
		e := newEnvPolicy(t, openPolicy, Options{})
		got := run(t, e)
		check(t, got, map[string]string{
			"uid":                 fmt.Sprint(helperUID),
			"status":              "ok " + testStatus.Server,
			"properties":          "ok active",
			"events":              "ok",
			"admin":               denied,
			"admin-access-denied": "ok",
			"admin-no-interface":  denied,
			"event":               "ok " + emitted.ID,
		})
		if e.backend.called("HeartbeatSet") {
			t.Errorf("the backend got HeartbeatSet from uid %d on an open bus", helperUID)
		}
	})
	t.Run("open bus: the configured group may change", func(t *testing.T) {
		g, err := user.LookupGroupId(fmt.Sprint(helperGID))
		if err != nil {
			t.Fatalf("group %d: %v", helperGID, err)
		}
		e := newEnvPolicy(t, openPolicy, Options{AdminGroup: g.Name})
		got := run(t, e)
		check(t, got, map[string]string{"admin": "ok", "admin-no-interface": "ok"})
		if !e.backend.called("HeartbeatSet") {
			t.Errorf("the backend did not get HeartbeatSet from a member of the configured group %s", g.Name)
		}
	})
}

// TestUnprivilegedHelper is the client TestPolicy runs as uid 65534. It
// prints one "PROBE name outcome" line per probe.
func TestUnprivilegedHelper(t *testing.T) {
	addr := os.Getenv(helperBusEnv)
	if os.Getenv(helperEnv) == "" || addr == "" {
		t.Skip("run by TestPolicy as uid 65534")
	}
	ctx := testCtx(t)
	report := func(name, outcome string) { fmt.Printf("PROBE %s %s\n", name, outcome) }
	outcome := func(err error, value any) string {
		var re *client.RemoteError
		var de dbus.Error
		switch {
		case err == nil && value == nil:
			return "ok"
		case err == nil:
			return fmt.Sprint("ok ", value)
		case errors.As(err, &re):
			return re.Name
		case errors.As(err, &de):
			return de.Name
		}
		return "error: " + err.Error()
	}
	report("uid", fmt.Sprint(os.Getuid()))
	conn, err := client.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := client.New(conn)
	obj := conn.Object(api.BusName, api.ObjectPath)

	st, err := c.Status(ctx)
	report("status", outcome(err, st.Server))
	p, err := c.Properties(ctx)
	report("properties", outcome(err, p.Role))
	var role dbus.Variant
	err = obj.CallWithContext(ctx, ifaceProperties+".Get", 0, api.Interface, "Role").Store(&role)
	report("property-get", outcome(err, role.Value()))
	var xmlDoc string
	err = obj.CallWithContext(ctx, ifaceIntrospect+".Introspect", 0).Store(&xmlDoc)
	report("introspect", outcome(err, nil))
	_, err = c.Events(ctx, 0)
	report("events", outcome(err, nil))

	_, err = c.HeartbeatSet(ctx, true)
	report("admin", outcome(err, nil))
	if errors.Is(err, api.ErrAccessDenied) {
		report("admin-access-denied", "ok")
	}
	err = obj.CallWithContext(ctx, "HeartbeatSet", 0, true).Err // no interface field
	report("admin-no-interface", outcome(err, nil))
	err = obj.CallWithContext(ctx, ifaceProperties+".Set", 0, api.Interface, "Role", dbus.MakeVariant("standby")).Err
	report("properties-set", outcome(err, nil))

	srv, err := Serve(ctx, conn, &fakeBackend{}, Options{})
	switch {
	case err == nil:
		srv.Close()
		report("serve", "ok")
	case errors.Is(err, api.ErrAccessDenied):
		report("serve", "access-denied")
	default:
		report("serve", "error: "+err.Error())
	}

	events, err := c.Follow(ctx)
	report("following", outcome(err, nil))
	if err == nil {
		select {
		case ev := <-events:
			report("event", outcome(nil, ev.ID))
		case <-ctx.Done():
			report("event", "timeout")
		}
	}
	report("done", "ok")
}

func TestNewSessionDoc(t *testing.T) {
	t.Parallel()
	s := &session.Session{Name: "s1", Type: session.MetroMirrorSingleDirection, Policy: session.HoldIO,
		ActiveSite: session.H1, Direction: session.H1ToH2, State: session.Defined, Status: session.Inactive}
	doc := NewSessionDoc(s)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"state":"defined"`, `"status":"inactive"`, `"copy_sets":[]`, `"available_commands":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	s.CopySets = []session.CopySet{{H1: hal.VolumeRef{Serial: "A", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "B", Volume: 0x1001}}}
	diff(t, "available commands with a copy set", []api.SessionCommand{api.CmdStartH1H2}, NewSessionDoc(s).AvailableCommands)
}
