package transitions

import (
	"sync"
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal/clock"
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func TestTracker(t *testing.T) {
	t.Parallel()
	type step struct {
		changed  bool   // Changed(from, to) rather than Observe(to)
		from, to string //
		advance  time.Duration
		want     uint64
		wantAt   time.Duration // since t0 of LastChange; -1: zero
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "the first state seen is a baseline", steps: []step{{to: "a", want: 0, wantAt: -1}}},
		{name: "a read that sees the same state counts nothing", steps: []step{
			{to: "a", want: 0, wantAt: -1}, {to: "a", advance: time.Second, want: 0, wantAt: -1}}},
		{name: "a read that sees another state counts one", steps: []step{
			{to: "a", want: 0, wantAt: -1}, {to: "b", advance: time.Second, want: 1, wantAt: time.Second}}},
		{name: "a flap between two reads counts twice", steps: []step{
			{to: "a", want: 0, wantAt: -1},
			{changed: true, from: "a", to: "b", advance: time.Second, want: 1, wantAt: time.Second},
			{changed: true, from: "b", to: "a", advance: time.Second, want: 2, wantAt: 2 * time.Second},
			{to: "a", advance: time.Second, want: 2, wantAt: 2 * time.Second}}},
		{name: "a change to an unknown object counts once", steps: []step{
			{changed: true, from: "a", to: "b", want: 1, wantAt: 0}}},
		{name: "a change a read already saw is not counted again", steps: []step{
			{to: "a", wantAt: -1}, {to: "b", advance: time.Second, want: 1, wantAt: time.Second},
			{changed: true, from: "a", to: "b", advance: time.Second, want: 1, wantAt: time.Second}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(t0)
			tr := New(clk)
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				if s.changed {
					tr.Changed(Session, "s1", s.from, s.to)
				} else {
					tr.Observe(Session, "s1", s.to)
				}
				r := tr.Row(Session, "s1")
				wantAt := time.Time{}
				if s.wantAt >= 0 {
					wantAt = t0.Add(s.wantAt)
				}
				if r.Transitions != s.want || !r.LastChange.Equal(wantAt) {
					t.Fatalf("step %d: row %+v, want %d transitions, last change %v", i, r, s.want, wantAt)
				}
			}
		})
	}
}

func TestKindsAndNamesAreSeparate(t *testing.T) {
	t.Parallel()
	tr := New(clock.NewFake(t0))
	tr.Changed(Session, "x", "a", "b")
	if r := tr.Row(Group, "x"); r.Transitions != 0 {
		t.Fatalf("group x got the session's change: %+v", r)
	}
	if r := tr.Row(Session, "y"); r.Transitions != 0 {
		t.Fatalf("session y got x's change: %+v", r)
	}
}

func TestFrozeKeepsTheLatest(t *testing.T) {
	t.Parallel()
	tr := New(clock.NewFake(t0))
	tr.Froze("cg", t0.Add(2*time.Second))
	tr.Froze("cg", t0.Add(time.Second)) // a late report of an older freeze
	if got := tr.Row(Group, "cg").LastFreeze; !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("last freeze %v", got)
	}
	tr.Observe(Group, "cg", "frozen")
	if got := tr.Row(Group, "cg").LastFreeze; !got.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("observing lost the last freeze: %v", got)
	}
}

func TestRetainForgetsRemoved(t *testing.T) {
	t.Parallel()
	tr := New(clock.NewFake(t0))
	tr.Changed(Session, "gone", "a", "b")
	tr.Changed(Session, "kept", "a", "b")
	tr.Changed(Storage, "gone", "a", "b")
	tr.Retain(Session, []string{"kept"})
	if tr.Row(Session, "gone").Transitions != 0 || tr.Row(Session, "kept").Transitions != 1 || tr.Row(Storage, "gone").Transitions != 1 {
		t.Fatal("Retain forgot the wrong rows")
	}
}

func TestNilTrackerIsInert(t *testing.T) {
	t.Parallel()
	var tr *Tracker
	tr.Observe(Server, "", "a")
	tr.Changed(Server, "", "a", "b")
	tr.Froze("g", t0)
	tr.Retain(Group, nil)
	if tr.Row(Server, "") != (Row{}) || !tr.Started().IsZero() {
		t.Fatal("a nil tracker read something")
	}
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	tr := New(clock.NewFake(t0))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 100 {
				tr.Observe(Session, "s", []string{"a", "b"}[(i+j)%2])
				_ = tr.Row(Session, "s")
			}
		})
	}
	wg.Wait()
	if tr.Row(Session, "s").Transitions == 0 {
		t.Fatal("no transition counted")
	}
}
