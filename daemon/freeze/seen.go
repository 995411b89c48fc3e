package freeze

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/lockstep-io/lockstep/hal"
)

// maxSeen is how many events handled the core remembers at least (at
// most twice as many): a source repeating itself (a reconnected stream,
// a retransmitted trap) counts once.
const maxSeen = 8192

// seenEvents is the memory of events already handled, per source: a
// source repeating itself counts once, but no source can make another's
// event a duplicate, not even with the same sequence number (a forged
// trap), since the source is part of what is remembered.
//
// Its memory does not move with the events: an event is remembered as a
// 128-bit keyed hash of its source and every field (two hash/maphash
// seeds drawn at random per core, so that no sender can choose an event
// that collides with another; by chance, two of 16 384 events collide
// with a probability of about 2^-100), in two generations of maxSeen
// entries, each map allocated at its full size when the generation
// begins. When the current one is full, it becomes the previous one and
// the oldest is dropped whole. Keeping the events themselves, as the
// core did before, cost about 500 bytes each (4 MiB at the bound), and
// that memory grew with every event until the bound was reached (the
// memory soak, internal/memsoak, found it: days at a cycle a minute).
type seenEvents struct {
	seeds     [2]maphash.Seed
	cur, prev map[[2]uint64]struct{}
	buf       []byte // the encoding of the event being looked up
}

func newSeenEvents() *seenEvents {
	return &seenEvents{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		cur: make(map[[2]uint64]struct{}, maxSeen), prev: make(map[[2]uint64]struct{}, maxSeen)}
}

// add remembers the event from source and reports whether it was
// remembered already: a duplicate.
func (s *seenEvents) add(source string, ev hal.Event) (dup bool) {
	s.buf = appendEventKey(s.buf[:0], source, ev)
	k := [2]uint64{maphash.Bytes(s.seeds[0], s.buf), maphash.Bytes(s.seeds[1], s.buf)}
	if _, ok := s.cur[k]; ok {
		return true
	}
	if _, ok := s.prev[k]; ok {
		return true
	}
	if len(s.cur) >= maxSeen {
		// The dropped generation's map is cleared and reused: no
		// allocation, and the same memory from the first event on.
		clear(s.prev)
		s.cur, s.prev = s.prev, s.cur
	}
	s.cur[k] = struct{}{}
	return false
}

// appendEventKey encodes source and every field of ev, each string
// length-prefixed so that no two events share an encoding. The time is
// its instant (UnixNano), whatever its location.
func appendEventKey(b []byte, source string, ev hal.Event) []byte {
	str := func(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }
	b = str(b, source)
	b = str(b, string(ev.Serial))
	b = append(b, byte(ev.Kind), byte(ev.Reason))
	b = binary.LittleEndian.AppendUint64(b, ev.Seq)
	b = binary.LittleEndian.AppendUint64(b, uint64(ev.At.UnixNano()))
	b = append(str(b, string(ev.LSSPair.Source.Serial)), byte(ev.LSSPair.Source.LSS))
	b = append(str(b, string(ev.LSSPair.Target.Serial)), byte(ev.LSSPair.Target.LSS))
	for _, w := range ev.Volumes {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	b = str(b, ev.Session)
	return binary.LittleEndian.AppendUint64(b, uint64(ev.Epoch))
}
