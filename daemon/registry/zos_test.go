package registry

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
)

func zosRec(kind, name string, z *ZOS) Record {
	return Record{Version: RecordVersion, Kind: kind, Name: name, ZOS: z}
}

// TestZOSRecords: a z/OS connection is defined once per host with the
// systems it has online, which then are registered with it as one of
// their connections; it survives a snapshot and goes with zos-removed.
func TestZOSRecords(t *testing.T) {
	t.Parallel()
	sysa := &ZOS{Name: "SYSA", Addresses: []string{"z:5858"}, Sysplex: "PLEX1", User: "u", PasswordFile: "/p",
		Systems: []hal.Serial{"B", "A", "A"}}
	add := rec(KindStorageAdded)
	add.Serial, add.Connection = "B", &Connection{Name: "direct", Kind: hal.Direct, Addresses: []string{"b:1"}}
	db := NewDB()
	for _, st := range []struct {
		name string
		r    Record
		want error
	}{
		{"no record", zosRec(KindZOSAdded, "", nil), ErrInvalid},
		{"no name", zosRec(KindZOSAdded, "", &ZOS{Addresses: []string{"z:1"}, Sysplex: "P", Systems: []hal.Serial{"A"}}), ErrInvalid},
		{"no sysplex", zosRec(KindZOSAdded, "", &ZOS{Name: "S", Addresses: []string{"z:1"}, Systems: []hal.Serial{"A"}}), ErrInvalid},
		{"no systems", zosRec(KindZOSAdded, "", &ZOS{Name: "S", Addresses: []string{"z:1"}, Sysplex: "P"}), ErrInvalid},
		{"empty serial", zosRec(KindZOSAdded, "", &ZOS{Name: "S", Addresses: []string{"z:1"}, Sysplex: "P", Systems: []hal.Serial{""}}), ErrInvalid},
		{"three addresses", zosRec(KindZOSAdded, "", &ZOS{Name: "S", Addresses: []string{"a:1", "b:1", "c:1"}, Sysplex: "P", Systems: []hal.Serial{"A"}}), ErrInvalid},
		{"remove unknown", zosRec(KindZOSRemoved, "SYSA", nil), ErrNotFound},
		{"direct B", add, nil},
		{"add", zosRec(KindZOSAdded, "", sysa), nil},
		{"add again", zosRec(KindZOSAdded, "", sysa), ErrExists},
	} {
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
		kinds = append(kinds, string(c.Kind)+":"+c.Name+":"+c.ZOS+":"+c.Sysplex)
	}
	if !slices.Equal(kinds, []string{"direct:direct::", "zos:SYSA:SYSA:PLEX1"}) {
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
	if z, ok := back.ZOS("SYSA"); !ok || !slices.Equal(z.Systems, []hal.Serial{"A", "B"}) || z.Sysplex != "PLEX1" {
		t.Fatalf("restored z/OS %+v", z)
	}
	if _, err := db.Remove("A", "", noSessions, false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "zos remove") {
		t.Fatalf("storage remove of a system only a z/OS connection has: %v", err)
	}
	if _, err := db.Remove("B", "SYSA", noSessions, false); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "z/OS connection SYSA") {
		t.Fatalf("storage remove of B's z/OS connection: %v", err)
	}
	if err := db.Apply(zosRec(KindZOSRemoved, "SYSA", nil)); err != nil {
		t.Fatal(err)
	}
	if got := db.Serials(); !slices.Equal(got, []hal.Serial{"B"}) {
		t.Fatalf("serials after zos-removed %v", got)
	}
}

// TestLegacyZOSStorageRecord: a storage-added record of kind zos (the
// former storage add --kind zos) still applies and stays a plain
// connection of its system.
func TestLegacyZOSStorageRecord(t *testing.T) {
	t.Parallel()
	db := NewDB()
	r := rec(KindStorageAdded)
	r.Serial, r.Connection = "A", &Connection{Name: "SYSA", Kind: hal.ZOS, Addresses: []string{"z:5858"}, Sysplex: "PLEX1"}
	if err := db.Apply(r); err != nil {
		t.Fatal(err)
	}
	if c := db.Connections("A"); len(c) != 1 || c[0].Kind != hal.ZOS || c[0].ZOS != "" {
		t.Fatalf("connections %+v", c)
	}
}

func TestRemoveZOS(t *testing.T) {
	t.Parallel()
	z := &ZOS{Name: "SYSA", Addresses: []string{"z:5858"}, Sysplex: "PLEX1", Systems: []hal.Serial{"A"}}
	for _, tc := range []struct {
		name      string
		heartbeat bool
		direct    bool // A also has a direct connection
		used      bool // a session uses A
		want      error
	}{
		{name: "unused"},
		{name: "heartbeat on: z/OS carries none, nothing to lose", heartbeat: true},
		{name: "in use, only connection", used: true, want: ErrInUse},
		{name: "in use, A keeps a direct connection", used: true, direct: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conns := map[hal.Serial][]Connection{}
			if tc.direct {
				conns["A"] = []Connection{direct}
			}
			db := build(t, tc.heartbeat, conns)
			if err := db.Apply(zosRec(KindZOSAdded, "", z)); err != nil {
				t.Fatal(err)
			}
			sessions := func(s hal.Serial) []string {
				if tc.used && s == "A" {
					return []string{"mm1"}
				}
				return nil
			}
			rm, err := db.RemoveZOS("SYSA", sessions)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && (rm.Record.Kind != KindZOSRemoved || len(rm.Warnings) != 0) {
				t.Fatalf("removal %+v", rm)
			}
		})
	}
	if _, err := NewDB().RemoveZOS("nope", noSessions); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown z/OS connection: %v", err)
	}
}
