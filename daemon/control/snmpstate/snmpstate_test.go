package snmpstate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/daemon/control/api"
)

var root = OID{1, 3, 6, 1, 4, 1, 61942, 1}

var t0 = time.Date(2026, 12, 2, 13, 45, 30, 500_000_000, time.UTC)

func sampleDocs() Docs {
	lag := uint64(3)
	return Docs{
		Status: api.StatusDoc{Server: "mgr-a", Started: t0.Add(-time.Hour)},
		HA: api.HADoc{Role: "active", State: "Synchronized", Epoch: 7, Acting: true, StandbyLag: &lag,
			Partner: "10.0.0.2:7450", PartnerRole: "standby", LastChange: t0, Transitions: 4},
		Sessions: []api.SessionDoc{
			{Name: "s2", Type: api.MetroMirrorFailoverFailback, State: api.StateSuspended, Status: api.StatusSevere,
				Recoverable: true, IOHeld: true, CG: "cg1", CopySets: make([]api.CopySet, 2), LastChange: t0, Transitions: 9},
			{Name: "s1", Type: api.MetroMirrorSingleDirection, State: api.StatePrepared, Status: api.StatusNormal, Copying: true},
		},
		Storage: []api.StorageDoc{{Serial: "LAB.2107-75P0001", Reachable: true, Heartbeat: true, Transitions: 1, LastChange: t0,
			Connections: []api.ConnectionDoc{{Name: "c1", Kind: api.Direct, State: "connected", Detail: "cluster 0"},
				{Name: "z", Kind: api.ZOS, State: "unusable", Detail: "not supported\nby this build"}}}},
		Heartbeat: api.HeartbeatDoc{Groups: []api.HeartbeatGroupDoc{{Name: "cg1", Phase: "frozen", LastFreeze: t0, Transitions: 2,
			Systems: []api.HeartbeatSystemDoc{{Serial: "LAB.2107-75P0001", Acked: true, Armed: true}, {Serial: "B"}}}}},
	}
}

func idx(s string) string {
	out := fmt.Sprint(len(s))
	for i := 0; i < len(s); i++ {
		out += fmt.Sprintf(".%d", s[i])
	}
	return out
}

func TestBuild(t *testing.T) {
	t.Parallel()
	snap := Build(root, sampleDocs())
	base := ".1.3.6.1.4.1.61942.1.3."
	tests := []struct {
		name, oid string
		typ       Type
		value     string
	}{
		{"server name", "1.1.0", TypeString, "mgr-a"},
		{"role active", "1.2.0", TypeInteger, "3"},
		{"ha state synchronized", "1.3.0", TypeInteger, "5"},
		{"epoch", "1.4.0", TypeGauge, "7"},
		{"acting", "1.5.0", TypeInteger, "1"},
		{"standby lag", "1.6.0", TypeGauge, "3"},
		{"partner role", "1.8.0", TypeString, "standby"},
		{"ha last change", "1.9.0", TypeOctet, "07 ea 0c 02 0d 2d 1e 05 2b 00 00"},
		{"ha transitions", "1.10.0", TypeCounter, "4"},
		{"session name", "2.1.2." + idx("s2"), TypeString, "s2"},
		{"session type", "2.1.3." + idx("s1"), TypeString, "mm-single-direction"},
		{"session state suspended", "2.1.4." + idx("s2"), TypeInteger, "6"},
		{"session status severe", "2.1.5." + idx("s2"), TypeInteger, "5"},
		{"session recoverable", "2.1.6." + idx("s2"), TypeInteger, "1"},
		{"session not recoverable", "2.1.6." + idx("s1"), TypeInteger, "2"},
		{"session copying", "2.1.7." + idx("s1"), TypeInteger, "1"},
		{"session io held", "2.1.8." + idx("s2"), TypeInteger, "1"},
		{"session copy sets", "2.1.9." + idx("s2"), TypeGauge, "2"},
		{"session cg", "2.1.10." + idx("s2"), TypeString, "cg1"},
		{"session never changed", "2.1.11." + idx("s1"), TypeOctet, "00 00 00 00 00 00 00 00"},
		{"session transitions", "2.1.12." + idx("s2"), TypeCounter, "9"},
		{"storage reachable", "3.1.3." + idx("LAB.2107-75P0001"), TypeInteger, "1"},
		{"storage armed", "3.1.4." + idx("LAB.2107-75P0001"), TypeInteger, "1"},
		{"storage connections", "3.1.6." + idx("LAB.2107-75P0001"), TypeGauge, "2"},
		{"connection kind zos", "4.1.3." + idx("LAB.2107-75P0001") + "." + idx("z"), TypeInteger, "4"},
		{"connection state connected", "4.1.4." + idx("LAB.2107-75P0001") + "." + idx("c1"), TypeInteger, "2"},
		{"connection detail on one line", "4.1.5." + idx("LAB.2107-75P0001") + "." + idx("z"), TypeString, "not supported by this build"},
		{"cg phase frozen", "5.1.3." + idx("cg1"), TypeInteger, "5"},
		{"cg systems", "5.1.4." + idx("cg1"), TypeGauge, "2"},
		{"cg frozen systems", "5.1.5." + idx("cg1"), TypeGauge, "1"},
		{"cg transitions", "5.1.8." + idx("cg1"), TypeCounter, "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			oid, err := ParseOID(base + tt.oid)
			if err != nil {
				t.Fatal(err)
			}
			v, ok := snap.Get(oid)
			if !ok {
				t.Fatalf("no instance %s", oid)
			}
			if v.Type != tt.typ || v.Value != tt.value {
				t.Fatalf("%s = %s %q, want %s %q", oid, v.Type, v.Value, tt.typ, tt.value)
			}
		})
	}
}

// TestEveryObjectIsServed: each accessible object of the definitions has
// instances, and every instance belongs to a defined object, in OID order.
func TestEveryObjectIsServed(t *testing.T) {
	t.Parallel()
	snap := Build(root, sampleDocs())
	defined := map[string]string{}
	state := root.with(ArcState)
	for _, o := range Local {
		defined[state.with(arcLocal, o.Arc).String()] = o.Name
	}
	for _, tb := range Tables {
		for _, c := range tb.Columns {
			if !c.Index {
				defined[state.with(tb.Arc, 1, c.Arc).String()] = c.Name
			}
		}
	}
	seen := map[string]bool{}
	var prev OID
	for _, v := range snap.Vars() {
		if prev != nil && compare(prev, v.OID) >= 0 {
			t.Fatalf("%s after %s: not in order", v.OID, prev)
		}
		prev = v.OID
		found := false
		for n := len(state) + 2; n <= len(v.OID); n++ {
			if name, ok := defined[v.OID[:n].String()]; ok {
				seen[name], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("instance %s of no defined object", v.OID)
		}
	}
	for _, name := range defined {
		if !seen[name] {
			t.Errorf("object %s has no instance", name)
		}
	}
}

func TestWalkVisitsEverything(t *testing.T) {
	t.Parallel()
	snap := Build(root, sampleDocs())
	n := 0
	for v, ok := snap.Next(root); ok; v, ok = snap.Next(v.OID) {
		n++
	}
	if n != len(snap.Vars()) {
		t.Fatalf("a getnext walk visits %d of %d instances", n, len(snap.Vars()))
	}
}

func TestEnumerationsKnowTheAPIWords(t *testing.T) {
	t.Parallel()
	words := []struct {
		enum []string
		w    string
	}{
		{sessionStateEnum, string(api.StateTargetAvailable)}, {sessionStateEnum, string(api.StateSuspendedPartial)},
		{sessionStatusEnum, string(api.StatusWarning)}, {connKindEnum, string(api.HMC)},
		{haStateEnum, "Disconnected Consistent"}, {roleEnum, "disconnected-standby"}, {phaseEnum, "thawed"},
	}
	for _, w := range words {
		if enumValue(w.enum, w.w) == 1 {
			t.Errorf("%q is other", w.w)
		}
	}
	if got := enumSyntax(haStateEnum); !strings.Contains(got, "disconnectedConsistent(6)") || !strings.Contains(got, "synchronizationPending(4)") {
		t.Fatalf("syntax %s", got)
	}
}

func TestLongNamesAreLeftOut(t *testing.T) {
	t.Parallel()
	d := Docs{Storage: []api.StorageDoc{{Serial: api.StorageDoc{}.Serial + "X" + "123456789012345678901234567890123"}}}
	if n := len(Build(root, d).Vars()); n != len(Local) {
		t.Fatalf("%d instances, want only the %d scalars", n, len(Local))
	}
}

type request struct{ in, want string }

func serve(t *testing.T, load func(context.Context) (Docs, error), now func() time.Time, in string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := Serve(t.Context(), strings.NewReader(in), &out, ServeOptions{Root: root, Load: load, Now: now, TTL: time.Second})
	return out.String(), err
}

func TestServe(t *testing.T) {
	t.Parallel()
	load := func(context.Context) (Docs, error) { return sampleDocs(), nil }
	now := func() time.Time { return t0 }
	name := ".1.3.6.1.4.1.61942.1.3.1.1.0"
	tests := []struct {
		name, in, want string
		err            error
	}{
		{name: "ping", in: "PING\n", want: "PONG\n"},
		{name: "get", in: "get\n" + name + "\n", want: name + "\nstring\nmgr-a\n"},
		{name: "get without the dot", in: "get\n" + name[1:] + "\n", want: name + "\nstring\nmgr-a\n"},
		{name: "get of no instance", in: "get\n.1.3.6.1.4.1.61942.1.3.1.99.0\n", want: "NONE\n"},
		{name: "getnext from the subtree", in: "getnext\n.1.3.6.1.4.1.61942.1.3\n", want: name + "\nstring\nmgr-a\n"},
		{name: "getnext past the end", in: "getnext\n.1.3.6.1.4.1.61942.1.4\n", want: "NONE\n"},
		{name: "bad oid", in: "get\n.1.x\n", want: "NONE\n"},
		{name: "set", in: "set\n" + name + "\nstring x\n", want: "not-writable\n"},
		{name: "an empty line ends", in: "PING\n\nPING\n", want: "PONG\n"},
		{name: "crlf", in: "PING\r\nget\r\n" + name + "\r\n", want: "PONG\n" + name + "\nstring\nmgr-a\n"},
		{name: "unknown request", in: "PING\nlist\n", want: "PONG\n", err: ErrProtocol},
		{name: "truncated request", in: "get\n", err: ErrProtocol},
		{name: "huge line", in: "get\n" + strings.Repeat("1", maxLine+1) + "\n", err: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := serve(t, load, now, tt.in)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("answered %q, want %q", got, tt.want)
			}
		})
	}
}

// TestServeCaches: one read of the daemon answers every request within
// the TTL; the next one after it reads again; a failed read answers NONE
// and is not retried within the TTL either.
func TestServeCaches(t *testing.T) {
	t.Parallel()
	reads, fail := 0, false
	load := func(context.Context) (Docs, error) {
		reads++
		if fail {
			return Docs{}, errors.New("no daemon")
		}
		return sampleDocs(), nil
	}
	at := t0
	var out strings.Builder
	in := &stepReader{}
	req := "getnext\n.1.3.6.1.4.1.61942.1.3\n"
	in.steps = []func() string{
		func() string { return req },
		func() string { return req },
		func() string { at = at.Add(time.Second); return req }, // expired: read 2
		func() string { fail = true; at = at.Add(time.Second); return req },
		func() string { return req }, // the failure is reused
	}
	if err := Serve(t.Context(), in, &out, ServeOptions{Root: root, Load: load, Now: func() time.Time { return at }, TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if reads != 3 {
		t.Fatalf("%d reads, want 3", reads)
	}
	if n := strings.Count(out.String(), "NONE\n"); n != 2 {
		t.Fatalf("%d NONE answers, want 2: %q", n, out.String())
	}
}

// stepReader runs each step when the previous request has been read.
type stepReader struct {
	steps []func() string
	buf   string
}

func (r *stepReader) Read(p []byte) (int, error) {
	if r.buf == "" {
		if len(r.steps) == 0 {
			return 0, io.EOF
		}
		r.buf, r.steps = r.steps[0](), r.steps[1:]
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
