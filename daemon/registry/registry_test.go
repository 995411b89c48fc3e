package registry

import (
	"bytes"
	"errors"
	"testing"
)

func rec(kind string) Record { return Record{Version: RecordVersion, Kind: kind} }

func TestApply(t *testing.T) {
	t.Parallel()
	db := NewDB()
	add := rec(KindStorageAdded)
	add.Serial, add.Connection = "S1", &Connection{Name: "direct", Kind: "direct", Addresses: []string{"a:1", "b:1"}}
	steps := []struct {
		name string
		r    Record
		want error
	}{
		{"add", add, nil},
		{"add again", add, ErrExists},
		{"second connection", func() Record {
			r := add
			r.Connection = &Connection{Name: "zos", Kind: "zos", Addresses: []string{"z:1"}, Sysplex: "P"}
			return r
		}(), nil},
		{"remove unknown connection", Record{Version: 1, Kind: KindConnectionRemoved, Serial: "S1", Name: "x"}, ErrNotFound},
		{"remove direct", Record{Version: 1, Kind: KindConnectionRemoved, Serial: "S1", Name: "direct"}, nil},
		{"heartbeat on", Record{Version: 1, Kind: KindHeartbeatSet, On: true}, nil},
		{"epoch 3", Record{Version: 1, Kind: KindEpochSet, Epoch: 3}, nil},
		{"epoch back to 2", Record{Version: 1, Kind: KindEpochSet, Epoch: 2}, ErrInvalid},
		{"unknown kind", rec("nonsense"), ErrInvalid},
		{"wrong version", Record{Version: 9, Kind: KindHeartbeatSet}, ErrInvalid},
		{"remove last connection", Record{Version: 1, Kind: KindConnectionRemoved, Serial: "S1", Name: "zos"}, nil},
		{"storage gone", Record{Version: 1, Kind: KindStorageRemoved, Serial: "S1"}, ErrNotFound},
	}
	for _, st := range steps {
		before, _ := db.Snapshot()
		err := db.Apply(st.r)
		if !errors.Is(err, st.want) || (st.want == nil) != (err == nil) {
			t.Fatalf("%s: err %v, want %v", st.name, err, st.want)
		}
		if err != nil {
			if after, _ := db.Snapshot(); !bytes.Equal(before, after) {
				t.Fatalf("%s: a refused record changed the registry", st.name)
			}
		}
	}
	if len(db.Serials()) != 0 || !db.Heartbeat() || db.Epoch() != 3 {
		t.Fatalf("end state: %v %v %d", db.Serials(), db.Heartbeat(), db.Epoch())
	}
	snap, _ := db.Snapshot()
	back, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := back.Snapshot(); !bytes.Equal(snap, again) {
		t.Fatalf("snapshot round trip: %s vs %s", snap, again)
	}
}

// FuzzRestore: a snapshot of any bytes is decoded or refused, never a
// panic, and what is accepted encodes again to an equal registry.
func FuzzRestore(f *testing.F) {
	db := NewDB()
	_ = db.Apply(Record{Version: 1, Kind: KindStorageAdded, Serial: "S", Connection: &Connection{Name: "d", Kind: "direct", Addresses: []string{"a:1"}}})
	good, _ := db.Snapshot()
	f.Add(good)
	f.Add([]byte(`{"version":1,"storage":{},"heartbeat":true,"epoch":3}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		db, err := Restore(b)
		if err != nil {
			return
		}
		again, err := db.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Restore(again)
		if err != nil {
			t.Fatalf("a re-encoded snapshot does not decode: %v", err)
		}
		if third, _ := back.Snapshot(); !bytes.Equal(third, again) {
			t.Fatal("snapshot not stable")
		}
	})
}
