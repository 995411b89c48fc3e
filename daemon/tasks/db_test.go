package tasks

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func rec(kind string, at time.Time, mod func(*Record)) Record {
	r := Record{Version: RecordVersion, Kind: kind, At: at, Task: "t1"}
	if mod != nil {
		mod(&r)
	}
	return r
}

// TestApply: the state refuses a second start of an occurrence, whichever
// server proposes it: that is what makes "never twice" a property of the
// journal, not of timing.
func TestApply(t *testing.T) {
	t.Parallel()
	create := rec(KindCreated, t0, func(r *Record) {
		r.Steps, r.Schedule, r.Zone, r.On = []string{"suspend prod"}, "every 1m", "Europe/Berlin", true
	})
	s1 := t0.Add(time.Minute)
	start := rec(KindStarted, s1, func(r *Record) { r.Scheduled, r.Epoch = s1, 1 })
	finish := rec(KindFinished, s1.Add(time.Second), func(r *Record) { r.Scheduled, r.Result = s1, ResultSuccess })
	tests := []struct {
		name    string
		history []Record
		r       Record
		want    error
	}{
		{"create", nil, create, nil},
		{"create twice", []Record{create}, create, ErrExists},
		{"unknown zone", nil, rec(KindCreated, t0, func(r *Record) { r.Steps, r.Schedule, r.Zone = []string{"suspend p"}, "every 1m", "Nowhere/Land" }), ErrInvalid},
		{"no zone", nil, rec(KindCreated, t0, func(r *Record) { r.Steps, r.Schedule = []string{"suspend p"}, "every 1m" }), ErrInvalid},
		{"bad step", nil, rec(KindCreated, t0, func(r *Record) { r.Steps, r.Schedule, r.Zone = []string{"fly p"}, "every 1m", "UTC" }), ErrInvalid},
		{"no steps", nil, rec(KindCreated, t0, func(r *Record) { r.Schedule, r.Zone = "every 1m", "UTC" }), ErrInvalid},
		{"start", []Record{create}, start, nil},
		{"start twice while running", []Record{create, start}, start, ErrRunning},
		{"start the same occurrence again", []Record{create, start, finish}, start, ErrInvalid},
		{"start without epoch", []Record{create}, rec(KindStarted, s1, func(r *Record) { r.Scheduled = s1 }), ErrInvalid},
		{"finish", []Record{create, start}, finish, nil},
		{"finish not running", []Record{create}, finish, ErrInvalid},
		{"finish bad result", []Record{create, start}, rec(KindFinished, s1, func(r *Record) { r.Scheduled, r.Result = s1, "meh" }), ErrInvalid},
		{"remove while running", []Record{create, start}, rec(KindRemoved, s1, nil), ErrRunning},
		{"remove", []Record{create, start, finish}, rec(KindRemoved, s1, nil), nil},
		{"unknown task", nil, rec(KindEnabled, t0, nil), ErrNotFound},
		{"missed before cursor", []Record{create}, rec(KindMissed, t0, func(r *Record) { r.Scheduled, r.Count = t0, 1 }), ErrInvalid},
		{"bad version", nil, Record{Version: 2, Kind: KindCreated, At: t0, Task: "t1"}, ErrInvalid},
		{"unknown kind", []Record{create}, rec("task-exploded", t0, nil), ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := NewDB()
			for _, h := range tc.history {
				if err := db.Apply(h); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := db.Snapshot()
			err := db.Apply(tc.r)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
			if after, _ := db.Snapshot(); err != nil && !bytes.Equal(before, after) {
				t.Fatal("a refused record changed the state")
			}
		})
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	db := NewDB()
	s1 := t0.Add(time.Minute)
	for _, r := range []Record{
		rec(KindCreated, t0, func(r *Record) {
			r.Steps, r.Schedule, r.Zone, r.On = []string{"suspend prod", "wait prod suspended timeout 1m"}, "weekly sun 03:30", "America/New_York", true
		}),
		rec(KindRunAt, t0, func(r *Record) { r.RunAt = s1 }),
		rec(KindStarted, s1, func(r *Record) { r.Scheduled, r.Epoch, r.Manual = s1, 4, true }),
	} {
		if err := db.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	b, err := db.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Restore(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := back.Snapshot()
	if !bytes.Equal(b, b2) {
		t.Fatalf("round trip:\n%s\n%s", b, b2)
	}
	if _, err := Restore([]byte(`{"version":1,"tasks":[{"name":"x","zone":"UTC","steps":["fly x"],"schedule":"every 1m"}]}`)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Restore of a bad step = %v", err)
	}
}
