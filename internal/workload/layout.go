package workload

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lockstep-io/lockstep/hal"
)

// ErrBadLayout reports a layout that cannot be built from the given pairs
// and shape.
var ErrBadLayout = errors.New("workload: bad layout")

// maxChains is the number of chains whose index fits a 32-bit block number.
const maxChains = 1 << 32

// Layout places K chains of dependent writes on volume pairs. Chain c has
// an ordered list of n >= 2 pairs; write seq of chain c goes to block c of
// the Source of pair (seq-1) mod n, and the oracle reads block c of the
// Targets. Cyclic neighbours in a chain's list (including the last and the
// first) have sources on different storage systems, so every two
// consecutive writes of a chain cross storage systems.
//
// A Layout is immutable and safe for concurrent use.
type Layout struct {
	chains  [][]hal.VolumePair
	sources []hal.VolumeRef
	targets []hal.VolumeRef
}

// system is one storage system's pairs, sorted, as the layout draws from
// them.
type system struct {
	serial hal.Serial
	pairs  []hal.VolumePair
}

// NewLayout builds chains chains of volumesPerChain pairs each from pairs.
// The result depends only on the set of pairs, not on their order: the
// workload and the oracle can build the same layout independently.
//
// Chains are spread over storage systems (grouped by Source.Serial): chain
// c deals its volumes round-robin over the systems starting at system c mod
// S, and each system hands out its pairs in turn across chains, so the
// writes spread evenly over systems and volumes. Volumes within one chain
// are distinct; different chains may share volumes, each using its own
// block.
func NewLayout(pairs []hal.VolumePair, chains, volumesPerChain int) (*Layout, error) {
	n := volumesPerChain
	switch {
	case chains < 1:
		return nil, fmt.Errorf("%w: %d chains, need at least 1", ErrBadLayout, chains)
	case uint64(chains) > maxChains:
		return nil, fmt.Errorf("%w: %d chains, at most %d fit in 32-bit block numbers", ErrBadLayout, chains, uint64(maxChains))
	case n < 2:
		return nil, fmt.Errorf("%w: %d volumes per chain, need at least 2 so that consecutive writes cross storage systems", ErrBadLayout, n)
	}
	sorted, err := validPairs(pairs)
	if err != nil {
		return nil, err
	}
	systems := groupBySource(sorted)
	if len(systems) < 2 {
		return nil, fmt.Errorf("%w: sources of the %d pairs are on %d storage system(s), consecutive writes need at least 2", ErrBadLayout, len(sorted), len(systems))
	}
	if len(sorted) < n {
		return nil, fmt.Errorf("%w: %d volumes per chain but only %d pairs", ErrBadLayout, n, len(sorted))
	}
	caps := make([]int, len(systems))
	for s, sys := range systems {
		caps[s] = len(sys.pairs)
	}
	// The largest share of a chain that one system must take does not
	// depend on where the dealing starts. A cycle of n places can keep k
	// equal items apart only if k <= n/2.
	if top := slices.Max(deal(caps, n, 0)); top > n/2 {
		return nil, fmt.Errorf("%w: cannot place %d volumes per chain so that cyclic neighbours are on different storage systems: sources are on %s, so one system must hold %d volumes of a chain, at most %d can be kept apart",
			ErrBadLayout, n, describeSystems(systems), top, n/2)
	}

	l := &Layout{chains: make([][]hal.VolumePair, chains)}
	cursor := make([]int, len(systems))
	for c := range l.chains {
		chain := buildChain(systems, caps, cursor, c, n)
		// The construction guarantees this; checking it costs little and
		// a layout that broke it would make every oracle verdict void.
		if err := checkChain(chain); err != nil {
			return nil, fmt.Errorf("workload: internal error building chain %d: %w", c, err)
		}
		l.chains[c] = chain
	}
	l.sources, l.targets = usedVolumes(l.chains)
	return l, nil
}

// validPairs returns the pairs sorted, or an error if they cannot form a
// workload: every block the host writes must be mirrored to exactly one
// target, and no target may be written by the host.
func validPairs(pairs []hal.VolumePair) ([]hal.VolumePair, error) {
	sorted := slices.Clone(pairs)
	slices.SortFunc(sorted, comparePairs)
	sources := make(map[hal.VolumeRef]bool, len(sorted))
	targets := make(map[hal.VolumeRef]bool, len(sorted))
	for i, p := range sorted {
		switch {
		case p.Source.Serial == "" || p.Target.Serial == "":
			return nil, fmt.Errorf("%w: pair %v has an empty serial", ErrBadLayout, p)
		case p.Source == p.Target:
			return nil, fmt.Errorf("%w: pair %v mirrors a volume to itself", ErrBadLayout, p)
		case i > 0 && sorted[i-1] == p:
			return nil, fmt.Errorf("%w: duplicate pair %v", ErrBadLayout, p)
		case sources[p.Source]:
			return nil, fmt.Errorf("%w: volume %v is the source of two pairs", ErrBadLayout, p.Source)
		case targets[p.Target]:
			return nil, fmt.Errorf("%w: volume %v is the target of two pairs", ErrBadLayout, p.Target)
		}
		sources[p.Source] = true
		targets[p.Target] = true
	}
	for _, p := range sorted {
		if targets[p.Source] {
			return nil, fmt.Errorf("%w: volume %v is both a source (written by the host) and a target (read by the oracle)", ErrBadLayout, p.Source)
		}
	}
	return sorted, nil
}

// groupBySource splits sorted pairs by source storage system, in serial
// order.
func groupBySource(sorted []hal.VolumePair) []system {
	var systems []system
	for _, p := range sorted {
		if len(systems) == 0 || systems[len(systems)-1].serial != p.Source.Serial {
			systems = append(systems, system{serial: p.Source.Serial})
		}
		last := &systems[len(systems)-1]
		last.pairs = append(last.pairs, p)
	}
	return systems
}

// deal shares n volumes among systems round-robin from system start, no
// system giving more than it has (caps). Round-robin keeps the largest
// share as small as the capacities allow. The caller ensures sum(caps) >= n.
func deal(caps []int, n, start int) []int {
	counts := make([]int, len(caps))
	for dealt := 0; dealt < n; {
		for j := range caps {
			s := (start + j) % len(caps)
			if dealt < n && counts[s] < caps[s] {
				counts[s]++
				dealt++
			}
		}
	}
	return counts
}

// buildChain picks chain c's n pairs and orders them so that no two cyclic
// neighbours share a source system. cursor holds, per system, the next pair
// to hand out; buildChain advances it.
//
// Ordering: list the picked pairs grouped by system, largest group first,
// then place that list on the even positions 0, 2, 4, ... and then on the
// odd positions 1, 3, .... Two cyclic neighbours are then ceil(n/2),
// ceil(n/2)-1 or n-1 apart in the list. A group has at most n/2 members
// (NewLayout checked), so it spans at most n/2-1 list places: it can hold
// two neighbours only when n is even, the group has exactly n/2 members and
// starts at a list place >= 1 and < n/2, which largest-first rules out.
func buildChain(systems []system, caps, cursor []int, c, n int) []hal.VolumePair {
	start := c % len(systems)
	counts := deal(caps, n, start)
	order := make([]int, 0, len(systems))
	for j := range systems {
		if s := (start + j) % len(systems); counts[s] > 0 {
			order = append(order, s)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(counts[b], counts[a]) })

	list := make([]hal.VolumePair, 0, n)
	for _, s := range order {
		pairs := systems[s].pairs
		for k := range counts[s] {
			list = append(list, pairs[(cursor[s]+k)%len(pairs)])
		}
		cursor[s] = (cursor[s] + counts[s]) % len(pairs)
	}

	chain := make([]hal.VolumePair, n)
	evens := (n + 1) / 2
	for j, p := range list {
		if j < evens {
			chain[2*j] = p
		} else {
			chain[2*(j-evens)+1] = p
		}
	}
	return chain
}

// checkChain verifies what the oracle relies on: at least 2 pairs, distinct
// volumes, and cyclic neighbours on different source systems.
func checkChain(chain []hal.VolumePair) error {
	if len(chain) < 2 {
		return fmt.Errorf("%d volumes, need at least 2", len(chain))
	}
	seen := make(map[hal.VolumeRef]bool, len(chain))
	for i, p := range chain {
		if seen[p.Source] {
			return fmt.Errorf("volume %v used twice", p.Source)
		}
		seen[p.Source] = true
		next := chain[(i+1)%len(chain)]
		if p.Source.Serial == next.Source.Serial {
			return fmt.Errorf("positions %d and %d are both on %s", i, (i+1)%len(chain), p.Source.Serial)
		}
	}
	return nil
}

// usedVolumes lists the distinct sources and targets of the chains, sorted.
func usedVolumes(chains [][]hal.VolumePair) (sources, targets []hal.VolumeRef) {
	for _, chain := range chains {
		for _, p := range chain {
			sources = append(sources, p.Source)
			targets = append(targets, p.Target)
		}
	}
	slices.SortFunc(sources, compareRefs)
	slices.SortFunc(targets, compareRefs)
	return slices.Compact(sources), slices.Compact(targets)
}

func describeSystems(systems []system) string {
	parts := make([]string, len(systems))
	for i, s := range systems {
		parts[i] = fmt.Sprintf("%s (%d pairs)", s.serial, len(s.pairs))
	}
	return fmt.Sprintf("%d storage systems: %s", len(systems), strings.Join(parts, ", "))
}

func compareRefs(a, b hal.VolumeRef) int {
	return cmp.Or(cmp.Compare(a.Serial, b.Serial), cmp.Compare(a.Volume, b.Volume))
}

func comparePairs(a, b hal.VolumePair) int {
	return cmp.Or(compareRefs(a.Source, b.Source), compareRefs(a.Target, b.Target))
}

// Chains is the number of chains K.
func (l *Layout) Chains() int { return len(l.chains) }

// Chain returns chain c's pairs in write order: write seq goes to index
// (seq-1) mod n. It returns nil if c is out of range.
func (l *Layout) Chain(c int) []hal.VolumePair {
	if c < 0 || c >= len(l.chains) {
		return nil
	}
	return slices.Clone(l.chains[c])
}

// Sources lists the distinct H1 volumes the workload writes, sorted.
func (l *Layout) Sources() []hal.VolumeRef { return slices.Clone(l.sources) }

// Targets lists the distinct H2 volumes the oracle reads, sorted.
func (l *Layout) Targets() []hal.VolumeRef { return slices.Clone(l.targets) }
