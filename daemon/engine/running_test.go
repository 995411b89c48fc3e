package engine

import "testing"

// TestRunningCountsOverlappingCommands: two commands on different
// sessions of one group freeze it at once; the first to end must leave
// the group marked for the other, or the core's report of the second
// command's own freeze is recorded beside the command's outcome, in no
// fixed order.
func TestRunningCountsOverlappingCommands(t *testing.T) {
	t.Parallel()
	e := New(Options{})
	e.groups["g"] = []string{"A", "B"}
	marked := func(action string) bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.own["g"][action] > 0
	}
	endA := e.running("g", "freeze")
	endB := e.running("g", "freeze")
	endThaw := e.running("g", "thaw")
	endA()
	endA() // ending twice must not unmark B's
	if !marked("freeze") {
		t.Fatal("the first freeze command to end unmarked the group while the second still runs")
	}
	endThaw()
	if !marked("freeze") || marked("thaw") {
		t.Fatal("ending the thaw changed the freeze mark, or left the thaw marked")
	}
	endB()
	if marked("freeze") {
		t.Fatal("the group stays marked after every command ended")
	}
	e.mu.Lock()
	left := len(e.own)
	e.mu.Unlock()
	if left != 0 {
		t.Fatalf("own keeps %d empty groups", left)
	}
}
