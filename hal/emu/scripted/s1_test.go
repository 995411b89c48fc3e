package scripted

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestS1 runs the scenario in a synctest bubble: the real clock there is
// virtual and advances only when every goroutine waits, so two minutes of
// storage timers pass in milliseconds, deterministically.
func TestS1(t *testing.T) {
	for _, tc := range []struct {
		name       string
		heartbeat  bool
		consistent bool
	}{
		{"heartbeat off: inconsistent", false, false},
		{"heartbeat on: consistent", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				res, err := RunS1(context.Background(), Options{Heartbeat: tc.heartbeat, Think: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				timeline := strings.Join(res.Timeline, "\n")
				if res.Report.Consistent != tc.consistent {
					t.Fatalf("consistent = %v, want %v: %s\n%s", res.Report.Consistent, tc.consistent, res.Report, timeline)
				}
				if res.Writes < 1000 {
					t.Fatalf("only %d writes: the workload did not run", res.Writes)
				}
				froze := strings.Contains(timeline, "freezing every primary")
				if froze != tc.heartbeat {
					t.Fatalf("controller froze = %v, want %v\n%s", froze, tc.heartbeat, timeline)
				}
				if !tc.consistent && res.Report.First == nil {
					t.Fatal("inconsistent without a first violation")
				}
			})
		})
	}
}
