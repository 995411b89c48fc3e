package freeze

import (
	"testing"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// TestSeenEventsWindowAndMemory: an event is a duplicate of the same
// event from the same source for at least maxSeen further events, never
// of another source's or of an event differing in any field; and
// remembering one allocates nothing (the memory does not move with the
// events: internal/memsoak found the previous memory growing for days).
func TestSeenEventsWindowAndMemory(t *testing.T) {
	// Not parallel: AllocsPerRun counts the whole process's allocations.
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := func(seq uint64) hal.Event {
		return hal.Event{Kind: hal.EventSuspend, Serial: "LAB.2107-75P0001", Seq: seq, At: at.Add(time.Duration(seq)),
			LSSPair: hal.LSSPair{Source: hal.LSSRef{Serial: "LAB.2107-75P0001", LSS: 0x10},
				Target: hal.LSSRef{Serial: "LAB.2107-75S0001", LSS: 0x10}}, Reason: hal.ReasonPath}
	}
	s := newSeenEvents()
	if s.add(pushed, ev(1)) {
		t.Fatal("a first event taken for a duplicate")
	}
	if !s.add(pushed, ev(1)) {
		t.Fatal("the same event from the same source not taken for a duplicate")
	}
	same := ev(1)
	same.At = same.At.In(time.FixedZone("X", 3600)) // the same instant elsewhere
	if !s.add(pushed, same) {
		t.Fatal("the same instant in another location not taken for a duplicate")
	}
	if s.add("snmp trap", ev(1)) {
		t.Fatal("another source's event taken for a duplicate")
	}
	for _, tc := range []struct {
		name   string
		change func(*hal.Event)
	}{
		{"volumes", func(e *hal.Event) { e.Volumes.Add(3) }},
		{"reason", func(e *hal.Event) { e.Reason = hal.ReasonFreeze }},
		{"target", func(e *hal.Event) { e.LSSPair.Target.LSS = 0x11 }},
		{"time", func(e *hal.Event) { e.At = e.At.Add(time.Nanosecond) }},
		{"session", func(e *hal.Event) { e.Session = "x" }},
	} {
		e := ev(1)
		tc.change(&e)
		if s.add(pushed, e) {
			t.Errorf("%s: an event differing in it taken for a duplicate", tc.name)
		}
	}
	// The window: maxSeen more events later, the first is still known.
	for seq := uint64(2); seq < maxSeen; seq++ {
		s.add(pushed, ev(seq))
	}
	if !s.add(pushed, ev(1)) {
		t.Fatalf("an event forgotten within %d events", maxSeen)
	}
	next := uint64(maxSeen)
	if allocs := testing.AllocsPerRun(3*maxSeen, func() { s.add(pushed, ev(next)); next++ }); allocs != 0 {
		t.Errorf("remembering an event allocates %.1f times", allocs)
	}
}
