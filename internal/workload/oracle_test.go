package workload_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/workload"
)

func TestCheckTable(t *testing.T) {
	t.Parallel()
	// Two chains of four volumes over two systems. Slots are given by chain
	// index, so the cases do not depend on which volume the layout chose.
	l := mustLayout(t, makePairs(2, 2), 2, 4)
	rec := workload.EncodePayload
	chain0ok := [4][]byte{rec(0, 5), rec(0, 6), rec(0, 3), rec(0, 4)} // prefix 6

	type want struct {
		chain                   int
		kind                    workload.ViolationKind
		missing, present, found uint64
		missingIdx, presentIdx  int // chain indices; -1: zero VolumeRef
		detail                  string
	}
	tests := []struct {
		name         string
		slots        [2][4][]byte
		prefix       []uint64
		inconsistent int
		first        *want
	}{
		{name: "nothing written", prefix: []uint64{0, 0}},
		{name: "first write", slots: [2][4][]byte{1: {rec(1, 1), nil, nil, nil}}, prefix: []uint64{0, 1}},
		{name: "within first round", slots: [2][4][]byte{chain0ok, {rec(1, 1), rec(1, 2), rec(1, 3), nil}}, prefix: []uint64{6, 3}},
		{name: "many rounds", slots: [2][4][]byte{chain0ok, {rec(1, 9), rec(1, 10), rec(1, 7), rec(1, 8)}}, prefix: []uint64{6, 10}},
		{
			name:   "hole in first round",
			slots:  [2][4][]byte{chain0ok, {rec(1, 1), nil, rec(1, 3), nil}},
			prefix: []uint64{6, 3}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindGap, missing: 2, present: 3, found: 0, missingIdx: 1, presentIdx: 2, detail: "was never written"},
		},
		{
			name:   "later write without the first",
			slots:  [2][4][]byte{chain0ok, {nil, rec(1, 2), nil, nil}},
			prefix: []uint64{6, 2}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindGap, missing: 1, present: 2, missingIdx: 0, presentIdx: 1, detail: "was never written"},
		},
		{
			name:   "stale slot",
			slots:  [2][4][]byte{chain0ok, {rec(1, 9), rec(1, 10), rec(1, 3), rec(1, 8)}},
			prefix: []uint64{6, 10}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindGap, missing: 7, present: 10, found: 3, missingIdx: 2, presentIdx: 1, detail: "holds write 3"},
		},
		{
			name:   "smallest missing seq first",
			slots:  [2][4][]byte{chain0ok, {rec(1, 9), rec(1, 10), rec(1, 3), rec(1, 4)}},
			prefix: []uint64{6, 10}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindGap, missing: 7, present: 10, found: 3, missingIdx: 2, presentIdx: 1, detail: "holds write 3"},
		},
		{
			name:   "smallest missing seq before lowest index",
			slots:  [2][4][]byte{chain0ok, {rec(1, 5), rec(1, 10), rec(1, 3), rec(1, 8)}},
			prefix: []uint64{6, 10}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindGap, missing: 7, present: 10, found: 3, missingIdx: 2, presentIdx: 1, detail: "holds write 3"},
		},
		{
			name:   "lowest chain first",
			slots:  [2][4][]byte{{rec(0, 5), nil, rec(0, 3), rec(0, 4)}, {nil, rec(1, 2), nil, nil}},
			prefix: []uint64{5, 2}, inconsistent: 2,
			first: &want{chain: 0, kind: workload.KindGap, missing: 2, present: 5, found: 0, missingIdx: 1, presentIdx: 0, detail: "was never written"},
		},
		{
			name:   "corrupt block",
			slots:  [2][4][]byte{chain0ok, {rec(1, 5), []byte("garbage"), rec(1, 3), rec(1, 4)}},
			prefix: []uint64{6, 5}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindCorrupt, missing: 2, present: 5, missingIdx: 1, presentIdx: 0, detail: "wrong length"},
		},
		{
			name:   "empty block",
			slots:  [2][4][]byte{chain0ok, {rec(1, 1), []byte{}, nil, nil}},
			prefix: []uint64{6, 1}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindCorrupt, missing: 0, present: 1, missingIdx: 1, presentIdx: 0, detail: "0 bytes"},
		},
		{
			name:   "garbage where nothing was written",
			slots:  [2][4][]byte{chain0ok, {nil, nil, nil, make([]byte, workload.PayloadSize)}},
			prefix: []uint64{6, 0}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindCorrupt, missing: 0, present: 0, missingIdx: 3, presentIdx: -1, detail: "not a workload record"},
		},
		{
			name:   "record of another chain",
			slots:  [2][4][]byte{chain0ok, {rec(1, 5), rec(1, 6), rec(0, 3), rec(1, 4)}},
			prefix: []uint64{6, 6}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindForeign, missing: 3, present: 6, found: 3, missingIdx: 2, presentIdx: 1, detail: "holds write 3 of chain 0"},
		},
		{
			name:   "write on the wrong volume",
			slots:  [2][4][]byte{chain0ok, {rec(1, 5), rec(1, 6), rec(1, 4), rec(1, 4)}},
			prefix: []uint64{6, 6}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindMisplaced, missing: 3, present: 6, found: 4, missingIdx: 2, presentIdx: 1, detail: "holds write 4, which belongs on"},
		},
		{
			name:   "misplaced beyond the highest write",
			slots:  [2][4][]byte{chain0ok, {rec(1, 1), rec(1, 3), nil, nil}},
			prefix: []uint64{6, 1}, inconsistent: 1,
			first: &want{chain: 1, kind: workload.KindMisplaced, missing: 0, present: 1, found: 3, missingIdx: 1, presentIdx: 0, detail: "holds write 3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := &workload.Image{}
			for c := range tt.slots {
				for i, data := range tt.slots[c] {
					img.Set(l.Chain(c)[i].Target, uint32(c), data)
				}
			}
			got := workload.Check(l, img)
			want := workload.Report{
				Consistent:   tt.first == nil,
				Chains:       2,
				Checked:      8,
				Inconsistent: tt.inconsistent,
				Prefix:       tt.prefix,
			}
			if w := tt.first; w != nil {
				chain := l.Chain(w.chain)
				want.First = &workload.Violation{
					Chain: w.chain, Kind: w.kind,
					MissingSeq: w.missing, PresentSeq: w.present, FoundSeq: w.found,
					MissingVolume: chain[w.missingIdx].Target,
				}
				if w.presentIdx >= 0 {
					want.First.PresentVolume = chain[w.presentIdx].Target
				}
				if got.First == nil || !strings.Contains(got.First.Detail, w.detail) {
					t.Errorf("Detail %q, want it to contain %q", detailOf(got.First), w.detail)
				}
				if got.First != nil {
					want.First.Detail = got.First.Detail
				}
			}
			if d := diff(want, got); d != "" {
				t.Errorf("Check mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func detailOf(v *workload.Violation) string {
	if v == nil {
		return "<no violation>"
	}
	return v.Detail
}

func TestReportString(t *testing.T) {
	t.Parallel()
	vol := func(s string, v hal.Volume) hal.VolumeRef { return hal.VolumeRef{Serial: hal.Serial(s), Volume: v} }
	pairs := []hal.VolumePair{
		{Source: vol("LAB.2107-75H0005", 0x1103), Target: vol("LAB.2107-75P0006", 0x1103)},
		{Source: vol("LAB.2107-75H0006", 0x1001), Target: vol("LAB.2107-75P0005", 0x1001)},
	}
	l := mustLayout(t, pairs, 18, 2)
	chain := l.Chain(17)
	if chain[0].Target.Volume != 0x1001 {
		t.Fatalf("chain 17 is %v; the test expects LAB.2107-75P0005/1001 first", chain)
	}
	img := &workload.Image{}
	img.Set(chain[0].Target, 17, workload.EncodePayload(17, 4209))
	img.Set(chain[1].Target, 17, workload.EncodePayload(17, 4212))

	tests := []struct {
		name string
		img  *workload.Image
		want string
	}{
		{
			name: "gap",
			img:  img,
			want: "inconsistent: chain 17 has write 4212 on LAB.2107-75P0006/1103 but not write 4211, which belongs on LAB.2107-75P0005/1001 (that block holds write 4209 instead); 1 of 18 chains inconsistent",
		},
		{
			name: "never written",
			img: func() *workload.Image {
				img := &workload.Image{}
				img.Set(chain[1].Target, 17, workload.EncodePayload(17, 2))
				return img
			}(),
			want: "inconsistent: chain 17 has write 2 on LAB.2107-75P0006/1103 but not write 1, which belongs on LAB.2107-75P0005/1001 (that block was never written); 1 of 18 chains inconsistent",
		},
		{
			name: "corrupt",
			img: func() *workload.Image {
				img := &workload.Image{}
				img.Set(chain[0].Target, 17, []byte("junk"))
				return img
			}(),
			want: "inconsistent: chain 17: block 17 of LAB.2107-75P0005/1001 is not a valid workload record: workload: payload has the wrong length: 4 bytes, want 24; it should be empty; 1 of 18 chains inconsistent",
		},
		{
			name: "foreign",
			img: func() *workload.Image {
				img := &workload.Image{}
				img.Set(chain[0].Target, 17, workload.EncodePayload(16, 3))
				img.Set(chain[1].Target, 17, workload.EncodePayload(17, 2))
				return img
			}(),
			want: "inconsistent: chain 17: block 17 of LAB.2107-75P0005/1001 holds write 3 of chain 16; it should hold write 1; 1 of 18 chains inconsistent",
		},
		{
			name: "consistent",
			img:  &workload.Image{},
			want: "consistent: each of 18 chains holds a prefix of its writes (36 blocks checked)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := workload.Check(l, tt.img).String(); got != tt.want {
				t.Errorf("Report.String() mismatch (-want +got):\n-%s\n+%s", tt.want, got)
			}
		})
	}
}

func TestReportJSON(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(2, 2), 2, 2)
	img := &workload.Image{}
	img.Set(l.Chain(1)[1].Target, 1, workload.EncodePayload(1, 2))
	r := workload.Check(l, img)
	if r.Consistent || r.First == nil {
		t.Fatalf("want an inconsistent report, got %v", r)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{
		`"consistent":false`, `"inconsistent_chains":1`, `"prefix":[0,2]`, `"kind":"gap"`,
		`"missing_seq":1`, fmt.Sprintf(`"missing_volume":"%v"`, l.Chain(1)[0].Target),
	} {
		if !strings.Contains(string(b), field) {
			t.Errorf("JSON %s lacks %s", b, field)
		}
	}
	var back workload.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if d := diff(r, back); d != "" {
		t.Errorf("JSON round trip mismatch (-want +got):\n%s", d)
	}
}

// randomShape picks a layout that NewLayout accepts.
func randomShape(t *testing.T, rng *rand.Rand) *workload.Layout {
	t.Helper()
	for {
		caps := make([]int, 2+rng.IntN(4))
		for s := range caps {
			caps[s] = 1 + rng.IntN(5)
		}
		l, err := workload.NewLayout(makePairs(caps...), 1+rng.IntN(30), 2+rng.IntN(7))
		if err == nil {
			return l
		}
	}
}

// randomPrefix mostly picks short prefixes around the first rounds, where
// the edge cases are, and sometimes huge ones to exercise the arithmetic.
func randomPrefix(rng *rand.Rand, n int) uint64 {
	switch rng.IntN(10) {
	case 0:
		return 0
	case 1:
		return math.MaxUint64 - rng.Uint64N(uint64(2*n))
	case 2:
		return 1e12 + rng.Uint64N(1000)
	}
	return rng.Uint64N(uint64(4*n + 3))
}

// propertyCase is one random layout, its prefixes and their exact image.
type propertyCase struct {
	l      *workload.Layout
	prefix []uint64
	d      *disk
}

func newPropertyCase(t *testing.T, rng *rand.Rand) propertyCase {
	l := randomShape(t, rng)
	prefix := make([]uint64, l.Chains())
	for c := range prefix {
		prefix[c] = randomPrefix(rng, len(l.Chain(c)))
	}
	return propertyCase{l: l, prefix: prefix, d: prefixDisk(l, prefix)}
}

func (pc propertyCase) check(t *testing.T) workload.Report {
	t.Helper()
	img, err := workload.Capture(pc.d, pc.l)
	if err != nil {
		t.Fatal(err)
	}
	return workload.Check(pc.l, img)
}

// A chain with a write other than the highest: index i holds latestAt(P, i) >= 1.
func (pc propertyCase) gapCandidates(c int) []int {
	n := len(pc.l.Chain(c))
	p := pc.prefix[c]
	var out []int
	for i := range n {
		if p >= 2 && uint64(i) != (p-1)%uint64(n) && latestAt(p, n, i) >= 1 {
			out = append(out, i)
		}
	}
	return out
}

// older picks a write of index i before s (s-n, s-2n, ...) or 0 for an
// empty slot.
func older(rng *rand.Rand, s uint64, n int) uint64 {
	rounds := (s - 1) / uint64(n) // how many earlier writes index i has
	k := rng.Uint64N(min(rounds, 5) + 1)
	if k == 0 {
		return 0
	}
	return s - k*uint64(n)
}

func (pc propertyCase) set(c, i int, seq uint64) {
	vol := pc.l.Chain(c)[i].Target
	if seq == 0 {
		pc.d.erase(vol, uint32(c))
		return
	}
	pc.d.write(vol, uint32(c), workload.EncodePayload(uint32(c), seq))
}

func TestCheckPrefixProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 6))
	for iter := range 3000 {
		pc := newPropertyCase(t, rng)
		r := pc.check(t)
		if !r.Consistent || r.First != nil || r.Inconsistent != 0 {
			t.Fatalf("iteration %d: exact prefix image judged %v", iter, r)
		}
		if d := diff(pc.prefix, r.Prefix); d != "" {
			t.Fatalf("iteration %d: Prefix mismatch (-want +got):\n%s", iter, d)
		}
	}
}

func TestCheckGapProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 7))
	tested := 0
	for iter := 0; tested < 3000; iter++ {
		pc := newPropertyCase(t, rng)
		// Damage up to two slots in up to two chains.
		var damaged []int
		for c := range pc.l.Chains() {
			if len(pc.gapCandidates(c)) > 0 {
				damaged = append(damaged, c)
			}
		}
		if len(damaged) == 0 {
			continue
		}
		tested++
		rng.Shuffle(len(damaged), func(i, j int) { damaged[i], damaged[j] = damaged[j], damaged[i] })
		damaged = damaged[:min(len(damaged), 1+rng.IntN(2))]
		firstChain := slices.Min(damaged)
		var want workload.Violation
		for _, c := range damaged {
			chain := pc.l.Chain(c)
			n, p := len(chain), pc.prefix[c]
			cands := pc.gapCandidates(c)
			rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
			for _, i := range cands[:min(len(cands), 1+rng.IntN(2))] {
				s := latestAt(p, n, i)
				found := older(rng, s, n)
				pc.set(c, i, found)
				if c == firstChain && (want.MissingSeq == 0 || s < want.MissingSeq) {
					want = workload.Violation{
						Chain: c, Kind: workload.KindGap,
						MissingSeq: s, PresentSeq: p, FoundSeq: found,
						MissingVolume: chain[i].Target,
						PresentVolume: chain[(p-1)%uint64(n)].Target,
					}
				}
			}
		}
		r := pc.check(t)
		if r.Consistent || r.First == nil || r.Inconsistent != len(damaged) {
			t.Fatalf("iteration %d: damaged chains %v, report %v", iter, damaged, r)
		}
		want.Detail = r.First.Detail
		if d := diff(want, *r.First); d != "" {
			t.Fatalf("iteration %d: First mismatch (-want +got):\n%s", iter, d)
		}
		if d := diff(pc.prefix, r.Prefix); d != "" {
			t.Fatalf("iteration %d: Prefix mismatch (-want +got):\n%s", iter, d)
		}
	}
}

// Rolling back the highest write: by exactly one write it is the prefix
// P-1, which the oracle must accept; by more it is a gap below P-1.
func TestCheckRollbackOfHighestWrite(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 8))
	for iter := range 3000 {
		pc := newPropertyCase(t, rng)
		c := rng.IntN(pc.l.Chains())
		chain := pc.l.Chain(c)
		n, p := uint64(len(chain)), pc.prefix[c]
		if p < 2 {
			continue
		}
		top := int((p - 1) % n)
		found := older(rng, p, int(n))
		pc.set(c, top, found)
		r := pc.check(t)
		wantPrefix := slices.Clone(pc.prefix)
		wantPrefix[c] = p - 1
		if d := diff(wantPrefix, r.Prefix); d != "" {
			t.Fatalf("iteration %d: Prefix mismatch (-want +got):\n%s", iter, d)
		}
		if found == latestAt(p-1, int(n), top) {
			if !r.Consistent {
				t.Fatalf("iteration %d: image after prefix %d judged %v", iter, p-1, r)
			}
			continue
		}
		want := workload.Violation{
			Chain: c, Kind: workload.KindGap,
			MissingSeq: p - n, PresentSeq: p - 1, FoundSeq: found,
			MissingVolume: chain[top].Target,
			PresentVolume: chain[(p-2)%n].Target,
		}
		if r.Consistent || r.First == nil {
			t.Fatalf("iteration %d: rolled back %d to %d, judged %v", iter, p, found, r)
		}
		want.Detail = r.First.Detail
		if d := diff(want, *r.First); d != "" {
			t.Fatalf("iteration %d: First mismatch (-want +got):\n%s", iter, d)
		}
	}
}

func TestCheckCorruptionProperty(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(2026, 9))
	for iter := range 3000 {
		pc := newPropertyCase(t, rng)
		c := rng.IntN(pc.l.Chains())
		chain := pc.l.Chain(c)
		n, p := len(chain), pc.prefix[c]
		if p == 0 {
			continue
		}
		i := rng.IntN(int(min(p, uint64(n)))) // an index that holds a write
		s := latestAt(p, n, i)
		data := workload.EncodePayload(uint32(c), s)
		kind := workload.KindCorrupt
		switch rng.IntN(5) {
		case 0:
			bit := rng.IntN(8 * len(data))
			data[bit/8] ^= 1 << (bit % 8)
		case 1:
			data = data[:rng.IntN(len(data))]
		case 2:
			data = append(data, byte(rng.IntN(256)))
		case 3:
			other := uint32(c) + 1 + uint32(rng.IntN(math.MaxInt32))
			data, kind = workload.EncodePayload(other, s), workload.KindForeign
		case 4:
			// A write of another index of the chain, near s.
			shift := 1 + uint64(rng.IntN(n-1))
			wrong := s + shift
			if s > math.MaxUint64-uint64(n) {
				wrong = s - shift
			}
			data, kind = workload.EncodePayload(uint32(c), wrong), workload.KindMisplaced
		}
		pc.d.write(chain[i].Target, uint32(c), data)

		// Without the damaged block the highest write may drop; the
		// damaged slot should then hold what the lower prefix leaves there.
		rest := uint64(0)
		for j := range n {
			if j != i {
				rest = max(rest, latestAt(p, n, j))
			}
		}
		r := pc.check(t)
		if r.Consistent || r.First == nil {
			t.Fatalf("iteration %d: damaged block judged %v", iter, r)
		}
		got := *r.First
		if got.Chain != c || got.Kind != kind || got.MissingVolume != chain[i].Target || got.MissingSeq != latestAt(rest, n, i) || got.PresentSeq != rest {
			t.Fatalf("iteration %d: want chain %d %s on %v missing %d present %d, got %+v", iter, c, kind, chain[i].Target, latestAt(rest, n, i), rest, got)
		}
	}
}

// benchCheck builds a workload of chains chains over 8 systems, each at a
// random prefix.
func benchCheck(b *testing.B, chains int) {
	l := mustLayout(b, makePairs(32, 32, 32, 32, 32, 32, 32, 32), chains, 4)
	rng := rand.New(rand.NewPCG(1, 1))
	prefix := make([]uint64, chains)
	for c := range prefix {
		prefix[c] = 1 + rng.Uint64N(100000)
	}
	img, err := workload.Capture(prefixDisk(l, prefix), l)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := workload.Check(l, img); !r.Consistent {
			b.Fatal(r)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(chains), "ns/chain")
}

func BenchmarkCheck(b *testing.B) {
	for _, chains := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("chains=%d", chains), func(b *testing.B) { benchCheck(b, chains) })
	}
}
