package registry

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

func hmcRec(kind, name string, h *HMC, serials ...hal.Serial) Record {
	return Record{Version: RecordVersion, Kind: kind, Name: name, HMC: h, Serials: serials}
}

// TestHMCRecords: an HMC connection is defined once, fronts the systems
// discovered from it (which then are registered, with the HMC as one of
// their connections), survives a snapshot, and goes with its systems'
// discovered entries.
func TestHMCRecords(t *testing.T) {
	t.Parallel()
	db := NewDB()
	dual := &HMC{Name: "HMCS", Addresses: []string{"h1:1751", "h2:1751"}, User: "u", PasswordFile: "/p"}
	add := rec(KindStorageAdded)
	add.Serial, add.Connection = "B", &Connection{Name: "direct", Kind: hal.Direct, Addresses: []string{"b:1"}}
	steps := []struct {
		name string
		r    Record
		want error
	}{
		{"attach before add", hmcRec(KindHMCAttached, "HMCS", nil, "A"), ErrNotFound},
		{"no name", hmcRec(KindHMCAdded, "", &HMC{Addresses: []string{"h:1"}}), ErrInvalid},
		{"three addresses", hmcRec(KindHMCAdded, "", &HMC{Name: "X", Addresses: []string{"a:1", "b:1", "c:1"}}), ErrInvalid},
		{"add", hmcRec(KindHMCAdded, "", dual), nil},
		{"add again", hmcRec(KindHMCAdded, "", dual), ErrExists},
		{"direct B", add, nil},
		{"empty serial", hmcRec(KindHMCAttached, "HMCS", nil, "A", ""), ErrInvalid},
		{"discovered", hmcRec(KindHMCAttached, "HMCS", nil, "B", "A", "A"), nil},
	}
	for _, st := range steps {
		before, _ := db.Snapshot()
		err := db.Apply(st.r)
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.want)
		}
		if after, _ := db.Snapshot(); err != nil && !bytes.Equal(before, after) {
			t.Fatalf("%s: a refused record changed the registry", st.name)
		}
	}
	if got := db.Serials(); !slices.Equal(got, []hal.Serial{"A", "B"}) {
		t.Fatalf("serials %v", got)
	}
	var kinds []string
	for _, c := range db.Connections("B") {
		kinds = append(kinds, string(c.Kind)+":"+c.Name+":"+c.HMC)
	}
	if !slices.Equal(kinds, []string{"direct:direct:", "hmc:HMCS:HMCS"}) {
		t.Fatalf("B's connections %v", kinds)
	}
	snap, _ := db.Snapshot()
	back, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Snapshot(); !bytes.Equal(snap, again) {
		t.Fatalf("snapshot round trip: %s vs %s", snap, again)
	}
	if h, ok := back.HMC("HMCS"); !ok || !slices.Equal(h.Attached, []hal.Serial{"A", "B"}) {
		t.Fatalf("restored HMC %+v", h)
	}
	if err := db.Apply(hmcRec(KindHMCRemoved, "HMCS", nil)); err != nil {
		t.Fatal(err)
	}
	if got := db.Serials(); !slices.Equal(got, []hal.Serial{"B"}) {
		t.Fatalf("serials after hmc-removed %v", got)
	}
}

// TestLegacyHMCStorageRecord: a storage-added record of kind hmc (the
// former storage add --kind hmc) still applies; it is marked legacy.
func TestLegacyHMCStorageRecord(t *testing.T) {
	t.Parallel()
	db := NewDB()
	r := rec(KindStorageAdded)
	r.Serial, r.Connection = "A", &Connection{Name: "hmc", Kind: hal.HMC, Addresses: []string{"h:1751"}}
	if err := db.Apply(r); err != nil {
		t.Fatal(err)
	}
	if c := db.Connections("A"); len(c) != 1 || !c[0].Legacy() {
		t.Fatalf("connections %+v, want one legacy", c)
	}
}

func TestRemoveHMC(t *testing.T) {
	t.Parallel()
	h := &HMC{Name: "H", Addresses: []string{"h:1751"}}
	for _, tc := range []struct {
		name      string
		heartbeat bool
		direct    bool // A also has a direct connection
		zos       bool // A also has a z/OS connection
		used      bool // a session uses A
		force     bool
		want      error
		warn      string
		suspend   []string
	}{
		{name: "heartbeat off"},
		{name: "heartbeat on, A keeps a direct connection", heartbeat: true, direct: true},
		{name: "heartbeat on, A goes with it, unused", heartbeat: true},
		{name: "heartbeat on, A keeps z/OS, unused", heartbeat: true, zos: true, warn: "A is reachable only through z/OS"},
		{name: "heartbeat on, last IP connection, in use", heartbeat: true, zos: true, used: true, want: ErrLastIPConnection},
		{name: "heartbeat on, in use, forced", heartbeat: true, zos: true, used: true, force: true,
			warn: "removing HMC connection H leaves A (session mm1) with no TCP/IP connection while the heartbeat is on: " +
				"the Metro Mirror sessions are suspended, and applications see extended long busy until the storage timer expires",
			suspend: []string{"mm1"}},
		{name: "in use, only connection", used: true, want: ErrInUse},
		{name: "in use, only connection, heartbeat on, forced", heartbeat: true, used: true, force: true, want: ErrInUse},
		{name: "in use, A keeps a direct connection", used: true, direct: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conns := map[hal.Serial][]Connection{}
			if tc.direct {
				conns["A"] = append(conns["A"], direct)
			}
			if tc.zos {
				conns["A"] = append(conns["A"], zos)
			}
			db := build(t, tc.heartbeat, conns)
			for _, r := range []Record{hmcRec(KindHMCAdded, "", h), hmcRec(KindHMCAttached, "H", nil, "A")} {
				if err := db.Apply(r); err != nil {
					t.Fatal(err)
				}
			}
			sessions := func(s hal.Serial) []string {
				if tc.used && s == "A" {
					return []string{"mm1"}
				}
				return nil
			}
			rm, err := db.RemoveHMC("H", sessions, tc.force)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			got := strings.Join(rm.Warnings, "; ")
			if err == nil && (rm.Record.Kind != KindHMCRemoved || (got == "") != (tc.warn == "") || !strings.Contains(got, tc.warn) ||
				!slices.Equal(rm.Sessions, tc.suspend)) {
				t.Fatalf("removal %+v, want warning %q, sessions to suspend %q", rm, tc.warn, tc.suspend)
			}
			if errors.Is(err, ErrLastIPConnection) && (!strings.Contains(err.Error(), "heartbeat off") ||
				!strings.Contains(err.Error(), "A (session mm1)") || !strings.Contains(err.Error(), "extended long busy")) {
				t.Fatalf("error does not say what to do: %v", err)
			}
		})
	}
	if _, err := NewDB().RemoveHMC("nope", func(hal.Serial) []string { return nil }, false); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown HMC: %v", err)
	}
}

// TestStorageRemoveOfDiscovered: a system discovered behind an HMC is
// not removed with storage remove; its HMC connection is not either.
func TestStorageRemoveOfDiscovered(t *testing.T) {
	t.Parallel()
	db := build(t, true, map[hal.Serial][]Connection{"B": {direct}})
	for _, r := range []Record{hmcRec(KindHMCAdded, "", &HMC{Name: "H", Addresses: []string{"h:1"}}),
		hmcRec(KindHMCAttached, "H", nil, "A", "B")} {
		if err := db.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Remove("A", "", noSessions, false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hmc remove") {
		t.Fatalf("remove A: %v", err)
	}
	if _, err := db.Remove("B", "H", noSessions, false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "hmc remove") {
		t.Fatalf("remove B's HMC: %v", err)
	}
	// B's direct connection may go with the heartbeat on: the HMC still
	// carries it.
	rm, err := db.Remove("B", "direct", noSessions, false)
	if err != nil || len(rm.Warnings) != 0 {
		t.Fatalf("remove B's direct connection: %+v, %v", rm, err)
	}
}
