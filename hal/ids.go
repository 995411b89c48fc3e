package hal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Serial names a storage system, e.g. "LAB.2107-75P0001".
type Serial string

// LSS is a logical subsystem number, 0x00 to 0xFE.
type LSS uint8

// MaxLSS is the highest valid LSS number; 0xFF is reserved.
const MaxLSS LSS = 0xFE

func (l LSS) String() string { return fmt.Sprintf("%02X", uint8(l)) }

// Valid reports whether l is a usable LSS number.
func (l LSS) Valid() bool { return l <= MaxLSS }

// Volume is a volume id: LSS in the high byte, volume number in the low
// byte, written as 4 hex digits ("1001" = LSS 0x10, volume 0x01).
type Volume uint16

// NewVolume builds a volume id from its LSS and number within the LSS.
func NewVolume(lss LSS, n uint8) Volume { return Volume(uint16(lss)<<8 | uint16(n)) }

// LSS is the logical subsystem the volume belongs to.
func (v Volume) LSS() LSS { return LSS(v >> 8) }

// Number is the volume's number within its LSS.
func (v Volume) Number() uint8 { return uint8(v) }

func (v Volume) String() string { return fmt.Sprintf("%04X", uint16(v)) }

// ErrBadID reports an identity that does not parse.
var ErrBadID = errors.New("hal: bad identity")

// ParseVolume parses exactly 4 hex digits.
func ParseVolume(s string) (Volume, error) {
	if len(s) != 4 {
		return 0, fmt.Errorf("%w: volume %q is not 4 hex digits", ErrBadID, s)
	}
	n, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("%w: volume %q is not 4 hex digits", ErrBadID, s)
	}
	v := Volume(n)
	if !v.LSS().Valid() {
		return 0, fmt.Errorf("%w: volume %q: LSS FF is reserved", ErrBadID, s)
	}
	return v, nil
}

// ParseLSS parses 1 or 2 hex digits, with or without a 0x prefix.
func ParseLSS(s string) (LSS, error) {
	t := strings.TrimPrefix(strings.ToLower(s), "0x")
	n, err := strconv.ParseUint(t, 16, 8)
	if err != nil || len(t) == 0 || len(t) > 2 || !LSS(n).Valid() {
		return 0, fmt.Errorf("%w: LSS %q is not 00 to FE", ErrBadID, s)
	}
	return LSS(n), nil
}

// VolumeRef is a volume on a given storage system.
type VolumeRef struct {
	Serial Serial
	Volume Volume
}

func (r VolumeRef) String() string { return string(r.Serial) + "/" + r.Volume.String() }

// LSSRef is an LSS on a given storage system.
type LSSRef struct {
	Serial Serial
	LSS    LSS
}

func (r LSSRef) String() string { return string(r.Serial) + "/" + r.LSS.String() }

// LSSPair is the unit of paths and freezes: a source LSS and the target
// LSS its pairs mirror to.
type LSSPair struct {
	Source LSSRef
	Target LSSRef
}

func (p LSSPair) String() string { return p.Source.String() + "->" + p.Target.String() }

// VolumePair is one Metro Mirror relationship, named as established:
// Source is H1 and Target H2 for a pair started H1->H2.
type VolumePair struct {
	Source VolumeRef
	Target VolumeRef
}

func (p VolumePair) String() string { return p.Source.String() + "->" + p.Target.String() }

// LSSPair is the LSS pair the volume pair belongs to.
func (p VolumePair) LSSPair() LSSPair {
	return LSSPair{
		Source: LSSRef{p.Source.Serial, p.Source.Volume.LSS()},
		Target: LSSRef{p.Target.Serial, p.Target.Volume.LSS()},
	}
}

// Epoch is the fencing token: it rises at every takeover.
type Epoch uint64

// VolumeSet is a bitmap of the 256 volume numbers of one LSS, as carried
// in a suspend event.
type VolumeSet [4]uint64

// Add puts volume number n in the set.
func (s *VolumeSet) Add(n uint8) { s[n/64] |= 1 << (n % 64) }

// Has reports whether volume number n is in the set.
func (s VolumeSet) Has(n uint8) bool { return s[n/64]&(1<<(n%64)) != 0 }

// Len is the number of volumes in the set.
func (s VolumeSet) Len() int {
	n := 0
	for _, w := range s {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

// Reversed is the pair in the other direction, as after a failback.
func (p VolumePair) Reversed() VolumePair { return VolumePair{Source: p.Target, Target: p.Source} }
