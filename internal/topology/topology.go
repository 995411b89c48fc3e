package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/hal/clock"
	"github.com/lockstep-io/lockstep/internal/emu"
)

// Topology is a set of storage systems and what replicates between them.
type Topology struct {
	Systems []emu.SystemConfig
	Paths   []hal.PathSpec
	Pairs   []hal.VolumePair
}

// PrimarySerial and SecondarySerial name the systems of Standard.
func PrimarySerial(i int) hal.Serial   { return hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", i+1)) }
func SecondarySerial(i int) hal.Serial { return hal.Serial(fmt.Sprintf("LAB.2107-75S%04d", i+1)) }

// DefaultLSSs are the LSSs of every system in Standard: two FB and two
// CKD, four volumes each.
func DefaultLSSs() []emu.LSSConfig {
	return []emu.LSSConfig{
		{LSS: 0x10, Type: hal.FB, Volumes: 4},
		{LSS: 0x11, Type: hal.FB, Volumes: 4},
		{LSS: 0x20, Type: hal.CKD, Volumes: 4},
		{LSS: 0x21, Type: hal.CKD, Volumes: 4},
	}
}

// Standard is n primaries, primary i mirroring every volume of every LSS
// to the same volume of secondary i, paths with the CG option.
func Standard(n int, lsss []emu.LSSConfig) *Topology {
	t := &Topology{}
	for i := range n {
		p := emu.SystemConfig{Serial: PrimarySerial(i), LSSs: lsss}
		s := emu.SystemConfig{Serial: SecondarySerial(i), LSSs: lsss}
		t.Systems = append(t.Systems, p, s)
		t.AddMirror(p, s) // same LSSs on both sides: nothing to report
	}
	return t
}

// Build adds the systems to a fabric.
func (t *Topology) Build(f *emu.Fabric) error {
	for _, sc := range t.Systems {
		if _, err := f.AddSystem(sc); err != nil {
			return err
		}
	}
	return nil
}

// Sources lists the systems that hold pair sources, in the order of Pairs.
func (t *Topology) Sources() []hal.Serial {
	var out []hal.Serial
	seen := map[hal.Serial]bool{}
	for _, p := range t.Pairs {
		if !seen[p.Source.Serial] {
			seen[p.Source.Serial] = true
			out = append(out, p.Source.Serial)
		}
	}
	return out
}

// LSSPairs groups the LSS pairs of the topology's paths by source system:
// what a freeze of the whole layout sends to each system.
func (t *Topology) LSSPairs() map[hal.Serial][]hal.LSSPair {
	out := map[hal.Serial][]hal.LSSPair{}
	for _, p := range t.Paths {
		out[p.Source.Serial] = append(out[p.Source.Serial], p.LSSPair)
	}
	return out
}

// ErrNotDuplex reports pairs that did not reach full-duplex in time.
var ErrNotDuplex = errors.New("topology: pairs not full-duplex")

// Establish creates the paths and pairs through the manager's connections
// and waits (on clk, up to timeout) until every pair is full-duplex.
func (t *Topology) Establish(ctx context.Context, clk clock.Clock, conns map[hal.Serial]hal.StorageSystem,
	epoch hal.Epoch, timeout time.Duration) error {
	pathsBy := map[hal.Serial][]hal.PathSpec{}
	for _, p := range t.Paths {
		pathsBy[p.Source.Serial] = append(pathsBy[p.Source.Serial], p)
	}
	pairsBy := map[hal.Serial][]hal.PairSpec{}
	for _, p := range t.Pairs {
		pairsBy[p.Source.Serial] = append(pairsBy[p.Source.Serial], hal.PairSpec{VolumePair: p})
	}
	for _, serial := range t.Sources() {
		c := conns[serial]
		if c == nil {
			return fmt.Errorf("topology: no connection to %s", serial)
		}
		if err := c.EstablishPaths(ctx, epoch, pathsBy[serial]); err != nil {
			return err
		}
		if err := c.EstablishPairs(ctx, epoch, pairsBy[serial]); err != nil {
			return err
		}
	}
	deadline := clk.Now().Add(timeout)
	for {
		waiting := 0
		for _, serial := range t.Sources() {
			ps, err := conns[serial].QueryPairs(ctx, epoch)
			if err != nil {
				return err
			}
			for _, p := range ps {
				if p.Source.Serial == serial && p.State != hal.FullDuplex {
					waiting++
				}
			}
		}
		if waiting == 0 {
			return nil
		}
		if !clk.Now().Before(deadline) {
			return fmt.Errorf("%w: %d after %v", ErrNotDuplex, waiting, timeout)
		}
		if err := clock.Sleep(ctx, clk, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// AddMirror pairs every volume of src with the volume of the same id on
// tgt, with a CG path per LSS. It returns the problems it found (an LSS or
// volume of src that tgt lacks) and adds nothing then.
func (t *Topology) AddMirror(src, tgt emu.SystemConfig) []string {
	tgtLSS := map[hal.LSS]emu.LSSConfig{}
	for _, l := range tgt.LSSs {
		tgtLSS[l.LSS] = l
	}
	var problems []string
	for _, l := range src.LSSs {
		if tl, ok := tgtLSS[l.LSS]; !ok || tl.Volumes < l.Volumes {
			problems = append(problems, fmt.Sprintf("mirror %s -> %s: %s has no LSS %s with %d volumes",
				src.Serial, tgt.Serial, tgt.Serial, l.LSS, l.Volumes))
		}
	}
	if len(problems) > 0 {
		return problems
	}
	for _, l := range src.LSSs {
		t.Paths = append(t.Paths, hal.PathSpec{ConsistencyGroup: true, LSSPair: hal.LSSPair{
			Source: hal.LSSRef{Serial: src.Serial, LSS: l.LSS}, Target: hal.LSSRef{Serial: tgt.Serial, LSS: l.LSS}}})
		for v := range l.Volumes {
			id := hal.NewVolume(l.LSS, uint8(v))
			t.Pairs = append(t.Pairs, hal.VolumePair{
				Source: hal.VolumeRef{Serial: src.Serial, Volume: id}, Target: hal.VolumeRef{Serial: tgt.Serial, Volume: id}})
		}
	}
	return nil
}
