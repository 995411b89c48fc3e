package hmc

import "time"

// dedupWindow is how many recent event numbers per storage system are
// remembered to drop the copy the other HMC delivers. The two copies of
// an event arrive milliseconds apart; thousands of other events of the
// same system between them would be needed to let a duplicate through.
const dedupWindow = 4096

// seqWindow remembers the last n sequence numbers seen, in arrival
// order; a number is a duplicate while it is remembered. It does not
// assume order: the two HMCs may deliver events in different orders.
type seqWindow struct {
	set  map[uint64]struct{}
	ring []uint64
	next int
}

func newSeqWindow(n int) *seqWindow {
	return &seqWindow{set: make(map[uint64]struct{}, n), ring: make([]uint64, 0, n)}
}

// add records seq and reports whether it was new.
func (w *seqWindow) add(seq uint64) bool {
	if _, ok := w.set[seq]; ok {
		return false
	}
	if len(w.ring) < cap(w.ring) {
		w.ring = append(w.ring, seq)
	} else {
		delete(w.set, w.ring[w.next])
		w.ring[w.next] = seq
		w.next = (w.next + 1) % len(w.ring)
	}
	w.set[seq] = struct{}{}
	return true
}

// Backoff is the pause after the attempt-th failed dial of an HMC,
// attempt >= 1: first, doubling, capped at limit.
func Backoff(attempt int, first, limit time.Duration) time.Duration {
	d := first
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}
