package workload_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/internal/workload"
)

// TestCheckAckedTable: the lost-write rule, chain by chain, against
// images of known prefixes.
func TestCheckAckedTable(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(2, 2), 3, 4)
	tests := []struct {
		name       string
		prefix     []uint64
		acked      []uint64
		lost       int
		firstChain int
		missing    uint64
	}{
		{name: "nothing written, nothing acked", prefix: []uint64{0, 0, 0}, acked: []uint64{0, 0, 0}},
		{name: "image equals acked", prefix: []uint64{5, 9, 1}, acked: []uint64{5, 9, 1}},
		{name: "image ahead of acked (in flight when stopped)", prefix: []uint64{6, 10, 2}, acked: []uint64{5, 9, 1}},
		{name: "last acked write missing", prefix: []uint64{5, 8, 1}, acked: []uint64{5, 9, 1}, lost: 1, firstChain: 1, missing: 9},
		{name: "several chains short", prefix: []uint64{2, 8, 0}, acked: []uint64{5, 9, 1}, lost: 3, firstChain: 0, missing: 3},
		{name: "chain with nothing on H2", prefix: []uint64{5, 9, 0}, acked: []uint64{5, 9, 4}, lost: 1, firstChain: 2, missing: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, err := workload.Capture(prefixDisk(l, tt.prefix), l)
			if err != nil {
				t.Fatal(err)
			}
			r, err := workload.CheckAcked(l, img, tt.acked)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Consistent || !r.AckedChecked || r.Lost != tt.lost || r.Sound() != (tt.lost == 0) {
				t.Fatalf("report %+v, want consistent, %d lost", r, tt.lost)
			}
			if tt.lost == 0 {
				if r.FirstLost != nil || !strings.Contains(r.String(), "no acknowledged write lost") {
					t.Fatalf("report %s, first lost %+v", r, r.FirstLost)
				}
				return
			}
			f := r.FirstLost
			c := l.Chain(tt.firstChain)
			wantVol := c[(tt.missing-1)%uint64(len(c))].Target
			if f == nil || f.Chain != tt.firstChain || f.Missing != tt.missing || f.Acked != tt.acked[tt.firstChain] ||
				f.Prefix != tt.prefix[tt.firstChain] || f.Volume != wantVol {
				t.Fatalf("first lost %+v, want chain %d missing %d on %v", f, tt.firstChain, tt.missing, wantVol)
			}
			s := r.String()
			if !strings.Contains(s, "ACKNOWLEDGED WRITES LOST") || !strings.Contains(s, wantVol.String()) {
				t.Fatalf("report says %q", s)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var back workload.Report
			if err := json.Unmarshal(b, &back); err != nil || back.Lost != r.Lost || *back.FirstLost != *r.FirstLost {
				t.Fatalf("json round trip: %s -> %+v, %v", b, back, err)
			}
		})
	}
	img, _ := workload.Capture(prefixDisk(l, []uint64{1, 1, 1}), l)
	if _, err := workload.CheckAcked(l, img, []uint64{1}); err == nil {
		t.Fatal("acked of the wrong length accepted")
	}
}

// TestCheckAckedInconsistentChain: a chain that is not a prefix is
// reported by the prefix rule; its lost-write verdict uses the highest
// write found, so a missing last write is still named.
func TestCheckAckedInconsistentChain(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(2, 2), 1, 4)
	d := prefixDisk(l, []uint64{3})
	c := l.Chain(0)
	d.erase(c[0].Target, 0) // write 1 gone, 2 and 3 present
	img, err := workload.Capture(d, l)
	if err != nil {
		t.Fatal(err)
	}
	r, err := workload.CheckAcked(l, img, []uint64{4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Consistent || r.Lost != 1 || r.FirstLost.Missing != 4 || r.Sound() {
		t.Fatalf("report %+v", r)
	}
}
