package workload_test

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/workload"
)

func TestNewLayoutErrors(t *testing.T) {
	t.Parallel()
	ok := makePairs(3, 3, 3)
	vol := func(serial hal.Serial, v hal.Volume) hal.VolumeRef { return hal.VolumeRef{Serial: serial, Volume: v} }
	a1, a2 := vol(primary(0), 0x1001), vol(primary(0), 0x1002)
	b1, b2 := vol(primary(1), 0x1001), vol(primary(1), 0x1002)
	x1, x2 := vol(secondary(0), 0x1001), vol(secondary(0), 0x1002)
	y1, y2 := vol(secondary(1), 0x1001), vol(secondary(1), 0x1002)
	pr := func(src, tgt hal.VolumeRef) hal.VolumePair { return hal.VolumePair{Source: src, Target: tgt} }
	// On 32-bit platforms int cannot exceed 2^32; -1 stands in there.
	tooMany, tooManyErr := -1, "need at least 1"
	if strconv.IntSize == 64 {
		tooMany, tooManyErr = int(uint64(1)<<32+1), "4294967297 chains, at most 4294967296 fit in 32-bit block numbers"
	}

	tests := []struct {
		name   string
		pairs  []hal.VolumePair
		chains int
		n      int
		want   string
	}{
		{name: "no chains", pairs: ok, chains: 0, n: 3, want: "0 chains, need at least 1"},
		{name: "negative chains", pairs: ok, chains: -1, n: 3, want: "need at least 1"},
		{name: "chains beyond uint32", pairs: ok, chains: tooMany, n: 3, want: tooManyErr},
		{name: "one volume per chain", pairs: ok, chains: 1, n: 1, want: "1 volumes per chain, need at least 2"},
		{name: "zero volumes per chain", pairs: ok, chains: 1, n: 0, want: "need at least 2"},
		{name: "no pairs", pairs: nil, chains: 1, n: 2, want: "on 0 storage system(s)"},
		{name: "one storage system", pairs: makePairs(5), chains: 1, n: 2, want: "on 1 storage system(s)"},
		{name: "more volumes than pairs", pairs: makePairs(2, 2), chains: 1, n: 5, want: "5 volumes per chain but only 4 pairs"},
		{name: "odd chain over two systems", pairs: makePairs(4, 4), chains: 1, n: 3, want: "one system must hold 2 volumes of a chain, at most 1"},
		{name: "one system dominates", pairs: makePairs(3, 1, 1), chains: 1, n: 5, want: "one system must hold 3 volumes of a chain, at most 2"},
		{name: "small systems cannot balance", pairs: makePairs(6, 1), chains: 1, n: 4, want: "must hold 3"},
		{name: "duplicate pair", pairs: []hal.VolumePair{pr(a1, x1), pr(b1, y1), pr(a1, x1)}, chains: 1, n: 2, want: "duplicate pair"},
		{name: "source in two pairs", pairs: []hal.VolumePair{pr(a1, x1), pr(b1, y1), pr(a1, x2)}, chains: 1, n: 2, want: "is the source of two pairs"},
		{name: "target in two pairs", pairs: []hal.VolumePair{pr(a1, x1), pr(b1, y1), pr(a2, x1)}, chains: 1, n: 2, want: "is the target of two pairs"},
		{name: "source is a target", pairs: []hal.VolumePair{pr(a1, x1), pr(b1, y1), pr(x1, y2)}, chains: 1, n: 2, want: "is both a source"},
		{name: "self mirror", pairs: []hal.VolumePair{pr(a1, a1), pr(b1, y1)}, chains: 1, n: 2, want: "mirrors a volume to itself"},
		{name: "empty source serial", pairs: []hal.VolumePair{pr(vol("", 0x1001), x1), pr(b1, y1)}, chains: 1, n: 2, want: "empty serial"},
		{name: "empty target serial", pairs: []hal.VolumePair{pr(a1, vol("", 0x1001)), pr(b2, y1)}, chains: 1, n: 2, want: "empty serial"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := workload.NewLayout(tt.pairs, tt.chains, tt.n)
			if err == nil {
				t.Fatalf("NewLayout succeeded with %d chains, want error %q", l.Chains(), tt.want)
			}
			if !errors.Is(err, workload.ErrBadLayout) {
				t.Errorf("error %v is not ErrBadLayout", err)
			}
			if !strings.HasPrefix(err.Error(), "workload: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// checkLayout asserts every property the oracle relies on, and that the
// layout spreads chains over the volumes it was given.
func checkLayout(t *testing.T, l *workload.Layout, pairs []hal.VolumePair, chains, n int) {
	t.Helper()
	if l.Chains() != chains {
		t.Fatalf("Chains() = %d, want %d", l.Chains(), chains)
	}
	given := make(map[hal.VolumePair]bool)
	for _, p := range pairs {
		given[p] = true
	}
	uses := make(map[hal.VolumePair]int)
	var sources, targets []hal.VolumeRef
	for c := range chains {
		chain := l.Chain(c)
		if len(chain) != n {
			t.Fatalf("chain %d has %d volumes, want %d", c, len(chain), n)
		}
		seen := make(map[hal.VolumeRef]bool)
		for i, p := range chain {
			if !given[p] {
				t.Fatalf("chain %d uses pair %v that was not given", c, p)
			}
			if seen[p.Source] {
				t.Fatalf("chain %d uses %v twice: %v", c, p.Source, chain)
			}
			seen[p.Source] = true
			next := chain[(i+1)%n]
			if p.Source.Serial == next.Source.Serial {
				t.Fatalf("chain %d: cyclic neighbours %d and %d both on %s: %v", c, i, (i+1)%n, p.Source.Serial, chain)
			}
			uses[p]++
			sources = append(sources, p.Source)
			targets = append(targets, p.Target)
		}
	}
	cmp := func(a, b hal.VolumeRef) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(sources, cmp)
	slices.SortFunc(targets, cmp)
	if d := diff(slices.Compact(sources), l.Sources()); d != "" {
		t.Errorf("Sources() mismatch (-want +got):\n%s", d)
	}
	if d := diff(slices.Compact(targets), l.Targets()); d != "" {
		t.Errorf("Targets() mismatch (-want +got):\n%s", d)
	}
	// Within one system, chains take its volumes in turn: use counts differ
	// by at most one.
	bySystem := make(map[hal.Serial][]int)
	for _, p := range pairs {
		bySystem[p.Source.Serial] = append(bySystem[p.Source.Serial], uses[p])
	}
	for serial, counts := range bySystem {
		if slices.Max(counts)-slices.Min(counts) > 1 {
			t.Errorf("volumes of %s used %v times: not spread evenly", serial, counts)
		}
	}
}

func TestNewLayoutShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		perSystem []int
		chains, n int
	}{
		{name: "two systems pairs", perSystem: []int{1, 1}, chains: 1, n: 2},
		{name: "two systems many chains", perSystem: []int{3, 3}, chains: 10, n: 2},
		{name: "two systems four volumes", perSystem: []int{2, 2}, chains: 7, n: 4},
		{name: "three systems odd", perSystem: []int{2, 2, 2}, chains: 9, n: 3},
		{name: "three systems five", perSystem: []int{2, 2, 1}, chains: 4, n: 5},
		{name: "four primaries", perSystem: []int{8, 8, 8, 8}, chains: 100, n: 4},
		{name: "four primaries seven", perSystem: []int{4, 4, 4, 4}, chains: 33, n: 7},
		{name: "uneven systems", perSystem: []int{6, 3, 2, 1}, chains: 25, n: 6},
		{name: "exactly half on one", perSystem: []int{3, 1, 1, 1}, chains: 5, n: 6},
		{name: "many small systems", perSystem: []int{1, 1, 1, 1, 1, 1, 1}, chains: 20, n: 7},
		{name: "long chain", perSystem: []int{8, 8}, chains: 3, n: 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pairs := makePairs(tt.perSystem...)
			l := mustLayout(t, pairs, tt.chains, tt.n)
			checkLayout(t, l, pairs, tt.chains, tt.n)
		})
	}
}

// cycleExists searches all cyclic orders of n volumes drawn from systems
// with the given numbers of pairs for one where neighbours differ: the
// ground truth for whether NewLayout must succeed.
func cycleExists(caps []int, n int) bool {
	left := slices.Clone(caps)
	seq := make([]int, 0, n)
	var walk func() bool
	walk = func() bool {
		if len(seq) == n {
			return seq[0] != seq[n-1]
		}
		for s := range left {
			if left[s] == 0 || (len(seq) > 0 && seq[len(seq)-1] == s) {
				continue
			}
			left[s]--
			seq = append(seq, s)
			if walk() {
				return true
			}
			seq = seq[:len(seq)-1]
			left[s]++
		}
		return false
	}
	return walk()
}

func TestNewLayoutFeasibility(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	for iter := range 600 {
		caps := make([]int, 1+rng.IntN(4))
		for s := range caps {
			caps[s] = 1 + rng.IntN(4)
		}
		n := 2 + rng.IntN(7)
		chains := 1 + rng.IntN(12)
		pairs := makePairs(caps...)
		l, err := workload.NewLayout(pairs, chains, n)
		if want := cycleExists(caps, n); (err == nil) != want {
			t.Fatalf("iteration %d: NewLayout(systems %v, n %d) error %v, but a valid cycle exists: %v", iter, caps, n, err, want)
		}
		if err == nil {
			checkLayout(t, l, pairs, chains, n)
		}
	}
}

func TestNewLayoutDeterministic(t *testing.T) {
	t.Parallel()
	pairs := makePairs(5, 4, 3, 6)
	want := mustLayout(t, pairs, 40, 5)
	rng := rand.New(rand.NewPCG(3, 5))
	for range 20 {
		shuffled := slices.Clone(pairs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := mustLayout(t, shuffled, 40, 5)
		for c := range 40 {
			if d := diff(want.Chain(c), got.Chain(c)); d != "" {
				t.Fatalf("chain %d depends on input order (-want +got):\n%s", c, d)
			}
		}
	}
}

func TestLayoutAccessorsCopy(t *testing.T) {
	t.Parallel()
	l := mustLayout(t, makePairs(2, 2), 3, 2)
	if got := l.Chain(-1); got != nil {
		t.Errorf("Chain(-1) = %v, want nil", got)
	}
	if got := l.Chain(3); got != nil {
		t.Errorf("Chain(3) = %v, want nil", got)
	}
	chain := l.Chain(0)
	want := slices.Clone(chain)
	chain[0] = hal.VolumePair{}
	if d := diff(want, l.Chain(0)); d != "" {
		t.Errorf("modifying Chain's result changed the layout (-want +got):\n%s", d)
	}
	targets := l.Targets()
	targets[0] = hal.VolumeRef{}
	if l.Targets()[0] == (hal.VolumeRef{}) {
		t.Error("modifying Targets' result changed the layout")
	}
}
