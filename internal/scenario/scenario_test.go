package scenario

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestScenarios: the verdicts each scenario must reach (doc.go), in virtual time.
func TestScenarios(t *testing.T) {
	for _, tc := range []struct {
		name       string
		heartbeat  bool
		consistent bool
		check      func(t *testing.T, r *Result)
	}{
		{"S1", false, false, func(t *testing.T, r *Result) {
			// The manager cannot see the primary: the README's sentence.
			timeline := strings.Join(r.Timeline, "\n")
			if !strings.Contains(timeline, "session Warning") || !strings.Contains(timeline, "session Severe, not recoverable") {
				t.Error("the core did not report the primary out of contact, then out of contact past the lowest CG timeout")
			}
		}},
		{"S1", true, true, nil},
		{"S2", false, false, func(t *testing.T, r *Result) {
			if r.Recoverable {
				t.Error("Recoverable said yes with a primary that may still mirror")
			}
		}},
		{"S2", true, true, func(t *testing.T, r *Result) {
			if !r.Recoverable {
				t.Error("not Recoverable although the silent primary is certainly frozen after H")
			}
		}},
		{"S3", false, true, func(t *testing.T, r *Result) {
			if len(r.SelfFrozen) != 0 || r.Mirroring != 64 {
				t.Errorf("heartbeat off: %d self-frozen, %d pairs mirroring; want 0 and 64", len(r.SelfFrozen), r.Mirroring)
			}
		}},
		{"S3", true, true, func(t *testing.T, r *Result) {
			if len(r.SelfFrozen) != 4 || r.Mirroring != 0 {
				t.Errorf("heartbeat on: self-frozen %v, %d pairs mirroring; want all 4 primaries and 0", r.SelfFrozen, r.Mirroring)
			}
		}},
		{"S6", false, true, nil},
		{"S6", true, true, nil},
	} {
		hb := map[bool]string{false: "heartbeat off", true: "heartbeat on"}[tc.heartbeat]
		t.Run(tc.name+" "+hb, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, err := Run(context.Background(), tc.name, Options{Heartbeat: tc.heartbeat, Think: 200 * time.Millisecond})
				if err != nil {
					t.Fatal(err)
				}
				timeline := strings.Join(r.Timeline, "\n")
				if r.Consistent() != tc.consistent {
					t.Fatalf("consistent = %v, want %v: %s\n%s", r.Consistent(), tc.consistent, r.Report, timeline)
				}
				if r.Recoverable && !r.Consistent() {
					t.Fatalf("Recoverable said yes for an inconsistent image\n%s", timeline)
				}
				if r.Writes < 1000 {
					t.Fatalf("only %d writes", r.Writes)
				}
				if tc.check != nil {
					tc.check(t, r)
				}
				if t.Failed() {
					t.Log(timeline)
				}
			})
		})
	}
}
