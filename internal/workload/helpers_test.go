package workload_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/lockstep-io/lockstep/hal"
	"github.com/lockstep-io/lockstep/internal/workload"
)

// diff returns "" when want and got are deeply equal, else both, for a
// "(-want +got)" message.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	return fmt.Sprintf("-%+v\n+%+v", want, got)
}

func primary(k int) hal.Serial   { return hal.Serial(fmt.Sprintf("LAB.2107-75P%04d", k+1)) }
func secondary(k int) hal.Serial { return hal.Serial(fmt.Sprintf("LAB.2107-75S%04d", k+1)) }

// makePairs builds perSystem[k] pairs on primary system k, each mirrored to
// the same volume id on secondary system k.
func makePairs(perSystem ...int) []hal.VolumePair {
	var pairs []hal.VolumePair
	for k, count := range perSystem {
		for j := range count {
			vol := hal.NewVolume(hal.LSS(0x10+j/4), uint8(j%4+1))
			pairs = append(pairs, hal.VolumePair{
				Source: hal.VolumeRef{Serial: primary(k), Volume: vol},
				Target: hal.VolumeRef{Serial: secondary(k), Volume: vol},
			})
		}
	}
	return pairs
}

func mustLayout(t testing.TB, pairs []hal.VolumePair, chains, n int) *workload.Layout {
	t.Helper()
	l, err := workload.NewLayout(pairs, chains, n)
	if err != nil {
		t.Fatalf("NewLayout(%d pairs, %d, %d): %v", len(pairs), chains, n, err)
	}
	return l
}

// disk is an in-memory set of volumes; it satisfies workload.Reader.
type disk struct {
	mu     sync.Mutex
	blocks map[hal.VolumeRef]map[uint32][]byte
	err    error // returned by Read when set
}

func newDisk() *disk { return &disk{blocks: make(map[hal.VolumeRef]map[uint32][]byte)} }

func (d *disk) Read(vol hal.VolumeRef, block uint32) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return nil, d.err
	}
	return d.blocks[vol][block], nil
}

func (d *disk) write(vol hal.VolumeRef, block uint32, data []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.blocks[vol] == nil {
		d.blocks[vol] = make(map[uint32][]byte)
	}
	d.blocks[vol][block] = data
}

func (d *disk) erase(vol hal.VolumeRef, block uint32) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.blocks[vol], block)
}

// prefixDisk simulates, for each chain c, writes 1..prefix[c] reaching the
// targets in order, overwriting slots. Only the last n writes can survive,
// so huge prefixes simulate just those.
func prefixDisk(l *workload.Layout, prefix []uint64) *disk {
	d := newDisk()
	for c, p := range prefix {
		if p == 0 {
			continue
		}
		chain := l.Chain(c)
		n := uint64(len(chain))
		first := uint64(1)
		if p > n {
			first = p - n + 1
		}
		for s := first; ; s++ {
			d.write(chain[(s-1)%n].Target, uint32(c), workload.EncodePayload(uint32(c), s))
			if s == p {
				break
			}
		}
	}
	return d
}

// latestAt is, by counting down, the chain's last write to index i among
// writes 1..p: an implementation independent of the oracle's formula.
func latestAt(p uint64, n, i int) uint64 {
	for s := p; s > 0 && p-s < uint64(n); s-- {
		if (s-1)%uint64(n) == uint64(i) {
			return s
		}
	}
	return 0
}
