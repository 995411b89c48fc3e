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
		"HeartbeatShow", "BackupList", "Events", "FirewallHints", "HAStatus"}
	adminMethods = []string{"StorageAdd", "StorageRemove", "SessionCreate", "SessionAddCopySet",
		"SessionCommand", "SessionRemove", "HeartbeatSet", "BackupCreate", "BackupRestore",
		"HASetStandby", "HASetAsStandby", "HATakeover", "HAReconnect", "HARemoveStandby", "HARemoveActive"}
)

// TestMethodTableMatchesExports checks the table introspection is built
// from against the Go methods godbus exports: same names, same D-Bus
// types in and out.
func TestMethodTableMatchesExports(t *testing.T) {
	t.Parallel()
	exported := map[string][]introspect.Method{
		Interface:      introspect.Methods(reads{}),
		AdminInterface: introspect.Methods(admin{}),
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
	diff(t, "reads", readMethods, table[Interface])
	diff(t, "admin", adminMethods, table[AdminInterface])
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
	if err := e.conn.Object(BusName, ObjectPath).CallWithContext(testCtx(t), ifaceIntrospect+".Introspect", 0).Store(&doc); err != nil {
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
	diff(t, "methods of "+Interface, readMethods, methods[Interface])
	diff(t, "methods of "+AdminInterface, adminMethods, methods[AdminInterface])
	diff(t, "methods of Properties", []string{"Get", "GetAll", "Set"}, methods[ifaceProperties])
	diff(t, "methods of Introspectable", []string{"Introspect"}, methods[ifaceIntrospect])
	diff(t, "signals", []string{
		Interface + ".Event(seq:t,id:s,severity:s,text:s,fields:s,at:t)",
		ifaceProperties + ".PropertiesChanged(interface:s,changed_properties:a{sv},invalidated_properties:as)",
	}, signals)
	diff(t, "properties", []string{
		Interface + ".Role:s:read", Interface + ".HAState:s:read", Interface + ".Heartbeat:b:read",
		Interface + ".Epoch:t:read", Interface + ".Version:s:read",
	}, props)

	// The parents of the object introspect to it, for busctl tree.
	var root string
	if err := e.conn.Object(BusName, "/org/lockstep").CallWithContext(testCtx(t), ifaceIntrospect+".Introspect", 0).Store(&root); err != nil {
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
	call     func(context.Context, *Client) (any, error)
	wantArgs []any
	want     any
}

func verbs() []verb {
	spec := StorageSpec{Serial: "LAB.2107-75P0001", Connections: []ConnectionSpec{
		{Name: "direct", Kind: Direct, Addresses: []string{"10.0.0.1:1750", "10.0.0.2:1750"}},
		{Name: "zos-plex1", Kind: ZOS, Addresses: []string{"zos1:3000"}, Sysplex: "PLEX1"},
	}}
	cs := session.CopySet{H1: hal.VolumeRef{Serial: "LAB.2107-75P0001", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "LAB.2107-75P0005", Volume: 0x2001}}
	return []verb{
		{"Status", func(ctx context.Context, c *Client) (any, error) { return c.Status(ctx) }, nil, testStatus},
		{"StorageList", func(ctx context.Context, c *Client) (any, error) { return c.StorageList(ctx) }, nil, []StorageDoc{testStorage}},
		{"StorageShow", func(ctx context.Context, c *Client) (any, error) { return c.StorageShow(ctx, "LAB.2107-75P0001") },
			[]any{hal.Serial("LAB.2107-75P0001")}, testStorage},
		{"SessionList", func(ctx context.Context, c *Client) (any, error) { return c.SessionList(ctx) }, nil, []SessionDoc{}},
		{"SessionShow", func(ctx context.Context, c *Client) (any, error) { return c.SessionShow(ctx, "s1") }, []any{"s1"}, testSession},
		{"HeartbeatShow", func(ctx context.Context, c *Client) (any, error) { return c.HeartbeatShow(ctx) }, nil, testHeartbeat},
		{"BackupList", func(ctx context.Context, c *Client) (any, error) { return c.BackupList(ctx) }, nil, []BackupDoc{testBackup}},
		{"FirewallHints", func(ctx context.Context, c *Client) (any, error) { return c.FirewallHints(ctx, FirewallNft) },
			[]any{FirewallNft}, testFirewall},
		{"HAStatus", func(ctx context.Context, c *Client) (any, error) { return c.HAStatus(ctx) }, nil, testHA},

		{"StorageAdd", func(ctx context.Context, c *Client) (any, error) { return c.StorageAdd(ctx, spec) }, []any{spec}, testWarnings},
		{"StorageRemove", func(ctx context.Context, c *Client) (any, error) {
			return c.StorageRemove(ctx, "LAB.2107-75P0001", "zos-plex1", true)
		}, []any{hal.Serial("LAB.2107-75P0001"), "zos-plex1", true}, []string{}},
		{"SessionCreate", func(ctx context.Context, c *Client) (any, error) {
			return nil, c.SessionCreate(ctx, "s2", session.MetroMirrorFailoverFailback, "cg1", session.ReleaseIO)
		}, []any{"s2", session.MetroMirrorFailoverFailback, "cg1", session.ReleaseIO}, nil},
		{"SessionAddCopySet", func(ctx context.Context, c *Client) (any, error) { return nil, c.SessionAddCopySet(ctx, "s2", cs) },
			[]any{"s2", cs}, nil},
		{"SessionCommand", func(ctx context.Context, c *Client) (any, error) {
			return c.SessionCommand(ctx, "s1", session.CmdRecover)
		},
			[]any{"s1", session.CmdRecover}, testSession},
		{"SessionRemove", func(ctx context.Context, c *Client) (any, error) { return nil, c.SessionRemove(ctx, "s2") }, []any{"s2"}, nil},
		{"HeartbeatSet", func(ctx context.Context, c *Client) (any, error) { return c.HeartbeatSet(ctx, true) }, []any{true}, testWarnings},
		{"BackupCreate", func(ctx context.Context, c *Client) (any, error) { return c.BackupCreate(ctx) }, nil, testBackup},
		{"BackupRestore", func(ctx context.Context, c *Client) (any, error) { return nil, c.BackupRestore(ctx, testBackup.Name) },
			[]any{testBackup.Name}, nil},
		{"HASetStandby", func(ctx context.Context, c *Client) (any, error) {
			return nil, c.HASetStandby(ctx, "tcp://mgr2:7400", "mgr2")
		},
			[]any{"tcp://mgr2:7400", "mgr2"}, nil},
		{"HASetAsStandby", func(ctx context.Context, c *Client) (any, error) {
			return nil, c.HASetAsStandby(ctx, "vsock://2:7400", "")
		},
			[]any{"vsock://2:7400", ""}, nil},
		{"HATakeover", func(ctx context.Context, c *Client) (any, error) { return c.HATakeover(ctx) }, nil, testTakeover},
		{"HAReconnect", func(ctx context.Context, c *Client) (any, error) { return nil, c.HAReconnect(ctx) }, nil, nil},
		{"HARemoveStandby", func(ctx context.Context, c *Client) (any, error) { return nil, c.HARemoveStandby(ctx) }, nil, nil},
		{"HARemoveActive", func(ctx context.Context, c *Client) (any, error) { return nil, c.HARemoveActive(ctx) }, nil, nil},
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
	obj := e.conn.Object(BusName, ObjectPath)
	cs := session.CopySet{H1: hal.VolumeRef{Serial: "A", Volume: 0x1001}, H2: hal.VolumeRef{Serial: "A", Volume: 0x1002}}
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"unknown session type", func(ctx context.Context) error {
			return e.client.SessionCreate(ctx, "s", "global-mirror", "", session.HoldIO)
		}},
		{"unknown policy", func(ctx context.Context) error {
			return e.client.SessionCreate(ctx, "s", session.MetroMirrorSingleDirection, "", "hold-everything")
		}},
		{"copy set on one storage system", func(ctx context.Context) error { return e.client.SessionAddCopySet(ctx, "s", cs) }},
		{"volume not SERIAL/VVVV", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, AdminInterface+".SessionAddCopySet", 0, "s", "A/10", "B/1001").Err
		}},
		{"unknown command", func(ctx context.Context) error {
			_, err := e.client.SessionCommand(ctx, "s", "explode")
			return err
		}},
		{"storage spec with an unknown field", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, AdminInterface+".StorageAdd", 0, `{"serial":"A","connections":[],"colour":"red"}`).Err
		}},
		{"storage spec not JSON", func(ctx context.Context) error {
			return obj.CallWithContext(ctx, AdminInterface+".StorageAdd", 0, `serial=A`).Err
		}},
		{"storage spec without connections", func(ctx context.Context) error {
			_, err := e.client.StorageAdd(ctx, StorageSpec{Serial: "A"})
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
			return obj.CallWithContext(ctx, AdminInterface+".HeartbeatSet", 0, "yes").Err
		}},
	}
	for _, tt := range tests {
		err := fromDBusError(tt.call(testCtx(t)))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want an error matching ErrInvalid", tt.name, err)
		}
		if calls := e.backend.took(); len(calls) > 0 {
			t.Errorf("%s: the backend was called: %v", tt.name, calls)
		}
	}

	// An empty firewall format means text.
	if _, err := e.client.FirewallHints(testCtx(t), ""); err != nil {
		t.Fatal(err)
	}
	diff(t, "FirewallHints(\"\")", []backendCall{{"FirewallHints", []any{FirewallText}}}, e.backend.took())
}

// TestErrorMapping: each error of the backend reaches the client under
// its D-Bus name, as an error errors.Is matches against the sentinel.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sentinels := []error{ErrNotFound, ErrInvalid, ErrRefused, ErrUnavailable, ErrFailed, session.ErrNotAllowed, ErrAccessDenied}
	tests := []struct {
		name     string
		err      error
		wantName string
		want     error
	}{
		{"not found", fmt.Errorf("%w: storage system %q", ErrNotFound, "X"), ErrorNotFound, ErrNotFound},
		{"invalid", fmt.Errorf("%w: serial too long", ErrInvalid), ErrorInvalidArgs, ErrInvalid},
		{"refused", fmt.Errorf("%w: disable the heartbeat first", ErrRefused), ErrorRefused, ErrRefused},
		{"unavailable", fmt.Errorf("%w: HA is not in the basic edition", ErrUnavailable), ErrorUnavailable, ErrUnavailable},
		{"not allowed", &session.NotAllowedError{Command: session.CmdRecover, State: session.Suspended, Unless: "not recoverable",
			Allowed: []session.Command{session.CmdTerminate}}, ErrorNotAllowed, session.ErrNotAllowed},
		{"unknown session", fmt.Errorf("%w: %q", session.ErrUnknownSession, "s9"), ErrorNotFound, ErrNotFound},
		{"session exists", fmt.Errorf("%w: %q", session.ErrExists, "s1"), ErrorRefused, ErrRefused},
		{"session invalid", fmt.Errorf("%w: bad name", session.ErrInvalid), ErrorInvalidArgs, ErrInvalid},
		{"anything else", errors.New("journal: disk on fire"), ErrorFailed, ErrFailed},
	}
	for _, tt := range tests {
		e.backend.setErr(tt.err)
		_, err := e.client.SessionShow(testCtx(t), "s1")
		var re *RemoteError
		if !errors.As(err, &re) {
			t.Errorf("%s: got %T %v, want a *RemoteError", tt.name, err, err)
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

	// Without a lockstepd on the bus: ErrUnavailable, saying so.
	if err := e.server.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Status(testCtx(t))
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "not running") {
		t.Errorf("no daemon: got %v, want ErrUnavailable saying lockstepd is not running", err)
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
	sent := []EventDoc{
		{At: testTime, ID: "LS-2001-W", Severity: "warning", Text: "session s1 suspending: path down",
			Fields: map[string]string{"session": "s1", "cause": "path"}},
		{ID: "LS-1001-I", Severity: "info", Text: "heartbeat on"},
	}
	var want []EventDoc
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
	if _, err := e.server.Emit(EventDoc{Seq: 2, ID: "LS-1001-I"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Emit of seq 2 after 2: got %v, want ErrInvalid", err)
	}
	if got, err := e.server.Emit(EventDoc{Seq: 10, ID: "LS-1001-I"}); err != nil || got.Seq != 10 {
		t.Errorf("Emit of seq 10: got %d, %v", got.Seq, err)
	}
	if got, _ := e.server.Emit(EventDoc{ID: "LS-1001-I"}); got.Seq != 11 {
		t.Errorf("Emit after seq 10 numbered %d, want 11", got.Seq)
	}
}

func TestEventRingIsBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const extra = 5
	for i := range EventRingSize + extra {
		if _, err := e.server.Emit(EventDoc{ID: "LS-1001-I", Text: fmt.Sprint(i)}); err != nil {
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

func TestProperties(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	got, err := e.client.Properties(ctx)
	if err != nil {
		t.Fatal(err)
	}
	diff(t, "initial properties", Properties{Role: "unknown", HAState: "Unknown", Version: version.Version}, got)

	match := []dbus.MatchOption{dbus.WithMatchObjectPath(ObjectPath), dbus.WithMatchInterface(ifaceProperties), dbus.WithMatchMember("PropertiesChanged")}
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

	p := Properties{Role: "active", HAState: "Synchronized", Heartbeat: true, Epoch: 3}
	if err := e.server.SetProperties(p); err != nil {
		t.Fatal(err)
	}
	iface, changed := next()
	diff(t, "interface", Interface, iface)
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
	obj := e.conn.Object(BusName, ObjectPath)
	var v dbus.Variant
	err = obj.CallWithContext(ctx, ifaceProperties+".Get", 0, Interface, "Epoch").Store(&v)
	if err != nil || v.Value() != uint64(4) {
		t.Errorf("Get Epoch: %v, %v", v, err)
	}
	for _, tt := range []struct {
		method   string
		args     []any
		wantName string
	}{
		{"Set", []any{Interface, "Role", dbus.MakeVariant("standby")}, "org.freedesktop.DBus.Error.PropertyReadOnly"},
		{"Get", []any{Interface, "Colour"}, "org.freedesktop.DBus.Error.UnknownProperty"},
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
	emitted := EventDoc{ID: "LS-2001-W", Severity: "warning", Text: "session s1 suspending"}
	run := func(t *testing.T, e *env) probes {
		t.Helper()
		if err := e.server.SetProperties(Properties{Role: "active", HAState: "Synchronized", Epoch: 3}); err != nil {
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

	// DESIGN.md §12: the server checks the caller itself, whatever bus
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
		var re *RemoteError
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
	conn, err := Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClient(conn)
	obj := conn.Object(BusName, ObjectPath)

	st, err := c.Status(ctx)
	report("status", outcome(err, st.Server))
	p, err := c.Properties(ctx)
	report("properties", outcome(err, p.Role))
	var role dbus.Variant
	err = obj.CallWithContext(ctx, ifaceProperties+".Get", 0, Interface, "Role").Store(&role)
	report("property-get", outcome(err, role.Value()))
	var xmlDoc string
	err = obj.CallWithContext(ctx, ifaceIntrospect+".Introspect", 0).Store(&xmlDoc)
	report("introspect", outcome(err, nil))
	_, err = c.Events(ctx, 0)
	report("events", outcome(err, nil))

	_, err = c.HeartbeatSet(ctx, true)
	report("admin", outcome(err, nil))
	if errors.Is(err, ErrAccessDenied) {
		report("admin-access-denied", "ok")
	}
	err = obj.CallWithContext(ctx, "HeartbeatSet", 0, true).Err // no interface field
	report("admin-no-interface", outcome(err, nil))
	err = obj.CallWithContext(ctx, ifaceProperties+".Set", 0, Interface, "Role", dbus.MakeVariant("standby")).Err
	report("properties-set", outcome(err, nil))

	srv, err := Serve(ctx, conn, &fakeBackend{}, Options{})
	switch {
	case err == nil:
		srv.Close()
		report("serve", "ok")
	case errors.Is(err, ErrAccessDenied):
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

func TestStorageSpecValidate(t *testing.T) {
	t.Parallel()
	direct := ConnectionSpec{Name: "direct", Kind: Direct, Addresses: []string{"10.0.0.1:1750", "10.0.0.2:1750"}}
	zos := ConnectionSpec{Name: "zos", Kind: ZOS, Addresses: []string{"zos1:3000"}, Sysplex: "PLEX1"}
	with := func(c ConnectionSpec, f func(*ConnectionSpec)) ConnectionSpec {
		c.Addresses = slices.Clone(c.Addresses)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		spec StorageSpec
		ok   bool
	}{
		{"direct and zos", StorageSpec{"LAB.2107-75P0001", []ConnectionSpec{direct, zos}}, true},
		{"dual hmc", StorageSpec{"S", []ConnectionSpec{{Name: "hmc", Kind: HMC, Addresses: []string{"hmc1:1751", "[fd00::2]:1751"}}}}, true},
		{"no serial", StorageSpec{"", []ConnectionSpec{direct}}, false},
		{"serial with a space", StorageSpec{"LAB 1", []ConnectionSpec{direct}}, false},
		{"no connection", StorageSpec{"S", nil}, false},
		{"unnamed connection", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Name = "" })}}, false},
		{"name twice", StorageSpec{"S", []ConnectionSpec{direct, with(zos, func(c *ConnectionSpec) { c.Name = "direct" })}}, false},
		{"unknown kind", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Kind = "ficon" })}}, false},
		{"three addresses", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = append(c.Addresses, "h:1") })}}, false},
		{"no address", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = nil })}}, false},
		{"address without port", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"10.0.0.1"} })}}, false},
		{"zos without sysplex", StorageSpec{"S", []ConnectionSpec{with(zos, func(c *ConnectionSpec) { c.Sysplex = "" })}}, false},
		{"sysplex on direct", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Sysplex = "PLEX1" })}}, false},
		{"credentials", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "/etc/lockstep/pw" })}}, true},
		// Issue 12 §3: refused input changes nothing, so it is refused
		// here, before any record.
		{"user without password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User = "u" })}}, false},
		{"password file without user", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.PasswordFile = "/etc/lockstep/pw" })}}, false},
		{"relative password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "pw" })}}, false},
		{"unclean password file", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "u", "/etc/../pw" })}}, false},
		{"user with a space", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.User, c.PasswordFile = "a b", "/pw" })}}, false},
		{"IPv6 address", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"[fd00::1]:1750"} })}}, true},
		{"host name", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"ds8k-a.example.com:1750"} })}}, true},
		{"port 65535", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"127.0.0.1:65535"} })}}, true},
		{"host with a space", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"ds8k a:1750"} })}}, false},
		{"empty host", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{":1750"} })}}, false},
		{"bad IPv4", StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"300.1.1.1:1750"} })}}, false},
	}
	for _, port := range []string{"99999", "65536", "-1", "0", "1e9", "18446744073709551617", "+80", "0x50", "1_750", "", " 80", "８０"} {
		tests = append(tests, struct {
			name string
			spec StorageSpec
			ok   bool
		}{"port " + port, StorageSpec{"S", []ConnectionSpec{with(direct, func(c *ConnectionSpec) { c.Addresses = []string{"127.0.0.1:" + port} })}}, false})
	}
	for _, tt := range tests {
		err := tt.spec.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("%s: Validate() = %v, want ok %v (errors wrap ErrInvalid)", tt.name, err, tt.ok)
		}
	}
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
	diff(t, "available commands with a copy set", []session.Command{session.CmdStartH1H2}, NewSessionDoc(s).AvailableCommands)
}

func TestConnectRejectsUnknownBus(t *testing.T) {
	t.Parallel()
	if _, err := Connect("systemd"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Connect(\"systemd\") = %v, want ErrInvalid", err)
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(HeartbeatGroupDoc{H: Duration(55 * time.Second)})
	if err != nil || !strings.Contains(string(b), `"h":"55s"`) {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	var g HeartbeatGroupDoc
	if err := json.Unmarshal(b, &g); err != nil || g.H != Duration(55*time.Second) {
		t.Fatalf("unmarshal: %v, %v", g.H, err)
	}
	if err := json.Unmarshal([]byte(`{"h":55}`), &g); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
}

func TestJournalLine(t *testing.T) {
	t.Parallel()
	if got := JournalLine(JournalDoc{Writable: true}); got != "writable" {
		t.Errorf("writable: %q", got)
	}
	got := JournalLine(JournalDoc{Error: "persist: no space left for the state", Since: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)})
	if want := "CANNOT WRITE since 2026-12-02T10:00:00Z, changes are refused: persist: no space left for the state"; got != want {
		t.Errorf("unwritable: %q, want %q", got, want)
	}
}
