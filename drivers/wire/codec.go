package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/lockstep-io/lockstep/hal"
)

// Smallest encoded size of each list element, so that a decoder can refuse
// a count the remaining bytes cannot hold before it allocates the slice.
const (
	minLSSRef     = 1 + 1 // empty serial, LSS
	minVolumeRef  = 1 + 2 // empty serial, volume
	minLSSPair    = 2 * minLSSRef
	minVolumePair = 2 * minVolumeRef
	minPathSpec   = minLSSPair + 1            // + consistency group
	minPairSpec   = minVolumePair + 1         // + copy mode
	minPathStatus = minLSSPair + 1 + 1        // + consistency group, state
	minPairStatus = minVolumePair + 1 + 1 + 8 // + state, reason, out-of-sync
	minLSSStatus  = 1 + 1 + 8 + 8             // LSS, type, CG timeout, ELB until
)

// encoder appends big-endian fields to b. The first error sticks and the
// rest of the encoding is skipped, so encode functions check once at the end.
type encoder struct {
	// what is the message being encoded and part its part (" args",
	// " result", or ""), for errors: joined only when one is made, not
	// for every command.
	what, part string
	b          []byte
	// start is where the message begins in b: before it, room for its
	// frame's header (requestFrame), or the messages encoded before it
	// into the same buffer (appendEvent).
	start int
	err   error
}

func (e *encoder) fail(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s%s: cannot encode: %s", ErrMalformed, e.what, e.part, fmt.Sprintf(format, args...))
	}
}

func (e *encoder) u8(v uint8)   { e.b = append(e.b, v) }
func (e *encoder) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) i64(v int64)  { e.u64(uint64(v)) }

func (e *encoder) boolean(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// name writes a string of at most MaxName bytes behind a one-byte length.
func (e *encoder) name(field, s string) {
	if len(s) > MaxName {
		e.fail("%s is %d bytes, limit %d", field, len(s), MaxName)
		return
	}
	e.u8(uint8(len(s)))
	e.b = append(e.b, s...)
}

// text writes a string of at most MaxText bytes behind a two-byte length.
func (e *encoder) text(field, s string) {
	if len(s) > MaxText {
		e.fail("%s is %d bytes, limit %d", field, len(s), MaxText)
		return
	}
	e.u16(uint16(len(s)))
	e.b = append(e.b, s...)
}

// time writes Unix nanoseconds, 0 for the zero time. Times that Unix
// nanoseconds cannot hold (before 1678 or after 2262) are refused rather
// than silently changed.
func (e *encoder) time(field string, t time.Time) {
	if t.IsZero() {
		e.i64(0)
		return
	}
	n := t.UnixNano()
	if !time.Unix(0, n).Equal(t) {
		e.fail("%s %v is out of range", field, t)
		return
	}
	e.i64(n)
}

func (e *encoder) count(field string, n int) {
	if uint64(n) > math.MaxUint32 {
		e.fail("%s has %d elements", field, n)
		return
	}
	e.u32(uint32(n))
}

func (e *encoder) lssRef(r hal.LSSRef) {
	e.name("serial", string(r.Serial))
	e.u8(uint8(r.LSS))
}

func (e *encoder) volumeRef(r hal.VolumeRef) {
	e.name("serial", string(r.Serial))
	e.u16(uint16(r.Volume))
}

func (e *encoder) lssPair(p hal.LSSPair) {
	e.lssRef(p.Source)
	e.lssRef(p.Target)
}

func (e *encoder) volumePair(p hal.VolumePair) {
	e.volumeRef(p.Source)
	e.volumeRef(p.Target)
}

// done returns the encoding, or the first error. It also refuses an
// encoding that would not fit in one frame, so that a too-large reply is
// an error here rather than a broken connection later.
func (e *encoder) done() ([]byte, error) {
	if e.err != nil {
		return nil, e.err
	}
	if n := 1 + len(e.b) - e.start; n > MaxFrameSize {
		return nil, fmt.Errorf("%w: %s needs %d bytes, limit %d", ErrFrameTooLarge, e.what, n, MaxFrameSize)
	}
	return e.b, nil
}

// decoder reads big-endian fields from b. The first error sticks: every
// later read returns zero values, so decode functions check once at the
// end (in finish), and a truncated input can never cause an out-of-range
// slice or an allocation larger than the input.
type decoder struct {
	what, part string // as encoder's
	b          []byte
	off        int // bytes consumed, for error messages
	err        error
	// names are the last two names read (see name).
	names [2]string
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s%s: %s", ErrMalformed, d.what, d.part, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail("truncated at byte %d (need %d more, have %d)", d.off, n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	d.off += n
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16() uint16 {
	if v := d.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) i64() int64 { return int64(d.u64()) }

// boolean accepts only 0 and 1, so that every message has one encoding.
func (d *decoder) boolean(field string) bool {
	off := d.off
	switch v := d.u8(); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail("%s at byte %d is %d, want 0 or 1", field, off, v)
		return false
	}
}

// name reads a name. One that repeats either of the last two names read
// is that string again, not a copy: a list of LSS pairs names the same
// two systems over and over (a freeze of 16 LSS pairs: 32 names, two
// distinct), and an event's LSS pair starts on the system that raised it.
func (d *decoder) name() string {
	b := d.take(int(d.u8()))
	if len(b) == 0 {
		return "" // no allocation to save, and it would push a name out
	}
	for _, known := range d.names {
		if string(b) == known {
			return known
		}
	}
	v := string(b)
	d.names[0], d.names[1] = d.names[1], v
	return v
}
func (d *decoder) text() string {
	off := d.off
	n := int(d.u16())
	if d.err == nil && n > MaxText {
		d.fail("text at byte %d is %d bytes, limit %d", off, n, MaxText)
	}
	return string(d.take(n))
}

func (d *decoder) time() time.Time {
	n := d.i64()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// count reads a list length and refuses one the remaining bytes cannot
// hold at minSize bytes per element.
func (d *decoder) count(field string, minSize int) int {
	off := d.off
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n) > uint64(len(d.b)/minSize) {
		d.fail("%s count %d at byte %d exceeds the %d bytes left", field, n, off, len(d.b))
		return 0
	}
	return int(n)
}

func (d *decoder) lssRef() hal.LSSRef {
	return hal.LSSRef{Serial: hal.Serial(d.name()), LSS: hal.LSS(d.u8())}
}

func (d *decoder) volumeRef() hal.VolumeRef {
	return hal.VolumeRef{Serial: hal.Serial(d.name()), Volume: hal.Volume(d.u16())}
}

func (d *decoder) lssPair() hal.LSSPair {
	return hal.LSSPair{Source: d.lssRef(), Target: d.lssRef()}
}

func (d *decoder) volumePair() hal.VolumePair {
	return hal.VolumePair{Source: d.volumeRef(), Target: d.volumeRef()}
}

// rest takes every remaining byte (the opaque tail of a request or
// response). It aliases the input, which ReadFrame allocates per frame.
func (d *decoder) rest() []byte {
	if d.err != nil || len(d.b) == 0 {
		return nil
	}
	return d.take(len(d.b))
}

// finish reports the first error, or trailing bytes: every message has
// exactly one length, so leftovers mean the peer and we disagree.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes at byte %d", len(d.b), d.off)
	}
	return d.err
}

// list decodes a count-prefixed list of elements of at least minSize bytes.
func list[T any](d *decoder, field string, minSize int, elem func() T) []T {
	n := d.count(field, minSize)
	if n == 0 {
		return nil
	}
	out := make([]T, n)
	for i := range out {
		out[i] = elem()
	}
	if d.err != nil {
		return nil
	}
	return out
}

// putList encodes a count-prefixed list.
func putList[T any](e *encoder, field string, xs []T, elem func(T)) {
	e.count(field, len(xs))
	for _, x := range xs {
		elem(x)
	}
}
