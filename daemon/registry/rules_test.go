package registry

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

func build(t *testing.T, heartbeat bool, conns map[hal.Serial][]Connection) *DB {
	t.Helper()
	db := NewDB()
	for _, serial := range []hal.Serial{"A", "B", "C"} {
		for _, c := range conns[serial] {
			if err := db.Apply(Record{Version: RecordVersion, Kind: KindStorageAdded, Serial: serial, Connection: &c}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.Apply(Record{Version: RecordVersion, Kind: KindHeartbeatSet, On: heartbeat}); err != nil {
		t.Fatal(err)
	}
	return db
}

var (
	direct = Connection{Name: "direct", Kind: hal.Direct, Addresses: []string{"a:1"}}
	hmc    = Connection{Name: "hmc", Kind: hal.HMC, Addresses: []string{"h:1751"}}
	zos    = Connection{Name: "zos", Kind: hal.ZOS, Addresses: []string{"z:5858"}, Sysplex: "P"}
)

func noSessions(hal.Serial) []string { return nil }

func TestHeartbeatWarnings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		conns map[hal.Serial][]Connection
		want  []string
	}{
		{name: "none defined", want: []string{}},
		{name: "every system has IP", conns: map[hal.Serial][]Connection{"A": {direct, zos}, "B": {hmc}}, want: []string{}},
		{name: "z/OS only", conns: map[hal.Serial][]Connection{"A": {direct}, "B": {zos}, "C": {zos}},
			want: []string{"B is reachable only through z/OS: the heartbeat does not work without an IP connection",
				"C is reachable only through z/OS: the heartbeat does not work without an IP connection"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := build(t, true, tc.conns).HeartbeatWarnings(); !slices.Equal(got, tc.want) {
				t.Errorf("HeartbeatWarnings = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		heartbeat  bool
		conns      []Connection
		connection string
		sessions   []string
		force      bool
		want       error
		wantKind   string
		wantLeft   []string
		wantWarn   string
		// wantSuspend are the sessions the caller is to suspend.
		wantSuspend []string
	}{
		{name: "unknown system", conns: nil, want: ErrNotFound},
		{name: "unknown connection", conns: []Connection{direct}, connection: "hmc", want: ErrNotFound},
		{name: "whole system", conns: []Connection{direct, zos}, wantKind: KindStorageRemoved},
		{name: "whole system in use", conns: []Connection{direct}, sessions: []string{"s1"}, want: ErrInUse},
		{name: "last connection in use", conns: []Connection{direct}, connection: "direct", sessions: []string{"s1"}, want: ErrInUse},
		{name: "a connection of a system in use", conns: []Connection{direct, hmc}, connection: "hmc", sessions: []string{"s1"},
			wantKind: KindConnectionRemoved, wantLeft: []string{"direct"}},
		{name: "last IP, heartbeat off", conns: []Connection{direct, zos}, connection: "direct",
			wantKind: KindConnectionRemoved, wantLeft: []string{"zos"}},
		{name: "last IP, heartbeat on, in use", heartbeat: true, conns: []Connection{direct, zos}, connection: "direct",
			sessions: []string{"s1", "s2"}, want: ErrLastIPConnection},
		{name: "last IP, heartbeat on, in use, forced", heartbeat: true, conns: []Connection{direct, zos}, connection: "direct",
			sessions: []string{"s1", "s2"}, force: true, wantKind: KindConnectionRemoved, wantLeft: []string{"zos"},
			wantWarn: "removing connection direct of A leaves A (sessions s1, s2) with no TCP/IP connection while the heartbeat is on: " +
				"the Metro Mirror sessions are suspended, and applications see extended long busy until the storage timer expires",
			wantSuspend: []string{"s1", "s2"}},
		{name: "last IP, heartbeat on, unused: the heartbeat reaches it through no connection", heartbeat: true,
			conns: []Connection{direct, zos}, connection: "direct", wantKind: KindConnectionRemoved, wantLeft: []string{"zos"},
			wantWarn: "A is reachable only through z/OS"},
		{name: "one IP of two, heartbeat on", heartbeat: true, conns: []Connection{direct, hmc, zos}, connection: "direct",
			wantKind: KindConnectionRemoved, wantLeft: []string{"hmc", "zos"}},
		{name: "the only connection, heartbeat on", heartbeat: true, conns: []Connection{direct}, connection: "direct",
			wantKind: KindConnectionRemoved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := build(t, tc.heartbeat, map[hal.Serial][]Connection{"A": tc.conns})
			r, err := db.Remove("A", tc.connection, func(hal.Serial) []string { return tc.sessions }, tc.force)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Remove: %v, want %v", err, tc.want)
			}
			if errors.Is(err, ErrLastIPConnection) {
				for _, w := range []string{"A (session", "heartbeat off", "extended long busy until the storage timer expires", "--force"} {
					if !strings.Contains(err.Error(), w) {
						t.Fatalf("Remove: %v, want it to say %q", err, w)
					}
				}
			}
			if err != nil {
				return
			}
			if !slices.Equal(r.Sessions, tc.wantSuspend) {
				t.Fatalf("sessions to suspend %q, want %q", r.Sessions, tc.wantSuspend)
			}
			var left []string
			for _, c := range r.Left {
				left = append(left, c.Name)
			}
			if r.Record.Kind != tc.wantKind || !slices.Equal(left, tc.wantLeft) {
				t.Fatalf("Remove = %s leaving %q, want %s leaving %q", r.Record.Kind, left, tc.wantKind, tc.wantLeft)
			}
			if got := strings.Join(r.Warnings, "; "); (tc.wantWarn == "") != (got == "") || !strings.Contains(got, tc.wantWarn) {
				t.Fatalf("warnings %q, want %q", got, tc.wantWarn)
			}
			if err := db.Check(r.Record); err != nil {
				t.Fatalf("the removal's record does not apply: %v", err)
			}
		})
	}
}
