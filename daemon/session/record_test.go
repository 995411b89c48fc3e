package session_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/daemon/session"
	"github.com/lockstep-io/lockstep/hal"
)

// records is one record of every kind with every field of the kind set.
func records() []session.Record {
	full := session.Change{
		State: session.Suspending, Status: session.Warning, Recoverable: false, Copying: true,
		Error: true, IOHeld: true, FromPrepared: true, Direction: session.H2ToH1, ActiveSite: session.H2,
		Reason: "suspend event from LAB.2107-75P0001/10->LAB.2107-75S0001/10, reason path",
	}
	withRev := func(r session.Record) session.Record { r.IfRev = 7; return r }
	return []session.Record{
		created("A", fofb, "g", session.ReleaseIO),
		withRev(added("A", cs(0, 0x10, 1), cs(1, 0xFE, 0xFF))),
		withRev(removedCS("A", cs(0, 0x10, 1))),
		withRev(removed("A")),
		changed("A", 7, full),
		changed("A", 0, session.Change{State: session.TargetAvailable, Status: session.Normal, Recoverable: true}),
	}
}

func TestRecordJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, r := range records() {
		t.Run(string(r.Kind), func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			var got session.Record
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("Unmarshal(%s): %v", b, err)
			}
			if d := diff(r, got); d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
			again, err := json.Marshal(got)
			if err != nil || string(again) != string(b) {
				t.Errorf("re-encoding differs (err %v):\n%s\n%s", err, b, again)
			}
		})
	}
}

// TestRecordJSONFormat pins the stored format (doc.go): a change here is a
// format change and needs a new RecordVersion.
func TestRecordJSONFormat(t *testing.T) {
	t.Parallel()
	want := []string{
		`{"v":1,"kind":"session-created","session":"A","at":"2025-03-01T12:00:00Z","create":{"type":"mm-failover-failback","cg_name":"g","policy":"release-io"}}`,
		`{"v":1,"kind":"copyset-added","session":"A","at":"2025-03-01T12:00:00Z","if_rev":7,"copy_sets":[{"h1":"LAB.2107-75P0001/1001","h2":"LAB.2107-75S0001/1001"},{"h1":"LAB.2107-75P0002/FEFF","h2":"LAB.2107-75S0002/FEFF"}]}`,
		`{"v":1,"kind":"copyset-removed","session":"A","at":"2025-03-01T12:00:00Z","if_rev":7,"copy_sets":[{"h1":"LAB.2107-75P0001/1001","h2":"LAB.2107-75S0001/1001"}]}`,
		`{"v":1,"kind":"session-removed","session":"A","at":"2025-03-01T12:00:00Z","if_rev":7}`,
		`{"v":1,"kind":"state-changed","session":"A","at":"2025-03-01T12:00:00Z","if_rev":7,"change":{"state":"suspending","status":"warning","recoverable":false,"copying":true,"error":true,"io_held":true,"from_prepared":true,"direction":"h2-h1","active_site":"H2","reason":"suspend event from LAB.2107-75P0001/10-\u003eLAB.2107-75S0001/10, reason path"}}`,
		`{"v":1,"kind":"state-changed","session":"A","at":"2025-03-01T12:00:00Z","change":{"state":"target-available","status":"normal","recoverable":true,"copying":false,"error":false,"io_held":false,"from_prepared":false,"reason":""}}`,
	}
	for i, r := range records() {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if string(b) != want[i] {
			t.Errorf("%s record:\n got %s\nwant %s", r.Kind, b, want[i])
		}
	}
}

func TestRecordJSONRejects(t *testing.T) {
	t.Parallel()
	for _, b := range []string{
		`{"v":1,"kind":"state-changed","change":{"state":"frozen"}}`,
		`{"v":1,"kind":"state-changed","change":{"state":"suspended","status":"red"}}`,
		`{"v":1,"kind":"copyset-added","copy_sets":[{"h1":"LAB/10","h2":"LAB2/1001"}]}`,
		`{"v":1,"kind":"copyset-added","copy_sets":[{"h1":"1001","h2":"LAB2/1001"}]}`,
		`{"v":1,"kind":"copyset-added","copy_sets":[{"h1":"LAB/XY01","h2":"LAB2/1001"}]}`,
	} {
		var r session.Record
		if err := json.Unmarshal([]byte(b), &r); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", b)
		}
	}
}

func TestRecordClone(t *testing.T) {
	t.Parallel()
	r := changed("A", 3, session.Change{State: session.Prepared})
	r.CopySets = []session.CopySet{cs(0, 0x10, 1)}
	c := r.Clone()
	r.Change.State = session.Suspended
	r.CopySets[0] = cs(1, 0x10, 1)
	if c.Change.State != session.Prepared || c.CopySets[0] != cs(0, 0x10, 1) {
		t.Errorf("Clone shares memory with the original: %+v", c)
	}
}

func TestEnums(t *testing.T) {
	t.Parallel()
	for st := session.Defined; st <= session.TargetAvailable; st++ {
		b, err := st.MarshalText()
		if err != nil {
			t.Fatalf("%s: %v", st, err)
		}
		var got session.State
		if err := got.UnmarshalText(b); err != nil || got != st {
			t.Errorf("state %s: text %q gives %s, %v", st, b, got, err)
		}
		for _, s := range []string{st.String(), st.Kebab(), strings.ToUpper(st.String())} {
			if p, err := session.ParseState(s); err != nil || p != st {
				t.Errorf("ParseState(%q) = %s, %v", s, p, err)
			}
		}
	}
	if got := session.SuspendedPartial.String(); got != "Suspended (Partial)" {
		t.Errorf("label %q", got)
	}
	if got := session.TargetAvailable.Kebab(); got != "target-available" {
		t.Errorf("kebab %q", got)
	}
	if _, err := session.State(99).MarshalText(); err == nil {
		t.Error("State(99) marshals")
	}
	for s := session.Inactive; s <= session.Severe; s++ {
		b, _ := s.MarshalText()
		var got session.Status
		if err := got.UnmarshalText(b); err != nil || got != s {
			t.Errorf("status %s: text %q gives %s, %v", s, b, got, err)
		}
		if p, err := session.ParseStatus(s.String()); err != nil || p != s {
			t.Errorf("ParseStatus(%q) = %s, %v", s, p, err)
		}
	}
	if !(session.Inactive < session.Normal && session.Normal < session.Warning && session.Warning < session.Severe) {
		t.Error("statuses are not ordered by severity")
	}
	parse := []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"type", func() (string, error) { v, err := session.ParseType("MM-Failover-Failback"); return string(v), err }, "mm-failover-failback"},
		{"policy", func() (string, error) { v, err := session.ParsePolicy("Hold-IO"); return string(v), err }, "hold-io"},
		{"site", func() (string, error) { v, err := session.ParseSite("h2"); return string(v), err }, "H2"},
		{"direction", func() (string, error) { v, err := session.ParseDirection("H2->H1"); return string(v), err }, "h2-h1"},
	}
	for _, p := range parse {
		if got, err := p.got(); err != nil || got != p.want {
			t.Errorf("parse %s = %q, %v, want %q", p.name, got, err, p.want)
		}
	}
	for _, bad := range []func() error{
		func() error { _, err := session.ParseType("global-mirror"); return err },
		func() error { _, err := session.ParsePolicy("hold"); return err },
		func() error { _, err := session.ParseSite("H3"); return err },
		func() error { _, err := session.ParseDirection("h1-h1"); return err },
		func() error { _, err := session.ParseState("frozen"); return err },
		func() error { _, err := session.ParseStatus("red"); return err },
	} {
		if bad() == nil {
			t.Error("a bad value parsed")
		}
	}
	if session.H1ToH2.Label() != "H1->H2" || session.H2ToH1.Source() != session.H2 || session.H2ToH1.Target() != session.H1 {
		t.Error("direction helpers")
	}
}

func TestParseVolumeRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want hal.VolumeRef
		ok   bool
	}{
		{"LAB.2107-75P0001/1001", hal.VolumeRef{Serial: "LAB.2107-75P0001", Volume: 0x1001}, true},
		{"A/B/00ff", hal.VolumeRef{Serial: "A/B", Volume: 0x00FF}, true},
		{"/1001", hal.VolumeRef{}, false},
		{"LAB/FF01", hal.VolumeRef{}, false},
		{"LAB/101", hal.VolumeRef{}, false},
		{"LAB1001", hal.VolumeRef{}, false},
		{"LAB/10G1", hal.VolumeRef{}, false},
	}
	for _, tt := range tests {
		got, err := session.ParseVolumeRef(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseVolumeRef(%q) = %v, %v; want %v, ok %t", tt.in, got, err, tt.want, tt.ok)
		}
		if back, err := session.ParseVolumeRef(got.String()); tt.ok && (err != nil || back != got) {
			t.Errorf("%v does not parse back: %v, %v", got, back, err)
		}
	}
}
